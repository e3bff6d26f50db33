// Write amplification of the store under 4 KiB random overwrite, cleaning and metadata
// included, at 20% over-provisioning (user data = usable space / 1.2), for uniform, 80/20 and
// 90/10 skew; beside it, the metadata bytes per 4 KiB write at QD32 (batches of 32 writes and
// a flush: the group commit of a QD32 client). Steady state: the device is filled, overwritten twice to
// settle, then measured over two more overwrites.
//
//   wa_bench [--zones N] [--zone-mib M] [--rounds R] [--skew uniform|80/20|90/10] [--journal-zones J]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "mkfs/mkfs.h"
#include "nyads/emulated_device.h"
#include "nyads/store.h"

using namespace nyads;

namespace {

struct Measured {
  double wa, data_wa, meta_per_write, seconds;
  std::uint64_t writes, cleaned, journal_blocks, checkpoints, flushes;
};

Measured run(const char* skew, std::uint32_t zones, std::uint32_t zone_mib, double rounds,
             std::uint32_t journal_zones) {
  EmulatedConfig c;
  c.zone_size_bytes = std::uint64_t{zone_mib} << 20;
  c.zone_capacity_bytes = c.zone_size_bytes;
  c.zone_count = zones;
  c.max_open_zones = 14;
  c.max_active_zones = 14;
  auto dev = EmulatedDevice::create_memory(c);
  if (!dev.ok()) {
    std::fprintf(stderr, "device: %s\n", dev.status().to_string().c_str());
    std::abort();
  }
  mkfs::Options layout;
  layout.layout.journal_zones = journal_zones;
  auto made = mkfs::format_volume(**dev, layout);
  if (!made.ok()) {
    std::fprintf(stderr, "mkfs: %s\n", made.status().to_string().c_str());
    std::abort();
  }
  auto st = Store::open(std::move(*dev));
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.status().to_string().c_str());
    std::abort();
  }
  Store& s = **st;
  const auto& sb = s.superblock();
  const std::uint64_t usable_blocks =
      std::uint64_t(sb.data_zones.count - sb.reserved_data_zones) * (c.zone_capacity_bytes / 4096);
  const std::uint64_t user_blocks = static_cast<std::uint64_t>(static_cast<double>(usable_blocks) / 1.2);
  const std::uint32_t id = s.create_namespace("bench", user_blocks * 4096)->id;
  // A QD32 client: batches of 32 writes and a flush, executed together (Store::execute).
  std::vector<std::vector<std::uint8_t>> blocks(32, std::vector<std::uint8_t>(4096));
  std::vector<StoreRequest> batch;
  std::mt19937_64 rng(42);
  std::uint64_t counter = 0;
  auto put = [&](std::uint64_t vblock) {
    std::vector<std::uint8_t>& block = blocks[batch.size()];
    std::memcpy(block.data(), &++counter, 8);
    batch.push_back(StoreRequest::write(id, vblock * 4096, block));
    if (batch.size() < 32) return;
    batch.push_back(StoreRequest::flush());
    Status outcome = s.execute(batch);
    for (const auto& r : batch)
      if (!r.result.ok()) outcome = r.result;
    if (!outcome.ok()) {
      std::fprintf(stderr, "batch: %s\n", outcome.to_string().c_str());
      std::abort();
    }
    batch.clear();
  };
  // hot_fraction of the writes go to hot_share of the blocks.
  double hot_share = 1, hot_fraction = 1;
  if (std::strcmp(skew, "80/20") == 0) hot_share = 0.2, hot_fraction = 0.8;
  if (std::strcmp(skew, "90/10") == 0) hot_share = 0.1, hot_fraction = 0.9;
  const std::uint64_t hot_blocks = static_cast<std::uint64_t>(static_cast<double>(user_blocks) * hot_share);
  auto pick = [&]() -> std::uint64_t {
    if (hot_share >= 1) return rng() % user_blocks;
    const bool hot = std::uniform_real_distribution<double>(0, 1)(rng) < hot_fraction;
    return hot ? rng() % hot_blocks : hot_blocks + rng() % (user_blocks - hot_blocks);
  };
  for (std::uint64_t v = 0; v < user_blocks; ++v) put(v);  // fill
  const auto settle = static_cast<std::uint64_t>(2 * static_cast<double>(user_blocks));
  for (std::uint64_t i = 0; i < settle; ++i) put(pick());
  const StoreStats before = s.stats();
  const auto t0 = std::chrono::steady_clock::now();
  const auto measure = static_cast<std::uint64_t>(rounds * static_cast<double>(user_blocks));
  for (std::uint64_t i = 0; i < measure; ++i) put(pick());
  if (!s.flush().ok()) std::abort();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const StoreStats after = s.stats();
  const double user = static_cast<double>(after.user_bytes_written - before.user_bytes_written);
  const double device = static_cast<double>((after.data_bytes_written - before.data_bytes_written) +
                                            (after.cleaner_bytes_written - before.cleaner_bytes_written) +
                                            (after.metadata_bytes_written - before.metadata_bytes_written));
  const double meta = static_cast<double>(after.metadata_bytes_written - before.metadata_bytes_written);
  return {device / user,
          (device - meta) / user,
          meta / static_cast<double>(measure),
          secs,
          measure,
          after.zones_cleaned - before.zones_cleaned,
          after.journal_blocks_written - before.journal_blocks_written,
          after.checkpoints - before.checkpoints,
          after.flushes - before.flushes};
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t zones = 128, zone_mib = 4;
  double rounds = 2;
  std::string only;                 // one skew, or all
  std::uint32_t journal_zones = 0;  // mkfs's default
  const char* usage =
      "usage: wa_bench [--zones N] [--zone-mib N] [--rounds R] [--skew uniform|80/20|90/10] [--journal-zones N]\n";
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      return 0;
    }
    const bool known =
        a == "--zones" || a == "--zone-mib" || a == "--rounds" || a == "--skew" || a == "--journal-zones";
    if (!known || i + 1 >= argc) {
      std::fprintf(stderr, "wa_bench: %s: %s\n%s", a.c_str(), known ? "needs a value" : "unknown option", usage);
      return 2;
    }
    if (a == "--zones")
      zones = static_cast<std::uint32_t>(std::atoi(argv[i + 1]));
    else if (a == "--zone-mib")
      zone_mib = static_cast<std::uint32_t>(std::atoi(argv[i + 1]));
    else if (a == "--rounds")
      rounds = std::atof(argv[i + 1]);
    else if (a == "--skew")
      only = argv[i + 1];
    else
      journal_zones = static_cast<std::uint32_t>(std::atoi(argv[i + 1]));
  }
  std::printf("device: %u zones of %u MiB, 20%% over-provisioning, 4 KiB random overwrite, flush every 32 writes\n",
              zones, zone_mib);
  std::printf("%-8s %8s %8s %8s %12s %14s %8s %10s %10s %8s %8s\n", "skew", "WA", "data WA", "target", "zones clnd",
              "meta B/write", "meta %", "writes/s", "jrnl blks", "ckpts", "commits");
  const struct {
    const char* skew;
    double target;
  } cases[] = {{"uniform", 3.3}, {"80/20", 2.6}, {"90/10", 2.0}};
  for (const auto& k : cases) {
    if (!only.empty() && only != k.skew) continue;
    Measured r = run(k.skew, zones, zone_mib, rounds, journal_zones);
    std::printf("%-8s %8.2f %8.2f %8.2f %12llu %14.1f %7.1f%% %10.0f %10llu %8llu %8llu\n", k.skew, r.wa, r.data_wa,
                k.target, static_cast<unsigned long long>(r.cleaned), r.meta_per_write, 100 * r.meta_per_write / 4096,
                static_cast<double>(r.writes) / r.seconds, static_cast<unsigned long long>(r.journal_blocks),
                static_cast<unsigned long long>(r.checkpoints), static_cast<unsigned long long>(r.flushes));
    std::fflush(stdout);
  }
  return 0;
}
