// Helpers shared by the tests: block patterns, temporary directories, I/O shortcuts.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "nyads/aligned_buffer.h"
#include "nyads/emulated_device.h"
#include "nyads/sync_device.h"
#include "nyads/zoned_device.h"

namespace nyads::test {

// A small geometry that still has every ZNS feature: capacity below zone size, open limit
// below active limit, append limit below the I/O limit.
inline EmulatedConfig small_config() {
  EmulatedConfig c;
  c.block_size = 4096;
  c.zone_size_bytes = 1 << 20;
  c.zone_capacity_bytes = 768 << 10;
  c.zone_count = 16;
  c.max_open_zones = 6;
  c.max_active_zones = 8;
  c.max_append_bytes = 64 << 10;
  c.max_io_bytes = 128 << 10;
  return c;
}

// Fills blocks with contents that name their lba and a seed, so any misplaced block shows.
inline void fill_pattern(void* buffer, std::uint64_t lba, std::uint32_t blocks, std::uint32_t block_size,
                         std::uint64_t seed) {
  auto* p = static_cast<std::uint8_t*>(buffer);
  for (std::uint32_t b = 0; b < blocks; ++b) {
    for (std::uint32_t w = 0; w < block_size / 8; ++w) {
      const std::uint64_t key[2] = {lba + b, w};
      const std::uint64_t v = XXH3_64bits_withSeed(key, sizeof key, seed);
      std::memcpy(p + std::size_t{b} * block_size + std::size_t{w} * 8, &v, 8);
    }
  }
}

inline AlignedBuffer pattern(std::uint64_t lba, std::uint32_t blocks, std::uint32_t block_size,
                             std::uint64_t seed = 1) {
  AlignedBuffer b(std::size_t{blocks} * block_size);
  fill_pattern(b.data(), lba, blocks, block_size, seed);
  return b;
}

inline bool all_zero(const AlignedBuffer& b) {
  for (std::size_t i = 0; i < b.size(); ++i)
    if (b.data()[i] != 0) return false;
  return true;
}

// A directory removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nyads-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    ::nyads::Status _s = (expr);                             \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.to_string(); \
  } while (0)
#define EXPECT_OK(expr)                                      \
  do {                                                       \
    ::nyads::Status _s = (expr);                             \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.to_string(); \
  } while (0)
#define EXPECT_CODE(expr, expected_code)                                          \
  do {                                                                            \
    ::nyads::Status _s = (expr);                                                  \
    EXPECT_EQ(_s.code(), (expected_code)) << #expr << " gave " << _s.to_string(); \
  } while (0)

// A test with an emulated device in a file of its own temporary directory.
class EmulatedFileTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string path_ = dir_.file("dev.zns");
  Geometry g_ = small_config().geometry();

  std::unique_ptr<EmulatedDevice> create() {
    auto d = EmulatedDevice::create_file(path_, small_config());
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    return d.ok() ? std::move(*d) : nullptr;
  }
};

}  // namespace nyads::test
