// Crash consistency of the store over the emulated *file*: the machine loses power under it.
//
// What a power cut leaves of a file is what its last completed fdatasync made durable, plus
// any of the pages written since, each as one of the versions it went through: the kernel
// writes dirty pages back when it likes, in any order, a page at a time. This binary defines
// pwrite, fdatasync and fsync, which the device (linked into it) calls instead of libc's, so
// it sees every write and sync of the device file and knows what the disk would hold. After
// the k-th write or sync the power "fails": what the disk holds is decided, in one of four
// ways (Survivors), and every later write and sync of the file fails (EIO), as the store's
// requests then do. The file is then made what the disk held and the store opens it: every
// block reads as the value it had at the last flush or FUA, or one written since
// (crash_workload.h), and fsck is clean. No sync reaches the real disk: the model is the
// durability here.
//
// This covers what store_crash_test (the faulty device's power model) cannot: the emulated
// file's own promises — its zone table written before the one sync that covers both it and
// the data, the hashes of the blocks that sync covered, the rollback of a zone whose blocks
// did not land (doc/format.md §1) — and pages of a zone's new writes over the old blocks of a
// reset no flush made durable, in any order.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include "crash_workload.h"
#include "fsck/fsck.h"
#include "store_harness.h"

namespace {

// What survives, of the pages written since the last completed sync.
enum class Survivors {
  kNone,         // nothing: the strictest case
  kAll,          // every page, as last written
  kOrderedTorn,  // the writes in order up to one, and a first part of that one
  kAnyVersion,   // each page independently: as synced, or as any write since left it
};
constexpr Survivors kAllModes[] = {Survivors::kNone, Survivors::kAll, Survivors::kOrderedTorn, Survivors::kAnyVersion};
constexpr std::uint64_t kPage = 4096;

using Page = std::vector<std::uint8_t>;  // kPage bytes of the file

// The file as its disk holds it, and the crash. One device file at a time. Only the pages
// written since the model was armed are kept: every other page the disk holds as the file does.
struct DiskModel {
  std::mutex mu;
  bool armed = false;
  int fd_for_reads = -1;  // the file, to read a page before its first write
  dev_t dev = 0;
  ino_t ino = 0;
  struct Write {
    std::uint64_t offset;
    std::vector<std::uint8_t> bytes;
  };
  std::map<std::uint64_t, Page> durable;  // each page written since armed, as of the last completed sync
  std::vector<Write> unsynced;            // writes since, in order
  std::uint64_t events = 0;               // writes and syncs since armed
  std::uint64_t crash_after = 0;          // 0: no crash
  Survivors survivors = Survivors::kNone;
  std::mt19937_64 rng;
  bool crashed = false;
  std::map<std::uint64_t, Page> disk;  // at the crash: each page written since the last sync, as the disk holds it

  static std::uint64_t first_page(const Write& w) { return w.offset / kPage; }
  static std::uint64_t end_page(const Write& w, std::uint64_t bytes) { return (w.offset + bytes + kPage - 1) / kPage; }

  // Page p as the first `bytes` of w leave it.
  static void patch(Page& page, std::uint64_t p, const Write& w, std::uint64_t bytes) {
    const std::uint64_t from = std::max(w.offset, p * kPage), to = std::min(w.offset + bytes, (p + 1) * kPage);
    if (from < to) std::memcpy(page.data() + (from - p * kPage), w.bytes.data() + (from - w.offset), to - from);
  }

  // Every page of `pages` the first `bytes` of w touch, as they leave it.
  static void patch_all(std::map<std::uint64_t, Page>& pages, const Write& w, std::uint64_t bytes) {
    for (std::uint64_t p = first_page(w); p < end_page(w, bytes); ++p) patch(pages.at(p), p, w, bytes);
  }

  // Before a write: the durable bytes of each page it is the first to touch are the file's now.
  void remember_pages(std::uint64_t offset, std::size_t n) {
    for (std::uint64_t p = offset / kPage; p * kPage < offset + n; ++p) {
      auto [it, fresh] = durable.try_emplace(p, Page(kPage, 0));
      if (fresh)
        (void)::pread(fd_for_reads, it->second.data(), kPage,
                      static_cast<off_t>(p * kPage));  // short past the end: zeros
    }
  }

  void sync() {
    for (const Write& w : unsynced) patch_all(durable, w, w.bytes.size());
    unsynced.clear();
  }

  void power_loss() {
    disk.clear();
    for (const Write& w : unsynced)
      for (std::uint64_t p = first_page(w); p < end_page(w, w.bytes.size()); ++p) disk.try_emplace(p, durable.at(p));
    switch (survivors) {
      case Survivors::kNone: break;
      case Survivors::kAll:
        for (const Write& w : unsynced) patch_all(disk, w, w.bytes.size());
        break;
      case Survivors::kOrderedTorn: {
        const std::size_t whole = unsynced.empty() ? 0 : rng() % unsynced.size();
        for (std::size_t i = 0; i <= whole && i < unsynced.size(); ++i) {
          const Write& w = unsynced[i];
          const std::uint64_t pages = end_page(w, w.bytes.size()) - first_page(w);
          // The last one torn: its first pages only (none, some or all).
          const std::uint64_t bytes =
              i < whole ? w.bytes.size() : std::min<std::uint64_t>(w.bytes.size(), (rng() % (pages + 1)) * kPage);
          patch_all(disk, w, bytes);
        }
        break;
      }
      case Survivors::kAnyVersion: {
        // Every version each page went through, in order (a page a later write changes
        // again, or a write covers only in part, has several); each page keeps one of them,
        // or its synced bytes.
        std::map<std::uint64_t, std::vector<Page>> versions;
        std::map<std::uint64_t, Page> now = disk;
        for (const Write& w : unsynced)
          for (std::uint64_t p = first_page(w); p < end_page(w, w.bytes.size()); ++p) {
            patch(now.at(p), p, w, w.bytes.size());
            versions[p].push_back(now.at(p));
          }
        for (auto& [p, vs] : versions) {
          const std::size_t pick = rng() % (vs.size() + 1);  // 0: as synced
          if (pick > 0) disk.at(p) = std::move(vs[pick - 1]);
        }
        break;
      }
    }
  }

  // Called with mu held, after each write or sync of the file.
  void count_event() {
    ++events;
    if (crash_after == 0 || events != crash_after) return;
    power_loss();
    crashed = true;
  }

  bool is_the_file(int fd) {
    struct stat st {};
    return armed && ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
  }
};
DiskModel g_disk;

template <typename Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

ssize_t model_pwrite(ssize_t (*libc)(int, const void*, size_t, off_t), int fd, const void* buf, size_t n,
                     off_t offset) {
  std::lock_guard lock(g_disk.mu);
  if (!g_disk.is_the_file(fd)) return libc(fd, buf, n, offset);
  if (g_disk.crashed) {
    errno = EIO;
    return -1;
  }
  g_disk.remember_pages(static_cast<std::uint64_t>(offset), n);
  const ssize_t w = libc(fd, buf, n, offset);
  if (w > 0) {
    const auto* p = static_cast<const std::uint8_t*>(buf);
    g_disk.unsynced.push_back({static_cast<std::uint64_t>(offset), std::vector<std::uint8_t>(p, p + w)});
  }
  g_disk.count_event();
  return w;
}

}  // namespace

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static const auto libc = real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  return model_pwrite(libc, fd, buf, n, offset);
}

extern "C" ssize_t pwrite64(int fd, const void* buf, size_t n, off_t offset) {
  static const auto libc = real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite64");
  return model_pwrite(libc, fd, buf, n, offset);
}

// Durability here is the model's: no sync reaches the real disk (which would only make the
// suite slow: every point creates, fills and recovers a file).
extern "C" int fdatasync(int fd) {
  std::lock_guard lock(g_disk.mu);
  if (!g_disk.is_the_file(fd)) return 0;
  if (g_disk.crashed) {
    errno = EIO;
    return -1;
  }
  g_disk.sync();
  g_disk.count_event();
  return 0;
}

extern "C" int fsync(int fd) { return fdatasync(fd); }

namespace nyads {
namespace {

// From here on, the file at `path` is modelled: what it holds now is durable.
std::string arm(const std::string& path, std::uint64_t crash_after, Survivors survivors, std::uint64_t seed) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    const std::string why = "arming the disk model on " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return why;
  }
  std::lock_guard lock(g_disk.mu);
  g_disk.fd_for_reads = fd;
  g_disk.dev = st.st_dev;
  g_disk.ino = st.st_ino;
  g_disk.durable.clear();
  g_disk.unsynced.clear();
  g_disk.events = 0;
  g_disk.crash_after = crash_after;
  g_disk.survivors = survivors;
  g_disk.rng.seed(seed);
  g_disk.crashed = false;
  g_disk.disk.clear();
  g_disk.armed = true;
  return {};
}

// The file is the file again. After a crash, it is made what the disk held.
std::string disarm(const std::string& path) {
  std::map<std::uint64_t, Page> disk;
  {
    std::lock_guard lock(g_disk.mu);
    if (!g_disk.armed) return {};
    g_disk.armed = false;
    ::close(g_disk.fd_for_reads);
    if (!g_disk.crashed) return {};
    disk = g_disk.disk;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return "opening " + path + " to leave it as the disk held it: " + std::strerror(errno);
  for (const auto& [p, page] : disk)
    if (::pwrite(fd, page.data(), page.size(), static_cast<off_t>(p * kPage)) != static_cast<ssize_t>(page.size())) {
      ::close(fd);
      return "writing " + path + " as the disk held it";
    }
  ::close(fd);
  return {};
}

struct Outcome {
  std::uint64_t events = 0;  // writes and syncs of the file the whole workload made (no crash)
  bool verified = false;
};

// fsck of the emulated device in `path`: "" when it finds nothing wrong, else why.
std::string fsck_finds_nothing(const std::string& path, bool read_only, const std::string& when) {
  auto d = open_zoned_device(path, {.read_only = read_only});
  if (!d.ok()) return "opening the device for fsck " + when + ": " + d.status().to_string();
  auto report = fsck::check_volume(**d, {});
  return report.exit_code() == 0 ? std::string() : "fsck " + when + ": " + fsck::to_text(report, true);
}

// Runs the workload of `seed` on a store over a new emulated file; with crash_after > 0 the
// power fails after that many writes and syncs of the file, the file is made what the disk
// kept, and the store is opened again on it.
Outcome run_point(const test::TempDir& dir, std::uint64_t seed, std::uint64_t crash_after, Survivors survivors,
                  std::string* failure) {
  const std::string path = dir.file("dev.zns");
  std::filesystem::remove(path);
  test::CrashWorkload workload;
  Outcome full;
  {
    auto d = EmulatedDevice::create_file(path, test::store_config(16));
    if (!d.ok()) {
      *failure = "create: " + d.status().to_string();
      return {};
    }
    if (auto f = mkfs::format_volume(**d, {}); !f.ok()) {
      *failure = "mkfs: " + f.status().to_string();
      return {};
    }
    auto st = Store::open(std::move(*d));
    if (!st.ok()) {
      *failure = "open: " + st.status().to_string();
      return {};
    }
    *failure = workload.create_namespaces(**st);
    if (!failure->empty()) return {};
    *failure = arm(path, crash_after, survivors, seed * 1000 + crash_after);
    if (!failure->empty()) return {};
    *failure = workload.run(**st, seed, [] { return !g_disk.crashed; });
    // A clean close (its checkpoint, the journal zones it resets) has crash points too.
    if (failure->empty() && !g_disk.crashed)
      if (Status closed = (**st).close(); !closed.ok() && !g_disk.crashed)
        *failure = "close failed with power on: " + closed.to_string();
  }  // the device's last table write has crash points too; after a crash, it fails
  full.events = g_disk.events;
  if (std::string left = disarm(path); !left.empty() && failure->empty()) *failure = left;
  if (!failure->empty() || crash_after == 0) return full;
  if (!g_disk.crashed) {
    *failure = "the workload made fewer writes and syncs than the crash point";
    return {};
  }
  // To look at a failing point with the tools (fsck.nyads, nyads-zonectl): the file as the
  // power cut left it, before recovery touches it.
  if (const char* keep = std::getenv("NYADS_CRASH_KEEP"))
    std::filesystem::copy_file(path, keep, std::filesystem::copy_options::overwrite_existing);
  // fsck first, on a read-only open of the file as the power cut left it: the checkpoint that
  // recovery may take resets zones, and could wipe out damage before fsck saw it.
  *failure = fsck_finds_nothing(path, /*read_only=*/true, "before recovery");
  if (!failure->empty()) return {};
  {
    auto d = open_zoned_device(path);
    if (!d.ok()) {
      *failure = "opening the device after the power loss: " + d.status().to_string();
      return {};
    }
    auto st = Store::open(std::move(*d));
    if (!st.ok()) {
      *failure = "opening the store after the power loss: " + st.status().to_string();
      return {};
    }
    *failure = workload.verify(**st);
    if (!failure->empty()) return {};
  }
  *failure = fsck_finds_nothing(path, /*read_only=*/false, "after recovery");
  if (!failure->empty()) return {};
  return {0, true};
}

TEST(EmulatedCrash, EveryPowerCutOfTheMachineRecoversFlushedDataAndOnlyOldOrNewBlocks) {
  const int scale = std::getenv("NYADS_CRASH_SCALE") ? std::atoi(std::getenv("NYADS_CRASH_SCALE")) : 1;
  test::TempDir dir;
  // NYADS_CRASH_POINT=seed,point,mode runs that one point (as a failure names it).
  if (const char* one = std::getenv("NYADS_CRASH_POINT")) {
    unsigned long long seed = 0, k = 0;
    unsigned m = 0;
    ASSERT_EQ(std::sscanf(one, "%llu,%llu,%u", &seed, &k, &m), 3) << "NYADS_CRASH_POINT=seed,point,mode";
    ASSERT_LT(m, std::size(kAllModes));
    std::string failure;
    EXPECT_TRUE(run_point(dir, seed, k, kAllModes[m], &failure).verified) << failure;
    return;
  }
  const std::uint64_t stride = test::CrashWorkload::kPointStride;
  std::uint64_t points = 0;
  const std::uint64_t wanted = 600u * static_cast<std::uint64_t>(scale) / stride;
  for (std::uint64_t seed = 1; seed <= static_cast<std::uint64_t>(2 * scale) || points < wanted; ++seed) {
    std::string failure;
    const Outcome full = run_point(dir, seed, 0, Survivors::kNone, &failure);
    ASSERT_TRUE(failure.empty()) << "seed " << seed << ": " << failure;
    ASSERT_GT(full.events, 20u);
    for (std::uint64_t k = 1 + seed % stride; k <= full.events; k += stride) {
      // Every point with nothing unsynced kept and with each page any version; every third
      // with everything kept, or the writes in order up to a torn one.
      for (std::size_t m = 0; m < std::size(kAllModes); ++m) {
        const Survivors s = kAllModes[m];
        if ((s == Survivors::kAll || s == Survivors::kOrderedTorn) && (k + m) % 3 != 0) continue;
        const Outcome o = run_point(dir, seed, k, s, &failure);
        ASSERT_TRUE(o.verified) << "seed " << seed << ", power cut after write or sync " << k << " of " << full.events
                                << ", survivors mode " << m << ": " << failure;
        ++points;
      }
    }
  }
  std::printf("crash points verified: %llu\n", static_cast<unsigned long long>(points));
  EXPECT_GE(points, wanted);
}

// mkfs -f over a volume, the power cut after each of its writes and syncs: the file holds the
// old volume, whole; or no volume; or the new one, whose backup superblock fsck may have to
// restore. Never an old volume with new blocks over its own (mkfs makes its resets durable
// before it writes).
TEST(EmulatedCrash, MkfsOverAVolumeLeavesItWholeOrNoneAtEveryPowerCut) {
  test::TempDir dir;
  const std::string path = dir.file("dev.zns");
  const auto old_data = test::bytes_of(7, 64 * 4096);
  format::Uuid old_uuid{};
  // The old volume: mkfs's checkpoint 1 in the first checkpoint zone, an explicit one beside
  // it, and the close's in the first zone again, where mkfs writes.
  // Returns the writes and syncs mkfs made (and the device's close after it).
  auto reformat = [&](std::uint64_t crash_after, Survivors survivors, std::string* failure) -> std::uint64_t {
    std::filesystem::remove(path);
    {
      auto d = EmulatedDevice::create_file(path, test::store_config(16));
      auto made = d.ok() ? mkfs::format_volume(**d, {}) : d.status();
      if (!made.ok()) {
        *failure = "making the old volume: " + made.status().to_string();
        return 0;
      }
      old_uuid = made->sb.uuid;
      auto st = Store::open(std::move(*d));
      if (!st.ok() || !(**st).create_namespace("old", old_data.size(), 4096, false).ok() ||
          !(**st).write((**st).find_namespace("old")->id, 0, old_data).ok() || !(**st).checkpoint().ok() ||
          !(**st).close().ok()) {
        *failure = "filling the old volume";
        return 0;
      }
    }
    auto d = open_zoned_device(path);
    if (!d.ok()) {
      *failure = "reopening: " + d.status().to_string();
      return 0;
    }
    *failure = arm(path, crash_after, survivors, crash_after);
    if (!failure->empty()) return 0;
    mkfs::Options o;
    o.force = true;
    const auto formatted = mkfs::format_volume(**d, o);
    if (!formatted.ok() && !g_disk.crashed) *failure = "mkfs with power on: " + formatted.status().to_string();
    d->reset();
    const std::uint64_t events = g_disk.events;
    if (std::string left = disarm(path); !left.empty() && failure->empty()) *failure = left;
    return events;
  };
  std::string failure;
  const std::uint64_t events = reformat(0, Survivors::kNone, &failure);
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_GT(events, 3u);
  int olds = 0, nones = 0, news = 0;
  for (std::uint64_t k = 1; k <= events; ++k) {
    for (std::size_t m = 0; m < std::size(kAllModes); ++m) {
      SCOPED_TRACE("power cut after write or sync " + std::to_string(k) + " of " + std::to_string(events) +
                   ", survivors mode " + std::to_string(m));
      reformat(k, kAllModes[m], &failure);
      ASSERT_TRUE(failure.empty()) << failure;
      ASSERT_TRUE(g_disk.crashed);
      auto d = open_zoned_device(path, {.read_only = true});
      ASSERT_TRUE(d.ok()) << d.status().to_string();
      auto report = fsck::check_volume(**d, {});
      d->reset();
      if (!report.superblock) {  // no volume: mkfs did not get that far
        ++nones;
        continue;
      }
      const bool old = report.superblock->uuid == old_uuid;
      if (!old && report.exit_code() != 0) {  // the new volume, its backup superblock not written
        auto rw = open_zoned_device(path);
        ASSERT_TRUE(rw.ok());
        fsck::Options repair;
        repair.repair = true;
        report = fsck::check_volume(**rw, repair);
        EXPECT_EQ(report.exit_code(), 1) << fsck::to_text(report, true);
        report = fsck::check_volume(**rw, {});
      }
      ASSERT_EQ(report.exit_code(), 0) << (old ? "the old volume: " : "the new volume: ")
                                       << fsck::to_text(report, true);
      auto reopened = open_zoned_device(path);
      ASSERT_TRUE(reopened.ok());
      auto st = Store::open(std::move(*reopened));
      ASSERT_TRUE(st.ok()) << st.status().to_string();
      if (!old) {
        EXPECT_TRUE((**st).list_namespaces().empty()) << "the new volume has namespaces";
        ++news;
        continue;
      }
      ++olds;
      auto ns = (**st).find_namespace("old");
      ASSERT_TRUE(ns.ok()) << ns.status().to_string();
      std::vector<std::uint8_t> got(old_data.size());
      ASSERT_OK((**st).read(ns->id, 0, got));
      EXPECT_EQ(got, old_data) << "the old volume came back with other data";
    }
  }
  // The sweep saw each outcome.
  EXPECT_GT(olds, 0);
  EXPECT_GT(nones, 0);
  EXPECT_GT(news, 0);
}

}  // namespace
}  // namespace nyads
