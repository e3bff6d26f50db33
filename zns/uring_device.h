// UringZonedDevice: what the kernel backends (zbd, nvme) share — an io_uring queue, the
// slots of requests in flight, and per-zone write ordering.
//
// The block layer does not keep two writes to one zone in order, and neither does NVMe
// passthrough, so plain writes are sent one at a time per zone (later ones wait here).
// Appends go straight to a device that has native zone append; on one that has not (zbd),
// an append becomes a write at the zone's write pointer as tracked here, which works
// because writes to a zone are serialized.
//
// Internal to zns/.
#pragma once

#include <liburing.h>

#include <deque>
#include <string>
#include <vector>

#include "nyads/zoned_device.h"

namespace nyads {

class UringZonedDevice : public ZonedDevice {
 public:
  ~UringZonedDevice() override;

  const Geometry& geometry() const override { return g_; }
  const std::string& name() const override { return name_; }
  Status submit(const IoRequest& request) override;
  std::size_t reap(std::span<IoCompletion> out, std::size_t min_count) override;
  std::uint32_t in_flight() const override;
  std::uint32_t queue_depth() const override { return queue_depth_; }

 protected:
  UringZonedDevice(std::string name, int fd, std::uint32_t queue_depth);
  // Sets up the ring (flags: e.g. SQE128 | CQE32 for NVMe passthrough) and the host's view of
  // the zones. Call once geometry() is known.
  Status start(unsigned ring_flags);

  // Fills sqe for a request whose device address is final (an emulated append arrives here
  // as a kWrite at the write pointer).
  virtual void prepare(io_uring_sqe* sqe, IoOp op, std::uint64_t lba, std::uint32_t blocks, void* buffer) = 0;
  // The outcome of a completed request of `blocks` blocks; for a native append, *lba is where
  // the data landed.
  virtual Status outcome(const io_uring_cqe* cqe, IoOp op, std::uint32_t blocks, std::uint64_t* lba) = 0;

  // The host's view of one zone is stale (after a zone action or a failed write): reread it.
  Status refresh_zone(std::uint32_t zone);
  Status refresh_all_zones();

  Geometry g_;
  std::string name_;
  int fd_ = -1;

 private:
  struct Slot {
    IoRequest request;  // as submitted
    IoOp device_op = IoOp::kRead;
    std::uint64_t lba = 0;    // device address
    bool zone_write = false;  // holds its zone's write turn
    bool used = false;
  };
  struct HostZone {
    ZoneInfo info;
    bool writing = false;           // a write to this zone is in the device
    std::deque<IoRequest> waiting;  // writes queued behind it
  };

  void dispatch(const IoRequest& r);
  void dispatch_zone_write(const IoRequest& r);
  void send(const IoRequest& r, IoOp device_op, std::uint64_t lba, bool zone_write);
  void fail(const IoRequest& r, Status status);
  IoCompletion finish(const io_uring_cqe* cqe);
  Status check_range(const IoRequest& r) const;

  io_uring ring_{};
  bool ring_ready_ = false;
  std::uint32_t queue_depth_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::uint32_t unsent_ = 0;  // SQEs prepared but not yet submitted
  std::vector<HostZone> zones_;
  std::uint32_t waiting_ = 0;
  std::deque<IoCompletion> local_;  // failed before reaching the device
};

}  // namespace nyads
