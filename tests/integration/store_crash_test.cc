// Crash consistency: a random workload with flushes and checkpoints runs on the faulty device
// until the power fails after its k-th event, for every k; the device keeps what a drive with a
// volatile cache would (nothing unflushed, a prefix of it, or a torn write; and zone resets no
// flush followed lost half the time, as the emulated file may). After each loss: reopen, fsck is
// clean, every block reads as one of the values it may hold — the value it had at the last
// flush or FUA, or one written since — and never another namespace's data or garbage.
#include <cstdlib>

#include "crash_workload.h"
#include "fsck/fsck.h"
#include "store_harness.h"

namespace nyads {
namespace {

struct Outcome {
  std::uint64_t events = 0;  // events the whole workload produced (with no power loss)
  bool verified = false;
};

// Runs the workload of `seed`; with loss_after > 0 the power fails after that many events.
Outcome run_point(std::uint64_t seed, std::uint64_t loss_after, const FaultyDevice::PowerCycleOptions& pc,
                  std::string* failure) {
  auto inner = test::formatted_memory_device(16);
  FaultyDevice faulty(std::move(inner));
  test::CrashWorkload workload;
  {
    auto st = test::open_store(faulty);
    if (!st) {
      *failure = "open failed";
      return {};
    }
    *failure = workload.create_namespaces(*st);
    if (!failure->empty()) return {};
    const std::uint64_t base = faulty.events().size();
    if (loss_after > 0) faulty.power_loss_after_events(loss_after);
    *failure = workload.run(*st, seed, [&] { return faulty.has_power(); });
    if (!failure->empty()) return {};
    Outcome full;
    full.events = faulty.events().size() - base;
    if (loss_after == 0) return full;
  }  // the store goes away with the power: a crash
  // Power comes back (whether or not the workload reached the loss point before ending).
  Status pcs = faulty.power_cycle(pc);
  if (!pcs.ok()) {
    *failure = "power cycle: " + pcs.to_string();
    return {};
  }
  auto st = test::open_store(faulty);
  if (!st) {
    *failure = "reopen after the power loss failed";
    return {};
  }
  *failure = workload.verify(*st);
  if (!failure->empty()) return {};
  st.reset();
  auto report = fsck::check_volume(faulty, {});
  if (report.exit_code() != 0) {
    *failure = "fsck after recovery: " + fsck::to_text(report, true);
    return {};
  }
  return {0, true};
}

TEST(StoreCrash, EveryPowerLossPointRecoversFlushedDataAndOnlyOldOrNewBlocks) {
  const int scale = std::getenv("NYADS_CRASH_SCALE") ? std::atoi(std::getenv("NYADS_CRASH_SCALE")) : 1;
  // keep an unflushed prefix, tear a write, (seed), lose resets no flush followed (as the
  // emulated backend's file may).
  const FaultyDevice::PowerCycleOptions modes[] = {
      {false, false, 1, true}, {true, false, 2, true}, {false, true, 3, true}, {true, true, 4, true}};
  const std::uint64_t stride = test::CrashWorkload::kPointStride;
  std::uint64_t points = 0;
  // At least three workloads, and as many more as it takes to reach 1000 points per scale.
  const std::uint64_t wanted = 1000u * static_cast<std::uint64_t>(scale) / stride;
  for (std::uint64_t seed = 1; seed <= static_cast<std::uint64_t>(3 * scale) || points < wanted; ++seed) {
    std::string failure;
    const Outcome full = run_point(seed, 0, modes[0], &failure);
    ASSERT_TRUE(failure.empty()) << "seed " << seed << ": " << failure;
    ASSERT_GT(full.events, 20u);
    for (std::uint64_t k = 1 + seed % stride; k <= full.events; k += stride) {
      // Every point with the strict model; every third with a prefix kept or a torn write.
      for (int m = 0; m < 4; ++m) {
        if (m > 0 && (k + static_cast<std::uint64_t>(m)) % 3 != 0) continue;
        FaultyDevice::PowerCycleOptions pc = modes[m];
        pc.seed = seed * 1000 + k;
        const Outcome o = run_point(seed, k, pc, &failure);
        ASSERT_TRUE(o.verified) << "seed " << seed << ", power lost after event " << k << ", mode " << m << ": "
                                << failure;
        ++points;
      }
    }
  }
  std::printf("crash points verified: %llu\n", static_cast<unsigned long long>(points));
  EXPECT_GE(points, wanted);
}

// Power lost while a checkpoint resets the journal zones before its own replay start, before
// the flush that makes those resets last: the zones may come back with an older pass of the
// ring in them. Replay must end at such a zone, and the journal must go on around the ring
// afterwards (resetting it when it gets there) across more restarts, before any checkpoint
// would have cleared it; fsck stays clean.
TEST(StoreCrash, ResetsLostAfterACheckpointDoNotJamTheJournal) {
  StoreOptions o;
  o.checkpoint_after_journal_blocks = 1u << 30;  // only the ring's limit checkpoints
  std::uint32_t id = 0;
  auto fill = [&](Store& st, std::uint64_t from, int flushes) {
    for (int i = 0; i < flushes; ++i) {
      const std::uint64_t v = from + static_cast<std::uint64_t>(i);
      ASSERT_OK(st.write(id, (v % 64) * 4096, test::bytes_of(v, 4096)));
      ASSERT_OK(st.flush());
    }
  };
  // 256 zones: four journal zones of 192 blocks, a checkpoint forced every 480.
  auto session_one = [&](FaultyDevice& f, std::uint64_t loss_after) {
    auto st = test::open_store(f, o);
    id = st->create_namespace("j", 64 * 4096, 4096, true)->id;
    fill(*st, 0, 340);  // the journal is in its second zone: a checkpoint resets the first
    const std::uint64_t before = f.events().size();
    if (loss_after > 0) f.power_loss_after_events(loss_after);
    (void)st->checkpoint();
    return f.events().size() - before;
  };
  std::uint64_t checkpoint_events = 0;
  {
    FaultyDevice f(test::formatted_memory_device(256));
    checkpoint_events = session_one(f, 0);
  }
  ASSERT_GT(checkpoint_events, 2u);
  for (std::uint64_t k = 1; k <= checkpoint_events; ++k) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
      SCOPED_TRACE("power lost after checkpoint event " + std::to_string(k) + ", seed " + std::to_string(seed));
      FaultyDevice f(test::formatted_memory_device(256));
      session_one(f, k);
      ASSERT_OK(f.power_cycle({.keep_unflushed_prefix = seed % 2 == 0,
                               .tear_writes = false,
                               .seed = seed * 1000 + k,
                               .lose_unflushed_resets = true}));
      for (std::uint64_t round = 1; round <= 2; ++round) {
        auto st = test::open_store(f, o);
        ASSERT_TRUE(st) << "round " << round;
        fill(*st, 1000 * round, 600);  // around the ring, back into its first zone
        std::vector<std::uint8_t> got(4096);
        const std::uint64_t last = 1000 * round + 599;
        ASSERT_OK(st->read(id, (last % 64) * 4096, got));
        EXPECT_EQ(got, test::bytes_of(last, 4096));
      }  // each round ends in a crash
      auto report = fsck::check_volume(f, {});
      EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
    }
  }
}

}  // namespace
}  // namespace nyads
