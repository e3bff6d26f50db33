#include "nyads/zoned_device.h"

#include <cstdio>

namespace nyads {

std::string_view zone_state_name(ZoneState state) {
  switch (state) {
    case ZoneState::kEmpty: return "empty";
    case ZoneState::kImplicitOpen: return "implicitly-open";
    case ZoneState::kExplicitOpen: return "explicitly-open";
    case ZoneState::kClosed: return "closed";
    case ZoneState::kReadOnly: return "read-only";
    case ZoneState::kFull: return "full";
    case ZoneState::kOffline: return "offline";
  }
  return "unknown";
}

std::string_view zone_action_name(ZoneAction action) {
  switch (action) {
    case ZoneAction::kReset: return "reset";
    case ZoneAction::kOpen: return "open";
    case ZoneAction::kClose: return "close";
    case ZoneAction::kFinish: return "finish";
  }
  return "unknown";
}

std::string Geometry::to_string() const {
  char buf[384];
  std::snprintf(buf, sizeof buf,
                "%u zones of %llu blocks (capacity %llu) x %u B, max open %u, max active %u, "
                "max append %u blocks, max I/O %u blocks, %s append",
                zone_count, static_cast<unsigned long long>(zone_size), static_cast<unsigned long long>(zone_capacity),
                block_size, max_open_zones, max_active_zones, max_append_blocks, max_io_blocks,
                native_append ? "native" : "emulated");
  return buf;
}

}  // namespace nyads
