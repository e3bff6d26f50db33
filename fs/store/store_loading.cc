// The maps of an indexed checkpoint, read as they are needed. Opening reads the checkpoint's
// namespaces, index and zones, then replays the journal, without reading its extent blocks:
// recovery then costs the work since the checkpoint, not the data stored. A replayed write
// or trim over an unread block is noted (`replayed`); when the block is read, its extents
// go into the map except where replay changed them, and those parts leave their zones' live
// counts. A replayed cleaner move needs the checksums of what it moved, so it reads the
// blocks it touches.
#include "fs/store/store_impl.h"

namespace nyads {

void Store::Impl::defer_extents(std::vector<IndexedExtentBlock> index) {
  checkpoint_index = std::move(index);
  index_read.assign(checkpoint_index.size(), false);
  unread_total = checkpoint_index.size();
  read_cursor = 0;
  // A namespace's blocks are consecutive in the index (it is sorted by namespace, then block).
  for (std::size_t i = 0; i < checkpoint_index.size();) {
    const std::uint32_t id = checkpoint_index[i].entry.ns_id;
    std::size_t end = i;
    std::uint64_t blocks = 0;
    while (end < checkpoint_index.size() && checkpoint_index[end].entry.ns_id == id)
      blocks += checkpoint_index[end++].entry.mapped_blocks;
    if (Namespace* x = ns(id)) {
      x->index_first = static_cast<std::uint32_t>(i);
      x->index_count = x->index_unread = static_cast<std::uint32_t>(end - i);
      x->unread_blocks = blocks;
    } else {
      // Extents of a namespace the checkpoint does not have: fsck reports them; the store
      // ignores them, as it does when it reads a checkpoint whole.
      for (std::size_t k = i; k < end; ++k) index_read[k] = true;
      unread_total -= end - i;
    }
    i = end;
  }
}

void Store::Impl::note_replayed(Namespace& x, std::uint64_t first, std::uint64_t end) {
  if (x.index_unread == 0 || first >= end) return;
  // Merge with the ranges it touches or adjoins.
  auto it = x.replayed.upper_bound(first);
  if (it != x.replayed.begin() && std::prev(it)->second >= first) --it;
  while (it != x.replayed.end() && it->first <= end) {
    first = std::min(first, it->first);
    end = std::max(end, it->second);
    it = x.replayed.erase(it);
  }
  x.replayed.emplace(first, end);
}

void Store::Impl::erase_namespace(std::uint32_t id) {
  Namespace* x = ns(id);
  if (x == nullptr) return;
  for (std::uint32_t k = x->index_first; x->index_unread > 0 && k < x->index_first + x->index_count; ++k) {
    if (index_read[k]) continue;
    --x->index_unread;
    index_read[k] = true;
    --unread_total;
  }
  namespaces.erase(id);
  // Its blocks' data is dead: the zones' counts still hold it until they are counted again.
  if (unread_total == 0 && !checkpoint_index.empty()) count_zones_from_maps();
}

Status Store::Impl::read_range(Namespace& x, std::uint64_t first, std::uint64_t count) {
  if (x.index_unread == 0 || count == 0) return Status::Ok();
  const std::uint64_t end = first + count;
  // The entries are in vblock order and do not overlap: the first that ends past `first`.
  const auto begin = checkpoint_index.begin() + x.index_first, last = begin + x.index_count;
  auto it = std::partition_point(begin, last, [&](const IndexedExtentBlock& b) { return b.entry.end_vblock <= first; });
  std::vector<std::size_t> wanted;
  for (; it != last && it->entry.first_vblock < end; ++it) {
    const auto k = static_cast<std::size_t>(it - checkpoint_index.begin());
    if (!index_read[k]) wanted.push_back(k);
  }
  return read_entries(wanted);
}

Status Store::Impl::read_some(std::size_t max_blocks) {
  std::vector<std::size_t> wanted;
  for (; read_cursor < checkpoint_index.size() && wanted.size() < max_blocks; ++read_cursor)
    if (!index_read[read_cursor]) wanted.push_back(read_cursor);
  return read_entries(wanted);
}

Status Store::Impl::read_all() {
  // A block that failed fails again: say so, not read on (nor spin on what is left).
  NYADS_RETURN_IF_ERROR(maps_failure);
  while (!maps_complete()) NYADS_RETURN_IF_ERROR(read_some(256));
  return Status::Ok();
}

Status Store::Impl::read_entries(const std::vector<std::size_t>& entries) {
  if (entries.empty()) return Status::Ok();
  std::vector<IndexedExtentBlock> blocks;
  blocks.reserve(entries.size());
  for (std::size_t k : entries) blocks.push_back(checkpoint_index[k]);
  std::size_t next = 0;
  const Geometry& g = dev->geometry();
  Status st = read_indexed_extent_blocks(
      *dev, sb, checkpoint_seq, newest_checkpoint_zones, blocks,
      [&](const IndexedExtentBlock& b, std::vector<fmt::record::Extent>& extents) {
        const std::size_t k = entries[next++];
        Namespace& x = *ns(b.entry.ns_id);  // entries of deleted namespaces are marked read
        const std::uint64_t size_blocks = x.size / kBlock;
        for (const auto& e : extents) {
          // Each extent, less what replay changed since (and what lies past the namespace's end:
          // a shrink replay noted too), goes into the map; the rest is dead.
          const std::uint64_t e_end = e.vblock + e.checksums.size();
          auto it = x.replayed.upper_bound(e.vblock);
          if (it != x.replayed.begin() && std::prev(it)->second > e.vblock) --it;
          std::uint64_t at = e.vblock;
          auto lba_of = [&](std::uint64_t vblock) { return e.lba + (vblock - e.vblock) * per; };
          auto piece = [&](std::uint64_t from, std::uint64_t to, bool live) {
            if (live && from < std::min(to, size_blocks)) {
              const std::uint64_t k_live = std::min(to, size_blocks) - from;
              release(x.map.map(from, lba_of(from), std::span(e.checksums).subspan(from - e.vblock, k_live)));
              from += k_live;
            }
            if (from < to && sb.data_zones.contains(g.zone_of(lba_of(from)))) release({{lba_of(from), to - from}});
          };
          while (at < e_end) {
            if (it == x.replayed.end() || it->first >= e_end) {
              piece(at, e_end, true);
              break;
            }
            piece(at, std::max(at, it->first), true);
            const std::uint64_t dead_end = std::min(e_end, it->second);
            piece(std::max(at, it->first), dead_end, false);
            at = dead_end;
            ++it;
          }
        }
        index_read[k] = true;
        --unread_total;
        --x.index_unread;
        x.unread_blocks -= b.entry.mapped_blocks;
        if (x.index_unread == 0) x.replayed.clear();
        return Status::Ok();
      });
  if (!st.ok()) {
    // The entries from the failed one on are still unread: idle reading resumes there.
    read_cursor = std::min(read_cursor, entries[next]);
    st = IoError("reading the maps from checkpoint " + n(checkpoint_seq) + ": " + st.message() + " (run fsck.nyads)");
    if (maps_failure.ok()) maps_failure = st;
    return st;
  }
  if (maps_complete()) count_zones_from_maps();
  return Status::Ok();
}

void Store::Impl::count_zones_from_maps() {
  const Geometry& g = dev->geometry();
  for (auto& z : zones) {
    z.valid = 0;
    z.owners.clear();
  }
  for (auto& [id, x] : namespaces) {
    x.map.for_each([&, id = id](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
      if (!sb.data_zones.contains(g.zone_of(lba))) return;
      DataZone& z = zone_of_lba(lba);
      z.valid += sums.size();
      z.add_owner(id, vblock, lba, sums.size(), per);
    });
    x.replayed.clear();
    x.index_first = x.index_count = x.index_unread = 0;
    x.unread_blocks = 0;
  }
  for (auto& z : zones) {
    z.owners.shrink_to_fit();
    // Zones the unread blocks kept alive, now known dead: reset after the next commit.
    const std::uint32_t number = zone_number(z);
    if (z.valid == 0 && z.wp != z.start && z.stream == kNoStream &&
        std::find(resets_after_commit.begin(), resets_after_commit.end(), number) == resets_after_commit.end())
      resets_after_commit.push_back(number);
  }
  std::vector<IndexedExtentBlock>().swap(checkpoint_index);
  std::vector<bool>().swap(index_read);
  read_cursor = 0;
  decide_shared_stream_cap();
}

}  // namespace nyads
