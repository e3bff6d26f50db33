// The zoned-device conformance suite: the ZNS rules every backend must obey, asserted through
// the ZonedDevice interface. It runs in-process on the emulated backend (memory, file, and
// under the faulty wrapper), and — when NYADS_TEST_ZONED_DEVICES names kernel devices, as the
// VM runner does (tests/vm) — on /dev/nvme0n1 (zbd) and /dev/ng0n1 (nvme).
//
// Every test resets all zones first, so it needs the device to itself: never point
// NYADS_TEST_ZONED_DEVICES at a drive whose data you want.
#include <algorithm>
#include <functional>
#include <set>
#include <sstream>

#include "nyads/faulty_device.h"
#include "test_util.h"

namespace nyads {
namespace {

using test::pattern;

struct Backend {
  std::string name;
  // Opens the device (again, for reopen tests: the earlier handle is gone by then).
  std::function<Result<std::unique_ptr<ZonedDevice>>()> open;
  bool persistent = false;             // data survives closing and reopening
  bool reopen_is_power_cycle = false;  // reopening is a restart: open zones come back closed
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

std::string g_tempdir;  // for emulated files, made once per process

std::vector<Backend> backends() {
  std::vector<Backend> list;
  list.push_back({"emulated_memory",
                  [] {
                    auto d = EmulatedDevice::create_memory(test::small_config());
                    if (!d.ok()) return Result<std::unique_ptr<ZonedDevice>>(d.status());
                    return Result<std::unique_ptr<ZonedDevice>>(std::unique_ptr<ZonedDevice>(std::move(*d)));
                  },
                  false});
  list.push_back({"emulated_file",
                  [] {
                    const std::string path = g_tempdir + "/conformance.zns";
                    if (std::filesystem::exists(path)) return open_zoned_device(path);
                    auto d = EmulatedDevice::create_file(path, test::small_config());
                    if (!d.ok()) return Result<std::unique_ptr<ZonedDevice>>(d.status());
                    return Result<std::unique_ptr<ZonedDevice>>(std::unique_ptr<ZonedDevice>(std::move(*d)));
                  },
                  true, true});
  list.push_back({"faulty_over_emulated",
                  [] {
                    auto d = EmulatedDevice::create_memory(test::small_config());
                    if (!d.ok()) return Result<std::unique_ptr<ZonedDevice>>(d.status());
                    return Result<std::unique_ptr<ZonedDevice>>(
                        std::unique_ptr<ZonedDevice>(std::make_unique<FaultyDevice>(std::move(*d))));
                  },
                  false});
  if (const char* env = std::getenv("NYADS_TEST_ZONED_DEVICES")) {
    std::stringstream ss(env);
    std::string path;
    while (std::getline(ss, path, ',')) {
      if (path.empty()) continue;
      std::string name = path;
      std::replace_if(
          name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
      list.push_back({"device" + name, [path] { return open_zoned_device(path); }, true, false});
    }
  }
  return list;
}

class Conformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto d = GetParam().open();
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    dev_ = std::move(*d);
    g_ = dev_->geometry();
    ASSERT_OK(dev_->manage_all_zones(ZoneAction::kReset));
  }

  ZoneInfo zone(std::uint32_t z) {
    auto r = dev_->report_zones(z, 1);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? (*r)[0] : ZoneInfo{};
  }
  std::uint64_t start(std::uint32_t z) const { return g_.zone_start(z); }
  Status write(std::uint64_t lba, std::uint32_t blocks, std::uint64_t seed = 1) {
    auto b = pattern(lba, blocks, g_.block_size, seed);
    return SyncDevice(*dev_).write(lba, blocks, b.data());
  }
  // Writes the zone up to `blocks` blocks past its start, in max-I/O pieces.
  void fill_to(std::uint32_t z, std::uint64_t blocks) {
    std::uint64_t at = zone(z).write_pointer;
    while (at < start(z) + blocks) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(g_.max_io_blocks, start(z) + blocks - at));
      ASSERT_OK(write(at, n));
      at += n;
    }
  }
  Result<std::uint64_t> append(std::uint32_t z, std::uint32_t blocks) {
    auto b = pattern(0, blocks, g_.block_size, 7);
    return SyncDevice(*dev_).append(start(z), blocks, b.data());
  }
  Status read(std::uint64_t lba, std::uint32_t blocks, AlignedBuffer* out) {
    *out = AlignedBuffer(std::size_t{blocks} * g_.block_size);
    return SyncDevice(*dev_).read(lba, blocks, out->data());
  }

  std::unique_ptr<ZonedDevice> dev_;
  Geometry g_;
};

TEST_P(Conformance, GeometryIsConsistentWithTheZoneReport) {
  EXPECT_TRUE(g_.block_size == 512 || g_.block_size == 4096) << g_.block_size;
  EXPECT_GT(g_.zone_count, 3u);
  EXPECT_GT(g_.zone_capacity, 0u);
  EXPECT_LE(g_.zone_capacity, g_.zone_size);
  EXPECT_GT(g_.max_io_blocks, 0u);
  EXPECT_GT(g_.max_append_blocks, 0u);
  if (g_.max_active_zones != 0) {
    EXPECT_LE(g_.max_open_zones, g_.max_active_zones);
  }
  auto zones = dev_->report_zones(0, g_.zone_count);
  ASSERT_TRUE(zones.ok()) << zones.status().to_string();
  ASSERT_EQ(zones->size(), g_.zone_count);
  for (std::uint32_t z = 0; z < g_.zone_count; ++z) {
    EXPECT_EQ((*zones)[z].start, start(z));
    EXPECT_EQ((*zones)[z].write_pointer, start(z));
    EXPECT_EQ((*zones)[z].state, ZoneState::kEmpty);
    EXPECT_LE((*zones)[z].capacity, g_.zone_size);
  }
  // A report past the last zone is clipped; one starting past it is an error.
  auto tail = dev_->report_zones(g_.zone_count - 1, 10);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->size(), 1u);
  EXPECT_EQ(dev_->report_zones(g_.zone_count, 1).status().code(), Code::kOutOfRange);
}

TEST_P(Conformance, WriteAtTheWritePointerOpensTheZoneImplicitly) {
  ASSERT_OK(write(start(1), 4));
  ZoneInfo z = zone(1);
  EXPECT_EQ(z.write_pointer, start(1) + 4);
  EXPECT_EQ(z.state, ZoneState::kImplicitOpen);
  ASSERT_OK(write(start(1) + 4, 2));
  EXPECT_EQ(zone(1).write_pointer, start(1) + 6);
}

TEST_P(Conformance, WriteAwayFromTheWritePointerIsRejected) {
  ASSERT_OK(write(start(2), 4));
  EXPECT_CODE(write(start(2) + 8, 1), Code::kZoneInvalidWrite);  // ahead of it
  EXPECT_CODE(write(start(2), 1), Code::kZoneInvalidWrite);      // behind it
  EXPECT_CODE(write(start(3) + 1, 1), Code::kZoneInvalidWrite);  // an empty zone's middle
  EXPECT_EQ(zone(2).write_pointer, start(2) + 4);
  EXPECT_EQ(zone(3).state, ZoneState::kEmpty);
}

TEST_P(Conformance, AppendReturnsTheWritePointer) {
  auto first = append(4, 3);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(*first, start(4));
  auto second = append(4, 2);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(*second, start(4) + 3);
  EXPECT_EQ(zone(4).write_pointer, start(4) + 5);
  AlignedBuffer got;
  ASSERT_OK(read(start(4) + 3, 2, &got));
  auto want = pattern(0, 2, g_.block_size, 7);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size()));
}

// Many appends in flight to one zone: each lands somewhere distinct, all of them together
// fill the zone's first blocks, and each block holds the data of the append that reported it.
TEST_P(Conformance, ManyAppendsInFlightLandDistinctly) {
  const std::uint32_t n = std::min<std::uint32_t>(32, dev_->queue_depth());
  std::vector<AlignedBuffer> bufs;
  for (std::uint32_t i = 0; i < n; ++i) bufs.push_back(pattern(i, 1, g_.block_size, 99));
  for (std::uint32_t i = 0; i < n; ++i)
    ASSERT_OK(dev_->submit({IoOp::kAppend, start(5), 1, bufs[i].data(), i, {}, false}));
  std::vector<IoCompletion> done(n);
  std::size_t got = 0;
  while (got < n) got += dev_->reap(std::span(done).subspan(got), 1);
  std::set<std::uint64_t> where;
  std::vector<std::uint64_t> lba_of(n);
  for (const auto& c : done) {
    ASSERT_TRUE(c.status.ok()) << c.status.to_string();
    where.insert(c.lba);
    lba_of[c.tag] = c.lba;
  }
  ASSERT_EQ(where.size(), n);
  EXPECT_EQ(*where.begin(), start(5));
  EXPECT_EQ(*where.rbegin(), start(5) + n - 1);
  for (std::uint32_t i = 0; i < n; ++i) {
    AlignedBuffer b;
    ASSERT_OK(read(lba_of[i], 1, &b));
    EXPECT_EQ(0, std::memcmp(b.data(), bufs[i].data(), g_.block_size)) << "append " << i << " at " << lba_of[i];
  }
}

TEST_P(Conformance, ManyReadsAndWritesInFlight) {
  // Writes queued to several zones at once, in order within each zone.
  const std::uint32_t zones = 4, per_zone = 8;
  std::vector<AlignedBuffer> bufs;
  std::uint64_t tag = 0;
  for (std::uint32_t k = 0; k < per_zone; ++k)
    for (std::uint32_t z = 0; z < zones; ++z) bufs.push_back(pattern(start(z) + k, 1, g_.block_size, 5));
  for (std::uint32_t k = 0; k < per_zone; ++k)
    for (std::uint32_t z = 0; z < zones; ++z, ++tag)
      ASSERT_OK(dev_->submit({IoOp::kWrite, start(z) + k, 1, bufs[tag].data(), tag, {}, false}));
  std::vector<IoCompletion> done(zones * per_zone);
  std::size_t got = 0;
  while (got < done.size()) got += dev_->reap(std::span(done).subspan(got), 1);
  for (const auto& c : done) EXPECT_TRUE(c.status.ok()) << c.tag << ": " << c.status.to_string();
  for (std::uint32_t z = 0; z < zones; ++z) {
    EXPECT_EQ(zone(z).write_pointer, start(z) + per_zone);
    AlignedBuffer b;
    ASSERT_OK(read(start(z), per_zone, &b));
    auto want = pattern(start(z), per_zone, g_.block_size, 5);
    EXPECT_EQ(0, std::memcmp(b.data(), want.data(), want.size())) << "zone " << z;
  }
}

TEST_P(Conformance, FillingTheZoneToCapacityMakesItFull) {
  const ZoneInfo before = zone(6);
  fill_to(6, before.capacity);
  ZoneInfo z = zone(6);
  EXPECT_EQ(z.state, ZoneState::kFull);
  EXPECT_EQ(z.write_pointer, start(6) + z.capacity);
  EXPECT_CODE(write(z.write_pointer, 1), Code::kZoneFull);
  EXPECT_CODE(append(6, 1).status(), Code::kZoneFull);
}

TEST_P(Conformance, WritesAndAppendsPastTheCapacityAreRejected) {
  const std::uint64_t cap = zone(7).capacity;
  fill_to(7, cap - 2);
  EXPECT_CODE(write(start(7) + cap - 2, 3), Code::kZoneBoundary);
  EXPECT_CODE(append(7, 3).status(), Code::kZoneBoundary);
  EXPECT_EQ(zone(7).write_pointer, start(7) + cap - 2);
  ASSERT_OK(write(start(7) + cap - 2, 2));
  EXPECT_EQ(zone(7).state, ZoneState::kFull);
}

TEST_P(Conformance, AppendAboveTheSizeLimitIsRejected) {
  if (g_.max_append_blocks >= g_.zone_capacity) GTEST_SKIP() << "append limit covers a whole zone";
  EXPECT_CODE(append(8, g_.max_append_blocks + 1).status(), Code::kInvalidArgument);
  EXPECT_EQ(zone(8).state, ZoneState::kEmpty);
  auto ok = append(8, g_.max_append_blocks);
  EXPECT_TRUE(ok.ok()) << ok.status().to_string();
}

TEST_P(Conformance, ZoneStateTransitions) {
  // empty -> explicitly open -> closed (with data) -> explicitly open -> full -> empty
  ASSERT_OK(dev_->manage_zone(ZoneAction::kOpen, 1));
  EXPECT_EQ(zone(1).state, ZoneState::kExplicitOpen);
  ASSERT_OK(write(start(1), 1));
  EXPECT_EQ(zone(1).state, ZoneState::kExplicitOpen);  // writing keeps it explicitly open
  ASSERT_OK(dev_->manage_zone(ZoneAction::kClose, 1));
  EXPECT_EQ(zone(1).state, ZoneState::kClosed);
  ASSERT_OK(write(start(1) + 1, 1));  // a closed zone reopens implicitly
  EXPECT_EQ(zone(1).state, ZoneState::kImplicitOpen);
  ASSERT_OK(dev_->manage_zone(ZoneAction::kClose, 1));
  ASSERT_OK(dev_->manage_zone(ZoneAction::kOpen, 1));
  EXPECT_EQ(zone(1).state, ZoneState::kExplicitOpen);
  ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 1));
  ZoneInfo full = zone(1);
  EXPECT_EQ(full.state, ZoneState::kFull);
  EXPECT_EQ(full.write_pointer, start(1) + full.capacity);
  EXPECT_CODE(write(start(1) + 2, 1), Code::kZoneFull);
  ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 1));
  EXPECT_EQ(zone(1).state, ZoneState::kEmpty);
  EXPECT_EQ(zone(1).write_pointer, start(1));
  // A reset zone reads as zeros and takes writes at its start again.
  AlignedBuffer b;
  ASSERT_OK(read(start(1), 2, &b));
  EXPECT_TRUE(test::all_zero(b));
  ASSERT_OK(write(start(1), 1));
}

TEST_P(Conformance, ForbiddenTransitionsAreRejected) {
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kClose, 2), Code::kInvalidZoneTransition);  // empty
  ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 2));
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kOpen, 2), Code::kInvalidZoneTransition);   // full
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kClose, 2), Code::kInvalidZoneTransition);  // full
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kReset, g_.zone_count), Code::kOutOfRange);
}

// A zone opened and closed without data is closed, not empty: it still holds an active
// resource (as on QEMU's ZNS drive) until it is reset or finished.
TEST_P(Conformance, ClosingAnOpenZoneWithoutDataLeavesItClosed) {
  ASSERT_OK(dev_->manage_zone(ZoneAction::kOpen, 3));
  ASSERT_OK(dev_->manage_zone(ZoneAction::kClose, 3));
  EXPECT_EQ(zone(3).state, ZoneState::kClosed);
  EXPECT_EQ(zone(3).write_pointer, start(3));
  ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 3));
  EXPECT_EQ(zone(3).state, ZoneState::kEmpty);
}

TEST_P(Conformance, TheOpenZoneLimitHolds) {
  if (g_.max_open_zones == 0 || g_.max_open_zones + 1 >= g_.zone_count) GTEST_SKIP() << "no usable open-zone limit";
  for (std::uint32_t z = 0; z < g_.max_open_zones; ++z) ASSERT_OK(dev_->manage_zone(ZoneAction::kOpen, z));
  const std::uint32_t extra = g_.max_open_zones;
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kOpen, extra), Code::kTooManyOpenZones);
  // Every open zone is explicitly open, so a write cannot open another one implicitly either.
  EXPECT_CODE(write(start(extra), 1), Code::kTooManyOpenZones);
  EXPECT_EQ(zone(extra).state, ZoneState::kEmpty);
  ASSERT_OK(dev_->manage_zone(ZoneAction::kClose, 0));
  EXPECT_OK(write(start(extra), 1));
}

// With every open resource held by implicitly opened zones, a write to another zone closes
// one of them (as a drive with automatic zone transitions does) — until the active limit.
TEST_P(Conformance, ImplicitOpensCloseOthersUntilTheActiveLimit) {
  if (g_.max_open_zones == 0 || g_.max_active_zones <= g_.max_open_zones || g_.max_active_zones + 1 >= g_.zone_count)
    GTEST_SKIP() << "needs an active limit above the open limit";
  for (std::uint32_t z = 0; z < g_.max_active_zones; ++z) ASSERT_OK(write(start(z), 1));
  std::uint32_t open = 0, closed = 0;
  for (std::uint32_t z = 0; z < g_.max_active_zones; ++z) {
    open += is_open(zone(z).state);
    closed += zone(z).state == ZoneState::kClosed;
  }
  EXPECT_EQ(open, g_.max_open_zones);
  EXPECT_EQ(closed, g_.max_active_zones - g_.max_open_zones);
  const std::uint32_t extra = g_.max_active_zones;
  EXPECT_CODE(write(start(extra), 1), Code::kTooManyActiveZones);
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kOpen, extra), Code::kTooManyActiveZones);
  // Finishing a zone frees its active resource.
  ASSERT_OK(dev_->manage_zone(ZoneAction::kFinish, 0));
  EXPECT_OK(write(start(extra), 1));
}

TEST_P(Conformance, ReadsOfWrittenAndUnwrittenBlocks) {
  ASSERT_OK(write(start(9), 8, 42));
  AlignedBuffer b;
  ASSERT_OK(read(start(9), 8, &b));
  auto want = pattern(start(9), 8, g_.block_size, 42);
  EXPECT_EQ(0, std::memcmp(b.data(), want.data(), want.size()));
  ASSERT_OK(read(start(9) + 8, 4, &b));  // past the write pointer: zeros
  EXPECT_TRUE(test::all_zero(b));
  ASSERT_OK(read(start(10), 4, &b));  // an empty zone: zeros
  EXPECT_TRUE(test::all_zero(b));
  EXPECT_CODE(read(start(10) - 2, 4, &b), Code::kZoneBoundary);
}

TEST_P(Conformance, FinishAllAndResetAllTouchOnlyTheZonesTheyApplyTo) {
  ASSERT_OK(write(start(1), 1));
  ASSERT_OK(write(start(2), 1));
  ASSERT_OK(dev_->manage_zone(ZoneAction::kClose, 2));
  ASSERT_OK(dev_->manage_all_zones(ZoneAction::kFinish));
  EXPECT_EQ(zone(1).state, ZoneState::kFull);
  EXPECT_EQ(zone(2).state, ZoneState::kFull);
  EXPECT_EQ(zone(3).state, ZoneState::kEmpty);
  ASSERT_OK(dev_->manage_all_zones(ZoneAction::kReset));
  for (std::uint32_t z : {1u, 2u, 3u}) EXPECT_EQ(zone(z).state, ZoneState::kEmpty) << z;
}

TEST_P(Conformance, FlushThenReopenKeepsData) {
  if (!GetParam().persistent) GTEST_SKIP() << "a memory device does not outlive its handle";
  ASSERT_OK(write(start(11), 16, 11));
  auto at = append(12, 4);
  ASSERT_TRUE(at.ok());
  ASSERT_OK(SyncDevice(*dev_).flush());
  dev_.reset();
  auto d = GetParam().open();
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  dev_ = std::move(*d);
  EXPECT_EQ(zone(11).write_pointer, start(11) + 16);
  if (GetParam().reopen_is_power_cycle) {
    EXPECT_EQ(zone(11).state, ZoneState::kClosed);  // open zones come back closed
  } else {
    EXPECT_TRUE(is_active(zone(11).state)) << zone_state_name(zone(11).state);
  }
  EXPECT_EQ(zone(12).write_pointer, start(12) + 4);
  AlignedBuffer b;
  ASSERT_OK(read(start(11), 16, &b));
  auto want = pattern(start(11), 16, g_.block_size, 11);
  EXPECT_EQ(0, std::memcmp(b.data(), want.data(), want.size()));
}

TEST_P(Conformance, BadArgumentsGetClearErrors) {
  AlignedBuffer b(g_.block_size);
  auto one = [&](IoRequest r) {
    EXPECT_OK(dev_->submit(r));
    IoCompletion c;
    while (dev_->reap(std::span(&c, 1), 1) == 0) {
    }
    EXPECT_FALSE(c.status.message().empty());
    return c.status;
  };
  EXPECT_CODE(one({IoOp::kRead, g_.total_blocks(), 1, b.data(), 1, {}, false}), Code::kOutOfRange);
  EXPECT_CODE(one({IoOp::kWrite, g_.total_blocks() + 5, 1, b.data(), 2, {}, false}), Code::kOutOfRange);
  EXPECT_CODE(one({IoOp::kRead, 0, 0, b.data(), 3, {}, false}), Code::kInvalidArgument);
  EXPECT_CODE(one({IoOp::kWrite, 0, 1, nullptr, 4, {}, false}), Code::kInvalidArgument);
  EXPECT_CODE(one({IoOp::kAppend, start(1) + 1, 1, b.data(), 5, {}, false}), Code::kInvalidArgument);
  EXPECT_CODE(one({IoOp::kRead, 0, g_.max_io_blocks + 1, b.data(), 6, {}, false}), Code::kInvalidArgument);
  EXPECT_CODE(dev_->manage_zone(ZoneAction::kOpen, g_.zone_count + 3), Code::kOutOfRange);
}

TEST_P(Conformance, TheQueueRefusesMoreThanItsDepth) {
  const std::uint32_t depth = dev_->queue_depth();
  std::vector<AlignedBuffer> bufs;
  for (std::uint32_t i = 0; i <= depth; ++i) bufs.emplace_back(g_.block_size);
  std::uint32_t accepted = 0;
  Status last;
  for (std::uint32_t i = 0; i <= depth; ++i) {
    last = dev_->submit({IoOp::kRead, start(i % g_.zone_count), 1, bufs[i].data(), i, {}, false});
    if (!last.ok()) break;
    ++accepted;
  }
  EXPECT_EQ(accepted, depth);
  EXPECT_EQ(last.code(), Code::kBusy);
  std::vector<IoCompletion> done(depth);
  std::size_t got = 0;
  while (got < accepted) got += dev_->reap(std::span(done).subspan(got), 1);
  EXPECT_EQ(dev_->in_flight(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, Conformance, ::testing::ValuesIn(backends()),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace nyads

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  nyads::test::TempDir dir;
  nyads::g_tempdir = dir.file("");
  return RUN_ALL_TESTS();
}
