#include "nyads/faulty_device.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "nyads/aligned_buffer.h"
#include "nyads/sync_device.h"

namespace nyads {

namespace {
Status power_lost() { return IoError("power lost (faulty device: power_cycle() restores it)"); }
}  // namespace

FaultyDevice::FaultyDevice(std::unique_ptr<ZonedDevice> inner) : inner_(std::move(inner)) {
  zones_.resize(inner_->geometry().zone_count);
  sync_zone_records();  // what the device holds now counts as durable
}

FaultyDevice::~FaultyDevice() = default;

std::string FaultyDevice::backend() const { return "faulty(" + inner_->backend() + ")"; }

// Reads the inner device's zones: where each zone's data ends, and whether it is full.
void FaultyDevice::sync_zone_records() {
  auto report = inner_->report_zones(0, inner_->geometry().zone_count);
  if (!report.ok()) return;
  for (std::size_t i = 0; i < report->size(); ++i) {
    const ZoneInfo& info = (*report)[i];
    zones_[i] = ZoneRecord{info.write_pointer, info.write_pointer, info.state == ZoneState::kFull, {}};
  }
}

void FaultyDevice::power_loss_after_events(std::uint64_t count) {
  if (count == 0) {
    power_loss_now();
    return;
  }
  events_until_loss_ = count;
}

void FaultyDevice::power_loss_now() {
  powered_ = false;
  events_until_loss_.reset();
}

void FaultyDevice::fail_reads(std::uint64_t lba, std::uint64_t blocks) { failing_reads_.push_back({lba, blocks}); }
void FaultyDevice::fail_writes_to_zone(std::uint32_t zone) { failing_write_zones_.push_back(zone); }
void FaultyDevice::fail_flushes(bool fail) { failing_flushes_ = fail; }
void FaultyDevice::clear_faults() {
  failing_reads_.clear();
  failing_write_zones_.clear();
  failing_flushes_ = false;
}

Status FaultyDevice::power_status() const { return powered_ ? Status::Ok() : power_lost(); }

void FaultyDevice::record(const Event& e) {
  const Geometry& g = inner_->geometry();
  switch (e.kind) {
    case Event::Kind::kWrite:
    case Event::Kind::kAppend: {
      ZoneRecord& z = zones_[e.zone];
      z.live_wp = std::max(z.live_wp, e.lba + e.blocks);
      z.unflushed_ends.push_back(z.live_wp);
      break;
    }
    case Event::Kind::kFlush:
      for (auto& z : zones_) {
        z.durable_wp = z.live_wp;
        z.unflushed_ends.clear();
        z.before_reset.reset();
      }
      break;
    case Event::Kind::kReset: {
      auto kept = std::move(zones_[e.zone].before_reset);
      zones_[e.zone] = ZoneRecord{g.zone_start(e.zone), g.zone_start(e.zone), false, {}, std::move(kept)};
      break;
    }
    case Event::Kind::kFinish:  // persistent at once, and with it the zone's reset
      zones_[e.zone].durable_full = true;
      zones_[e.zone].before_reset.reset();
      break;
    case Event::Kind::kOpen:
    case Event::Kind::kClose: break;
  }
  events_.push_back(e);
  if (events_until_loss_ && --*events_until_loss_ == 0) power_loss_now();
}

Result<std::vector<ZoneInfo>> FaultyDevice::report_zones(std::uint32_t first, std::uint32_t count) {
  NYADS_RETURN_IF_ERROR(power_status());
  return inner_->report_zones(first, count);
}

namespace {
FaultyDevice::Event::Kind kind_of(ZoneAction a) {
  switch (a) {
    case ZoneAction::kReset: return FaultyDevice::Event::Kind::kReset;
    case ZoneAction::kOpen: return FaultyDevice::Event::Kind::kOpen;
    case ZoneAction::kClose: return FaultyDevice::Event::Kind::kClose;
    case ZoneAction::kFinish: return FaultyDevice::Event::Kind::kFinish;
  }
  return FaultyDevice::Event::Kind::kReset;
}
}  // namespace

Status FaultyDevice::keep_before_reset(std::uint32_t zone) {
  ZoneRecord& z = zones_[zone];
  if (z.before_reset) return Status::Ok();
  const Geometry& g = inner_->geometry();
  ZoneRecord::BeforeReset b;
  b.wp = z.durable_wp;
  b.full = z.durable_full;
  const std::uint64_t blocks = z.durable_wp - g.zone_start(zone);
  b.data.resize(blocks * g.block_size);
  if (blocks > 0)
    NYADS_RETURN_IF_ERROR(
        SyncDevice(*inner_).read(g.zone_start(zone), static_cast<std::uint32_t>(blocks), b.data.data()));
  z.before_reset = std::move(b);
  return Status::Ok();
}

Status FaultyDevice::restore_before_reset(std::uint32_t zone, std::uint64_t new_blocks) {
  ZoneRecord& z = zones_[zone];
  const Geometry& g = inner_->geometry();
  const std::uint64_t start = g.zone_start(zone), old_blocks = z.before_reset->wp - start;
  // The old data, with what survived of the new writes over its first blocks; reads stop at
  // the old write pointer, as the table of the last flush says.
  AlignedBuffer image(std::max<std::uint64_t>(old_blocks, 1) * g.block_size);
  std::memcpy(image.data(), z.before_reset->data.data(), z.before_reset->data.size());
  const std::uint64_t overwritten = std::min(new_blocks, old_blocks);
  SyncDevice dev(*inner_);
  if (overwritten > 0) NYADS_RETURN_IF_ERROR(dev.read(start, static_cast<std::uint32_t>(overwritten), image.data()));
  NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kReset, zone));
  if (old_blocks > 0) NYADS_RETURN_IF_ERROR(dev.write(start, static_cast<std::uint32_t>(old_blocks), image.data()));
  if (z.before_reset->full) NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kFinish, zone));
  auto info = inner_->report_zones(zone, 1);
  if (info.ok() && is_open((*info)[0].state)) NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kClose, zone));
  z.live_wp = z.durable_wp = z.before_reset->wp;
  z.durable_full = z.before_reset->full;
  z.before_reset.reset();
  return Status::Ok();
}

Status FaultyDevice::manage_zone(ZoneAction action, std::uint32_t zone) {
  NYADS_RETURN_IF_ERROR(power_status());
  // A zone beyond the device is the inner device's error to report; nothing to keep of it.
  const bool on_device = zone < inner_->geometry().zone_count;
  if (action == ZoneAction::kReset && on_device) NYADS_RETURN_IF_ERROR(keep_before_reset(zone));
  NYADS_RETURN_IF_ERROR(inner_->manage_zone(action, zone));
  record({kind_of(action), zone, inner_->geometry().zone_start(zone), 0});
  return Status::Ok();
}

Status FaultyDevice::manage_all_zones(ZoneAction action) {
  NYADS_RETURN_IF_ERROR(power_status());
  auto before = inner_->report_zones(0, inner_->geometry().zone_count);
  if (!before.ok()) return before.status();
  if (action == ZoneAction::kReset)
    for (std::uint32_t z = 0; z < before->size(); ++z)
      if ((*before)[z].state != ZoneState::kEmpty) NYADS_RETURN_IF_ERROR(keep_before_reset(z));
  NYADS_RETURN_IF_ERROR(inner_->manage_all_zones(action));
  auto after = inner_->report_zones(0, inner_->geometry().zone_count);
  if (!after.ok()) return after.status();
  for (std::uint32_t z = 0; z < after->size() && powered_; ++z) {
    if ((*before)[z] != (*after)[z]) record({kind_of(action), z, (*after)[z].start, 0});
  }
  return Status::Ok();
}

Status FaultyDevice::submit(const IoRequest& r) {
  auto fail_here = [&](Status s) {
    local_.push_back({r.tag, std::move(s), 0});
    return Status::Ok();
  };
  if (!powered_) return fail_here(power_lost());
  const Geometry& g = inner_->geometry();
  if (r.op == IoOp::kRead) {
    for (auto [lba, n] : failing_reads_) {
      if (r.lba < lba + n && lba < r.lba + r.blocks)
        return fail_here(
            IoError("injected read error at blocks " + std::to_string(lba) + ".." + std::to_string(lba + n - 1)));
    }
  } else if (r.op == IoOp::kFlush) {
    if (failing_flushes_) return fail_here(IoError("injected flush error"));
  } else if (std::find(failing_write_zones_.begin(), failing_write_zones_.end(), g.zone_of(r.lba)) !=
             failing_write_zones_.end()) {
    return fail_here(IoError("injected write error in zone " + std::to_string(g.zone_of(r.lba))));
  }
  const std::uint64_t tag = next_inner_tag_++;
  IoRequest inner_request = r;
  inner_request.tag = tag;
  NYADS_RETURN_IF_ERROR(inner_->submit(inner_request));
  pending_.emplace(tag, Pending{r});
  return Status::Ok();
}

// Turns an inner completion into the caller's, recording what it did. A completion that
// arrives after the power failed never reached the host: it fails.
IoCompletion FaultyDevice::complete(const IoCompletion& ic) {
  auto it = pending_.find(ic.tag);
  const IoRequest r = it->second.request;
  pending_.erase(it);
  IoCompletion c{r.tag, ic.status, ic.lba};
  if (!powered_) {
    c.status = power_lost();
    return c;
  }
  if (!c.status.ok()) return c;
  const Geometry& g = inner_->geometry();
  switch (r.op) {
    case IoOp::kRead: break;
    case IoOp::kWrite: record({Event::Kind::kWrite, g.zone_of(r.lba), r.lba, r.blocks}); break;
    case IoOp::kAppend: record({Event::Kind::kAppend, g.zone_of(c.lba), c.lba, r.blocks}); break;
    case IoOp::kFlush: record({Event::Kind::kFlush, 0, 0, 0}); break;
  }
  return c;
}

std::size_t FaultyDevice::reap(std::span<IoCompletion> out, std::size_t min_count) {
  std::size_t n = 0;
  while (n < out.size() && !local_.empty()) {
    out[n++] = std::move(local_.front());
    local_.erase(local_.begin());
  }
  if (n == out.size() || inner_->in_flight() == 0) return n;
  std::vector<IoCompletion> got(out.size() - n);
  const std::size_t want = min_count > n ? min_count - n : 0;
  const std::size_t k = inner_->reap(got, want);
  for (std::size_t i = 0; i < k; ++i) out[n++] = complete(got[i]);
  return n;
}

Status FaultyDevice::rebuild_zone(std::uint32_t zone, std::uint64_t keep_blocks, bool full) {
  const Geometry& g = inner_->geometry();
  const std::uint64_t start = g.zone_start(zone);
  SyncDevice dev(*inner_);
  AlignedBuffer kept(keep_blocks * g.block_size);
  if (keep_blocks > 0) NYADS_RETURN_IF_ERROR(dev.read(start, static_cast<std::uint32_t>(keep_blocks), kept.data()));
  NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kReset, zone));
  if (keep_blocks > 0) NYADS_RETURN_IF_ERROR(dev.write(start, static_cast<std::uint32_t>(keep_blocks), kept.data()));
  if (full) NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kFinish, zone));
  // Close what the rewrite left open, as a power cycle does.
  auto info = inner_->report_zones(zone, 1);
  if (info.ok() && is_open((*info)[0].state)) NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kClose, zone));
  return Status::Ok();
}

Status FaultyDevice::power_cycle() { return power_cycle(PowerCycleOptions{}); }

Status FaultyDevice::power_cycle(const PowerCycleOptions& options) {
  powered_ = false;
  // Requests still in the inner device complete now, unacknowledged.
  std::vector<IoCompletion> got(64);
  while (inner_->in_flight() > 0) {
    const std::size_t k = inner_->reap(got, 1);
    for (std::size_t i = 0; i < k; ++i) local_.push_back(complete(got[i]));
  }
  std::mt19937_64 rng(options.seed);
  auto pick = [&rng](std::uint64_t lo, std::uint64_t hi) {  // uniform in [lo, hi]
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  };
  const Geometry& g = inner_->geometry();
  for (std::uint32_t zone = 0; zone < zones_.size(); ++zone) {
    ZoneRecord& z = zones_[zone];
    const bool reset_lost = options.lose_unflushed_resets && z.before_reset && pick(0, 1) == 1;
    std::uint64_t keep = z.durable_wp;
    std::size_t next_write = 0;  // index in unflushed_ends of the first write not kept whole
    if (options.keep_unflushed_prefix && !z.unflushed_ends.empty()) {
      next_write = pick(0, z.unflushed_ends.size());
      if (next_write > 0) keep = z.unflushed_ends[next_write - 1];
    }
    if (options.tear_writes && next_write < z.unflushed_ends.size()) {
      const std::uint64_t end = z.unflushed_ends[next_write];
      if (end > keep + 1) keep = pick(keep, end - 1);
    }
    if (reset_lost) {
      NYADS_RETURN_IF_ERROR(restore_before_reset(zone, keep - g.zone_start(zone)).with_context("power cycle"));
      z.unflushed_ends.clear();
      continue;
    }
    const bool changed = keep != z.live_wp;
    if (changed)
      NYADS_RETURN_IF_ERROR(rebuild_zone(zone, keep - g.zone_start(zone), z.durable_full).with_context("power cycle"));
    z.live_wp = z.durable_wp = keep;
    z.unflushed_ends.clear();
    z.before_reset.reset();
  }
  // After a power cycle no zone is open: close the ones the workload left open.
  auto report = inner_->report_zones(0, g.zone_count);
  if (!report.ok()) return report.status();
  for (const ZoneInfo& info : *report) {
    if (is_open(info.state)) NYADS_RETURN_IF_ERROR(inner_->manage_zone(ZoneAction::kClose, g.zone_of(info.start)));
  }
  powered_ = true;
  events_until_loss_.reset();
  return Status::Ok();
}

}  // namespace nyads
