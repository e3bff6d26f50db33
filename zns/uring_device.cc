#include "zns/uring_device.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "zns/io_uring_setup.h"

namespace nyads {

namespace {
std::string u(std::uint64_t v) { return std::to_string(v); }
}  // namespace

UringZonedDevice::UringZonedDevice(std::string name, int fd, std::uint32_t queue_depth)
    : name_(std::move(name)), fd_(fd), queue_depth_(queue_depth) {}

UringZonedDevice::~UringZonedDevice() {
  if (ring_ready_) {
    // Let the kernel finish with our buffers before they go away.
    while (in_flight() > local_.size() + waiting_) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring_, &cqe) != 0) break;
      io_uring_cqe_seen(&ring_, cqe);
      auto& s = slots_[cqe->user_data];
      s.used = false;
      free_slots_.push_back(static_cast<std::uint32_t>(cqe->user_data));
    }
    io_uring_queue_exit(&ring_);
  }
  if (fd_ >= 0) ::close(fd_);
}

Status UringZonedDevice::start(unsigned ring_flags) {
  int rc = io_uring_queue_init(queue_depth_, &ring_, ring_flags);
  if (rc < 0) return io_uring_setup_error(-rc, name_);
  ring_ready_ = true;
  slots_.resize(queue_depth_);
  for (std::uint32_t i = queue_depth_; i > 0; --i) free_slots_.push_back(i - 1);
  zones_.resize(g_.zone_count);
  return refresh_all_zones();
}

Status UringZonedDevice::refresh_zone(std::uint32_t zone) {
  auto r = report_zones(zone, 1);
  if (!r.ok()) return r.status();
  zones_[zone].info = (*r)[0];
  return Status::Ok();
}

Status UringZonedDevice::refresh_all_zones() {
  auto r = report_zones(0, g_.zone_count);
  if (!r.ok()) return r.status();
  for (std::uint32_t z = 0; z < r->size(); ++z) zones_[z].info = (*r)[z];
  return Status::Ok();
}

std::uint32_t UringZonedDevice::in_flight() const {
  return (queue_depth_ - static_cast<std::uint32_t>(free_slots_.size())) + waiting_ +
         static_cast<std::uint32_t>(local_.size());
}

void UringZonedDevice::fail(const IoRequest& r, Status status) { local_.push_back({r.tag, std::move(status), 0}); }

Status UringZonedDevice::check_range(const IoRequest& r) const {
  if (r.op == IoOp::kFlush) return Status::Ok();
  if (r.buffer == nullptr) return InvalidArgument("request without a buffer");
  if (r.blocks == 0) return InvalidArgument("request of zero blocks at " + u(r.lba));
  const std::uint32_t limit = r.op == IoOp::kAppend ? g_.max_append_blocks : g_.max_io_blocks;
  if (r.blocks > limit)
    return InvalidArgument("request of " + u(r.blocks) + " blocks exceeds the device's limit of " + u(limit) +
                           (r.op == IoOp::kAppend ? " blocks per append" : " blocks per I/O"));
  if (r.lba >= g_.total_blocks() || r.blocks > g_.total_blocks() - r.lba)
    return OutOfRange("blocks " + u(r.lba) + ".." + u(r.lba + r.blocks - 1) + " beyond the device's " +
                      u(g_.total_blocks()) + " blocks");
  if (g_.zone_of(r.lba) != g_.zone_of(r.lba + r.blocks - 1))
    return Status(Code::kZoneBoundary, "blocks " + u(r.lba) + ".." + u(r.lba + r.blocks - 1) +
                                           " cross the end of zone " + u(g_.zone_of(r.lba)));
  if (r.op == IoOp::kAppend && r.lba != g_.zone_start(g_.zone_of(r.lba)))
    return InvalidArgument("append must name the zone start " + u(g_.zone_start(g_.zone_of(r.lba))) + ", not block " +
                           u(r.lba));
  return Status::Ok();
}

Status UringZonedDevice::submit(const IoRequest& r) {
  if (in_flight() >= queue_depth_) return Status(Code::kBusy, "queue full: reap completions first");
  dispatch(r);
  if (unsent_ > 0) {
    int rc = io_uring_submit(&ring_);
    if (rc >= 0) unsent_ = 0;
  }
  return Status::Ok();
}

void UringZonedDevice::dispatch(const IoRequest& r) {
  Status valid = check_range(r);
  if (!valid.ok()) return fail(r, std::move(valid));
  const bool serialized = r.op == IoOp::kWrite || (r.op == IoOp::kAppend && !g_.native_append);
  if (!serialized) return send(r, r.op, r.lba, false);
  HostZone& z = zones_[g_.zone_of(r.lba)];
  if (z.writing) {
    z.waiting.push_back(r);
    ++waiting_;
    return;
  }
  dispatch_zone_write(r);
}

// A write (or emulated append) whose zone has no other write in the device.
void UringZonedDevice::dispatch_zone_write(const IoRequest& r) {
  const std::uint32_t zone = g_.zone_of(r.lba);
  const ZoneInfo& z = zones_[zone].info;
  auto zone_error = [&](Code code, const std::string& what) {
    fail(r, Status(code, what + " (zone " + u(zone) + ", " + std::string(zone_state_name(z.state)) +
                             ", write pointer " + u(z.write_pointer) + ", capacity " + u(z.capacity) + ")"));
  };
  if (z.state == ZoneState::kFull) return zone_error(Code::kZoneFull, "write to a full zone");
  if (z.state == ZoneState::kReadOnly) return zone_error(Code::kZoneReadOnly, "write to a read-only zone");
  if (z.state == ZoneState::kOffline) return zone_error(Code::kZoneOffline, "write to an offline zone");
  const std::uint64_t at = r.op == IoOp::kAppend ? z.write_pointer : r.lba;
  if (at != z.write_pointer)
    return zone_error(Code::kZoneInvalidWrite, "write at block " + u(r.lba) + " is not at the write pointer");
  if (at + r.blocks > z.start + z.capacity)
    return zone_error(Code::kZoneBoundary, "write of " + u(r.blocks) + " blocks would pass the zone capacity");
  send(r, IoOp::kWrite, at, true);
}

void UringZonedDevice::send(const IoRequest& r, IoOp device_op, std::uint64_t lba, bool zone_write) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {  // the ring is as deep as the queue, so this means submit failed before
    io_uring_submit(&ring_);
    unsent_ = 0;
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return fail(r, Status(Code::kBusy, name_ + ": no free submission entry"));
  }
  const std::uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  slots_[slot] = Slot{r, device_op, lba, zone_write, true};
  if (zone_write) {
    HostZone& z = zones_[g_.zone_of(lba)];
    z.writing = true;
    // Advance the host's write pointer now: the next queued write goes after this one.
    z.info.write_pointer = lba + r.blocks;
    if (z.info.write_pointer == z.info.start + z.info.capacity)
      z.info.state = ZoneState::kFull;
    else if (z.info.state == ZoneState::kEmpty || z.info.state == ZoneState::kClosed)
      z.info.state = ZoneState::kImplicitOpen;
  }
  prepare(sqe, device_op, lba, r.blocks, r.buffer);
  io_uring_sqe_set_data64(sqe, slot);
  ++unsent_;
}

IoCompletion UringZonedDevice::finish(const io_uring_cqe* cqe) {
  const auto slot_index = static_cast<std::uint32_t>(cqe->user_data);
  Slot s = slots_[slot_index];
  slots_[slot_index].used = false;
  free_slots_.push_back(slot_index);
  std::uint64_t lba = s.lba;
  Status st = outcome(cqe, s.device_op, s.request.blocks, &lba);
  IoCompletion c{s.request.tag, st, 0};
  if (s.request.op == IoOp::kAppend) c.lba = lba;
  const bool writes_zone = s.zone_write || s.device_op == IoOp::kAppend;
  if (writes_zone) {
    const std::uint32_t zone = g_.zone_of(lba);
    HostZone& z = zones_[zone];
    if (!st.ok()) {
      (void)refresh_zone(zone);  // where did the device's write pointer end up?
    } else if (s.device_op == IoOp::kAppend && lba + s.request.blocks > z.info.write_pointer) {
      z.info.write_pointer = lba + s.request.blocks;
      z.info.state =
          z.info.write_pointer == z.info.start + z.info.capacity ? ZoneState::kFull : ZoneState::kImplicitOpen;
    }
    if (s.zone_write) {
      z.writing = false;
      if (!z.waiting.empty()) {
        IoRequest next = z.waiting.front();
        z.waiting.pop_front();
        --waiting_;
        dispatch_zone_write(next);
      }
    }
  }
  return c;
}

std::size_t UringZonedDevice::reap(std::span<IoCompletion> out, std::size_t min_count) {
  std::size_t n = 0;
  while (n < out.size()) {
    if (!local_.empty()) {
      out[n++] = std::move(local_.front());
      local_.pop_front();
      continue;
    }
    if (unsent_ > 0 && io_uring_submit(&ring_) >= 0) unsent_ = 0;
    if (free_slots_.size() == queue_depth_) break;  // nothing in the device
    io_uring_cqe* cqe = nullptr;
    int rc = n >= min_count ? io_uring_peek_cqe(&ring_, &cqe) : io_uring_wait_cqe(&ring_, &cqe);
    if (rc == -EINTR) continue;
    if (rc != 0 || cqe == nullptr) break;
    IoCompletion c = finish(cqe);
    io_uring_cqe_seen(&ring_, cqe);
    out[n++] = std::move(c);
  }
  if (unsent_ > 0 && io_uring_submit(&ring_) >= 0) unsent_ = 0;
  return n;
}

}  // namespace nyads
