// What a flush of the emulated file backend costs in syncs, what a failed sync does, and that
// writeback of the file starts as data arrives.
// This binary defines fdatasync itself, which the device (linked into it) calls instead of
// libc's: it counts the calls, and fails them on demand.
//
// A failed fdatasync fails every later flush: the kernel reports a failed writeback to one
// fdatasync only and marks the pages clean, so a later fdatasync would succeed over data that
// may be gone.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "test_util.h"
#include "zns/emulated_format.h"

namespace {
std::atomic<int> g_fail_with{0};  // the errno fdatasync fails with; 0: libc's
std::atomic<int> g_syncs{0};      // fdatasync calls
// When set, each fdatasync first copies this file to g_copy.second: the file as a power cut
// at that sync would leave it if every page written so far had landed.
std::pair<std::string, std::string> g_copy;
}  // namespace

extern "C" int fdatasync(int fd) {
  ++g_syncs;
  if (!g_copy.first.empty())
    std::filesystem::copy_file(g_copy.first, g_copy.second, std::filesystem::copy_options::overwrite_existing);
  if (const int e = g_fail_with.load(); e != 0) {
    errno = e;
    return -1;
  }
  using Fn = int (*)(int);
  static const Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "fdatasync"));
  return real(fd);
}

namespace nyads {
namespace {

using test::pattern;

class EmulatedSync : public test::EmulatedFileTest {
 protected:
  void TearDown() override {
    g_fail_with = 0;
    g_copy = {};
  }
};

TEST_F(EmulatedSync, AFailedFlushFailsEveryLaterFlushUntilReopened) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 4, g_.block_size, 1);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  g_fail_with = EIO;
  Status failed = SyncDevice(*d).flush();
  EXPECT_EQ(failed.code(), Code::kIoError) << failed.to_string();
  g_fail_with = 0;
  // The kernel would now report success: the device must not.
  Status again = SyncDevice(*d).flush();
  EXPECT_EQ(again.code(), Code::kIoError) << "a flush after a failed one succeeded";
  EXPECT_NE(again.message().find("every later flush fails until the device is opened again"), std::string::npos)
      << again.message();
  ASSERT_OK(SyncDevice(*d).write(4, 4, a.data()));
  EXPECT_EQ(SyncDevice(*d).flush().code(), Code::kIoError);
  d.reset();
  auto reopened = open_zoned_device(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  ASSERT_OK(SyncDevice(**reopened).flush());
  // The failed flushes promised nothing; whatever the zone kept is what was written.
  const std::uint64_t wp = (*(*reopened)->report_zones(0, 1))[0].write_pointer;
  EXPECT_TRUE(wp == 0 || wp == 4 || wp == 8) << wp;
  AlignedBuffer got(8 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(**reopened).read(0, 8, got.data()));
  for (std::uint64_t b = 0; b < 8; ++b)
    EXPECT_EQ(0, std::memcmp(got.data() + b * g_.block_size,
                             b < wp ? a.data() + (b % 4) * g_.block_size : AlignedBuffer(g_.block_size).data(),
                             g_.block_size))
        << "block " << b << ", write pointer " << wp;
}

TEST_F(EmulatedSync, AWritebackJobsFailureFailsTheNextFlush) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 8, g_.block_size, 2);
  ASSERT_OK(SyncDevice(*d).write(0, 8, a.data()));
  const std::uint64_t written = 8ull * g_.block_size;
  EXPECT_FALSE(d->writeback_job(written + 1)) << "a job for less than asked";
  auto job = d->writeback_job(written);
  ASSERT_TRUE(job) << "no writeback job for a file with unflushed writes";
  g_fail_with = EIO;
  job();  // the daemon runs it on its writeback thread
  g_fail_with = 0;
  Status flushed = SyncDevice(*d).flush();
  EXPECT_EQ(flushed.code(), Code::kIoError) << "the flush after a failed writeback job succeeded";
  EXPECT_NE(flushed.message().find("writing the file back failed"), std::string::npos) << flushed.message();
}

TEST_F(EmulatedSync, AGoodWritebackJobLeavesFlushesWorking) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 8, g_.block_size, 3);
  ASSERT_OK(SyncDevice(*d).write(0, 8, a.data()));
  auto job = d->writeback_job(0);
  ASSERT_TRUE(job);
  job();
  ASSERT_OK(SyncDevice(*d).flush());
  EXPECT_FALSE(d->writeback_job(1)) << "a job right after a flush";
}

// Pages of `path` in the page cache that are dirty (written, writeback not started), by the
// cachestat system call (Linux 6.5); nullopt where the kernel has none.
std::optional<std::uint64_t> dirty_pages(const std::string& path) {
#ifdef SYS_cachestat
  const long nr = SYS_cachestat;
#else
  const long nr = 451;  // the same on every architecture (glibc 2.36 does not name it)
#endif
  struct {
    std::uint64_t offset = 0, length = 0;  // 0: to the end of the file
  } range;
  struct {
    std::uint64_t cache, dirty, writeback, evicted, recently_evicted;
  } stat{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const long rc = ::syscall(nr, fd, &range, &stat, 0);
  ::close(fd);
  if (rc != 0) return std::nullopt;
  return stat.dirty;
}

// Whether the page cache this test counts is the file's own: not on tmpfs, overlayfs (it keeps
// it on the file below) or NFS; there a test of writeback would prove nothing.
bool page_cache_is_the_files(const std::string& path) {
  struct statfs fs {};
  if (::statfs(std::filesystem::path(path).parent_path().c_str(), &fs) != 0) return false;
  return fs.f_type != TMPFS_MAGIC && fs.f_type != OVERLAYFS_SUPER_MAGIC && fs.f_type != NFS_SUPER_MAGIC;
}

// A device of 16 zones of 4 MiB in a file, taking 1 MiB a write. Opened again after creating:
// creating truncates the file (ftruncate to 0), and ext4 (xfs, btrfs too) then writes it
// back when it is next closed.
std::unique_ptr<EmulatedDevice> open_four_mib_zones(const std::string& path) {
  EmulatedConfig c = test::small_config();
  c.zone_size_bytes = c.zone_capacity_bytes = 4 << 20;
  c.zone_count = 16;
  c.max_append_bytes = c.max_io_bytes = 1 << 20;
  if (!EmulatedDevice::create_file(path, c).ok()) return nullptr;
  auto opened = EmulatedDevice::open_file(path);
  return opened.ok() ? std::move(*opened) : nullptr;
}

// The device blocks of 1 MiB, and 1 MiB of pattern `seed` in them.
std::uint32_t blocks_per_mib(const ZonedDevice& d) { return (1u << 20) / d.geometry().block_size; }
AlignedBuffer one_mib(const ZonedDevice& d, std::uint64_t seed) {
  return pattern(0, blocks_per_mib(d), d.geometry().block_size, seed);
}

// Writes zone z whole, in 1 MiB writes.
Status write_zone(ZonedDevice& d, std::uint32_t z, const AlignedBuffer& mib) {
  const Geometry& g = d.geometry();
  const std::uint32_t per_write = blocks_per_mib(d);
  for (std::uint64_t at = 0; at < g.zone_capacity; at += per_write)
    NYADS_RETURN_IF_ERROR(SyncDevice(d).write(g.zone_start(z) + at, per_write, mib.data()));
  return Status::Ok();
}

// Dirty bytes of the file once the device is closed (which waits for the writeback it started
// and syncs nothing); nullopt where the kernel cannot count them.
std::optional<std::uint64_t> dirty_bytes_after_closing(std::unique_ptr<ZonedDevice> d, const std::string& path) {
  if (!dirty_pages(path)) return std::nullopt;
  d.reset();
  const auto dirty = dirty_pages(path);
  if (!dirty) return std::nullopt;
  return *dirty * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// Writeback of the file starts every 4 MiB written, not at the kernel's thresholds
// (gigabytes), so a flush finds little dirty: a client that writes and then flushes finds the
// disk already busy with its data (doc/design.md, "Queue depth on a file").
TEST_F(EmulatedSync, WritebackStartsAsTheDataArrives) {
  if (!page_cache_is_the_files(path_)) GTEST_SKIP() << "the temporary directory is on tmpfs, overlayfs or NFS";
  auto d = open_four_mib_zones(path_);
  ASSERT_TRUE(d);
  const Geometry g = d->geometry();
  const std::uint32_t per_write = blocks_per_mib(*d);
  auto data = one_mib(*d, 6);
  // 46 MiB in 1 MiB writes, and no flush: 2 MiB after the last kick (at 44 MiB). Not a
  // multiple of 8, 16 or 24, so a kick every 8 MiB or more leaves 6 MiB or more dirty, unless
  // that kick is still walking the file when the last writes land (a kick every 8 MiB failed
  // this test 5 times in 6; every 64 MiB, the old interval, fails it always: nothing started).
  for (std::uint64_t mib = 0; mib < 46; ++mib) {
    const std::uint64_t z = mib / 4, at = (mib % 4) * per_write;
    ASSERT_OK(SyncDevice(*d).write(g.zone_start(static_cast<std::uint32_t>(z)) + at, per_write, data.data()));
  }
  const auto dirty = dirty_bytes_after_closing(std::move(d), path_);
  if (!dirty) GTEST_SKIP() << "this kernel has no cachestat system call to count dirty pages";
  EXPECT_LT(*dirty, 6u << 20) << "of 46 MiB written, " << (*dirty >> 10) << " KiB still wait for writeback to start";
}

// 400 MiB through zones 0-7 (32 MiB), each reset before it is written again and no flush:
// from the 17th zone written on, most of what was written lately died unflushed.
Status rewrite_without_flushes(ZonedDevice& d, const AlignedBuffer& mib) {
  for (std::uint32_t round = 0; round < 100; ++round) {
    const std::uint32_t z = round % 8;
    if (round >= 8) NYADS_RETURN_IF_ERROR(d.manage_zone(ZoneAction::kReset, z));
    NYADS_RETURN_IF_ERROR(write_zone(d, z, mib));
  }
  return Status::Ok();
}

// A writer that rewrites the same data with no flush (its zones are reset before any flush
// asks for their data) gets no early writeback: the pages it overwrites in the page cache
// need never reach the disk. (The decisions are counted: the kernel's own writeback, or a
// kick started earlier still walking the file, could clean the pages whatever was decided.)
TEST_F(EmulatedSync, DataThatDiesUnflushedIsLeftToThePageCache) {
  auto d = open_four_mib_zones(path_);
  ASSERT_TRUE(d);
  auto mib = one_mib(*d, 7);
  ASSERT_OK(rewrite_without_flushes(*d, mib));
  // 100 chances, one every 4 MiB. The first 8 zones die only when rewritten: from the 17th
  // chance on, what died is over half of what was written, and every later one is skipped.
  const auto w = d->early_writeback();
  EXPECT_EQ(w.started + w.skipped, 100u);
  EXPECT_LE(w.started, 20u) << "writeback was started " << w.started << " times for data rewritten unflushed";
  EXPECT_GE(w.skipped, 80u);
}

// After such a writer, one that flushes and fills new space gets early writeback again.
TEST_F(EmulatedSync, EarlyWritebackComesBackForAWriterThatFlushesAndFills) {
  auto d = open_four_mib_zones(path_);
  ASSERT_TRUE(d);
  auto mib = one_mib(*d, 8);
  ASSERT_OK(rewrite_without_flushes(*d, mib));
  // 320 MiB with a flush after every 32: a zone reset after a flush lets nothing die
  // unflushed (but the first round's resets, of the rewriter's last data).
  for (std::uint32_t round = 0; round < 10; ++round) {
    for (std::uint32_t z = 0; z < 8; ++z) {
      ASSERT_OK(d->manage_zone(ZoneAction::kReset, z));
      ASSERT_OK(write_zone(*d, z, mib));
    }
    ASSERT_OK(SyncDevice(*d).flush());
  }
  for (std::uint32_t z = 0; z < 8; ++z) ASSERT_OK(d->manage_zone(ZoneAction::kReset, z));
  ASSERT_OK(SyncDevice(*d).flush());
  // Then 40 MiB into zones 0-9 and no flush: started at each of its 10 chances.
  const auto before = d->early_writeback();
  for (std::uint32_t z = 0; z < 10; ++z) ASSERT_OK(write_zone(*d, z, mib));
  const auto after = d->early_writeback();
  EXPECT_EQ(after.started - before.started, 10u);
  EXPECT_EQ(after.skipped, before.skipped) << "early writeback skipped for a writer that fills new space";
}

// A writer that only fills new space: writeback started at every chance, none skipped.
TEST_F(EmulatedSync, AWriterThatFillsIsNeverSkipped) {
  auto d = open_four_mib_zones(path_);
  ASSERT_TRUE(d);
  auto mib = one_mib(*d, 9);
  for (std::uint32_t z = 0; z < 16; ++z) ASSERT_OK(write_zone(*d, z, mib));
  EXPECT_EQ(d->early_writeback().started, 16u);
  EXPECT_EQ(d->early_writeback().skipped, 0u);
}

// A flush that wrote little since the last sync is one sync (version 2: the table names the
// blocks and their hash); one after more than 4 MiB is two, data first.
TEST_F(EmulatedSync, ASmallFlushIsOneSyncALargeOneTwo) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 4, g_.block_size, 4);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  g_syncs = 0;
  ASSERT_OK(SyncDevice(*d).flush());
  EXPECT_EQ(g_syncs.load(), 1);
  g_syncs = 0;
  ASSERT_OK(SyncDevice(*d).flush());
  EXPECT_EQ(g_syncs.load(), 1) << "a flush with nothing new still syncs, once";
  // Six zones of 768 KiB: 4.5 MiB since the last sync.
  auto zone = pattern(0, static_cast<std::uint32_t>(g_.zone_capacity), g_.block_size, 5);
  for (std::uint32_t z = 1; z <= 6; ++z)
    for (std::uint64_t at = 0; at < g_.zone_capacity; at += 32)
      ASSERT_OK(SyncDevice(*d).write(g_.zone_start(z) + at, 32, zone.data() + at * g_.block_size));
  g_syncs = 0;
  ASSERT_OK(SyncDevice(*d).flush());
  EXPECT_EQ(g_syncs.load(), 2);
  // Small again after it.
  ASSERT_OK(SyncDevice(*d).write(4, 4, a.data()));
  g_syncs = 0;
  ASSERT_OK(SyncDevice(*d).flush());
  EXPECT_EQ(g_syncs.load(), 1);
  d.reset();
  auto r = open_zoned_device(path_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*(*r)->report_zones(0, 1))[0].write_pointer, 8u);
  EXPECT_EQ((*(*r)->report_zones(6, 1))[0].state, ZoneState::kFull);
}

// The one sync of a small flush covers the table: at the moment of the sync the table in the
// file already names the new blocks. A power cut there keeps them if they landed, and sends
// the zone back if one did not.
TEST_F(EmulatedSync, ASmallFlushsTableIsInTheFileBeforeItsSync) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 4, g_.block_size, 7);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  const std::string at_sync = dir_.file("at-the-sync");
  g_copy = {path_, at_sync};
  ASSERT_OK(SyncDevice(*d).flush());
  g_copy = {};
  d.reset();
  std::filesystem::copy_file(at_sync, path_, std::filesystem::copy_options::overwrite_existing);
  {
    auto r = open_zoned_device(path_);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ((*(*r)->report_zones(0, 1))[0].write_pointer, 4u) << "the table was not written before the sync";
  }
  std::filesystem::copy_file(at_sync, path_, std::filesystem::copy_options::overwrite_existing);
  {  // Block 2 did not land.
    const auto layout = emulated_format::layout_for(test::small_config());
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(layout.data_offset + 2 * g_.block_size));
    f.put('\x01');
  }
  auto r = open_zoned_device(path_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*(*r)->report_zones(0, 1))[0].write_pointer, 0u);
  EXPECT_EQ((*(*r)->report_zones(0, 1))[0].state, ZoneState::kEmpty);
}

// A finish makes the zone full at once: the data first (one sync, naming it), then the table.
TEST_F(EmulatedSync, AFinishAfterSmallWritesSyncsTheDataFirst) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 4, g_.block_size, 8);
  ASSERT_OK(SyncDevice(*d).write(g_.zone_start(5), 4, a.data()));
  g_syncs = 0;
  ASSERT_OK(d->manage_zone(ZoneAction::kFinish, 5));
  EXPECT_EQ(g_syncs.load(), 2);
  d.reset();
  auto r = open_zoned_device(path_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*(*r)->report_zones(5, 1))[0].state, ZoneState::kFull);
  AlignedBuffer got(4 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(**r).read(g_.zone_start(5), 4, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), got.size()));
}

// A version 1 file (made before version 2) opens, keeps its data, and flushes by its own rule:
// data, then table, two syncs.
TEST_F(EmulatedSync, AVersion1FileFlushesDataThenTable) {
  namespace ef = emulated_format;
  const ef::Layout layout = ef::layout_for(test::small_config(), 1);
  {
    std::vector<std::uint8_t> header(ef::kHeaderBytes), slot(layout.table_slot_bytes);
    ef::encode_header(layout, header);
    ef::ZoneTable t{1, {}, {}};
    for (std::uint32_t z = 0; z < g_.zone_count; ++z)
      t.zones.push_back({g_.zone_start(z), g_.zone_start(z), g_.zone_capacity, ZoneState::kEmpty});
    ef::encode_zone_table(t, 1, slot);
    std::ofstream f(path_, std::ios::binary);
    f.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    f.seekp(static_cast<std::streamoff>(layout.table_offset + layout.table_slot_bytes));  // generation 1: slot 1
    f.write(reinterpret_cast<const char*>(slot.data()), static_cast<std::streamsize>(slot.size()));
  }
  ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(layout.file_bytes())), 0);
  auto a = pattern(0, 4, g_.block_size, 6);
  {
    auto d = open_zoned_device(path_);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    ASSERT_OK(SyncDevice(**d).write(0, 4, a.data()));
    g_syncs = 0;
    ASSERT_OK(SyncDevice(**d).flush());
    EXPECT_EQ(g_syncs.load(), 2);
  }
  auto r = open_zoned_device(path_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*(*r)->report_zones(0, 1))[0].write_pointer, 4u);
  AlignedBuffer got(4 * std::size_t{g_.block_size});
  ASSERT_OK(SyncDevice(**r).read(0, 4, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), a.size()));
}

}  // namespace
}  // namespace nyads
