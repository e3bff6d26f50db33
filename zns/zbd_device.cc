// The zbd backend: a kernel host-managed zoned block device. libzbd reports and manages
// zones; data moves with O_DIRECT reads and writes through io_uring. The block device has no
// zone append for userspace, so appends are writes at the tracked write pointer
// (UringZonedDevice serializes writes per zone).
#include <fcntl.h>
#include <libzbd/zbd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "zns/backends.h"
#include "zns/uring_device.h"
#include "zns/zone_rules.h"

namespace nyads {

namespace {

std::uint64_t read_sysfs_u64(const std::string& path, std::uint64_t fallback) {
  std::ifstream in(path);
  std::uint64_t v = 0;
  if (in >> v) return v;
  return fallback;
}

class ZbdDevice final : public UringZonedDevice {
 public:
  ZbdDevice(std::string path, int fd, std::uint32_t qd) : UringZonedDevice(std::move(path), fd, qd) {}
  ~ZbdDevice() override {
    zbd_close(fd_);  // libzbd keeps state per descriptor; it closes fd_ too
    fd_ = -1;
  }

  Status init(const zbd_info& info) {
    if (info.model != ZBD_DM_HOST_MANAGED)
      return NotSupported(name_ + " is not a host-managed zoned device (libzbd model " + std::to_string(info.model) +
                          ")");
    g_.block_size = info.lblock_size;
    g_.zone_size = info.zone_size / info.lblock_size;
    g_.zone_count = info.nr_zones;
    g_.max_open_zones = info.max_nr_open_zones == static_cast<unsigned>(-1) ? 0 : info.max_nr_open_zones;
    g_.max_active_zones = info.max_nr_active_zones == static_cast<unsigned>(-1) ? 0 : info.max_nr_active_zones;
    const std::string queue = "/sys/class/block/" + std::filesystem::path(name_).filename().string() + "/queue/";
    const std::uint64_t max_bytes =
        std::min<std::uint64_t>(read_sysfs_u64(queue + "max_sectors_kb", 512) * 1024, 1u << 20);
    g_.max_io_blocks = static_cast<std::uint32_t>(max_bytes / g_.block_size);
    g_.max_append_blocks = g_.max_io_blocks;  // appends are writes here
    g_.native_append = false;
    // Zone capacity: the largest reported (zones may differ; ZoneInfo has each one's).
    std::vector<zbd_zone> zones(g_.zone_count);
    unsigned int n = g_.zone_count;
    if (zbd_report_zones(fd_, 0, 0, ZBD_RO_ALL, zones.data(), &n) != 0)
      return ErrnoStatus(errno, name_ + ": report zones");
    for (unsigned i = 0; i < n; ++i) {
      if (zones[i].type != ZBD_ZONE_TYPE_SWR)
        return NotSupported(name_ + ": zone " + std::to_string(i) +
                            " is not sequential-write-required; nyads needs every zone to be");
      g_.zone_capacity = std::max<std::uint64_t>(g_.zone_capacity, zones[i].capacity / g_.block_size);
    }
    return start(0);
  }

  std::string backend() const override { return "zbd"; }

  Result<std::vector<ZoneInfo>> report_zones(std::uint32_t first, std::uint32_t count) override {
    if (first >= g_.zone_count)
      return OutOfRange("zone " + std::to_string(first) + " beyond the device's " + std::to_string(g_.zone_count) +
                        " zones");
    count = std::min(count, g_.zone_count - first);
    std::vector<zbd_zone> zones(count);
    unsigned int n = count;
    const std::uint64_t bs = g_.block_size;
    if (zbd_report_zones(fd_, static_cast<off_t>(g_.zone_start(first) * bs),
                         static_cast<off_t>(count * g_.zone_size * bs), ZBD_RO_ALL, zones.data(), &n) != 0)
      return ErrnoStatus(errno, name_ + ": report zones");
    std::vector<ZoneInfo> out(n);
    for (unsigned i = 0; i < n; ++i) {
      const zbd_zone& z = zones[i];
      out[i].start = z.start / bs;
      out[i].capacity = z.capacity / bs;
      out[i].state = static_cast<ZoneState>(z.cond);
      // The kernel reports a full zone's write pointer at the zone end; ours is start + capacity.
      out[i].write_pointer = out[i].state == ZoneState::kFull ? out[i].start + out[i].capacity : z.wp / bs;
    }
    return out;
  }

  Status manage_zone(ZoneAction action, std::uint32_t zone) override {
    if (zone >= g_.zone_count)
      return OutOfRange("zone " + std::to_string(zone) + " beyond the device's " + std::to_string(g_.zone_count) +
                        " zones");
    const off_t ofst = static_cast<off_t>(g_.zone_start(zone) * g_.block_size);
    const off_t len = static_cast<off_t>(g_.zone_size * g_.block_size);
    Status st = operate(action, ofst, len, zone);
    Status refreshed = refresh_zone(zone);
    NYADS_RETURN_IF_ERROR(st);
    return refreshed;
  }

  Status manage_all_zones(ZoneAction action) override {
    if (action == ZoneAction::kReset) {
      Status st = operate(action, 0, 0, 0);
      Status refreshed = refresh_all_zones();
      NYADS_RETURN_IF_ERROR(st);
      return refreshed;
    }
    // The kernel applies open/close/finish to every zone in a range (finish would fill empty
    // zones too); NVMe's "select all" applies them only where they make sense. Do that.
    auto zones = report_zones(0, g_.zone_count);
    if (!zones.ok()) return zones.status();
    for (std::uint32_t z = 0; z < zones->size(); ++z) {
      if (action_applies_to_all(action, (*zones)[z].state)) NYADS_RETURN_IF_ERROR(manage_zone(action, z));
    }
    return Status::Ok();
  }

 private:
  Status operate(ZoneAction action, off_t ofst, off_t len, std::uint32_t zone) {
    zbd_zone_op op = ZBD_OP_RESET;
    switch (action) {
      case ZoneAction::kReset: op = ZBD_OP_RESET; break;
      case ZoneAction::kOpen: op = ZBD_OP_OPEN; break;
      case ZoneAction::kClose: op = ZBD_OP_CLOSE; break;
      case ZoneAction::kFinish: op = ZBD_OP_FINISH; break;
    }
    if (zbd_zones_operation(fd_, op, ofst, len) == 0) return Status::Ok();
    const int err = errno;
    Status st = ErrnoStatus(err, name_ + ": " + std::string(zone_action_name(action)) +
                                     (len == 0 ? std::string(" all zones") : " zone " + std::to_string(zone)));
    // The block layer answers a zone action the zone's state forbids with EIO.
    if (err == EIO && len != 0) return Status(Code::kInvalidZoneTransition, st.message());
    return st;
  }

  void prepare(io_uring_sqe* sqe, IoOp op, std::uint64_t lba, std::uint32_t blocks, void* buffer) override {
    const std::uint64_t off = lba * g_.block_size;
    const unsigned len = blocks * g_.block_size;
    switch (op) {
      case IoOp::kRead: io_uring_prep_read(sqe, fd_, buffer, len, off); break;
      case IoOp::kWrite:
      case IoOp::kAppend: io_uring_prep_write(sqe, fd_, buffer, len, off); break;
      case IoOp::kFlush: io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC); break;
    }
  }

  Status outcome(const io_uring_cqe* cqe, IoOp op, std::uint32_t blocks, std::uint64_t* lba) override {
    const char* what = op == IoOp::kRead ? "read" : op == IoOp::kFlush ? "flush" : "write";
    if (cqe->res < 0) return ErrnoStatus(-cqe->res, name_ + ": " + what);
    // A short transfer is a failure, not a success: callers take a read's buffer as filled.
    const std::uint64_t want = std::uint64_t{blocks} * g_.block_size;
    if (op != IoOp::kFlush && static_cast<std::uint64_t>(cqe->res) != want)
      return Status(Code::kIoError, name_ + ": short " + what + ": " + std::to_string(cqe->res) + " of " +
                                        std::to_string(want) + " bytes at block " + std::to_string(*lba));
    return Status::Ok();
  }
};

}  // namespace

Result<std::unique_ptr<ZonedDevice>> open_zbd_device(const std::string& path, const OpenOptions& options) {
  zbd_info info{};
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC | (options.exclusive ? O_EXCL : 0);
  int fd = zbd_open(path.c_str(), flags, &info);
  if (fd < 0) {
    const int err = errno;
    if (err == EBUSY)
      return Status(Code::kBusy, path + " is in use (mounted, or opened exclusively by another process)");
    return ErrnoStatus(err, "opening zoned block device " + path);
  }
  // zbd_open registers fd with libzbd; close it through zbd_close when init fails.
  auto dev = std::make_unique<ZbdDevice>(path, fd, options.queue_depth);
  Status st = dev->init(info);
  if (!st.ok()) return st;
  return std::unique_ptr<ZonedDevice>(std::move(dev));
}

}  // namespace nyads
