#include "zns/zone_rules.h"

#include <string>

namespace nyads {

namespace {
std::string u(std::uint64_t v) { return std::to_string(v); }
}  // namespace

ZoneRules::ZoneRules(const Geometry& geometry) : g_(geometry) {
  zones_.resize(g_.zone_count);
  for (std::uint32_t z = 0; z < g_.zone_count; ++z) {
    zones_[z] = {g_.zone_start(z), g_.zone_start(z), g_.zone_capacity, ZoneState::kEmpty};
  }
}

void ZoneRules::load(std::vector<ZoneInfo> zones) {
  zones_ = std::move(zones);
  open_ = active_ = 0;
  for (auto& z : zones_) {
    if (is_open(z.state)) z.state = z.write_pointer == z.start ? ZoneState::kEmpty : ZoneState::kClosed;
    if (z.state == ZoneState::kClosed && z.write_pointer == z.start) z.state = ZoneState::kEmpty;
    if (is_active(z.state)) ++active_;
  }
}

Status ZoneRules::zone_error(Code code, std::uint32_t zone, const char* what) const {
  const ZoneInfo& z = zones_[zone];
  return Status(code, std::string(what) + " (zone " + u(zone) + ", " + std::string(zone_state_name(z.state)) +
                          ", write pointer " + u(z.write_pointer) + ", start " + u(z.start) + ", capacity " +
                          u(z.capacity) + ")");
}

void ZoneRules::set_state(ZoneInfo& z, ZoneState to) {
  if (is_open(z.state)) --open_;
  if (is_active(z.state)) --active_;
  z.state = to;
  if (is_open(to)) ++open_;
  if (is_active(to)) ++active_;
}

Status ZoneRules::check_read(std::uint64_t lba, std::uint32_t blocks) const {
  if (blocks == 0) return InvalidArgument("read of zero blocks at " + u(lba));
  if (blocks > g_.max_io_blocks)
    return InvalidArgument("read of " + u(blocks) + " blocks exceeds the device's maximum I/O of " +
                           u(g_.max_io_blocks) + " blocks");
  if (lba >= g_.total_blocks() || blocks > g_.total_blocks() - lba)
    return OutOfRange("read of blocks " + u(lba) + ".." + u(lba + blocks - 1) + " beyond the device's " +
                      u(g_.total_blocks()) + " blocks");
  const std::uint32_t zone = g_.zone_of(lba);
  if (g_.zone_of(lba + blocks - 1) != zone)
    return Status(Code::kZoneBoundary,
                  "read of blocks " + u(lba) + ".." + u(lba + blocks - 1) + " crosses the end of zone " + u(zone));
  if (zones_[zone].state == ZoneState::kOffline)
    return zone_error(Code::kZoneOffline, zone, "read from an offline zone");
  return Status::Ok();
}

void ZoneRules::close_one_implicit() {
  for (auto& z : zones_) {
    if (z.state == ZoneState::kImplicitOpen) {
      set_state(z, ZoneState::kClosed);
      return;
    }
  }
}

// Acquires the open (and, from empty, active) resource for a zone. Like a drive with
// automatic zone transitions, it closes an implicitly opened zone to make room if it can.
Status ZoneRules::open_zone(std::uint32_t zone, bool explicit_open) {
  ZoneInfo& z = zones_[zone];
  const ZoneState target = explicit_open ? ZoneState::kExplicitOpen : ZoneState::kImplicitOpen;
  switch (z.state) {
    case ZoneState::kImplicitOpen:
      if (explicit_open) set_state(z, target);
      return Status::Ok();
    case ZoneState::kExplicitOpen: return Status::Ok();
    case ZoneState::kEmpty:
    case ZoneState::kClosed: {
      const bool needs_active = z.state == ZoneState::kEmpty;
      if (needs_active && g_.max_active_zones != 0 && active_ >= g_.max_active_zones)
        return zone_error(
            Code::kTooManyActiveZones, zone,
            ("opening the zone would exceed the device's " + u(g_.max_active_zones) + " active zones").c_str());
      if (g_.max_open_zones != 0 && open_ >= g_.max_open_zones) {
        close_one_implicit();
        if (open_ >= g_.max_open_zones)
          return zone_error(Code::kTooManyOpenZones, zone,
                            ("all " + u(g_.max_open_zones) + " open zones are explicitly open").c_str());
      }
      set_state(z, target);
      return Status::Ok();
    }
    case ZoneState::kFull:
      return zone_error(explicit_open ? Code::kInvalidZoneTransition : Code::kZoneFull, zone,
                        explicit_open ? "cannot open a full zone" : "write to a full zone");
    case ZoneState::kReadOnly:
      return zone_error(explicit_open ? Code::kInvalidZoneTransition : Code::kZoneReadOnly, zone,
                        explicit_open ? "cannot open a read-only zone" : "write to a read-only zone");
    case ZoneState::kOffline:
      return zone_error(explicit_open ? Code::kInvalidZoneTransition : Code::kZoneOffline, zone,
                        explicit_open ? "cannot open an offline zone" : "write to an offline zone");
  }
  return IoError("unknown zone state");
}

Status ZoneRules::write(IoOp op, std::uint64_t lba, std::uint32_t blocks, std::uint64_t* where) {
  const char* what = op == IoOp::kAppend ? "append" : "write";
  if (blocks == 0) return InvalidArgument(std::string(what) + " of zero blocks at " + u(lba));
  if (lba >= g_.total_blocks())
    return OutOfRange(std::string(what) + " at block " + u(lba) + " beyond the device's " + u(g_.total_blocks()) +
                      " blocks");
  const std::uint32_t zone = g_.zone_of(lba);
  ZoneInfo& z = zones_[zone];
  if (op == IoOp::kAppend) {
    if (lba != z.start)
      return InvalidArgument("append must name the zone start " + u(z.start) + ", not block " + u(lba));
    if (blocks > g_.max_append_blocks)
      return InvalidArgument("append of " + u(blocks) + " blocks exceeds the zone append size limit of " +
                             u(g_.max_append_blocks) + " blocks");
  } else if (blocks > g_.max_io_blocks) {
    return InvalidArgument("write of " + u(blocks) + " blocks exceeds the device's maximum I/O of " +
                           u(g_.max_io_blocks) + " blocks");
  }
  // State errors come before write-pointer errors, as on a drive.
  if (z.state == ZoneState::kFull)
    return zone_error(Code::kZoneFull, zone, (std::string(what) + " to a full zone").c_str());
  if (z.state == ZoneState::kReadOnly)
    return zone_error(Code::kZoneReadOnly, zone, (std::string(what) + " to a read-only zone").c_str());
  if (z.state == ZoneState::kOffline)
    return zone_error(Code::kZoneOffline, zone, (std::string(what) + " to an offline zone").c_str());
  const std::uint64_t at = op == IoOp::kAppend ? z.write_pointer : lba;
  if (at != z.write_pointer)
    return zone_error(Code::kZoneInvalidWrite, zone,
                      ("write at block " + u(lba) + " is not at the write pointer").c_str());
  if (at + blocks > z.start + z.capacity)
    return zone_error(Code::kZoneBoundary, zone,
                      (std::string(what) + " of " + u(blocks) + " blocks would pass the zone capacity").c_str());
  NYADS_RETURN_IF_ERROR(open_zone(zone, false));
  z.write_pointer = at + blocks;
  if (z.write_pointer == z.start + z.capacity) set_state(z, ZoneState::kFull);
  *where = at;
  return Status::Ok();
}

Status ZoneRules::apply(ZoneAction action, std::uint32_t zone) {
  if (zone >= g_.zone_count)
    return OutOfRange("zone " + u(zone) + " beyond the device's " + u(g_.zone_count) + " zones");
  ZoneInfo& z = zones_[zone];
  switch (action) {
    case ZoneAction::kOpen: return open_zone(zone, true);
    case ZoneAction::kClose:
      if (z.state == ZoneState::kClosed) return Status::Ok();
      if (!is_open(z.state)) return zone_error(Code::kInvalidZoneTransition, zone, "only an open zone can be closed");
      // Like QEMU's ZNS namespace: closed even without data, so it keeps its active resource.
      set_state(z, ZoneState::kClosed);
      return Status::Ok();
    case ZoneAction::kFinish:
      if (z.state == ZoneState::kReadOnly || z.state == ZoneState::kOffline)
        return zone_error(Code::kInvalidZoneTransition, zone, "cannot finish a read-only or offline zone");
      set_state(z, ZoneState::kFull);
      z.write_pointer = z.start + z.capacity;
      return Status::Ok();
    case ZoneAction::kReset:
      if (z.state == ZoneState::kOffline)
        return zone_error(Code::kInvalidZoneTransition, zone, "cannot reset an offline zone");
      if (z.state == ZoneState::kReadOnly)
        return zone_error(Code::kInvalidZoneTransition, zone, "cannot reset a read-only zone");
      set_state(z, ZoneState::kEmpty);
      z.write_pointer = z.start;
      return Status::Ok();
  }
  return InvalidArgument("unknown zone action");
}

bool action_applies_to_all(ZoneAction action, ZoneState s) {
  switch (action) {
    case ZoneAction::kReset: return is_active(s) || s == ZoneState::kFull;
    case ZoneAction::kFinish: return is_active(s);
    case ZoneAction::kClose: return is_open(s);
    case ZoneAction::kOpen: return s == ZoneState::kClosed;
  }
  return false;
}

Status ZoneRules::apply_all(ZoneAction action) {
  for (std::uint32_t zone = 0; zone < g_.zone_count; ++zone) {
    if (action_applies_to_all(action, zones_[zone].state)) NYADS_RETURN_IF_ERROR(apply(action, zone));
  }
  return Status::Ok();
}

Status ZoneRules::set_condition(std::uint32_t zone, ZoneState state) {
  if (zone >= g_.zone_count) return OutOfRange("zone " + u(zone) + " beyond the device");
  if (state != ZoneState::kReadOnly && state != ZoneState::kOffline)
    return InvalidArgument("a zone condition is read-only or offline");
  set_state(zones_[zone], state);
  return Status::Ok();
}

}  // namespace nyads
