// Opening an indexed checkpoint without reading its maps (fs/store/store_loading.cc): the
// volume opens with its extent blocks unread; replayed writes, trims, cleaner moves and
// namespace changes over unread blocks win over what those blocks hold when they are read;
// reads, idle work, the cleaner and checkpoints read what they need; a damaged extent block
// fails the ranges it holds, stops checkpoints, and is reported by fsck.
#include <map>
#include <random>

#include "fsck/fsck.h"
#include "nyads/emulated_device.h"
#include "nyads/volume.h"
#include "store_harness.h"

namespace nyads {
namespace {

using test::bytes_of;

// What every namespace must read: its bytes, by name.
using Model = std::map<std::string, std::vector<std::uint8_t>>;

void write(Store& st, Model& m, const std::string& name, std::uint64_t offset, const std::vector<std::uint8_t>& data) {
  auto info = st.find_namespace(name);
  ASSERT_TRUE(info.ok()) << name;
  ASSERT_OK(st.write(info->id, offset, data));
  std::copy(data.begin(), data.end(), m[name].begin() + static_cast<std::ptrdiff_t>(offset));
}

void trim(Store& st, Model& m, const std::string& name, std::uint64_t offset, std::uint64_t length) {
  auto info = st.find_namespace(name);
  ASSERT_TRUE(info.ok()) << name;
  ASSERT_OK(st.trim(info->id, offset, length));
  std::fill_n(m[name].begin() + static_cast<std::ptrdiff_t>(offset), length, 0);
}

// Every namespace reads what the model holds, in pieces of `piece` bytes.
void verify(Store& st, const Model& m, std::uint64_t piece = 256 << 10) {
  for (const auto& [name, bytes] : m) {
    auto info = st.find_namespace(name);
    ASSERT_TRUE(info.ok()) << name;
    for (std::uint64_t at = 0; at < bytes.size(); at += piece) {
      std::vector<std::uint8_t> got(std::min<std::uint64_t>(piece, bytes.size() - at));
      ASSERT_OK(st.read(info->id, at, got));
      ASSERT_TRUE(std::equal(got.begin(), got.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at)))
          << name << " at " << at;
    }
  }
}

std::uint64_t live_blocks(const Model& m) {
  std::uint64_t live = 0;
  for (const auto& [name, bytes] : m)
    for (std::size_t b = 0; b < bytes.size(); b += 4096)
      live +=
          !std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(b),
                       bytes.begin() + static_cast<std::ptrdiff_t>(b + 4096), [](std::uint8_t c) { return c == 0; });
  return live;
}

// "a" written 4 KiB at a time in random order (one extent per block: many extent blocks),
// "b" in 64 KiB writes, then checkpointed: the maps a reopen leaves unread.
Model checkpointed_volume(Store& st) {
  Model m;
  m["a"].assign(8 << 20, 0);
  m["b"].assign(4 << 20, 0);
  EXPECT_TRUE(st.create_namespace("a", 8 << 20).ok());
  EXPECT_TRUE(st.create_namespace("b", 4 << 20).ok());
  std::vector<std::uint64_t> order(2048);
  for (std::uint64_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(5));
  for (std::uint64_t b : order) write(st, m, "a", b * 4096, bytes_of(b + 1, 4096));
  for (std::uint64_t at = 0; at < (4u << 20); at += 64 << 10) write(st, m, "b", at, bytes_of(at + 7, 64 << 10));
  EXPECT_OK(st.checkpoint());
  return m;
}

TEST(StoreLoading, OpeningReadsNoExtentBlockAndWhatReplayChangedWins) {
  auto dev = test::formatted_memory_device(64);
  Model m;
  std::uint64_t blocks_in_checkpoint = 0;
  {
    auto st = test::open_store(*dev);
    m = checkpointed_volume(*st);
    // Since the checkpoint, journaled only: overwrites of single blocks and of a run across
    // many of a's one-block extents, a trim that cuts extents in two, a write over the end of
    // one of b's extents and the start of the next, a namespace deleted and one created.
    std::mt19937_64 rng(9);
    for (int i = 0; i < 300; ++i) write(*st, m, "a", (rng() % 2048) * 4096, bytes_of(1000 + i, 4096));
    write(*st, m, "a", 100 * 4096, bytes_of(77, 40 * 4096));
    trim(*st, m, "a", 500 * 4096 + 0, 30 * 4096);
    write(*st, m, "b", (64 << 10) - 8192, bytes_of(78, 16384));
    ASSERT_OK(st->create_namespace("c", 1 << 20).status());
    m["c"].assign(1 << 20, 0);
    write(*st, m, "c", 0, bytes_of(79, 1 << 20));
    ASSERT_OK(st->delete_namespace("c"));
    m.erase("c");
    ASSERT_OK(st->create_namespace("d", 2 << 20).status());
    m["d"].assign(2 << 20, 0);
    write(*st, m, "d", 4096, bytes_of(80, 8192));
    ASSERT_OK(st->flush());
  }  // a crash: no close, no checkpoint
  {
    auto st = test::open_store(*dev);
    ASSERT_TRUE(st);
    blocks_in_checkpoint = st->stats().map_blocks_unread;
    EXPECT_GT(blocks_in_checkpoint, 5u) << "a's extents take several blocks, none read at open";
    // Reads fetch the blocks they need, and see replay's changes over them.
    std::vector<std::uint8_t> got(40 * 4096);
    ASSERT_OK(st->read(st->find_namespace("a")->id, 100 * 4096, got));
    EXPECT_TRUE(std::equal(got.begin(), got.end(), m["a"].begin() + 100 * 4096));
    EXPECT_LT(st->stats().map_blocks_unread, blocks_in_checkpoint);
    EXPECT_GT(st->stats().map_blocks_unread, 0u);
    verify(*st, m);
    EXPECT_EQ(st->stats().map_blocks_unread, 0u);
    EXPECT_EQ(st->stats().live_bytes, live_blocks(m) * 4096) << "counts exact once the maps are whole";
    ASSERT_OK(st->close());
  }
  auto report = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  auto st = test::open_store(*dev);
  verify(*st, m);
}

// idle_work reads the rest a megabyte at a time; the cleaner and admission read it all first.
TEST(StoreLoading, IdleWorkTheCleanerAndAdmissionReadTheRest) {
  auto dev = test::formatted_memory_device(64);
  Model m;
  {
    auto st = test::open_store(*dev);
    m = checkpointed_volume(*st);
    for (int i = 0; i < 100; ++i)
      write(*st, m, "a", static_cast<std::uint64_t>(i) * 7 * 4096, bytes_of(2000 + i, 4096));
    ASSERT_OK(st->flush());
  }
  {
    auto st = test::open_store(*dev);
    ASSERT_GT(st->stats().map_blocks_unread, 0u);
    for (int i = 0; i < 100 && st->stats().map_blocks_unread > 0; ++i) ASSERT_TRUE(st->idle_work().ok());
    EXPECT_EQ(st->stats().map_blocks_unread, 0u);
    verify(*st, m);
  }
  {
    auto st = test::open_store(*dev);
    ASSERT_GT(st->stats().map_blocks_unread, 0u);
    Status cleaned = st->clean_step();
    ASSERT_TRUE(cleaned.ok() || cleaned.code() == Code::kNotFound) << cleaned.to_string();
    EXPECT_EQ(st->stats().map_blocks_unread, 0u) << "the cleaner needs every extent";
    verify(*st, m);
  }
  {
    auto st = test::open_store(*dev);
    ASSERT_GT(st->stats().map_blocks_unread, 0u);
    ASSERT_TRUE(st->create_namespace("e", 1 << 20).ok());
    EXPECT_EQ(st->stats().map_blocks_unread, 0u) << "promises are kept against exact counts";
    m["e"].assign(1 << 20, 0);
    verify(*st, m);
    ASSERT_OK(st->close());
  }
  EXPECT_EQ(fsck::check_volume(*dev, {false, true, nullptr}).exit_code(), 0);
}

// Zones emptied while blocks are unread wait for the maps (no reset before then): that must
// not turn every later batch into a commit (a device flush) until they are read.
TEST(StoreLoading, ZonesEmptiedBeforeTheMapsAreWholeDoNotMakeEveryBatchACommit) {
  auto dev = test::formatted_memory_device(64);
  Model m;
  {
    auto st = test::open_store(*dev);
    m = checkpointed_volume(*st);
  }
  auto st = test::open_store(*dev);
  ASSERT_GT(st->stats().map_blocks_unread, 0u);
  const std::uint64_t flushes = st->stats().flushes;
  // b rewritten whole, twice, without a flush: its old zones empty out.
  for (int round = 0; round < 2; ++round)
    for (std::uint64_t at = 0; at < (4u << 20); at += 64 << 10)
      write(*st, m, "b", at, bytes_of(at + 50 + round, 64 << 10));
  EXPECT_GT(st->stats().map_blocks_unread, 0u) << "a's blocks are still unread";
  EXPECT_LT(st->stats().flushes - flushes, 8u) << "128 batches, a handful of commits";
  verify(*st, m);
  ASSERT_OK(st->close());
  EXPECT_EQ(fsck::check_volume(*dev, {false, true, nullptr}).exit_code(), 0);
}

// The cleaner's moves since the checkpoint are replayed over blocks not read yet: replay
// reads the blocks a move needs (the move keeps their checksums), and what it did not move
// still comes from the checkpoint.
TEST(StoreLoading, ReplayedCleanerMovesReadTheBlocksTheyMove) {
  auto dev = test::formatted_memory_device(64);
  Model m;
  {
    auto st = test::open_store(*dev);
    m = checkpointed_volume(*st);
    std::mt19937_64 rng(11);
    for (int i = 0; i < 1500; ++i) write(*st, m, "a", (rng() % 2048) * 4096, bytes_of(3000 + i, 4096));
    ASSERT_OK(st->flush());
    const std::uint64_t cleaned = st->stats().zones_cleaned;
    for (int i = 0; i < 3; ++i) {
      Status s = st->clean_step();
      ASSERT_TRUE(s.ok() || s.code() == Code::kNotFound) << s.to_string();
    }
    ASSERT_GT(st->stats().zones_cleaned, cleaned) << "moves to replay";
    ASSERT_OK(st->flush());
  }
  auto st = test::open_store(*dev);
  ASSERT_TRUE(st);
  verify(*st, m);
  ASSERT_OK(st->close());
  auto report = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
}

// Damage in an extent block shows when the block is read, not at open: the ranges it holds
// fail with an I/O error that names it, the rest of the volume works, no checkpoint is written
// over the checkpoint that holds it (it is the only copy of those extents), and fsck finds it.
TEST(StoreLoading, ADamagedExtentBlockFailsItsRangeAndStopsCheckpoints) {
  test::TempDir dir;
  const std::string path = dir.file("v.img");
  const EmulatedConfig c = test::store_config(64);
  Model m;
  {
    auto d = EmulatedDevice::create_file(path, c);
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(mkfs::format_volume(**d, {}).ok());
    auto st = test::open_store(**d);
    m = checkpointed_volume(*st);
    ASSERT_OK(st->close());
  }
  // The index says where a's third extent block is, and which blocks of "a" it holds.
  IndexedExtentBlock damaged;
  std::uint64_t lba = 0;
  {
    auto d = open_zoned_device(path);
    ASSERT_TRUE(d.ok());
    auto sb = scan_superblock_zone(**d, 0).newest;
    auto cp = load_newest_checkpoint(**d, *sb, {}, ExtentLoading::kDeferIndexed).newest;
    ASSERT_TRUE(cp && cp->extents_deferred);
    ASSERT_GT(cp->index.size(), 4u);
    damaged = cp->index[2];
    ASSERT_EQ(damaged.entry.ns_id, 1u);
    const std::uint64_t per_zone = sb->meta_blocks_per_zone();
    lba = MetaIo(**d).lba(cp->commit.zones[damaged.position / per_zone], damaged.position % per_zone);
  }
  test::flip_byte(path, c, lba, 300);
  auto d = open_zoned_device(path);
  ASSERT_TRUE(d.ok());
  auto st = Store::open(std::move(*d));
  ASSERT_TRUE(st.ok()) << "the damage is not read at open: " << st.status().to_string();
  Store& s = **st;
  const std::uint32_t a = s.find_namespace("a")->id, b = s.find_namespace("b")->id;
  std::vector<std::uint8_t> got(4096);
  Status bad = s.read(a, damaged.entry.first_vblock * 4096, got);
  EXPECT_EQ(bad.code(), Code::kIoError) << bad.to_string();
  EXPECT_NE(bad.message().find("block " + std::to_string(damaged.position)), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("run fsck.nyads"), std::string::npos) << bad.message();
  // The rest of "a" and all of "b" read.
  ASSERT_OK(s.read(a, (damaged.entry.end_vblock + 10) * 4096, got));
  EXPECT_TRUE(std::equal(got.begin(), got.end(),
                         m["a"].begin() + static_cast<std::ptrdiff_t>((damaged.entry.end_vblock + 10) * 4096)));
  m.erase("a");
  verify(s, m);
  // Idle work stops reading maps but does not fail the store; writes and flushes go on.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(s.idle_work().ok());
  EXPECT_GT(s.stats().map_blocks_unread, 0u);
  ASSERT_OK(s.write(b, 0, bytes_of(5, 4096)));
  ASSERT_OK(s.flush());
  // Whatever needs every map fails, again and again, and never spins (idle work had given up
  // on the block first: reading goes no further than it).
  for (int i = 0; i < 2; ++i) {
    Status ckpt = s.checkpoint();
    EXPECT_EQ(ckpt.code(), Code::kIoError) << ckpt.to_string();
    EXPECT_NE(ckpt.message().find("run fsck.nyads"), std::string::npos) << ckpt.message();
  }
  EXPECT_EQ(s.create_namespace("later", 1 << 20).status().code(), Code::kIoError);
  EXPECT_EQ(s.close().code(), Code::kIoError);
  st->reset();  // dropped: a crash, as a daemon that cannot checkpoint would be stopped
  auto again = open_zoned_device(path);
  ASSERT_TRUE(again.ok());
  auto report = fsck::check_volume(**again, {false, false, nullptr});
  EXPECT_NE(report.exit_code(), 0) << fsck::to_text(report, true);
  bool named = false;
  for (const auto& p : report.problems)
    named |= p.message.find("block " + std::to_string(damaged.position)) != std::string::npos;
  EXPECT_TRUE(named) << fsck::to_text(report, true);
}

}  // namespace
}  // namespace nyads
