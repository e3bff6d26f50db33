// The store on the zoned devices named by NYADS_TEST_ZONED_DEVICES (the VM runner passes the
// kernel's /dev/nvme0n1 and /dev/ng0n1): mkfs, a model-checked random workload with cleaning,
// a crash (the store dropped without a flush), recovery, and fsck. It reformats the device.
#include <random>
#include <sstream>

#include "fsck/fsck.h"
#include "store_harness.h"

namespace nyads {
namespace {

std::vector<std::string> devices() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("NYADS_TEST_ZONED_DEVICES")) {
    std::stringstream ss(env);
    std::string p;
    while (std::getline(ss, p, ','))
      if (!p.empty()) out.push_back(p);
  }
  return out;
}

TEST(StoreOnDevice, ModelWorkloadCrashAndRecovery) {
  const auto paths = devices();
  if (paths.empty()) GTEST_SKIP() << "NYADS_TEST_ZONED_DEVICES names no device";
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    auto dev = open_zoned_device(path);
    ASSERT_TRUE(dev.ok()) << dev.status().to_string();
    mkfs::Options mo;
    mo.force = true;
    ASSERT_TRUE(mkfs::format_volume(**dev, mo).ok());
    std::mt19937_64 rng(7);
    std::vector<std::uint8_t> model;
    std::uint32_t id = 0;
    std::uint64_t flushed_ops = 0;
    {
      auto st = test::open_store(**dev);
      ASSERT_TRUE(st);
      // Half the usable space, overwritten many times: the cleaner has to run.
      const std::uint64_t size =
          std::uint64_t(st->superblock().data_zones.count - st->superblock().reserved_data_zones) *
          st->superblock().zone_capacity * st->superblock().block_size / 2 / 4096 * 4096;
      id = st->create_namespace("vm", size)->id;
      model.assign(size, 0);
      for (int op = 0; op < 3000; ++op) {
        const std::uint64_t len = (1 + rng() % 32) * 4096;
        const std::uint64_t off = (rng() % ((size - len) / 4096 + 1)) * 4096;
        auto data = test::bytes_of(rng(), len);
        ASSERT_OK(st->write(id, off, data));
        std::copy(data.begin(), data.end(), model.begin() + static_cast<long>(off));
        if (op % 50 == 49) {
          ASSERT_OK(st->flush());
          flushed_ops = op + 1;
        }
      }
      ASSERT_OK(st->flush());
      const StoreStats s = st->stats();
      std::printf(
          "%s: %llu MiB written by the user, %llu MiB copied by the cleaner (%llu zones cleaned, %llu reset), WA "
          "%.2f\n",
          path.c_str(), static_cast<unsigned long long>(s.user_bytes_written >> 20),
          static_cast<unsigned long long>(s.cleaner_bytes_written >> 20),
          static_cast<unsigned long long>(s.zones_cleaned), static_cast<unsigned long long>(s.zones_reset),
          s.write_amplification());
      EXPECT_GT(s.zones_reset, 0u);
      (void)flushed_ops;
      // A crash: the store goes away without close().
    }
    dev->reset();
    auto again = open_zoned_device(path);
    ASSERT_TRUE(again.ok());
    {
      auto st = test::open_store(**again);
      ASSERT_TRUE(st);
      std::vector<std::uint8_t> got(model.size());
      ASSERT_OK(st->read(id, 0, got));
      EXPECT_TRUE(got == model) << "data after recovery differs from what was flushed";
      ASSERT_OK(st->close());
    }
    auto report = fsck::check_volume(**again, {});
    EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  }
}

}  // namespace
}  // namespace nyads
