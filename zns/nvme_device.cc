// The nvme backend: an NVMe ZNS namespace through its generic character device /dev/ngXnY.
// libnvme identifies the namespace (block size, zone size, open/active limits, append size
// limit) and sends zone management commands; data moves through io_uring NVMe passthrough
// (IORING_OP_URING_CMD, rings with 128-byte SQEs and 32-byte CQEs), where Zone Append returns
// the LBA it assigned in the big CQE. Passthrough has no block-layer ordering, so plain writes
// go one at a time per zone (UringZonedDevice); appends need no ordering and run deep.
#include <fcntl.h>
#include <libnvme.h>
#include <linux/nvme_ioctl.h>
#include <sys/file.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "nyads/aligned_buffer.h"
#include "zns/backends.h"
#include "zns/uring_device.h"
#include "zns/zone_rules.h"

namespace nyads {

namespace {

static_assert(std::endian::native == std::endian::little,
              "NVMe structures are read in place: little-endian hosts only");

constexpr std::uint8_t kOpFlush = 0x00, kOpWrite = 0x01, kOpRead = 0x02, kOpZoneAppend = 0x7d;

// NVMe completion status (SCT << 8 | SC) to a Status, naming the ZNS errors exactly.
Status nvme_status(int status, const std::string& what) {
  const int sc = status & 0x7ff;
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%03x", sc);
  const std::string msg = what + " (NVMe status " + hex + ")";
  switch (sc) {
    case 0x1b8: return {Code::kZoneBoundary, msg + ": zone boundary error"};
    case 0x1b9: return {Code::kZoneFull, msg + ": zone is full"};
    case 0x1ba: return {Code::kZoneReadOnly, msg + ": zone is read only"};
    case 0x1bb: return {Code::kZoneOffline, msg + ": zone is offline"};
    case 0x1bc: return {Code::kZoneInvalidWrite, msg + ": zone invalid write"};
    case 0x1bd: return {Code::kTooManyActiveZones, msg + ": too many active zones"};
    case 0x1be: return {Code::kTooManyOpenZones, msg + ": too many open zones"};
    case 0x1bf: return {Code::kInvalidZoneTransition, msg + ": invalid zone state transition"};
    case 0x002: return {Code::kInvalidArgument, msg + ": invalid field in command"};
    case 0x080: return {Code::kOutOfRange, msg + ": LBA out of range"};
    default: return {Code::kIoError, msg};
  }
}

// libnvme calls return 0, an NVMe status (> 0), or -1 with errno.
Status libnvme_status(int rc, const std::string& what) {
  if (rc == 0) return Status::Ok();
  if (rc > 0) return nvme_status(rc, what);
  return ErrnoStatus(errno, what);
}

std::uint64_t read_sysfs_u64(const std::string& path, std::uint64_t fallback) {
  std::ifstream in(path);
  std::uint64_t v = 0;
  return (in >> v) ? v : fallback;
}

class NvmeDevice final : public UringZonedDevice {
 public:
  NvmeDevice(std::string path, int fd, std::uint32_t qd) : UringZonedDevice(std::move(path), fd, qd) {}

  Status init() {
    if (nvme_get_nsid(fd_, &nsid_) != 0)
      return ErrnoStatus(errno, name_ + ": NVME_IOCTL_ID (is it an NVMe namespace?)");
    nvme_id_ns ns{};
    NYADS_RETURN_IF_ERROR(libnvme_status(nvme_identify_ns(fd_, nsid_, &ns), name_ + ": identify namespace"));
    std::uint8_t lbaf = 0;
    nvme_id_ns_flbas_to_lbaf_inuse(ns.flbas, &lbaf);
    if (ns.lbaf[lbaf].ms != 0)
      return NotSupported(name_ + ": LBA format with " + std::to_string(ns.lbaf[lbaf].ms) +
                          " metadata bytes; nyads needs a format without metadata");
    nvme_zns_id_ns zns{};
    Status zs = libnvme_status(nvme_zns_identify_ns(fd_, nsid_, &zns), name_ + ": ZNS identify namespace");
    if (!zs.ok()) return NotSupported(name_ + " is not a zoned (ZNS) namespace: " + zs.message());
    nvme_id_ctrl ctrl{};
    NYADS_RETURN_IF_ERROR(libnvme_status(nvme_identify_ctrl(fd_, &ctrl), name_ + ": identify controller"));
    nvme_zns_id_ctrl zctrl{};
    NYADS_RETURN_IF_ERROR(libnvme_status(nvme_zns_identify_ctrl(fd_, &zctrl), name_ + ": ZNS identify controller"));

    g_.block_size = 1u << ns.lbaf[lbaf].ds;
    g_.zone_size = zns.lbafe[lbaf].zsze;
    if (g_.zone_size == 0) return NotSupported(name_ + ": the namespace reports a zone size of 0");
    g_.zone_count = static_cast<std::uint32_t>(ns.nsze / g_.zone_size);
    // MOR and MAR are 0-based; all ones means no limit.
    g_.max_open_zones = zns.mor == 0xffffffffu ? 0 : zns.mor + 1;
    g_.max_active_zones = zns.mar == 0xffffffffu ? 0 : zns.mar + 1;
    // MDTS and ZASL are powers of two in units of the minimum memory page (4 KiB here); the
    // kernel's own passthrough limit (max_hw_sectors_kb) can be lower still.
    constexpr std::uint64_t kPage = 4096;
    std::uint64_t max_io = ctrl.mdts ? (kPage << ctrl.mdts) : (1u << 20);
    const std::string block = "nvme" + std::filesystem::path(name_).filename().string().substr(2);
    max_io = std::min<std::uint64_t>(max_io,
                                     read_sysfs_u64("/sys/block/" + block + "/queue/max_hw_sectors_kb", 1024) * 1024);
    max_io = std::min<std::uint64_t>(max_io, 1u << 20);
    const std::uint64_t max_append = std::min<std::uint64_t>(zctrl.zasl ? (kPage << zctrl.zasl) : max_io, max_io);
    g_.max_io_blocks = static_cast<std::uint32_t>(max_io / g_.block_size);
    g_.max_append_blocks = static_cast<std::uint32_t>(max_append / g_.block_size);
    g_.native_append = true;
    auto zones = report_zones(0, g_.zone_count);
    if (!zones.ok()) return zones.status();
    for (const ZoneInfo& z : *zones) g_.zone_capacity = std::max(g_.zone_capacity, z.capacity);
    return start(IORING_SETUP_SQE128 | IORING_SETUP_CQE32);
  }

  std::string backend() const override { return "nvme"; }

  Result<std::vector<ZoneInfo>> report_zones(std::uint32_t first, std::uint32_t count) override {
    if (first >= g_.zone_count)
      return OutOfRange("zone " + std::to_string(first) + " beyond the device's " + std::to_string(g_.zone_count) +
                        " zones");
    count = std::min(count, g_.zone_count - first);
    std::vector<ZoneInfo> out;
    out.reserve(count);
    constexpr std::uint32_t kChunk = 256;  // descriptors per command: 16 KiB, under any MDTS
    AlignedBuffer buf(sizeof(nvme_zone_report) + kChunk * sizeof(nvme_zns_desc));
    while (out.size() < count) {
      const std::uint32_t want = std::min<std::uint32_t>(kChunk, count - static_cast<std::uint32_t>(out.size()));
      const std::uint64_t slba = g_.zone_start(first + static_cast<std::uint32_t>(out.size()));
      const auto len = static_cast<std::uint32_t>(sizeof(nvme_zone_report) + want * sizeof(nvme_zns_desc));
      NYADS_RETURN_IF_ERROR(libnvme_status(
          nvme_zns_report_zones(fd_, nsid_, slba, NVME_ZNS_ZRAS_REPORT_ALL, false, true, len, buf.data(), 0, nullptr),
          name_ + ": report zones"));
      const auto* report = reinterpret_cast<const nvme_zone_report*>(buf.data());
      const std::uint64_t got = std::min<std::uint64_t>(report->nr_zones, want);
      if (got == 0) break;
      for (std::uint64_t i = 0; i < got; ++i) {
        const nvme_zns_desc& d = report->entries[i];
        ZoneInfo z;
        z.start = d.zslba;
        z.capacity = d.zcap;
        z.state = static_cast<ZoneState>(d.zs >> 4);
        z.write_pointer = z.state == ZoneState::kFull ? z.start + z.capacity : d.wp;
        out.push_back(z);
      }
    }
    return out;
  }

  Status manage_zone(ZoneAction action, std::uint32_t zone) override {
    if (zone >= g_.zone_count)
      return OutOfRange("zone " + std::to_string(zone) + " beyond the device's " + std::to_string(g_.zone_count) +
                        " zones");
    Status st = send_action(action, g_.zone_start(zone), false, " zone " + std::to_string(zone));
    Status refreshed = refresh_zone(zone);
    NYADS_RETURN_IF_ERROR(st);
    return refreshed;
  }

  Status manage_all_zones(ZoneAction action) override {
    Status st = send_action(action, 0, true, " all zones");
    Status refreshed = refresh_all_zones();
    NYADS_RETURN_IF_ERROR(st);
    return refreshed;
  }

 private:
  Status send_action(ZoneAction action, std::uint64_t slba, bool all, const std::string& what) {
    nvme_zns_send_action zsa = NVME_ZNS_ZSA_RESET;
    switch (action) {
      case ZoneAction::kReset: zsa = NVME_ZNS_ZSA_RESET; break;
      case ZoneAction::kOpen: zsa = NVME_ZNS_ZSA_OPEN; break;
      case ZoneAction::kClose: zsa = NVME_ZNS_ZSA_CLOSE; break;
      case ZoneAction::kFinish: zsa = NVME_ZNS_ZSA_FINISH; break;
    }
    nvme_zns_mgmt_send_args args{};
    args.slba = slba;
    args.args_size = sizeof(args);
    args.fd = fd_;
    args.nsid = nsid_;
    args.zsa = zsa;
    args.select_all = all;
    return libnvme_status(nvme_zns_mgmt_send(&args), name_ + ": " + std::string(zone_action_name(action)) + what);
  }

  void prepare(io_uring_sqe* sqe, IoOp op, std::uint64_t lba, std::uint32_t blocks, void* buffer) override {
    std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // a 128-byte SQE: the command lives in its second half
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd_;
    sqe->cmd_op = NVME_URING_CMD_IO;
    auto* cmd = reinterpret_cast<nvme_uring_cmd*>(sqe->cmd);
    cmd->nsid = nsid_;
    switch (op) {
      case IoOp::kRead: cmd->opcode = kOpRead; break;
      case IoOp::kWrite: cmd->opcode = kOpWrite; break;
      case IoOp::kAppend: cmd->opcode = kOpZoneAppend; break;
      case IoOp::kFlush: cmd->opcode = kOpFlush; return;
    }
    cmd->addr = reinterpret_cast<std::uintptr_t>(buffer);
    cmd->data_len = blocks * g_.block_size;
    cmd->cdw10 = static_cast<std::uint32_t>(lba);
    cmd->cdw11 = static_cast<std::uint32_t>(lba >> 32);
    cmd->cdw12 = blocks - 1;  // 0-based block count
  }

  Status outcome(const io_uring_cqe* cqe, IoOp op, std::uint32_t blocks, std::uint64_t* lba) override {
    (void)blocks;  // a passthrough command moves all of its blocks or fails with a status
    const char* what = op == IoOp::kRead     ? "read"
                       : op == IoOp::kWrite  ? "write"
                       : op == IoOp::kAppend ? "zone append"
                                             : "flush";
    if (cqe->res < 0) return ErrnoStatus(-cqe->res, name_ + ": " + what);
    if (cqe->res > 0) return nvme_status(cqe->res, name_ + ": " + what);
    if (op == IoOp::kAppend) *lba = cqe->big_cqe[0];
    return Status::Ok();
  }

  std::uint32_t nsid_ = 0;
};

}  // namespace

Result<std::unique_ptr<ZonedDevice>> open_nvme_device(const std::string& path, const OpenOptions& options) {
  int fd = ::open(path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "opening NVMe generic device " + path);
  // A character device has no O_EXCL: nyads processes agree through a lock instead.
  if (options.exclusive && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Status(Code::kBusy, path + " is in use by another nyads process");
  }
  auto dev = std::make_unique<NvmeDevice>(path, fd, options.queue_depth);
  NYADS_RETURN_IF_ERROR(dev->init());
  return std::unique_ptr<ZonedDevice>(std::move(dev));
}

}  // namespace nyads
