#include <algorithm>
#include <cstring>

#include "fs/format/codec.h"
#include "nyads/format.h"

namespace nyads::format {

namespace {
constexpr char kMagic[8] = {'N', 'Y', 'A', 'D', 'S', 'V', 'O', 'L'};
constexpr std::size_t kLabelBytes = 64;
bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
}  // namespace

Status Superblock::check_writable() const {
  const std::uint64_t unknown = ro_compat & ~feature::kKnownRoCompat;
  if (unknown != 0)
    return NotSupported("read-only-compatible features " + hex(unknown) +
                        " are unknown to this build: the volume can be opened read-only only");
  return Status::Ok();
}

Status validate_superblock(const Superblock& sb, std::string_view where) {
  const std::string w(where);
  auto bad = [&](const std::string& what) { return Corruption(w + ": " + what); };
  if (sb.generation == 0) return bad("generation 0 (the first superblock is generation 1)");
  bool nil = std::all_of(sb.uuid.begin(), sb.uuid.end(), [](std::uint8_t b) { return b == 0; });
  if (nil) return bad("the UUID is nil");
  if (!is_pow2(sb.block_size) || sb.block_size < 512 || sb.block_size > kMetaBlockSize)
    return bad("block_size " + num(sb.block_size) + " is not a power of two from 512 to 4096");
  if (sb.zone_size == 0) return bad("zone_size is 0 blocks");
  if (sb.zone_capacity == 0) return bad("zone_capacity is 0 blocks");
  if (sb.zone_capacity > sb.zone_size)
    return bad("zone_capacity " + num(sb.zone_capacity) + " blocks exceeds zone_size " + num(sb.zone_size) + " blocks");
  if (sb.meta_blocks_per_zone() < 16)
    return bad("zone_capacity " + num(sb.zone_capacity) + " blocks holds fewer than 16 metadata blocks of 4096 bytes");
  if (sb.zone_count < 7)
    return bad("zone_count " + num(sb.zone_count) +
               " is below the minimum of 7 (2 superblock, 2 journal, 2 checkpoint, 1 data)");
  if (sb.max_active_zones != 0 && sb.max_open_zones > sb.max_active_zones)
    return bad("max_open_zones " + num(sb.max_open_zones) + " exceeds max_active_zones " + num(sb.max_active_zones));
  if (sb.max_active_zones > sb.zone_count)
    return bad("max_active_zones " + num(sb.max_active_zones) + " exceeds zone_count " + num(sb.zone_count));
  if (sb.max_append_blocks < sb.blocks_per_meta_block())
    return bad("max_append_blocks " + num(sb.max_append_blocks) + " is smaller than one metadata block (" +
               num(sb.blocks_per_meta_block()) + " blocks)");
  if (sb.superblock_zones != ZoneRange{0, 2})
    return bad("superblock zones start at " + num(sb.superblock_zones.first) + " and count " +
               num(sb.superblock_zones.count) + ", expected zones 0 and 1");
  if (sb.journal_zones.first != sb.superblock_zones.end())
    return bad("journal zones start at zone " + num(sb.journal_zones.first) + ", expected " +
               num(sb.superblock_zones.end()));
  if (sb.journal_zones.count < 2) return bad("journal zone count " + num(sb.journal_zones.count) + " is below 2");
  if (sb.checkpoint_zones.first != sb.journal_zones.end())
    return bad("checkpoint zones start at zone " + num(sb.checkpoint_zones.first) + ", expected " +
               num(sb.journal_zones.end()));
  if (sb.checkpoint_zones.count < 2)
    return bad("checkpoint zone count " + num(sb.checkpoint_zones.count) + " is below 2");
  if (sb.data_zones.first != sb.checkpoint_zones.end())
    return bad("data zones start at zone " + num(sb.data_zones.first) + ", expected " + num(sb.checkpoint_zones.end()));
  if (sb.data_zones.count == 0) return bad("there are no data zones");
  if (std::uint64_t{sb.data_zones.first} + sb.data_zones.count != sb.zone_count)
    return bad("data zones end at zone " + num(std::uint64_t{sb.data_zones.first} + sb.data_zones.count) +
               ", expected zone_count " + num(sb.zone_count));
  if (sb.reserved_data_zones >= sb.data_zones.count)
    return bad("reserved_data_zones " + num(sb.reserved_data_zones) + " leaves no data zone of " +
               num(sb.data_zones.count));
  if (sb.label.size() >= kLabelBytes) return bad("label is " + num(sb.label.size()) + " bytes, the limit is 63");
  for (unsigned char c : sb.label)
    if (c < 0x20 || c == 0x7f) return bad("label has the control character " + byte_hex(c));
  return Status::Ok();
}

void encode_superblock(const Superblock& sb, std::span<std::uint8_t> out) {
  std::fill(out.begin(), out.begin() + kMetaBlockSize, 0);
  Writer w(out.first(kMetaBlockSize));
  w.bytes(kMagic, 8);
  w.u32(kVersion);
  w.u32(kMetaBlockSize);
  w.u64(sb.generation);
  w.u64(0);  // checksum, sealed below
  w.u64(sb.compat);
  w.u64(sb.ro_compat);
  w.u64(sb.incompat);
  w.bytes(sb.uuid.data(), 16);
  w.u64(sb.created);
  w.u32(sb.block_size);
  w.u32(sb.zone_count);
  w.u64(sb.zone_size);
  w.u64(sb.zone_capacity);
  w.u32(sb.max_open_zones);
  w.u32(sb.max_active_zones);
  w.u32(sb.max_append_blocks);
  w.u32(sb.reserved_data_zones);
  for (const ZoneRange& r : {sb.superblock_zones, sb.journal_zones, sb.checkpoint_zones, sb.data_zones}) {
    w.u32(r.first);
    w.u32(r.count);
  }
  w.bytes(sb.label.data(), std::min(sb.label.size(), kLabelBytes - 1));
  seal_block(out.first(kMetaBlockSize), sb.seed());
}

Result<Superblock> decode_superblock(std::span<const std::uint8_t> in, std::string_view where) {
  const std::string w(where);
  if (in.size() < kMetaBlockSize) return Corruption(w + ": " + num(in.size()) + " bytes, a superblock is 4096");
  in = in.first(kMetaBlockSize);
  if (std::memcmp(in.data(), kMagic, 8) != 0) return Corruption(w + ": not a nyads superblock (bad magic)");
  Superblock sb;
  std::memcpy(sb.uuid.data(), in.data() + 56, 16);
  const std::uint64_t stored = stored_checksum(in), actual = block_checksum(in, sb.seed());
  if (stored != actual)
    return Corruption(w + ": checksum mismatch (stored " + hex(stored) + ", computed " + hex(actual) + ")");
  Reader r(in);
  r.skip(8);
  const std::uint32_t version = r.u32();
  if (version != kVersion)
    return NotSupported(w + ": format version " + num(version) + ", this build reads version " + num(kVersion));
  const std::uint32_t bytes = r.u32();
  if (bytes != kMetaBlockSize) return Corruption(w + ": superblock size " + num(bytes) + ", expected 4096");
  sb.generation = r.u64();
  r.skip(8);
  sb.compat = r.u64();
  sb.ro_compat = r.u64();
  sb.incompat = r.u64();
  const std::uint64_t unknown = sb.incompat & ~feature::kKnownIncompat;
  if (unknown != 0)
    return NotSupported(w + ": incompatible features " + hex(unknown) + " are unknown to this build (it knows " +
                        hex(feature::kKnownIncompat) + ")");
  if ((sb.incompat & feature::kIncompatDataChecksum32) == 0)
    return Corruption(w + ": the incompatible feature data_checksum32 (" + hex(feature::kIncompatDataChecksum32) +
                      "), required in version 1, is not set");
  r.skip(16);
  sb.created = r.u64();
  sb.block_size = r.u32();
  sb.zone_count = r.u32();
  sb.zone_size = r.u64();
  sb.zone_capacity = r.u64();
  sb.max_open_zones = r.u32();
  sb.max_active_zones = r.u32();
  sb.max_append_blocks = r.u32();
  sb.reserved_data_zones = r.u32();
  for (ZoneRange* z : {&sb.superblock_zones, &sb.journal_zones, &sb.checkpoint_zones, &sb.data_zones}) {
    z->first = r.u32();
    z->count = r.u32();
  }
  std::string label = r.str(kLabelBytes);
  const std::size_t nul = label.find('\0');
  if (nul == std::string::npos) return Corruption(w + ": the label is not NUL-terminated within 64 bytes");
  sb.label = label.substr(0, nul);
  NYADS_RETURN_IF_ERROR(validate_superblock(sb, where));
  return sb;
}

}  // namespace nyads::format
