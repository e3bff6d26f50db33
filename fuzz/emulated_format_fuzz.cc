// Fuzzes the emulated device file's decoders: the header and the zone table. Whatever the
// bytes, decoding returns a value or an error; a value re-encodes to bytes that decode to the
// same value.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "zns/emulated_format.h"

using namespace nyads;
using namespace nyads::emulated_format;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto header = decode_header({data, size});
  if (header.ok()) {
    std::vector<std::uint8_t> again(kHeaderBytes);
    encode_header(*header, again);
    auto twice = decode_header(again);
    if (!twice.ok() || twice->data_offset != header->data_offset) std::abort();
  }
  // The zone table against a small fixed geometry, from the same bytes, in either version.
  const EmulatedConfig c = fuzz::emulated_config();
  const Geometry g = c.geometry();
  for (std::uint32_t version = kOldestVersion; version <= kVersion; ++version) {
    auto table = decode_zone_table({data, size}, g, version);
    if (!table.ok()) continue;
    std::vector<std::uint8_t> again(layout_for(c, version).table_slot_bytes);
    encode_zone_table(*table, version, again);
    auto twice = decode_zone_table(again, g, version);
    if (!twice.ok() || twice->zones != table->zones || twice->generation != table->generation ||
        twice->unsynced != table->unsynced)
      std::abort();
  }
  return 0;
}
