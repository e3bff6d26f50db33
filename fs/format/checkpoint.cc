#include <cstring>

#include "fs/format/codec.h"
#include "nyads/format.h"

namespace nyads::format {

namespace {

constexpr char kMagic[8] = {'N', 'Y', 'A', 'D', 'S', 'C', 'K', 'P'};
constexpr std::size_t kCommitFixedBytes = 40;
constexpr std::uint32_t kKnownNamespaceFlags = kNamespaceQuarantined | kNamespaceThin;
constexpr std::uint32_t kStreamMask = 0x3;

Status validate_namespace_entry(const NamespaceEntry& e) {
  if (e.ns_id == 0) return InvalidArgument("namespace id 0 is reserved");
  if (e.flags & ~kKnownNamespaceFlags)
    return InvalidArgument("namespace " + num(e.ns_id) + ": unknown flags " + hex(e.flags & ~kKnownNamespaceFlags));
  if (e.block_size != 512 && e.block_size != 4096)
    return InvalidArgument("namespace " + num(e.ns_id) + ": block size " + num(e.block_size) + " is not 512 or 4096");
  if (e.size_bytes == 0 || e.size_bytes % kStoreBlockSize != 0)
    return InvalidArgument("namespace " + num(e.ns_id) + ": size " + num(e.size_bytes) +
                           " bytes is not a positive multiple of 4096");
  if (e.written_blocks > e.size_bytes / kStoreBlockSize)
    return InvalidArgument("namespace " + num(e.ns_id) + ": " + num(e.written_blocks) + " written blocks exceed its " +
                           num(e.size_bytes / kStoreBlockSize));
  Status name = validate_namespace_name(e.name);
  if (!name.ok()) return InvalidArgument("namespace " + num(e.ns_id) + ": " + name.message());
  return Status::Ok();
}

Status validate_index_entry(const ExtentIndexEntry& e) {
  if (e.ns_id == 0) return InvalidArgument("namespace id 0 is reserved");
  if (e.mapped_blocks == 0) return InvalidArgument("an extent block of 0 mapped blocks");
  if (e.first_vblock >= e.end_vblock || e.end_vblock > kMaxVblock)
    return InvalidArgument("blocks " + num(e.first_vblock) + ".." + num(e.end_vblock) + " are not a range within 2^52");
  if (e.mapped_blocks > e.end_vblock - e.first_vblock)
    return InvalidArgument(num(e.mapped_blocks) + " mapped blocks do not fit in blocks " + num(e.first_vblock) + ".." +
                           num(e.end_vblock));
  return Status::Ok();
}

Status validate_zone_entry(const ZoneEntry& z) {
  if (z.flags & ~kStreamMask)
    return InvalidArgument("zone " + num(z.zone) + ": unknown flags " + hex(z.flags & ~kStreamMask));
  if ((z.flags & kStreamMask) == 3) return InvalidArgument("zone " + num(z.zone) + ": stream 3 is not defined");
  return Status::Ok();
}

// Packed extents (kind 5): each entry is
//   head = blocks << 1 | states_namespace, [ns_id if states_namespace], gap, lba difference,
//   then blocks checksums (u32)
// with varints for all but the checksums. gap counts from the end of the entry before (0 after
// a stated namespace); the lba difference (zigzag) from the lba of the entry before (0 for the
// block's first entry).
bool states_namespace(const record::Extent& e, const record::Extent* previous) {
  return previous == nullptr || previous->ns_id != e.ns_id || e.vblock < previous->vblock + previous->checksums.size();
}
std::uint64_t gap_base(const record::Extent& e, const record::Extent* previous) {
  return states_namespace(e, previous) ? 0 : previous->vblock + previous->checksums.size();
}
std::uint64_t lba_difference(const record::Extent& e, const record::Extent* previous) {
  return zigzag(static_cast<std::int64_t>(e.lba - (previous ? previous->lba : 0)));
}

// Reads one varint in its shortest form, ending before `end`.
Status read_varint(Reader& r, std::size_t end, const char* what, std::uint64_t* v) {
  *v = 0;
  for (int i = 0; i < 10; ++i) {
    if (r.pos() >= end) return Corruption(std::string(what) + " is cut short");
    const std::uint8_t b = r.u8();
    if (i == 9 && b > 1) return Corruption(std::string(what) + " does not fit in 64 bits");
    *v |= std::uint64_t{b & 0x7fu} << (7 * i);
    if ((b & 0x80) == 0) {
      if (b == 0 && i > 0) return Corruption(std::string(what) + " is not in its shortest form");
      return Status::Ok();
    }
  }
  return Corruption(std::string(what) + " does not fit in 64 bits");
}

Status read_packed_extent(Reader& r, std::size_t end, const record::Extent* previous, record::Extent* e) {
  std::uint64_t head = 0, gap = 0, difference = 0;
  NYADS_RETURN_IF_ERROR(read_varint(r, end, "head", &head));
  const std::uint64_t blocks = head >> 1;
  if (blocks == 0) return Corruption("extent of 0 blocks");
  if (blocks > kMaxExtentBlocksPerRecord)
    return Corruption("extent of " + num(blocks) + " blocks exceeds " + num(kMaxExtentBlocksPerRecord));
  std::uint64_t base = 0;
  if (head & 1) {
    std::uint64_t id = 0;
    NYADS_RETURN_IF_ERROR(read_varint(r, end, "namespace id", &id));
    if (id == 0 || id > UINT32_MAX) return Corruption("namespace id " + num(id) + " is not 1..2^32-1");
    e->ns_id = static_cast<std::uint32_t>(id);
  } else {
    if (previous == nullptr) return Corruption("the first entry of a block does not state its namespace");
    e->ns_id = previous->ns_id;
    base = previous->vblock + previous->checksums.size();
  }
  NYADS_RETURN_IF_ERROR(read_varint(r, end, "gap", &gap));
  if (gap >= kMaxVblock) return Corruption("gap of " + num(gap) + " blocks runs past 2^52 blocks");
  NYADS_RETURN_IF_ERROR(read_varint(r, end, "lba difference", &difference));
  e->vblock = base + gap;
  e->lba = (previous ? previous->lba : 0) + static_cast<std::uint64_t>(unzigzag(difference));
  if (end - r.pos() < blocks * 4) return Corruption("extent of " + num(blocks) + " blocks runs past the payload");
  e->checksums.resize(blocks);
  r.u32s(e->checksums);
  return Status::Ok();
}

std::uint16_t version_of(CheckpointKind kind) {
  if (kind == CheckpointKind::kPackedExtents) return kPackedExtentsVersion;
  if (kind == CheckpointKind::kExtentIndex) return kExtentIndexVersion;
  return static_cast<std::uint16_t>(kVersion);
}

}  // namespace

Status check_indexed_extents(std::span<const record::Extent> extents, const ExtentIndexEntry& entry) {
  if (extents.empty())
    return Corruption("holds no extents, its index entry says " + num(entry.mapped_blocks) + " blocks");
  std::uint64_t mapped = 0, end = entry.first_vblock;
  for (std::size_t i = 0; i < extents.size(); ++i) {
    const record::Extent& e = extents[i];
    if (e.ns_id != entry.ns_id)
      return Corruption("extent " + num(i) + " is of namespace " + num(e.ns_id) + ", its index entry names " +
                        num(entry.ns_id));
    if (i == 0 && e.vblock != entry.first_vblock)
      return Corruption("its first extent starts at block " + num(e.vblock) + ", its index entry says " +
                        num(entry.first_vblock));
    if (e.vblock < end)
      return Corruption("extent " + num(i) + " at block " + num(e.vblock) + " starts before the one before it ends (" +
                        num(end) + ")");
    end = e.vblock + e.checksums.size();
    mapped += e.checksums.size();
  }
  if (end != entry.end_vblock)
    return Corruption("its last extent ends at block " + num(end) + ", its index entry says " + num(entry.end_vblock));
  if (mapped != entry.mapped_blocks)
    return Corruption("its extents map " + num(mapped) + " blocks, its index entry says " + num(entry.mapped_blocks));
  return Status::Ok();
}

std::size_t packed_extent_bytes(const record::Extent& e, const record::Extent* previous) {
  const bool stated = states_namespace(e, previous);
  return varint_bytes(e.checksums.size() << 1 | (stated ? 1 : 0)) + (stated ? varint_bytes(e.ns_id) : 0) +
         varint_bytes(e.vblock - gap_base(e, previous)) + varint_bytes(lba_difference(e, previous)) +
         4 * e.checksums.size();
}

Status encode_checkpoint_block(const CheckpointBlock& b, std::uint64_t seed, std::span<std::uint8_t> out) {
  if (out.size() < kMetaBlockSize) return InvalidArgument("checkpoint block buffer of " + num(out.size()) + " bytes");
  if (b.checkpoint_seq == 0) return InvalidArgument("checkpoint sequence 0");
  out = out.first(kMetaBlockSize);
  std::fill(out.begin(), out.end(), 0);
  Writer w(out);
  w.bytes(kMagic, 8);
  w.u16(version_of(b.kind()));
  w.u16(static_cast<std::uint16_t>(b.kind()));
  const std::size_t count_at = w.pos();
  w.u32(0);  // entry count, below
  w.u64(b.checkpoint_seq);
  w.u64(0);  // checksum
  w.u32(b.index);
  const std::size_t payload_at = w.pos();
  w.u32(0);  // payload bytes, below
  std::uint32_t count = 0;
  Status st = std::visit(
      [&](const auto& v) -> Status {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::vector<NamespaceEntry>>) {
          if (v.size() > kNamespacesPerBlock)
            return InvalidArgument(num(v.size()) + " namespaces exceed " + num(kNamespacesPerBlock) + " per block");
          for (const auto& e : v) {
            NYADS_RETURN_IF_ERROR(validate_namespace_entry(e));
            w.u32(e.ns_id);
            w.u32(e.flags);
            w.u32(e.block_size);
            w.u32(static_cast<std::uint32_t>(e.name.size()));
            w.u64(e.size_bytes);
            w.u64(e.written_blocks);
            w.bytes(e.name.data(), e.name.size());
            w.zeros(kMaxNameLength - e.name.size());
          }
          count = static_cast<std::uint32_t>(v.size());
        } else if constexpr (std::is_same_v<T, std::vector<record::Extent>>) {
          std::size_t total = 0;
          for (const auto& e : v) {
            NYADS_RETURN_IF_ERROR(validate_record(e));
            total += kExtentHeaderBytes + 4 * e.checksums.size();
          }
          if (total > kCheckpointPayloadBytes)
            return InvalidArgument("extents take " + num(total) + " bytes, a checkpoint block holds " +
                                   num(kCheckpointPayloadBytes));
          for (const auto& e : v) write_extent(w, e);
          count = static_cast<std::uint32_t>(v.size());
        } else if constexpr (std::is_same_v<T, PackedExtents>) {
          std::size_t total = 0;
          const record::Extent* previous = nullptr;
          for (const auto& e : v.extents) {
            NYADS_RETURN_IF_ERROR(validate_record(e));
            total += packed_extent_bytes(e, previous);
            previous = &e;
          }
          if (total > kCheckpointPayloadBytes)
            return InvalidArgument("packed extents take " + num(total) + " bytes, a checkpoint block holds " +
                                   num(kCheckpointPayloadBytes));
          previous = nullptr;
          for (const auto& e : v.extents) {
            const bool stated = states_namespace(e, previous);
            w.varint(e.checksums.size() << 1 | (stated ? 1 : 0));
            if (stated) w.varint(e.ns_id);
            w.varint(e.vblock - gap_base(e, previous));
            w.varint(lba_difference(e, previous));
            w.u32s(e.checksums);
            previous = &e;
          }
          count = static_cast<std::uint32_t>(v.extents.size());
        } else if constexpr (std::is_same_v<T, ExtentIndex>) {
          if (v.entries.size() > kExtentIndexEntriesPerBlock)
            return InvalidArgument(num(v.entries.size()) + " index entries exceed " + num(kExtentIndexEntriesPerBlock) +
                                   " per block");
          for (const auto& e : v.entries) {
            NYADS_RETURN_IF_ERROR(validate_index_entry(e));
            w.u32(e.ns_id);
            w.u32(e.mapped_blocks);
            w.u64(e.first_vblock);
            w.u64(e.end_vblock);
            w.u64(e.checksum);
          }
          count = static_cast<std::uint32_t>(v.entries.size());
        } else if constexpr (std::is_same_v<T, std::vector<ZoneEntry>>) {
          if (v.size() > kZonesPerBlock)
            return InvalidArgument(num(v.size()) + " zones exceed " + num(kZonesPerBlock) + " per block");
          for (const auto& z : v) {
            NYADS_RETURN_IF_ERROR(validate_zone_entry(z));
            w.u32(z.zone);
            w.u32(z.flags);
            w.u32(z.valid_blocks);
            w.u32(0);
            w.u64(z.last_write_seq);
          }
          count = static_cast<std::uint32_t>(v.size());
        } else {
          if (v.zones.empty()) return InvalidArgument("a checkpoint commit names no zones");
          if (kCommitFixedBytes + 4 * v.zones.size() > kCheckpointPayloadBytes)
            return InvalidArgument("a checkpoint commit names too many zones");
          if (v.block_count != b.index)
            return InvalidArgument("a commit at index " + num(b.index) + " must count " + num(b.index) +
                                   " blocks, not " + num(v.block_count));
          if (v.journal_seq == 0 || v.next_ns_id == 0)
            return InvalidArgument("journal sequence and next namespace id start at 1");
          w.u32(v.block_count);
          w.u32(v.next_ns_id);
          w.u64(v.journal_seq);
          w.u32(v.journal_zone);
          w.u32(v.journal_block);
          w.u64(v.chain);
          w.u64(v.created);
          for (std::uint32_t z : v.zones) w.u32(z);
          count = static_cast<std::uint32_t>(v.zones.size());
        }
        return Status::Ok();
      },
      b.body);
  NYADS_RETURN_IF_ERROR(st);
  put_le32(out.data() + count_at, count);
  put_le32(out.data() + payload_at, static_cast<std::uint32_t>(w.pos() - kCheckpointHeaderBytes));
  seal_block(out, seed);
  return Status::Ok();
}

Result<CheckpointBlock> decode_checkpoint_block(std::span<const std::uint8_t> in, std::uint64_t seed,
                                                std::string_view where) {
  const std::string w(where);
  auto bad = [&](const std::string& what) { return Corruption(w + ": " + what); };
  if (in.size() < kMetaBlockSize) return bad(num(in.size()) + " bytes, a checkpoint block is 4096");
  in = in.first(kMetaBlockSize);
  if (std::memcmp(in.data(), kMagic, 8) != 0) return bad("not a checkpoint block (bad magic)");
  const std::uint64_t stored = stored_checksum(in), actual = block_checksum(in, seed);
  if (stored != actual) return bad("checksum mismatch (stored " + hex(stored) + ", computed " + hex(actual) + ")");
  Reader r(in);
  r.skip(8);
  const std::uint16_t version = r.u16();
  if (version != kVersion && version != kPackedExtentsVersion && version != kExtentIndexVersion)
    return NotSupported(w + ": checkpoint version " + num(version) +
                        ", this build reads versions 1 to 3 (written by a newer nyads?)");
  const std::uint16_t kind = r.u16();
  const std::uint16_t kind_version = version_of(static_cast<CheckpointKind>(kind));
  if (version != kind_version)
    return bad("a block of kind " + num(kind) + " has version " + num(version) + ", not " + num(kind_version));
  const std::uint32_t count = r.u32();
  CheckpointBlock b;
  b.checkpoint_seq = r.u64();
  r.skip(8);
  b.index = r.u32();
  const std::uint32_t payload = r.u32();
  if (b.checkpoint_seq == 0) return bad("checkpoint sequence 0");
  if (payload > kCheckpointPayloadBytes)
    return bad("payload of " + num(payload) + " bytes exceeds " + num(kCheckpointPayloadBytes));
  const std::size_t end = kCheckpointHeaderBytes + payload;
  switch (static_cast<CheckpointKind>(kind)) {
    case CheckpointKind::kNamespaces: {
      if (std::uint64_t{count} * kNamespaceEntryBytes != payload)
        return bad(num(count) + " namespace entries need " + num(std::uint64_t{count} * kNamespaceEntryBytes) +
                   " bytes, the payload is " + num(payload));
      std::vector<NamespaceEntry> v(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        NamespaceEntry& e = v[i];
        e.ns_id = r.u32();
        e.flags = r.u32();
        e.block_size = r.u32();
        const std::uint32_t name_len = r.u32();
        e.size_bytes = r.u64();
        e.written_blocks = r.u64();
        std::string name = r.str(kMaxNameLength);
        if (name_len == 0 || name_len > kMaxNameLength)
          return bad("namespace entry " + num(i) + ": name length " + num(name_len) + " is not 1..64");
        e.name = name.substr(0, name_len);
        Status s = validate_namespace_entry(e);
        if (!s.ok()) return bad("namespace entry " + num(i) + ": " + s.message());
      }
      b.body = std::move(v);
      break;
    }
    case CheckpointKind::kExtents: {
      // Bound the count by the payload before allocating: an extent takes 28 bytes at least.
      if (std::uint64_t{count} * (kExtentHeaderBytes + 4) > payload)
        return bad(num(count) + " extents cannot fit in a payload of " + num(payload) + " bytes");
      std::vector<record::Extent> v(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        Status s = read_extent(r, end - r.pos(), &v[i]);
        if (s.ok()) s = validate_record(v[i]);
        if (!s.ok()) return bad("extent " + num(i) + ": " + s.message());
      }
      if (r.pos() != end)
        return bad(num(count) + " extents take " + num(r.pos() - kCheckpointHeaderBytes) + " bytes, the header says " +
                   num(payload));
      b.body = std::move(v);
      break;
    }
    case CheckpointKind::kPackedExtents: {
      // Bound the count by the payload before allocating: an entry takes 7 bytes at least.
      if (std::uint64_t{count} * 7 > payload)
        return bad(num(count) + " packed extents cannot fit in a payload of " + num(payload) + " bytes");
      PackedExtents v;
      v.extents.resize(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        Status s = read_packed_extent(r, end, i == 0 ? nullptr : &v.extents[i - 1], &v.extents[i]);
        if (s.ok()) s = validate_record(v.extents[i]);
        if (!s.ok()) return bad("packed extent " + num(i) + ": " + s.message());
      }
      if (r.pos() != end)
        return bad(num(count) + " packed extents take " + num(r.pos() - kCheckpointHeaderBytes) +
                   " bytes, the header says " + num(payload));
      b.body = std::move(v);
      break;
    }
    case CheckpointKind::kExtentIndex: {
      if (std::uint64_t{count} * kExtentIndexEntryBytes != payload)
        return bad(num(count) + " index entries need " + num(std::uint64_t{count} * kExtentIndexEntryBytes) +
                   " bytes, the payload is " + num(payload));
      ExtentIndex v;
      v.entries.resize(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        ExtentIndexEntry& e = v.entries[i];
        e.ns_id = r.u32();
        e.mapped_blocks = r.u32();
        e.first_vblock = r.u64();
        e.end_vblock = r.u64();
        e.checksum = r.u64();
        Status s = validate_index_entry(e);
        if (!s.ok()) return bad("index entry " + num(i) + ": " + s.message());
      }
      b.body = std::move(v);
      break;
    }
    case CheckpointKind::kZones: {
      if (std::uint64_t{count} * kZoneEntryBytes != payload)
        return bad(num(count) + " zone entries need " + num(std::uint64_t{count} * kZoneEntryBytes) +
                   " bytes, the payload is " + num(payload));
      std::vector<ZoneEntry> v(count);
      for (std::uint32_t i = 0; i < count; ++i) {
        v[i].zone = r.u32();
        v[i].flags = r.u32();
        v[i].valid_blocks = r.u32();
        if (r.u32() != 0) return bad("zone entry " + num(i) + ": reserved field is not zero");
        v[i].last_write_seq = r.u64();
        Status s = validate_zone_entry(v[i]);
        if (!s.ok()) return bad("zone entry " + num(i) + ": " + s.message());
      }
      b.body = std::move(v);
      break;
    }
    case CheckpointKind::kCommit: {
      if (count == 0) return bad("the commit names no zones");
      if (kCommitFixedBytes + std::uint64_t{count} * 4 != payload)
        return bad("a commit naming " + num(count) + " zones needs " +
                   num(kCommitFixedBytes + std::uint64_t{count} * 4) + " bytes, the payload is " + num(payload));
      CheckpointCommit c;
      c.block_count = r.u32();
      c.next_ns_id = r.u32();
      c.journal_seq = r.u64();
      c.journal_zone = r.u32();
      c.journal_block = r.u32();
      c.chain = r.u64();
      c.created = r.u64();
      c.zones.resize(count);
      for (auto& z : c.zones) z = r.u32();
      if (c.block_count != b.index)
        return bad("the commit at index " + num(b.index) + " counts " + num(c.block_count) + " blocks before it");
      if (c.journal_seq == 0) return bad("journal sequence 0");
      if (c.next_ns_id == 0) return bad("next namespace id 0");
      b.body = std::move(c);
      break;
    }
    default: return bad("unknown checkpoint block kind " + num(kind));
  }
  if (r.overrun()) return bad("cut short");
  return b;
}

}  // namespace nyads::format
