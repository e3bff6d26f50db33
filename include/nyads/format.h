// The nyads volume format: encode and decode of every on-disk structure, and their checksums.
// Pure functions (bytes in, struct or a precise error out; no I/O), shared by mkfs.nyads,
// fsck.nyads, the daemon and the fuzzers. doc/format.md specifies every byte.
//
// Every metadata structure is one 4096-byte metadata block that starts with an 8-byte magic,
// carries a version and a sequence number, and holds at bytes 24..31 an XXH3-64 checksum of
// the whole block (that field read as zero) seeded with the volume's UUID, so a block left by
// an earlier mkfs never validates.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "nyads/status.h"

namespace nyads::format {

inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kMetaBlockSize = 4096;   // every metadata block, whatever the device block size
inline constexpr std::uint32_t kStoreBlockSize = 4096;  // the unit of namespace maps (virtual blocks)
inline constexpr std::uint32_t kMaxNameLength = 64;

// Feature flags, as ext4 splits them. A reader refuses a volume with an incompatible feature
// it does not know, opens one with an unknown read-only-compatible feature only read-only,
// and ignores unknown compatible features.
namespace feature {
inline constexpr std::uint64_t kKnownCompat = 0;
inline constexpr std::uint64_t kKnownRoCompat = 0;
// Data block checksums are the low 32 bits of XXH3-64 (see data_checksum). Always set in v1.
inline constexpr std::uint64_t kIncompatDataChecksum32 = 1ull << 0;
// Checkpoints may hold packed extents (kind 5, version 2). Set by mkfs from the build that
// added them; on a volume without it, checkpoints are written with kind-2 extents only, so a
// build that predates packed extents refuses a volume that may hold them by this bit, before
// it reads any checkpoint (it would otherwise skip the newest checkpoint as damaged and
// silently load an older one).
inline constexpr std::uint64_t kIncompatPackedExtents = 1ull << 1;
// Checkpoints index their extent blocks (kind 6, version 3), so a volume opens without
// reading its maps: each namespace's part of a checkpoint is read when first needed. Set by
// mkfs from the build that added it; a volume without it keeps unindexed checkpoints, read
// whole at open, and a build that predates the index refuses the volume by this bit.
inline constexpr std::uint64_t kIncompatExtentIndex = 1ull << 2;
inline constexpr std::uint64_t kKnownIncompat = kIncompatDataChecksum32 | kIncompatPackedExtents | kIncompatExtentIndex;
}  // namespace feature

using Uuid = std::array<std::uint8_t, 16>;
std::string uuid_to_string(const Uuid& uuid);
Result<Uuid> parse_uuid(std::string_view text);

// The checksum seed of a volume: XXH3-64 of its UUID.
std::uint64_t volume_seed(const Uuid& uuid);
// A data block's checksum: low 32 bits of XXH3-64 of the block, seeded with the volume seed
// mixed with the namespace and virtual block, so a misplaced block fails too.
std::uint32_t data_checksum(std::uint64_t seed, std::uint32_t ns_id, std::uint64_t vblock,
                            std::span<const std::uint8_t> block);

// Namespace names: 1..64 bytes of [A-Za-z0-9._-], starting with a letter or digit.
Status validate_namespace_name(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Superblock: zones 0 (primary) and 1 (backup) each hold a log of superblock versions; the
// valid one with the highest generation in a zone is that zone's copy.

struct ZoneRange {
  std::uint32_t first = 0;
  std::uint32_t count = 0;
  std::uint32_t end() const { return first + count; }
  bool contains(std::uint32_t zone) const { return zone >= first && zone < end(); }
  bool operator==(const ZoneRange&) const = default;
};

struct Superblock {
  std::uint64_t compat = 0;
  std::uint64_t ro_compat = 0;
  std::uint64_t incompat =
      feature::kIncompatDataChecksum32 | feature::kIncompatPackedExtents | feature::kIncompatExtentIndex;
  Uuid uuid{};
  std::uint64_t generation = 1;  // superblock version; 1 at mkfs
  std::uint64_t created = 0;     // Unix seconds
  std::string label;             // up to 63 bytes of UTF-8 without control characters
  // The device as mkfs saw it.
  std::uint32_t block_size = 0;  // bytes per device block: 512..4096, a power of two
  std::uint32_t zone_count = 0;
  std::uint64_t zone_size = 0;  // device blocks
  std::uint64_t zone_capacity = 0;
  std::uint32_t max_open_zones = 0;
  std::uint32_t max_active_zones = 0;
  std::uint32_t max_append_blocks = 0;
  // Zone roles: contiguous ranges in this order, covering every zone.
  ZoneRange superblock_zones{0, 2};
  ZoneRange journal_zones;
  ZoneRange checkpoint_zones;
  ZoneRange data_zones;
  std::uint32_t reserved_data_zones = 0;  // kept free so cleaning never deadlocks

  std::uint64_t seed() const { return volume_seed(uuid); }
  std::uint32_t blocks_per_meta_block() const { return kMetaBlockSize / block_size; }
  // Metadata blocks that fit in a zone's capacity.
  std::uint64_t meta_blocks_per_zone() const { return zone_capacity / blocks_per_meta_block(); }
  // Writable only if every read-only-compatible feature is known.
  Status check_writable() const;
  // Whether checkpoints are written with packed extents (feature::kIncompatPackedExtents).
  bool packs_extents() const { return (incompat & feature::kIncompatPackedExtents) != 0; }
  // Whether checkpoints index their extent blocks (feature::kIncompatExtentIndex).
  bool indexes_extents() const { return (incompat & feature::kIncompatExtentIndex) != 0; }
  bool operator==(const Superblock&) const = default;
};

// Checks every field and cross-field rule; `where` prefixes messages ("superblock at zone 0").
Status validate_superblock(const Superblock& sb, std::string_view where);
void encode_superblock(const Superblock& sb, std::span<std::uint8_t> out);  // kMetaBlockSize bytes
Result<Superblock> decode_superblock(std::span<const std::uint8_t> in, std::string_view where);

// ---------------------------------------------------------------------------------------------
// Journal (metadata log): a ring of journal zones holding journal blocks with consecutive
// sequence numbers; each block packs whole records. Group commit writes several at once.

namespace record {
struct NamespaceCreate {
  std::uint32_t ns_id = 0;
  std::uint32_t block_size = 4096;  // 512 or 4096: the block size the namespace exports
  std::uint64_t size_bytes = 0;
  std::string name;
  // Thin: promised no space, it may grow only into space promised to no one (record flag bit 0).
  bool thin = false;
  bool operator==(const NamespaceCreate&) const = default;
};
struct NamespaceDelete {
  std::uint32_t ns_id = 0;
  bool operator==(const NamespaceDelete&) const = default;
};
struct NamespaceResize {
  std::uint32_t ns_id = 0;
  std::uint64_t size_bytes = 0;
  bool operator==(const NamespaceResize&) const = default;
};
// Virtual blocks vblock..vblock+n-1 of a namespace now live at device blocks lba.. (in
// kStoreBlockSize units of the namespace, device blocks of the volume), with these checksums.
struct Extent {
  std::uint32_t ns_id = 0;
  std::uint64_t vblock = 0;
  std::uint64_t lba = 0;
  std::vector<std::uint32_t> checksums;  // one per virtual block; its size is the extent length
  bool operator==(const Extent&) const = default;
};
struct Trim {
  std::uint32_t ns_id = 0;
  std::uint64_t vblock = 0;
  std::uint64_t blocks = 0;
  bool operator==(const Trim&) const = default;
};
struct ZoneReset {
  std::uint32_t zone = 0;
  bool operator==(const ZoneReset&) const = default;
};
struct CheckpointDone {
  std::uint64_t checkpoint_seq = 0;
  std::uint32_t first_zone = 0;
  std::uint32_t blocks = 0;
  bool operator==(const CheckpointDone&) const = default;
};
// The cleaner moved runs of a namespace's blocks, unchanged, to consecutive device blocks from
// lba: run j's blocks follow run j-1's. Each keeps the checksum it had (no checksums here:
// that is what makes a move cost 8 bytes per run instead of 4 per block plus 28 per run).
struct Moved {
  struct Run {
    std::uint64_t vblock = 0;
    std::uint32_t blocks = 0;  // 1..4096
    bool operator==(const Run&) const = default;
  };
  std::uint32_t ns_id = 0;
  std::uint64_t lba = 0;
  std::vector<Run> runs;
  std::uint64_t total_blocks() const {
    std::uint64_t t = 0;
    for (const auto& r : runs) t += r.blocks;
    return t;
  }
  bool operator==(const Moved&) const = default;
};
// In every block of a commit that one device flush made durable together with the data its
// records name (the data was not flushed before the blocks were written). Replay trusts the
// journal's last such commit only after reading that data back (format.md §2.4). first_seq is
// the sequence number of the commit's first block.
struct UnflushedCommit {
  std::uint64_t first_seq = 0;
  bool operator==(const UnflushedCommit&) const = default;
};
}  // namespace record

using JournalRecord =
    std::variant<record::NamespaceCreate, record::NamespaceDelete, record::NamespaceResize, record::Extent,
                 record::Trim, record::ZoneReset, record::CheckpointDone, record::Moved, record::UnflushedCommit>;

struct JournalBlock {
  std::uint64_t seq = 0;  // journal sequence number: consecutive across blocks and zones
  std::vector<JournalRecord> records;
  bool operator==(const JournalBlock&) const = default;
  // The first block's sequence number of the unflushed commit this block belongs to, if any.
  std::optional<std::uint64_t> unflushed_commit() const;
};

inline constexpr std::size_t kJournalHeaderBytes = 32;
// Journal blocks are written as version 3 (unflushed-commit records); versions 1 and 2, which
// have none (and version 1 no moved records nor the create record's thin flag), are read too.
inline constexpr std::uint16_t kJournalVersion = 3;
inline constexpr std::size_t kJournalPayloadBytes = kMetaBlockSize - kJournalHeaderBytes;
// Encoded size of a record (its 4-byte header included).
std::size_t encoded_size(const JournalRecord& r);
// The longest extent one record can carry.
inline constexpr std::size_t kMaxExtentBlocksPerRecord = (kJournalPayloadBytes - 4 - 24) / 4;
// The most runs one moved record can carry, and the longest run.
inline constexpr std::size_t kMaxMovedRunsPerRecord = (kJournalPayloadBytes - 4 - 16) / 8;
inline constexpr std::uint32_t kMaxMovedRunBlocks = 4096;
inline constexpr std::size_t kUnflushedCommitRecordBytes = 12;
// What one unflushed commit may hold at most (format.md §2.4): 4 MiB of data in its extent
// records, and journal blocks.
inline constexpr std::uint64_t kUnflushedCommitMaxDataBlocks = 1024;
inline constexpr std::uint64_t kUnflushedCommitMaxJournalBlocks = 1024;

// Fails with kInvalidArgument if the records do not fit or a record is invalid.
Status encode_journal_block(const JournalBlock& block, std::uint64_t seed, std::span<std::uint8_t> out);
Result<JournalBlock> decode_journal_block(std::span<const std::uint8_t> in, std::uint64_t seed, std::string_view where);
// Validates one record's fields (the rules decode applies).
Status validate_record(const JournalRecord& r);

// ---------------------------------------------------------------------------------------------
// Checkpoints: the whole metadata state (namespace table, extent maps, data-zone accounting)
// written as a sequence of blocks into freshly reset checkpoint zones, ending with a commit
// block. Recovery loads the newest committed checkpoint and replays the journal from the
// position its commit names.

struct NamespaceEntry {
  std::uint32_t ns_id = 0;
  std::uint32_t flags = 0;  // kNamespaceQuarantined, kNamespaceThin
  std::uint32_t block_size = 4096;
  std::uint64_t size_bytes = 0;
  std::uint64_t written_blocks = 0;  // virtual blocks mapped (kStoreBlockSize each)
  std::string name;
  bool operator==(const NamespaceEntry&) const = default;
};
inline constexpr std::uint32_t kNamespaceQuarantined = 1u << 0;
inline constexpr std::uint32_t kNamespaceThin = 1u << 1;  // as record::NamespaceCreate::thin

struct ZoneEntry {
  std::uint32_t zone = 0;
  std::uint32_t flags = 0;           // stream in bits 0-1 (0 none, 1 hot, 2 cold)
  std::uint32_t valid_blocks = 0;    // live device blocks in the zone
  std::uint64_t last_write_seq = 0;  // journal seq of the newest data: the zone's age
  bool operator==(const ZoneEntry&) const = default;
};

struct CheckpointCommit {
  std::uint32_t block_count = 0;     // blocks before this one in the checkpoint
  std::uint32_t next_ns_id = 1;      // the next namespace id to hand out
  std::uint64_t journal_seq = 1;     // replay starts at the journal block with this seq
  std::uint32_t journal_zone = 0;    // ... found in this zone
  std::uint32_t journal_block = 0;   // ... at this metadata block of the zone
  std::uint64_t chain = 0;           // chain_checksums() of blocks 0..block_count-1
  std::uint64_t created = 0;         // Unix seconds
  std::vector<std::uint32_t> zones;  // checkpoint zones used, in order
  bool operator==(const CheckpointCommit&) const = default;
};

// Extents in the packed layout (kind 5): the same extents as kind 2, with the namespace
// stated once per run of entries and positions as varint differences, so a one-block
// extent takes about 10 bytes instead of 28 (format.md §2.5).
struct PackedExtents {
  std::vector<record::Extent> extents;
  bool operator==(const PackedExtents&) const = default;
};

// The extent index (kind 6): one entry per extent block of the checkpoint, in their order,
// so a reader can leave extent blocks unread until a namespace's range is needed, and still
// check each one when it reads it (format.md §2.5). Every extent block of an indexed
// checkpoint holds extents of one namespace.
struct ExtentIndexEntry {
  std::uint32_t ns_id = 0;
  std::uint32_t mapped_blocks = 0;  // blocks of the block's extents, together
  std::uint64_t first_vblock = 0;   // where its first extent starts
  std::uint64_t end_vblock = 0;     // where its last extent ends (vblock + blocks)
  std::uint64_t checksum = 0;       // the extent block's stored checksum (bytes 24..31)
  bool operator==(const ExtentIndexEntry&) const = default;
};
struct ExtentIndex {
  std::vector<ExtentIndexEntry> entries;
  bool operator==(const ExtentIndex&) const = default;
};

enum class CheckpointKind : std::uint16_t {
  kNamespaces = 1,
  kExtents = 2,
  kZones = 3,
  kCommit = 4,
  kPackedExtents = 5,
  kExtentIndex = 6
};

struct CheckpointBlock {
  std::uint64_t checkpoint_seq = 0;
  std::uint32_t index = 0;  // position in the checkpoint, from 0
  std::variant<std::vector<NamespaceEntry>, std::vector<record::Extent>, std::vector<ZoneEntry>, CheckpointCommit,
               PackedExtents, ExtentIndex>
      body;
  CheckpointKind kind() const { return static_cast<CheckpointKind>(body.index() + 1); }
  bool operator==(const CheckpointBlock&) const = default;
};
// A checkpoint block carries the version of the format revision that defined its kind:
// 1 for kinds 1-4, 2 for packed extents, 3 for the extent index (so a build that knows only
// an earlier version refuses a newer kind by its version, with a clear message).
inline constexpr std::uint16_t kPackedExtentsVersion = 2;
inline constexpr std::uint16_t kExtentIndexVersion = 3;

inline constexpr std::size_t kCheckpointHeaderBytes = 40;
inline constexpr std::size_t kCheckpointPayloadBytes = kMetaBlockSize - kCheckpointHeaderBytes;
inline constexpr std::size_t kNamespaceEntryBytes = 96;
inline constexpr std::size_t kZoneEntryBytes = 24;
inline constexpr std::size_t kNamespacesPerBlock = kCheckpointPayloadBytes / kNamespaceEntryBytes;
inline constexpr std::size_t kZonesPerBlock = kCheckpointPayloadBytes / kZoneEntryBytes;
inline constexpr std::size_t kExtentIndexEntryBytes = 32;
inline constexpr std::size_t kExtentIndexEntriesPerBlock = kCheckpointPayloadBytes / kExtentIndexEntryBytes;
// Bytes a packed extent takes after `previous` (the entry before it in the same block, or
// null for a block's first entry); a block holds entries while their sum fits the payload.
std::size_t packed_extent_bytes(const record::Extent& e, const record::Extent* previous);
// A fixed-width extent (journal record body, kind-2 entry) is this much plus 4 per block.
inline constexpr std::size_t kExtentHeaderBytes = 24;

// Whether an extent block's extents are those its index entry describes: one namespace, in
// order without overlap, from first_vblock to end_vblock, mapped_blocks in all. (The checksum
// is the caller's to compare: the entry names the encoded block's.)
Status check_indexed_extents(std::span<const record::Extent> extents, const ExtentIndexEntry& entry);
Status encode_checkpoint_block(const CheckpointBlock& block, std::uint64_t seed, std::span<std::uint8_t> out);
Result<CheckpointBlock> decode_checkpoint_block(std::span<const std::uint8_t> in, std::uint64_t seed,
                                                std::string_view where);
// The stored checksum of an encoded metadata block: bytes 24..31 of every kind of block.
std::uint64_t stored_checksum(std::span<const std::uint8_t> encoded_block);
// Chains the checksums of a checkpoint's blocks, in order: XXH3-64 of their concatenation.
std::uint64_t chain_checksums(std::span<const std::uint64_t> checksums, std::uint64_t seed);

}  // namespace nyads::format
