// The volume on a zoned device: how a new one is laid out, and how its metadata blocks are
// read and written. The I/O side of fs/format, shared by mkfs, fsck and (later) the store.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nyads/aligned_buffer.h"
#include "nyads/format.h"
#include "nyads/zoned_device.h"

namespace nyads {

struct LayoutOptions {
  std::uint32_t journal_zones = 0;     // 0: automatic
  std::uint32_t checkpoint_zones = 0;  // 0: automatic
  std::uint32_t reserved_zones = 0;    // 0: automatic
};

// The zone roles of a new volume on this geometry: zones 0-1 superblock, then journal,
// checkpoint and data zones. Automatic sizes: journal zone_count/64 (2..16); checkpoint room
// for two worst-case checkpoints (every 4 KiB block its own extent: 28 bytes per block);
// reserve 1% of data zones, at least 2, for the cleaner.
Result<format::Superblock> plan_volume(const Geometry& geometry, const LayoutOptions& options);

// Write streams and the headroom they take (the store's rules, here so that mkfs reports what
// the store will do). `zone_limit`: the device's open/active zone limit, the lower of the two
// (0: none); `shared_cap`: 4, or 2 for volumes that promised before the user-cold and frozen
// streams existed.

// The lower of a device's open and active zone limits, each 0 for none (0: no limit).
std::uint32_t zone_limit_of(std::uint32_t max_open_zones, std::uint32_t max_active_zones);
// How many streams besides the users' own the limit allows: the cleaner's young stream
// always; its cold one when a user stream is left beside it and the metadata's three zones;
// the user-cold and frozen streams only with room for five user streams more (each measured:
// see doc/design.md).
std::uint32_t shared_stream_count(std::uint32_t zone_limit, std::uint32_t shared_cap);
// How many user streams may be open at once: the limit less what the metadata holds (the
// journal head, the last zone of each of the two newest checkpoints) and the shared streams.
std::uint32_t user_stream_budget(std::uint32_t zone_limit, std::uint32_t shared_cap);
// Bytes a volume with `namespace_count` namespaces can promise to them: its data zones less
// the cleaner's reserve, one more, and one per stream that may be open at once (a zone each,
// the most a partly written zone can leave unusable).
std::uint64_t promise_limit_bytes(const format::Superblock& sb, std::uint32_t zone_limit, std::size_t namespace_count,
                                  std::uint32_t shared_cap);

// Metadata blocks (4096 bytes) on a zoned device, addressed by zone and index in the zone.
class MetaIo {
 public:
  explicit MetaIo(ZonedDevice& device);

  std::uint32_t blocks_per_meta() const { return bpm_; }
  std::uint64_t lba(std::uint32_t zone, std::uint64_t index) const;
  // Metadata blocks written in the zone: its write pointer, in metadata blocks.
  Result<std::uint64_t> written(std::uint32_t zone);
  Status read(std::uint32_t zone, std::uint64_t index, std::uint32_t count, AlignedBuffer* out);
  // Writes metadata blocks at the zone's write pointer; returns the index of the first.
  Result<std::uint64_t> write(std::uint32_t zone, const AlignedBuffer& blocks);
  Status flush();

 private:
  ZonedDevice& dev_;
  std::uint32_t bpm_;
};

// What a superblock zone holds: its newest valid superblock, and what was wrong on the way.
struct SuperblockZoneScan {
  std::uint32_t zone = 0;
  std::optional<format::Superblock> newest;
  std::uint64_t newest_index = 0;
  std::uint64_t blocks_written = 0;
  std::vector<std::string> problems;  // each names the zone and block
  bool unreadable = false;            // the zone could not be read (an I/O error, not its content)
};
SuperblockZoneScan scan_superblock_zone(ZonedDevice& device, std::uint32_t zone);

// Writes one checkpoint (seq) into empty checkpoint zones, in the order given: the body blocks,
// then the commit block (block_count, chain and zones filled in here); each zone but the last
// is filled to its capacity. Index blocks (kind 6) get the checksums of the extent blocks
// they describe, the k-th entry the k-th extent block's. Fails with kNoSpace if the zones
// cannot hold it. Flushes before returning.
using CheckpointBody = decltype(format::CheckpointBlock::body);
Status write_checkpoint(ZonedDevice& device, const format::Superblock& sb, std::uint64_t seq,
                        const std::vector<std::uint32_t>& zones, const std::vector<CheckpointBody>& bodies,
                        format::CheckpointCommit commit);
// A checkpoint's content, packed into body blocks by pack_checkpoint: namespace entries,
// then every extent (extents_of calls its visitor for each, in any order), then zone entries.
using ExtentVisitor = std::function<void(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba,
                                         std::span<const std::uint32_t> checksums)>;
struct CheckpointContent {
  std::vector<format::NamespaceEntry> namespaces;
  std::function<void(const ExtentVisitor&)> extents_of;
  std::vector<format::ZoneEntry> zones;
};
// How a volume's checkpoints are written, by its features: extents packed (kind 5, with
// feature::kIncompatPackedExtents) or fixed-width (kind 2); indexed (an extent index, kind 6,
// after the namespaces, and one namespace per extent block: feature::kIncompatExtentIndex)
// or not.
struct CheckpointLayout {
  bool packed = true;
  bool indexed = true;
  static CheckpointLayout of(const format::Superblock& sb) { return {sb.packs_extents(), sb.indexes_extents()}; }
};
// device_blocks_per_block: device blocks per 4 KiB block (an extent's blocks are consecutive).
// An indexed layout's index entries carry checksum 0 here: write_checkpoint fills them in.
std::vector<CheckpointBody> pack_checkpoint(const CheckpointContent& content, std::uint32_t device_blocks_per_block,
                                            CheckpointLayout layout);
// Writes checkpoint seq as the newest: into checkpoint zones other than `keep` (those of the
// newest checkpoint, which stays valid until this one is committed), resetting any with old
// data first. Returns the zones it used.
Result<std::vector<std::uint32_t>> write_checkpoint_beside(ZonedDevice& device, const format::Superblock& sb,
                                                           std::uint64_t seq, const std::vector<CheckpointBody>& bodies,
                                                           format::CheckpointCommit commit,
                                                           const std::vector<std::uint32_t>& keep);

// How many checkpoint zones a checkpoint of `body_blocks` blocks (and its commit) takes.
std::uint32_t checkpoint_zones_needed(const format::Superblock& sb, std::size_t body_blocks);

// The newest committed checkpoint: found by the commit block that ends the last written
// block of a checkpoint zone, then read whole and checked (sequence, order, chain).
// An extent block of an indexed checkpoint: its index entry and its position (block index).
struct IndexedExtentBlock {
  format::ExtentIndexEntry entry;
  std::uint32_t position = 0;
};
struct LoadedCheckpoint {
  std::uint64_t seq = 0;
  format::CheckpointCommit commit;
  std::vector<format::NamespaceEntry> namespaces;
  std::vector<format::record::Extent> extents;
  std::vector<format::ZoneEntry> zones;
  std::vector<IndexedExtentBlock> index;  // an indexed checkpoint's extent blocks, in order
  bool extents_deferred = false;          // they were left unread (ExtentLoading::kDeferIndexed)
};
struct CheckpointSearch {
  std::optional<LoadedCheckpoint> newest;
  std::vector<std::string> problems;  // damaged candidates, with zone and block
  std::vector<std::string> notes;     // zones whose last block is not a commit (torn or older)
};
// With an extent sink, each extent goes to it as its block is read and checked, and `extents`
// stays empty, so a caller building maps never holds the checkpoint's extents twice (at 4 KiB
// random writes, as much again as the maps). The sink sees the checkpoint read so far (its
// seq and namespaces, which precede every extent) and may take the extent's checksums. A
// checkpoint can still fail after some of its extents went out (a later block damaged, the
// chain wrong): the caller drops what it built when another checkpoint starts (another seq
// or commit zone: commit.zones.back()), or when `newest` (if any) is not the one it built.
using CheckpointExtentSink = std::function<void(const LoadedCheckpoint& so_far, format::record::Extent& extent)>;
// kRead reads every block (fsck). kDeferIndexed leaves the extent blocks of an indexed
// checkpoint unread: the chain is checked with the checksums its index holds, and `index`
// says where each block is, for read_indexed_extent_blocks (the store, which opens a volume
// in a time that does not grow with the data it holds). An unindexed checkpoint is read whole.
enum class ExtentLoading { kRead, kDeferIndexed };
CheckpointSearch load_newest_checkpoint(ZonedDevice& device, const format::Superblock& sb,
                                        const CheckpointExtentSink& sink = {},
                                        ExtentLoading loading = ExtentLoading::kRead);
// Reads extent blocks of checkpoint seq (in `zones`, as its commit names them), given by
// their index entries and positions in ascending order, in as few reads as their positions
// allow; checks each block (its own checksum, sequence and position, the checksum its index
// entry holds, and its extents against the entry) and hands its extents to `sink`. Stops at
// the first failure, naming the block; blocks before it were handed over.
using IndexedExtentSink =
    std::function<Status(const IndexedExtentBlock& block, std::vector<format::record::Extent>& extents)>;
Status read_indexed_extent_blocks(ZonedDevice& device, const format::Superblock& sb, std::uint64_t seq,
                                  const std::vector<std::uint32_t>& zones, std::span<const IndexedExtentBlock> blocks,
                                  const IndexedExtentSink& sink);

// Walks the journal from a position: the journal zones form a ring, a block continues the
// sequence, and a full zone continues in the next one. Calls `visit` for every valid block.
struct JournalPosition {
  std::uint32_t zone = 0;
  std::uint64_t index = 0;  // metadata block in the zone
  std::uint64_t seq = 1;    // the sequence number expected there
};
struct JournalScan {
  JournalPosition end;                    // where the next block goes
  std::uint64_t blocks = 0;               // valid blocks visited
  std::optional<std::string> torn_tail;   // the last written block is damaged: an interrupted commit
  bool stale_zone = false;                // the journal ends at a block of an older pass of the ring (a lost reset)
  std::optional<std::string> corruption;  // a damaged block with written blocks after it
  // The journal's last commit is an unflushed one whose data was read back and matched (maybe
  // from a device's volatile cache: flush before writing anything). Until a later commit or a
  // checkpoint is durable, replay will read it again: these data zones, where its records put
  // data, must keep that data (no reset) till then.
  bool checked_last_commit = false;
  std::vector<std::uint32_t> unproven_zones;
  // The last sequence number of an unflushed commit replay dropped (0: none): valid blocks up
  // to it lie past `end`.
  std::uint64_t dropped_through_seq = 0;
};
// Visits the journal's blocks from start, in order. The blocks of an unflushed commit (one
// device flush for its data and its blocks: format.md §2.4) are visited once a later block
// shows that flush completed, or, for the journal's last commit, once its data is read back
// and matches; if it does not, the journal ends where that commit began (torn_tail says why).
JournalScan scan_journal(
    ZonedDevice& device, const format::Superblock& sb, JournalPosition start,
    const std::function<void(const format::JournalBlock&, std::uint32_t zone, std::uint64_t index)>& visit);

// Reads back the data the extent records of an unflushed commit's blocks name. Not landed: a
// block lies past its zone's write pointer (the device kept a prefix of the zone's writes).
// kCorruption: a block below the write pointer does not match its checksum (damage), or the
// commit holds what no writer puts in one (a moved record, more than the limits); any other
// error is the device's.
struct UnflushedCheck {
  bool landed = true;
  std::string why;                        // when not landed
  std::vector<std::uint32_t> data_zones;  // when landed: where its data lies
};
Result<UnflushedCheck> check_unflushed_commit(ZonedDevice& device, const format::Superblock& sb,
                                              std::span<const format::JournalBlock> blocks);

}  // namespace nyads
