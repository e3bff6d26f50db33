// The bytes of an emulated zoned device file: its header and its two zone-table slots.
// Pure encode/decode (no I/O), so the fuzzer and the tests call them directly.
// Specified in doc/format.md, "Emulated zoned device file".
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "nyads/emulated_device.h"

namespace nyads::emulated_format {

// Version 2 (written now) adds, per zone, the blocks a flush's one sync covered and their
// hash; version 1 files are still read, and flushed by their own rule (two syncs).
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint32_t kOldestVersion = 1;
inline constexpr std::size_t kHeaderBytes = 4096;
inline constexpr std::size_t kTableHeaderBytes = 32;
std::size_t table_entry_bytes(std::uint32_t version);  // 16 in version 1, 32 in version 2
inline constexpr char kHeaderMagic[8] = {'N', 'Y', 'A', 'D', 'S', 'E', 'M', 'U'};
inline constexpr char kTableMagic[8] = {'N', 'Y', 'E', 'M', 'Z', 'T', 'A', 'B'};

struct Layout {
  EmulatedConfig config;
  std::uint32_t version = kVersion;
  std::uint64_t table_offset = 0;      // byte offset of zone-table slot 0; slot 1 follows
  std::uint64_t table_slot_bytes = 0;  // bytes per slot, a multiple of 4096
  std::uint64_t data_offset = 0;       // byte offset of zone 0's first block
  std::uint64_t file_bytes() const;
};

Layout layout_for(const EmulatedConfig& config, std::uint32_t version = kVersion);

void encode_header(const Layout& layout, std::span<std::uint8_t> out);  // out: kHeaderBytes
Result<Layout> decode_header(std::span<const std::uint8_t> in);

// Version 2: the blocks of one zone that were written since the last completed sync when the
// table was written, and so were synced together with it: [from, write pointer), in blocks
// from the zone start, and the XXH3-64 of their bytes. Opening checks them (format.md §1.3).
struct UnsyncedBlocks {
  std::uint64_t from = 0;
  std::uint64_t hash = 0;
  friend bool operator==(const UnsyncedBlocks&, const UnsyncedBlocks&) = default;
};

struct ZoneTable {
  std::uint64_t generation = 0;
  std::vector<ZoneInfo> zones;
  // Version 2: one per zone as decoded (encoding takes fewer: the rest have none); from at
  // the write pointer: none.
  std::vector<UnsyncedBlocks> unsynced;
  // Whether some zone has unsynced blocks named (from below its write pointer).
  bool names_unsynced() const {
    for (std::size_t z = 0; z < unsynced.size(); ++z)
      if (unsynced[z].from != zones[z].write_pointer - zones[z].start) return true;
    return false;
  }
};
// out: table_slot_bytes. A version 1 table has no unsynced blocks: the caller syncs the data first.
void encode_zone_table(const ZoneTable& table, std::uint32_t version, std::span<std::uint8_t> out);
Result<ZoneTable> decode_zone_table(std::span<const std::uint8_t> in, const Geometry& geometry, std::uint32_t version);

}  // namespace nyads::emulated_format
