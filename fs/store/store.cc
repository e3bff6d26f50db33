// The store. One class, Impl, holds the state (namespaces and their extent maps, data zones,
// the journal head, pending records); the sections below are its parts in data-path order:
// recovery, namespaces, writes and reads, the journal (group commit), checkpoints, cleaning.
#include "nyads/store.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>

#include "fs/map/extent_map.h"
#include "nyads/aligned_buffer.h"
#include "nyads/sync_device.h"
#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }
constexpr std::uint64_t kBlock = fmt::kStoreBlockSize;
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
bool is_user(Stream s) { return s == kUserStream || s == kUserColdStream; }
}  // namespace

double StoreStats::write_amplification() const {
  if (user_bytes_written == 0) return 0;
  return static_cast<double>(data_bytes_written + cleaner_bytes_written + metadata_bytes_written) / static_cast<double>(user_bytes_written);
}

struct Store::Impl {
  struct Namespace {
    std::uint32_t id;
    std::string name;
    std::uint64_t size;
    std::uint32_t block_size;
    std::uint32_t flags = 0;
    ExtentMap map;
  };
  struct DataZone {
    std::uint64_t start = 0;
    std::uint64_t wp = 0;          // next block an append lands on (device blocks)
    std::uint64_t valid = 0;       // live 4 KiB blocks
    std::uint64_t last_seq = 0;    // journal sequence of its newest data: its age
    std::uint8_t stream = kNoStream;
    std::uint64_t stream_key = 0;  // which open stream appends here (when stream is set)
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
    void add_owner(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba, std::uint64_t blocks, std::uint32_t device_blocks_per_block) {
      constexpr std::uint64_t kMaxRun = 1u << 12;
      for (std::uint64_t done = 0; done < blocks;) {
        const std::uint64_t k = std::min(blocks - done, kMaxRun);
        owners.push_back({ns_id, static_cast<std::uint32_t>(lba + done * device_blocks_per_block - start), (vblock + done) | (k - 1) << 52});
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
    const Geometry& g = dev->geometry();
    std::uint32_t limit = 0;
    for (std::uint32_t l : {g.max_open_zones, g.max_active_zones})
      if (l != 0) limit = limit == 0 ? l : std::min(limit, l);
    return limit;
  }
  static std::uint64_t stream_key(Stream kind, std::uint32_t ns) { return (std::uint64_t(kind) << 32) | (kind == kUserStream ? ns : 0); }
  // How many streams besides the users' own the device's open/active zone limits allow: the
  // cleaner's young stream always; its cold one when a user stream is left beside it and the
  // metadata's three zones; the user-cold and frozen streams only with room for five user
  // streams more (each measured: see doc/design.md).
  std::size_t shared_streams() const {
    const std::uint32_t limit = zone_limit();
    if (limit == 0 || limit >= 12) return std::min<std::size_t>(4, shared_stream_cap);
    return limit >= 6 ? 2 : 1;
  }
  // Volumes whose promises were made when two shared streams were the most (before the
  // user-cold and frozen streams) may have promised the headroom of the other two: they keep
  // to two (set at open).
  std::size_t shared_stream_cap = 4;
  // The stream to use for `s`, as far as shared_streams() allows it (else the next best).
  Stream available(Stream s) const {
    const std::size_t k = shared_streams();
    if (s == kFrozenStream && k < 4) s = kColdStream;
    if (s == kUserColdStream && k < 3) s = kUserStream;
    if (s == kColdStream && k < 2) s = kCleanerStream;
    return s;
  }
  std::vector<std::uint32_t> resets_after_commit;
  // Journal.
  JournalPosition head;  // where the next journal block goes
  std::vector<fmt::JournalRecord> pending;
  std::size_t pending_bytes = 0;  // their size in the journal
  // A client that never flushes would make `pending` grow with every write it sends (about
  // 64 bytes of memory a 4 KiB write: 16 GiB per TiB written, measured): a batch that leaves
  // this much pending is committed, as if the client had flushed. At most a quarter of a
  // journal zone, too: a commit must fit the ring's spare room (maybe_checkpoint).
  static constexpr std::size_t kCommitAfterBytes = 512 << 10;
  std::size_t commit_due_bytes() const {
    return std::min<std::size_t>(kCommitAfterBytes, sb.meta_blocks_per_zone() / 4 * fmt::kJournalPayloadBytes);
  }
  // A commit whose journal write failed has lost the records it took from `pending`: no later
  // commit may succeed (a flush would promise what is not durable). The failure stays; what
  // is durable comes back when the volume is opened again.
  Status journal_failure;
  bool data_unflushed = false;
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

  // ----- helpers -------------------------------------------------------------------------
  // Queues a journal record for the next commit. (emplace with in_place_type: GCC 12 warns,
  // wrongly, that a variant built from a temporary may be used uninitialized.)
  template <typename R>
  void add(R r) {
    pending.emplace_back(std::in_place_type<R>, std::move(r));
    pending_bytes += fmt::encoded_size(pending.back());
  }

  DataZone& zone_of_lba(std::uint64_t lba) { return zones[dev->geometry().zone_of(lba) - sb.data_zones.first]; }
  std::uint32_t zone_number(const DataZone& z) const { return sb.data_zones.first + static_cast<std::uint32_t>(&z - zones.data()); }
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
    return {x.id, x.name, x.size, x.block_size, x.map.mapped_blocks() * kBlock, (x.flags & fmt::kNamespaceQuarantined) != 0, is_thin(x)};
  }

  // Blocks that stopped being referenced: the zone loses them; an emptied zone is reset once
  // the journal records that emptied it are durable.
  void release(const std::vector<ExtentMap::Displaced>& displaced) {
    for (const auto& d : displaced) {
      DataZone& z = zone_of_lba(d.lba);
      z.valid -= d.blocks;
      if (z.valid == 0 && z.stream == kNoStream && z.wp != z.start) resets_after_commit.push_back(zone_number(z));
    }
  }

  void record_extents(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
    for (std::size_t i = 0; i < sums.size(); i += fmt::kMaxExtentBlocksPerRecord) {
      const std::size_t k = std::min(fmt::kMaxExtentBlocksPerRecord, sums.size() - i);
      add(fmt::record::Extent{ns_id, vblock + i, lba + i * per, std::vector<std::uint32_t>(sums.begin() + static_cast<std::ptrdiff_t>(i), sums.begin() + static_cast<std::ptrdiff_t>(i + k))});
    }
  }

  // ----- recovery ------------------------------------------------------------------------
  Status recover() {
    const Geometry& g = dev->geometry();
    if (fmt::kMetaBlockSize % g.block_size != 0) return NotSupported(dev->name() + ": block size " + n(g.block_size) + " does not divide 4096");
    std::optional<fmt::Superblock> best;
    std::string why;
    for (std::uint32_t z : {0u, 1u}) {
      SuperblockZoneScan scan = scan_superblock_zone(*dev, z);
      for (auto& p : scan.problems) why += "; " + p;
      if (scan.newest && (!best || scan.newest->generation > best->generation)) best = scan.newest;
    }
    if (!best) return Corruption(dev->name() + " holds no valid nyads superblock" + why + " (run mkfs.nyads, or fsck.nyads)");
    sb = *best;
    seed = sb.seed();
    per = fmt::kMetaBlockSize / g.block_size;
    if (sb.block_size != g.block_size || sb.zone_size != g.zone_size || sb.zone_count != g.zone_count)
      return Corruption(dev->name() + ": the device's geometry differs from the superblock's (run fsck.nyads)");
    NYADS_RETURN_IF_ERROR(sb.check_writable());
    // A zone's write list records offsets in the zone as 32 bits.
    if (sb.zone_size > UINT32_MAX) return NotSupported(dev->name() + ": zones of " + n(sb.zone_size) + " device blocks (this build handles up to 2^32)");
    // The maps are built as the checkpoint is read, not from a copy of its extents; a
    // checkpoint that fails part way (a damaged block, a wrong chain) leaves what it built,
    // dropped when the next one starts or when another one (or none) wins.
    // (Which checkpoint they came from: its seq and the zone of its commit, as two damaged
    // copies could share a seq.)
    std::pair<std::uint64_t, std::uint32_t> built{0, 0};
    auto from = [](const LoadedCheckpoint& c) { return std::pair(c.seq, c.commit.zones.back()); };
    auto start_maps = [&](const LoadedCheckpoint& c) {
      namespaces.clear();
      for (const auto& e : c.namespaces) namespaces.emplace(e.ns_id, Namespace{e.ns_id, e.name, e.size_bytes, e.block_size, e.flags, empty_map()});
      built = from(c);
    };
    CheckpointSearch search = load_newest_checkpoint(*dev, sb, [&](const LoadedCheckpoint& so_far, fmt::record::Extent& x) {
      if (from(so_far) != built) start_maps(so_far);
      apply(x);
    });
    if (!search.newest) {
      std::string problems;
      for (auto& p : search.problems) problems += "; " + p;
      return Corruption(dev->name() + ": no committed checkpoint" + problems + " (run fsck.nyads)");
    }
    const LoadedCheckpoint& cp = *search.newest;
    checkpoint_seq = cp.seq;
    newest_checkpoint_zones = cp.commit.zones;
    next_ns_id = cp.commit.next_ns_id;
    zones.resize(sb.data_zones.count);
    for (std::uint32_t i = 0; i < zones.size(); ++i) zones[i].start = zones[i].wp = g.zone_start(sb.data_zones.first + i);
    for (const auto& z : cp.zones)
      if (sb.data_zones.contains(z.zone)) zones[z.zone - sb.data_zones.first].last_seq = z.last_write_seq;
    if (from(cp) != built) start_maps(cp);  // (a checkpoint without extents)
    // The journal after the checkpoint.
    JournalScan scan = scan_journal(*dev, sb, {cp.commit.journal_zone, cp.commit.journal_block, cp.commit.journal_seq},
                                    [&](const fmt::JournalBlock& b, std::uint32_t, std::uint64_t) {
                                      for (const auto& r : b.records) apply_record(r, b.seq);
                                    });
    if (scan.corruption) return Corruption(dev->name() + ": journal: " + *scan.corruption + " (run fsck.nyads)");
    head = scan.end;
    journal_blocks_since_checkpoint = scan.blocks;
    // Data zones: where the device's write pointers are; live blocks counted from the maps.
    for (auto& entry : namespaces) {
      const std::uint32_t id = entry.first;
      entry.second.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
        if (!sb.data_zones.contains(g.zone_of(lba))) return;
        DataZone& z = zone_of_lba(lba);
        z.valid += sums.size();
        z.add_owner(id, vblock, lba, sums.size(), per);
      });
    }
    for (auto& z : zones) z.owners.shrink_to_fit();
    auto report = dev->report_zones(sb.data_zones.first, sb.data_zones.count);
    if (!report.ok()) return report.status();
    for (std::uint32_t i = 0; i < zones.size(); ++i) {
      const ZoneInfo& info = (*report)[i];
      DataZone& z = zones[i];
      z.wp = info.state == ZoneState::kFull ? info.start + info.capacity : info.write_pointer;
      if (z.wp == z.start) continue;
      if (z.valid == 0) {
        // Written but referenced by nothing durable (writes never flushed, or data all dead).
        NYADS_RETURN_IF_ERROR(reset_zone(sb.data_zones.first + i));
      } else if (info.state != ZoneState::kFull) {
        // A partly written zone: finish it so it holds no active resource; the cleaner reclaims it.
        NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kFinish, sb.data_zones.first + i));
        z.wp = info.start + info.capacity;
      }
    }
    // A checkpoint at open only when it is needed: after a torn journal tail (the next block
    // must go past it, and a replay would stop at it). Otherwise opening writes nothing and
    // costs only the replay. After a long replay a checkpoint is due at the first idle moment
    // (idle_work), so the next recovery does not repeat it; taking it here would make opening
    // as slow as writing out every map (measured: 4 GiB stored, 104 ms to open, 35 of them
    // recovery proper).
    if (any_promised() && claimed_total() > promise_limit_blocks(namespaces.size())) shared_stream_cap = 2;
    if (scan.torn_tail) return checkpoint();
    if (scan.blocks >= options.checkpoint_after_journal_blocks / 4) last_checkpoint_time -= std::chrono::seconds(options.checkpoint_interval_seconds);
    return Status::Ok();
  }

  void apply(const fmt::record::Extent& x) {
    Namespace* s = ns(x.ns_id);
    if (s == nullptr) return;  // fsck reports it; a store ignores a reference to nothing
    const std::uint64_t blocks = s->size / kBlock;
    if (x.vblock >= blocks) return;
    const std::size_t n_blocks = std::min<std::uint64_t>(x.checksums.size(), blocks - x.vblock);
    // What it displaces needs no accounting here: live counts come from the maps after replay.
    (void)s->map.map(x.vblock, x.lba, std::span(x.checksums).first(n_blocks));
  }

  void apply_record(const fmt::JournalRecord& r, std::uint64_t seq) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, fmt::record::NamespaceCreate>) {
            namespaces.erase(v.ns_id);
            namespaces.emplace(v.ns_id, Namespace{v.ns_id, v.name, v.size_bytes, v.block_size, v.thin ? fmt::kNamespaceThin : 0u, empty_map()});
            next_ns_id = std::max(next_ns_id, v.ns_id + 1);
          } else if constexpr (std::is_same_v<T, fmt::record::NamespaceDelete>) {
            namespaces.erase(v.ns_id);
          } else if constexpr (std::is_same_v<T, fmt::record::NamespaceResize>) {
            if (Namespace* s = ns(v.ns_id)) {
              if (v.size_bytes < s->size) (void)s->map.unmap(v.size_bytes / kBlock, (s->size - v.size_bytes) / kBlock);
              s->size = v.size_bytes;
            }
          } else if constexpr (std::is_same_v<T, fmt::record::Extent>) {
            apply(v);
            if (sb.data_zones.contains(dev->geometry().zone_of(v.lba))) zone_of_lba(v.lba).last_seq = seq;
          } else if constexpr (std::is_same_v<T, fmt::record::Trim>) {
            if (Namespace* s = ns(v.ns_id)) (void)s->map.unmap(v.vblock, v.blocks);
          } else if constexpr (std::is_same_v<T, fmt::record::Moved>) {
            apply(v);
            if (sb.data_zones.contains(dev->geometry().zone_of(v.lba))) zone_of_lba(v.lba).last_seq = seq;
          }
        },
        r);
  }

  // Moved blocks keep their checksums; a block not mapped any more is left alone (fsck
  // reports such a record).
  void apply(const fmt::record::Moved& x) {
    Namespace* s = ns(x.ns_id);
    if (s == nullptr) return;
    std::uint64_t lba = x.lba;
    for (const auto& run : x.runs) {
      (void)s->map.relocate(run.vblock, run.blocks, lba);
      lba += run.blocks * per;
    }
  }

  // ----- data zones ----------------------------------------------------------------------
  Status reset_zone(std::uint32_t zone) {
    NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kReset, zone));
    DataZone& z = zones[zone - sb.data_zones.first];
    if (z.stream != kNoStream) streams.erase(z.stream_key);
    if (job && job->zone_index == zone - sb.data_zones.first) job.reset();  // emptied by overwrites: nothing left to copy
    z.wp = z.start;
    z.valid = 0;
    z.stream = kNoStream;
    z.last_seq = 0;
    z.stream_key = 0;
    std::vector<DataZone::Owner>().swap(z.owners);  // free: an empty zone holds no list
    ++stats.zones_reset;
    add(fmt::record::ZoneReset{zone});
    return Status::Ok();
  }

  // How many user streams may be open at once: the device's open and active zone limits,
  // less what the metadata holds (the journal head, the last zone of each of the two newest
  // checkpoints) and the shared streams.
  std::size_t user_stream_budget() const {
    const std::uint32_t limit = zone_limit();
    if (limit == 0) return 64;
    const std::size_t others = 3 + shared_streams();
    return limit > others ? limit - others : 1;
  }

  // Takes a zone out of its stream. Finishing a partly written zone releases its open and
  // active resources; an empty one is reset once the journal says it is.
  Status close_stream_zone(DataZone& z, bool finish) {
    streams.erase(z.stream_key);
    z.stream = kNoStream;
    z.stream_key = 0;
    if (finish && z.wp < z.start + sb.zone_capacity) {
      NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kFinish, zone_number(z)));
      z.wp = z.start + sb.zone_capacity;
    }
    if (z.valid == 0 && z.wp != z.start) resets_after_commit.push_back(zone_number(z));
    return Status::Ok();
  }

  // Ends a namespace's stream (deleted): its zone leaves the stream, and is reset when empty.
  Status end_namespace_stream(std::uint32_t ns_id) {
    auto it = streams.find(stream_key(kUserStream, ns_id));
    if (it == streams.end()) return Status::Ok();
    NYADS_RETURN_IF_ERROR(drain());
    it = streams.find(stream_key(kUserStream, ns_id));
    if (it == streams.end()) return Status::Ok();
    DataZone& z = zones[it->second.zone_index];
    return close_stream_zone(z, z.valid != 0);
  }

  // ----- lifetimes -------------------------------------------------------------------------
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
  std::uint32_t birth_now(std::uint32_t streak) const { return (static_cast<std::uint32_t>(write_clock >> 4) & kClockMask) | streak << kClockBits; }
  // How long ago (in user blocks written) data born at `born` was written; wraps after 2^34
  // blocks (64 TiB), when very old data looks young once.
  std::uint64_t age_of(std::uint32_t born) const { return std::uint64_t{(birth_now(0) - born) & kClockMask} << 4; }
  // N, refreshed every N/16 blocks written (at most every 4096: it sums every namespace's count).
  double lifetime_unit() {
    if (live_estimate == 0 || write_clock - live_estimate_clock >= std::min<std::uint64_t>(4096, live_estimate / 16 + 1)) {
      live_estimate = std::max<std::uint64_t>(1, live_blocks());
      live_estimate_clock = write_clock;
    }
    return static_cast<double>(live_estimate);
  }
  // Data written one after the other joins one extent (saving map memory) only when their
  // births are within N/16 blocks (close enough to share a lifetime class) and of one streak.
  std::uint32_t join_within() { return static_cast<std::uint32_t>(std::min(lifetime_unit() / 256, double{kClockMask / 2})); }
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
    if (static_cast<double>(age_of(old.front().born)) >= kHotLifetimes * lifetime_unit()) return {available(kUserColdStream), 0};
    const std::uint32_t streak = std::min(kMaxStreak, brief_streak(old.front().born) + 1);
    return {streak >= kHotStreak ? kUserStream : available(kUserColdStream), streak};
  }
  // The stream the cleaner copies data born at `born` into. With no more free zones than the
  // reserve, a stream whose zone is full does not take a new one while another cleaner stream
  // has room (the nearest in age): copying one zone then needs at most one new zone, as with
  // a single cleaner stream, and cleaning never runs out of the reserve halfway.
  Stream cleaner_stream_for(std::uint32_t born) {
    const double age = static_cast<double>(age_of(born)), unit = lifetime_unit();
    const Stream want = available(age < kYoungAge * unit ? kCleanerStream : age < kColdAge * unit ? kColdStream : kFrozenStream);
    if (has_room(want) || free_zones() > sb.reserved_data_zones) return want;
    for (Stream other : want == kCleanerStream ? std::array{kColdStream, kFrozenStream} : want == kColdStream ? std::array{kCleanerStream, kFrozenStream}
                                                                                                        : std::array{kColdStream, kCleanerStream})
      if (has_room(other)) return other;
    return want;
  }
  // Whether the (shared) stream's zone takes another 4 KiB block, as place() sees it.
  bool has_room(Stream s) const {
    auto it = streams.find(stream_key(s, 0));
    return it != streams.end() && room_blocks(zones[it->second.zone_index]) > 0;
  }
  // 4 KiB blocks still free in a zone.
  std::uint64_t room_blocks(const DataZone& z) const { return (z.start + sb.zone_capacity - z.wp) / per; }

  // A zone of the stream with room, and how many 4 KiB blocks fit in it (up to `want`).
  Result<std::pair<DataZone*, std::uint64_t>> place(Stream stream, std::uint32_t ns_id, std::uint64_t want) {
    const std::uint32_t clean_below = hard_watermark();
    const std::uint64_t key = stream_key(stream, ns_id);
    for (int attempt = 0; attempt < 64; ++attempt) {
      if (auto it = streams.find(key); it != streams.end()) {
        DataZone& z = zones[it->second.zone_index];
        const std::uint64_t room = room_blocks(z);
        if (room > 0) {
          it->second.last_use = ++stream_clock;
          return std::make_pair(&z, std::min(room, want));
        }
        NYADS_RETURN_IF_ERROR(close_stream_zone(z, false));  // full: it leaves the stream
      }
      // A new zone. Users may not take the cleaner's reserve; the cleaner may.
      const std::uint32_t free = free_zones();
      if (is_user(stream) && free <= clean_below && !cleaning) {
        if (!resets_after_commit.empty()) {  // cleaned zones wait for a commit: cheaper than cleaning more
          NYADS_RETURN_IF_ERROR(commit());
          if (free_zones() > clean_below) continue;
        }
        Status cleaned = clean_until_free(clean_below + 1);
        if (!cleaned.ok() && cleaned.code() != Code::kNotFound) return cleaned;
      }
      const std::uint32_t floor = is_user(stream) ? sb.reserved_data_zones : 0;
      if (free_zones() <= floor) {
        if (!resets_after_commit.empty()) {  // zones emptied but not yet reset: commit frees them
          NYADS_RETURN_IF_ERROR(commit());
          continue;
        }
        return Status(Code::kNoSpace, "every data zone holds live data (" + n(free_zones()) + " free, " +
                                          n(sb.reserved_data_zones) + " reserved for cleaning); trim or delete to free space");
      }
      // Too many namespaces writing at once for the device's zone limits: the stream used
      // least recently gives up its zone (finished: the rest of it is lost to cleaning).
      if (stream == kUserStream) {
        std::size_t open_user = 0;
        for (const auto& [k, st] : streams) open_user += (k >> 32) == kUserStream;
        if (open_user >= user_stream_budget()) {
          NYADS_RETURN_IF_ERROR(drain());  // appends may be in flight to the zone about to finish
          auto victim = streams.end();
          for (auto it = streams.begin(); it != streams.end(); ++it)
            if ((it->first >> 32) == kUserStream && (victim == streams.end() || it->second.last_use < victim->second.last_use)) victim = it;
          if (victim != streams.end()) NYADS_RETURN_IF_ERROR(close_stream_zone(zones[victim->second.zone_index], true));
          continue;
        }
      }
      for (std::uint32_t i = 0; i < zones.size(); ++i) {
        if (!is_free(zones[i])) continue;
        zones[i].stream = stream;
        zones[i].stream_key = key;
        streams[key] = {i, ++stream_clock};
        break;
      }
    }
    return IoError("could not place data after many attempts");
  }

  // Appends a user's whole 4 KiB blocks and maps them.
  Status append_blocks(UserPlacement to, std::uint32_t ns_id, std::uint64_t vblock, const std::uint8_t* data, std::uint64_t blocks) {
    const Geometry& g = dev->geometry();
    const std::uint64_t max_blocks = std::max<std::uint64_t>(1, std::min(g.max_append_blocks, g.max_io_blocks) / per);
    while (blocks > 0) {
      auto placed = place(to.stream, ns_id, std::min(blocks, max_blocks));
      if (!placed.ok()) return placed.status();
      auto [zone, k] = *placed;
      std::vector<std::uint32_t> sums(k);
      for (std::uint64_t i = 0; i < k; ++i) sums[i] = fmt::data_checksum(seed, ns_id, vblock + i, {data + i * kBlock, kBlock});
      AlignedBuffer buf(k * kBlock);
      std::memcpy(buf.data(), data, k * kBlock);
      auto lba = SyncDevice(*dev).append(zone->start, static_cast<std::uint32_t>(k * per), buf.data());
      if (!lba.ok()) return lba.status().with_context("appending to zone " + n(zone_number(*zone)));
      map_appended(ns_id, vblock, *lba, static_cast<std::uint32_t>(zone - zones.data()), sums, to.streak);
      data += k * kBlock;
      vblock += k;
      blocks -= k;
    }
    return Status::Ok();
  }

  Status check_range(const Namespace* s, std::uint64_t offset, std::uint64_t length, const char* what) const {
    if (s == nullptr) return Status(Code::kNotFound, std::string(what) + ": no such namespace");
    if (s->flags & fmt::kNamespaceQuarantined) return IoError(std::string(what) + ": namespace '" + s->name + "' is quarantined (run fsck.nyads)");
    if (length == 0) return InvalidArgument(std::string(what) + " of 0 bytes");
    if (offset % s->block_size != 0 || length % s->block_size != 0)
      return InvalidArgument(std::string(what) + " at byte " + n(offset) + " of " + n(length) + " bytes is not aligned to the namespace's " +
                             n(s->block_size) + "-byte blocks");
    if (offset > s->size || length > s->size - offset)
      return OutOfRange(std::string(what) + " at byte " + n(offset) + " of " + n(length) + " bytes runs past the end of namespace '" + s->name +
                        "' (" + n(s->size) + " bytes)");
    return Status::Ok();
  }

  // Reads whole 4 KiB blocks, verifying each against its checksum.
  Status read_blocks(Namespace& s, std::uint64_t vblock, std::uint64_t blocks, std::uint8_t* out) {
    for (const auto& p : s.map.lookup(vblock, blocks)) {
      std::uint8_t* dst = out + (p.vblock - vblock) * kBlock;
      if (!p.mapped) {
        std::memset(dst, 0, p.blocks * kBlock);
        continue;
      }
      AlignedBuffer buf(p.blocks * kBlock);
      NYADS_RETURN_IF_ERROR(SyncDevice(*dev).read(p.lba, static_cast<std::uint32_t>(p.blocks * per), buf.data()));
      for (std::uint64_t i = 0; i < p.blocks; ++i) {
        if (fmt::data_checksum(seed, s.id, p.vblock + i, {buf.data() + i * kBlock, kBlock}) != p.checksums[i]) {
          ++stats.checksum_errors;
          return IoError("checksum mismatch in namespace '" + s.name + "' block " + n(p.vblock + i) + " (device block " + n(p.lba + i * per) +
                         ", zone " + n(dev->geometry().zone_of(p.lba + i * per)) + ")");
        }
      }
      std::memcpy(dst, buf.data(), p.blocks * kBlock);
    }
    return Status::Ok();
  }

  // Writes a byte range; partial 4 KiB blocks (512-byte namespaces) are read, merged, rewritten.
  Status write_range(Namespace& s, std::uint64_t offset, const std::uint8_t* data, std::uint64_t length) {
    const std::uint64_t first = offset / kBlock, last = (offset + length - 1) / kBlock;
    const std::uint64_t blocks = last - first + 1;
    const UserPlacement to = user_placement(s, first);
    if (offset % kBlock == 0 && length % kBlock == 0) return append_blocks(to, s.id, first, data, blocks);
    std::vector<std::uint8_t> buf(blocks * kBlock);
    NYADS_RETURN_IF_ERROR(read_blocks(s, first, 1, buf.data()));
    if (blocks > 1) NYADS_RETURN_IF_ERROR(read_blocks(s, last, 1, buf.data() + (blocks - 1) * kBlock));
    std::memcpy(buf.data() + offset % kBlock, data, length);
    return append_blocks(to, s.id, first, buf.data(), blocks);
  }

  // ----- journal: group commit -------------------------------------------------------------
  // Makes every write, trim and namespace change so far durable: data first, then the journal
  // blocks that describe it, each behind a flush, then resets zones the records emptied.
  Status commit() {
    if (!journal_failure.ok()) return journal_failure;
    NYADS_RETURN_IF_ERROR(drain());  // the synchronous I/O below must be the device's only I/O
    MetaIo io(*dev);
    if (data_unflushed) {
      NYADS_RETURN_IF_ERROR(io.flush());
      data_unflushed = false;
    }
    if (!pending.empty()) {
      Status written = write_journal(io);
      if (!written.ok()) {
        journal_failure = written.with_context("the journal lost records (no further commit until the volume is opened again)");
        return journal_failure;
      }
    }
    ++stats.flushes;
    // The records that emptied these zones are durable now: reset them.
    std::vector<std::uint32_t> resets;
    resets.swap(resets_after_commit);
    std::sort(resets.begin(), resets.end());
    resets.erase(std::unique(resets.begin(), resets.end()), resets.end());
    for (std::uint32_t z : resets) {
      DataZone& d = zones[z - sb.data_zones.first];
      if (d.valid == 0 && d.stream == kNoStream && d.wp != d.start) NYADS_RETURN_IF_ERROR(reset_zone(z));
    }
    return maybe_checkpoint();
  }

  // Packs the pending records into journal blocks, appends them at the head, flushes.
  Status write_journal(MetaIo& io) {
    // Pack records into blocks.
    std::vector<fmt::JournalBlock> blocks;
    std::size_t used = fmt::kJournalPayloadBytes;
    for (auto& r : pending) {
      const std::size_t sz = fmt::encoded_size(r);
      if (used + sz > fmt::kJournalPayloadBytes) {
        blocks.push_back({0, {}});
        used = 0;
      }
      blocks.back().records.push_back(std::move(r));
      used += sz;
    }
    pending.clear();
    pending_bytes = 0;
    std::size_t i = 0;
    while (i < blocks.size()) {
      const std::uint64_t per_zone = sb.meta_blocks_per_zone();
      if (head.index >= per_zone) {
        NYADS_RETURN_IF_ERROR(next_journal_zone());
        continue;
      }
      const std::size_t k = std::min<std::size_t>(blocks.size() - i, per_zone - head.index);
      AlignedBuffer buf(k * fmt::kMetaBlockSize);
      for (std::size_t j = 0; j < k; ++j) {
        blocks[i + j].seq = head.seq + j;
        NYADS_RETURN_IF_ERROR(fmt::encode_journal_block(blocks[i + j], seed, buf.span().subspan(j * fmt::kMetaBlockSize, fmt::kMetaBlockSize)));
      }
      auto at = io.write(head.zone, buf);
      if (!at.ok()) return at.status().with_context("writing the journal");
      if (*at != head.index) return IoError("journal zone " + n(head.zone) + " write pointer at block " + n(*at) + ", expected " + n(head.index));
      head.index += k;
      head.seq += k;
      i += k;
      stats.journal_blocks_written += k;
      stats.metadata_bytes_written += k * fmt::kMetaBlockSize;
      journal_blocks_since_checkpoint += k;
    }
    return io.flush();
  }

  // The journal head zone is full: go on in the next zone of the ring, which is empty, since a
  // checkpoint is taken before the ring runs out.
  Status next_journal_zone() {
    const std::uint32_t next = head.zone + 1 == sb.journal_zones.end() ? sb.journal_zones.first : head.zone + 1;
    MetaIo io(*dev);
    auto written = io.written(next);
    if (!written.ok()) return written.status();
    if (*written != 0) return IoError("journal zone " + n(next) + " is not empty: the journal ring is full");
    head = {next, 0, head.seq};
    return Status::Ok();
  }

  Status maybe_checkpoint() {
    const std::uint64_t per_zone = sb.meta_blocks_per_zone();
    // Keep one journal zone empty: checkpoint when the blocks since the last checkpoint would
    // fill all but one of the ring's zones, or after the configured amount.
    // A checkpoint costs as many blocks as the maps take, so wait for at least four times
    // that much journal: checkpoints then add at most a quarter to the metadata written.
    const std::uint64_t ring_limit = (sb.journal_zones.count - 1) * per_zone - per_zone / 2;
    const std::uint64_t wanted = std::max(options.checkpoint_after_journal_blocks, 4 * last_checkpoint_blocks);
    if (journal_blocks_since_checkpoint >= std::min(wanted, ring_limit)) return checkpoint();
    return Status::Ok();
  }

  // ----- checkpoints -----------------------------------------------------------------------
  Status checkpoint() {
    const bool nested = in_checkpoint;
    if (nested) return Status::Ok();
    in_checkpoint = true;
    Status st = write_new_checkpoint();
    in_checkpoint = false;
    return st;
  }
  bool in_checkpoint = false;

  Status write_new_checkpoint() {
    NYADS_RETURN_IF_ERROR(commit());
    // Nothing is in flight now: zones that take no more writes drop their lists' growth room
    // (closing a zone cannot: appends to it may still be completing).
    for (auto& z : zones)
      if (z.stream == kNoStream) z.owners.shrink_to_fit();
    MetaIo io(*dev);
    // Replay will start at the journal's head; if its zone is full, at the next zone.
    auto written = io.written(head.zone);
    if (!written.ok()) return written.status();
    head.index = *written;  // past a torn block recovery left behind
    if (head.index >= sb.meta_blocks_per_zone()) NYADS_RETURN_IF_ERROR(next_journal_zone());
    CheckpointContent content;
    for (const auto& [id, x] : namespaces) content.namespaces.push_back({x.id, x.flags, x.block_size, x.size, x.map.mapped_blocks(), x.name});
    content.extents_of = [&](const ExtentVisitor& visit) {
      for (const auto& entry : namespaces) {
        const std::uint32_t id = entry.first;
        entry.second.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) { visit(id, vblock, lba, sums); });
      }
    };
    for (const auto& z : zones) {
      // The format knows hot and cold streams: the users' own are hot, the rest cold.
      const std::uint8_t stream_flag = z.stream == kNoStream ? 0 : z.stream == kUserStream ? 1 : 2;
      content.zones.push_back({zone_number(z), stream_flag, static_cast<std::uint32_t>(z.valid * per), z.last_seq});
    }
    const std::vector<CheckpointBody> bodies = pack_checkpoint(content, per, sb.packs_extents());
    fmt::CheckpointCommit commit_fields;
    commit_fields.next_ns_id = next_ns_id;
    commit_fields.journal_seq = head.seq;
    commit_fields.journal_zone = head.zone;
    commit_fields.journal_block = static_cast<std::uint32_t>(head.index);
    commit_fields.created = static_cast<std::uint64_t>(std::time(nullptr));
    auto used = write_checkpoint_beside(*dev, sb, checkpoint_seq + 1, bodies, commit_fields, newest_checkpoint_zones);
    if (!used.ok()) return used.status();
    ++checkpoint_seq;
    newest_checkpoint_zones = std::move(*used);
    ++stats.checkpoints;
    stats.metadata_bytes_written += (bodies.size() + 1) * fmt::kMetaBlockSize;
    last_checkpoint_blocks = bodies.size() + 1;
    journal_blocks_since_checkpoint = 0;
    last_checkpoint_time = std::chrono::steady_clock::now();
    // The journal before the new replay start is obsolete: reset its other zones.
    for (std::uint32_t z = sb.journal_zones.first; z < sb.journal_zones.end(); ++z) {
      if (z == head.zone) continue;
      auto w = io.written(z);
      if (w.ok() && *w > 0) NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kReset, z));
    }
    return Status::Ok();
  }

  // ----- cleaning --------------------------------------------------------------------------
  // Cost-benefit (LFS): clean the zone maximising (1 - u) * age / (1 + u), u its live fraction.
  DataZone* pick_victim() {
    DataZone* best = nullptr;
    double best_score = 0;
    const double cap = static_cast<double>(capacity_blocks());
    for (auto& z : zones) {
      if (z.stream != kNoStream || z.wp == z.start || z.valid >= capacity_blocks()) continue;
      if (z.valid == 0) continue;  // empty already: the next commit resets it
      if (job && &z == &zones[job->zone_index]) continue;
      const double u = static_cast<double>(z.valid) / cap;
      const double age = static_cast<double>(head.seq - std::min(head.seq, z.last_seq)) + 1;
      const double score = (1 - u) * age / (1 + u);
      if (!best || score > best_score) {
        best = &z;
        best_score = score;
      }
    }
    return best;
  }

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
  Result<bool> clean_slice(std::uint64_t budget) {
    DataZone& victim = zones[job->zone_index];
    const std::uint64_t lo = victim.start, hi = victim.start + sb.zone_size;
    std::uint64_t copied = 0;
    std::array<MoveBatch, 3> batches;  // by target stream: young, cold, frozen
    while (job && job->next_owner < victim.owners.size() && (copied == 0 || copied < budget)) {
      const DataZone::Owner o = victim.owners[job->next_owner++];
      Namespace* s = ns(o.ns);
      if (s == nullptr) continue;
      const std::uint64_t o_vblock = o.vblock(), o_lba = victim.start + o.offset;
      // Still live: the namespace maps these blocks to exactly where this write put them.
      // (Only values: moving a run changes the map, which would leave a Piece's checksum pointer dangling.)
      struct LiveRun {
        std::uint64_t vblock, blocks;
        std::uint32_t born;
      };
      std::vector<LiveRun> live;
      for (const auto& p : s->map.lookup(o_vblock, o.blocks()))
        if (p.mapped && p.lba == o_lba + (p.vblock - o_vblock) * per && p.lba >= lo && p.lba < hi) live.push_back({p.vblock, p.blocks, p.born});
      for (const auto& run : live) {
        const std::uint64_t vblock = run.vblock, blocks = run.blocks;
        const Stream target = cleaner_stream_for(run.born);
        MoveBatch& moves = batches[target - kCleanerStream];
        if (moves.ns != o.ns || moves.blocks() + blocks > kMoveBatchBlocks) NYADS_RETURN_IF_ERROR(flush_moves(target, moves));
        // read_blocks verifies every block: a damaged one stops the cleaner here, never moves.
        NYADS_RETURN_IF_ERROR(moves.add(*s, vblock, blocks, run.born, [&](std::uint8_t* out) { return read_blocks(*s, vblock, blocks, out); }));
        copied += blocks;
      }
    }
    for (std::size_t t = 0; t < batches.size(); ++t) NYADS_RETURN_IF_ERROR(flush_moves(static_cast<Stream>(kCleanerStream + t), batches[t]));
    if (!job) return true;  // the zone emptied and was reset meanwhile
    if (job->next_owner < victim.owners.size()) return false;
    job.reset();
    ++stats.zones_cleaned;
    if (victim.valid == 0) resets_after_commit.push_back(zone_number(victim));
    // The zone is reset once the copies' records are durable. Measured: deferring that to the
    // next commit (one flush for several zones) made each flush of an emulated file longer by
    // as much, and 4 KiB QD32 writes slower (58k -> 24k IOPS through NBD): commit now.
    NYADS_RETURN_IF_ERROR(commit());
    return true;
  }

  // Makes sure a zone is being cleaned: the one in progress, or the best victim.
  // kNotFound when no zone is worth cleaning.
  Status start_job() {
    NYADS_RETURN_IF_ERROR(drain());
    if (job) return Status::Ok();
    DataZone* victim = pick_victim();
    if (victim == nullptr) return Status(Code::kNotFound, "no zone is worth cleaning");
    job = CleanJob{static_cast<std::uint32_t>(victim - zones.data()), 0, victim->valid};
    live_estimate = 0;  // N afresh for the ages of what it copies (trims and deletes move it too)
    return Status::Ok();
  }

  // A slice of cleaning: goes on with the zone being cleaned, or starts on the best victim.
  // With `written` blocks just written by users, the slice copies enough to keep pace: to free
  // a zone that is u live, u/(1-u) blocks are copied per block of room gained; half as much
  // again for margin, and never less than twice what was written. Given a budget instead
  // (written = 0), it copies that. kNotFound when no zone is worth cleaning.
  Status clean_some(std::uint64_t budget, std::uint64_t written = 0) {
    if (cleaning) return Status::Ok();
    NYADS_RETURN_IF_ERROR(start_job());
    if (written > 0) {
      const double u = std::min(0.95, static_cast<double>(job->start_valid) / static_cast<double>(capacity_blocks()));
      budget = static_cast<std::uint64_t>(static_cast<double>(written) * std::max(2.0, 1.5 * u / (1 - u))) + 16;
    }
    cleaning = true;
    auto done = clean_slice(budget);
    cleaning = false;
    return done.status();
  }

  // One whole zone cleaned (the one in progress, if any).
  Status clean_step() {
    if (cleaning) return Status::Ok();
    NYADS_RETURN_IF_ERROR(start_job());
    cleaning = true;
    Result<bool> done = false;
    while (done.ok() && !*done) done = clean_slice(UINT64_MAX);
    cleaning = false;
    return done.ok() ? Status::Ok() : done.status();
  }

  // Free zones below which cleaning runs in slices beside the writes (soft), and below which a
  // write waits for whole zones to be cleaned (hard: clean_below_free_zones).
  std::uint32_t hard_watermark() const { return options.clean_below_free_zones ? options.clean_below_free_zones : sb.reserved_data_zones + 2; }
  std::uint32_t soft_watermark() const { return hard_watermark() + 2; }
  std::size_t reset_batch_zones() const { return std::max<std::size_t>(4, sb.data_zones.count / 32); }

  Status clean_until_free(std::uint32_t want) {
    for (int rounds = 0; rounds < 64 && free_zones() < want; ++rounds) {
      Status st = clean_step();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  // ----- trim and zeroing ----------------------------------------------------------------
  Status trim_range(Namespace& x, std::uint64_t offset, std::uint64_t length) {
    // Whole 4 KiB blocks are unmapped; the partial ends of a 512-byte namespace are zeroed.
    const std::uint64_t first = (offset + kBlock - 1) / kBlock, end = (offset + length) / kBlock;
    if (end > first) {
      release(x.map.unmap(first, end - first));
      add(fmt::record::Trim{x.id, first, end - first});
    }
    const std::uint64_t head_end = std::min(offset + length, first * kBlock);
    if (head_end > offset) {
      std::vector<std::uint8_t> zeros(head_end - offset);
      NYADS_RETURN_IF_ERROR(write_range(x, offset, zeros.data(), zeros.size()));
    }
    const std::uint64_t tail_start = std::max(offset, std::max(end, first) * kBlock);
    if (offset + length > tail_start && tail_start >= head_end) {
      std::vector<std::uint8_t> zeros(offset + length - tail_start);
      NYADS_RETURN_IF_ERROR(write_range(x, tail_start, zeros.data(), zeros.size()));
    }
    return Status::Ok();
  }

  Status write_zeroes_range(Namespace& x, std::uint64_t offset, std::uint64_t length, bool no_hole) {
    if (!no_hole) return trim_range(x, offset, length);
    constexpr std::uint64_t kChunk = 1 << 20;
    std::vector<std::uint8_t> zeros(std::min(length, kChunk));
    for (std::uint64_t done = 0; done < length; done += zeros.size()) {
      const std::uint64_t k = std::min<std::uint64_t>(zeros.size(), length - done);
      NYADS_RETURN_IF_ERROR(write_range(x, offset + done, zeros.data(), k));
    }
    stats.user_bytes_written += length;
    return Status::Ok();
  }

  // ----- batches: many requests' device I/O in flight at once ----------------------------
  // A batch turns its aligned reads and writes into chunks (one device I/O each), queued on
  // the device as they are made. Completions are applied in chunk order when the batch drains:
  // at its end, or earlier when the store needs synchronous I/O (placing data in a new zone
  // may clean or commit; trims and partial blocks take the synchronous path).
  struct Chunk {
    std::size_t request = 0;
    bool is_write = false;
    std::uint32_t ns = 0;
    std::uint64_t vblock = 0;
    std::uint64_t blocks = 0;  // 4 KiB blocks
    std::uint64_t lba = 0;     // read: where; write: where the append landed
    std::uint32_t zone_index = 0;      // write: the data zone appended to
    std::uint32_t streak = 0;          // write: brief lives in a row before it (UserPlacement)
    std::vector<std::uint32_t> sums;   // write: computed; read: expected
    std::uint8_t* target = nullptr;    // read: the caller's buffer
    AlignedBuffer bounce;              // when the caller's buffer is not aligned for DMA
    bool done = false;
    Status status;
  };
  struct Batch {
    std::span<StoreRequest> requests;
    std::vector<Chunk> chunks;
    std::size_t applied = 0;  // chunks before this one are applied
    std::uint64_t growth = 0;  // live blocks the batch's writes may add (not yet in the maps)
    std::map<std::uint32_t, std::uint64_t> thin_growth;  // ... of it, by thin namespace
  };
  Batch* batch = nullptr;

  static bool dma_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % AlignedBuffer::kAlignment == 0; }

  void reap_some(std::size_t min_count) {
    IoCompletion done[64];
    const std::size_t got = dev->reap(done, min_count);
    for (std::size_t i = 0; i < got; ++i) {
      Chunk& c = batch->chunks[done[i].tag];
      c.done = true;
      c.status = std::move(done[i].status);
      if (c.is_write) c.lba = done[i].lba;
    }
  }

  void submit_chunk(std::size_t index) {
    Chunk& c = batch->chunks[index];
    IoRequest io;
    io.op = c.is_write ? IoOp::kAppend : IoOp::kRead;
    io.lba = c.is_write ? zones[c.zone_index].start : c.lba;
    io.blocks = static_cast<std::uint32_t>(c.blocks * per);
    io.buffer = c.bounce.size() ? c.bounce.data() : c.target;
    io.tag = index;
    for (;;) {
      Status st = dev->submit(io);
      if (st.code() == Code::kBusy) {
        reap_some(1);
        continue;
      }
      if (!st.ok()) {
        c.done = true;
        c.status = st;
      }
      return;
    }
  }

  // Reaps everything in flight and applies completed chunks in order.
  Status drain() {
    if (batch == nullptr) return Status::Ok();
    while (dev->in_flight() > 0) reap_some(dev->in_flight());
    std::vector<std::uint32_t> broken_zones;
    for (; batch->applied < batch->chunks.size(); ++batch->applied) {
      Chunk& c = batch->chunks[batch->applied];
      StoreRequest& r = batch->requests[c.request];
      if (!c.done) c.status = IoError("the device lost a request");
      if (!c.status.ok()) {
        if (r.result.ok()) r.result = c.status.with_context(c.is_write ? "writing" : "reading");
        if (c.is_write) broken_zones.push_back(c.zone_index);
        continue;
      }
      if (c.is_write) {
        map_appended(c.ns, c.vblock, c.lba, c.zone_index, c.sums, c.streak);
        continue;
      }
      const std::uint8_t* got = c.bounce.size() ? c.bounce.data() : c.target;
      Namespace* s = ns(c.ns);
      for (std::uint64_t i = 0; i < c.blocks && s != nullptr; ++i) {
        if (fmt::data_checksum(seed, c.ns, c.vblock + i, {got + i * kBlock, kBlock}) == c.sums[i]) continue;
        ++stats.checksum_errors;
        if (r.result.ok())
          r.result = IoError("checksum mismatch in namespace '" + s->name + "' block " + n(c.vblock + i) + " (device block " + n(c.lba + i * per) +
                             ", zone " + n(dev->geometry().zone_of(c.lba + i * per)) + ")");
        break;
      }
      if (c.bounce.size() && r.result.ok()) std::memcpy(c.target, c.bounce.data(), c.blocks * kBlock);
    }
    // A failed append leaves the zone's write pointer unknown: finish the zone, so nothing
    // more goes there and it holds no active resource; the cleaner reclaims what it holds.
    for (std::uint32_t i : broken_zones) {
      DataZone& z = zones[i];
      if (z.stream != kNoStream) streams.erase(z.stream_key);
      z.stream = kNoStream;
      z.stream_key = 0;
      (void)dev->manage_zone(ZoneAction::kFinish, zone_number(z));
      z.wp = z.start + sb.zone_capacity;
      if (z.valid == 0) resets_after_commit.push_back(zone_number(z));
    }
    // Everything admitted so far is in the maps now (or failed): admission counts from them.
    batch->growth = 0;
    batch->thin_growth.clear();
    return Status::Ok();
  }

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
  Status flush_moves(Stream target, MoveBatch& b) {
    const Geometry& g = dev->geometry();
    const std::uint64_t max_blocks = std::max<std::uint64_t>(1, std::min(g.max_append_blocks, g.max_io_blocks) / per);
    std::size_t run = 0;
    std::uint64_t into_run = 0, done = 0;
    while (done < b.blocks()) {
      auto placed = place(target, b.ns, std::min(b.blocks() - done, max_blocks));
      if (!placed.ok()) return placed.status();
      auto [zone, k] = *placed;
      AlignedBuffer buf(k * kBlock);
      std::memcpy(buf.data(), b.data.data() + done * kBlock, k * kBlock);
      auto lba = SyncDevice(*dev).append(zone->start, static_cast<std::uint32_t>(k * per), buf.data());
      if (!lba.ok()) return lba.status().with_context("appending to zone " + n(zone_number(*zone)));
      const std::uint32_t zone_index = static_cast<std::uint32_t>(zone - zones.data());
      fmt::record::Moved moved{b.ns, *lba, {}};
      for (std::uint64_t at = 0; at < k;) {
        const fmt::record::Moved::Run& r = b.runs[run];
        const std::uint64_t take = std::min<std::uint64_t>(r.blocks - into_run, k - at);
        const std::uint64_t vblock = r.vblock + into_run;
        account_appended(target, b.ns, vblock, *lba + at * per, zone_index, take);
        if (Namespace* s = ns(b.ns))
          release(s->map.map(vblock, *lba + at * per, std::span(b.sums).subspan(done + at, take), b.borns[run], join_within(), kClockMask));
        else
          release({{*lba + at * per, take}});  // deleted meanwhile: dead at once
        if (moved.runs.size() == fmt::kMaxMovedRunsPerRecord) {
          const std::uint64_t next_lba = *lba + at * per;
          add(std::exchange(moved, fmt::record::Moved{b.ns, next_lba, {}}));
        }
        moved.runs.push_back({vblock, static_cast<std::uint32_t>(take)});
        at += take;
        into_run += take;
        if (into_run == r.blocks) {
          ++run;
          into_run = 0;
        }
      }
      add(std::move(moved));
      done += k;
    }
    b = MoveBatch{};
    return Status::Ok();
  }

  // Accounts for k blocks an append put at lba in their zone.
  void account_appended(Stream stream, std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba, std::uint32_t zone_index, std::uint64_t k) {
    DataZone& zone = zones[zone_index];
    zone.wp = std::max(zone.wp, lba + k * per);
    zone.valid += k;
    // A zone's age is that of its newest write, the cleaner's copies included: carrying the
    // copied data's own age over (LFS) measured worse here under uniform traffic (3.86 vs 3.34).
    zone.last_seq = head.seq;
    zone.add_owner(ns_id, vblock, lba, k, per);
    data_unflushed = true;
    (is_user(stream) ? stats.data_bytes_written : stats.cleaner_bytes_written) += k * kBlock;
  }

  // Maps blocks a user's append put at lba, and accounts for them in their zone. `streak`: the
  // brief lives in a row that led to this data (UserPlacement).
  void map_appended(std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba, std::uint32_t zone_index, std::span<const std::uint32_t> sums,
                    std::uint32_t streak) {
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
  Status queue_write(std::size_t request, Namespace& s, std::uint64_t vblock, const std::uint8_t* data, std::uint64_t blocks) {
    const Geometry& g = dev->geometry();
    const std::uint64_t max_blocks = std::max<std::uint64_t>(1, std::min(g.max_append_blocks, g.max_io_blocks) / per);
    const UserPlacement to = user_placement(s, vblock);
    while (blocks > 0) {
      auto placed = place(to.stream, s.id, std::min(blocks, max_blocks));
      if (!placed.ok()) return placed.status();
      auto [zone, k] = *placed;
      Chunk c;
      c.request = request;
      c.is_write = true;
      c.ns = s.id;
      c.vblock = vblock;
      c.blocks = k;
      c.zone_index = static_cast<std::uint32_t>(zone - zones.data());
      c.streak = to.streak;
      c.sums.resize(k);
      for (std::uint64_t i = 0; i < k; ++i) c.sums[i] = fmt::data_checksum(seed, s.id, vblock + i, {data + i * kBlock, kBlock});
      if (dma_aligned(data)) {
        c.target = const_cast<std::uint8_t*>(data);  // only read from: the device writes it out
      } else {
        c.bounce = AlignedBuffer::uninitialized(k * kBlock);
        std::memcpy(c.bounce.data(), data, k * kBlock);
      }
      zone->wp += k * per;  // reserve the room: appends in flight land somewhere below here
      batch->chunks.push_back(std::move(c));
      submit_chunk(batch->chunks.size() - 1);
      data += k * kBlock;
      vblock += k;
      blocks -= k;
    }
    return Status::Ok();
  }

  // Queues the reads of an aligned read; unmapped blocks are zeroed at once.
  void queue_read(std::size_t request, Namespace& s, std::uint64_t vblock, std::uint64_t blocks, std::uint8_t* out) {
    const Geometry& g = dev->geometry();
    const std::uint64_t max_blocks = std::max<std::uint64_t>(1, g.max_io_blocks / per);
    for (const auto& p : s.map.lookup(vblock, blocks)) {
      std::uint8_t* dst = out + (p.vblock - vblock) * kBlock;
      if (!p.mapped) {
        std::memset(dst, 0, p.blocks * kBlock);
        continue;
      }
      for (std::uint64_t i = 0; i < p.blocks; i += max_blocks) {
        Chunk c;
        c.request = request;
        c.ns = s.id;
        c.vblock = p.vblock + i;
        c.blocks = std::min(max_blocks, p.blocks - i);
        c.lba = p.lba + i * per;
        c.sums.assign(p.checksums + i, p.checksums + i + c.blocks);
        c.target = dst + i * kBlock;
        if (!dma_aligned(c.target)) c.bounce = AlignedBuffer::uninitialized(c.blocks * kBlock);
        batch->chunks.push_back(std::move(c));
        submit_chunk(batch->chunks.size() - 1);
      }
    }
  }

  // Thin provisioning's limit: live data may fill the data zones except a headroom — the
  // cleaner's reserve, the unwritten rest of each open stream's zone, and one zone more — so
  // that at least a zone's worth of dead blocks always exists and overwrites (which add no
  // live data) can be placed by cleaning the blocks they kill. A write that would add live
  // blocks past it gets ENOSPC; overwrites, trims and other namespaces' I/O keep working.
  std::uint64_t live_limit_blocks() const {
    const std::uint32_t headroom = sb.reserved_data_zones + 1 + static_cast<std::uint32_t>(std::max<std::size_t>(streams.size(), 1));
    const std::uint32_t usable = sb.data_zones.count > headroom ? sb.data_zones.count - headroom : 0;
    return std::uint64_t{usable} * (sb.zone_capacity / (kBlock / sb.block_size));
  }
  std::uint64_t live_blocks() const {
    std::uint64_t live = 0;
    for (const auto& [id, x] : namespaces) live += x.map.mapped_blocks();
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
    const std::size_t streams_max = std::min<std::size_t>(namespace_count, user_stream_budget()) + shared_streams();
    const std::uint64_t headroom = sb.reserved_data_zones + 1 + streams_max;
    const std::uint64_t usable = sb.data_zones.count > headroom ? sb.data_zones.count - headroom : 0;
    return usable * (sb.zone_capacity / (kBlock / sb.block_size));
  }
  // What a namespace takes of the volume: its promise, or what it has written if that is more.
  std::uint64_t claimed_blocks(const Namespace& x, std::uint64_t unapplied = 0) const {
    return std::max(x.map.mapped_blocks() + unapplied, is_thin(x) ? 0 : x.size / kBlock);
  }
  std::uint64_t claimed_total() const {
    std::uint64_t total = 0;
    for (const auto& [id, x] : namespaces) total += claimed_blocks(x, batch && batch->thin_growth.contains(id) ? batch->thin_growth.at(id) : 0);
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
  static std::string mib(std::uint64_t blocks) { return n(blocks * kBlock >> 20) + " MiB"; }
  // ENOSPC unless a namespace can be promised `blocks` (replacing a claim of `was`, for a
  // resize; 0 for a new thin one, which still takes headroom for its stream while promises
  // are outstanding).
  Status admit_promise(std::string_view name, std::uint64_t blocks, std::uint64_t was, std::size_t namespace_count) const {
    const std::uint64_t claimed = claimed_total() - was, limit = promise_limit_blocks(namespace_count);
    if (claimed + blocks <= limit || (blocks == 0 && !any_promised())) return Status::Ok();
    return Status(Code::kNoSpace, "namespace '" + std::string(name) + "' needs " + mib(blocks) + ", but only " + mib(limit - std::min(limit, claimed)) +
                                      " of the volume's " + mib(limit) + " are neither promised to other namespaces nor written by thin ones; "
                                      "make it smaller, or thin (--thin: promised nothing, it competes for free space)");
  }

  // ENOSPC for a write of bytes [offset, offset+length) of x if it would pass the limit, or,
  // for a thin namespace, take space promised to others.
  // A batch counts the growth of writes it has admitted but not applied yet; that count can be
  // too high (a block written twice, or a synchronous write applied at once), so a refusal is
  // only final once the batch is drained and the count is exact.
  Status admit_growth(const Namespace& x, std::uint64_t offset, std::uint64_t length) {
    Status admitted = admit_growth_once(x, offset, length);
    if (admitted.code() != Code::kNoSpace || batch == nullptr || (batch->growth == 0 && batch->thin_growth.empty())) return admitted;
    NYADS_RETURN_IF_ERROR(drain());
    return admit_growth_once(x, offset, length);
  }
  Status admit_growth_once(const Namespace& x, std::uint64_t offset, std::uint64_t length) {
    const std::uint64_t first = offset / kBlock, end = (offset + length + kBlock - 1) / kBlock;
    std::uint64_t added = 0;
    for (const auto& p : x.map.lookup(first, end - first))
      if (!p.mapped) added += p.blocks;
    if (added == 0) return Status::Ok();
    const std::uint64_t live = live_blocks() + (batch ? batch->growth : 0), limit = live_limit_blocks();
    if (live + added > limit)
      return Status(Code::kNoSpace, "the volume's live data would exceed its " + mib(limit) + " (" + mib(live) +
                                        " live); overwrites still work; trim or delete to free space");
    if (is_thin(x) && any_promised()) {
      const std::uint64_t claimed = claimed_total(), promise_limit = promise_limit_blocks(namespaces.size());
      if (claimed + added > promise_limit)
        return Status(Code::kNoSpace, "thin namespace '" + x.name + "' has no more room: of the volume's " + mib(promise_limit) + ", " + mib(claimed) +
                                          " are promised to namespaces or written by thin ones; overwrites still work; trim or delete to free space");
      if (batch) batch->thin_growth[x.id] += added;
    }
    if (batch) batch->growth += added;
    return Status::Ok();
  }

  // One request of a batch: queued (aligned reads and writes) or done at once (the rest).
  void start_request(std::size_t i, bool& commit_wanted) {
    StoreRequest& r = batch->requests[i];
    using Op = StoreRequest::Op;
    if (r.op == Op::kFlush) {
      commit_wanted = true;
      return;
    }
    static constexpr const char* kWhat[] = {"read", "write", "trim", "write-zeroes", "flush"};
    const std::uint64_t length = r.op == Op::kRead ? r.out.size() : r.op == Op::kWrite ? r.data.size() : r.length;
    Namespace* x = ns(r.ns);
    r.result = check_range(x, r.offset, length, kWhat[static_cast<int>(r.op)]);
    if (!r.result.ok()) return;
    const bool aligned = r.offset % kBlock == 0 && length % kBlock == 0;
    commit_wanted = commit_wanted || r.fua;
    switch (r.op) {
      case Op::kRead:
        if (aligned) return queue_read(i, *x, r.offset / kBlock, length / kBlock, r.out.data());
        r.result = drain();
        if (r.result.ok()) r.result = read_unaligned(*x, r.offset, r.out);
        return;
      case Op::kWrite:
        r.result = admit_growth(*x, r.offset, length);
        if (!r.result.ok()) return;
        if (aligned) {
          r.result = queue_write(i, *x, r.offset / kBlock, r.data.data(), length / kBlock);
        } else {
          r.result = drain();
          if (r.result.ok()) r.result = write_range(*x, r.offset, r.data.data(), length);
        }
        if (r.result.ok()) stats.user_bytes_written += length;
        return;
      case Op::kTrim:
        r.result = drain();
        if (r.result.ok()) r.result = trim_range(*x, r.offset, length);
        return;
      case Op::kWriteZeroes:
        if (r.no_hole) r.result = admit_growth(*x, r.offset, length);
        if (r.result.ok()) r.result = drain();
        if (r.result.ok()) r.result = write_zeroes_range(*x, r.offset, length, r.no_hole);
        return;
      case Op::kFlush:
        return;
    }
  }

  Status read_unaligned(Namespace& x, std::uint64_t offset, std::span<std::uint8_t> out) {
    const std::uint64_t first = offset / kBlock, last = (offset + out.size() - 1) / kBlock;
    std::vector<std::uint8_t> buf((last - first + 1) * kBlock);
    NYADS_RETURN_IF_ERROR(read_blocks(x, first, last - first + 1, buf.data()));
    std::memcpy(out.data(), buf.data() + offset % kBlock, out.size());
    return Status::Ok();
  }

  Status execute(std::span<StoreRequest> requests) {
    Batch b;
    b.requests = requests;
    batch = &b;
    bool commit_wanted = false;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      requests[i].result = Status::Ok();
      start_request(i, commit_wanted);
    }
    Status st = drain();
    batch = nullptr;
    // Zones emptied by overwrites are reset only after a commit makes the overwrites durable,
    // and a commit is a device flush. Left to the free-zone watermark, a sequential overwrite
    // would pay one flush per zone it empties; committing once several are waiting frees them
    // in one flush. (Through NBD on an emulated file this did not raise sequential write
    // bandwidth, which the disk's writeback bounds there.)
    if (st.ok() && resets_after_commit.size() >= reset_batch_zones()) commit_wanted = true;
    if (st.ok() && pending_bytes >= commit_due_bytes()) commit_wanted = true;
    // Few free zones: clean a slice sized to keep pace with what this batch wrote, in small
    // steps, instead of stopping one write for whole zones later.
    if (st.ok() && free_zones() <= soft_watermark()) {
      std::uint64_t written = 0;
      for (const auto& r : requests)
        if (r.op == StoreRequest::Op::kWrite) written += r.data.size() / kBlock;
      if (written > 0) {
        Status cleaned = clean_some(0, written);
        if (!cleaned.ok() && cleaned.code() != Code::kNotFound) st = cleaned;
      }
    }
    if (st.ok() && commit_wanted) st = commit();
    if (!st.ok()) {
      for (auto& r : requests)
        if (r.result.ok() && (r.fua || r.op == StoreRequest::Op::kFlush)) r.result = st;
    }
    return st;
  }

  Result<std::uint32_t> idle_work() {
    using namespace std::chrono;
    const auto interval = seconds(options.checkpoint_interval_seconds);
    const auto since = steady_clock::now() - last_checkpoint_time;
    // Writes not yet flushed by a client are committed too: a quiet moment costs nothing.
    if (data_unflushed || !pending.empty()) NYADS_RETURN_IF_ERROR(commit());
    if (journal_blocks_since_checkpoint > 0 && since >= interval) NYADS_RETURN_IF_ERROR(checkpoint());
    // Clean ahead of need, so a burst of writes finds free zones ready.
    if (free_zones() <= soft_watermark()) {
      Status cleaned = clean_some(capacity_blocks() / 8);
      // An eighth of a zone per call, then a pause: cleaning ahead takes a bounded share.
      if (cleaned.ok()) return 20u;
      if (cleaned.code() != Code::kNotFound) return cleaned;
    }
    if (journal_blocks_since_checkpoint == 0) return static_cast<std::uint32_t>(duration_cast<milliseconds>(interval).count());
    return static_cast<std::uint32_t>(std::max<std::int64_t>(0, duration_cast<milliseconds>(interval - since).count()));
  }
};

// ----- the public face -------------------------------------------------------------------

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(std::unique_ptr<ZonedDevice> device, const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->dev = std::move(device);
  impl->options = options;
  NYADS_RETURN_IF_ERROR(impl->recover());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::close() { return impl_->checkpoint(); }

Result<NamespaceInfo> Store::create_namespace(std::string_view name, std::uint64_t size_bytes, std::uint32_t block_size, bool thin) {
  Impl& s = *impl_;
  NYADS_RETURN_IF_ERROR(fmt::validate_namespace_name(name));
  if (s.ns_by_name(name)) return Status(Code::kAlreadyExists, "namespace '" + std::string(name) + "' exists already");
  if (block_size != 512 && block_size != 4096) return InvalidArgument("block size " + n(block_size) + " is not 512 or 4096");
  if (size_bytes == 0 || size_bytes % kBlock != 0) return InvalidArgument("namespace size " + n(size_bytes) + " bytes is not a positive multiple of 4096");
  // Even a thin namespace takes something: room for its write stream, in the headroom.
  NYADS_RETURN_IF_ERROR(s.admit_promise(name, thin ? 0 : size_bytes / kBlock, 0, s.namespaces.size() + 1));
  const std::uint32_t id = s.next_ns_id++;
  s.namespaces.emplace(id, Impl::Namespace{id, std::string(name), size_bytes, block_size, thin ? fmt::kNamespaceThin : 0u, s.empty_map()});
  s.add(fmt::record::NamespaceCreate{id, block_size, size_bytes, std::string(name), thin});
  NYADS_RETURN_IF_ERROR(s.commit());
  return s.info(*s.ns(id));
}

Status Store::delete_namespace(std::string_view name) {
  Impl& s = *impl_;
  Impl::Namespace* x = s.ns_by_name(name);
  if (!x) return Status(Code::kNotFound, "no namespace '" + std::string(name) + "'");
  const std::uint32_t id = x->id;
  s.release(x->map.unmap(0, x->size / kBlock));
  s.add(fmt::record::NamespaceDelete{id});
  s.namespaces.erase(id);
  NYADS_RETURN_IF_ERROR(s.end_namespace_stream(id));
  return s.commit();
}

Status Store::resize_namespace(std::string_view name, std::uint64_t size_bytes, bool discard) {
  Impl& s = *impl_;
  Impl::Namespace* x = s.ns_by_name(name);
  if (!x) return Status(Code::kNotFound, "no namespace '" + std::string(name) + "'");
  if (size_bytes == 0 || size_bytes % kBlock != 0) return InvalidArgument("namespace size " + n(size_bytes) + " bytes is not a positive multiple of 4096");
  if (size_bytes < x->size) {
    const std::uint64_t from = size_bytes / kBlock, count = (x->size - size_bytes) / kBlock;
    bool holds_data = false;
    for (const auto& p : x->map.lookup(from, count)) holds_data = holds_data || p.mapped;
    if (holds_data && !discard)
      return InvalidArgument("shrinking '" + x->name + "' to " + n(size_bytes) + " bytes would cut off data; pass discard to drop it");
    s.release(x->map.unmap(from, count));
  } else if (!Impl::is_thin(*x)) {
    NYADS_RETURN_IF_ERROR(s.admit_promise(x->name, size_bytes / kBlock, s.claimed_blocks(*x), s.namespaces.size()));
  }
  x->size = size_bytes;
  s.add(fmt::record::NamespaceResize{x->id, size_bytes});
  return s.commit();
}

std::vector<NamespaceInfo> Store::list_namespaces() const {
  std::vector<NamespaceInfo> out;
  for (const auto& [id, x] : impl_->namespaces) out.push_back(impl_->info(x));
  return out;
}

Result<NamespaceInfo> Store::find_namespace(std::string_view name) const {
  for (const auto& [id, x] : impl_->namespaces)
    if (x.name == name) return impl_->info(x);
  return Status(Code::kNotFound, "no namespace '" + std::string(name) + "'");
}

StoreRequest StoreRequest::read(std::uint32_t ns, std::uint64_t offset, std::span<std::uint8_t> out) {
  StoreRequest r;
  r.op = Op::kRead;
  r.ns = ns;
  r.offset = offset;
  r.length = out.size();
  r.out = out;
  return r;
}
StoreRequest StoreRequest::write(std::uint32_t ns, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua) {
  StoreRequest r;
  r.op = Op::kWrite;
  r.ns = ns;
  r.offset = offset;
  r.length = data.size();
  r.data = data;
  r.fua = fua;
  return r;
}
StoreRequest StoreRequest::trim(std::uint32_t ns, std::uint64_t offset, std::uint64_t length, bool fua) {
  StoreRequest r;
  r.op = Op::kTrim;
  r.ns = ns;
  r.offset = offset;
  r.length = length;
  r.fua = fua;
  return r;
}
StoreRequest StoreRequest::write_zeroes(std::uint32_t ns, std::uint64_t offset, std::uint64_t length, bool no_hole, bool fua) {
  StoreRequest r = trim(ns, offset, length, fua);
  r.op = Op::kWriteZeroes;
  r.no_hole = no_hole;
  return r;
}
StoreRequest StoreRequest::flush() {
  StoreRequest r;
  r.op = Op::kFlush;
  return r;
}

namespace {
Status run_one(Store& store, StoreRequest r) {
  Status st = store.execute({&r, 1});
  return r.result.ok() ? st : r.result;
}
}  // namespace

Status Store::write(std::uint32_t ns_id, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua) {
  return run_one(*this, StoreRequest::write(ns_id, offset, data, fua));
}
Status Store::read(std::uint32_t ns_id, std::uint64_t offset, std::span<std::uint8_t> out) {
  return run_one(*this, StoreRequest::read(ns_id, offset, out));
}
Status Store::trim(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length) {
  return run_one(*this, StoreRequest::trim(ns_id, offset, length));
}
Status Store::write_zeroes(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length, bool no_hole) {
  return run_one(*this, StoreRequest::write_zeroes(ns_id, offset, length, no_hole));
}
Result<std::vector<Store::Allocation>> Store::allocation(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length) {
  Impl& s = *impl_;
  Impl::Namespace* x = s.ns(ns_id);
  NYADS_RETURN_IF_ERROR(s.check_range(x, offset, length, "block status"));
  std::vector<Allocation> out;
  const std::uint64_t first = offset / kBlock, end = (offset + length + kBlock - 1) / kBlock;
  for (const auto& p : x->map.lookup(first, end - first)) {
    // Clip to the byte range (a 512-byte namespace may ask for part of a 4 KiB block).
    const std::uint64_t lo = std::max(offset, p.vblock * kBlock), hi = std::min(offset + length, (p.vblock + p.blocks) * kBlock);
    if (hi <= lo) continue;
    if (!out.empty() && out.back().allocated == p.mapped)
      out.back().length += hi - lo;
    else
      out.push_back({hi - lo, p.mapped});
  }
  return out;
}

Status Store::execute(std::span<StoreRequest> batch) { return impl_->execute(batch); }
Result<std::uint32_t> Store::idle_work() { return impl_->idle_work(); }

Status Store::flush() { return impl_->commit(); }
Status Store::checkpoint() { return impl_->checkpoint(); }
Status Store::clean_step() { return impl_->clean_step(); }

StoreStats Store::stats() const {
  StoreStats s = impl_->stats;
  s.data_zones = impl_->sb.data_zones.count;
  s.free_zones = impl_->free_zones();
  s.space_bytes = impl_->promise_limit_blocks(impl_->namespaces.size()) * kBlock;
  s.claimed_bytes = impl_->claimed_total() * kBlock;
  s.live_bytes = impl_->live_blocks() * kBlock;
  for (const auto& [id, x] : impl_->namespaces) {
    s.map_extents += x.map.extent_count();
    s.map_memory_bytes += x.map.memory_bytes();
  }
  return s;
}

const format::Superblock& Store::superblock() const { return impl_->sb; }
ZonedDevice& Store::device() { return *impl_->dev; }

}  // namespace nyads
