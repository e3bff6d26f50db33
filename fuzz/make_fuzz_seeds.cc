// Writes seed inputs for the fuzz targets with the real encoders:
//   make_fuzz_seeds DIR   ->  DIR/emulated_format_fuzz/{header-*,table-*}
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "zns/emulated_format.h"

using namespace nyads;
namespace ef = nyads::emulated_format;

static void save(const std::filesystem::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[1]) / "emulated_format_fuzz";
  std::filesystem::create_directories(dir);
  EmulatedConfig c;
  c.zone_size_bytes = 1 << 20;
  c.zone_capacity_bytes = 768 << 10;
  c.zone_count = 16;
  c.max_open_zones = 6;
  c.max_active_zones = 8;
  std::vector<std::uint8_t> h(ef::kHeaderBytes);
  ef::encode_header(ef::layout_for(c), h);
  save(dir / "header-small", h);
  ef::encode_header(ef::layout_for(EmulatedConfig{}), h);
  save(dir / "header-default", h);
  ef::ZoneTable t;
  t.generation = 3;
  const Geometry g = c.geometry();
  for (std::uint32_t z = 0; z < g.zone_count; ++z) t.zones.push_back({g.zone_start(z), g.zone_start(z), g.zone_capacity, ZoneState::kEmpty});
  t.zones[1] = {g.zone_start(1), g.zone_start(1) + 7, g.zone_capacity, ZoneState::kClosed};
  t.zones[2] = {g.zone_start(2), g.zone_start(2) + g.zone_capacity, g.zone_capacity, ZoneState::kFull};
  std::vector<std::uint8_t> tb(ef::layout_for(c).table_slot_bytes);
  ef::encode_zone_table(t, tb);
  save(dir / "table-small", tb);
  return 0;
}
