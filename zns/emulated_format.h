// The bytes of an emulated zoned device file: its header and its two zone-table slots.
// Pure encode/decode (no I/O), so the fuzzer and the tests call them directly.
// Specified in doc/format.md, "Emulated zoned device file".
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nyads/emulated_device.h"

namespace nyads::emulated_format {

inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::size_t kHeaderBytes = 4096;
inline constexpr std::size_t kTableHeaderBytes = 32;
inline constexpr std::size_t kTableEntryBytes = 16;
inline constexpr char kHeaderMagic[8] = {'N', 'Y', 'A', 'D', 'S', 'E', 'M', 'U'};
inline constexpr char kTableMagic[8] = {'N', 'Y', 'E', 'M', 'Z', 'T', 'A', 'B'};

struct Layout {
  EmulatedConfig config;
  std::uint64_t table_offset = 0;      // byte offset of zone-table slot 0; slot 1 follows
  std::uint64_t table_slot_bytes = 0;  // bytes per slot, a multiple of 4096
  std::uint64_t data_offset = 0;       // byte offset of zone 0's first block
  std::uint64_t file_bytes() const;
};

Layout layout_for(const EmulatedConfig& config);

void encode_header(const Layout& layout, std::span<std::uint8_t> out);  // out: kHeaderBytes
Result<Layout> decode_header(std::span<const std::uint8_t> in);

struct ZoneTable {
  std::uint64_t generation = 0;
  std::vector<ZoneInfo> zones;
};
void encode_zone_table(const ZoneTable& table, std::span<std::uint8_t> out);  // out: table_slot_bytes
Result<ZoneTable> decode_zone_table(std::span<const std::uint8_t> in, const Geometry& geometry);

}  // namespace nyads::emulated_format
