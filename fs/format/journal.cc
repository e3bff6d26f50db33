#include <cstring>

#include "fs/format/codec.h"
#include "nyads/format.h"

namespace nyads::format {

namespace {

constexpr char kMagic[8] = {'N', 'Y', 'A', 'D', 'S', 'J', 'N', 'L'};

enum RecordType : std::uint8_t {
  kNamespaceCreate = 1,
  kNamespaceDelete = 2,
  kNamespaceResize = 3,
  kExtent = 4,
  kTrim = 5,
  kZoneReset = 6,
  kCheckpointDone = 7,
  kMoved = 8,
  kUnflushedCommit = 9,
};
// A moved run is one u64: the virtual block in the low 52 bits, blocks - 1 in the high 12.
constexpr int kRunBlocksShift = 52;

Status check_size(std::uint64_t size, const char* what) {
  if (size == 0 || size % kStoreBlockSize != 0)
    return InvalidArgument(std::string(what) + " " + num(size) + " bytes is not a positive multiple of 4096");
  if (size / kStoreBlockSize > kMaxVblock)
    return InvalidArgument(std::string(what) + " " + num(size) + " bytes is beyond 2^64");
  return Status::Ok();
}

std::size_t body_size(const JournalRecord& r) {
  return std::visit(
      [](const auto& v) -> std::size_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, record::NamespaceCreate>) return 17 + v.name.size();
        if constexpr (std::is_same_v<T, record::NamespaceDelete>) return 4;
        if constexpr (std::is_same_v<T, record::NamespaceResize>) return 16;
        if constexpr (std::is_same_v<T, record::Extent>) return kExtentHeaderBytes + 4 * v.checksums.size();
        if constexpr (std::is_same_v<T, record::Trim>) return 24;
        if constexpr (std::is_same_v<T, record::ZoneReset>) return 4;
        if constexpr (std::is_same_v<T, record::CheckpointDone>) return 16;
        if constexpr (std::is_same_v<T, record::Moved>) return 16 + 8 * v.runs.size();
        if constexpr (std::is_same_v<T, record::UnflushedCommit>) return 8;
      },
      r);
}

// A record's flags byte: only namespace create has one (bit 0: thin).
constexpr std::uint8_t kThinFlag = 1;
std::uint8_t record_flags(const JournalRecord& r) {
  const auto* create = std::get_if<record::NamespaceCreate>(&r);
  return create && create->thin ? kThinFlag : 0;
}

}  // namespace

void write_extent(Writer& w, const record::Extent& e) {
  w.u32(e.ns_id);
  w.u32(static_cast<std::uint32_t>(e.checksums.size()));
  w.u64(e.vblock);
  w.u64(e.lba);
  w.u32s(e.checksums);
}

Status read_extent(Reader& r, std::size_t limit, record::Extent* e) {
  if (!r.has(kExtentHeaderBytes) || limit < kExtentHeaderBytes) return Corruption("extent header is cut short");
  e->ns_id = r.u32();
  const std::uint32_t count = r.u32();
  e->vblock = r.u64();
  e->lba = r.u64();
  if (count == 0) return Corruption("extent of 0 blocks");
  if (std::uint64_t{count} * 4 > limit - kExtentHeaderBytes || !r.has(std::size_t{count} * 4))
    return Corruption("extent of " + num(count) + " blocks runs past its record");
  e->checksums.resize(count);
  r.u32s(e->checksums);
  return Status::Ok();
}

std::size_t encoded_size(const JournalRecord& r) { return 4 + body_size(r); }

Status validate_record(const JournalRecord& r) {
  auto ns = [](std::uint32_t id) -> Status {
    return id == 0 ? InvalidArgument("namespace id 0 is reserved") : Status::Ok();
  };
  return std::visit(
      [&](const auto& v) -> Status {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, record::NamespaceCreate>) {
          NYADS_RETURN_IF_ERROR(ns(v.ns_id));
          if (v.block_size != 512 && v.block_size != 4096)
            return InvalidArgument("namespace " + num(v.ns_id) + ": block size " + num(v.block_size) +
                                   " is not 512 or 4096");
          NYADS_RETURN_IF_ERROR(check_size(v.size_bytes, "namespace size"));
          return validate_namespace_name(v.name);
        } else if constexpr (std::is_same_v<T, record::NamespaceDelete>) {
          return ns(v.ns_id);
        } else if constexpr (std::is_same_v<T, record::NamespaceResize>) {
          NYADS_RETURN_IF_ERROR(ns(v.ns_id));
          return check_size(v.size_bytes, "namespace size");
        } else if constexpr (std::is_same_v<T, record::Extent>) {
          NYADS_RETURN_IF_ERROR(ns(v.ns_id));
          if (v.checksums.empty()) return InvalidArgument("extent of 0 blocks");
          if (v.checksums.size() > kMaxExtentBlocksPerRecord)
            return InvalidArgument("extent of " + num(v.checksums.size()) + " blocks exceeds " +
                                   num(kMaxExtentBlocksPerRecord) + " per record");
          if (v.vblock >= kMaxVblock || v.checksums.size() > kMaxVblock - v.vblock)
            return InvalidArgument("extent at virtual block " + num(v.vblock) + " runs past 2^52 blocks");
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, record::Trim>) {
          NYADS_RETURN_IF_ERROR(ns(v.ns_id));
          if (v.blocks == 0) return InvalidArgument("trim of 0 blocks");
          if (v.vblock >= kMaxVblock || v.blocks > kMaxVblock - v.vblock)
            return InvalidArgument("trim at virtual block " + num(v.vblock) + " of " + num(v.blocks) +
                                   " blocks runs past 2^52 blocks");
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, record::ZoneReset>) {
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, record::CheckpointDone>) {
          if (v.checkpoint_seq == 0) return InvalidArgument("checkpoint sequence 0");
          if (v.blocks == 0) return InvalidArgument("checkpoint of 0 blocks");
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, record::Moved>) {
          NYADS_RETURN_IF_ERROR(ns(v.ns_id));
          if (v.runs.empty()) return InvalidArgument("move of 0 runs");
          if (v.runs.size() > kMaxMovedRunsPerRecord)
            return InvalidArgument("move of " + num(v.runs.size()) + " runs exceeds " + num(kMaxMovedRunsPerRecord) +
                                   " per record");
          for (const auto& run : v.runs) {
            if (run.blocks == 0 || run.blocks > kMaxMovedRunBlocks)
              return InvalidArgument("moved run of " + num(run.blocks) + " blocks (1.." + num(kMaxMovedRunBlocks) +
                                     ")");
            if (run.vblock >= kMaxVblock || run.blocks > kMaxVblock - run.vblock)
              return InvalidArgument("moved run at virtual block " + num(run.vblock) + " runs past 2^52 blocks");
          }
          return Status::Ok();
        } else if constexpr (std::is_same_v<T, record::UnflushedCommit>) {
          if (v.first_seq == 0) return InvalidArgument("unflushed commit starting at sequence 0");
          return Status::Ok();
        }
      },
      r);
}

std::optional<std::uint64_t> JournalBlock::unflushed_commit() const {
  for (const auto& r : records)
    if (const auto* u = std::get_if<record::UnflushedCommit>(&r)) return u->first_seq;
  return std::nullopt;
}

namespace {
// The rules between a block's records and its header.
Status check_block(const JournalBlock& b) {
  std::size_t marks = 0;
  for (const auto& r : b.records)
    if (const auto* u = std::get_if<record::UnflushedCommit>(&r)) {
      if (++marks > 1) return InvalidArgument("a second unflushed-commit record");
      if (u->first_seq > b.seq)
        return InvalidArgument("unflushed commit starting at sequence " + num(u->first_seq) +
                               ", after its own block's " + num(b.seq));
    }
  return Status::Ok();
}
}  // namespace

Status encode_journal_block(const JournalBlock& b, std::uint64_t seed, std::span<std::uint8_t> out) {
  if (out.size() < kMetaBlockSize) return InvalidArgument("journal block buffer of " + num(out.size()) + " bytes");
  if (b.seq == 0) return InvalidArgument("journal sequence 0");
  if (b.records.size() > 0xffff) return InvalidArgument("too many records");
  std::size_t total = 0;
  for (const auto& r : b.records) {
    NYADS_RETURN_IF_ERROR(validate_record(r));
    total += encoded_size(r);
  }
  if (total > kJournalPayloadBytes)
    return InvalidArgument("records take " + num(total) + " bytes, a journal block holds " + num(kJournalPayloadBytes));
  NYADS_RETURN_IF_ERROR(check_block(b));
  out = out.first(kMetaBlockSize);
  std::fill(out.begin(), out.end(), 0);
  Writer w(out);
  w.bytes(kMagic, 8);
  w.u16(static_cast<std::uint16_t>(kJournalVersion));
  w.u16(static_cast<std::uint16_t>(b.records.size()));
  w.u32(static_cast<std::uint32_t>(total));
  w.u64(b.seq);
  w.u64(0);
  for (const auto& r : b.records) {
    w.u8(static_cast<std::uint8_t>(r.index() + 1));
    w.u8(record_flags(r));
    w.u16(static_cast<std::uint16_t>(body_size(r)));
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, record::NamespaceCreate>) {
            w.u32(v.ns_id);
            w.u32(v.block_size);
            w.u64(v.size_bytes);
            w.u8(static_cast<std::uint8_t>(v.name.size()));
            w.bytes(v.name.data(), v.name.size());
          } else if constexpr (std::is_same_v<T, record::NamespaceDelete>) {
            w.u32(v.ns_id);
          } else if constexpr (std::is_same_v<T, record::NamespaceResize>) {
            w.u32(v.ns_id);
            w.u32(0);
            w.u64(v.size_bytes);
          } else if constexpr (std::is_same_v<T, record::Extent>) {
            write_extent(w, v);
          } else if constexpr (std::is_same_v<T, record::Trim>) {
            w.u32(v.ns_id);
            w.u32(0);
            w.u64(v.vblock);
            w.u64(v.blocks);
          } else if constexpr (std::is_same_v<T, record::ZoneReset>) {
            w.u32(v.zone);
          } else if constexpr (std::is_same_v<T, record::CheckpointDone>) {
            w.u32(v.first_zone);
            w.u32(v.blocks);
            w.u64(v.checkpoint_seq);
          } else if constexpr (std::is_same_v<T, record::Moved>) {
            w.u32(v.ns_id);
            w.u16(static_cast<std::uint16_t>(v.runs.size()));
            w.u16(0);
            w.u64(v.lba);
            for (const auto& run : v.runs) w.u64(run.vblock | (std::uint64_t{run.blocks - 1} << kRunBlocksShift));
          } else if constexpr (std::is_same_v<T, record::UnflushedCommit>) {
            w.u64(v.first_seq);
          }
        },
        r);
  }
  seal_block(out, seed);
  return Status::Ok();
}

Result<JournalBlock> decode_journal_block(std::span<const std::uint8_t> in, std::uint64_t seed,
                                          std::string_view where) {
  const std::string w(where);
  auto bad = [&](const std::string& what) { return Corruption(w + ": " + what); };
  if (in.size() < kMetaBlockSize) return bad(num(in.size()) + " bytes, a journal block is 4096");
  in = in.first(kMetaBlockSize);
  if (std::memcmp(in.data(), kMagic, 8) != 0) return bad("not a journal block (bad magic)");
  const std::uint64_t stored = stored_checksum(in), actual = block_checksum(in, seed);
  if (stored != actual) return bad("checksum mismatch (stored " + hex(stored) + ", computed " + hex(actual) + ")");
  Reader r(in);
  r.skip(8);
  const std::uint16_t version = r.u16();
  if (version < 1 || version > kJournalVersion)
    return NotSupported(w + ": journal version " + num(version) + ", this build reads versions 1 to " +
                        num(kJournalVersion) + " (written by a newer nyads?)");
  const std::uint16_t count = r.u16();
  const std::uint32_t payload = r.u32();
  JournalBlock b;
  b.seq = r.u64();
  r.skip(8);
  if (b.seq == 0) return bad("sequence 0");
  if (payload > kJournalPayloadBytes)
    return bad("payload of " + num(payload) + " bytes exceeds " + num(kJournalPayloadBytes));
  const std::size_t end = kJournalHeaderBytes + payload;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string rec = "record " + num(i) + " at byte " + num(r.pos());
    if (r.pos() + 4 > end) return bad(rec + ": runs past the payload (" + num(payload) + " bytes)");
    const std::uint8_t type = r.u8();
    const std::uint8_t flags = r.u8();
    const std::uint16_t len = r.u16();
    if (version < 2 && (type == kMoved || flags != 0))
      return bad(rec + ": " + (type == kMoved ? std::string("a moved record") : "record flags " + hex(flags)) +
                 " in a version 1 block");
    if (version < 3 && type == kUnflushedCommit)
      return bad(rec + ": an unflushed-commit record in a version " + num(version) + " block");
    const std::uint8_t known_flags = type == kNamespaceCreate ? kThinFlag : 0;
    if (flags & ~known_flags)
      return bad(rec + ": flags " + hex(flags) + ", expected " + (known_flags ? "only bit 0" : "0"));
    if (r.pos() + len > end) return bad(rec + ": body of " + num(len) + " bytes runs past the payload");
    const std::size_t body_start = r.pos();
    JournalRecord out;
    switch (type) {
      case kNamespaceCreate: {
        record::NamespaceCreate v;
        if (len < 17) return bad(rec + ": namespace-create body of " + num(len) + " bytes, expected at least 17");
        v.ns_id = r.u32();
        v.block_size = r.u32();
        v.size_bytes = r.u64();
        const std::uint8_t name_len = r.u8();
        if (len != 17u + name_len)
          return bad(rec + ": namespace-create body of " + num(len) + " bytes, its name needs " + num(17u + name_len));
        v.name = r.str(name_len);
        v.thin = (flags & kThinFlag) != 0;
        out = std::move(v);
        break;
      }
      case kNamespaceDelete:
        if (len != 4) return bad(rec + ": namespace-delete body of " + num(len) + " bytes, expected 4");
        out = record::NamespaceDelete{r.u32()};
        break;
      case kNamespaceResize: {
        if (len != 16) return bad(rec + ": namespace-resize body of " + num(len) + " bytes, expected 16");
        record::NamespaceResize v;
        v.ns_id = r.u32();
        if (r.u32() != 0) return bad(rec + ": reserved field is not zero");
        v.size_bytes = r.u64();
        out = v;
        break;
      }
      case kExtent: {
        record::Extent v;
        Status s = read_extent(r, len, &v);
        if (!s.ok()) return bad(rec + ": " + s.message());
        if (r.pos() - body_start != len)
          return bad(rec + ": extent of " + num(v.checksums.size()) + " blocks takes " + num(r.pos() - body_start) +
                     " bytes, the record says " + num(len));
        out = std::move(v);
        break;
      }
      case kTrim: {
        if (len != 24) return bad(rec + ": trim body of " + num(len) + " bytes, expected 24");
        record::Trim v;
        v.ns_id = r.u32();
        if (r.u32() != 0) return bad(rec + ": reserved field is not zero");
        v.vblock = r.u64();
        v.blocks = r.u64();
        out = v;
        break;
      }
      case kZoneReset:
        if (len != 4) return bad(rec + ": zone-reset body of " + num(len) + " bytes, expected 4");
        out = record::ZoneReset{r.u32()};
        break;
      case kCheckpointDone: {
        if (len != 16) return bad(rec + ": checkpoint-done body of " + num(len) + " bytes, expected 16");
        record::CheckpointDone v;
        v.first_zone = r.u32();
        v.blocks = r.u32();
        v.checkpoint_seq = r.u64();
        out = v;
        break;
      }
      case kMoved: {
        if (len < 16 || (len - 16) % 8 != 0)
          return bad(rec + ": moved body of " + num(len) + " bytes, expected 16 + 8 per run");
        record::Moved v;
        v.ns_id = r.u32();
        const std::uint16_t runs = r.u16();
        if (r.u16() != 0) return bad(rec + ": reserved field is not zero");
        v.lba = r.u64();
        if (len != 16u + 8u * runs)
          return bad(rec + ": moved body of " + num(len) + " bytes, its " + num(runs) + " runs need " +
                     num(16u + 8u * runs));
        v.runs.resize(runs);
        for (auto& run : v.runs) {
          const std::uint64_t x = r.u64();
          run.vblock = x & ((1ull << kRunBlocksShift) - 1);
          run.blocks = static_cast<std::uint32_t>(x >> kRunBlocksShift) + 1;
        }
        out = std::move(v);
        break;
      }
      case kUnflushedCommit:
        if (len != 8) return bad(rec + ": unflushed-commit body of " + num(len) + " bytes, expected 8");
        out = record::UnflushedCommit{r.u64()};
        break;
      default: return bad(rec + ": unknown record type " + num(type));
    }
    if (r.overrun()) return bad(rec + ": cut short");
    Status valid = validate_record(out);
    if (!valid.ok()) return bad(rec + ": " + valid.message());
    b.records.push_back(std::move(out));
  }
  if (r.pos() != end)
    return bad(num(count) + " records take " + num(r.pos() - kJournalHeaderBytes) + " bytes, the header says " +
               num(payload));
  if (Status s = check_block(b); !s.ok()) return bad(s.message());
  return b;
}

}  // namespace nyads::format
