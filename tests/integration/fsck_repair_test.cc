// fsck.nyads repairs on volumes the store wrote, damaged the ways a crash or a bad disk would:
// a damaged data block (the namespace is quarantined, the others stay usable), extents that
// point at blocks a zone no longer holds (dropped), a damaged journal block with good ones
// after it (the journal is kept up to it). After each repair: fsck is clean and the store
// opens and serves what survived.
#include <fstream>

#include "fsck/fsck.h"
#include "nyads/volume.h"
#include "store_harness.h"
#include "zns/emulated_format.h"

namespace nyads {
namespace {

using test::bytes_of;

struct Volume {
  test::TempDir dir;
  std::string path = dir.file("v.img");
  format::Superblock sb;

  // A new volume; `work` runs on a store that then crashes (no close): the journal keeps it.
  template <typename Work>
  void make(Work&& work) {
    auto d = EmulatedDevice::create_file(path, test::store_config());
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(mkfs::format_volume(**d, {}).ok());
    auto st = Store::open(std::move(*d));
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    sb = (*st)->superblock();
    work(**st);
  }
  std::unique_ptr<ZonedDevice> device() {
    auto d = open_zoned_device(path);
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    return std::move(*d);
  }
  fsck::Report check(bool repair, bool scrub) {
    auto d = device();
    return fsck::check_volume(*d, {repair, scrub, nullptr});
  }
  std::unique_ptr<Store> open() {
    auto st = Store::open(device());
    EXPECT_TRUE(st.ok()) << st.status().to_string();
    return st.ok() ? std::move(*st) : nullptr;
  }
  // Flips a byte of device block `lba` in the file.
  void poke(std::uint64_t lba, std::size_t byte) { test::flip_byte(path, test::store_config(), lba, byte); }
  std::uint64_t data_zone_start(std::uint32_t i) const {
    return test::store_config().geometry().zone_start(sb.data_zones.first + i);
  }
};

bool has(const fsck::Report& r, const std::string& structure, const std::string& text, bool fixed) {
  for (const auto& p : r.problems)
    if (p.structure == structure && p.message.find(text) != std::string::npos && p.fixed == fixed) return true;
  return false;
}

TEST(FsckRepair, DamagedDataQuarantinesItsNamespaceAndTheOthersStayUsable) {
  Volume v;
  std::uint32_t a = 0, b = 0;
  v.make([&](Store& st) {
    a = st.create_namespace("a", 1 << 20)->id;  // written first: the first data zone
    ASSERT_OK(st.write(a, 0, bytes_of(1, 16384)));
    ASSERT_OK(st.flush());
    b = st.create_namespace("b", 1 << 20)->id;
    ASSERT_OK(st.write(b, 0, bytes_of(2, 16384)));
    ASSERT_OK(st.flush());
  });
  v.poke(v.data_zone_start(0) + 2, 100);  // a's block 2

  auto before = v.check(false, true);
  EXPECT_EQ(before.exit_code(), 4) << fsck::to_text(before, true);
  EXPECT_TRUE(has(before, "data", "namespace 'a' block 2: checksum mismatch", false)) << fsck::to_text(before, false);

  auto repaired = v.check(true, true);
  EXPECT_EQ(repaired.exit_code(), 1) << fsck::to_text(repaired, true);
  EXPECT_TRUE(has(repaired, "data", "repaired: namespace 'a' quarantined", true)) << fsck::to_text(repaired, false);

  auto after = v.check(false, true);
  EXPECT_EQ(after.exit_code(), 0) << fsck::to_text(after, true);  // the known damage is a warning now

  auto st = v.open();
  ASSERT_TRUE(st);
  auto info = st->find_namespace("a");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->quarantined);
  std::vector<std::uint8_t> got(16384);
  Status quarantined = st->read(a, 0, got);
  EXPECT_EQ(quarantined.code(), Code::kIoError);
  EXPECT_NE(quarantined.message().find("quarantined"), std::string::npos) << quarantined.message();
  ASSERT_OK(st->read(b, 0, got));
  EXPECT_TRUE(got == bytes_of(2, 16384));
  ASSERT_OK(st->write(b, 16384, bytes_of(3, 4096)));
  ASSERT_OK(st->close());
}

// Repairs made by one rebuilt checkpoint are asked as one question that names each of them:
// asked one by one, a "no" to the first (dropping the journal after a damaged block) and a
// "yes" to the second once carried out both.
TEST(FsckRepair, RepairsMadeTogetherAreAskedTogether) {
  Volume v;
  v.make([&](Store& st) {
    for (std::uint8_t i = 1; i <= 2; ++i) {  // a, then b
      auto id = st.create_namespace(i == 1 ? "a" : "b", 1 << 20)->id;
      ASSERT_OK(st.write(id, 0, bytes_of(i, 16384)));
      ASSERT_OK(st.flush());
    }
  });
  v.poke(v.data_zone_start(0) + 2, 100);  // a's block 2
  // b's block 2 (b writes its own zone): its commit, the last, was made durable with its data
  // by one flush, so its damage ends the journal there.
  v.poke(v.data_zone_start(1) + 2, 100);
  std::vector<std::string> asked;
  auto check_answering = [&](bool answer) {
    asked.clear();
    auto d = v.device();
    return fsck::check_volume(*d, {false, true, [&](const fsck::Problem& p) {
                                     asked.push_back(p.message);
                                     return answer;
                                   }});
  };

  auto declined = check_answering(false);
  ASSERT_EQ(asked.size(), 1u) << fsck::to_text(declined, false);
  EXPECT_NE(asked[0].find("namespace 'a' quarantined"), std::string::npos) << asked[0];
  EXPECT_NE(asked[0].find("the journal is kept up to the damaged block"), std::string::npos) << asked[0];
  EXPECT_EQ(declined.exit_code(), 4) << fsck::to_text(declined, true);
  for (const auto& p : declined.problems) EXPECT_FALSE(p.fixed) << p.message;
  EXPECT_EQ(v.check(false, true).exit_code(), 4);  // nothing was written

  auto accepted = check_answering(true);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_TRUE(has(accepted, "data", "repaired: namespace 'a' quarantined", true)) << fsck::to_text(accepted, false);
  EXPECT_TRUE(has(accepted, "journal", "repaired: the journal is kept up to the damaged block", true))
      << fsck::to_text(accepted, false);
  EXPECT_EQ(v.check(false, true).exit_code(), 0);
}

// A daemon killed after the cleaner reset a zone, before the reset's own journal record: the
// journal still holds records naming the zone's old blocks, but later records moved or
// overwrote every one of them. That volume is consistent: fsck finds nothing to repair.
TEST(FsckRepair, SupersededExtentsIntoAResetZoneAreNotErrors) {
  Volume v;
  std::uint32_t a = 0;
  const std::size_t zone_bytes = 768 << 10;
  v.make([&](Store& st) {
    a = st.create_namespace("a", 4 << 20)->id;
    ASSERT_OK(st.write(a, 0, bytes_of(4, zone_bytes)));  // fills the first data zone
    ASSERT_OK(st.flush());
    ASSERT_OK(st.write(a, 0, bytes_of(5, zone_bytes)));  // every block of it overwritten elsewhere
    ASSERT_OK(st.flush());
  });
  {
    auto d = v.device();
    auto zone = d->report_zones(v.sb.data_zones.first, 1);
    ASSERT_TRUE(zone.ok());
    if ((*zone)[0].write_pointer != (*zone)[0].start)
      ASSERT_OK(d->manage_zone(ZoneAction::kReset, v.sb.data_zones.first));
    ASSERT_OK(SyncDevice(*d).flush());  // a reset is durable at the next flush
  }
  auto report = v.check(false, false);
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  auto st = v.open();
  ASSERT_TRUE(st);
  std::vector<std::uint8_t> got(zone_bytes);
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_TRUE(got == bytes_of(5, zone_bytes));
  ASSERT_OK(st->close());
}

TEST(FsckRepair, ExtentsIntoAResetZoneAreDropped) {
  Volume v;
  std::uint32_t a = 0;
  const std::size_t zone_bytes = 768 << 10;  // store_config(): 768 KiB writable per zone
  v.make([&](Store& st) {
    a = st.create_namespace("a", 4 << 20)->id;
    ASSERT_OK(st.write(a, 0, bytes_of(4, 3 * zone_bytes)));  // three zones, in order
    ASSERT_OK(st.flush());
    // A later commit: the one above is then not the journal's last, whose data replay would
    // read back and, missing, take for data the crash lost (format.md §2.4).
    ASSERT_OK(st.write(a, 3 * zone_bytes, bytes_of(5, 4096)));
    ASSERT_OK(st.flush());
  });
  {  // The second zone loses its data behind the store's back.
    auto d = v.device();
    ASSERT_OK(d->manage_zone(ZoneAction::kReset, v.sb.data_zones.first + 1));
    ASSERT_OK(SyncDevice(*d).flush());  // a reset is durable at the next flush
  }
  auto before = v.check(false, false);
  EXPECT_EQ(before.exit_code(), 4) << fsck::to_text(before, true);
  EXPECT_TRUE(has(before, "map", "live at device blocks", false)) << fsck::to_text(before, false);

  auto repaired = v.check(true, false);
  EXPECT_EQ(repaired.exit_code(), 1) << fsck::to_text(repaired, true);
  auto after = v.check(false, true);
  EXPECT_EQ(after.exit_code(), 0) << fsck::to_text(after, true);

  auto st = v.open();
  ASSERT_TRUE(st);
  const auto want = bytes_of(4, 3 * zone_bytes);
  std::vector<std::uint8_t> got(3 * zone_bytes);
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + zone_bytes, want.begin())) << "the first zone's data";
  EXPECT_TRUE(std::all_of(got.begin() + zone_bytes, got.begin() + 2 * zone_bytes, [](std::uint8_t c) {
    return c == 0;
  })) << "the lost zone reads zeros";
  EXPECT_TRUE(std::equal(got.begin() + 2 * zone_bytes, got.end(), want.begin() + 2 * zone_bytes))
      << "the third zone's data";
  ASSERT_OK(st->close());
}

// A journal zone whose reset the power lost holds an older pass of the ring after what this
// pass wrote there (format.md §2.4): valid blocks with older sequence numbers. They end the
// journal, as an unwritten block would (fsck warns, no error); opening checkpoints at once,
// which moves the journal past the zone, and the volume works on, fsck clean.
TEST(FsckRepair, AnOlderPassOfTheJournalRingEndsTheJournal) {
  Volume v;
  std::uint32_t a = 0;
  v.make([&](Store& st) {
    a = st.create_namespace("a", 1 << 20)->id;
    for (int i = 0; i < 5; ++i) {
      ASSERT_OK(
          st.write(a, static_cast<std::uint64_t>(i) * 65536, bytes_of(10 + static_cast<std::uint64_t>(i), 65536)));
      ASSERT_OK(st.flush());
    }
  });
  {  // After this pass's blocks, three of an older one (sequence 1 to 3), as a lost reset leaves.
    auto d = v.device();
    MetaIo io(*d);
    auto search = load_newest_checkpoint(*d, v.sb);
    ASSERT_TRUE(search.newest);
    const std::uint32_t zone = search.newest->commit.journal_zone;
    for (std::uint64_t seq = 1; seq <= 3; ++seq) {
      AlignedBuffer b(format::kMetaBlockSize);
      ASSERT_OK(format::encode_journal_block({seq, {format::record::Trim{a, 0, 16}}}, v.sb.seed(), b.span()));
      ASSERT_TRUE(io.write(zone, b).ok());
    }
    ASSERT_OK(io.flush());
  }
  auto before = v.check(false, false);
  EXPECT_EQ(before.exit_code(), 0) << fsck::to_text(before, true);
  EXPECT_TRUE(has(before, "journal", "a block of an older pass of the journal ring", false))
      << fsck::to_text(before, false);
  {
    auto st = v.open();
    ASSERT_TRUE(st);
    std::vector<std::uint8_t> got(65536);
    for (int i = 0; i < 5; ++i) {
      ASSERT_OK(st->read(a, static_cast<std::uint64_t>(i) * 65536, got));
      EXPECT_TRUE(got == bytes_of(10 + static_cast<std::uint64_t>(i), 65536))
          << "write " << i << " (the older pass's trims are not replayed)";
    }
    EXPECT_EQ(st->stats().checkpoints, 1u) << "opening moved the journal past the zone";
    for (int i = 0; i < 300; ++i) {  // on around the ring
      ASSERT_OK(st->write(a, static_cast<std::uint64_t>(i % 16) * 65536,
                          bytes_of(100 + static_cast<std::uint64_t>(i), 65536)));
      ASSERT_OK(st->flush());
    }
  }  // a crash
  auto after = v.check(false, true);
  EXPECT_EQ(after.exit_code(), 0) << fsck::to_text(after, true);
  EXPECT_FALSE(has(after, "journal", "older pass", false)) << fsck::to_text(after, false);
  auto st = v.open();
  ASSERT_TRUE(st);
  std::vector<std::uint8_t> got(65536);
  ASSERT_OK(st->read(a, 299 % 16 * 65536, got));
  EXPECT_TRUE(got == bytes_of(399, 65536));
}

TEST(FsckRepair, ADamagedJournalBlockKeepsTheJournalBeforeIt) {
  Volume v;
  std::uint32_t a = 0;
  v.make([&](Store& st) {
    a = st.create_namespace("a", 1 << 20)->id;  // journal block 1 after the checkpoint
    for (int i = 0; i < 5; ++i) {               // blocks 2-6, one per flush
      ASSERT_OK(
          st.write(a, static_cast<std::uint64_t>(i) * 65536, bytes_of(10 + static_cast<std::uint64_t>(i), 65536)));
      ASSERT_OK(st.flush());
    }
  });
  {  // Damage the journal block of the third write (the 4th block after the replay start).
    auto d = v.device();
    auto search = load_newest_checkpoint(*d, v.sb);
    ASSERT_TRUE(search.newest);
    const auto& c = search.newest->commit;
    MetaIo io(*d);
    v.poke(io.lba(c.journal_zone, c.journal_block + 3), 200);
  }
  auto before = v.check(false, false);
  EXPECT_EQ(before.exit_code(), 4) << fsck::to_text(before, true);
  auto repaired = v.check(true, false);
  EXPECT_EQ(repaired.exit_code(), 1) << fsck::to_text(repaired, true);
  EXPECT_TRUE(has(repaired, "journal", "repaired: the journal is kept up to the damaged block", true))
      << fsck::to_text(repaired, false);
  auto after = v.check(false, true);
  EXPECT_EQ(after.exit_code(), 0) << fsck::to_text(after, true);

  auto st = v.open();
  ASSERT_TRUE(st);
  std::vector<std::uint8_t> got(65536);
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(st->read(a, static_cast<std::uint64_t>(i) * 65536, got));
    if (i < 2)
      EXPECT_TRUE(got == bytes_of(10 + static_cast<std::uint64_t>(i), 65536))
          << "write " << i << " was journaled before the damage";
    else
      EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](std::uint8_t c) { return c == 0; }))
          << "write " << i << " was journaled after it";
  }
  // The volume works on: new writes, a reopen, fsck clean.
  ASSERT_OK(st->write(a, 0, bytes_of(99, 65536)));
  ASSERT_OK(st->flush());
  st.reset();
  st = v.open();
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_TRUE(got == bytes_of(99, 65536));
  ASSERT_OK(st->close());
  st.reset();
  EXPECT_EQ(v.check(false, true).exit_code(), 0);
}

}  // namespace
}  // namespace nyads
