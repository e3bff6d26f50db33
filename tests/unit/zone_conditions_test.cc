// Zones a failing drive degrades: read-only zones refuse writes but serve reads, offline
// zones refuse everything; the emulated backend reports the same errors a drive would.
#include "test_util.h"

namespace nyads {
namespace {

TEST(ZoneConditions, ReadOnlyAndOfflineZones) {
  auto d = EmulatedDevice::create_memory(test::small_config());
  ASSERT_TRUE(d.ok());
  EmulatedDevice& dev = **d;
  const Geometry g = dev.geometry();
  auto b = test::pattern(0, 2, g.block_size);
  ASSERT_OK(SyncDevice(dev).write(0, 2, b.data()));
  ASSERT_OK(dev.set_zone_condition(0, ZoneState::kReadOnly));
  EXPECT_CODE(SyncDevice(dev).write(2, 1, b.data()), Code::kZoneReadOnly);
  EXPECT_CODE(SyncDevice(dev).append(0, 1, b.data()).status(), Code::kZoneReadOnly);
  AlignedBuffer got(2 * std::size_t{g.block_size});
  ASSERT_OK(SyncDevice(dev).read(0, 2, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), b.data(), b.size()));
  EXPECT_CODE(dev.manage_zone(ZoneAction::kReset, 0), Code::kInvalidZoneTransition);
  EXPECT_CODE(dev.manage_zone(ZoneAction::kOpen, 0), Code::kInvalidZoneTransition);

  ASSERT_OK(dev.set_zone_condition(1, ZoneState::kOffline));
  EXPECT_CODE(SyncDevice(dev).read(g.zone_start(1), 1, got.data()), Code::kZoneOffline);
  EXPECT_CODE(SyncDevice(dev).write(g.zone_start(1), 1, b.data()), Code::kZoneOffline);
  EXPECT_CODE(dev.manage_zone(ZoneAction::kFinish, 1), Code::kInvalidZoneTransition);
  // reset-all (NVMe select-all) passes over read-only and offline zones
  ASSERT_OK(dev.manage_all_zones(ZoneAction::kReset));
  EXPECT_EQ((*dev.report_zones(0, 1))[0].state, ZoneState::kReadOnly);
  EXPECT_EQ((*dev.report_zones(1, 1))[0].state, ZoneState::kOffline);
  EXPECT_CODE(dev.set_zone_condition(2, ZoneState::kFull), Code::kInvalidArgument);
}

TEST(ZoneConditions, ConditionsPersistInTheFile) {
  test::TempDir dir;
  const std::string path = dir.file("d.zns");
  {
    auto d = EmulatedDevice::create_file(path, test::small_config());
    ASSERT_TRUE(d.ok());
    ASSERT_OK((*d)->set_zone_condition(5, ZoneState::kOffline));
  }
  auto r = open_zoned_device(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*(*r)->report_zones(5, 1))[0].state, ZoneState::kOffline);
}

}  // namespace
}  // namespace nyads
