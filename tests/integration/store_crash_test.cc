// Crash consistency: a random workload with flushes and checkpoints runs on the faulty device
// until the power fails after its k-th event, for every k; the device keeps what a drive with a volatile cache
// would (nothing unflushed, a prefix of it, or a torn write; and in the two modes that tear
// nothing, zone resets no flush followed lost half the time, as the emulated file may). After each loss: reopen, fsck is
// clean, every block reads as one of the values it may hold — the value it had at the last
// flush or FUA, or one written since — and never another namespace's data or garbage.
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <set>

#include "fsck/fsck.h"
#include "store_harness.h"

namespace nyads {
namespace {

constexpr std::uint32_t kNamespaces = 2;
constexpr std::uint64_t kBlocks = 160;  // per namespace, 4 KiB each
constexpr int kOps = 90;

// One block's possible contents, as the 64-bit tag stamped in it (0 = zeros).
struct BlockModel {
  std::set<std::uint64_t> candidates{0};
};

// A block's bytes: pseudo-random from its tag, which its first 8 bytes carry, so a block read
// back names the one candidate it can be (checking every candidate's bytes was most of the
// suite's time once sweeps gave blocks dozens of candidates).
std::vector<std::uint8_t> block_bytes(std::uint64_t tag) {
  std::vector<std::uint8_t> b(4096, 0);
  if (tag == 0) return b;
  // Every 8 bytes differ, and differ between tags (a byte-wise generator took half the
  // suite's time: every point replays its workload, and sweeps write whole namespaces).
  for (std::uint64_t i = 0; i < 512; ++i) {
    const std::uint64_t word = i == 0 ? tag : (tag * 0x9E3779B97F4A7C15ull) ^ (i * 0xC2B2AE3D27D4EB4Full);
    std::memcpy(b.data() + i * 8, &word, 8);
  }
  return b;
}

// The tag a block read back holds, if it is one of `candidates`' bytes exactly.
std::optional<std::uint64_t> tag_of(const std::vector<std::uint8_t>& got, const std::set<std::uint64_t>& candidates) {
  std::uint64_t tag = 0;
  std::memcpy(&tag, got.data(), 8);
  if (!candidates.count(tag) || block_bytes(tag) != got) return std::nullopt;
  return tag;
}

struct Outcome {
  std::uint64_t events = 0;  // events the whole workload produced (with no power loss)
  bool verified = false;
};

// Runs the workload of `seed`; with loss_after > 0 the power fails after that many events.
Outcome run_point(std::uint64_t seed, std::uint64_t loss_after, const FaultyDevice::PowerCycleOptions& pc, std::string* failure) {
  auto inner = test::formatted_memory_device(16);
  FaultyDevice faulty(std::move(inner));
  std::vector<std::vector<BlockModel>> model(kNamespaces, std::vector<BlockModel>(kBlocks));
  std::uint32_t ids[kNamespaces];
  {
    auto st = test::open_store(faulty);
    if (!st) {
      *failure = "open failed";
      return {};
    }
    // Thin: on a device this small, promises would not leave room for both.
    for (std::uint32_t i = 0; i < kNamespaces; ++i) ids[i] = st->create_namespace("ns" + std::to_string(i), kBlocks * 4096, 4096, true)->id;
    const std::uint64_t base = faulty.events().size();
    if (loss_after > 0) faulty.power_loss_after_events(loss_after);
    std::mt19937_64 rng(seed);
    std::uint64_t tag = seed << 32;
    bool powered = true;
    for (int op = 0; op < kOps && powered; ++op) {
      const std::uint32_t n = static_cast<std::uint32_t>(rng() % kNamespaces);
      const std::uint64_t first = rng() % kBlocks;
      const std::uint64_t count = std::min<std::uint64_t>(1 + rng() % 8, kBlocks - first);
      const int kind = static_cast<int>(rng() % 10);
      Status s;
      if (kind < 6 && rng() % 16 == 0) {  // a sweep: the whole namespace rewritten, no flush
        // (Two sweeps between commits empty the zones the first one filled: zones no durable
        // record names, reset at once with their pending records dropped.)
        for (std::uint64_t b = 0; b < kBlocks && s.ok(); b += 32) {
          std::vector<std::uint8_t> data;
          for (std::uint64_t k = 0; k < 32; ++k) {
            model[n][b + k].candidates.insert(++tag);
            auto bytes = block_bytes(tag);
            data.insert(data.end(), bytes.begin(), bytes.end());
          }
          s = st->write(ids[n], b * 4096, data);
        }
      } else if (kind < 6) {  // write (sometimes FUA)
        const bool fua = rng() % 6 == 0;
        std::vector<std::uint8_t> data;
        std::vector<std::uint64_t> tags;
        for (std::uint64_t b = 0; b < count; ++b) {
          tags.push_back(++tag);
          auto bytes = block_bytes(tag);
          data.insert(data.end(), bytes.begin(), bytes.end());
        }
        for (std::uint64_t b = 0; b < count; ++b) model[n][first + b].candidates.insert(tags[b]);
        s = st->write(ids[n], first * 4096, data, fua);
        if (s.ok() && fua)
          for (std::uint64_t b = 0; b < count; ++b) model[n][first + b].candidates = {tags[b]};
      } else if (kind < 8) {  // trim
        for (std::uint64_t b = 0; b < count; ++b) model[n][first + b].candidates.insert(0);
        s = st->trim(ids[n], first * 4096, count * 4096);
      } else {  // flush, or a checkpoint (which commits first): every block's latest value is now its only one
        // A checkpoint holds the maps, so later recoveries replay over a checkpoint with
        // extents (opened without reading them: the extent index, store_loading.cc).
        s = rng() % 3 == 0 ? st->checkpoint() : st->flush();
        if (s.ok()) {
          // What each block holds now is what the last write or trim put there: recover it
          // by reading (the store is up), then pin it.
          for (std::uint32_t i = 0; i < kNamespaces; ++i)
            for (std::uint64_t b = 0; b < kBlocks; ++b) {
              std::vector<std::uint8_t> got(4096);
              if (!st->read(ids[i], b * 4096, got).ok()) break;
              if (auto t = tag_of(got, model[i][b].candidates)) model[i][b].candidates = {*t};
            }
        }
      }
      if (!s.ok()) {
        if (faulty.has_power()) {
          *failure = "op " + std::to_string(op) + " failed with power on: " + s.to_string();
          return {};
        }
        powered = false;
      }
    }
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
  for (std::uint32_t i = 0; i < kNamespaces; ++i) {
    for (std::uint64_t b = 0; b < kBlocks; ++b) {
      std::vector<std::uint8_t> got(4096);
      Status s = st->read(ids[i], b * 4096, got);
      if (!s.ok()) {
        *failure = "ns" + std::to_string(i) + " block " + std::to_string(b) + ": " + s.to_string();
        return {};
      }
      if (!tag_of(got, model[i][b].candidates)) {
        *failure = "ns" + std::to_string(i) + " block " + std::to_string(b) + " holds neither its flushed value nor a later one";
        return {};
      }
    }
  }
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
      {false, false, 1, true}, {true, false, 2, true}, {false, true, 3, false}, {true, true, 4, false}};
  std::uint64_t points = 0;
  // At least three workloads, and as many more as it takes to reach 1000 points per scale.
  const std::uint64_t wanted = 1000u * static_cast<std::uint64_t>(scale);
  for (std::uint64_t seed = 1; seed <= static_cast<std::uint64_t>(3 * scale) || points < wanted; ++seed) {
    std::string failure;
    const Outcome full = run_point(seed, 0, modes[0], &failure);
    ASSERT_TRUE(failure.empty()) << "seed " << seed << ": " << failure;
    ASSERT_GT(full.events, 20u);
    for (std::uint64_t k = 1; k <= full.events; ++k) {
      // Every point with the strict model; every third with a prefix kept or a torn write.
      for (int m = 0; m < 4; ++m) {
        if (m > 0 && (k + static_cast<std::uint64_t>(m)) % 3 != 0) continue;
        FaultyDevice::PowerCycleOptions pc = modes[m];
        pc.seed = seed * 1000 + k;
        const Outcome o = run_point(seed, k, pc, &failure);
        ASSERT_TRUE(o.verified) << "seed " << seed << ", power lost after event " << k << ", mode " << m << ": " << failure;
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
      ASSERT_OK(f.power_cycle({.keep_unflushed_prefix = seed % 2 == 0, .tear_writes = false, .seed = seed * 1000 + k, .lose_unflushed_resets = true}));
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
