// The emulated file backend persists like a drive with a volatile write cache: what was
// flushed survives a crash or a kill; the geometry lives in the file; one process at a time.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "test_util.h"
#include "zns/emulated_format.h"

namespace nyads {
namespace {

using test::pattern;

class EmulatedPersistence : public test::EmulatedFileTest {
 protected:
  std::unique_ptr<ZonedDevice> reopen() {
    auto d = open_zoned_device(path_);
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    return d.ok() ? std::move(*d) : nullptr;
  }
};

TEST_F(EmulatedPersistence, ReopeningNeedsNoGeometry) {
  auto d = create();
  d.reset();
  auto again = reopen();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->backend(), "emulated");
  const Geometry& g = again->geometry();
  EXPECT_EQ(g.zone_count, g_.zone_count);
  EXPECT_EQ(g.zone_size, g_.zone_size);
  EXPECT_EQ(g.zone_capacity, g_.zone_capacity);
  EXPECT_EQ(g.max_open_zones, g_.max_open_zones);
  EXPECT_EQ(g.max_active_zones, g_.max_active_zones);
  EXPECT_EQ(g.max_append_blocks, g_.max_append_blocks);
}

TEST_F(EmulatedPersistence, UnflushedWritesAreLostAndFlushedOnesKept) {
  auto d = create();
  auto a = pattern(0, 4, g_.block_size, 1);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  ASSERT_OK(SyncDevice(*d).flush());
  auto b = pattern(4, 4, g_.block_size, 1);
  ASSERT_OK(SyncDevice(*d).write(4, 4, b.data()));
  ASSERT_OK(SyncDevice(*d).write(g_.zone_start(3), 4, b.data()));
  d.reset();  // closed without a flush: like a crash after the last flush
  auto r = reopen();
  auto zones = r->report_zones(0, 4);
  ASSERT_TRUE(zones.ok());
  EXPECT_EQ((*zones)[0].write_pointer, 4u);
  EXPECT_EQ((*zones)[0].state, ZoneState::kClosed);
  EXPECT_EQ((*zones)[3].state, ZoneState::kEmpty);
  AlignedBuffer got(4 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(*r).read(0, 4, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), a.size()));
  ASSERT_OK(SyncDevice(*r).read(4, 4, got.data()));
  EXPECT_TRUE(test::all_zero(got));  // the lost writes read as zeros, never as old bytes
}

// A reset is durable at the next flush, like a write: closed before it, the zone comes back
// as the last flush left it, data and all; after one, empty.
TEST_F(EmulatedPersistence, ResetIsDurableAtTheNextFlush) {
  auto a = pattern(0, 4, g_.block_size, 1);
  {
    auto d = create();
    ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
    ASSERT_OK(SyncDevice(*d).flush());
    ASSERT_OK(d->manage_zone(ZoneAction::kReset, 0));
    EXPECT_EQ((*d->report_zones(0, 1))[0].state, ZoneState::kEmpty);
    AlignedBuffer got(4 * std::size_t{g_.block_size});
    ASSERT_OK(SyncDevice(*d).read(0, 4, got.data()));
    EXPECT_TRUE(test::all_zero(got)) << "a reset zone reads as zeros, whatever the file holds";
  }  // closed without a flush: a crash
  {
    auto r = reopen();
    EXPECT_EQ((*r->report_zones(0, 1))[0].write_pointer, 4u);
    AlignedBuffer got(4 * std::size_t{g_.block_size});
    ASSERT_OK(SyncDevice(*r).read(0, 4, got.data()));
    EXPECT_EQ(0, std::memcmp(got.data(), a.data(), a.size())) << "the reset was lost with the power, the data was not";
    ASSERT_OK(r->manage_zone(ZoneAction::kReset, 0));
    ASSERT_OK(SyncDevice(*r).flush());
  }
  auto r = reopen();
  EXPECT_EQ((*r->report_zones(0, 1))[0].state, ZoneState::kEmpty);
}

// A child process writes, flushes, writes more, and is killed with SIGKILL.
TEST_F(EmulatedPersistence, FlushedDataSurvivesSigkill) {
  create().reset();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto d = open_zoned_device(path_);
    if (!d.ok()) _exit(1);
    SyncDevice s(**d);
    auto a = pattern(0, 16, g_.block_size, 9);
    if (!s.write(0, 16, a.data()).ok() || !s.flush().ok()) _exit(2);
    auto b = pattern(16, 8, g_.block_size, 9);
    if (!s.write(16, 8, b.data()).ok()) _exit(3);
    char c = 'x';
    if (write(ready[1], &c, 1) != 1) _exit(4);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  close(ready[0]);
  close(ready[1]);
  auto r = reopen();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r->report_zones(0, 1))[0].write_pointer, 16u);
  AlignedBuffer got(16 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(*r).read(0, 16, got.data()));
  auto want = pattern(0, 16, g_.block_size, 9);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size()));
}

TEST_F(EmulatedPersistence, ASecondOpenIsRefusedWhileTheFirstHoldsIt) {
  auto d = create();
  auto second = open_zoned_device(path_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().message();
  d.reset();
  EXPECT_TRUE(open_zoned_device(path_).ok());
}

TEST_F(EmulatedPersistence, CreateRefusesAnExistingFileUnlessOverwriting) {
  create().reset();
  auto again = EmulatedDevice::create_file(path_, test::small_config());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_TRUE(EmulatedDevice::create_file(path_, test::small_config(), true).ok());
}

TEST_F(EmulatedPersistence, ATornTableSlotFallsBackToTheOther) {
  auto d = create();
  auto a = pattern(0, 4, g_.block_size, 1);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  ASSERT_OK(SyncDevice(*d).flush());   // generation 2 -> slot 0
  ASSERT_OK(SyncDevice(*d).write(4, 4, a.data()));
  ASSERT_OK(SyncDevice(*d).flush());   // generation 3 -> slot 1
  d.reset();
  const auto layout = emulated_format::layout_for(test::small_config());
  {  // Damage slot 1, the newest: the older slot 0 (write pointer 4) must be used.
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.table_offset + layout.table_slot_bytes + 40));
    f.put('\x7f');
  }
  auto r = reopen();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r->report_zones(0, 1))[0].write_pointer, 4u);
  r.reset();
  {  // Damage slot 0 too: the device cannot be opened, and says why.
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.table_offset + 40));
    f.put('\x7f');
  }
  auto broken = open_zoned_device(path_);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), Code::kCorruption);
  EXPECT_NE(broken.status().message().find("both zone table slots"), std::string::npos) << broken.status().message();
}

TEST_F(EmulatedPersistence, OpeningSomethingElseSaysWhatIsSupported) {
  const std::string other = dir_.file("not-a-device");
  std::ofstream(other) << "hello";
  auto r = open_zoned_device(other);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotSupported);
  EXPECT_NE(r.status().message().find("emulated zoned device file"), std::string::npos) << r.status().message();
  auto dir = open_zoned_device("/dev/null");
  EXPECT_EQ(dir.status().code(), Code::kNotSupported);
  EXPECT_EQ(open_zoned_device(dir_.file("missing")).status().code(), Code::kNotFound);
}

TEST_F(EmulatedPersistence, ReadOnlyOpenRefusesWrites) {
  create().reset();
  auto r = open_zoned_device(path_, {.read_only = true});
  ASSERT_TRUE(r.ok());
  auto a = pattern(0, 1, g_.block_size, 1);
  EXPECT_CODE(SyncDevice(**r).write(0, 1, a.data()), Code::kInvalidArgument);
  EXPECT_CODE((*r)->manage_zone(ZoneAction::kReset, 0), Code::kInvalidArgument);
}

}  // namespace
}  // namespace nyads
