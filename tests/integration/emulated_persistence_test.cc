// The emulated file backend persists like a drive with a volatile write cache: what was
// flushed survives a crash or a kill; the geometry lives in the file; one process at a time.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "zns/emulated_format.h"

namespace nyads {
namespace {

using test::pattern;

class EmulatedPersistence : public test::EmulatedFileTest {
 protected:
  // The file as it is now, for crash() to put back after the device is closed: what a power
  // cut leaves when every page written so far landed (closing writes the table again).
  std::string copy_ = dir_.file("at-the-crash");
  void snapshot() { std::filesystem::copy_file(path_, copy_, std::filesystem::copy_options::overwrite_existing); }
  void crash() { std::filesystem::rename(copy_, path_); }

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

// A flush of a version 2 file syncs its table with the blocks written since the last sync,
// once; opening checks those blocks. These tests take the file as it is at a moment (a copy:
// what a power cut would leave if every page had landed), close the device, and put the copy
// back; damage_block then overwrites a block the table names, as if it had not landed.
class EmulatedUnsyncedBlocks : public EmulatedPersistence {
 protected:
  void damage_block(std::uint64_t lba) {
    const auto layout = emulated_format::layout_for(test::small_config());
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.data_offset + lba * g_.block_size + 100));
    f.put('\x5a');
  }
  std::uint64_t wp(ZonedDevice& d, std::uint32_t zone) {
    return (*d.report_zones(zone, 1))[0].write_pointer - g_.zone_start(zone);
  }
};

TEST_F(EmulatedUnsyncedBlocks, AZoneWhoseBlocksDidNotLandGoesBackWhereTheyBegan) {
  auto a = pattern(0, 8, g_.block_size, 7);
  {
    auto d = create();
    ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
    ASSERT_OK(SyncDevice(*d).flush());  // zone 0: blocks 0..3, synced
    ASSERT_OK(SyncDevice(*d).write(4, 4, a.data() + 4 * g_.block_size));
    ASSERT_OK(SyncDevice(*d).write(g_.zone_start(1), 2, a.data()));
    ASSERT_OK(SyncDevice(*d).flush());  // the table names zone 0's 4..7 and zone 1's 0..1
    snapshot();
  }
  crash();
  damage_block(5);
  {
    auto r = reopen();
    ASSERT_TRUE(r);
    EXPECT_EQ(wp(*r, 0), 4u) << "zone 0's blocks of the last flush did not all land";
    EXPECT_EQ((*r->report_zones(0, 1))[0].state, ZoneState::kClosed);
    EXPECT_EQ(wp(*r, 1), 2u) << "zone 1's did: they stay";
    AlignedBuffer got(4 * std::size_t{g_.block_size});
    ASSERT_OK(SyncDevice(*r).read(0, 4, got.data()));
    EXPECT_EQ(0, std::memcmp(got.data(), a.data(), got.size())) << "what an earlier flush synced is kept";
    ASSERT_OK(SyncDevice(*r).read(4, 4, got.data()));
    EXPECT_TRUE(test::all_zero(got));
    // The zone takes writes where it went back to. These write the very bytes the table
    // names, so only a table that says where the zone went back to keeps them unflushed.
    ASSERT_OK(SyncDevice(*r).write(4, 4, a.data() + 4 * g_.block_size));
    snapshot();
  }
  crash();
  auto again = reopen();
  ASSERT_TRUE(again);
  EXPECT_EQ(wp(*again, 0), 4u) << "writes no flush followed came back: opening did not write the undone zone down";
  EXPECT_EQ(wp(*again, 1), 2u);
}

TEST_F(EmulatedUnsyncedBlocks, AReadOnlyOpenChecksTooAndWritesNothing) {
  auto a = pattern(0, 4, g_.block_size, 8);
  {
    auto d = create();
    ASSERT_OK(SyncDevice(*d).write(g_.zone_start(2), 4, a.data()));
    ASSERT_OK(SyncDevice(*d).flush());
    snapshot();
  }
  crash();
  damage_block(g_.zone_start(2));
  auto tables = [&] {
    const auto layout = emulated_format::layout_for(test::small_config());
    std::ifstream f(path_, std::ios::binary);
    std::string bytes(2 * layout.table_slot_bytes, '\0');
    f.seekg(static_cast<std::streamoff>(layout.table_offset));
    f.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
  };
  const std::string before = tables();
  {
    auto r = open_zoned_device(path_, {.read_only = true});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(wp(**r, 2), 0u);
    EXPECT_EQ((*(*r)->report_zones(2, 1))[0].state, ZoneState::kEmpty);
  }
  EXPECT_EQ(tables(), before) << "a read-only open wrote the zone table";
  auto w = reopen();
  ASSERT_TRUE(w);
  EXPECT_EQ(wp(*w, 2), 0u);
}

// Closing (and opening) writes the table again once its blocks are known to have landed:
// damage to them afterwards is not taken for a lost write, which would undo the zone silently.
TEST_F(EmulatedUnsyncedBlocks, BlocksKnownToHaveLandedAreNotCheckedAgain) {
  auto a = pattern(0, 4, g_.block_size, 11);
  {
    auto d = create();
    ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
    ASSERT_OK(SyncDevice(*d).flush());
  }  // a clean close
  damage_block(2);
  auto r = reopen();
  ASSERT_TRUE(r);
  EXPECT_EQ(wp(*r, 0), 4u) << "a damaged block of a closed device is the reader's to find, not a lost write";
}

// After a flush, a zone reset that no flush followed, and writes into the zone: the old bytes
// the newest table names are overwritten in the file. The crash brings the zone back empty
// (as if the reset had held), not as a mix of old and new bytes under the old write pointer.
// (A zone the newest table does not name comes back as format.md §1.3 says for version 1.)
TEST_F(EmulatedUnsyncedBlocks, AResetZoneRewrittenBeforeACrashComesBackEmpty) {
  auto a = pattern(0, 4, g_.block_size, 9);
  auto b = pattern(0, 2, g_.block_size, 10);
  {
    auto d = create();
    ASSERT_OK(SyncDevice(*d).write(g_.zone_start(3), 4, a.data()));
    ASSERT_OK(SyncDevice(*d).write(g_.zone_start(4), 4, a.data()));
    ASSERT_OK(SyncDevice(*d).flush());
    ASSERT_OK(d->manage_zone(ZoneAction::kReset, 3));
    ASSERT_OK(SyncDevice(*d).write(g_.zone_start(3), 2, b.data()));
    snapshot();
  }
  crash();
  auto r = reopen();
  ASSERT_TRUE(r);
  EXPECT_EQ(wp(*r, 3), 0u);
  EXPECT_EQ(wp(*r, 4), 4u) << "another zone of the same flush is not undone with it";
  AlignedBuffer got(4 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(*r).read(g_.zone_start(4), 4, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), got.size()));
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
  auto d = create();                                            // generation 1 -> slot 1
  EXPECT_TRUE(d->warnings().empty()) << d->warnings().front();  // slot 0, never written, is not damage
  auto a = pattern(0, 4, g_.block_size, 1);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  ASSERT_OK(SyncDevice(*d).flush());  // generation 2 -> slot 0
  d.reset();                          // generation 3 -> slot 1 (write pointer 4)
  d = EmulatedDevice::open_file(path_).value();
  ASSERT_OK(SyncDevice(*d).write(4, 4, a.data()));
  ASSERT_OK(SyncDevice(*d).flush());  // generation 4 -> slot 0
  snapshot();
  d.reset();
  crash();
  const auto layout = emulated_format::layout_for(test::small_config());
  {  // Damage slot 0, the newest: the older slot 1 (write pointer 4) must be used.
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.table_offset + 40));
    f.put('\x7f');
  }
  auto r = reopen();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r->report_zones(0, 1))[0].write_pointer, 4u);
  // Said, since the damaged slot may have been the newer one: a rollback is never silent.
  const auto said = r->warnings();
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("zone table slot 0 ("), std::string::npos) << said[0];
  EXPECT_NE(said[0].find("opened with the other slot, generation 3"), std::string::npos) << said[0];
  r.reset();
  {  // Damage slot 1 too: the device cannot be opened, and says why.
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.table_offset + layout.table_slot_bytes + 40));
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
