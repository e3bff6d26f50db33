// ZonedDevice: the one interface for everything that stores blocks in zones.
//
// Backends (see zns/): emulated (a file or memory that obeys the ZNS rules exactly), zbd
// (kernel zoned block devices through libzbd), nvme (NVMe ZNS through io_uring passthrough)
// and faulty (a wrapper that records writes and simulates power loss, for tests).
//
// Units: every address and length is in logical blocks (geometry().block_size bytes).
// Threading: a device is driven by one thread at a time; submit() and reap() are not
// re-entrant. Buffers must stay valid until their completion is reaped and be aligned to
// the block size (AlignedBuffer), since the kernel backends DMA into them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nyads/status.h"

namespace nyads {

// Zone states, numbered as in the NVMe ZNS specification (Zone State field).
enum class ZoneState : std::uint8_t {
  kEmpty = 0x1,
  kImplicitOpen = 0x2,
  kExplicitOpen = 0x3,
  kClosed = 0x4,
  kReadOnly = 0xd,
  kFull = 0xe,
  kOffline = 0xf,
};
std::string_view zone_state_name(ZoneState state);
// Open or closed zones hold the device's "active" resources; open ones also "open" resources.
inline bool is_open(ZoneState s) { return s == ZoneState::kImplicitOpen || s == ZoneState::kExplicitOpen; }
inline bool is_active(ZoneState s) { return is_open(s) || s == ZoneState::kClosed; }

struct ZoneInfo {
  std::uint64_t start = 0;          // first block of the zone
  std::uint64_t write_pointer = 0;  // next block a write must target; start + capacity when full
  std::uint64_t capacity = 0;       // writable blocks in this zone (<= zone size)
  ZoneState state = ZoneState::kEmpty;
  bool operator==(const ZoneInfo&) const = default;
};

struct Geometry {
  std::uint32_t block_size = 0;     // bytes per logical block
  std::uint64_t zone_size = 0;      // blocks from one zone start to the next
  std::uint64_t zone_capacity = 0;  // writable blocks per zone (the largest, if they differ)
  std::uint32_t zone_count = 0;
  std::uint32_t max_open_zones = 0;     // 0: no limit
  std::uint32_t max_active_zones = 0;   // 0: no limit
  std::uint32_t max_append_blocks = 0;  // largest single zone append
  std::uint32_t max_io_blocks = 0;      // largest single read or write
  bool native_append = false;           // true when the device itself assigns append locations

  std::uint64_t total_blocks() const { return zone_size * zone_count; }
  std::uint64_t zone_start(std::uint32_t zone) const { return zone_size * zone; }
  std::uint32_t zone_of(std::uint64_t lba) const { return static_cast<std::uint32_t>(lba / zone_size); }
  std::string to_string() const;
};

enum class ZoneAction : std::uint8_t { kReset, kOpen, kClose, kFinish };
std::string_view zone_action_name(ZoneAction action);

enum class IoOp : std::uint8_t {
  kRead,    // lba, blocks, buffer
  kWrite,   // lba must equal the zone's write pointer
  kAppend,  // lba is the zone's start; the completion says where the data landed
  kFlush,   // every write completed before it is durable when it completes
};

struct IoRequest {
  IoOp op = IoOp::kRead;
  std::uint64_t lba = 0;
  std::uint32_t blocks = 0;
  void* buffer = nullptr;
  std::uint64_t tag = 0;  // returned unchanged in the completion
  // A write's last step before its bytes are read, run by the device only when its
  // runs_prepare() says so (for any other device the caller does that work itself): on the
  // device's writing thread, if it has one, so the caller's work on the bytes (the store
  // checksums them) overlaps with what it does next. It may read the buffer, not change it.
  std::function<void()> prepare;
  // A write whose submitter goes on with other work before it reaps (the daemon receives the
  // next requests): a device with a writing thread may hand it there. Otherwise the device
  // writes it at submit, as a handoff then only adds two wakeups to a caller that waits.
  bool caller_goes_on = false;
};

struct IoCompletion {
  std::uint64_t tag = 0;
  Status status;
  std::uint64_t lba = 0;  // for a successful append: the first block written
};

class ZonedDevice {
 public:
  virtual ~ZonedDevice() = default;
  ZonedDevice() = default;
  ZonedDevice(const ZonedDevice&) = delete;
  ZonedDevice& operator=(const ZonedDevice&) = delete;

  virtual const Geometry& geometry() const = 0;
  // "emulated", "zbd", "nvme", "faulty(...)": which backend this is.
  virtual std::string backend() const = 0;
  // What the device is, for messages: the path, or "memory".
  virtual const std::string& name() const = 0;

  // Zones first .. first+count-1, clipped at the last zone.
  virtual Result<std::vector<ZoneInfo>> report_zones(std::uint32_t first, std::uint32_t count) = 0;
  virtual Status manage_zone(ZoneAction action, std::uint32_t zone) = 0;
  // The action on every zone it applies to (NVMe "select all" semantics: reset all
  // non-empty zones, finish all open or closed zones, close all open zones; open all closed).
  virtual Status manage_all_zones(ZoneAction action) = 0;

  // Queues one request. Fails only with kBusy when queue_depth() requests are in flight;
  // every other outcome, errors included, arrives as a completion.
  virtual Status submit(const IoRequest& request) = 0;
  // Waits until at least min(min_count, in_flight()) completions are ready, then moves up to
  // out.size() of them into out. Returns how many.
  virtual std::size_t reap(std::span<IoCompletion> out, std::size_t min_count) = 0;
  virtual std::uint32_t in_flight() const = 0;
  virtual std::uint32_t queue_depth() const = 0;
  // What a request's buffer address must be a multiple of: 4096 for direct I/O and NVMe
  // passthrough (AlignedBuffer's alignment); 1 for a backend that copies (the emulated one),
  // so a caller may hand it bytes where they lie instead of copying them into place first.
  virtual std::size_t buffer_alignment() const { return 4096; }

  // For a submitter with other work to do while its writes are copied out (the daemon
  // receives the next requests' bytes): whether writes it submitted are still being written,
  // and an eventfd that turns readable when they all are (read it to clear it). -1 and false
  // for a backend whose writes need no such wait (the ring's complete through reap alone).
  virtual bool writing() const { return false; }
  virtual int writes_done_fd() const { return -1; }
  // Whether the device runs a write's IoRequest::prepare before it writes the bytes.
  virtual bool runs_prepare() const { return false; }

  // What the operator should know about how the device runs now: a slower path taken for want
  // of a kernel feature, space it may run out of. One line each; none when all is well.
  virtual std::vector<std::string> warnings() const { return {}; }

  // Work that brings the device's volatile state to stable media (a file's dirty pages), to
  // run on another thread while this one goes on: a flush soon after has less left to do.
  // Not a flush: it promises nothing, and the flush that follows is still required. Empty
  // when the device has no such work, or fewer than min_bytes were written since its last
  // flush. The caller lets a job finish before it destroys the device.
  virtual std::function<void()> writeback_job(std::uint64_t min_bytes) {
    (void)min_bytes;
    return {};
  }
};

struct OpenOptions {
  bool read_only = false;
  // Open a kernel device exclusively (O_EXCL) so no filesystem or other process writes it.
  bool exclusive = true;
  std::uint32_t queue_depth = 64;
};

// Opens a zoned device by path and picks its backend:
//   a regular file made by create_emulated_file  -> emulated
//   a block device whose queue/zoned is host-managed -> zbd
//   an NVMe generic character device /dev/ngXnY   -> nvme
// Anything else is refused with a message that lists what is supported.
Result<std::unique_ptr<ZonedDevice>> open_zoned_device(const std::string& path, const OpenOptions& options = {});

}  // namespace nyads
