// Helpers for store tests: a volume on an emulated device, a device handle the store can own
// while the test keeps the device (for power cycles), and a byte-exact model of namespaces.
#pragma once

#include <fstream>

#include "mkfs/mkfs.h"
#include "nyads/faulty_device.h"
#include "nyads/store.h"
#include "test_util.h"
#include "zns/emulated_format.h"

namespace nyads::test {

// Forwards to a device the test owns, so a Store can be destroyed (a crash) and the device
// power-cycled and opened again.
class BorrowedDevice : public ZonedDevice {
 public:
  explicit BorrowedDevice(ZonedDevice& d) : d_(d) {}
  const Geometry& geometry() const override { return d_.geometry(); }
  std::string backend() const override { return d_.backend(); }
  const std::string& name() const override { return d_.name(); }
  Result<std::vector<ZoneInfo>> report_zones(std::uint32_t f, std::uint32_t c) override {
    return d_.report_zones(f, c);
  }
  Status manage_zone(ZoneAction a, std::uint32_t z) override { return d_.manage_zone(a, z); }
  Status manage_all_zones(ZoneAction a) override { return d_.manage_all_zones(a); }
  Status submit(const IoRequest& r) override { return d_.submit(r); }
  std::size_t reap(std::span<IoCompletion> out, std::size_t min) override { return d_.reap(out, min); }
  std::uint32_t in_flight() const override { return d_.in_flight(); }
  std::uint32_t queue_depth() const override { return d_.queue_depth(); }
  std::size_t buffer_alignment() const override { return d_.buffer_alignment(); }

 private:
  ZonedDevice& d_;
};

// A volume-sized emulated device: zones of 1 MiB (768 KiB writable), 4 KiB blocks.
inline EmulatedConfig store_config(std::uint32_t zones = 40) {
  EmulatedConfig c = small_config();
  c.zone_count = zones;
  c.max_open_zones = 8;
  c.max_active_zones = 10;
  return c;
}

// A store_config() device whose zone limits leave room for every stream the store sorts
// data into (see Store's shared streams).
inline EmulatedConfig store_config_with_every_stream(std::uint32_t zones = 40) {
  EmulatedConfig c = store_config(zones);
  c.max_open_zones = 14;
  c.max_active_zones = 14;
  return c;
}

inline std::unique_ptr<EmulatedDevice> formatted_memory_device(const EmulatedConfig& config) {
  auto d = EmulatedDevice::create_memory(config);
  EXPECT_TRUE(d.ok()) << d.status().to_string();
  auto r = mkfs::format_volume(**d, {});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(*d);
}

inline std::unique_ptr<EmulatedDevice> formatted_memory_device(std::uint32_t zones = 40) {
  return formatted_memory_device(store_config(zones));
}

inline std::unique_ptr<Store> open_store(ZonedDevice& d, const StoreOptions& o = {}) {
  auto s = Store::open(std::make_unique<BorrowedDevice>(d), o);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? std::move(*s) : nullptr;
}

// Flips a byte of device block `lba` in an emulated device's file made with `config` (damage
// as a bad disk would do it, under the device's checksums).
inline void flip_byte(const std::string& path, const EmulatedConfig& config, std::uint64_t lba, std::size_t byte) {
  const auto layout = emulated_format::layout_for(config);
  const auto at = static_cast<std::streamoff>(layout.data_offset + lba * config.block_size + byte);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  const char c = static_cast<char>(f.get());
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x5a));
  f.flush();
  EXPECT_TRUE(f.good()) << "flipping a byte of " << path;
}

inline std::vector<std::uint8_t> bytes_of(std::uint64_t seed, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::uint8_t>(x);
  }
  return v;
}

}  // namespace nyads::test
