// Two store measurements on an emulated device in a file (sparse, in the page cache):
//  1. recovery time after a crash against the data stored (sequentially written), with the
//     same amount of work since the last checkpoint each time, and the time to read the maps
//     an indexed checkpoint leaves unread at open;
//  2. memory of the maps per TiB of written data, for a sequential and a 4 KiB random layout,
//     extrapolated from a measured point, and the peak of opening such a volume and reading
//     all its maps.
//
//   store_bench [--dir DIR] [--sizes-gib 1,4,16]
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mkfs/mkfs.h"
#include "nyads/emulated_device.h"
#include "nyads/store.h"

using namespace nyads;

namespace {
// Bytes the process holds from malloc: small chunks in the heap and large ones, which glibc
// maps on their own (counting only the heap missed them, more or fewer of them depending on
// glibc's moving mmap threshold).
std::size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::unique_ptr<Store> fresh(const std::string& path, std::uint64_t gib) {
  EmulatedConfig c;
  c.zone_size_bytes = 64 << 20;
  c.zone_capacity_bytes = 64 << 20;
  c.zone_count = static_cast<std::uint32_t>((gib << 30) / c.zone_size_bytes * 5 / 4 + 8);
  auto d = EmulatedDevice::create_file(path, c, true);
  if (!d.ok() || !mkfs::format_volume(**d, {}).ok()) std::abort();
  auto s = Store::open(std::move(*d));
  if (!s.ok()) std::abort();
  return std::move(*s);
}

// A field of /proc/self/status, in KiB ("VmRSS", "VmHWM").
long status_kib(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  const std::size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, field, n) == 0 && line[n] == ':') kib = std::strtol(line + n + 1, nullptr, 10);
  std::fclose(f);
  return kib;
}

// A word for sh -c: in single quotes, each ' inside written as '\''.
std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void check(const Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    std::abort();
  }
}

// Opens the volume in `path` again (after a crash or a close); says why and stops if it cannot.
std::unique_ptr<Store> reopen(const std::string& path) {
  auto d = open_zoned_device(path);
  check(d.status());
  auto st = Store::open(std::move(*d));
  check(st.status());
  return std::move(*st);
}

}  // namespace

// An opened volume's maps, all read (an indexed checkpoint is opened without reading them;
// the daemon's idle work reads the rest, as here).
void read_all_maps(Store& st) {
  while (st.stats().map_blocks_unread > 0) check(st.idle_work().status());
}

// Run as `store_bench --open-peak PATH` by the memory section: opens the volume in a fresh
// process, reads all its maps, and prints what that took at its peak (resident memory above
// the process's before it) and what the store holds after it (its heap).
int open_peak(const std::string& path) {
  const long rss_before = status_kib("VmRSS");
  const std::size_t heap_before = heap_in_use();
  const auto st = reopen(path);
  read_all_maps(*st);
  std::printf("%ld %zu\n", status_kib("VmHWM") - rss_before, heap_in_use() - heap_before);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--open-peak") return open_peak(argv[2]);
  std::string dir = "/var/tmp/nyads-bench";
  std::string sizes = "1,4,16";
  const char* usage = "usage: store_bench [--dir DIR] [--sizes-gib 1,4,16]\n";
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      return 0;
    }
    if ((a != "--dir" && a != "--sizes-gib") || i + 1 >= argc) {
      const bool known = a == "--dir" || a == "--sizes-gib";
      std::fprintf(stderr, "store_bench: %s: %s\n%s", a.c_str(), known ? "needs a value" : "unknown option", usage);
      return 2;
    }
    (a == "--dir" ? dir : sizes) = argv[i + 1];
  }
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/store-bench.img";
  std::vector<std::uint8_t> chunk(1 << 20);
  std::printf("1. recovery after a crash, 64 MiB written (and flushed) since the last checkpoint\n");
  std::printf("%10s %12s %14s %12s %12s %12s %14s\n", "data GiB", "extents", "checkpoint ms", "recover ms",
              "fastest ms", "no replay ms", "maps read ms");
  std::stringstream ss(sizes);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const std::uint64_t gib = std::stoull(item);
    std::uint64_t extents = 0;
    double ckpt_ms = 0;
    {
      auto st = fresh(path, gib);
      const std::uint32_t id = st->create_namespace("data", (gib << 30) + (128 << 20), 4096, true)->id;
      for (std::uint64_t off = 0; off < (gib << 30); off += chunk.size()) {
        std::memcpy(chunk.data(), &off, 8);
        check(st->write(id, off, chunk));
      }
      const auto t0 = std::chrono::steady_clock::now();
      check(st->checkpoint());
      ckpt_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      // The work since the checkpoint: 64 MiB of 4 KiB writes, flushed every 32.
      std::mt19937_64 rng(1);
      for (int i = 0; i < 16384; ++i) {
        check(st->write(id, (rng() % ((gib << 30) / 4096)) * 4096, std::span(chunk).first(4096)));
        if (i % 32 == 31) check(st->flush());
      }
      check(st->flush());
      extents = st->stats().map_extents;
    }  // crash: no close
    // Opening after a crash writes nothing (the replay's checkpoint waits for an idle moment),
    // so each of five opens, each dropped without a close, recovers the same state: the
    // median and the fastest say more than one noisy run.
    auto open_times = [&] {
      std::vector<double> ms;
      for (int run = 0; run < 5; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto st = reopen(path);  // dropped (a crash) after the clock stops
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      return ms;
    };
    const std::vector<double> ms = open_times();
    // Then the part that grows with the data: opening right after a checkpoint (nothing to
    // replay) is loading the checkpoint and the zone report.
    check(reopen(path)->checkpoint());
    const std::vector<double> bare = open_times();
    // What opening left for later: reading every map (the daemon does it when idle, requests
    // read the parts they need first).
    double read_ms = 0;
    {
      const auto st = reopen(path);
      const auto t0 = std::chrono::steady_clock::now();
      read_all_maps(*st);
      read_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("%10llu %12llu %14.1f %12.1f %12.1f %12.1f %14.1f\n", static_cast<unsigned long long>(gib),
                static_cast<unsigned long long>(extents), ckpt_ms, ms[2], ms[0], bare[2], read_ms);
    std::fflush(stdout);
  }

  std::printf("\n2. map memory per TiB of written data (1 GiB written, extrapolated x1024)\n");
  for (const char* layout : {"sequential", "4k-random"}) {
    const std::size_t heap_before = heap_in_use();
    auto st = fresh(path, 1);
    const std::uint32_t id = st->create_namespace("data", 1ull << 30, 4096, true)->id;
    if (std::strcmp(layout, "sequential") == 0) {
      for (std::uint64_t off = 0; off < (1ull << 30); off += chunk.size()) check(st->write(id, off, chunk));
    } else {
      // Every 4 KiB block written once, in random order: each its own extent.
      std::vector<std::uint64_t> order((1ull << 30) / 4096);
      for (std::uint64_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937_64(3));
      for (std::uint64_t b : order) check(st->write(id, b * 4096, std::span(chunk).first(4096)));
    }
    check(st->flush());
    const double heap_flushed = static_cast<double>(heap_in_use() - heap_before);
    check(st->checkpoint());
    const StoreStats s = st->stats();
    // The maps' own estimate, and what the whole store holds from malloc (maps with the
    // allocator's overhead, zone write lists, buffers): the daemon's memory for this data,
    // after a checkpoint (which trims the write lists of full zones, as the daemon's regular
    // checkpoints do) and, before it, just after the writes.
    const double heap = static_cast<double>(heap_in_use() - heap_before);
    std::printf(
        "%-11s %10llu extents, %8.2f MiB per GiB -> %8.2f GiB per TiB (store heap: %8.2f GiB per TiB; %.2f before a "
        "checkpoint)\n",
        layout, static_cast<unsigned long long>(s.map_extents), static_cast<double>(s.map_memory_bytes) / (1 << 20),
        static_cast<double>(s.map_memory_bytes) * 1024 / (1ull << 30), heap * 1024 / (1ull << 30),
        heap_flushed * 1024 / (1ull << 30));
    // Opening it again, in a fresh process: the peak against what the store keeps.
    st.reset();
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::FILE* child = ::popen((shell_quoted(self) + " --open-peak " + shell_quoted(path)).c_str(), "r");
    long peak_kib = -1;
    unsigned long long kept = 0;
    if (child == nullptr || std::fscanf(child, "%ld %llu", &peak_kib, &kept) != 2 || ::pclose(child) != 0) {
      std::fprintf(stderr, "store_bench --open-peak failed\n");
      std::abort();
    }
    std::printf("%-11s opening it: peak %8.2f GiB per TiB above the process before it, keeps %8.2f (store heap)\n", "",
                static_cast<double>(peak_kib) * 1024 * 1024 / (1ull << 30),
                static_cast<double>(kept) * 1024 / (1ull << 30));
  }
  std::filesystem::remove(path);
  return 0;
}
