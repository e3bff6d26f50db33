// The store's state and the declarations of its parts: Impl holds the namespaces and their
// extent maps, the data zones, the journal head and the pending records. Internal to
// fs/store; each part lives in a file of its own:
//   store.cc           the public face (Store), namespaces, trim and zeroing
//   store_recovery.cc  opening: the newest checkpoint and the journal after it
//   store_loading.cc   the maps read from an indexed checkpoint as they are needed
//   store_zones.cc     data zones and streams: where data goes and how long it lives
//   store_journal.cc   the journal (group commit) and checkpoints
//   store_cleaner.cc   cleaning: choosing victims, reading their live blocks, running jobs
//   store_batch.cc     batches: many requests' device I/O in flight at once, and the
//                      cleaner's moves written as a batch
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>

#include "fs/map/extent_map.h"
#include "nyads/aligned_buffer.h"
#include "nyads/store.h"
#include "nyads/sync_device.h"
#include "nyads/units.h"
#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

inline std::string n(std::uint64_t v) { return std::to_string(v); }
inline constexpr std::uint64_t kBlock = fmt::kStoreBlockSize;
// Append streams, by how long their data is expected to live. Data of different lifetimes in
// different zones means zones empty out at different rates, so the cleaner finds nearly empty
// zones to clean. Users write new data, and overwrites of data whose last lives were all
// brief, into their namespace's own stream (hot); other overwrites go to one user-cold stream
// shared by every namespace. The cleaner sorts what it copies by age into three streams:
// young, cold, frozen. (See lifetimes, below.)
enum Stream : std::uint8_t {
  kNoStream = 0,
  kUserStream = 1,
  kCleanerStream = 2,  // copies of young data
  kColdStream = 3,
  kFrozenStream = 4,
  kUserColdStream = 5,
};
inline bool is_user(Stream s) { return s == kUserStream || s == kUserColdStream; }

struct Store::Impl {
  struct Namespace {
    std::uint32_t id;
    std::string name;
    std::uint64_t size;
    std::uint32_t block_size;
    std::uint32_t flags = 0;
    ExtentMap map;
    // Its part of an indexed checkpoint not read yet (store_loading.cc): entries
    // [index_first, index_first + index_count) of `checkpoint_index`, in vblock order, of
    // which index_unread are unread, mapping unread_blocks blocks together.
    std::uint32_t index_first = 0, index_count = 0, index_unread = 0;
    std::uint64_t unread_blocks = 0;
    // What replay changed over unread blocks (start -> end): dead in a block when it is read.
    std::map<std::uint64_t, std::uint64_t> replayed{};
  };
  struct DataZone {
    std::uint64_t start = 0;
    std::uint64_t wp = 0;        // next block an append lands on (device blocks)
    std::uint64_t valid = 0;     // live 4 KiB blocks
    std::uint64_t last_seq = 0;  // journal sequence of its newest data: its age
    std::uint8_t stream = kNoStream;
    std::uint64_t stream_key = 0;  // which open stream appends here (when stream is set)
    // A commit (or the checkpoint the volume opened from) may have made records that point
    // here durable: emptied, the zone is reset only after the next commit. Until then it holds
    // only data written since the last commit, and emptied it is reset at once, its pending
    // records dropped (zone_emptied).
    bool referenced = false;
    // The journal's last commit is a one-flush commit that put data here: until a later commit
    // or a checkpoint is durable, replay reads that data back to decide whether to trust it,
    // so the zone is not reset (its reset waits in resets_after_commit).
    bool unproven = false;
    // What was written into the zone, by whom: the cleaner checks each against the maps to
    // find the live blocks, without walking every namespace's map.
    // 16 bytes, one per write (millions under random writes): the namespace, where the write
    // starts in the zone, and its virtual block with its length packed in one word.
    struct Owner {
      std::uint32_t ns;
      std::uint32_t offset;             // device blocks from the zone's start
      std::uint64_t vblock_and_blocks;  // vblock in the low 52 bits, blocks - 1 in the high 12
      std::uint64_t vblock() const { return vblock_and_blocks & ((1ull << 52) - 1); }
      std::uint64_t blocks() const { return (vblock_and_blocks >> 52) + 1; }
    };
    std::vector<Owner> owners;
    // Records a write of `blocks` 4 KiB blocks at lba (device blocks, `per` to a 4 KiB block).
    void add_owner(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba, std::uint64_t blocks,
                   std::uint32_t device_blocks_per_block) {
      constexpr std::uint64_t kMaxRun = 1u << 12;
      for (std::uint64_t done = 0; done < blocks;) {
        const std::uint64_t k = std::min(blocks - done, kMaxRun);
        owners.push_back({ns_id, static_cast<std::uint32_t>(lba + done * device_blocks_per_block - start),
                          (vblock + done) | (k - 1) << 52});
        done += k;
      }
    }
  };

  std::unique_ptr<ZonedDevice> dev;
  StoreOptions options;
  fmt::Superblock sb;
  std::uint64_t seed = 0;
  std::uint32_t per = 1;  // device blocks per 4 KiB block
  std::map<std::uint32_t, Namespace> namespaces;
  std::uint32_t next_ns_id = 1;
  std::vector<DataZone> zones;  // index: zone - sb.data_zones.first
  // Open streams: each appends to its own zone. Users write new data in one stream per
  // namespace, so deleting a namespace frees those zones by reset, without copying; the shared
  // streams (user-cold, the cleaner's) hold data of every namespace.
  struct OpenStream {
    std::uint32_t zone_index = 0;
    std::uint64_t last_use = 0;
  };
  std::map<std::uint64_t, OpenStream> streams;  // by stream_key()
  std::uint64_t stream_clock = 0;
  // The device's open/active zone limit, the lower of the two (0: none).
  std::uint32_t zone_limit() const {
    return zone_limit_of(dev->geometry().max_open_zones, dev->geometry().max_active_zones);
  }
  static std::uint64_t stream_key(Stream kind, std::uint32_t ns) {
    return (std::uint64_t(kind) << 32) | (kind == kUserStream ? ns : 0);
  }
  // How many streams besides the users' own the device's open/active zone limits allow
  // (shared_stream_count in fs/volume/layout.cc says which).
  std::size_t shared_streams() const {
    return shared_stream_count(zone_limit(), static_cast<std::uint32_t>(shared_stream_cap));
  }
  // Volumes whose promises were made when two shared streams were the most (before the
  // user-cold and frozen streams) may have promised the headroom of the other two: they keep
  // to two (decided at open, or once the maps are whole: until then counts may be high, and
  // two is the safe side).
  std::size_t shared_stream_cap = 4;
  void decide_shared_stream_cap() {
    shared_stream_cap = 4;
    if (any_promised() && claimed_total() > promise_limit_blocks(namespaces.size())) shared_stream_cap = 2;
  }
  // The stream to use for `s`, as far as shared_streams() allows it (else the next best).
  Stream available(Stream s) const {
    const std::size_t k = shared_streams();
    if (s == kFrozenStream && k < 4) s = kColdStream;
    if (s == kUserColdStream && k < 3) s = kUserStream;
    if (s == kColdStream && k < 2) s = kCleanerStream;
    return s;
  }
  std::vector<std::uint32_t> resets_after_commit;
  // The zones marked unproven (DataZone::unproven), to clear them when a later commit or a
  // checkpoint is durable.
  std::vector<std::uint32_t> unproven_zones;
  void set_unproven(std::vector<std::uint32_t> zones_of_commit) {
    for (std::uint32_t z : unproven_zones) zones[z - sb.data_zones.first].unproven = false;
    unproven_zones.clear();
    for (std::uint32_t z : zones_of_commit)
      if (sb.data_zones.contains(z)) {
        zones[z - sb.data_zones.first].unproven = true;
        unproven_zones.push_back(z);
      }
  }
  // Emptied zones that no durable record points into: reset without a commit
  // (reset_unreferenced), so a client streaming writes without flushes cycles through zones
  // without a flush of the device for each one it empties.
  std::vector<std::uint32_t> unreferenced_resets;
  void zone_emptied(DataZone& z) {
    (z.referenced ? resets_after_commit : unreferenced_resets).push_back(zone_number(z));
  }
  // Resets the zones in unreferenced_resets that are still empty and unreferenced, dropping
  // the pending records that point into them: each block they name was overwritten, trimmed
  // or deleted by a record after it, still pending too, so a commit of what is left (or any
  // prefix of it, if torn) never names a block of the reused zone, and never loses a
  // block's durable old content.
  Status reset_unreferenced();
  // Journal.
  JournalPosition head;                  // where the next journal block goes
  std::uint32_t journal_start_zone = 0;  // where the newest checkpoint's replay starts
  std::vector<fmt::JournalRecord> pending;
  std::size_t pending_bytes = 0;  // their size in the journal
  // A client that never flushes would make `pending` grow with every write it sends (about
  // 64 bytes of memory a 4 KiB write: 16 GiB per TiB written, measured): a batch that leaves
  // this much pending is committed, as if the client had flushed. At most a quarter of a
  // journal zone, too: a commit must fit the ring's spare room (maybe_checkpoint).
  static constexpr std::size_t kCommitAfterBytes = 2 << 20;
  std::size_t commit_due_bytes() const {
    return std::min<std::size_t>(kCommitAfterBytes, sb.meta_blocks_per_zone() / 4 * fmt::kJournalPayloadBytes);
  }
  // A commit whose journal write failed has lost the records it took from `pending`: no later
  // commit may succeed (a flush would promise what is not durable). The failure stays; what
  // is durable comes back when the volume is opened again.
  Status journal_failure;
  // Replay could not read a checkpoint block it needed (a cleaner move over an unread block).
  Status replay_failure;
  bool data_unflushed = false;
  // The last commit's journal blocks were written and their flush failed: the next commit
  // flushes before it writes any block (never a one-flush commit).
  bool journal_flush_owed = false;
  std::uint64_t journal_blocks_since_checkpoint = 0;
  std::uint64_t checkpoint_seq = 0;
  std::vector<std::uint32_t> newest_checkpoint_zones;
  std::uint64_t last_checkpoint_blocks = 0;
  StoreStats stats;
  // Lifetimes. The clock counts the user blocks written since open; each extent keeps the clock
  // (in units of 16 blocks, with its streak of brief lives: ExtentMap's `born`, see birth_now)
  // at which its data was written, through the cleaner's moves. Not on disk: after a restart
  // every block starts at 0 (young at first, old once the clock has run, no streak), which
  // only makes the first sorting after it coarser.
  std::uint64_t write_clock = 0;
  std::uint64_t live_estimate = 0, live_estimate_clock = 0;
  bool cleaning = false;
  std::chrono::steady_clock::time_point last_checkpoint_time = std::chrono::steady_clock::now();

  // ----- helpers ---------------------------------------------------------------------------
  // Queues a journal record for the next commit. (emplace with in_place_type: GCC 12 warns,
  // wrongly, that a variant built from a temporary may be used uninitialized.)
  template <typename R>
  void add(R r) {
    pending.emplace_back(std::in_place_type<R>, std::move(r));
    pending_bytes += fmt::encoded_size(pending.back());
  }

  DataZone& zone_of_lba(std::uint64_t lba) { return zones[dev->geometry().zone_of(lba) - sb.data_zones.first]; }
  std::uint32_t zone_number(const DataZone& z) const {
    return sb.data_zones.first + static_cast<std::uint32_t>(&z - zones.data());
  }
  std::uint64_t capacity_blocks() const { return sb.zone_capacity / per; }
  bool is_free(const DataZone& z) const { return z.wp == z.start && z.valid == 0 && z.stream == kNoStream; }
  std::uint32_t free_zones() const {
    std::uint32_t f = 0;
    for (const auto& z : zones) f += is_free(z);
    return f;
  }

  // A namespace's map: extents of 4 KiB blocks, never across a zone boundary.
  ExtentMap empty_map() const { return ExtentMap(per, dev->geometry().zone_size); }

  Namespace* ns(std::uint32_t id) {
    auto it = namespaces.find(id);
    return it == namespaces.end() ? nullptr : &it->second;
  }
  Namespace* ns_by_name(std::string_view name) {
    for (auto& [id, x] : namespaces)
      if (x.name == name) return &x;
    return nullptr;
  }
  NamespaceInfo info(const Namespace& x) const {
    return {
        x.id,      x.name, x.size, x.block_size, mapped_blocks(x) * kBlock, (x.flags & fmt::kNamespaceQuarantined) != 0,
        is_thin(x)};
  }
  // A namespace's mapped blocks, its unread part of the checkpoint included (until that is
  // read, blocks replay rewrote there count twice: an overstatement, never an understatement).
  static std::uint64_t mapped_blocks(const Namespace& x) { return x.map.mapped_blocks() + x.unread_blocks; }

  // ----- the maps read as they are needed (store_loading.cc) --------------------------------
  // An indexed checkpoint is opened without reading its extent blocks (format.md §2.5): each
  // is read when a request, a replayed cleaner move or a namespace change needs its range,
  // or by idle_work; whatever must see every extent (the cleaner, a checkpoint, admission
  // close to the limits) reads them all first. Until then the zones' live counts are the
  // checkpoint's plus what replay added (never less than the truth, so no zone is reset
  // early), and their write lists are empty; once every block is read both are counted again
  // from the maps, as an unindexed checkpoint's are at open.
  std::vector<IndexedExtentBlock> checkpoint_index;  // the newest checkpoint's, by position
  std::vector<bool> index_read;                      // per entry: read, or dropped with its namespace
  std::size_t unread_total = 0;
  std::size_t read_cursor = 0;  // entries before it are read (idle_work reads on from here)
  // A block that could not be read (damaged, or the device failed): the ranges it holds fail,
  // and nothing that needs every map runs (no checkpoint, no cleaning) until fsck.nyads has
  // been run; the rest of the volume keeps working.
  Status maps_failure;
  bool replaying = false;
  bool maps_complete() const { return unread_total == 0; }
  // Sets up the unread blocks of a checkpoint loaded with its extents deferred.
  void defer_extents(std::vector<IndexedExtentBlock> index);
  // Reads the unread blocks of x that hold any of blocks [first, first + count).
  Status read_range(Namespace& x, std::uint64_t first, std::uint64_t count);
  // Reads every unread block; then counts the zones again from the maps.
  Status read_all();
  // Reads up to `max_blocks` unread blocks (idle work).
  Status read_some(std::size_t max_blocks);
  // Replay changed blocks [first, end) of x: dead in whatever unread block holds them.
  void note_replayed(Namespace& x, std::uint64_t first, std::uint64_t end);
  // A namespace goes (deleted, or created again by replay): its unread blocks go with it.
  void erase_namespace(std::uint32_t id);
  // Reads the given entries of checkpoint_index (ascending) into the maps.
  Status read_entries(const std::vector<std::size_t>& entries);
  // Every block read: live counts and write lists from the maps.
  void count_zones_from_maps();

  // Blocks that stopped being referenced: the zone loses them; an emptied zone is reset once
  // the journal records that emptied it are durable.
  void release(const std::vector<ExtentMap::Displaced>& displaced) {
    for (const auto& d : displaced) {
      DataZone& z = zone_of_lba(d.lba);
      z.valid -= d.blocks;
      if (z.valid == 0 && z.stream == kNoStream && z.wp != z.start) zone_emptied(z);
    }
  }

  void record_extents(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba,
                      std::span<const std::uint32_t> sums) {
    for (std::size_t i = 0; i < sums.size(); i += fmt::kMaxExtentBlocksPerRecord) {
      const std::size_t k = std::min(fmt::kMaxExtentBlocksPerRecord, sums.size() - i);
      add(fmt::record::Extent{ns_id, vblock + i, lba + i * per,
                              std::vector<std::uint32_t>(sums.begin() + static_cast<std::ptrdiff_t>(i),
                                                         sums.begin() + static_cast<std::ptrdiff_t>(i + k))});
    }
  }

  // ----- recovery (store_recovery.cc) -------------------------------------------------------
  Status recover();

  void apply(const fmt::record::Extent& x);

  void apply_record(const fmt::JournalRecord& r, std::uint64_t seq);

  // Moved blocks keep their checksums; a block not mapped any more is left alone (fsck
  // reports such a record).
  void apply(const fmt::record::Moved& x);

  // ----- data zones (store_zones.cc) --------------------------------------------------------
  Status reset_zone(std::uint32_t zone);

  // How many user streams may be open at once (fs/volume/layout.cc).
  std::size_t user_stream_budget() const {
    return nyads::user_stream_budget(zone_limit(), static_cast<std::uint32_t>(shared_stream_cap));
  }

  // Takes a zone out of its stream. Finishing a partly written zone releases its open and
  // active resources; an empty one is reset once the journal says it is.
  Status close_stream_zone(DataZone& z, bool finish);

  // Ends a namespace's stream (deleted): its zone leaves the stream, and is reset when empty.
  Status end_namespace_stream(std::uint32_t ns_id);

  // ----- lifetimes (store_zones.cc) ---------------------------------------------------------
  // By Little's law a block lives, on average, as many user writes as there are live blocks
  // (N): that is the unit. A life shorter than 1.5 N is brief. An overwrite is hot (it goes to
  // the namespace's own stream) when the data it replaces, and the two lives before that, were
  // all brief; otherwise it is cold (the user-cold stream). The cleaner copies data younger
  // than N/2 into its young stream, younger than 2 N into the cold one, older into the frozen
  // one. Measured (wa_bench, 1024 zones, 80/20, one brief life enough): user split at 1, 1.5,
  // 2 N: 2.69 (with the cleaner at 0.5 / 2 N), 2.66, 2.69; cleaner split 0.5 / 2 N beside
  // 0.35 / 2 N, 0.5 / 3 N, 0.5 / 4 N: 2.66, 2.71, 2.67, 2.68; brief lives needed in a row, see
  // doc/design.md.
  static constexpr double kHotLifetimes = 1.5, kYoungAge = 0.5, kColdAge = 2;
  static constexpr std::uint32_t kHotStreak = 3;
  // A birth (ExtentMap's `born`): the clock when the data was written, in units of 16 blocks
  // in the low 30 bits, and in the top two how many brief lives in a row led to it (0..3).
  static constexpr unsigned kClockBits = 30;
  static constexpr std::uint32_t kClockMask = (std::uint32_t{1} << kClockBits) - 1, kMaxStreak = 3;
  static std::uint32_t brief_streak(std::uint32_t born) { return born >> kClockBits; }
  std::uint32_t birth_now(std::uint32_t streak) const {
    return (static_cast<std::uint32_t>(write_clock >> 4) & kClockMask) | streak << kClockBits;
  }
  // How long ago (in user blocks written) data born at `born` was written; wraps after 2^34
  // blocks (64 TiB), when very old data looks young once.
  std::uint64_t age_of(std::uint32_t born) const { return std::uint64_t{(birth_now(0) - born) & kClockMask} << 4; }
  // N, refreshed every N/16 blocks written (at most every 4096: it sums every namespace's count).
  double lifetime_unit() {
    if (live_estimate == 0 ||
        write_clock - live_estimate_clock >= std::min<std::uint64_t>(4096, live_estimate / 16 + 1)) {
      live_estimate = std::max<std::uint64_t>(1, live_blocks());
      live_estimate_clock = write_clock;
    }
    return static_cast<double>(live_estimate);
  }
  // Data written one after the other joins one extent (saving map memory) only when their
  // births are within N/16 blocks (close enough to share a lifetime class) and of one streak.
  std::uint32_t join_within() {
    return static_cast<std::uint32_t>(std::min(lifetime_unit() / 256, double{kClockMask / 2}));
  }
  // Where a user write at vblock goes, and the streak of brief lives its data carries: by how
  // long the data it replaces lived, and the lives before that. (A batch maps its writes when
  // it completes, so writes of one block within a batch all see the map before it.)
  struct UserPlacement {
    Stream stream;
    std::uint32_t streak;
  };
  UserPlacement user_placement(const Namespace& s, std::uint64_t vblock) {
    const auto old = s.map.lookup(vblock, 1);
    if (!old.front().mapped) return {kUserStream, 0};  // new data: its lifetime is unknown
    if (static_cast<double>(age_of(old.front().born)) >= kHotLifetimes * lifetime_unit())
      return {available(kUserColdStream), 0};
    const std::uint32_t streak = std::min(kMaxStreak, brief_streak(old.front().born) + 1);
    return {streak >= kHotStreak ? kUserStream : available(kUserColdStream), streak};
  }
  // The stream the cleaner copies data born at `born` into. With no more free zones than the
  // reserve, a stream whose zone is full does not take a new one while another cleaner stream
  // has room (the nearest in age): copying one zone then needs at most one new zone, as with
  // a single cleaner stream, and cleaning never runs out of the reserve halfway.
  Stream cleaner_stream_for(std::uint32_t born);
  // Whether the (shared) stream's zone takes another 4 KiB block, as place() sees it.
  bool has_room(Stream s) const {
    auto it = streams.find(stream_key(s, 0));
    return it != streams.end() && room_blocks(zones[it->second.zone_index]) > 0;
  }
  // 4 KiB blocks still free in a zone.
  std::uint64_t room_blocks(const DataZone& z) const { return (z.start + sb.zone_capacity - z.wp) / per; }

  // A zone of the stream with room, and how many 4 KiB blocks fit in it (up to `want`).
  Result<std::pair<DataZone*, std::uint64_t>> place(Stream stream, std::uint32_t ns_id, std::uint64_t want);

  // Appends a user's whole 4 KiB blocks and maps them.
  Status append_blocks(UserPlacement to, std::uint32_t ns_id, std::uint64_t vblock, const std::uint8_t* data,
                       std::uint64_t blocks);

  Status check_range(const Namespace* s, std::uint64_t offset, std::uint64_t length, const char* what) const;

  // Reads whole 4 KiB blocks, verifying each against its checksum.
  Status read_blocks(Namespace& s, std::uint64_t vblock, std::uint64_t blocks, std::uint8_t* out);

  // Writes a byte range; partial 4 KiB blocks (512-byte namespaces) are read, merged, rewritten.
  Status write_range(Namespace& s, std::uint64_t offset, const std::uint8_t* data, std::uint64_t length);

  // ----- journal: group commit (store_journal.cc) -------------------------------------------
  // Makes every write, trim and namespace change so far durable: data first, then the journal
  // blocks that describe it, each behind a flush, then resets zones the records emptied.
  Status commit();

  // Packs the pending records into journal blocks, appends them at the head, flushes.
  // Writes the pending records into journal blocks (the caller flushes). With unflushed_from (the
  // sequence number of the commit's first block), each block says the commit is a one-flush
  // one (an unflushed-commit record).
  Status write_journal(MetaIo& io, std::optional<std::uint64_t> unflushed_from = std::nullopt);
  // Whether the pending records may be committed with one flush, data and journal together:
  // they name at most 4 MiB of data (fmt::kUnflushedCommitMaxDataBlocks), all of it in
  // extents (a moved record's data is checked by older records' checksums, which replay may
  // not have), they are at most 1 MiB, each fits beside the block's unflushed-commit record,
  // and none of that data is in a zone they reset. The data zones they name go to *data_zones.
  bool one_flush_commit(std::vector<std::uint32_t>* data_zones) const;

  // The journal head zone is full: go on in the next zone of the ring, which is empty, since a
  // checkpoint is taken before the ring runs out.
  Status next_journal_zone();

  Status maybe_checkpoint();

  // ----- checkpoints (store_journal.cc) -----------------------------------------------------
  Status checkpoint();
  bool in_checkpoint = false;

  Status write_new_checkpoint();

  // ----- cleaning (store_cleaner.cc) --------------------------------------------------------
  // Cost-benefit (LFS): clean the zone maximising (1 - u) * age / (1 + u), u its live fraction.
  DataZone* pick_victim();

  // Cleaning runs in slices: the zone being cleaned, and how far through its write list the
  // copying has got. A slice re-checks what is live, so user writes between slices are safe.
  struct CleanJob {
    std::uint32_t zone_index = 0;
    std::size_t next_owner = 0;
    std::uint64_t start_valid = 0;  // live blocks when the job began
  };
  std::optional<CleanJob> job;

  // Copies the live blocks of the job's next writes, about `budget` blocks (at least one
  // write's worth). A done zone is committed, so it is reset.
  // Returns whether the zone is done.
  Result<bool> clean_slice(std::uint64_t budget);

  // Makes sure a zone is being cleaned: the one in progress, or the best victim.
  // kNotFound when no zone is worth cleaning.
  Status start_job();

  // A slice of cleaning: goes on with the zone being cleaned, or starts on the best victim.
  // With `written` blocks just written by users, the slice copies enough to keep pace: to free
  // a zone that is u live, u/(1-u) blocks are copied per block of room gained; half as much
  // again for margin, and never less than twice what was written. Given a budget instead
  // (written = 0), it copies that. kNotFound when no zone is worth cleaning.
  Status clean_some(std::uint64_t budget, std::uint64_t written = 0);

  // One whole zone cleaned (the one in progress, if any).
  Status clean_step();

  // Free zones below which cleaning runs in slices beside the writes (soft), and below which a
  // write waits for whole zones to be cleaned (hard: clean_below_free_zones).
  std::uint32_t hard_watermark() const {
    return options.clean_below_free_zones ? options.clean_below_free_zones : sb.reserved_data_zones + 2;
  }
  std::uint32_t soft_watermark() const { return hard_watermark() + 2; }
  std::size_t reset_batch_zones() const { return std::max<std::size_t>(4, sb.data_zones.count / 32); }

  Status clean_until_free(std::uint32_t want) {
    for (int rounds = 0; rounds < 64 && free_zones() < want; ++rounds) {
      Status st = clean_step();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  // ----- trim and zeroing (store.cc) --------------------------------------------------------
  Status trim_range(Namespace& x, std::uint64_t offset, std::uint64_t length);

  Status write_zeroes_range(Namespace& x, std::uint64_t offset, std::uint64_t length, bool no_hole);

  // ----- batches: many requests' device I/O in flight at once (store_batch.cc) --------------
  // A batch turns its aligned reads and writes into chunks (one device I/O each), queued on
  // the device as they are made. Completions are applied in chunk order when the batch drains:
  // at its end, or earlier when the store needs synchronous I/O (placing data in a new zone
  // may clean or commit; trims and partial blocks take the synchronous path).
  struct Chunk {
    std::size_t request = 0;
    bool is_write = false;
    std::uint32_t ns = 0;
    std::uint64_t vblock = 0;
    std::uint64_t blocks = 0;         // 4 KiB blocks
    std::uint64_t lba = 0;            // read: where; write: where the append landed
    std::uint32_t zone_index = 0;     // write: the data zone appended to
    std::uint32_t streak = 0;         // write: brief lives in a row before it (UserPlacement)
    std::vector<std::uint32_t> sums;  // write: computed; read: expected
    // write: computes `sums`, on the device's writing thread (IoRequest::prepare), when the
    // device runs it; set only then.
    std::function<void()> checksum;
    std::uint8_t* target = nullptr;  // read: the caller's buffer
    AlignedBuffer bounce;            // when the caller's buffer is not aligned for DMA
    bool done = false;
    Status status;
  };
  struct Batch {
    std::span<StoreRequest> requests;
    std::vector<Chunk> chunks;
    std::size_t applied = 0;                             // chunks before this one are applied
    std::uint64_t growth = 0;                            // live blocks the batch's writes may add (not yet in the maps)
    std::map<std::uint32_t, std::uint64_t> thin_growth;  // ... of it, by thin namespace
    bool caller_goes_on = false;                         // execute() has a `meanwhile` to run
  };
  Batch* batch = nullptr;

  // Whether the device takes a buffer at p as it is (else it goes through a bounce buffer).
  bool dma_aligned(const void* p) const { return reinterpret_cast<std::uintptr_t>(p) % dev->buffer_alignment() == 0; }

  void reap_some(std::size_t min_count);

  void submit_chunk(std::size_t index);

  // Reaps everything in flight and applies completed chunks in order.
  Status drain();

  // The cleaner's copies, gathered so that one append and one moved record carry many runs
  // (under random overwrites the live blocks of a zone are single blocks: a record per block
  // with its checksum was 32 bytes, a run in a moved record is 8).
  static constexpr std::uint64_t kMoveBatchBlocks = 64;
  struct MoveBatch {
    std::uint32_t ns = 0;
    std::vector<fmt::record::Moved::Run> runs;
    std::vector<std::uint32_t> sums;
    std::vector<std::uint32_t> borns;  // per run
    std::vector<std::uint8_t> data;
    std::uint64_t blocks() const { return sums.size(); }
    // Adds the live run vblock.. of namespace x, born at `born`, its data read by `read`.
    template <typename Read>
    Status add(const Namespace& x, std::uint64_t vblock, std::uint64_t n_blocks, std::uint32_t born, Read read) {
      ns = x.id;
      data.resize((blocks() + n_blocks) * kBlock);
      NYADS_RETURN_IF_ERROR(read(data.data() + blocks() * kBlock));
      for (const auto& p : x.map.lookup(vblock, n_blocks)) sums.insert(sums.end(), p.checksums, p.checksums + p.blocks);
      runs.push_back({vblock, static_cast<std::uint32_t>(n_blocks)});
      borns.push_back(born);
      return Status::Ok();
    }
  };

  // Appends the batch's blocks (into one zone or more) and maps each run at its new place,
  // with one moved record per zone appended to.
  Status flush_moves(Stream target, MoveBatch& b);

  // Accounts for k blocks an append put at lba in their zone.
  void account_appended(Stream stream, std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba,
                        std::uint32_t zone_index, std::uint64_t k);

  // Maps blocks a user's append put at lba, and accounts for them in their zone. `streak`: the
  // brief lives in a row that led to this data (UserPlacement).
  void map_appended(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba, std::uint32_t zone_index,
                    std::span<const std::uint32_t> sums, std::uint32_t streak) {
    const std::uint64_t k = sums.size();
    account_appended(kUserStream, ns_id, vblock, lba, zone_index, k);
    Namespace* s = ns(ns_id);
    if (s == nullptr) {  // deleted while the write was in flight: the blocks are dead at once
      release({{lba, k}});
      return;
    }
    release(s->map.map(vblock, lba, sums, birth_now(streak), join_within(), kClockMask));
    write_clock += k;
    record_extents(ns_id, vblock, lba, sums);
  }

  // Queues the appends of an aligned write.
  Status queue_write(std::size_t request, Namespace& s, std::uint64_t vblock, const std::uint8_t* data,
                     std::uint64_t blocks);

  // Queues the reads of an aligned read; unmapped blocks are zeroed at once.
  void queue_read(std::size_t request, Namespace& s, std::uint64_t vblock, std::uint64_t blocks, std::uint8_t* out);

  // Thin provisioning's limit: live data may fill the data zones except a headroom — the
  // cleaner's reserve, the unwritten rest of each open stream's zone, and one zone more — so
  // that at least a zone's worth of dead blocks always exists and overwrites (which add no
  // live data) can be placed by cleaning the blocks they kill. A write that would add live
  // blocks past it gets ENOSPC; overwrites, trims and other namespaces' I/O keep working.
  std::uint64_t live_limit_blocks() const {
    const std::uint32_t headroom =
        sb.reserved_data_zones + 1 + static_cast<std::uint32_t>(std::max<std::size_t>(streams.size(), 1));
    const std::uint32_t usable = sb.data_zones.count > headroom ? sb.data_zones.count - headroom : 0;
    return std::uint64_t{usable} * (sb.zone_capacity / (kBlock / sb.block_size));
  }
  std::uint64_t live_blocks() const {
    std::uint64_t live = 0;
    for (const auto& [id, x] : namespaces) live += mapped_blocks(x);
    return live;
  }

  // Space promises. A namespace is promised its whole size (it can always be filled, whatever
  // the others do), unless it is thin: then it is promised nothing and grows only into space
  // promised to no one. Promises are kept against a limit that holds however many streams are
  // open (each namespace opens at most one, plus the shared ones), so live data never passes
  // live_limit_blocks() on the way to a promise. With only thin namespaces, they grow up to
  // live_limit_blocks() itself.
  static bool is_thin(const Namespace& x) { return (x.flags & fmt::kNamespaceThin) != 0; }
  std::uint64_t promise_limit_blocks(std::size_t namespace_count) const {
    return promise_limit_bytes(sb, zone_limit(), namespace_count, static_cast<std::uint32_t>(shared_stream_cap)) /
           kBlock;
  }
  // What a namespace takes of the volume: its promise, or what it has written if that is more.
  std::uint64_t claimed_blocks(const Namespace& x, std::uint64_t unapplied = 0) const {
    return std::max(mapped_blocks(x) + unapplied, is_thin(x) ? 0 : x.size / kBlock);
  }
  std::uint64_t claimed_total() const {
    std::uint64_t total = 0;
    for (const auto& [id, x] : namespaces)
      total += claimed_blocks(x, batch && batch->thin_growth.contains(id) ? batch->thin_growth.at(id) : 0);
    return total;
  }
  // While any namespace holds a promise, thin ones stay under the promise limit (even once the
  // promised space is all written: a trim and a rewrite there, or one more stream open, must
  // still find room).
  bool any_promised() const {
    for (const auto& [id, x] : namespaces)
      if (!is_thin(x)) return true;
    return false;
  }
  static std::string size_of(std::uint64_t blocks) { return format_size(blocks * kBlock); }
  // ENOSPC unless a namespace can be promised `blocks` (replacing a claim of `was`, for a
  // resize; 0 for a new thin one, which still takes headroom for its stream while promises
  // are outstanding).
  Status admit_promise(std::string_view name, std::uint64_t blocks, std::uint64_t was,
                       std::size_t namespace_count) const {
    const std::uint64_t claimed = claimed_total() - was, limit = promise_limit_blocks(namespace_count);
    if (claimed + blocks <= limit || (blocks == 0 && !any_promised())) return Status::Ok();
    const bool creating = namespace_count > namespaces.size();
    // Named only when the new namespace's stream does lower the limit (not past the budget).
    const std::string headroom = creating && limit < promise_limit_blocks(namespaces.size())
                                     ? " (counting the zone of headroom a new namespace's writes take)"
                                     : "";
    if (blocks == 0)  // a thin one: all it needs is that headroom
      return Status(Code::kNoSpace, "namespace '" + std::string(name) + "' cannot be made: the volume can promise " +
                                        size_of(limit) + headroom + ", and " + size_of(claimed) +
                                        " are promised or written already");
    const std::uint64_t left = limit - std::min(limit, claimed);
    // Sizes that round to the same text are given exactly.
    const bool same_text = size_of(blocks) == size_of(left);
    const auto shown = [&](std::uint64_t b) { return same_text ? n(b * kBlock) + " bytes" : size_of(b); };
    return Status(Code::kNoSpace,
                  "namespace '" + std::string(name) + "' needs " + shown(blocks) + ", but only " + shown(left) +
                      " of the " + size_of(limit) + " the volume can promise" + headroom +
                      " are neither promised to other namespaces nor written by thin ones; make it "
                      "smaller" +
                      (creating ? ", or thin (--thin: promised nothing, it competes for free space)" : ""));
  }

  // ENOSPC for a write of bytes [offset, offset+length) of x if it would pass the limit, or,
  // for a thin namespace, take space promised to others.
  // A batch counts the growth of writes it has admitted but not applied yet; that count can be
  // too high (a block written twice, or a synchronous write applied at once), so a refusal is
  // only final once the batch is drained and the count is exact.
  Status admit_growth(const Namespace& x, std::uint64_t offset, std::uint64_t length) {
    Status admitted = admit_growth_once(x, offset, length);
    if (admitted.code() != Code::kNoSpace || batch == nullptr ||
        (batch->growth == 0 && batch->thin_growth.empty() && maps_complete()))
      return admitted;
    NYADS_RETURN_IF_ERROR(drain());
    // Until the maps are whole, a namespace's count holds blocks replay rewrote twice.
    if (!maps_complete()) NYADS_RETURN_IF_ERROR(read_all());
    return admit_growth_once(x, offset, length);
  }
  Status admit_growth_once(const Namespace& x, std::uint64_t offset, std::uint64_t length);

  // One request of a batch: queued (aligned reads and writes) or done at once (the rest).
  void start_request(std::size_t i, bool& commit_wanted);

  Status read_unaligned(Namespace& x, std::uint64_t offset, std::span<std::uint8_t> out) {
    const std::uint64_t first = offset / kBlock, last = (offset + out.size() - 1) / kBlock;
    std::vector<std::uint8_t> buf((last - first + 1) * kBlock);
    NYADS_RETURN_IF_ERROR(read_blocks(x, first, last - first + 1, buf.data()));
    std::memcpy(out.data(), buf.data() + offset % kBlock, out.size());
    return Status::Ok();
  }

  Status execute(std::span<StoreRequest> requests, const std::function<void()>& meanwhile);

  Result<std::uint32_t> idle_work();
};

}  // namespace nyads
