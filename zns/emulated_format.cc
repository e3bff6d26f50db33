#include "zns/emulated_format.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "nyads/byte_order.h"

namespace nyads {

namespace {
std::string u(std::uint64_t v) { return std::to_string(v); }
bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
}  // namespace

Status EmulatedConfig::validate() const {
  if (!is_pow2(block_size) || block_size < 512 || block_size > 65536)
    return InvalidArgument("block size " + u(block_size) + " is not a power of two from 512 to 65536");
  auto multiple = [&](std::uint64_t v, const char* name) -> Status {
    if (v == 0 || v % block_size != 0)
      return InvalidArgument(std::string(name) + " " + u(v) + " bytes is not a positive multiple of the block size " +
                             u(block_size));
    return Status::Ok();
  };
  NYADS_RETURN_IF_ERROR(multiple(zone_size_bytes, "zone size"));
  NYADS_RETURN_IF_ERROR(multiple(zone_capacity_bytes, "zone capacity"));
  NYADS_RETURN_IF_ERROR(multiple(max_append_bytes, "max append size"));
  NYADS_RETURN_IF_ERROR(multiple(max_io_bytes, "max I/O size"));
  if (zone_capacity_bytes > zone_size_bytes)
    return InvalidArgument("zone capacity " + u(zone_capacity_bytes) + " bytes exceeds zone size " +
                           u(zone_size_bytes) + " bytes");
  if (zone_size_bytes / block_size > (1ull << 32))
    return InvalidArgument("zone size " + u(zone_size_bytes) + " bytes exceeds 2^32 blocks");
  if (zone_count == 0 || zone_count > (1u << 24))
    return InvalidArgument("zone count " + u(zone_count) + " is not from 1 to 16777216");
  if (max_active_zones != 0 && (max_open_zones == 0 || max_open_zones > max_active_zones))
    return InvalidArgument("max open zones " + (max_open_zones == 0 ? std::string("(unlimited)") : u(max_open_zones)) +
                           " exceeds max active zones " + u(max_active_zones));
  if (max_active_zones > zone_count)
    return InvalidArgument("max active zones " + u(max_active_zones) + " exceeds the zone count " + u(zone_count));
  if (max_open_zones > zone_count)
    return InvalidArgument("max open zones " + u(max_open_zones) + " exceeds the zone count " + u(zone_count));
  return Status::Ok();
}

Geometry EmulatedConfig::geometry() const {
  Geometry g;
  g.block_size = block_size;
  g.zone_size = zone_size_bytes / block_size;
  g.zone_capacity = zone_capacity_bytes / block_size;
  g.zone_count = zone_count;
  g.max_open_zones = max_open_zones;
  g.max_active_zones = max_active_zones;
  g.max_append_blocks = max_append_bytes / block_size;
  g.max_io_blocks = max_io_bytes / block_size;
  g.native_append = true;
  return g;
}

namespace emulated_format {

namespace {
constexpr std::size_t kHeaderChecksumAt = 80;  // the checksum covers bytes [0, 80)
std::uint64_t round_up(std::uint64_t v, std::uint64_t to) { return (v + to - 1) / to * to; }
}  // namespace

std::uint64_t Layout::file_bytes() const { return data_offset + config.zone_size_bytes * config.zone_count; }

std::size_t table_entry_bytes(std::uint32_t version) { return version >= 2 ? 32 : 16; }

Layout layout_for(const EmulatedConfig& config, std::uint32_t version) {
  Layout l;
  l.config = config;
  l.version = version;
  l.table_offset = kHeaderBytes;
  l.table_slot_bytes = round_up(kTableHeaderBytes + table_entry_bytes(version) * config.zone_count, 4096);
  l.data_offset = round_up(l.table_offset + 2 * l.table_slot_bytes, std::max<std::uint64_t>(config.block_size, 4096));
  return l;
}

void encode_header(const Layout& l, std::span<std::uint8_t> out) {
  std::fill(out.begin(), out.end(), 0);
  std::uint8_t* p = out.data();
  std::memcpy(p, kHeaderMagic, 8);
  put_le32(p + 8, l.version);
  put_le32(p + 12, kHeaderBytes);
  put_le32(p + 16, l.config.block_size);
  put_le32(p + 20, l.config.zone_count);
  put_le64(p + 24, l.config.zone_size_bytes / l.config.block_size);
  put_le64(p + 32, l.config.zone_capacity_bytes / l.config.block_size);
  put_le32(p + 40, l.config.max_open_zones);
  put_le32(p + 44, l.config.max_active_zones);
  put_le32(p + 48, l.config.max_append_bytes / l.config.block_size);
  put_le32(p + 52, l.config.max_io_bytes / l.config.block_size);
  put_le64(p + 56, l.table_offset);
  put_le64(p + 64, l.table_slot_bytes);
  put_le64(p + 72, l.data_offset);
  put_le64(p + kHeaderChecksumAt, XXH3_64bits(p, kHeaderChecksumAt));
}

Result<Layout> decode_header(std::span<const std::uint8_t> in) {
  if (in.size() < kHeaderBytes)
    return Corruption("emulated device header: " + u(in.size()) + " bytes, need " + u(kHeaderBytes));
  const std::uint8_t* p = in.data();
  if (std::memcmp(p, kHeaderMagic, 8) != 0) return Corruption("not an emulated zoned device (bad magic)");
  const std::uint64_t stored = get_le64(p + kHeaderChecksumAt);
  const std::uint64_t actual = XXH3_64bits(p, kHeaderChecksumAt);
  if (stored != actual) return Corruption("emulated device header: checksum mismatch");
  const std::uint32_t version = get_le32(p + 8);
  if (version < kOldestVersion || version > kVersion)
    return NotSupported("emulated device header: version " + u(version) + ", this build reads versions " +
                        u(kOldestVersion) + " to " + u(kVersion));
  if (get_le32(p + 12) != kHeaderBytes)
    return Corruption("emulated device header: header size " + u(get_le32(p + 12)) + ", expected 4096");
  Layout l;
  l.version = version;
  EmulatedConfig& c = l.config;
  c.block_size = get_le32(p + 16);
  c.zone_count = get_le32(p + 20);
  const std::uint64_t zone_blocks = get_le64(p + 24);
  const std::uint64_t cap_blocks = get_le64(p + 32);
  c.max_open_zones = get_le32(p + 40);
  c.max_active_zones = get_le32(p + 44);
  const std::uint64_t append_blocks = get_le32(p + 48);
  const std::uint64_t io_blocks = get_le32(p + 52);
  if (c.block_size < 512 || c.block_size > 65536 || !is_pow2(c.block_size))
    return Corruption("emulated device header: block size " + u(c.block_size) +
                      " is not a power of two from 512 to 65536");
  if (zone_blocks == 0 || zone_blocks > (1ull << 32) || cap_blocks > zone_blocks)
    return Corruption("emulated device header: zone size " + u(zone_blocks) + " blocks, capacity " + u(cap_blocks) +
                      " blocks");
  if (append_blocks == 0 || io_blocks == 0 || append_blocks * c.block_size > 0xffffffffull ||
      io_blocks * c.block_size > 0xffffffffull)
    return Corruption("emulated device header: append limit " + u(append_blocks) + " / I/O limit " + u(io_blocks) +
                      " blocks");
  c.zone_size_bytes = zone_blocks * c.block_size;
  c.zone_capacity_bytes = cap_blocks * c.block_size;
  c.max_append_bytes = static_cast<std::uint32_t>(append_blocks * c.block_size);
  c.max_io_bytes = static_cast<std::uint32_t>(io_blocks * c.block_size);
  Status valid = c.validate();
  if (!valid.ok()) return Corruption("emulated device header: " + valid.message());
  const Layout expected = layout_for(c, version);
  l.table_offset = get_le64(p + 56);
  l.table_slot_bytes = get_le64(p + 64);
  l.data_offset = get_le64(p + 72);
  if (l.table_offset != expected.table_offset || l.table_slot_bytes != expected.table_slot_bytes ||
      l.data_offset != expected.data_offset)
    return Corruption("emulated device header: layout offsets (" + u(l.table_offset) + ", " + u(l.table_slot_bytes) +
                      ", " + u(l.data_offset) + ") do not match the geometry (" + u(expected.table_offset) + ", " +
                      u(expected.table_slot_bytes) + ", " + u(expected.data_offset) + ")");
  return l;
}

namespace {
constexpr std::size_t kTableChecksumAt = 24;
std::uint64_t table_checksum(std::span<const std::uint8_t> used) {
  // The checksum field itself is hashed as zero.
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  XXH3_64bits_update(state.get(), used.data(), kTableChecksumAt);
  const std::uint8_t zero[8] = {};
  XXH3_64bits_update(state.get(), zero, 8);
  XXH3_64bits_update(state.get(), used.data() + kTableChecksumAt + 8, used.size() - kTableChecksumAt - 8);
  return XXH3_64bits_digest(state.get());
}
}  // namespace

void encode_zone_table(const ZoneTable& t, std::uint32_t version, std::span<std::uint8_t> out) {
  const std::size_t entry_bytes = table_entry_bytes(version);
  const std::size_t used = kTableHeaderBytes + entry_bytes * t.zones.size();
  std::fill(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(used), 0);
  std::uint8_t* p = out.data();
  std::memcpy(p, kTableMagic, 8);
  put_le64(p + 8, t.generation);
  put_le32(p + 16, static_cast<std::uint32_t>(t.zones.size()));
  put_le32(p + 20, static_cast<std::uint32_t>(entry_bytes));
  for (std::size_t i = 0; i < t.zones.size(); ++i) {
    std::uint8_t* e = p + kTableHeaderBytes + i * entry_bytes;
    const std::uint64_t wp = t.zones[i].write_pointer - t.zones[i].start;
    put_le64(e, wp);
    e[8] = static_cast<std::uint8_t>(t.zones[i].state);
    if (version < 2) continue;
    const UnsyncedBlocks none{wp, 0};
    const UnsyncedBlocks& un = i < t.unsynced.size() ? t.unsynced[i] : none;
    put_le64(e + 16, un.from);
    put_le64(e + 24, un.hash);
  }
  put_le64(p + kTableChecksumAt, table_checksum(out.first(used)));
}

Result<ZoneTable> decode_zone_table(std::span<const std::uint8_t> in, const Geometry& g, std::uint32_t version) {
  const std::size_t entry_bytes = table_entry_bytes(version);
  const std::size_t used = kTableHeaderBytes + entry_bytes * static_cast<std::size_t>(g.zone_count);
  if (in.size() < used) return Corruption("zone table: " + u(in.size()) + " bytes, need " + u(used));
  const std::uint8_t* p = in.data();
  if (std::memcmp(p, kTableMagic, 8) != 0) return Corruption("zone table: bad magic");
  // The count and entry size say how many bytes the checksum covers: check them first.
  if (get_le32(p + 16) != g.zone_count)
    return Corruption("zone table: " + u(get_le32(p + 16)) + " zones, the header says " + u(g.zone_count));
  if (get_le32(p + 20) != entry_bytes)
    return Corruption("zone table: entry size " + u(get_le32(p + 20)) + ", expected " + u(entry_bytes) +
                      " in a version " + u(version) + " file");
  if (get_le64(p + kTableChecksumAt) != table_checksum(in.first(used)))
    return Corruption("zone table: checksum mismatch");
  ZoneTable t;
  t.generation = get_le64(p + 8);
  t.zones.resize(g.zone_count);
  if (version >= 2) t.unsynced.resize(g.zone_count);
  for (std::uint32_t z = 0; z < g.zone_count; ++z) {
    const std::uint8_t* e = p + kTableHeaderBytes + std::size_t{z} * entry_bytes;
    ZoneInfo& info = t.zones[z];
    info.start = g.zone_start(z);
    info.capacity = g.zone_capacity;
    const std::uint64_t wp = get_le64(e);
    const std::uint8_t state = e[8];
    switch (static_cast<ZoneState>(state)) {
      case ZoneState::kEmpty:
      case ZoneState::kImplicitOpen:
      case ZoneState::kExplicitOpen:
      case ZoneState::kClosed:
      case ZoneState::kReadOnly:
      case ZoneState::kFull:
      case ZoneState::kOffline: break;
      default: return Corruption("zone table: zone " + u(z) + " has unknown state " + u(state));
    }
    info.state = static_cast<ZoneState>(state);
    if (wp > g.zone_capacity)
      return Corruption("zone table: zone " + u(z) + " write pointer offset " + u(wp) + " exceeds the zone capacity " +
                        u(g.zone_capacity));
    if (info.state == ZoneState::kEmpty && wp != 0)
      return Corruption("zone table: zone " + u(z) + " is empty but its write pointer offset is " + u(wp));
    if (info.state == ZoneState::kFull && wp != g.zone_capacity)
      return Corruption("zone table: zone " + u(z) + " is full but its write pointer offset is " + u(wp));
    info.write_pointer = info.start + wp;
    if (version < 2) continue;
    const UnsyncedBlocks un{get_le64(e + 16), get_le64(e + 24)};
    if (un.from > wp)
      return Corruption("zone table: zone " + u(z) + " has unsynced blocks from offset " + u(un.from) +
                        ", past its write pointer offset " + u(wp));
    if (un.from == wp && un.hash != 0)
      return Corruption("zone table: zone " + u(z) + " has a hash but no unsynced blocks");
    if (un.from < wp && (info.state == ZoneState::kReadOnly || info.state == ZoneState::kOffline))
      return Corruption("zone table: zone " + u(z) + " is " + std::string(zone_state_name(info.state)) +
                        " but has unsynced blocks");
    t.unsynced[z] = un;
  }
  return t;
}

}  // namespace emulated_format

bool looks_like_emulated_device(std::span<const std::uint8_t> first_bytes) {
  return first_bytes.size() >= 8 && std::memcmp(first_bytes.data(), emulated_format::kHeaderMagic, 8) == 0;
}

}  // namespace nyads
