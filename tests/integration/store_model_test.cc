// Model-based randomized test: every namespace mirrored byte for byte in memory; a random mix
// of writes, reads, trims, zeroing, flushes, creates, deletes, resizes and reopens, with every
// read checked against the model. The working set fills the device to 80-90%, so the cleaner
// runs many rounds.
#include <map>
#include <random>

#include "fsck/fsck.h"
#include "store_harness.h"

namespace nyads {
namespace {

struct Model {
  std::uint32_t id;
  std::uint32_t block_size;
  std::vector<std::uint8_t> bytes;
};

class StoreModel : public ::testing::TestWithParam<std::uint64_t> {};

// Seeds 1-3 on a device whose zone limits leave the store two shared streams, 4-5 on one
// with room for all of them (the user-cold and frozen streams too), twice as large, so that
// their larger promise headroom (a zone per stream) still leaves it 80-90% full.
TEST_P(StoreModel, MatchesAnInMemoryModel) {
  std::mt19937_64 rng(GetParam());
  auto dev = test::formatted_memory_device(GetParam() <= 3 ? test::store_config(48)
                                                           : test::store_config_with_every_stream(96));
  auto st = test::open_store(*dev);
  const StoreStats empty = st->stats();
  // Usable space: data zones less the reserve, 768 KiB each.
  const std::uint64_t usable = std::uint64_t(empty.data_zones - st->superblock().reserved_data_zones) * (768 << 10);
  const std::uint64_t target = usable * 85 / 100;
  std::map<std::string, Model> models;
  int next_name = 0;
  auto pick = [&]() -> std::pair<const std::string, Model>* {
    if (models.empty()) return nullptr;
    auto it = models.begin();
    std::advance(it, static_cast<long>(rng() % models.size()));
    return &*it;
  };
  auto total = [&] {
    std::uint64_t t = 0;
    for (auto& [n, m] : models) t += m.bytes.size();
    return t;
  };
  // Namespaces are promised their size: the fill target, or what the volume can promise with
  // one namespace more (a zone less, at most), whichever is lower.
  auto room = [&] { return std::min(target, st->stats().space_bytes - (768 << 10)); };
  std::uint64_t ops = 0, reads = 0, reopens = 0;
  StoreStats sum;  // over every Store opened: stats live as long as one
  auto absorb = [&](const StoreStats& x) {
    sum.zones_cleaned += x.zones_cleaned;
    sum.zones_reset += x.zones_reset;
    sum.user_bytes_written += x.user_bytes_written;
    sum.cleaner_bytes_written += x.cleaner_bytes_written;
  };
  for (int step = 0; step < 4000; ++step) {
    const int op = static_cast<int>(rng() % 100);
    auto* m = pick();
    if (op < 3 || m == nullptr) {  // create, keeping the total near the fill target
      const std::uint64_t size = (1 + rng() % 8) << 20;
      if (total() + size > room()) continue;
      const std::uint32_t bs = rng() % 4 == 0 ? 512 : 4096;
      const std::string name = "ns" + std::to_string(next_name++);
      auto info = st->create_namespace(name, size, bs);
      ASSERT_TRUE(info.ok()) << info.status().to_string();
      models[name] = {info->id, bs, std::vector<std::uint8_t>(size, 0)};
    } else if (op < 5) {  // delete
      ASSERT_OK(st->delete_namespace(m->first));
      models.erase(m->first);
    } else if (op < 7) {  // resize
      const std::uint64_t size = (1 + rng() % 8) << 20;
      if (size > m->second.bytes.size() && total() + size - m->second.bytes.size() > room()) continue;
      ASSERT_OK(st->resize_namespace(m->first, size, /*discard=*/true));
      m->second.bytes.resize(size, 0);
    } else if (op < 60) {  // write
      Model& x = m->second;
      const std::uint64_t blocks = x.bytes.size() / x.block_size;
      const std::uint64_t len = std::min<std::uint64_t>(blocks, 1 + rng() % 64) * x.block_size;
      const std::uint64_t off = (rng() % (blocks - len / x.block_size + 1)) * x.block_size;
      auto data = test::bytes_of(rng(), len);
      Status s = st->write(x.id, off, data, rng() % 10 == 0);
      ASSERT_OK(s);
      std::copy(data.begin(), data.end(), x.bytes.begin() + static_cast<long>(off));
    } else if (op < 85) {  // read
      Model& x = m->second;
      const std::uint64_t blocks = x.bytes.size() / x.block_size;
      const std::uint64_t len = std::min<std::uint64_t>(blocks, 1 + rng() % 128) * x.block_size;
      const std::uint64_t off = (rng() % (blocks - len / x.block_size + 1)) * x.block_size;
      std::vector<std::uint8_t> got(len);
      ASSERT_OK(st->read(x.id, off, got));
      ASSERT_TRUE(std::equal(got.begin(), got.end(), x.bytes.begin() + static_cast<long>(off)))
          << "step " << step << ": " << m->first << " at " << off << " (" << len << " bytes)";
      ++reads;
    } else if (op < 92) {  // trim or zero
      Model& x = m->second;
      const std::uint64_t blocks = x.bytes.size() / x.block_size;
      const std::uint64_t len = std::min<std::uint64_t>(blocks, 1 + rng() % 256) * x.block_size;
      const std::uint64_t off = (rng() % (blocks - len / x.block_size + 1)) * x.block_size;
      ASSERT_OK(rng() % 2 ? st->trim(x.id, off, len) : st->write_zeroes(x.id, off, len, rng() % 2));
      std::fill(x.bytes.begin() + static_cast<long>(off), x.bytes.begin() + static_cast<long>(off + len), 0);
    } else if (op < 98) {
      ASSERT_OK(st->flush());
    } else {  // a clean reopen, or a crash right after a flush: both keep everything
      if (rng() % 2)
        ASSERT_OK(st->close());
      else
        ASSERT_OK(st->flush());
      absorb(st->stats());
      st.reset();
      st = test::open_store(*dev);
      ASSERT_TRUE(st);
      ++reopens;
    }
    ++ops;
  }
  // Everything, once more, after a final reopen.
  ASSERT_OK(st->close());
  absorb(st->stats());
  st = test::open_store(*dev);
  for (auto& [name, x] : models) {
    std::vector<std::uint8_t> got(x.bytes.size());
    ASSERT_OK(st->read(x.id, 0, got));
    ASSERT_TRUE(got == x.bytes) << name;
  }
  absorb(st->stats());
  const StoreStats& s = sum;
  ASSERT_OK(st->close());
  auto report = fsck::check_volume(*dev, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  std::printf(
      "seed %llu: %llu ops, %llu reads checked, %llu reopens; cleaned %llu zones, reset %llu; user %llu MiB, cleaner "
      "%llu MiB\n",
      static_cast<unsigned long long>(GetParam()), static_cast<unsigned long long>(ops),
      static_cast<unsigned long long>(reads), static_cast<unsigned long long>(reopens),
      static_cast<unsigned long long>(s.zones_cleaned), static_cast<unsigned long long>(s.zones_reset),
      static_cast<unsigned long long>(s.user_bytes_written >> 20),
      static_cast<unsigned long long>(s.cleaner_bytes_written >> 20));
  EXPECT_GT(s.zones_cleaned, 10u) << "the workload should force many cleaning rounds";
}

INSTANTIATE_TEST_SUITE_P(Seeds, StoreModel, ::testing::Values(1, 2, 3, 4, 5));

}  // namespace
}  // namespace nyads
