// FaultyDevice: wraps any ZonedDevice for tests. It records every write, append, flush and
// zone action; simulates a power loss at a chosen point; and injects I/O errors on chosen
// zones or blocks.
//
// The power-loss model is a drive with a volatile write cache and block-atomic writes:
// what a zone held at the last completed flush survives; of what came after, a power cycle
// keeps nothing (the default) or, when asked, a prefix of each zone's later writes, cut at
// a write boundary or (tear) inside a write. Zone finishes are persistent when they complete;
// so are resets, unless a power cycle is asked to lose the ones no flush followed (the
// emulated backend's file makes a reset durable at the next flush): such a zone comes back as
// the last flush left it, its old data overwritten only by what of its later writes
// survived. LevelDB's fault_injection_test does the same for files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nyads/zoned_device.h"

namespace nyads {

class FaultyDevice : public ZonedDevice {
 public:
  struct Event {
    enum class Kind : std::uint8_t { kWrite, kAppend, kFlush, kReset, kOpen, kClose, kFinish };
    Kind kind;
    std::uint32_t zone = 0;  // not meaningful for kFlush
    std::uint64_t lba = 0;   // first block written (writes and appends)
    std::uint32_t blocks = 0;
  };

  struct PowerCycleOptions {
    // Keep, per zone, a random prefix of the writes completed since the last flush, instead
    // of dropping them all.
    bool keep_unflushed_prefix = false;
    // Let the cut fall inside a write (block granularity), not only between writes.
    bool tear_writes = false;
    std::uint64_t seed = 1;
    // Lose each zone reset that no flush (or finish of the zone) followed, with probability
    // 1/2 (seeded): the zone comes back as the last flush left it.
    bool lose_unflushed_resets = false;
  };

  explicit FaultyDevice(std::unique_ptr<ZonedDevice> inner);
  ~FaultyDevice() override;

  // Every completed mutation, in completion order (failed ones are not recorded).
  const std::vector<Event>& events() const { return events_; }

  // The power fails once `count` more events have been recorded: from then on every request
  // fails with kIoError ("power lost") and nothing reaches the inner device.
  void power_loss_after_events(std::uint64_t count);
  void power_loss_now();
  bool has_power() const { return powered_; }
  // Restores power. The inner device then holds exactly what survived, per the model above.
  Status power_cycle(const PowerCycleOptions& options);
  Status power_cycle();  // with the default options: every unflushed write is lost

  // Error injection, until clear_faults().
  void fail_reads(std::uint64_t lba, std::uint64_t blocks);
  void fail_writes_to_zone(std::uint32_t zone);
  void fail_flushes(bool fail);
  void clear_faults();

  ZonedDevice& inner() { return *inner_; }

  // ZonedDevice
  const Geometry& geometry() const override { return inner_->geometry(); }
  std::string backend() const override;
  std::vector<std::string> warnings() const override { return inner_->warnings(); }
  const std::string& name() const override { return inner_->name(); }
  Result<std::vector<ZoneInfo>> report_zones(std::uint32_t first, std::uint32_t count) override;
  Status manage_zone(ZoneAction action, std::uint32_t zone) override;
  Status manage_all_zones(ZoneAction action) override;
  Status submit(const IoRequest& request) override;
  std::size_t reap(std::span<IoCompletion> out, std::size_t min_count) override;
  std::uint32_t in_flight() const override { return inner_->in_flight() + static_cast<std::uint32_t>(local_.size()); }
  std::uint32_t queue_depth() const override { return inner_->queue_depth(); }
  std::size_t buffer_alignment() const override { return inner_->buffer_alignment(); }

 private:
  // What the wrapper knows of each zone: where its data ends now and at the last flush.
  struct ZoneRecord {
    std::uint64_t live_wp = 0;                  // block after the last completed write
    std::uint64_t durable_wp = 0;               // live_wp at the last completed flush (or reset)
    bool durable_full = false;                  // finished: persistent at completion
    std::vector<std::uint64_t> unflushed_ends;  // live_wp after each write since the flush
    // Reset since the last flush: what the zone held at that flush (blocks from its start,
    // and whether it was full), for a power cycle that loses the reset.
    struct BeforeReset {
      std::vector<std::uint8_t> data;
      std::uint64_t wp = 0;
      bool full = false;
    };
    std::optional<BeforeReset> before_reset{};
  };
  struct Pending {
    IoRequest request;  // as the caller submitted it (its tag, its buffer)
  };
  void record(const Event& event);
  void sync_zone_records();
  IoCompletion complete(const IoCompletion& inner_completion);
  Status power_status() const;
  Status rebuild_zone(std::uint32_t zone, std::uint64_t keep_blocks, bool full);
  // Before a reset of `zone` reaches the inner device: keeps what the zone held at the last
  // flush, unless an earlier reset since that flush kept it already.
  Status keep_before_reset(std::uint32_t zone);
  // A power cycle lost the reset: the zone as the last flush left it, overwritten by the
  // first `new_blocks` blocks written into it since the reset.
  Status restore_before_reset(std::uint32_t zone, std::uint64_t new_blocks);

  std::unique_ptr<ZonedDevice> inner_;
  std::vector<Event> events_;
  std::vector<ZoneRecord> zones_;
  std::unordered_map<std::uint64_t, Pending> pending_;  // requests in the inner device, by inner tag
  std::vector<IoCompletion> local_;                     // completions made here (faults, power loss)
  std::uint64_t next_inner_tag_ = 1;
  bool powered_ = true;
  std::optional<std::uint64_t> events_until_loss_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> failing_reads_;
  std::vector<std::uint32_t> failing_write_zones_;
  bool failing_flushes_ = false;
};

}  // namespace nyads
