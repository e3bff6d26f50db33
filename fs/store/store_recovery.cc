// Opening a volume: the newest checkpoint, the journal after it, the zones' state.
#include "fs/store/store_impl.h"

namespace nyads {

Status Store::Impl::recover() {
  const Geometry& g = dev->geometry();
  if (fmt::kMetaBlockSize % g.block_size != 0)
    return NotSupported(dev->name() + ": block size " + n(g.block_size) + " does not divide 4096");
  std::optional<fmt::Superblock> best;
  std::string why;
  bool unreadable = false;
  for (std::uint32_t z : {0u, 1u}) {
    SuperblockZoneScan scan = scan_superblock_zone(*dev, z);
    for (auto& p : scan.problems) why += "; " + p;
    unreadable = unreadable || scan.unreadable;
    if (scan.newest && (!best || scan.newest->generation > best->generation)) best = scan.newest;
  }
  // A copy that could not be read says nothing of what the device holds: no advice to format it.
  if (!best && unreadable) return IoError(dev->name() + ": cannot read its superblocks" + why);
  if (!best)
    return Corruption(dev->name() + " holds no valid nyads superblock" + why + " (run mkfs.nyads, or fsck.nyads)");
  sb = *best;
  seed = sb.seed();
  per = fmt::kMetaBlockSize / g.block_size;
  if (sb.block_size != g.block_size || sb.zone_size != g.zone_size || sb.zone_count != g.zone_count)
    return Corruption(dev->name() + ": the device's geometry differs from the superblock's (run fsck.nyads)");
  NYADS_RETURN_IF_ERROR(sb.check_writable());
  // A zone's write list records offsets in the zone as 32 bits.
  if (sb.zone_size > UINT32_MAX)
    return NotSupported(dev->name() + ": zones of " + n(sb.zone_size) +
                        " device blocks (this build handles up to 2^32)");
  // The maps are built as the checkpoint is read, not from a copy of its extents; a
  // checkpoint that fails part way (a damaged block, a wrong chain) leaves what it built,
  // dropped when the next one starts or when another one (or none) wins.
  // (Which checkpoint they came from: its seq and the zone of its commit, as two damaged
  // copies could share a seq.)
  std::pair<std::uint64_t, std::uint32_t> built{0, 0};
  auto from = [](const LoadedCheckpoint& c) { return std::pair(c.seq, c.commit.zones.back()); };
  auto start_maps = [&](const LoadedCheckpoint& c) {
    namespaces.clear();
    for (const auto& e : c.namespaces)
      namespaces.emplace(e.ns_id, Namespace{e.ns_id, e.name, e.size_bytes, e.block_size, e.flags, empty_map()});
    built = from(c);
  };
  // An indexed checkpoint's extent blocks are left unread (store_loading.cc).
  const ExtentLoading loading = sb.indexes_extents() ? ExtentLoading::kDeferIndexed : ExtentLoading::kRead;
  CheckpointSearch search = load_newest_checkpoint(
      *dev, sb,
      [&](const LoadedCheckpoint& so_far, fmt::record::Extent& x) {
        if (from(so_far) != built) start_maps(so_far);
        apply(x);
      },
      loading);
  if (!search.newest) {
    std::string problems;
    for (auto& p : search.problems) problems += "; " + p;
    return Corruption(dev->name() + ": no committed checkpoint" + problems + " (run fsck.nyads)");
  }
  const LoadedCheckpoint& cp = *search.newest;
  checkpoint_seq = cp.seq;
  journal_start_zone = cp.commit.journal_zone;
  newest_checkpoint_zones = cp.commit.zones;
  next_ns_id = cp.commit.next_ns_id;
  zones.resize(sb.data_zones.count);
  for (std::uint32_t i = 0; i < zones.size(); ++i) zones[i].start = zones[i].wp = g.zone_start(sb.data_zones.first + i);
  for (const auto& z : cp.zones)
    if (sb.data_zones.contains(z.zone)) zones[z.zone - sb.data_zones.first].last_seq = z.last_write_seq;
  if (from(cp) != built) start_maps(cp);  // (a checkpoint without extents)
  if (cp.extents_deferred) {
    // Live counts start as the checkpoint's; replay adds what it maps (store_loading.cc).
    for (const auto& z : cp.zones)
      if (sb.data_zones.contains(z.zone)) zones[z.zone - sb.data_zones.first].valid = z.valid_blocks / per;
    defer_extents(cp.index);
  }
  // The journal after the checkpoint.
  replaying = true;
  JournalScan scan = scan_journal(*dev, sb, {cp.commit.journal_zone, cp.commit.journal_block, cp.commit.journal_seq},
                                  [&](const fmt::JournalBlock& b, std::uint32_t, std::uint64_t) {
                                    for (const auto& r : b.records) apply_record(r, b.seq);
                                  });
  replaying = false;
  if (scan.corruption) return Corruption(dev->name() + ": journal: " + *scan.corruption + " (run fsck.nyads)");
  NYADS_RETURN_IF_ERROR(replay_failure);
  head = scan.end;
  journal_blocks_since_checkpoint = scan.blocks;
  set_unproven(scan.unproven_zones);
  // Replay trusted the journal's last commit because its data read back: maybe from a drive's
  // volatile cache, after a crash of the daemon alone. Make it durable before anything is
  // written after it, or a block written next would prove it to a later replay.
  if (scan.checked_last_commit) NYADS_RETURN_IF_ERROR(MetaIo(*dev).flush());

  // Data zones: where the device's write pointers are; live blocks counted from the maps
  // (once they are whole: until then, the checkpoint's counts and replay's additions).
  if (maps_complete()) count_zones_from_maps();
  auto report = dev->report_zones(sb.data_zones.first, sb.data_zones.count);
  if (!report.ok()) return report.status();
  for (std::uint32_t i = 0; i < zones.size(); ++i) {
    const ZoneInfo& info = (*report)[i];
    DataZone& z = zones[i];
    z.wp = info.state == ZoneState::kFull ? info.start + info.capacity : info.write_pointer;
    z.referenced = z.wp != z.start;  // what the volume holds at open may be named by durable records
    if (z.wp == z.start) {
      // An empty zone holds nothing, whatever the checkpoint's count said (reset since); the
      // count from the maps, once they are whole, stands (an extent there is fsck's to report).
      if (!maps_complete()) z.valid = 0;
      continue;
    }
    if (z.valid == 0 && maps_complete() && z.unproven) {
      // Its data is all dead, but replay reads it back until the journal's last commit is
      // proven: reset after the next commit.
      resets_after_commit.push_back(sb.data_zones.first + i);
      if (info.state != ZoneState::kFull) {
        NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kFinish, sb.data_zones.first + i));
        z.wp = info.start + info.capacity;
      }
    } else if (z.valid == 0 && maps_complete()) {
      // Written but referenced by nothing durable (writes never flushed, or data all dead).
      NYADS_RETURN_IF_ERROR(reset_zone(sb.data_zones.first + i));
    } else if (info.state != ZoneState::kFull) {
      // A partly written zone: finish it so it holds no active resource; the cleaner reclaims
      // it (or, dead but counted by a checkpoint whose maps are not read yet, it is reset
      // once they are: count_zones_from_maps).
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
  if (maps_complete())
    decide_shared_stream_cap();
  else
    shared_stream_cap = 2;  // until the maps are whole (count_zones_from_maps decides)
  // (Likewise after blocks of an older pass of the ring, left by a reset the power lost: the
  // zone must be reset before the journal can go on, and replay must never read it again.)
  if (scan.torn_tail || scan.stale_zone) {
    // Nothing goes into the journal before that checkpoint: blocks replay ignored (a torn one,
    // or those of a one-flush commit whose data did not land) lie between the head and the
    // zone's write pointer, and a block written past them would make them look like damage in
    // the middle of the journal to a replay from the same checkpoint, after a crash. The
    // records of the zones reset above are not needed: the checkpoint holds the state after
    // them, and a replay without it finds those zones' data dead again.
    pending.clear();
    pending_bytes = 0;
    return checkpoint();
  }
  if (scan.blocks >= options.checkpoint_after_journal_blocks / 4)
    last_checkpoint_time -= std::chrono::seconds(options.checkpoint_interval_seconds);
  return Status::Ok();
}

void Store::Impl::apply(const fmt::record::Extent& x) {
  Namespace* s = ns(x.ns_id);
  if (s == nullptr) return;  // fsck reports it; a store ignores a reference to nothing
  const std::uint64_t blocks = s->size / kBlock;
  if (x.vblock >= blocks) return;
  const std::size_t n_blocks = std::min<std::uint64_t>(x.checksums.size(), blocks - x.vblock);
  // What it displaces needs no accounting here: live counts come from the maps once they are
  // whole. While unread blocks remain, a replayed extent kills what they hold under it, and
  // its zone counts it (a count too high until then is safe: it only delays a reset).
  if (replaying) {
    note_replayed(*s, x.vblock, x.vblock + n_blocks);
    if (sb.data_zones.contains(dev->geometry().zone_of(x.lba))) zone_of_lba(x.lba).valid += n_blocks;
  }
  (void)s->map.map(x.vblock, x.lba, std::span(x.checksums).first(n_blocks));
}

void Store::Impl::apply_record(const fmt::JournalRecord& r, std::uint64_t seq) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, fmt::record::NamespaceCreate>) {
          erase_namespace(v.ns_id);
          namespaces.emplace(v.ns_id, Namespace{v.ns_id, v.name, v.size_bytes, v.block_size,
                                                v.thin ? fmt::kNamespaceThin : 0u, empty_map()});
          next_ns_id = std::max(next_ns_id, v.ns_id + 1);
        } else if constexpr (std::is_same_v<T, fmt::record::NamespaceDelete>) {
          erase_namespace(v.ns_id);
        } else if constexpr (std::is_same_v<T, fmt::record::NamespaceResize>) {
          if (Namespace* s = ns(v.ns_id)) {
            if (v.size_bytes < s->size) {
              note_replayed(*s, v.size_bytes / kBlock, s->size / kBlock);
              (void)s->map.unmap(v.size_bytes / kBlock, (s->size - v.size_bytes) / kBlock);
            }
            s->size = v.size_bytes;
          }
        } else if constexpr (std::is_same_v<T, fmt::record::Extent>) {
          apply(v);
          if (sb.data_zones.contains(dev->geometry().zone_of(v.lba))) zone_of_lba(v.lba).last_seq = seq;
        } else if constexpr (std::is_same_v<T, fmt::record::Trim>) {
          if (Namespace* s = ns(v.ns_id)) {
            note_replayed(*s, v.vblock, v.vblock + v.blocks);
            (void)s->map.unmap(v.vblock, v.blocks);
          }
        } else if constexpr (std::is_same_v<T, fmt::record::Moved>) {
          apply(v);
          if (sb.data_zones.contains(dev->geometry().zone_of(v.lba))) zone_of_lba(v.lba).last_seq = seq;
        }
      },
      r);
}

void Store::Impl::apply(const fmt::record::Moved& x) {
  Namespace* s = ns(x.ns_id);
  if (s == nullptr) return;
  std::uint64_t lba = x.lba;
  for (const auto& run : x.runs) {
    // A move keeps the checksums the blocks had: an unread block holding them is read first.
    if (Status st = read_range(*s, run.vblock, run.blocks); !st.ok() && replay_failure.ok()) replay_failure = st;
    (void)s->map.relocate(run.vblock, run.blocks, lba);
    lba += run.blocks * per;
  }
  if (sb.data_zones.contains(dev->geometry().zone_of(x.lba))) zone_of_lba(x.lba).valid += x.total_blocks();
}

}  // namespace nyads
