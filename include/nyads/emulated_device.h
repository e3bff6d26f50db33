// The emulated backend: a zoned namespace kept in a regular file (or in memory) that obeys
// the ZNS rules exactly — the zone state machine, writes only at the write pointer, zone
// append, capacity below zone size, open/active limits, the append size limit — and fails
// with the same errors a drive would. It is nyads' embedded default for machines without a
// ZNS drive, and the backend of most tests.
//
// Persistence (file variant) is that of a drive with a volatile write cache: data and write
// pointers as of the last completed flush survive a crash or kill; later writes may be lost.
// The geometry is recorded in the file (doc/format.md, "Emulated zoned device file"), so
// reopening needs no flags.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "nyads/zoned_device.h"

namespace nyads {

struct EmulatedConfig {
  std::uint32_t block_size = 4096;
  std::uint64_t zone_size_bytes = 64ull << 20;
  std::uint64_t zone_capacity_bytes = 60ull << 20;  // like QEMU's and real drives: < zone size
  std::uint32_t zone_count = 64;
  std::uint32_t max_open_zones = 14;
  std::uint32_t max_active_zones = 14;
  std::uint32_t max_append_bytes = 1u << 20;
  std::uint32_t max_io_bytes = 1u << 20;

  // Checks every field and the rules between them ("zone capacity 70 MiB exceeds zone size").
  Status validate() const;
  Geometry geometry() const;
};

// What a new device file takes on its filesystem.
enum class FileSpace {
  kSparse,    // only written blocks take disk space: writes fail if the filesystem fills
  kReserved,  // all of it, at once (fallocate): refused up front when the filesystem lacks the room
};

class EmulatedDevice : public ZonedDevice {
 public:
  // Creates path as a new emulated device. Refuses an existing file unless overwrite is set.
  static Result<std::unique_ptr<EmulatedDevice>> create_file(const std::string& path, const EmulatedConfig& config,
                                                             bool overwrite = false,
                                                             FileSpace space = FileSpace::kSparse);
  static Result<std::unique_ptr<EmulatedDevice>> open_file(const std::string& path, bool read_only = false);
  // A device in memory: nothing persists past its destruction.
  static Result<std::unique_ptr<EmulatedDevice>> create_memory(const EmulatedConfig& config);

  // Test and drill hook: degrade a zone as a failing drive would (kReadOnly or kOffline).
  virtual Status set_zone_condition(std::uint32_t zone, ZoneState state) = 0;

  // A file's writeback, started early every 4 MiB written (so that a flush finds little
  // dirty), or not, because most of what was written lately died unflushed: the times each
  // was decided since the device was opened (a start decided is still dropped when eight are
  // in flight, or there is no ring). Memory: both 0.
  struct EarlyWriteback {
    std::uint64_t started = 0;
    std::uint64_t skipped = 0;
  };
  virtual EarlyWriteback early_writeback() const = 0;
};

// True when the first bytes of a file are an emulated device header (its magic).
bool looks_like_emulated_device(std::span<const std::uint8_t> first_bytes);

}  // namespace nyads
