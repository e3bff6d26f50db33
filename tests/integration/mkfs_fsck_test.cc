// mkfs and fsck in-process on the emulated backend: a new volume checks clean; damage to each
// structure is found, named by zone and offset, and repaired where it can be.
#include <fstream>

#include "fs/format/codec.h"
#include "fsck/fsck.h"
#include "mkfs/mkfs.h"
#include "nyads/faulty_device.h"
#include "nyads/volume.h"
#include "test_util.h"
#include "zns/emulated_format.h"

namespace nyads {
namespace {

namespace fmt = format;

EmulatedConfig volume_config() {
  EmulatedConfig c = test::small_config();  // 16 zones of 1 MiB, capacity 768 KiB
  c.zone_count = 24;
  c.max_open_zones = 6;
  c.max_active_zones = 8;
  return c;
}

class MkfsFsck : public ::testing::Test {
 protected:
  void SetUp() override { open_new(); }
  void open_new() {
    dev_.reset();
    auto d = EmulatedDevice::create_file(path_, volume_config(), true);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    dev_ = std::move(*d);
  }
  void reopen() {
    dev_.reset();
    auto d = open_zoned_device(path_);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    dev_ = std::move(*d);
  }
  fmt::Superblock make(mkfs::Options o = {}) {
    auto r = mkfs::format_volume(*dev_, o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->sb : fmt::Superblock{};
  }
  fsck::Report check(bool repair = false) { return fsck::check_volume(*dev_, {repair, false, nullptr}); }
  // Flips one byte of the device file at a block of a zone (the device must be closed).
  void corrupt(std::uint32_t zone, std::uint64_t byte_in_zone) {
    dev_.reset();
    const auto layout = emulated_format::layout_for(volume_config());
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    const auto at =
        static_cast<std::streamoff>(layout.data_offset + zone * volume_config().zone_size_bytes + byte_in_zone);
    f.seekg(at);
    char c = 0;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x5a));
    f.close();
    reopen();
  }
  // Appends journal blocks with the given records at the journal's end.
  void journal(const fmt::Superblock& sb, std::vector<std::vector<fmt::JournalRecord>> blocks) {
    MetaIo io(*dev_);
    std::uint32_t zone = sb.journal_zones.first;
    auto written = io.written(zone);
    ASSERT_TRUE(written.ok());
    std::uint64_t seq = 1 + *written;
    for (auto& records : blocks) {
      AlignedBuffer b(fmt::kMetaBlockSize);
      ASSERT_OK(fmt::encode_journal_block({seq++, records}, sb.seed(), b.span()));
      ASSERT_TRUE(io.write(zone, b).ok());
    }
    ASSERT_OK(io.flush());
  }
  // Writes `blocks` 4 KiB data blocks into a data zone; returns their first LBA.
  std::uint64_t data(std::uint32_t zone, std::uint32_t blocks) {
    auto b = test::pattern(0, blocks, 4096);
    auto at = SyncDevice(*dev_).append(dev_->geometry().zone_start(zone), blocks, b.data());
    EXPECT_TRUE(at.ok());
    EXPECT_OK(SyncDevice(*dev_).flush());
    return at.ok() ? *at : 0;
  }
  static bool has(const fsck::Report& r, const std::string& structure, std::int64_t zone, const std::string& text) {
    for (const auto& p : r.problems)
      if (p.structure == structure && p.zone == zone && p.message.find(text) != std::string::npos) return true;
    return false;
  }

  test::TempDir dir_;
  std::string path_ = dir_.file("vol.zns");
  std::unique_ptr<ZonedDevice> dev_;
};

TEST_F(MkfsFsck, ANewVolumeChecksClean) {
  mkfs::Options o;
  o.label = "web-db";
  o.uuid = *fmt::parse_uuid("10325476-98ba-4cde-8011-223344556677");
  const fmt::Superblock sb = make(o);
  EXPECT_EQ(sb.label, "web-db");
  EXPECT_EQ(sb.journal_zones, (fmt::ZoneRange{2, 2}));
  EXPECT_EQ(sb.checkpoint_zones, (fmt::ZoneRange{4, 2}));
  EXPECT_EQ(sb.data_zones, (fmt::ZoneRange{6, 18}));
  auto r = check();
  EXPECT_EQ(r.exit_code(), 0) << fsck::to_text(r, true);
  EXPECT_TRUE(r.problems.empty());
  ASSERT_TRUE(r.superblock);
  EXPECT_EQ(*r.superblock, sb);
  EXPECT_EQ(r.checkpoint_seq, 1u);
  // Both copies are there, in zones 0 and 1.
  for (std::uint32_t z : {0u, 1u}) {
    SuperblockZoneScan scan = scan_superblock_zone(*dev_, z);
    ASSERT_TRUE(scan.newest) << z;
    EXPECT_EQ(*scan.newest, sb);
  }
  const std::string summary = mkfs::describe(sb);
  EXPECT_NE(summary.find("journal 2-3 (2), checkpoint 4-5 (2), data 6-23 (18, of which 2 reserved for cleaning)"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("usable      12 MiB"), std::string::npos) << summary;
}

TEST_F(MkfsFsck, MkfsRefusesAVolumeOrDataWithoutForce) {
  make();
  auto again = mkfs::format_volume(*dev_, {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_NE(again.status().message().find("holds a nyads volume"), std::string::npos) << again.status().message();
  EXPECT_NE(again.status().message().find("-f"), std::string::npos);
  mkfs::Options force;
  force.force = true;
  auto forced = mkfs::format_volume(*dev_, force);
  ASSERT_TRUE(forced.ok()) << forced.status().to_string();
  EXPECT_EQ(check().exit_code(), 0);

  open_new();  // another format's signature: ext4's magic at byte 1080 of zone 0
  auto b = test::pattern(0, 2, 4096);
  b.data()[1080] = 0x53;
  b.data()[1081] = 0xef;
  ASSERT_OK(SyncDevice(*dev_).write(0, 2, b.data()));
  EXPECT_NE(mkfs::format_volume(*dev_, {}).status().message().find("an ext2/3/4 file system"), std::string::npos);

  open_new();  // unknown data in a data zone
  data(10, 1);
  EXPECT_NE(mkfs::format_volume(*dev_, {}).status().message().find("data in 1 of 24 zones"), std::string::npos);
}

TEST_F(MkfsFsck, DryRunWritesNothing) {
  data(10, 3);
  mkfs::Options o;
  o.dry_run = true;
  o.force = true;
  auto r = mkfs::format_volume(*dev_, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->zones_reset, 1u);
  EXPECT_EQ((*dev_->report_zones(10, 1))[0].write_pointer, dev_->geometry().zone_start(10) + 3);
  EXPECT_EQ((*dev_->report_zones(0, 1))[0].state, ZoneState::kEmpty);
}

// mkfs resets zones and never reads the data in them: its time does not grow with the data.
TEST_F(MkfsFsck, MkfsDoesNotReadOldData) {
  make();
  for (std::uint32_t z = 6; z < 13; ++z) data(z, 16);  // 7 data zones + the checkpoint zone: 8 active
  dev_.reset();
  auto inner = open_zoned_device(path_);
  ASSERT_TRUE(inner.ok());
  FaultyDevice faulty(std::move(*inner));
  const Geometry& g = faulty.geometry();
  faulty.fail_reads(g.zone_start(6), g.zone_start(24) - g.zone_start(6));  // every data zone
  mkfs::Options o;
  o.force = true;
  std::uint32_t progress_calls = 0;
  o.progress = [&](std::uint32_t, std::uint32_t total) {
    ++progress_calls;
    EXPECT_EQ(total, 10u);
  };
  auto r = mkfs::format_volume(faulty, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->zones_reset, 10u);  // 2 superblock, 1 checkpoint, 7 data
  EXPECT_EQ(progress_calls, 10u);
}

TEST_F(MkfsFsck, ADamagedPrimarySuperblockIsRestoredFromTheBackup) {
  make();
  corrupt(0, 100);
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4) << fsck::to_text(r, true);
  ASSERT_TRUE(has(r, "superblock", 0, "the primary copy has no valid superblock"));
  EXPECT_NE(fsck::to_text(r, false).find("checksum mismatch"), std::string::npos) << fsck::to_text(r, false);
  EXPECT_TRUE(r.problems[0].fixable);
  auto fixed = check(true);
  EXPECT_EQ(fixed.exit_code(), 1) << fsck::to_text(fixed, true);
  EXPECT_TRUE(fixed.problems[0].fixed);
  EXPECT_EQ(check().exit_code(), 0);
}

TEST_F(MkfsFsck, ALostBackupIsRestoredFromThePrimary) {
  make();
  ASSERT_OK(dev_->manage_zone(ZoneAction::kReset, 1));
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4);
  EXPECT_TRUE(has(r, "superblock", 1, "the backup copy has no valid superblock"));
  EXPECT_EQ(check(true).exit_code(), 1);
  EXPECT_EQ(check().exit_code(), 0);
}

TEST_F(MkfsFsck, NoValidSuperblockIsAnOperationalError) {
  make();
  corrupt(0, 10);
  corrupt(1, 10);
  auto r = check(true);
  EXPECT_EQ(r.exit_code(), 8);
  ASSERT_TRUE(r.operational_error);
  EXPECT_NE(r.operational_error->find("no valid nyads superblock"), std::string::npos);
  EXPECT_NE(r.operational_error->find("superblock at zone 1 block 0: checksum mismatch"), std::string::npos)
      << *r.operational_error;
}

TEST_F(MkfsFsck, ADamagedCheckpointIsNamed) {
  const auto sb = make();
  corrupt(sb.checkpoint_zones.first, 4096 + 200);  // its second block
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4);
  EXPECT_TRUE(has(r, "checkpoint", -1, "checkpoint 1 block 1 at zone 4 block 1: checksum mismatch"))
      << fsck::to_text(r, true);
  EXPECT_TRUE(has(r, "checkpoint", 4, "no committed checkpoint in zones 4-5")) << fsck::to_text(r, true);
}

TEST_F(MkfsFsck, JournalRecordsAreCrossChecked) {
  const auto sb = make();
  const std::uint64_t lba = data(7, 4);
  journal(sb, {{fmt::record::NamespaceCreate{1, 4096, 1 << 20, "web-db"}},
               {fmt::record::Extent{1, 0, lba, {1, 2, 3, 4}}, fmt::record::Trim{1, 2, 1}}});
  auto clean = check();
  EXPECT_EQ(clean.exit_code(), 0) << fsck::to_text(clean, true);
  EXPECT_EQ(clean.namespaces, 1u);
  EXPECT_EQ(clean.journal_blocks, 2u);
  EXPECT_EQ(clean.extents, 1u);

  journal(sb, {{fmt::record::Extent{2, 0, lba, {1}}},                             // no such namespace
               {fmt::record::Extent{1, 300, lba, {1}}},                           // past the namespace's 256 blocks
               {fmt::record::Extent{1, 0, lba + 2, {1, 2, 3}}},                   // past the zone's write pointer
               {fmt::record::Extent{1, 0, dev_->geometry().zone_start(2), {1}}},  // into a journal zone
               {fmt::record::NamespaceCreate{3, 4096, 4096, "web-db"}}});         // a name taken
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4);
  const std::string text = fsck::to_text(r, false);
  EXPECT_TRUE(has(r, "journal", 2, "journal block 3 (zone 2 block 2): namespace 2 does not exist")) << text;
  EXPECT_TRUE(has(r, "journal", 2, "runs to block 301")) << text;
  EXPECT_TRUE(has(r, "map", 7, "of zone 7")) << text;  // judged on the final map
  EXPECT_TRUE(has(r, "journal", 2, "in journal zone 2")) << text;
  EXPECT_TRUE(has(r, "journal", 2, "namespace name 'web-db' is taken by namespace 1")) << text;
  for (const auto& p : r.problems) {
    if (p.structure == "journal") {
      EXPECT_GE(p.offset, 2 * 4096) << p.message;  // offsets name the blocks
    }
  }
}

// The cleaner's moved records: blocks keep their checksums at the new place; moving blocks
// that hold no data, or to anywhere but within one data zone, is reported.
TEST_F(MkfsFsck, MovedRecordsAreCrossChecked) {
  const auto sb = make();
  const std::uint64_t lba = data(7, 4), to = data(8, 3);
  journal(sb, {{fmt::record::NamespaceCreate{1, 4096, 1 << 20, "web-db"}},
               {fmt::record::Extent{1, 0, lba, {1, 2, 3, 4}}, fmt::record::Moved{1, to, {{2, 2}, {0, 1}}}}});
  auto clean = check();
  EXPECT_EQ(clean.exit_code(), 0) << fsck::to_text(clean, true);
  EXPECT_EQ(clean.extents, 3u);  // one extent, two moved runs

  const std::uint64_t zone_end = dev_->geometry().zone_start(8) + dev_->geometry().zone_capacity;
  journal(sb, {{fmt::record::Moved{
                   1, to, {{9, 1}}}},  // appended to the journal above                               // holds no data
               {fmt::record::Moved{1, dev_->geometry().zone_start(2), {{0, 1}}}},  // into a journal zone
               {fmt::record::Moved{1, zone_end - 1, {{1, 2}}}}});                  // past the zone's capacity
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4);
  const std::string text = fsck::to_text(r, false);
  EXPECT_TRUE(has(r, "journal", 2, "blocks 9..9 hold no data to move")) << text;
  EXPECT_TRUE(has(r, "journal", 2, "points into journal zone 2")) << text;
  EXPECT_TRUE(has(r, "journal", 2, "runs to block " + std::to_string(zone_end))) << text;
  EXPECT_EQ(r.problems.size(), 3u) << text;
}

// A last journal block of a version this build does not read is not taken for a torn commit
// (which recovery would drop without a word): it is an error.
TEST_F(MkfsFsck, ANewerJournalVersionIsNeverATornTail) {
  const auto sb = make();
  journal(sb, {{fmt::record::NamespaceCreate{1, 4096, 1 << 20, "a"}}});
  AlignedBuffer b(fmt::kMetaBlockSize);
  ASSERT_OK(fmt::encode_journal_block({2, {fmt::record::NamespaceCreate{2, 4096, 1 << 20, "b"}}}, sb.seed(), b.span()));
  put_le16(b.data() + 8, fmt::kJournalVersion + 1);
  fmt::seal_block(b.span(), sb.seed());
  MetaIo io(*dev_);
  ASSERT_TRUE(io.write(sb.journal_zones.first, b).ok());
  ASSERT_OK(io.flush());
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4) << fsck::to_text(r, true);
  EXPECT_TRUE(has(r, "journal", 2, "journal version 4, this build reads versions 1 to 3")) << fsck::to_text(r, true);
}

TEST_F(MkfsFsck, ATornJournalTailIsAWarningAndMidJournalDamageAnError) {
  const auto sb = make();
  journal(sb, {{fmt::record::NamespaceCreate{1, 4096, 1 << 20, "a"}},
               {fmt::record::NamespaceCreate{2, 4096, 1 << 20, "b"}}});
  corrupt(sb.journal_zones.first, 4096 + 64);  // the last block: an interrupted group commit
  auto torn = check();
  EXPECT_EQ(torn.exit_code(), 0) << fsck::to_text(torn, true);
  ASSERT_EQ(torn.problems.size(), 1u);
  EXPECT_EQ(torn.problems[0].severity, fsck::Severity::kWarning);
  EXPECT_NE(torn.problems[0].message.find("recovery ignores it"), std::string::npos);
  EXPECT_EQ(torn.problems[0].offset, 4096);
  EXPECT_EQ(torn.namespaces, 1u);

  open_new();
  const auto sb2 = make();
  journal(sb2, {{fmt::record::NamespaceCreate{1, 4096, 1 << 20, "a"}},
                {fmt::record::NamespaceCreate{2, 4096, 1 << 20, "b"}}});
  corrupt(sb2.journal_zones.first, 64);  // the first of two blocks
  auto damaged = check();
  EXPECT_EQ(damaged.exit_code(), 4);
  EXPECT_TRUE(has(damaged, "journal", 2, "1 written blocks follow it")) << fsck::to_text(damaged, true);
}

TEST_F(MkfsFsck, ZoneStatesAreCheckedAgainstRoles) {
  const auto sb = make();
  auto* emulated = dynamic_cast<EmulatedDevice*>(dev_.get());
  ASSERT_NE(emulated, nullptr);
  ASSERT_OK(emulated->set_zone_condition(9, ZoneState::kOffline));
  ASSERT_OK(emulated->set_zone_condition(10, ZoneState::kReadOnly));
  ASSERT_OK(emulated->set_zone_condition(sb.journal_zones.first + 1, ZoneState::kReadOnly));
  auto r = check();
  EXPECT_EQ(r.exit_code(), 4);
  EXPECT_TRUE(has(r, "zone", 9, "data zone 9 is offline"));
  EXPECT_TRUE(has(r, "zone", 3, "journal zone 3 is read-only"));
  bool warned = false;
  for (const auto& p : r.problems) warned |= p.zone == 10 && p.severity == fsck::Severity::kWarning;
  EXPECT_TRUE(warned) << fsck::to_text(r, true);
}

TEST_F(MkfsFsck, TheJsonReportCarriesEveryProblem) {
  make();
  corrupt(0, 100);
  const std::string json = fsck::to_json(check());
  EXPECT_NE(json.find("\"exit_code\": 4"), std::string::npos) << json;
  EXPECT_NE(json.find("\"structure\": \"superblock\", \"zone\": 0, \"offset\": 0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"fixable\": true"), std::string::npos);
}

TEST_F(MkfsFsck, TooSmallADeviceIsRefusedWithTheReason) {
  EmulatedConfig c = volume_config();
  c.zone_count = 6;
  c.max_open_zones = 4;
  c.max_active_zones = 6;
  auto d = EmulatedDevice::create_memory(c);
  ASSERT_TRUE(d.ok());
  auto r = mkfs::format_volume(**d, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("leave no data zones"), std::string::npos) << r.status().message();
  mkfs::Options o;
  o.label = std::string(70, 'x');
  EXPECT_NE(mkfs::format_volume(*dev_, o).status().message().find("label is 70 bytes"), std::string::npos);
}

}  // namespace
}  // namespace nyads
