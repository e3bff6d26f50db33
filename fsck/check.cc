// The checks, in the order recovery would meet the structures: superblock copies, device
// geometry, zone states against roles, the newest checkpoint, then the journal from where the
// checkpoint says replay starts, cross-checking every reference on the way.
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include <algorithm>
#include "fsck/fsck.h"

#include "fs/format/codec.h"
#include "fs/map/extent_map.h"
#include "nyads/aligned_buffer.h"
#include "nyads/sync_device.h"
#include "nyads/volume.h"

namespace nyads::fsck {

namespace fmt = format;

namespace {

std::string n(std::uint64_t v) { return std::to_string(v); }

class Checker {
  struct Namespace;  // what the checks rebuild of a namespace (below)

 public:
  Checker(ZonedDevice& device, const Options& options, Report& report)
      : dev_(device), g_(device.geometry()), options_(options), r_(report) {}

  void run() {
    r_.device = dev_.name();
    // What the device says of itself (a damaged zone-table slot of an emulated device).
    for (auto& w : dev_.warnings()) add(Severity::kWarning, "device", -1, -1, w, "a device with nothing to say");
    if (!check_superblocks()) return;
    check_geometry();
    auto zones = dev_.report_zones(0, g_.zone_count);
    if (!zones.ok()) {
      r_.operational_error = "reporting zones: " + zones.status().message();
      return;
    }
    zones_ = std::move(*zones);
    check_zone_states();
    if (!check_checkpoint()) return;
    check_journal();
    check_live_written();
    check_live_overlaps();
    if (options_.scrub) scrub();
    if (!rebuild_fixes_.empty()) rebuild();
  }

 private:
  Problem& add(Severity s, std::string structure, std::int64_t zone, std::int64_t offset, std::string message,
               std::string expected) {
    r_.problems.push_back(
        {s, std::move(structure), zone, offset, std::move(message), std::move(expected), false, false});
    return r_.problems.back();
  }
  Problem& error(std::string structure, std::int64_t zone, std::int64_t offset, std::string message,
                 std::string expected) {
    return add(Severity::kError, std::move(structure), zone, offset, std::move(message), std::move(expected));
  }
  std::int64_t meta_offset(std::uint64_t index) const { return static_cast<std::int64_t>(index * fmt::kMetaBlockSize); }

  // Both copies must hold the newest superblock. A damaged, missing or older copy is
  // rewritten from the good one (with -y): its zone is reset and the superblock written again.
  bool check_superblocks() {
    SuperblockZoneScan scans[2] = {scan_superblock_zone(dev_, 0), scan_superblock_zone(dev_, 1)};
    const fmt::Superblock* best = nullptr;
    for (auto& s : scans)
      if (s.newest && (!best || s.newest->generation > best->generation)) best = &*s.newest;
    if (!best) {
      std::string why;
      for (auto& s : scans)
        for (auto& p : s.problems) why += "\n  " + p;
      r_.operational_error = (scans[0].unreadable || scans[1].unreadable ? "cannot read the superblocks of "
                                                                         : "no valid nyads superblock on ") +
                             dev_.name() + ":" + why;
      return false;
    }
    r_.superblock = *best;
    sb_ = *best;
    r_.notes.push_back("superblock generation " + n(sb_.generation) + ", uuid " + fmt::uuid_to_string(sb_.uuid));
    for (auto& s : scans) {
      const char* copy = s.zone == 0 ? "primary" : "backup";
      const bool current = s.newest && s.newest->generation == sb_.generation && *s.newest == sb_;
      // Damaged versions before the newest one in a zone are history; only the newest counts.
      if (current) continue;
      std::string what = s.newest ? "the " + std::string(copy) + " copy is generation " + n(s.newest->generation)
                                  : "the " + std::string(copy) + " copy has no valid superblock" +
                                        (s.problems.empty() ? std::string() : " (" + s.problems.back() + ")");
      Problem& p =
          error("superblock", s.zone, 0, what, "superblock generation " + n(sb_.generation) + " as in the other copy");
      p.fixable = true;
      if (want_fix(p)) {
        Status st = rewrite_superblock(s.zone);
        if (st.ok())
          p.fixed = true;
        else
          p.message += "; the repair failed: " + st.message();
      }
    }
    return true;
  }

  // Device blocks the rebuilt maps hold live, by zone.
  std::map<std::uint32_t, std::uint64_t> mapped_per_zone() const {
    std::map<std::uint32_t, std::uint64_t> per_zone;
    for (const auto& [id, x] : namespaces_)
      x.map.for_each([&](std::uint64_t, std::uint64_t lba, std::span<const std::uint32_t> sums) {
        per_zone[g_.zone_of(lba)] += sums.size() * (fmt::kStoreBlockSize / g_.block_size);
      });
    return per_zone;
  }

  bool want_fix(const Problem& p) { return options_.repair || (options_.confirm && options_.confirm(p)); }

  // A problem that a new checkpoint, written from what fsck rebuilt, repairs by `action`.
  void rebuilds(Problem& p, std::string action) {
    p.fixable = true;
    rebuild_fixes_.emplace_back(static_cast<std::size_t>(&p - r_.problems.data()), std::move(action));
  }
  // Damaged data: the namespace is quarantined (unless it already is).
  void damaged(std::uint32_t id, const Namespace& x, Problem& p) {
    if (x.quarantined()) return;
    quarantine_.insert(id);
    rebuilds(p,
             "namespace '" + x.name + "' quarantined (its I/O fails until its data is restored; the rest stay usable)");
  }

  // The repair of everything rebuilds() collected: a new checkpoint of the state fsck rebuilt
  // (the valid part of the checkpoint and journal, namespaces quarantined as decided), with
  // the journal restarting in an empty zone; then the old journal is cleared.
  void rebuild() {
    // One question for all of them, naming each: they are repaired together or not at all (a
    // "no" to one and a "yes" to the next once repaired both).
    if (rebuild_fixes_.empty()) return;
    Problem all;
    all.structure = "checkpoint";
    all.message = "these are repaired together, by a new checkpoint written from what fsck rebuilt:";
    for (const auto& [index, action] : rebuild_fixes_)
      all.message += "\n  - " + r_.problems[index].message + "\n    repair: " + action;
    all.fixable = true;
    if (!want_fix(all)) return;
    Status st = write_rebuilt_checkpoint();
    for (const auto& [index, action] : rebuild_fixes_) {
      Problem& p = r_.problems[index];
      if (st.ok()) {
        p.fixed = true;
        p.message += "; repaired: " + action;
      } else {
        p.message += "; the repair failed: " + st.message();
      }
    }
    if (st.ok())
      r_.notes.push_back("repaired: checkpoint " + n(r_.checkpoint_seq + 1) + " written from the rebuilt state");
  }

  Status write_rebuilt_checkpoint() {
    if (!checkpoint_) return Corruption("no checkpoint to rebuild from");
    const std::uint64_t per = fmt::kStoreBlockSize / g_.block_size;
    MetaIo io(dev_);
    // What the rebuilt state holds must be durable before a checkpoint names it (the journal's
    // last commit may have been read back from a drive's volatile cache).
    NYADS_RETURN_IF_ERROR(io.flush());
    // The journal restarts in a zone outside what the current checkpoint replays, so a crash
    // during the repair leaves the old checkpoint and its journal intact.
    std::set<std::uint32_t> replayed;
    for (std::uint32_t z = journal_start_.zone;;
         z = z + 1 == sb_.journal_zones.end() ? sb_.journal_zones.first : z + 1) {
      replayed.insert(z);
      if (z == journal_scan_.end.zone || replayed.size() >= sb_.journal_zones.count) break;
    }
    std::optional<std::uint32_t> restart;
    for (std::uint32_t z = sb_.journal_zones.first; z < sb_.journal_zones.end() && !restart; ++z)
      if (!replayed.count(z)) restart = z;
    if (!restart)
      return Status(Code::kNoSpace,
                    "every journal zone holds journal still to replay: none is free to restart the journal in");
    auto w = io.written(*restart);
    if (!w.ok()) return w.status();
    if (*w != 0) NYADS_RETURN_IF_ERROR(dev_.manage_zone(ZoneAction::kReset, *restart));

    CheckpointContent content;
    for (auto& [id, x] : namespaces_) {
      if (quarantine_.count(id)) x.flags |= fmt::kNamespaceQuarantined;
      content.namespaces.push_back({id, x.flags, x.block_size, x.size, x.map.mapped_blocks(), x.name});
    }
    std::map<std::uint32_t, std::uint64_t> per_zone = mapped_per_zone();
    content.extents_of = [&](const ExtentVisitor& visit) {
      for (const auto& entry : namespaces_) {
        const std::uint32_t id = entry.first;
        entry.second.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
          visit(id, vblock, lba, sums);
        });
      }
    };
    std::map<std::uint32_t, std::uint64_t> ages;
    for (const auto& z : checkpoint_->zones) ages[z.zone] = z.last_write_seq;
    for (std::uint32_t z = sb_.data_zones.first; z < sb_.data_zones.end(); ++z)
      content.zones.push_back({z, 0, static_cast<std::uint32_t>(per_zone[z]), ages[z]});
    fmt::CheckpointCommit commit;
    commit.next_ns_id = next_ns_id_;
    for (const auto& [id, x] : namespaces_) commit.next_ns_id = std::max(commit.next_ns_id, id + 1);
    commit.journal_zone = *restart;
    commit.journal_block = 0;
    // Above every sequence number the old journal used (a dropped commit's blocks included).
    commit.journal_seq = std::max(journal_scan_.end.seq, journal_scan_.dropped_through_seq + 1) + 1;
    commit.created = static_cast<std::uint64_t>(std::time(nullptr));
    auto used =
        write_checkpoint_beside(dev_, sb_, r_.checkpoint_seq + 1,
                                pack_checkpoint(content, static_cast<std::uint32_t>(per), CheckpointLayout::of(sb_)),
                                commit, checkpoint_->commit.zones);
    if (!used.ok()) return used.status();
    // The new checkpoint is durable: the old journal is obsolete. Its zones are reset, and a
    // flush makes the resets last.
    for (std::uint32_t z = sb_.journal_zones.first; z < sb_.journal_zones.end(); ++z) {
      if (z == *restart) continue;
      auto written = io.written(z);
      if (written.ok() && *written > 0) NYADS_RETURN_IF_ERROR(dev_.manage_zone(ZoneAction::kReset, z));
    }
    return io.flush();
  }

  Status rewrite_superblock(std::uint32_t zone) {
    NYADS_RETURN_IF_ERROR(dev_.manage_zone(ZoneAction::kReset, zone));
    AlignedBuffer block(fmt::kMetaBlockSize);
    fmt::encode_superblock(sb_, block.span());
    MetaIo io(dev_);
    auto at = io.write(zone, block);
    if (!at.ok()) return at.status();
    NYADS_RETURN_IF_ERROR(io.flush());
    return dev_.manage_zone(ZoneAction::kFinish, zone);  // a full zone holds no active resource
  }

  void check_geometry() {
    auto mismatch = [&](const char* what, std::uint64_t device, std::uint64_t recorded) {
      if (device != recorded)
        error("geometry", -1, -1, std::string("the device's ") + what + " is " + n(device),
              "the " + n(recorded) + " the superblock records");
    };
    mismatch("block size", g_.block_size, sb_.block_size);
    mismatch("zone size (blocks)", g_.zone_size, sb_.zone_size);
    mismatch("zone count", g_.zone_count, sb_.zone_count);
    if (g_.max_open_zones != sb_.max_open_zones || g_.max_active_zones != sb_.max_active_zones)
      add(Severity::kWarning, "geometry", -1, -1,
          "the device's open/active zone limits are " + n(g_.max_open_zones) + "/" + n(g_.max_active_zones),
          n(sb_.max_open_zones) + "/" + n(sb_.max_active_zones) + " as at mkfs");
    Status ro = sb_.check_writable();
    if (!ro.ok()) add(Severity::kWarning, "superblock", 0, 0, ro.message(), "only known read-only-compatible features");
  }

  const char* role(std::uint32_t z) const {
    if (sb_.superblock_zones.contains(z)) return "superblock";
    if (sb_.journal_zones.contains(z)) return "journal";
    if (sb_.checkpoint_zones.contains(z)) return "checkpoint";
    return "data";
  }

  void check_zone_states() {
    if (zones_.size() != sb_.zone_count) return;  // geometry already reported
    for (std::uint32_t z = 0; z < zones_.size(); ++z) {
      const ZoneInfo& info = zones_[z];
      const std::string what = std::string(role(z)) + " zone " + n(z);
      if (info.state == ZoneState::kOffline) {
        error("zone", z, -1, what + " is offline", "a usable zone");
        continue;
      }
      if (info.state == ZoneState::kReadOnly && !sb_.data_zones.contains(z))
        error("zone", z, -1, what + " is read-only", "a writable zone");
      if (info.state == ZoneState::kReadOnly && sb_.data_zones.contains(z))
        add(Severity::kWarning, "zone", z, -1,
            what + " is read-only: its data can be read but the zone cannot be reused", "a writable zone");
      if (info.capacity < sb_.zone_capacity)
        error("zone", z, -1, what + " has capacity " + n(info.capacity) + " blocks",
              n(sb_.zone_capacity) + " blocks as at mkfs");
      const std::uint64_t used = info.write_pointer - info.start;
      if (!sb_.data_zones.contains(z) && info.state != ZoneState::kFull && used % sb_.blocks_per_meta_block() != 0)
        error("zone", z, static_cast<std::int64_t>(used * g_.block_size),
              what + ": the write pointer is not on a metadata block boundary", "a multiple of 4096 bytes");
    }
  }

  bool check_checkpoint() {
    CheckpointSearch search = load_newest_checkpoint(dev_, sb_);
    for (auto& note : search.notes) r_.notes.push_back(note);
    for (auto& p : search.problems) error("checkpoint", -1, -1, p, "an intact checkpoint");
    if (!search.newest) {
      error(
          "checkpoint", sb_.checkpoint_zones.first, -1,
          "no committed checkpoint in zones " + n(sb_.checkpoint_zones.first) + "-" + n(sb_.checkpoint_zones.end() - 1),
          "at least one checkpoint ending in a commit block");
      return false;
    }
    checkpoint_ = search.newest;
    const LoadedCheckpoint& cp = *checkpoint_;
    r_.checkpoint_seq = cp.seq;
    r_.notes.push_back("checkpoint " + n(cp.seq) + ": " + n(cp.namespaces.size()) + " namespaces, " +
                       n(cp.extents.size()) + " extents, " + n(cp.zones.size()) +
                       " zone entries; journal replay starts at zone " + n(cp.commit.journal_zone) + " block " +
                       n(cp.commit.journal_block) + " (sequence " + n(cp.commit.journal_seq) + ")");
    const std::string where = "checkpoint " + n(cp.seq);
    next_ns_id_ = cp.commit.next_ns_id;
    for (const auto& e : cp.namespaces) {
      if (e.ns_id >= next_ns_id_)
        rebuilds(error("checkpoint", cp.commit.zones.front(), -1,
                       where + ": namespace " + n(e.ns_id) + " is not below the next id " + n(next_ns_id_),
                       "namespace ids below next_ns_id"),
                 "the next id raised");
      create_namespace(e.ns_id, e.name, e.size_bytes, e.block_size, e.flags, "checkpoint", cp.commit.zones.front(), -1,
                       where);
    }
    for (const auto& x : cp.extents) check_extent(x, "checkpoint", cp.commit.zones.front(), -1, where);
    // Space accounting: what the entries say against what the extents map.
    for (const auto& e : cp.namespaces) {
      auto it = namespaces_.find(e.ns_id);
      if (it != namespaces_.end() && it->second.map.mapped_blocks() != e.written_blocks)
        rebuilds(error("checkpoint", cp.commit.zones.front(), -1,
                       where + ": namespace '" + e.name + "' records " + n(e.written_blocks) +
                           " written blocks, its extents map " + n(it->second.map.mapped_blocks()),
                       "the count of blocks its extents map"),
                 "recounted");
    }
    std::map<std::uint32_t, std::uint64_t> per_zone = mapped_per_zone();
    for (const auto& z : cp.zones) {
      const std::uint64_t mapped = per_zone.count(z.zone) ? per_zone[z.zone] : 0;
      if (sb_.data_zones.contains(z.zone) && mapped != z.valid_blocks)
        rebuilds(error("checkpoint", cp.commit.zones.front(), -1,
                       where + ": zone " + n(z.zone) + " records " + n(z.valid_blocks) +
                           " valid blocks, the extents map " + n(mapped) + " there",
                       "the count of device blocks the extents map in the zone"),
                 "recounted");
    }
    std::set<std::uint32_t> seen;
    for (const auto& z : cp.zones) {
      if (!sb_.data_zones.contains(z.zone))
        rebuilds(error("checkpoint", cp.commit.zones.front(), -1, where + ": a zone entry for zone " + n(z.zone),
                       "entries for data zones only"),
                 "dropped");
      else if (!seen.insert(z.zone).second)
        rebuilds(error("checkpoint", cp.commit.zones.front(), -1, where + ": two entries for zone " + n(z.zone),
                       "one entry per data zone"),
                 "one kept");
      else if (z.valid_blocks > sb_.zone_capacity)
        rebuilds(error("checkpoint", cp.commit.zones.front(), -1,
                       where + ": zone " + n(z.zone) + " has " + n(z.valid_blocks) + " valid blocks",
                       "at most the zone capacity"),
                 "recounted");
    }
    if (!sb_.journal_zones.contains(cp.commit.journal_zone) || cp.commit.journal_block >= sb_.meta_blocks_per_zone()) {
      error("checkpoint", cp.commit.zones.back(), -1,
            where + ": journal replay position zone " + n(cp.commit.journal_zone) + " block " +
                n(cp.commit.journal_block),
            "a block of a journal zone (" + n(sb_.journal_zones.first) + "-" + n(sb_.journal_zones.end() - 1) + ")");
      return false;
    }
    journal_start_ = {cp.commit.journal_zone, cp.commit.journal_block, cp.commit.journal_seq};
    return true;
  }

  void create_namespace(std::uint32_t id, const std::string& name, std::uint64_t size, std::uint32_t block_size,
                        std::uint32_t flags, const char* structure, std::int64_t zone, std::int64_t offset,
                        const std::string& where) {
    if (namespaces_.count(id)) {
      rebuilds(
          error(structure, zone, offset, where + ": namespace id " + n(id) + " exists already", "unique namespace ids"),
          "the second one ignored");
      return;
    }
    for (const auto& [other_id, ns] : namespaces_)
      if (ns.name == name) {
        rebuilds(error(structure, zone, offset,
                       where + ": namespace name '" + name + "' is taken by namespace " + n(other_id),
                       "unique namespace names"),
                 "the second one ignored");
        return;
      }
    namespaces_.emplace(
        id, Namespace{name, size, ExtentMap(fmt::kStoreBlockSize / g_.block_size, g_.zone_size), block_size, flags});
  }

  bool known_namespace(std::uint32_t id, const char* structure, std::int64_t zone, std::int64_t offset,
                       const std::string& where) {
    if (namespaces_.count(id)) return true;
    rebuilds(error(structure, zone, offset, where + ": namespace " + n(id) + " does not exist",
                   "a namespace created before it is used"),
             "the reference dropped");
    return false;
  }

  // An extent must name a live namespace, stay within its size, and point into one data zone.
  // Whether its blocks are written is checked on the final map (check_live_written): a record
  // may name blocks of a zone that the cleaner emptied and reset later, once the records that
  // moved its live data were durable; a crash before the reset's own record leaves exactly that.
  void check_extent(const fmt::record::Extent& x, const char* structure, std::int64_t zone, std::int64_t offset,
                    const std::string& where) {
    ++r_.extents;
    const std::string what = where + ": extent of namespace " + n(x.ns_id) + " at virtual block " + n(x.vblock);
    if (!known_namespace(x.ns_id, structure, zone, offset, where)) return;
    const std::uint64_t blocks = x.checksums.size();
    const std::uint64_t ns_blocks = namespaces_[x.ns_id].size / fmt::kStoreBlockSize;
    if (x.vblock + blocks > ns_blocks)
      rebuilds(error(structure, zone, offset, what + " runs to block " + n(x.vblock + blocks),
                     "within the namespace's " + n(ns_blocks) + " blocks"),
               "the blocks past the end dropped");
    const std::uint64_t per = fmt::kStoreBlockSize / g_.block_size;
    const std::uint32_t data_zone = g_.zone_of(x.lba);
    if (!sb_.data_zones.contains(data_zone) || data_zone >= zones_.size()) {
      rebuilds(error(structure, zone, offset,
                     what + " points at block " + n(x.lba) + " in " + role(std::min(data_zone, sb_.zone_count - 1)) +
                         " zone " + n(data_zone),
                     "a block of a data zone"),
               "the extent dropped (those blocks read as zeros)");
      return;
    }
    const ZoneInfo& z = zones_[data_zone];
    if ((x.lba - z.start) % per != 0 || x.lba + blocks * per > z.start + z.capacity) {
      rebuilds(
          error(structure, zone, offset, what + " points at blocks " + n(x.lba) + ".." + n(x.lba + blocks * per - 1),
                "4096-byte blocks within one zone's capacity"),
          "the extent dropped (those blocks read as zeros)");
      return;
    }
    const std::uint64_t fit = std::min<std::uint64_t>(blocks, ns_blocks > x.vblock ? ns_blocks - x.vblock : 0);
    if (fit > 0) (void)namespaces_.at(x.ns_id).map.map(x.vblock, x.lba, std::span(x.checksums).first(fit));
  }

  // The cleaner's moves: the blocks must hold data to move (their checksums go with them), and
  // land within one data zone's capacity.
  void check_moved(const fmt::record::Moved& x, std::int64_t zone, std::int64_t offset, const std::string& where) {
    const std::string what =
        where + ": move of " + n(x.total_blocks()) + " blocks of namespace " + n(x.ns_id) + " to block " + n(x.lba);
    if (!known_namespace(x.ns_id, "journal", zone, offset, where)) return;
    const std::uint64_t per = fmt::kStoreBlockSize / g_.block_size;
    const std::uint32_t data_zone = g_.zone_of(x.lba);
    if (!sb_.data_zones.contains(data_zone) || data_zone >= zones_.size()) {
      rebuilds(error("journal", zone, offset,
                     what + " points into " + role(std::min(data_zone, sb_.zone_count - 1)) + " zone " + n(data_zone),
                     "a data zone"),
               "the move dropped (the blocks stay where they were)");
      return;
    }
    const ZoneInfo& z = zones_[data_zone];
    if ((x.lba - z.start) % per != 0 || x.lba + x.total_blocks() * per > z.start + z.capacity) {
      rebuilds(error("journal", zone, offset, what + " runs to block " + n(x.lba + x.total_blocks() * per - 1),
                     "4096-byte blocks within one zone's capacity"),
               "the move dropped (the blocks stay where they were)");
      return;
    }
    Namespace& ns = namespaces_.at(x.ns_id);
    std::uint64_t lba = x.lba;
    for (const auto& run : x.runs) {
      ++r_.extents;
      for (const auto& [from, blocks] : ns.map.relocate(run.vblock, run.blocks, lba))
        rebuilds(error("journal", zone, offset,
                       what + ": blocks " + n(from) + ".." + n(from + blocks - 1) + " hold no data to move",
                       "blocks that hold data"),
                 "those blocks stay unmapped (they read as zeros)");
      lba += run.blocks * per;
    }
  }

  // Every live map entry points at written blocks of its zone (below the write pointer).
  void check_live_written() {
    const std::uint64_t per = fmt::kStoreBlockSize / g_.block_size;
    auto written_end = [](const ZoneInfo& z) {
      return z.state == ZoneState::kFull ? z.start + z.capacity : z.write_pointer;
    };
    for (auto& entry : namespaces_) {
      const std::uint32_t id = entry.first;
      struct Dangling {
        std::uint64_t vblock, blocks, lba;
      };
      std::vector<Dangling> dangling;
      entry.second.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
        const std::uint64_t written = written_end(zones_[g_.zone_of(lba)]);
        if (lba + sums.size() * per <= written) return;
        // The part at or past the write pointer (all of it when lba is past it already).
        const std::uint64_t skip = lba >= written ? 0 : (written - lba) / per;
        dangling.push_back({vblock + skip, sums.size() - skip, lba + skip * per});
      });
      for (const Dangling& d : dangling) {
        const std::uint32_t zone = g_.zone_of(d.lba);
        const ZoneInfo& z = zones_[zone];
        rebuilds(error("map", zone, static_cast<std::int64_t>((d.lba - z.start) * g_.block_size),
                       "namespace " + n(id) + " blocks " + n(d.vblock) + ".." + n(d.vblock + d.blocks - 1) +
                           " live at device blocks " + n(d.lba) + ".." + n(d.lba + d.blocks * per - 1) + " of zone " +
                           n(zone),
                       "written blocks (the zone's write pointer is " + n(written_end(z)) + ")"),
                 "the blocks dropped (they read as zeros)");
        (void)entry.second.map.unmap(d.vblock, d.blocks);
      }
    }
  }

  // Every live device block belongs to one namespace block: no two live extents overlap.
  void check_live_overlaps() {
    struct Live {
      std::uint64_t lba, end;
      std::uint32_t ns;
      std::uint64_t vblock;
    };
    std::vector<Live> live;
    const std::uint64_t per = fmt::kStoreBlockSize / g_.block_size;
    for (const auto& entry : namespaces_) {
      const std::uint32_t id = entry.first;
      entry.second.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
        live.push_back({lba, lba + sums.size() * per, id, vblock});
      });
    }
    std::sort(live.begin(), live.end(), [](const Live& a, const Live& b) { return a.lba < b.lba; });
    for (std::size_t i = 1; i < live.size(); ++i) {
      if (live[i].lba >= live[i - 1].end) continue;
      const std::uint32_t zone = g_.zone_of(live[i].lba);
      if (namespaces_.at(live[i - 1].ns).quarantined() && namespaces_.at(live[i].ns).quarantined())
        continue;  // known, set aside
      quarantine_.insert(live[i - 1].ns);
      quarantine_.insert(live[i].ns);
      Problem& p =
          error("map", zone, static_cast<std::int64_t>((live[i].lba - g_.zone_start(zone)) * g_.block_size),
                "namespace " + n(live[i - 1].ns) + " block " +
                    n(live[i - 1].vblock + (live[i].lba - live[i - 1].lba) / per) + " and namespace " + n(live[i].ns) +
                    " block " + n(live[i].vblock) + " both live at device block " + n(live[i].lba),
                "each live device block owned once");
      rebuilds(p, "both namespaces quarantined (their I/O fails until their data is restored; the rest stay usable)");
    }
    r_.live_blocks = 0;
    for (const auto& [id, x] : namespaces_) r_.live_blocks += x.map.mapped_blocks();
  }

  // --scrub: every live block read back and checked against its checksum.
  void scrub() {
    const std::uint64_t per = fmt::kStoreBlockSize / g_.block_size;
    const std::uint64_t seed = sb_.seed();
    for (const auto& entry : namespaces_) {
      const std::uint32_t id = entry.first;
      const Namespace& x = entry.second;
      x.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
        for (std::size_t i = 0; i < sums.size(); i += 256) {
          const std::size_t k = std::min<std::size_t>(256, sums.size() - i);
          AlignedBuffer buf(k * fmt::kStoreBlockSize);
          const std::uint64_t at = lba + i * per;
          const std::uint32_t zone = g_.zone_of(at);
          Status st = SyncDevice(dev_).read(at, static_cast<std::uint32_t>(k * per), buf.data());
          if (!st.ok()) {
            damaged(id, x,
                    add(x.quarantined() ? Severity::kWarning : Severity::kError, "data", zone,
                        static_cast<std::int64_t>((at - g_.zone_start(zone)) * g_.block_size),
                        "namespace '" + x.name + "' blocks " + n(vblock + i) + ".." + n(vblock + i + k - 1) + ": " +
                            st.message(),
                        "readable data"));
            continue;
          }
          for (std::size_t j = 0; j < k; ++j) {
            ++r_.scrubbed_blocks;
            if (fmt::data_checksum(seed, id, vblock + i + j,
                                   {buf.data() + j * fmt::kStoreBlockSize, fmt::kStoreBlockSize}) == sums[i + j])
              continue;
            const std::uint64_t b = at + j * per;
            damaged(id, x,
                    add(x.quarantined() ? Severity::kWarning : Severity::kError, "data", g_.zone_of(b),
                        static_cast<std::int64_t>((b - g_.zone_start(g_.zone_of(b))) * g_.block_size),
                        "namespace '" + x.name + "' block " + n(vblock + i + j) + ": checksum mismatch",
                        "data matching its checksum " + fmt::hex(sums[i + j])));
          }
        }
      });
    }
  }

  void check_journal() {
    auto visit = [&](const fmt::JournalBlock& b, std::uint32_t zone, std::uint64_t index) {
      const std::string where = "journal block " + n(b.seq) + " (zone " + n(zone) + " block " + n(index) + ")";
      const std::int64_t off = meta_offset(index);
      for (const auto& rec : b.records) {
        ++r_.journal_records;
        std::visit(
            [&](const auto& v) {
              using T = std::decay_t<decltype(v)>;
              if constexpr (std::is_same_v<T, fmt::record::NamespaceCreate>) {
                if (v.ns_id < next_ns_id_)
                  rebuilds(error("journal", zone, off, where + ": namespace " + n(v.ns_id) + " is created again",
                                 "an id at or above " + n(next_ns_id_)),
                           "the next id raised");
                next_ns_id_ = std::max(next_ns_id_, v.ns_id + 1);
                create_namespace(v.ns_id, v.name, v.size_bytes, v.block_size, v.thin ? fmt::kNamespaceThin : 0,
                                 "journal", zone, off, where);
              } else if constexpr (std::is_same_v<T, fmt::record::NamespaceDelete>) {
                if (known_namespace(v.ns_id, "journal", zone, off, where)) namespaces_.erase(v.ns_id);
              } else if constexpr (std::is_same_v<T, fmt::record::NamespaceResize>) {
                if (known_namespace(v.ns_id, "journal", zone, off, where)) {
                  Namespace& x = namespaces_.at(v.ns_id);
                  if (v.size_bytes < x.size)
                    (void)x.map.unmap(v.size_bytes / fmt::kStoreBlockSize,
                                      (x.size - v.size_bytes) / fmt::kStoreBlockSize);
                  x.size = v.size_bytes;
                }
              } else if constexpr (std::is_same_v<T, fmt::record::Extent>) {
                check_extent(v, "journal", zone, off, where);
              } else if constexpr (std::is_same_v<T, fmt::record::Moved>) {
                check_moved(v, zone, off, where);
              } else if constexpr (std::is_same_v<T, fmt::record::Trim>) {
                if (known_namespace(v.ns_id, "journal", zone, off, where)) {
                  if (v.vblock + v.blocks > namespaces_.at(v.ns_id).size / fmt::kStoreBlockSize)
                    rebuilds(
                        error("journal", zone, off,
                              where + ": trim of namespace " + n(v.ns_id) + " runs to block " + n(v.vblock + v.blocks),
                              "within the namespace"),
                        "clipped at the end");
                  (void)namespaces_.at(v.ns_id).map.unmap(v.vblock, v.blocks);
                }
              } else if constexpr (std::is_same_v<T, fmt::record::ZoneReset>) {
                if (!sb_.data_zones.contains(v.zone))
                  rebuilds(error("journal", zone, off, where + ": reset of zone " + n(v.zone), "a data zone"),
                           "ignored");
              } else if constexpr (std::is_same_v<T, fmt::record::CheckpointDone>) {
                if (!sb_.checkpoint_zones.contains(v.first_zone))
                  rebuilds(error("journal", zone, off, where + ": checkpoint in zone " + n(v.first_zone),
                                 "a checkpoint zone"),
                           "ignored");
              }
            },
            rec);
      }
    };
    JournalScan scan = scan_journal(dev_, sb_, journal_start_, visit);
    r_.journal_blocks = scan.blocks;
    r_.notes.push_back("journal: " + n(scan.blocks) + " blocks, " + n(r_.journal_records) +
                       " records; the next block goes to zone " + n(scan.end.zone) + " block " + n(scan.end.index) +
                       " (sequence " + n(scan.end.seq) + ")");
    if (scan.torn_tail)
      add(Severity::kWarning, "journal", scan.end.zone, meta_offset(scan.end.index),
          *scan.torn_tail + ": an interrupted commit; recovery ignores it", "a complete journal block, or none");
    if (scan.stale_zone)
      add(Severity::kWarning, "journal", scan.end.zone, meta_offset(scan.end.index),
          "a block of an older pass of the journal ring where sequence " + n(scan.end.seq) +
              " was expected (a zone reset lost with the power); "
              "recovery ends the journal here and clears the zone",
          "the journal's next block, or none");
    if (scan.corruption)
      rebuilds(error("journal", scan.end.zone, meta_offset(scan.end.index), *scan.corruption,
                     "journal block sequence " + n(scan.end.seq)),
               "the journal is kept up to the damaged block; what was journaled after it is lost (writes after the "
               "last good block "
               "read as their older content)");
    journal_scan_ = scan;
    r_.namespaces = static_cast<std::uint32_t>(namespaces_.size());
  }

  struct Namespace {
    std::string name;
    std::uint64_t size = 0;
    ExtentMap map;  // the live blocks, as recovery would rebuild them
    std::uint32_t block_size = 4096;
    std::uint32_t flags = 0;
    bool quarantined() const { return (flags & fmt::kNamespaceQuarantined) != 0; }
  };

  ZonedDevice& dev_;
  const Geometry& g_;
  const Options& options_;
  Report& r_;
  fmt::Superblock sb_;
  std::vector<ZoneInfo> zones_;
  std::map<std::uint32_t, Namespace> namespaces_;
  std::uint32_t next_ns_id_ = 1;
  JournalPosition journal_start_;
  JournalScan journal_scan_;
  std::optional<LoadedCheckpoint> checkpoint_;
  // Problems a rebuilt checkpoint repairs (index into r_.problems, what the rebuild does), and
  // the namespaces it quarantines.
  std::vector<std::pair<std::size_t, std::string>> rebuild_fixes_;
  std::set<std::uint32_t> quarantine_;
};

}  // namespace

int Report::exit_code() const {
  if (operational_error) return 8;
  bool left = false, fixed = false;
  for (const auto& p : problems) {
    if (p.severity != Severity::kError) continue;
    if (p.fixed)
      fixed = true;
    else
      left = true;
  }
  return left ? 4 : fixed ? 1 : 0;
}

Report check_volume(ZonedDevice& device, const Options& options) {
  Report report;
  Checker(device, options, report).run();
  return report;
}

}  // namespace nyads::fsck
