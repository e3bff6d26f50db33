// ZoneRules: the ZNS zone state machine and its resource limits, as the NVMe ZNS command set
// specifies them (and as QEMU's emulated ZNS namespace implements them). The emulated backend
// runs every request through it, so software that passes on emulated zones obeys a drive.
//
// Internal to zns/.
#pragma once

#include <cstdint>
#include <vector>

#include "nyads/zoned_device.h"

namespace nyads {

// Whether an "all zones" action touches a zone in this state (NVMe select-all semantics):
// reset every zone that is not empty, finish open and closed zones, close open zones, open
// closed zones.
bool action_applies_to_all(ZoneAction action, ZoneState state);

class ZoneRules {
 public:
  explicit ZoneRules(const Geometry& geometry);

  // Replaces the zone table (e.g. loaded from the emulated file), recounting resources.
  // Open zones come back closed, as after a drive's power cycle.
  void load(std::vector<ZoneInfo> zones);

  const std::vector<ZoneInfo>& zones() const { return zones_; }
  const ZoneInfo& zone(std::uint32_t z) const { return zones_[z]; }
  std::uint32_t open_count() const { return open_; }
  std::uint32_t active_count() const { return active_; }

  // Validates a read; reads may target unwritten blocks (they read as zeros).
  Status check_read(std::uint64_t lba, std::uint32_t blocks) const;
  // Validates and applies a write (at lba) or an append (lba = zone start): checks state,
  // write pointer, capacity and limits, opens the zone implicitly, advances the write
  // pointer, and sets *where to the first block written.
  Status write(IoOp op, std::uint64_t lba, std::uint32_t blocks, std::uint64_t* where);
  Status apply(ZoneAction action, std::uint32_t zone);
  Status apply_all(ZoneAction action);
  // Drill hook: a zone turns read-only or offline.
  Status set_condition(std::uint32_t zone, ZoneState state);

 private:
  Status open_zone(std::uint32_t zone, bool explicit_open);
  void close_one_implicit();
  void set_state(ZoneInfo& z, ZoneState to);
  Status zone_error(Code code, std::uint32_t zone, const char* what) const;

  Geometry g_;
  std::vector<ZoneInfo> zones_;
  std::uint32_t open_ = 0;
  std::uint32_t active_ = 0;
};

}  // namespace nyads
