// The store through its API on the emulated backend: namespaces, the data path, durability
// across reopen, checksums, out of space, cleaning, and fsck on what it wrote.
#include "nyads/store.h"

#include <algorithm>
#include <fstream>
#include <map>

#include <random>
#include <set>
#include <tuple>

#include "fsck/fsck.h"
#include "nyads/volume.h"
#include "store_harness.h"
#include "zns/emulated_format.h"

namespace nyads {
namespace {

using test::bytes_of;

TEST(Store, WritesReadBackAndHolesReadAsZeros) {
  auto dev = test::formatted_memory_device();
  auto st = test::open_store(*dev);
  auto ns = st->create_namespace("web-db", 4 << 20);
  ASSERT_TRUE(ns.ok()) << ns.status().to_string();
  auto data = bytes_of(1, 64 << 10);
  ASSERT_OK(st->write(ns->id, 8192, data));
  std::vector<std::uint8_t> got(64 << 10);
  ASSERT_OK(st->read(ns->id, 8192, got));
  EXPECT_EQ(got, data);
  std::vector<std::uint8_t> hole(8192, 0xff);
  ASSERT_OK(st->read(ns->id, 0, hole));
  EXPECT_TRUE(std::all_of(hole.begin(), hole.end(), [](auto b) { return b == 0; }));
  EXPECT_EQ(st->find_namespace("web-db")->written_bytes, 64u << 10);
  ASSERT_OK(st->trim(ns->id, 8192, 4096));
  ASSERT_OK(st->read(ns->id, 8192, std::span(got).first(4096)));
  EXPECT_TRUE(std::all_of(got.begin(), got.begin() + 4096, [](auto b) { return b == 0; }));
  ASSERT_OK(st->write_zeroes(ns->id, 12288, 8192, true));
  ASSERT_OK(st->read(ns->id, 12288, std::span(got).first(8192)));
  EXPECT_TRUE(std::all_of(got.begin(), got.begin() + 8192, [](auto b) { return b == 0; }));
}

TEST(Store, FlushedDataSurvivesReopenAndCloseReplaysNothing) {
  auto dev = test::formatted_memory_device();
  std::uint32_t id = 0;
  auto a = bytes_of(2, 16384), b = bytes_of(3, 4096);
  {
    auto st = test::open_store(*dev);
    id = st->create_namespace("a", 1 << 20)->id;
    ASSERT_OK(st->write(id, 0, a));
    ASSERT_OK(st->flush());
    ASSERT_OK(st->write(id, 4096, b, /*fua=*/true));
  }  // no close: a crash after the FUA write
  auto st = test::open_store(*dev);
  std::vector<std::uint8_t> got(16384);
  ASSERT_OK(st->read(id, 0, got));
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + 4096, a.begin()));
  EXPECT_TRUE(std::equal(got.begin() + 4096, got.begin() + 8192, b.begin()));
  EXPECT_TRUE(std::equal(got.begin() + 8192, got.end(), a.begin() + 8192));
  ASSERT_OK(st->close());
  auto report = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  EXPECT_EQ(report.namespaces, 1u);
  EXPECT_EQ(report.journal_blocks, 0u);  // close checkpointed everything
}

TEST(Store, NamespaceRules) {
  auto dev = test::formatted_memory_device();
  auto st = test::open_store(*dev);
  ASSERT_TRUE(st->create_namespace("a", 1 << 20).ok());
  EXPECT_EQ(st->create_namespace("a", 1 << 20).status().code(), Code::kAlreadyExists);
  EXPECT_NE(st->create_namespace("bad/name", 1 << 20).status().message().find("the character '/'"), std::string::npos);
  EXPECT_NE(st->create_namespace("b", 1000).status().message().find("not a positive multiple of 4096"),
            std::string::npos);
  EXPECT_NE(st->create_namespace("b", 4096, 1024).status().message().find("not 512 or 4096"), std::string::npos);
  const std::uint32_t id = st->find_namespace("a")->id;
  ASSERT_OK(st->write(id, (1 << 20) - 4096, bytes_of(4, 4096)));
  Status cut = st->resize_namespace("a", 1 << 19);
  EXPECT_EQ(cut.code(), Code::kInvalidArgument);
  EXPECT_NE(cut.message().find("would cut off data"), std::string::npos);
  ASSERT_OK(st->resize_namespace("a", 2 << 20));
  ASSERT_OK(st->resize_namespace("a", 1 << 19, /*discard=*/true));
  EXPECT_EQ(st->find_namespace("a")->size_bytes, 1u << 19);
  EXPECT_EQ(st->write(id, 1 << 19, bytes_of(1, 4096)).code(), Code::kOutOfRange);
  EXPECT_EQ(st->write(id, 100, bytes_of(1, 4096)).code(), Code::kInvalidArgument);
  EXPECT_EQ(st->read(999, 0, std::span<std::uint8_t>()).code(), Code::kNotFound);
  EXPECT_EQ(st->delete_namespace("nope").code(), Code::kNotFound);
  ASSERT_OK(st->delete_namespace("a"));
  EXPECT_TRUE(st->list_namespaces().empty());
}

TEST(Store, FiveHundredTwelveByteNamespacesMergePartialBlocks) {
  auto dev = test::formatted_memory_device();
  auto st = test::open_store(*dev);
  auto ns = st->create_namespace("small", 1 << 20, 512);
  ASSERT_TRUE(ns.ok());
  auto a = bytes_of(5, 8192);
  ASSERT_OK(st->write(ns->id, 0, a));
  auto b = bytes_of(6, 1536);
  ASSERT_OK(st->write(ns->id, 512 * 3, b));
  std::vector<std::uint8_t> got(8192);
  ASSERT_OK(st->read(ns->id, 0, got));
  auto want = a;
  std::copy(b.begin(), b.end(), want.begin() + 1536);
  EXPECT_EQ(got, want);
  std::vector<std::uint8_t> part(1024);
  ASSERT_OK(st->read(ns->id, 512 * 5, part));
  EXPECT_TRUE(std::equal(part.begin(), part.end(), want.begin() + 2560));
  ASSERT_OK(st->trim(ns->id, 512, 512 * 10));
  ASSERT_OK(st->read(ns->id, 0, got));
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + 512, want.begin()));
  EXPECT_TRUE(std::all_of(got.begin() + 512, got.begin() + 512 * 11, [](auto c) { return c == 0; }));
  EXPECT_TRUE(std::equal(got.begin() + 512 * 11, got.end(), want.begin() + 512 * 11));
}

// A volume in a file with namespace "a" holding `bytes` bytes from offset 0, closed; its data
// sits at the start of the first data zone (first_lba).
struct FileVolume {
  std::uint32_t id = 0;
  std::uint64_t first_lba = 0;
};
FileVolume make_file_volume(const std::string& path, std::size_t bytes) {
  FileVolume v;
  auto d = EmulatedDevice::create_file(path, test::store_config());
  EXPECT_TRUE(d.ok());
  EXPECT_TRUE(mkfs::format_volume(**d, {}).ok());
  auto st = Store::open(std::move(*d));
  EXPECT_TRUE(st.ok());
  v.id = (*st)->create_namespace("a", 1 << 20)->id;
  EXPECT_OK((*st)->write(v.id, 0, test::bytes_of(7, bytes)));
  EXPECT_OK((*st)->close());
  v.first_lba = test::store_config().geometry().zone_start((*st)->superblock().data_zones.first);
  return v;
}

TEST(Store, ACorruptDataBlockIsAnErrorNeverData) {
  test::TempDir dir;
  const std::string path = dir.file("v.img");
  const FileVolume v = make_file_volume(path, 8192);
  const std::uint32_t id = v.id;
  const std::uint64_t lba = v.first_lba;
  {
    const auto layout = emulated_format::layout_for(test::store_config());
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.data_offset + (lba + 1) * 4096 + 100));
    f.put('\x42');
  }
  auto d = open_zoned_device(path);
  ASSERT_TRUE(d.ok());
  auto st = Store::open(std::move(*d));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK((*st)->read(id, 0, got));  // the intact block
  Status bad = (*st)->read(id, 4096, got);
  EXPECT_EQ(bad.code(), Code::kIoError);
  EXPECT_NE(bad.message().find("checksum mismatch in namespace 'a' block 1"), std::string::npos) << bad.message();
  EXPECT_EQ((*st)->stats().checksum_errors, 1u);
}

TEST(Store, OutOfSpaceIsPerWriteOverwritesGoOnAndTrimBringsSpaceBack) {
  auto dev = test::formatted_memory_device(16);  // few data zones
  auto st = test::open_store(*dev);
  const std::uint32_t a = st->create_namespace("a", 64 << 20, 4096, true)->id;  // thin: larger than the device
  const std::uint32_t b = st->create_namespace("b", 1 << 20)->id;               // promised its 1 MiB
  ASSERT_OK(st->write(b, 0, bytes_of(8, 65536)));
  auto chunk = bytes_of(9, 256 << 10);
  std::uint64_t off = 0;
  Status s;
  while ((s = st->write(a, off, chunk)).ok()) off += chunk.size();
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.to_string();
  EXPECT_EQ(s.to_errno(), ENOSPC);
  // The other namespace still reads, and overwrites what it has (that adds no live data),
  // again and again: the cleaner places them in the headroom kept for it. New blocks of b
  // work too: the volume promised b its whole size, and a, thin, could not take it.
  std::vector<std::uint8_t> got(65536);
  ASSERT_OK(st->read(b, 0, got));
  EXPECT_EQ(got, bytes_of(8, 65536));
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE(round);
    ASSERT_OK(st->write(b, 0, bytes_of(static_cast<std::uint8_t>(20 + round), 65536)));
  }
  ASSERT_OK(st->write(a, 0, chunk));                               // and so does the full one
  ASSERT_OK(st->write(b, 65536, bytes_of(7, (1 << 20) - 65536)));  // all the rest of b
  ASSERT_OK(st->read(b, 0, got));
  EXPECT_EQ(got, bytes_of(59, 65536));
  ASSERT_OK(st->flush());
  // Freeing space makes writes work again.
  ASSERT_OK(st->trim(a, 0, off / 2));
  ASSERT_OK(st->flush());
  EXPECT_OK(st->write(a, off, chunk));
  ASSERT_OK(st->close());
  EXPECT_EQ(fsck::check_volume(*dev, {false, true, nullptr}).exit_code(), 0);
}

// A namespace is promised its size: one that the volume cannot promise is refused, and a thin
// one filling the volume cannot take what was promised, so the promised namespace can still
// be filled to its end. Promises and thinness survive a reopen.
TEST(Store, PromisedSpaceStaysWithItsNamespaceWhenAThinOneFillsTheVolume) {
  auto dev = test::formatted_memory_device(24);
  auto st = test::open_store(*dev);
  Status big = st->create_namespace("huge", 64 << 20).status();
  EXPECT_EQ(big.code(), Code::kNoSpace) << big.to_string();
  EXPECT_NE(big.message().find("namespace 'huge' needs 64 MiB, but only"), std::string::npos) << big.message();
  EXPECT_NE(big.message().find("--thin"), std::string::npos) << big.message();
  auto kept = st->create_namespace("kept", 512 << 10);
  ASSERT_TRUE(kept.ok()) << kept.status().to_string();
  EXPECT_FALSE(kept->thin);
  auto thin = st->create_namespace("thin", 64 << 20, 4096, true);
  ASSERT_TRUE(thin.ok()) << thin.status().to_string();
  EXPECT_TRUE(thin->thin);
  // Growing a promised namespace past what the volume can promise is refused; shrinking is not.
  EXPECT_EQ(st->resize_namespace("kept", 64 << 20).code(), Code::kNoSpace);
  ASSERT_OK(st->resize_namespace("kept", 256 << 10));
  ASSERT_OK(st->resize_namespace("kept", 512 << 10));
  // The thin one fills what no one was promised.
  auto chunk = bytes_of(3, 64 << 10);
  std::uint64_t off = 0;
  Status s;
  while ((s = st->write(thin->id, off, chunk)).ok()) off += chunk.size();
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.to_string();
  EXPECT_NE(s.message().find("thin namespace 'thin' has no more room"), std::string::npos) << s.message();
  EXPECT_GT(off, 0u);
  // Now nothing more can be promised, and the promised namespace fills to its end.
  EXPECT_EQ(st->create_namespace("late", 64 << 10).status().code(), Code::kNoSpace);
  ASSERT_OK(st->write(kept->id, 0, bytes_of(4, 512 << 10)));
  ASSERT_OK(st->flush());
  // After a crash (no close), the same promises hold.
  st.reset();
  st = test::open_store(*dev);
  ASSERT_NE(st, nullptr);
  auto again = st->find_namespace("thin");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->thin);
  EXPECT_FALSE(st->find_namespace("kept")->thin);
  std::vector<std::uint8_t> got(512 << 10);
  ASSERT_OK(st->read(kept->id, 0, got));
  EXPECT_EQ(got, bytes_of(4, 512 << 10));
  // Its promise all written, the promised namespace still holds it: the thin one stays out,
  // and a trim and rewrite there (new blocks again) works.
  EXPECT_EQ(st->write(thin->id, off, chunk).code(), Code::kNoSpace);
  ASSERT_OK(st->trim(kept->id, 0, 64 << 10));
  EXPECT_EQ(st->write(thin->id, off, chunk).code(), Code::kNoSpace);
  ASSERT_OK(st->write(kept->id, 0, bytes_of(5, 64 << 10)));
  // Deleting the promised namespace gives its space to the thin one.
  ASSERT_OK(st->delete_namespace("kept"));
  EXPECT_OK(st->write(thin->id, off, chunk));
  ASSERT_OK(st->close());
  EXPECT_EQ(fsck::check_volume(*dev, {false, true, nullptr}).exit_code(), 0);
}

// A batch's count of growth it admitted but has not applied can run high (one block written
// many times; a 512-byte write applied at once): a promised namespace's writes must still all
// be admitted, to its last block.
TEST(Store, ABatchAdmitsEveryWriteOfAPromisedNamespaceUpToItsEnd) {
  auto dev = test::formatted_memory_device(24);
  auto st = test::open_store(*dev);
  auto thin = st->create_namespace("thin", 64 << 20, 4096, true);
  auto kept = st->create_namespace("kept", 1 << 20, 512);
  ASSERT_TRUE(thin.ok() && kept.ok());
  auto chunk = bytes_of(3, 64 << 10);
  for (std::uint64_t off = 0; st->write(thin->id, off, chunk).ok(); off += chunk.size()) {
  }
  ASSERT_OK(st->write(kept->id, 0, bytes_of(1, (1 << 20) - 4096)));  // all but the last 4 KiB block
  std::vector<std::vector<std::uint8_t>> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(bytes_of(static_cast<std::uint8_t>(i), 4096));
  std::vector<StoreRequest> batch;
  for (const auto& b : blocks)
    batch.push_back(StoreRequest::write(kept->id, (1 << 20) - 4096, b));  // the same block, 2000 times
  auto small = bytes_of(9, 512);
  batch.push_back(StoreRequest::write(kept->id, 512, small));  // applied at once, in the batch
  batch.push_back(StoreRequest::flush());
  ASSERT_OK(st->execute(batch));
  for (std::size_t i = 0; i < batch.size(); ++i)
    EXPECT_TRUE(batch[i].result.ok()) << "request " << i << ": " << batch[i].result.to_string();
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(kept->id, (1 << 20) - 4096, got));
  EXPECT_EQ(got, blocks.back());
}

// Zones whose capacity is their size: a sequential write runs from one zone into the next at
// contiguous device blocks, and a read of it must still go zone by zone (found by fio's
// sequential read through ublk, EINVAL from a read that crossed a zone boundary).
TEST(Store, ReadsAcrossZonesWhoseCapacityIsTheirSize) {
  EmulatedConfig c = test::store_config(64);
  c.zone_size_bytes = c.zone_capacity_bytes = 512 << 10;  // 128 blocks: an extent (up to 256) could span two
  auto d = EmulatedDevice::create_memory(c);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(mkfs::format_volume(**d, {}).ok());
  auto st = test::open_store(**d);
  const std::uint32_t a = st->create_namespace("a", 16 << 20)->id;
  const std::size_t total = 6 * c.zone_size_bytes;
  const auto want = bytes_of(31, total);
  // One block first, so that reads in max-I/O pieces (32 blocks) are not zone-aligned.
  ASSERT_OK(st->write(a, 0, std::span(want).first(4096)));
  for (std::size_t off = 4096; off < total; off += 64 << 10)
    ASSERT_OK(st->write(a, off, std::span(want).subspan(off, std::min<std::size_t>(64 << 10, total - off))));
  std::vector<std::uint8_t> got(total);
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_TRUE(got == want);
  ASSERT_OK(st->close());
  EXPECT_EQ(fsck::check_volume(**d, {false, true, nullptr}).exit_code(), 0);
}

TEST(Store, DeletingANamespaceFreesItsZones) {
  auto dev = test::formatted_memory_device();
  auto st = test::open_store(*dev);
  const std::uint32_t free_before = st->stats().free_zones;
  const std::uint32_t a = st->create_namespace("a", 8 << 20)->id;
  ASSERT_OK(st->write(a, 0, bytes_of(10, 3 << 20)));
  ASSERT_OK(st->flush());
  EXPECT_LT(st->stats().free_zones, free_before - 2);
  const std::uint64_t written = st->stats().data_bytes_written + st->stats().cleaner_bytes_written;
  ASSERT_OK(st->delete_namespace("a"));
  EXPECT_GE(st->stats().free_zones, free_before - 1);  // the zones came back by reset
  EXPECT_EQ(st->stats().data_bytes_written + st->stats().cleaner_bytes_written, written);  // nothing copied
  // A new namespace reads zeros, not the old data.
  const std::uint32_t b = st->create_namespace("b", 8 << 20)->id;
  std::vector<std::uint8_t> got(1 << 20);
  ASSERT_OK(st->read(b, 0, got));
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](auto c) { return c == 0; }));
}

// A client that rewrites its namespace again and again without a flush empties zones that
// hold only what it wrote since the last commit: they are reset at once, their pending
// records dropped, with no commit (a device flush) for each; after a crash every block reads
// its flushed content or a later one, never garbage, and fsck is clean.
TEST(Store, AStreamWithoutFlushesResetsTheZonesItEmptiesWithoutACommit) {
  auto dev = test::formatted_memory_device(40);
  std::uint32_t id = 0;
  constexpr std::uint64_t kBytes = 3 << 20;  // four zones of 768 KiB
  constexpr std::uint64_t kPasses = 16;
  {
    auto st = test::open_store(*dev);
    id = st->create_namespace("stream", kBytes)->id;
    ASSERT_OK(st->write(id, 0, bytes_of(1000, kBytes)));
    ASSERT_OK(st->flush());
    const StoreStats before = st->stats();
    // 16 passes of 4 zones each through a volume of 33 data zones: zones must be reused.
    for (std::uint64_t pass = 1; pass <= kPasses; ++pass)
      for (std::uint64_t at = 0; at < kBytes; at += 256 << 10)
        ASSERT_OK(st->write(id, at, bytes_of(1000 + pass * 100 + at / (256 << 10), 256 << 10)));
    const StoreStats after = st->stats();
    EXPECT_GE(after.zones_reset - before.zones_reset, 4 * (kPasses - 1))
        << "each pass emptied the zones of the pass before";
    EXPECT_LE(after.flushes - before.flushes, 1u) << "one commit at most, for the zones of the flushed data";
    EXPECT_EQ(after.cleaner_bytes_written, before.cleaner_bytes_written) << "nothing copied";
  }  // a crash
  auto st = test::open_store(*dev);
  const auto flushed = bytes_of(1000, kBytes);
  std::vector<std::uint8_t> got(256 << 10);
  for (std::uint64_t at = 0; at < kBytes; at += 256 << 10) {
    ASSERT_OK(st->read(id, at, got));
    for (std::size_t b = 0; b < got.size(); b += 4096) {  // block by block: old or new
      auto block = [&](const std::vector<std::uint8_t>& v, std::size_t from) {
        return std::equal(got.begin() + b, got.begin() + b + 4096, v.begin() + from);
      };
      bool known = block(flushed, at + b);
      for (std::uint64_t pass = 1; pass <= kPasses && !known; ++pass)
        known = block(bytes_of(1000 + pass * 100 + at / (256 << 10), 256 << 10), b);
      EXPECT_TRUE(known) << "block " << (at + b) / 4096 << " holds neither the flushed data nor a later write";
    }
  }
  st.reset();
  auto report = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
}

// The cleaner's moves keep the checksums of the records that put the blocks where they were:
// a zone it empties waits for a commit even when no durable record names it, or those records
// would be dropped and a replayed move would carry an older block's checksum (found in review:
// a flushed block read back as a checksum error after a crash).
TEST(Store, AZoneTheCleanerEmptiesKeepsTheRecordsItsMovesNeed) {
  auto dev = test::formatted_memory_device(40);
  std::uint32_t id = 0;
  const std::uint64_t zone_bytes = 768 << 10;
  {
    auto st = test::open_store(*dev);
    id = st->create_namespace("a", 2 * zone_bytes)->id;
    ASSERT_OK(st->write(id, 0, bytes_of(1, zone_bytes)));  // durable
    ASSERT_OK(st->flush());
    ASSERT_OK(st->write(id, 0, bytes_of(2, zone_bytes)));            // a new zone, no flush
    ASSERT_OK(st->write(id, 4096, bytes_of(3, zone_bytes - 4096)));  // all of it dead but block 0
    ASSERT_OK(st->clean_step());                                     // block 0 moves; the zone empties
    ASSERT_OK(st->flush());                                          // everything acknowledged is durable
  }                                                                  // a crash
  auto st = test::open_store(*dev);
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(id, 0, got));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), bytes_of(2, zone_bytes).begin())) << "block 0 as flushed";
}

// Two namespaces written in turns keep their data in separate zones: deleting one gives back
// every zone it held, by reset, with nothing copied, and the other keeps all of its data.
TEST(Store, InterleavedNamespacesKeepSeparateZonesSoDeleteCopiesNothing) {
  auto dev = test::formatted_memory_device();
  auto st = test::open_store(*dev);
  const std::uint32_t free_before = st->stats().free_zones;
  const std::uint32_t a = st->create_namespace("a", 8 << 20)->id;
  const std::uint32_t b = st->create_namespace("b", 8 << 20)->id;
  for (std::uint64_t i = 0; i < 48; ++i) {
    ASSERT_OK(st->write(a, i * 65536, bytes_of(100 + i, 65536)));
    ASSERT_OK(st->write(b, i * 65536, bytes_of(200 + i, 65536)));
  }
  ASSERT_OK(st->flush());
  const std::uint32_t used = free_before - st->stats().free_zones;  // 3 MiB each: 4 zones each
  EXPECT_EQ(used, 8u);
  const std::uint64_t written = st->stats().data_bytes_written + st->stats().cleaner_bytes_written;
  ASSERT_OK(st->delete_namespace("a"));
  EXPECT_EQ(free_before - st->stats().free_zones, used / 2) << "a's zones, and only those, came back";
  EXPECT_EQ(st->stats().data_bytes_written + st->stats().cleaner_bytes_written, written);  // nothing copied
  std::vector<std::uint8_t> got(65536);
  for (std::uint64_t i = 0; i < 48; ++i) {
    ASSERT_OK(st->read(b, i * 65536, got));
    ASSERT_TRUE(got == bytes_of(200 + i, 65536)) << "block run " << i;
  }
}

// Under sustained overwrites the cleaner works in slices beside the writes: no single write
// waits while a whole zone is copied, yet zones keep getting cleaned.
TEST(Store, CleaningRunsInSlicesBesideTheWrites) {
  auto dev = test::formatted_memory_device(48);
  auto st = test::open_store(*dev);
  const StoreStats empty = st->stats();
  const std::uint64_t usable = std::uint64_t(empty.data_zones - st->superblock().reserved_data_zones) * (768 << 10);
  const std::uint64_t size = usable * 3 / 4 / 4096 * 4096;
  const std::uint32_t id = st->create_namespace("hot", size)->id;
  for (std::uint64_t off = 0; off < size; off += 65536)
    ASSERT_OK(st->write(id, off, bytes_of(off, std::min<std::uint64_t>(65536, size - off))));
  std::mt19937_64 rng(5);
  std::uint64_t worst = 0;
  const std::uint64_t cleaned_before = st->stats().zones_cleaned;
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t before = st->stats().cleaner_bytes_written;
    ASSERT_OK(st->write(id, rng() % (size / 4096) * 4096, bytes_of(static_cast<std::uint64_t>(i), 4096)));
    worst = std::max(worst, st->stats().cleaner_bytes_written - before);
  }
  EXPECT_GT(st->stats().zones_cleaned - cleaned_before, 20u);
  EXPECT_LE(worst, 256u << 10) << "a write waited while " << worst << " bytes were copied (a zone is 768 KiB)";
}

TEST(Store, TheCleanerReclaimsOverwrittenZones) {
  auto dev = test::formatted_memory_device();
  auto st = test::open_store(*dev);
  const std::uint32_t a = st->create_namespace("a", 16 << 20)->id;
  // Overwrite a 12 MiB working set several times on a ~26 MiB device: cleaning must run.
  for (int round = 0; round < 6; ++round)
    for (std::uint64_t off = 0; off < (12 << 20); off += 256 << 10)
      ASSERT_OK(st->write(a, off, bytes_of(round * 100 + off / 4096, 256 << 10)));
  ASSERT_OK(st->flush());
  const StoreStats s = st->stats();
  EXPECT_GT(s.zones_cleaned + s.zones_reset, 0u);
  std::vector<std::uint8_t> got(256 << 10);
  for (std::uint64_t off = 0; off < (12 << 20); off += 256 << 10) {
    ASSERT_OK(st->read(a, off, got));
    ASSERT_EQ(got, bytes_of(500 + off / 4096, 256 << 10)) << off;
  }
  ASSERT_OK(st->close());
  auto r = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(r.exit_code(), 0) << fsck::to_text(r, true);
}

// How many blocks each zone's write pointer moved since `before` (zones that moved only).
std::map<std::uint32_t, std::uint64_t> appended_since(ZonedDevice& dev, const std::vector<ZoneInfo>& before) {
  std::map<std::uint32_t, std::uint64_t> moved;
  auto now = dev.report_zones(0, dev.geometry().zone_count);
  EXPECT_TRUE(now.ok());
  for (std::uint32_t z = 0; z < before.size(); ++z)
    if ((*now)[z].write_pointer > before[z].write_pointer) moved[z] = (*now)[z].write_pointer - before[z].write_pointer;
  return moved;
}
std::vector<ZoneInfo> zone_report(ZonedDevice& dev) { return *dev.report_zones(0, dev.geometry().zone_count); }

// A volume filled to what it can promise, with every stream in use, keeps taking overwrites:
// the cleaner, sorting what it copies into several streams, never needs more new zones than
// the reserve holds.
TEST(Store, AFullVolumeWithEveryStreamKeepsTakingOverwrites) {
  for (std::uint32_t zones : {16u, 24u, 40u}) {
    auto dev = test::formatted_memory_device(test::store_config_with_every_stream(zones));
    auto st = test::open_store(*dev);
    // What the volume can promise, less the zone that the namespace's own stream takes.
    const std::uint64_t size = st->stats().space_bytes - (768 << 10);
    auto created = st->create_namespace("full", size);
    ASSERT_TRUE(created.ok()) << zones << " zones: " << created.status().to_string();
    const std::uint32_t id = created->id;
    for (std::uint64_t off = 0; off < size; off += 65536)
      ASSERT_OK(st->write(id, off, bytes_of(off, std::min<std::uint64_t>(65536, size - off))));
    std::mt19937_64 rng(zones);
    const std::uint64_t blocks = size / 4096;
    for (int i = 0; i < 15000; ++i) {
      // 80/20: a fifth of the blocks take four fifths of the writes, so every age and stream occurs.
      const std::uint64_t b = rng() % 5 ? rng() % (blocks / 5) : blocks / 5 + rng() % (blocks - blocks / 5);
      Status s = st->write(id, b * 4096, bytes_of(static_cast<std::uint64_t>(i), 4096));
      ASSERT_TRUE(s.ok()) << zones << " zones, write " << i << ": " << s.to_string();
    }
    ASSERT_OK(st->close());
    auto r = fsck::check_volume(*dev, {false, true, nullptr});
    EXPECT_EQ(r.exit_code(), 0) << fsck::to_text(r, true);
  }
}

// A volume whose promises were made when the store kept two shared streams (here: it saw a
// zone limit of 8) keeps to two when it sees room for four, so every promise still holds.
TEST(Store, PromisesMadeWithTwoSharedStreamsHoldWhenTheLimitsAllowFour) {
  class SeenLimits : public test::BorrowedDevice {
   public:
    SeenLimits(ZonedDevice& d, std::uint32_t limit) : BorrowedDevice(d), g_(d.geometry()) {
      g_.max_open_zones = g_.max_active_zones = limit;
    }
    const Geometry& geometry() const override { return g_; }

   private:
    Geometry g_;
  };
  auto dev = test::formatted_memory_device(test::store_config_with_every_stream(24));
  std::uint64_t promised = 0;
  {
    auto st = Store::open(std::make_unique<SeenLimits>(*dev, 8));
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    promised = (*st)->stats().space_bytes - (768 << 10);  // all it can promise one namespace
    ASSERT_TRUE((*st)->create_namespace("a", promised).ok());
    ASSERT_OK((*st)->close());
  }
  auto st = test::open_store(*dev);  // limits 14: room for four shared streams
  EXPECT_GE(st->stats().space_bytes, st->stats().claimed_bytes) << "the volume promises more than it has";
  for (int round = 0; round < 3; ++round)
    for (std::uint64_t off = 0; off < promised; off += 65536)
      ASSERT_OK(st->write(
          1, off, bytes_of(off + static_cast<std::uint64_t>(round), std::min<std::uint64_t>(65536, promised - off))));
  ASSERT_OK(st->close());
  auto r = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(r.exit_code(), 0) << fsck::to_text(r, true);
}

// Overwrites go by how long the data they replace lived: short-lived data into the
// namespace's own zone, long-lived data into the user-cold zone; more of each keeps to its zone.
TEST(Store, OverwritesOfLongLivedDataGoToAZoneOfTheirOwn) {
  auto dev = test::formatted_memory_device(test::store_config_with_every_stream());
  auto st = test::open_store(*dev);
  const std::uint32_t a = st->create_namespace("a", 1 << 20)->id;
  ASSERT_OK(st->write(a, 0, bytes_of(1, 1 << 20)));  // 256 blocks, all born now
  for (int round = 0; round < 40; ++round)
    ASSERT_OK(st->write(a, 0, bytes_of(10 + round, 32 * 4096)));  // blocks 0-31 churn
  auto before = zone_report(*dev);
  ASSERT_OK(st->write(a, 0, bytes_of(100, 4096)));  // lived one round: hot
  const auto hot = appended_since(*dev, before);
  before = zone_report(*dev);
  ASSERT_OK(st->write(a, 200 * 4096, bytes_of(101, 4096)));  // lived since the start: cold
  const auto cold = appended_since(*dev, before);
  ASSERT_EQ(hot.size(), 1u);
  ASSERT_EQ(cold.size(), 1u);
  EXPECT_NE(hot.begin()->first, cold.begin()->first) << "short- and long-lived data share a zone";
  before = zone_report(*dev);
  ASSERT_OK(st->write(a, 1 * 4096, bytes_of(102, 4096)));
  ASSERT_OK(st->write(a, 201 * 4096, bytes_of(103, 4096)));
  const auto both = appended_since(*dev, before);
  EXPECT_EQ(both, (std::map<std::uint32_t, std::uint64_t>{{hot.begin()->first, 1}, {cold.begin()->first, 1}}));
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(a, 201 * 4096, got));
  EXPECT_EQ(got, bytes_of(103, 4096));
}

// A user write is hot (the namespace's own zone) only after three brief lives in a row: a
// block overwritten once soon after it was written may still be cold data (lifetimes are
// random), so it goes to the user-cold zone until the pattern holds.
TEST(Store, DataTurnsHotAfterThreeBriefLivesInARow) {
  // Whole 4 KiB blocks (the batch path), and 512-byte writes into a 512-byte namespace (read,
  // merged and rewritten: the synchronous path).
  for (const std::uint32_t bs : {4096u, 512u}) {
    SCOPED_TRACE("block size " + std::to_string(bs));
    auto dev = test::formatted_memory_device(test::store_config_with_every_stream());
    auto st = test::open_store(*dev);
    const std::uint32_t a = st->create_namespace("a", 1 << 20, bs)->id;
    ASSERT_OK(st->write(a, 0, bytes_of(1, 64 * 4096)));  // long-lived company: N = 64 and more
    auto before = zone_report(*dev);
    ASSERT_OK(st->write(a, 100 * 4096, bytes_of(2, bs)));  // new data: the namespace's zone
    const auto own = appended_since(*dev, before);
    ASSERT_EQ(own.size(), 1u);
    std::vector<std::uint32_t> went;  // the zone each overwrite of block 100 went to
    for (int life = 1; life <= 5; ++life) {
      before = zone_report(*dev);
      ASSERT_OK(st->write(a, 100 * 4096, bytes_of(2 + life, bs)));
      const auto appended = appended_since(*dev, before);
      ASSERT_EQ(appended.size(), 1u);
      went.push_back(appended.begin()->first);
    }
    const std::uint32_t hot = own.begin()->first, cold = went[0];
    EXPECT_NE(cold, hot) << "one brief life made the data hot";
    EXPECT_EQ(went, (std::vector<std::uint32_t>{cold, cold, hot, hot, hot}));
    std::vector<std::uint8_t> got(bs);
    ASSERT_OK(st->read(a, 100 * 4096, got));
    EXPECT_EQ(got, bytes_of(7, bs));
    ASSERT_OK(st->close());
    auto r = fsck::check_volume(*dev, {false, true, nullptr});
    EXPECT_EQ(r.exit_code(), 0) << fsck::to_text(r, true);
  }
}

// The cleaner sorts what it copies by age, and data keeps its age (and its streak of brief
// lives) when moved: a zone holding old and young data is copied into two zones, and the
// young data, overwritten after the move, still counts as hot.
TEST(Store, TheCleanerSortsByAgeAndMovedDataKeepsItsAge) {
  auto dev = test::formatted_memory_device(test::store_config_with_every_stream());
  auto st = test::open_store(*dev);
  const std::uint32_t x = st->create_namespace("x", 1 << 20)->id;
  const std::uint32_t y = st->create_namespace("y", 1 << 20)->id;
  auto before = zone_report(*dev);
  ASSERT_OK(st->write(x, 0, bytes_of(1, 64 * 4096)));  // old: x blocks 0-63
  const auto first = appended_since(*dev, before);
  ASSERT_EQ(first.size(), 1u);
  const std::uint32_t zx = first.begin()->first;
  for (int round = 0; round < 40; ++round)
    ASSERT_OK(st->write(y, 0, bytes_of(10 + round, 32 * 4096)));  // time passes in y
  // Young and hot: x blocks 64-127 written four times in quick succession. The first (new
  // data) and the last (after three brief lives) land in zx, filling it; the two between go
  // to the user-cold zone.
  for (int pass = 0; pass < 4; ++pass) ASSERT_OK(st->write(x, 64 * 4096, bytes_of(2 + pass, 64 * 4096)));
  ASSERT_EQ(zone_report(*dev)[zx].state, ZoneState::kFull);
  ASSERT_OK(st->write(x, 192 * 4096, bytes_of(9, 4096)));  // the next write takes zx out of x's stream
  ASSERT_OK(st->trim(x, 0, 32 * 4096));                    // half of each dies
  ASSERT_OK(st->trim(x, 64 * 4096, 32 * 4096));
  ASSERT_OK(st->flush());
  std::map<std::uint32_t, std::uint64_t> copies;
  for (int step = 0; step < 40 && zone_report(*dev)[zx].write_pointer != zone_report(*dev)[zx].start; ++step) {
    before = zone_report(*dev);
    ASSERT_OK(st->clean_step());
    copies = appended_since(*dev, before);
  }
  ASSERT_EQ(zone_report(*dev)[zx].write_pointer, zone_report(*dev)[zx].start) << "zx was never cleaned";
  std::vector<std::uint64_t> sizes;
  for (const auto& [zone, blocks] : copies)
    if (blocks >= 32) sizes.push_back(blocks);  // (the journal and checkpoint grow too)
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{32, 32}))
      << "the 32 old and 32 young blocks should be copied into two zones";
  // Young data moved is still young and hot: its overwrite goes to x's own zone, not the
  // user-cold one.
  before = zone_report(*dev);
  ASSERT_OK(st->write(x, 120 * 4096, bytes_of(7, 4096)));
  ASSERT_OK(st->write(x, 40 * 4096, bytes_of(8, 4096)));  // old data: the user-cold zone
  const auto moved = appended_since(*dev, before);
  EXPECT_EQ(moved.size(), 2u) << "young and old overwrites went to one zone";
  // zx, reset by the cleaner, took the young overwrite before any flush: the commit naming it
  // flushes that data (and the reset) before its journal blocks, not with them, or a power
  // cut could keep the blocks and lose the reset (format.md §2.4).
  ASSERT_TRUE(moved.count(zx)) << "the young overwrite did not go to zx, just reset";
  const std::uint64_t one_flush = st->stats().one_flush_commits;
  ASSERT_OK(st->flush());
  EXPECT_EQ(st->stats().one_flush_commits, one_flush) << "a one-flush commit named data in a zone it resets";
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(x, 110 * 4096, got));  // moved, never overwritten: block 46 of the last young write
  const auto young = bytes_of(5, 64 * 4096);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), young.begin() + 46 * 4096));
  ASSERT_OK(st->close());
  auto r = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(r.exit_code(), 0) << fsck::to_text(r, true);
}

}  // namespace
}  // namespace nyads

namespace nyads {
namespace {

// One device flush makes a small commit durable with its data (format.md §2.4); a commit that
// names more than 4 MiB of data flushes the data first. Counted by the faulty backend's events.
TEST(Store, SmallCommitsTakeOneFlushLargeOnesTwo) {
  FaultyDevice faulty(test::formatted_memory_device());
  auto st = test::open_store(faulty);
  const std::uint32_t a = st->create_namespace("a", 16 << 20)->id;
  auto flushes = [&] {
    return std::count_if(faulty.events().begin(), faulty.events().end(),
                         [](const FaultyDevice::Event& e) { return e.kind == FaultyDevice::Event::Kind::kFlush; });
  };
  auto before = flushes();
  ASSERT_OK(st->write(a, 0, test::bytes_of(1, 65536)));
  ASSERT_OK(st->flush());
  EXPECT_EQ(flushes() - before, 1);
  EXPECT_EQ(st->stats().one_flush_commits, 1u);
  before = flushes();
  ASSERT_OK(st->write(a, 65536, test::bytes_of(2, 5 << 20)));
  ASSERT_OK(st->flush());
  EXPECT_EQ(flushes() - before, 2);
  EXPECT_EQ(st->stats().one_flush_commits, 1u);
  // Off: two flushes always.
  st.reset();
  auto two = test::open_store(faulty, {.one_flush_commits = false});
  before = flushes();
  ASSERT_OK(two->write(a, 0, test::bytes_of(3, 4096)));
  ASSERT_OK(two->flush());
  EXPECT_EQ(flushes() - before, 2);
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(two->read(a, 0, got));
  EXPECT_EQ(got, test::bytes_of(3, 4096));
}

namespace {
// The data zones of a volume that hold exactly `blocks` device blocks.
std::vector<std::uint32_t> data_zones_holding(ZonedDevice& d, const format::Superblock& sb, std::uint64_t blocks) {
  std::vector<std::uint32_t> out;
  auto zones = d.report_zones(sb.data_zones.first, sb.data_zones.count);
  EXPECT_TRUE(zones.ok());
  for (std::uint32_t i = 0; i < sb.data_zones.count; ++i)
    if ((*zones)[i].write_pointer - (*zones)[i].start == blocks) out.push_back(sb.data_zones.first + i);
  return out;
}
}  // namespace

// The journal's last commit, made durable by one flush with its data, is trusted only if its
// data is there: here the power took it (its zone comes back empty). Opening drops that commit
// (and only it), and the journal goes on after it.
TEST(Store, ALastOneFlushCommitWhoseDataDidNotLandIsDropped) {
  auto dev = test::formatted_memory_device();
  const std::size_t zone_bytes = 768 << 10;  // store_config(): one zone's capacity
  std::uint32_t a = 0;
  format::Superblock sb;
  {
    auto st = test::open_store(*dev);
    sb = st->superblock();
    a = st->create_namespace("a", 4 << 20)->id;
    ASSERT_OK(st->write(a, 0, test::bytes_of(1, zone_bytes)));  // fills the stream's zone
    ASSERT_OK(st->flush());
    ASSERT_OK(st->write(a, zone_bytes, test::bytes_of(2, 4096)));  // the next zone
    ASSERT_OK(st->flush());
    EXPECT_EQ(st->stats().one_flush_commits, 2u);
  }  // a crash: no close
  const auto last = data_zones_holding(*dev, sb, 1);
  ASSERT_EQ(last.size(), 1u);
  ASSERT_OK(dev->manage_zone(ZoneAction::kReset, last[0]));  // the power lost that data
  ASSERT_OK(SyncDevice(*dev).flush());
  {
    auto st = test::open_store(*dev);
    ASSERT_TRUE(st);
    EXPECT_EQ(st->stats().checkpoints, 1u) << "opening moves the journal past the dropped commit";
    std::vector<std::uint8_t> got(zone_bytes);
    ASSERT_OK(st->read(a, 0, got));
    EXPECT_EQ(got, test::bytes_of(1, zone_bytes)) << "the commit before it stands";
    std::vector<std::uint8_t> dropped(4096);
    ASSERT_OK(st->read(a, zone_bytes, dropped));
    EXPECT_TRUE(std::all_of(dropped.begin(), dropped.end(), [](std::uint8_t c) { return c == 0; }))
        << "the dropped commit's write is gone";
    ASSERT_OK(st->write(a, zone_bytes, test::bytes_of(3, 4096)));
    ASSERT_OK(st->flush());
  }
  auto st = test::open_store(*dev);
  ASSERT_TRUE(st);
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(a, zone_bytes, got));
  EXPECT_EQ(got, test::bytes_of(3, 4096));
}

// After a crash of the store alone, the journal's last one-flush commit reads back from the
// device (a drive's volatile cache could serve it) whether it is durable or not: opening flushes
// before it writes anything, so that no later block vouches for it unflushed.
TEST(Store, OpeningFlushesALastOneFlushCommitItReadBackBeforeWritingAnything) {
  FaultyDevice faulty(test::formatted_memory_device());
  std::uint32_t a = 0;
  {
    auto st = test::open_store(faulty);
    a = st->create_namespace("a", 1 << 20)->id;
    ASSERT_OK(st->write(a, 0, test::bytes_of(1, 8192)));
    faulty.fail_flushes(true);
    EXPECT_EQ(st->flush().code(), Code::kIoError);  // its journal blocks are written, not flushed
    faulty.clear_faults();
  }  // the store dies; the device keeps power
  const std::size_t mark = faulty.events().size();
  auto st = test::open_store(faulty);
  ASSERT_TRUE(st);
  ASSERT_OK(st->write(a, 8192, test::bytes_of(2, 4096)));
  ASSERT_OK(st->flush());
  ASSERT_GT(faulty.events().size(), mark);
  EXPECT_EQ(faulty.events()[mark].kind, FaultyDevice::Event::Kind::kFlush) << "opening wrote before it flushed";
  std::vector<std::uint8_t> got(8192);
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_EQ(got, test::bytes_of(1, 8192));
}

// Superblocks that cannot be read say nothing of what the device holds: the open fails with the
// I/O error, with no advice to format the device. Damaged ones are corruption, and fsck's job.
TEST(Store, UnreadableSuperblocksAreAnIoErrorNotAnInvalidVolume) {
  FaultyDevice faulty(test::formatted_memory_device());
  const Geometry& g = faulty.geometry();
  faulty.fail_reads(0, 2 * g.zone_size);  // superblock zones 0 and 1
  auto failed = Store::open(std::make_unique<test::BorrowedDevice>(faulty), {});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kIoError) << failed.status().to_string();
  EXPECT_NE(failed.status().message().find("cannot read its superblocks"), std::string::npos)
      << failed.status().message();
  EXPECT_NE(failed.status().message().find("injected read error"), std::string::npos) << failed.status().message();
  EXPECT_EQ(failed.status().message().find("mkfs"), std::string::npos) << failed.status().message();
  // One readable copy is enough.
  faulty.clear_faults();
  faulty.fail_reads(0, g.zone_size);
  EXPECT_TRUE(Store::open(std::make_unique<test::BorrowedDevice>(faulty), {}).ok());
  faulty.clear_faults();
  EXPECT_TRUE(test::open_store(faulty));
}

// Reading the last one-flush commit's data back can fail: the open fails, and the commit is not
// dropped for it. With the fault gone, it opens with the data.
TEST(Store, AReadErrorCheckingTheLastOneFlushCommitFailsTheOpen) {
  FaultyDevice faulty(test::formatted_memory_device());
  std::uint32_t a = 0;
  format::Superblock sb;
  {
    auto st = test::open_store(faulty);
    sb = st->superblock();
    a = st->create_namespace("a", 1 << 20)->id;
    ASSERT_OK(st->write(a, 0, test::bytes_of(1, 8192)));
    ASSERT_OK(st->flush());
  }  // a crash
  const Geometry& g = faulty.geometry();
  faulty.fail_reads(g.zone_start(sb.data_zones.first), g.zone_size * sb.data_zones.count);
  auto failed = Store::open(std::make_unique<test::BorrowedDevice>(faulty), {});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("injected read error"), std::string::npos) << failed.status().message();
  faulty.clear_faults();
  auto st = test::open_store(faulty);
  ASSERT_TRUE(st);
  std::vector<std::uint8_t> got(8192);
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_EQ(got, test::bytes_of(1, 8192));
}

// Below its zone's write pointer the device holds what was written: a block of the last
// one-flush commit that does not match its checksum there is damage, an error, never taken for
// a write the power lost.
TEST(Store, DamageToTheLastOneFlushCommitsDataIsAnError) {
  test::TempDir dir;
  const std::string path = dir.file("v.img");
  std::uint64_t lba = 0;
  {
    auto d = EmulatedDevice::create_file(path, test::store_config());
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(mkfs::format_volume(**d, {}).ok());
    auto st = Store::open(std::move(*d));
    ASSERT_TRUE(st.ok());
    const std::uint32_t a = (*st)->create_namespace("a", 1 << 20)->id;
    ASSERT_OK((*st)->close());  // a checkpoint: the next commit is the journal's last
    lba = test::store_config().geometry().zone_start((*st)->superblock().data_zones.first);
    ASSERT_OK((*st)->write(a, 0, test::bytes_of(1, 8192)));
    ASSERT_OK((*st)->flush());
    EXPECT_EQ((*st)->stats().one_flush_commits, 1u);
  }  // a crash after the flush
  test::flip_byte(path, test::store_config(), lba + 1, 100);
  auto d = open_zoned_device(path);
  ASSERT_TRUE(d.ok());
  auto st = Store::open(std::move(*d));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kCorruption) << st.status().to_string();
  EXPECT_NE(st.status().message().find("does not match its checksum, below the zone's write pointer"),
            std::string::npos)
      << st.status().message();
}

// A zone the journal's last one-flush commit put data into is not reset, even emptied, until
// a later commit is durable: replay would read that data back, and find it gone.
TEST(Store, AZoneTheLastOneFlushCommitNamesIsResetOnlyAfterTheNextCommit) {
  auto dev = test::formatted_memory_device();
  const std::size_t zone_bytes = 768 << 10;
  auto st = test::open_store(*dev);
  const format::Superblock sb = st->superblock();
  const std::uint32_t a = st->create_namespace("a", 4 << 20)->id;
  ASSERT_OK(st->write(a, 0, test::bytes_of(1, zone_bytes - 4096)));
  ASSERT_OK(st->flush());  // the zone is referenced by a durable commit now
  const auto zone = data_zones_holding(*dev, sb, zone_bytes / 4096 - 1);
  ASSERT_EQ(zone.size(), 1u);
  ASSERT_OK(st->write(a, zone_bytes - 4096, test::bytes_of(2, 4096)));  // fills it
  ASSERT_OK(st->write(a, zone_bytes, test::bytes_of(3, 4096)));         // the stream moves on
  ASSERT_OK(st->trim(a, 0, zone_bytes));                                // and the zone holds nothing live
  ASSERT_OK(st->flush());                                               // one flush; its records name the zone
  EXPECT_EQ(st->stats().one_flush_commits, 2u);
  EXPECT_EQ((*dev->report_zones(zone[0], 1))[0].state, ZoneState::kFull) << "reset while the last commit names it";
  ASSERT_OK(st->write(a, zone_bytes + 4096, test::bytes_of(4, 4096)));
  ASSERT_OK(st->flush());  // a later commit: the zone is free to go
  EXPECT_EQ((*dev->report_zones(zone[0], 1))[0].state, ZoneState::kEmpty);
}

TEST(Store, InjectedIoErrorsSurfaceAsErrors) {
  FaultyDevice faulty(test::formatted_memory_device());
  auto st = test::open_store(faulty);
  const std::uint32_t a = st->create_namespace("a", 1 << 20)->id;
  ASSERT_OK(st->write(a, 0, test::bytes_of(1, 8192)));
  ASSERT_OK(st->flush());
  const Geometry& g = faulty.geometry();
  const std::uint32_t first_data = st->superblock().data_zones.first;
  faulty.fail_reads(g.zone_start(first_data), g.zone_size * (g.zone_count - first_data));
  std::vector<std::uint8_t> got(8192);
  Status r = st->read(a, 0, got);
  EXPECT_EQ(r.code(), Code::kIoError);
  EXPECT_NE(r.message().find("injected read error"), std::string::npos) << r.message();
  faulty.clear_faults();
  for (std::uint32_t z = first_data; z < g.zone_count; ++z) faulty.fail_writes_to_zone(z);
  EXPECT_EQ(st->write(a, 8192, test::bytes_of(2, 4096)).code(), Code::kIoError);
  faulty.clear_faults();
  ASSERT_OK(st->write(a, 8192, test::bytes_of(2, 4096)));
  faulty.fail_flushes(true);
  EXPECT_EQ(st->flush().code(), Code::kIoError);
  faulty.clear_faults();
  // With the faults gone, the store goes on.
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_EQ(got, test::bytes_of(1, 8192));
  ASSERT_OK(st->write(a, 8192, test::bytes_of(3, 4096)));
  ASSERT_OK(st->flush());
}

// A commit whose journal write fails has lost the records it was writing: every later commit
// fails too (a flush that succeeded would promise what is not durable); opening the volume
// again brings back what is durable.
TEST(Store, AFailedJournalWriteFailsEveryLaterCommit) {
  FaultyDevice faulty(test::formatted_memory_device());
  auto st = test::open_store(faulty);
  const std::uint32_t a = st->create_namespace("a", 1 << 20)->id;
  ASSERT_OK(st->write(a, 0, test::bytes_of(1, 4096)));
  ASSERT_OK(st->flush());
  ASSERT_OK(st->write(a, 4096, test::bytes_of(2, 4096)));
  const auto journal = st->superblock().journal_zones;
  for (std::uint32_t z = journal.first; z < journal.end(); ++z) faulty.fail_writes_to_zone(z);
  EXPECT_EQ(st->flush().code(), Code::kIoError);
  faulty.clear_faults();
  const Status again = st->flush();
  EXPECT_EQ(again.code(), Code::kIoError) << "a flush after the journal lost records succeeded";
  EXPECT_NE(again.message().find("lost records"), std::string::npos) << again.message();
  EXPECT_EQ(st->write(a, 8192, test::bytes_of(3, 4096), /*fua=*/true).code(), Code::kIoError);
  st.reset();  // the daemon stops; the volume opens again
  st = test::open_store(faulty);
  ASSERT_NE(st, nullptr);
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(a, 0, got));
  EXPECT_EQ(got, test::bytes_of(1, 4096));
  ASSERT_OK(st->write(a, 8192, test::bytes_of(4, 4096)));
  ASSERT_OK(st->flush());
}

}  // namespace
}  // namespace nyads

namespace nyads {
namespace {

// fsck's map checks on a volume the store wrote: --scrub reads every live block; a damaged
// block, and two namespaces claiming one device block, are named with zone and offset.
// Volumes made before packed extents lack the packed_extents feature and hold kind-2
// checkpoints: they open, fsck reads them, and the store keeps writing kind 2 there (so a
// build that predates kind 5 can still open them); a new volume's checkpoints are packed, and
// a packed checkpoint on a volume without the feature is refused.
TEST(StoreFsck, VolumesWithoutThePackedFeatureKeepFixedWidthCheckpoints) {
  auto dev = test::formatted_memory_device();
  std::uint32_t id = 0;
  std::map<std::uint64_t, std::vector<std::uint8_t>> written;
  {
    auto st = test::open_store(*dev);
    id = st->create_namespace("old", 8 << 20)->id;
    for (std::uint64_t i = 0; i < 40; ++i) {
      const std::uint64_t offset = i * 37 * 4096;
      written[offset] = bytes_of(static_cast<int>(i + 5), 4096 * (1 + i % 3));
      ASSERT_OK(st->write(id, offset, written[offset]));
    }
    ASSERT_OK(st->close());
  }
  auto sb = scan_superblock_zone(*dev, 0).newest;
  ASSERT_TRUE(sb);
  ASSERT_TRUE(sb->incompat & format::feature::kIncompatPackedExtents) << "mkfs sets the feature";
  ASSERT_TRUE(sb->incompat & format::feature::kIncompatExtentIndex) << "mkfs sets the feature";
  // The kind of the newest checkpoint's first extent block (after its namespaces and index).
  auto first_body_kind = [&]() {
    auto search = load_newest_checkpoint(*dev, *sb);
    EXPECT_TRUE(search.newest);
    for (std::uint64_t i = 1; i < search.newest->commit.block_count; ++i) {
      AlignedBuffer b;
      EXPECT_OK(MetaIo(*dev).read(search.newest->commit.zones.front(), i, 1, &b));
      auto block = format::decode_checkpoint_block(b.span(), sb->seed(), "test");
      EXPECT_TRUE(block.ok()) << block.status().to_string();
      if (!block.ok()) break;
      if (block->kind() == format::CheckpointKind::kExtents || block->kind() == format::CheckpointKind::kPackedExtents)
        return block->kind();
    }
    return format::CheckpointKind::kCommit;
  };
  ASSERT_EQ(first_body_kind(), format::CheckpointKind::kPackedExtents);
  const LoadedCheckpoint cp = *load_newest_checkpoint(*dev, *sb).newest;
  // The volume as an older mkfs made it: no packed_extents feature (both superblock copies).
  format::Superblock old_sb = *sb;
  old_sb.incompat = format::feature::kIncompatDataChecksum32;
  ++old_sb.generation;
  // Each feature on its own: a packed block, an index block, is refused without its bit.
  auto refused_without = [&](std::uint64_t bit, const std::string& message) {
    format::Superblock without = *sb;
    without.incompat &= ~bit;
    auto refused = load_newest_checkpoint(*dev, without);
    bool said = false;
    for (const auto& p : refused.problems) said |= p.find(message) != std::string::npos;
    EXPECT_TRUE(said) << message;
  };
  refused_without(format::feature::kIncompatPackedExtents,
                  "packed extents on a volume without the packed_extents feature");
  refused_without(format::feature::kIncompatExtentIndex,
                  "an extent index on a volume without the extent_index feature");
  for (std::uint32_t zone : {0u, 1u}) {
    ASSERT_OK(dev->manage_zone(ZoneAction::kReset, zone));
    AlignedBuffer block(format::kMetaBlockSize);
    format::encode_superblock(old_sb, block.span());
    MetaIo io(*dev);
    ASSERT_TRUE(io.write(zone, block).ok());
    ASSERT_OK(io.flush());
    ASSERT_OK(dev->manage_zone(ZoneAction::kFinish, zone));
  }
  sb = scan_superblock_zone(*dev, 0).newest;
  ASSERT_EQ(sb->incompat, format::feature::kIncompatDataChecksum32);
  // ... and its checkpoint as an older build wrote it: fixed-width extents (kind 2).
  {
    ASSERT_TRUE(write_checkpoint_beside(*dev, *sb, cp.seq + 1,
                                        pack_checkpoint({cp.namespaces,
                                                         [&](const ExtentVisitor& visit) {
                                                           for (const auto& e : cp.extents)
                                                             visit(e.ns_id, e.vblock, e.lba, e.checksums);
                                                         },
                                                         cp.zones},
                                                        1, {false, false}),
                                        cp.commit, cp.commit.zones)
                    .ok());
  }
  ASSERT_EQ(first_body_kind(), format::CheckpointKind::kExtents);
  auto report = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  EXPECT_EQ(report.scrubbed_blocks, report.live_blocks);
  auto st = test::open_store(*dev);
  for (const auto& [offset, data] : written) {
    std::vector<std::uint8_t> got(data.size());
    ASSERT_OK(st->read(id, offset, got));  // writes start 37 blocks apart: none overlaps another
    EXPECT_EQ(got, data) << "offset " << offset;
  }
  ASSERT_OK(st->write(id, 0, bytes_of(99, 4096)));
  ASSERT_OK(st->checkpoint());
  EXPECT_EQ(first_body_kind(), format::CheckpointKind::kExtents)
      << "no packed checkpoint on a volume without the feature";
  ASSERT_OK(st->close());
  EXPECT_EQ(fsck::check_volume(*dev, {false, true, nullptr}).exit_code(), 0);
}

// A checkpoint is read back in pieces of 1 MiB through one buffer (a checkpoint zone can be
// hundreds of MiB): one of more than a zone, with zones of several pieces, reads back whole,
// every checksum in place.
TEST(StoreCheckpoint, ACheckpointOfManyPiecesAndZonesReadsBackWhole) {
  EmulatedConfig c = test::store_config();
  c.zone_size_bytes = c.zone_capacity_bytes = 3 << 20;  // 768 metadata blocks a zone: three pieces
  auto made = EmulatedDevice::create_memory(c);
  ASSERT_TRUE(made.ok());
  auto dev = std::move(*made);
  mkfs::Options o;
  o.layout.checkpoint_zones = 4;
  ASSERT_TRUE(mkfs::format_volume(*dev, o).ok());
  auto sb = scan_superblock_zone(*dev, 0).newest;
  ASSERT_TRUE(sb);
  auto before = load_newest_checkpoint(*dev, *sb).newest;
  ASSERT_TRUE(before);
  // ~15 extents of 64 blocks a metadata block: 15000 of them take ~1000 blocks.
  std::vector<format::NamespaceEntry> namespaces{{1, 0, 4096, 1ull << 40, 0, "big"}};
  std::vector<format::record::Extent> extents;
  std::mt19937 rng(7);
  for (std::uint64_t i = 0; i < 15000; ++i) {
    format::record::Extent e{1, i * 100, sb->data_zones.first * c.zone_size_bytes / 4096 + i * 64,
                             std::vector<std::uint32_t>(64)};
    for (auto& sum : e.checksums) sum = rng();
    extents.push_back(std::move(e));
  }
  const auto bodies = pack_checkpoint({namespaces,
                                       [&](const ExtentVisitor& visit) {
                                         for (const auto& e : extents) visit(e.ns_id, e.vblock, e.lba, e.checksums);
                                       },
                                       before->zones},
                                      1, CheckpointLayout::of(*sb));
  ASSERT_GT(bodies.size(), 2 * 256u) << "more than two pieces";
  auto used = write_checkpoint_beside(*dev, *sb, before->seq + 1, bodies, before->commit, before->commit.zones);
  ASSERT_TRUE(used.ok()) << used.status().to_string();
  ASSERT_GE(used->size(), 2u) << "more than a zone";
  auto after = load_newest_checkpoint(*dev, *sb);
  ASSERT_TRUE(after.newest) << (after.problems.empty() ? "" : after.problems.front());
  EXPECT_EQ(after.newest->seq, before->seq + 1) << (after.problems.empty() ? "" : after.problems.front());
  EXPECT_EQ(after.newest->namespaces, namespaces);
  // Block by block (the packer splits an extent where a metadata block fills up).
  auto blocks_of = [](const std::vector<format::record::Extent>& v) {
    std::vector<std::tuple<std::uint64_t, std::uint64_t, std::uint32_t>> out;
    for (const auto& e : v)
      for (std::size_t k = 0; k < e.checksums.size(); ++k) out.emplace_back(e.vblock + k, e.lba + k, e.checksums[k]);
    return out;
  };
  EXPECT_TRUE(blocks_of(after.newest->extents) == blocks_of(extents));
}

// Opening builds the maps while it reads the checkpoint. When the newest checkpoint turns out
// damaged after its extents went into the maps, they are dropped and the older checkpoint's
// maps are built anew: an extent only the damaged one holds is not read. Both ways: the older
// checkpoint with extents of its own (blocks 0-3), and with none.
void damaged_newest_checkpoint_falls_back(bool older_has_extents) {
  test::TempDir dir;
  const std::string path = dir.file("v.img");
  const EmulatedConfig c = test::store_config();
  const auto data = bytes_of(3, 16384);
  std::uint32_t id = 0;
  format::record::Extent block_100;  // as a checkpoint held it, with its checksum
  {
    auto d = EmulatedDevice::create_file(path, c);
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(mkfs::format_volume(**d, {}).ok());
    auto st = test::open_store(**d);
    id = st->create_namespace("a", 1 << 20)->id;
    if (older_has_extents) {
      ASSERT_OK(st->write(id, 0, data));
    }
    ASSERT_OK(st->write(id, 100 * 4096, std::span(data).first(4096)));
    ASSERT_OK(st->checkpoint());
    auto with_100 = load_newest_checkpoint(**d, st->superblock()).newest;
    ASSERT_TRUE(with_100);
    for (const auto& e : with_100->extents)
      if (e.vblock == 100) block_100 = e;
    ASSERT_EQ(block_100.checksums.size(), 1u);
    ASSERT_OK(st->trim(id, 100 * 4096, 4096));
    ASSERT_OK(st->close());  // checkpoint 1: blocks 0-3 of "a", or nothing
  }
  auto open_device = [&] {
    auto d = open_zoned_device(path);
    EXPECT_TRUE(d.ok());
    return std::move(*d);
  };
  // Checkpoint 2: checkpoint 1, block 100 of "a" as it was before the trim, and a namespace
  // "ghost".
  std::uint64_t zones_block = 0, zones_position = 0, one_seq = 0;
  {
    auto d = open_device();
    auto sb = scan_superblock_zone(*d, 0).newest;
    ASSERT_TRUE(sb);
    auto one = load_newest_checkpoint(*d, *sb).newest;
    ASSERT_TRUE(one);
    ASSERT_EQ(one->extents.size(), older_has_extents ? 1u : 0u);
    one_seq = one->seq;
    auto extents = one->extents;
    extents.push_back(block_100);
    auto namespaces = one->namespaces;
    namespaces.push_back({id + 1, 0, 4096, 1 << 20, 0, "ghost"});
    auto commit = one->commit;
    commit.next_ns_id = id + 2;
    const auto bodies = pack_checkpoint({namespaces,
                                         [&](const ExtentVisitor& visit) {
                                           for (const auto& e : extents) visit(e.ns_id, e.vblock, e.lba, e.checksums);
                                         },
                                         one->zones},
                                        1, CheckpointLayout::of(*sb));
    auto used = write_checkpoint_beside(*d, *sb, one->seq + 1, bodies, commit, one->commit.zones);
    ASSERT_TRUE(used.ok()) << used.status().to_string();
    // namespaces, the extent index, extents, zones, commit: the zones block is the last body.
    ASSERT_TRUE(std::holds_alternative<std::vector<format::ZoneEntry>>(bodies.back()));
    zones_position = bodies.size() - 1;
    zones_block = MetaIo(*d).lba(used->front(), zones_position);
  }
  std::vector<std::uint8_t> got(4096);
  {
    auto st = Store::open(open_device());
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    ASSERT_OK((*st)->read(id, 100 * 4096, got));
    ASSERT_TRUE(std::equal(got.begin(), got.end(), data.begin())) << "checkpoint 2 maps block 100";
    ASSERT_TRUE((*st)->find_namespace("ghost").ok());
  }  // dropped without a close: opening wrote nothing
  test::flip_byte(path, c, zones_block, 100);
  {  // Checkpoint 2's extents are streamed before its damage is found; checkpoint 1 wins.
    auto d = open_device();
    std::set<std::uint64_t> streamed;
    auto search = load_newest_checkpoint(
        *d, *scan_superblock_zone(*d, 0).newest,
        [&](const LoadedCheckpoint& so_far, format::record::Extent&) { streamed.insert(so_far.seq); });
    ASSERT_TRUE(search.newest);
    EXPECT_EQ(search.newest->seq, one_seq);
    EXPECT_TRUE(streamed.count(one_seq + 1)) << "checkpoint 2's extents went out before its damaged block";
    ASSERT_EQ(search.problems.size(), 1u);
    EXPECT_NE(search.problems[0].find("block " + std::to_string(zones_position) + " "), std::string::npos)
        << search.problems[0];
  }
  auto st = Store::open(open_device());
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  ASSERT_OK((*st)->read(id, 100 * 4096, got));
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](std::uint8_t b) { return b == 0; }))
      << "block 100 is checkpoint 2's alone";
  std::vector<std::uint8_t> first(16384);
  ASSERT_OK((*st)->read(id, 0, first));
  if (older_has_extents) {
    EXPECT_EQ(first, data);
  } else {
    EXPECT_TRUE(std::all_of(first.begin(), first.end(), [](std::uint8_t b) { return b == 0; }));
  }
  EXPECT_EQ((*st)->find_namespace("ghost").status().code(), Code::kNotFound) << "a namespace of checkpoint 2 alone";
}

TEST(StoreCheckpoint, ACheckpointDamagedAfterItsExtentsLeavesNothingOfThemInTheMaps) {
  SCOPED_TRACE("the older checkpoint maps blocks 0-3");
  damaged_newest_checkpoint_falls_back(true);
}

TEST(StoreCheckpoint, ACheckpointDamagedAfterItsExtentsLeavesNothingOfThemWhenTheOlderHasNone) {
  damaged_newest_checkpoint_falls_back(false);
}

TEST(StoreFsck, ScrubAndOverlapsAreFound) {
  test::TempDir dir;
  const std::string path = dir.file("v.img");
  const std::uint64_t lba = make_file_volume(path, 16384).first_lba;
  {
    auto d = open_zoned_device(path);
    auto clean = fsck::check_volume(**d, {false, true, nullptr});
    EXPECT_EQ(clean.exit_code(), 0) << fsck::to_text(clean, true);
    EXPECT_EQ(clean.scrubbed_blocks, 4u);
    EXPECT_EQ(clean.live_blocks, 4u);
    // A second namespace whose extent claims the first one's blocks, through the journal.
    auto sb = scan_superblock_zone(**d, 0).newest;
    ASSERT_TRUE(sb);
    MetaIo io(**d);
    AlignedBuffer b(format::kMetaBlockSize);
    auto search = load_newest_checkpoint(**d, *sb);
    ASSERT_TRUE(search.newest);
    const auto& c = search.newest->commit;
    ASSERT_OK(format::encode_journal_block(
        {c.journal_seq,
         {format::record::NamespaceCreate{9, 4096, 1 << 20, "b"}, format::record::Extent{9, 0, lba + 1, {1}}}},
        sb->seed(), b.span()));
    ASSERT_TRUE(io.write(c.journal_zone, b).ok());
    ASSERT_OK(io.flush());
    auto overlap = fsck::check_volume(**d, {false, false, nullptr});
    EXPECT_EQ(overlap.exit_code(), 4);
    bool found = false;
    for (const auto& p : overlap.problems)
      found |= p.structure == "map" &&
               p.message.find("both live at device block " + std::to_string(lba + 1)) != std::string::npos;
    EXPECT_TRUE(found) << fsck::to_text(overlap, false);
  }
  {
    const auto layout = emulated_format::layout_for(test::store_config());
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.data_offset + (lba + 2) * 4096 + 7));
    f.put('\x01');
  }
  auto d = open_zoned_device(path);
  auto scrubbed = fsck::check_volume(**d, {false, true, nullptr});
  bool bad_block = false;
  for (const auto& p : scrubbed.problems)
    bad_block |= p.structure == "data" &&
                 p.message.find("namespace 'a' block 2: checksum mismatch") != std::string::npos &&
                 p.offset == 2 * 4096;
  EXPECT_TRUE(bad_block) << fsck::to_text(scrubbed, false);
}

}  // namespace
}  // namespace nyads
