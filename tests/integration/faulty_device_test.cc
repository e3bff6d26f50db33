// The faulty wrapper itself: what survives a simulated power loss, and injected errors.
#include "nyads/faulty_device.h"

#include <algorithm>
#include <set>

#include "test_util.h"

namespace nyads {
namespace {

using test::pattern;

class FaultyDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto inner = EmulatedDevice::create_memory(test::small_config());
    ASSERT_TRUE(inner.ok());
    dev_ = std::make_unique<FaultyDevice>(std::move(*inner));
    g_ = dev_->geometry();
  }
  Status write(std::uint64_t lba, std::uint32_t blocks, std::uint64_t seed = 1) {
    auto b = pattern(lba, blocks, g_.block_size, seed);
    return SyncDevice(*dev_).write(lba, blocks, b.data());
  }
  Status flush() { return SyncDevice(*dev_).flush(); }
  std::uint64_t wp(std::uint32_t z) { return (*dev_->report_zones(z, 1))[0].write_pointer; }
  ZoneState state(std::uint32_t z) { return (*dev_->report_zones(z, 1))[0].state; }
  bool holds(std::uint64_t lba, std::uint32_t blocks, std::uint64_t seed = 1) {
    AlignedBuffer b(std::size_t{blocks} * g_.block_size);
    if (!SyncDevice(*dev_).read(lba, blocks, b.data()).ok()) return false;
    auto want = pattern(lba, blocks, g_.block_size, seed);
    return std::memcmp(b.data(), want.data(), want.size()) == 0;
  }

  std::unique_ptr<FaultyDevice> dev_;
  Geometry g_;
};

TEST_F(FaultyDeviceTest, RecordsEveryMutationInCompletionOrder) {
  ASSERT_OK(write(0, 2));
  auto b = pattern(0, 1, g_.block_size);
  ASSERT_TRUE(SyncDevice(*dev_).append(g_.zone_start(1), 1, b.data()).ok());
  ASSERT_OK(flush());
  ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 2));
  ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 2));
  using K = FaultyDevice::Event::Kind;
  const auto& e = dev_->events();
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].kind, K::kWrite);
  EXPECT_EQ(e[0].blocks, 2u);
  EXPECT_EQ(e[1].kind, K::kAppend);
  EXPECT_EQ(e[1].lba, g_.zone_start(1));
  EXPECT_EQ(e[2].kind, K::kFlush);
  EXPECT_EQ(e[3].kind, K::kFinish);
  EXPECT_EQ(e[4].kind, K::kReset);
  EXPECT_EQ(e[4].zone, 2u);
}

TEST_F(FaultyDeviceTest, PowerLossDropsWhatWasNotFlushed) {
  ASSERT_OK(write(0, 4, 1));
  ASSERT_OK(write(g_.zone_start(1), 4, 1));
  ASSERT_OK(flush());
  ASSERT_OK(write(4, 4, 2));                 // unflushed, in a zone with flushed data
  ASSERT_OK(write(g_.zone_start(2), 4, 2));  // unflushed, a zone of its own
  dev_->power_loss_now();
  EXPECT_FALSE(dev_->has_power());
  EXPECT_CODE(write(8, 1), Code::kIoError);  // a dead device answers nothing
  EXPECT_CODE(dev_->report_zones(0, 1).status(), Code::kIoError);
  ASSERT_OK(dev_->power_cycle());
  EXPECT_EQ(wp(0), 4u);
  EXPECT_EQ(wp(1), g_.zone_start(1) + 4);
  EXPECT_EQ(wp(2), g_.zone_start(2));
  EXPECT_EQ(state(2), ZoneState::kEmpty);
  EXPECT_EQ(state(0), ZoneState::kClosed);  // nothing is open after a power cycle
  EXPECT_TRUE(holds(0, 4, 1));
  EXPECT_TRUE(holds(g_.zone_start(1), 4, 1));
  // The dropped range reads as zeros and takes new writes.
  AlignedBuffer z(4 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(*dev_).read(4, 4, z.data()));
  EXPECT_TRUE(test::all_zero(z));
  ASSERT_OK(write(4, 1, 3));
}

TEST_F(FaultyDeviceTest, PowerLossAfterACountOfEvents) {
  dev_->power_loss_after_events(3);
  ASSERT_OK(write(0, 1));
  ASSERT_OK(flush());
  ASSERT_OK(write(1, 1));  // the third event: recorded, acknowledged, then the power fails
  EXPECT_FALSE(dev_->has_power());
  EXPECT_CODE(write(2, 1), Code::kIoError);
  ASSERT_OK(dev_->power_cycle());
  EXPECT_EQ(wp(0), 1u);  // only what the flush covered
  EXPECT_TRUE(dev_->has_power());
}

TEST_F(FaultyDeviceTest, KeepingAPrefixCutsAtWriteBoundaries) {
  ASSERT_OK(write(0, 2));
  ASSERT_OK(flush());
  for (int i = 0; i < 5; ++i) ASSERT_OK(write(2 + 3 * i, 3));
  std::set<std::uint64_t> seen;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    // Rebuild the same unflushed history each round.
    ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 0));
    ASSERT_OK(write(0, 2));
    ASSERT_OK(flush());
    for (int i = 0; i < 5; ++i) ASSERT_OK(write(2 + 3 * i, 3));
    dev_->power_loss_now();
    ASSERT_OK(dev_->power_cycle({.keep_unflushed_prefix = true, .tear_writes = false, .seed = seed}));
    const std::uint64_t kept = wp(0);
    EXPECT_EQ((kept - 2) % 3, 0u) << kept;  // whole writes only
    EXPECT_LE(kept, 17u);
    EXPECT_TRUE(holds(0, static_cast<std::uint32_t>(kept)));
    seen.insert(kept);
  }
  EXPECT_GT(seen.size(), 3u);  // the cut really moves
}

TEST_F(FaultyDeviceTest, TearingCutsInsideAWrite) {
  std::set<std::uint64_t> seen;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 0));
    ASSERT_OK(write(0, 4));
    ASSERT_OK(flush());
    ASSERT_OK(write(4, 8));  // the only unflushed write
    dev_->power_loss_now();
    ASSERT_OK(dev_->power_cycle({.keep_unflushed_prefix = false, .tear_writes = true, .seed = seed}));
    const std::uint64_t kept = wp(0);
    EXPECT_GE(kept, 4u);
    EXPECT_LT(kept, 12u);  // never the whole torn write
    EXPECT_TRUE(holds(0, static_cast<std::uint32_t>(kept)));
    seen.insert(kept);
  }
  EXPECT_GT(seen.size(), 3u);
}

TEST_F(FaultyDeviceTest, ResetsAndFinishesPersistWithoutAFlush) {
  ASSERT_OK(write(0, 4));
  ASSERT_OK(write(g_.zone_start(1), 4));
  ASSERT_OK(flush());
  ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 0));
  ASSERT_OK(write(g_.zone_start(1) + 4, 2));  // unflushed, then the zone is finished
  ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 1));
  dev_->power_loss_now();
  ASSERT_OK(dev_->power_cycle());
  EXPECT_EQ(state(0), ZoneState::kEmpty);
  EXPECT_EQ(state(1), ZoneState::kFull);
  EXPECT_TRUE(holds(g_.zone_start(1), 4));
  // The unflushed blocks before the finish did not survive: they read as zeros.
  AlignedBuffer z(2 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(*dev_).read(g_.zone_start(1) + 4, 2, z.data()));
  EXPECT_TRUE(test::all_zero(z));
}

// Asked to, a power cycle loses resets no flush followed: the zone comes back as the last
// flush left it (here, full), its first blocks overwritten by what survived of the writes made
// into it since; a reset a flush followed stays.
TEST_F(FaultyDeviceTest, ResetsNoFlushFollowedCanBeLost) {
  ASSERT_OK(write(0, 4));
  ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 0));
  ASSERT_OK(write(g_.zone_start(1), 4));
  ASSERT_OK(flush());
  ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 1));
  ASSERT_OK(flush());  // zone 1's reset is durable
  std::set<std::uint64_t> outcomes;
  for (std::uint64_t seed = 1; seed <= 16; ++seed) {
    // Zone 0 is full of pattern(0, 4); each round resets it and writes 2 new blocks.
    ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 0));
    auto fresh = pattern(0, 2, g_.block_size, 100 + seed);
    ASSERT_OK(SyncDevice(*dev_).write(0, 2, fresh.data()));
    dev_->power_loss_now();
    ASSERT_OK(dev_->power_cycle(
        {.keep_unflushed_prefix = true, .tear_writes = false, .seed = seed, .lose_unflushed_resets = true}));
    EXPECT_EQ(state(1), ZoneState::kEmpty) << "a flushed reset is never lost";
    if (state(0) != ZoneState::kFull) {  // the reset survived, the unflushed writes maybe
      outcomes.insert(wp(0));
      EXPECT_LE(wp(0), 2u);
      ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 0));
    } else {  // lost: full again, pattern(0, 4) but where the new writes reached the media
      AlignedBuffer got(4 * std::size_t{g_.block_size});
      ASSERT_OK(SyncDevice(*dev_).read(0, 4, got.data()));
      auto old = pattern(0, 4, g_.block_size, 1);
      const bool old_head = std::memcmp(got.data(), old.data(), 2 * g_.block_size) == 0;
      const bool new_head = std::memcmp(got.data(), fresh.data(), 2 * g_.block_size) == 0;
      EXPECT_TRUE(old_head || new_head) << "a whole write survives or none of it";
      EXPECT_EQ(0, std::memcmp(got.data() + 2 * g_.block_size, old.data() + 2 * g_.block_size, 2 * g_.block_size))
          << "the rest is the old data";
      outcomes.insert(100 + (new_head ? 1 : 0));
      ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 0));
    }
    auto old = pattern(0, 4, g_.block_size, 1);
    ASSERT_OK(SyncDevice(*dev_).write(0, 4, old.data()));
    ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 0));
    ASSERT_OK(flush());
  }
  EXPECT_TRUE(outcomes.count(100) || outcomes.count(101)) << "some resets were lost";
  EXPECT_TRUE(std::any_of(outcomes.begin(), outcomes.end(), [](std::uint64_t o) { return o < 100; }))
      << "and some kept";
}

TEST_F(FaultyDeviceTest, InFlightWritesAtPowerLossFailUnacknowledged) {
  ASSERT_OK(write(0, 1));
  ASSERT_OK(flush());
  dev_->power_loss_after_events(1);
  std::vector<AlignedBuffer> bufs;
  for (int i = 0; i < 4; ++i) bufs.push_back(pattern(1 + i, 1, g_.block_size));
  for (int i = 0; i < 4; ++i)
    ASSERT_OK(dev_->submit({IoOp::kWrite, 1u + i, 1, bufs[i].data(), std::uint64_t(i), {}, false}));
  std::vector<IoCompletion> done(4);
  std::size_t got = 0;
  while (got < 4) got += dev_->reap(std::span(done).subspan(got), 1);
  int acknowledged = 0;
  for (auto& c : done) acknowledged += c.status.ok();
  EXPECT_EQ(acknowledged, 1);
  ASSERT_OK(dev_->power_cycle());
  EXPECT_EQ(wp(0), 1u);
}

TEST_F(FaultyDeviceTest, InjectedErrorsHitOnlyTheirTargets) {
  ASSERT_OK(write(0, 8));
  dev_->fail_reads(4, 2);
  AlignedBuffer b(2 * std::size_t{g_.block_size});
  EXPECT_CODE(SyncDevice(*dev_).read(3, 2, b.data()), Code::kIoError);
  EXPECT_OK(SyncDevice(*dev_).read(0, 2, b.data()));
  dev_->fail_writes_to_zone(1);
  EXPECT_CODE(write(g_.zone_start(1), 1), Code::kIoError);
  EXPECT_OK(write(g_.zone_start(2), 1));
  dev_->fail_flushes(true);
  EXPECT_CODE(flush(), Code::kIoError);
  dev_->clear_faults();
  EXPECT_OK(flush());
  EXPECT_OK(write(g_.zone_start(1), 1));
  EXPECT_OK(SyncDevice(*dev_).read(3, 2, b.data()));
}

TEST_F(FaultyDeviceTest, WorksOverAFileBackedDevice) {
  test::TempDir dir;
  auto inner = EmulatedDevice::create_file(dir.file("f.zns"), test::small_config());
  ASSERT_TRUE(inner.ok()) << inner.status().to_string();
  FaultyDevice dev(std::move(*inner));
  auto b = pattern(0, 4, g_.block_size);
  ASSERT_OK(SyncDevice(dev).write(0, 4, b.data()));
  ASSERT_OK(SyncDevice(dev).flush());
  ASSERT_OK(SyncDevice(dev).write(4, 4, b.data()));
  dev.power_loss_now();
  ASSERT_OK(dev.power_cycle());
  EXPECT_EQ((*dev.report_zones(0, 1))[0].write_pointer, 4u);
}

}  // namespace
}  // namespace nyads
