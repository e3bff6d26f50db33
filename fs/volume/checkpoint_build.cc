// Building a checkpoint from a volume's state (the store's, or fsck's rebuilt one) and writing
// it beside the newest, so both write checkpoints the one way format.md §2.5 describes.
#include <algorithm>

#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

std::vector<CheckpointBody> pack_checkpoint(const CheckpointContent& content, std::uint32_t per,
                                            CheckpointLayout layout) {
  std::vector<CheckpointBody> bodies;
  std::vector<fmt::NamespaceEntry> entries;
  for (const auto& e : content.namespaces) {
    entries.push_back(e);
    if (entries.size() == fmt::kNamespacesPerBlock) bodies.emplace_back(std::exchange(entries, {}));
  }
  if (!entries.empty() || bodies.empty()) bodies.emplace_back(std::move(entries));
  // Extents (format.md §2.5), packed (kind 5) or fixed-width (kind 2): as many per block as
  // fit; a long one continues in the next block. A packed entry's size depends on the one
  // before it, so each is measured as it is added. Indexed, a block holds one namespace, and
  // each block gets an index entry (its checksum is write_checkpoint's to fill in).
  const bool packed = layout.packed;
  auto entry_bytes = [packed](const fmt::record::Extent& e, const fmt::record::Extent* previous) {
    return packed ? fmt::packed_extent_bytes(e, previous) : fmt::kExtentHeaderBytes + 4 * e.checksums.size();
  };
  std::vector<CheckpointBody> extent_bodies;
  std::vector<fmt::ExtentIndexEntry> index;
  std::vector<fmt::record::Extent> block;
  std::size_t used = 0;
  auto end_block = [&]() {
    if (layout.indexed) {
      fmt::ExtentIndexEntry entry{block.front().ns_id, 0, block.front().vblock,
                                  block.back().vblock + block.back().checksums.size(), 0};
      for (const auto& e : block) entry.mapped_blocks += static_cast<std::uint32_t>(e.checksums.size());
      index.push_back(entry);
    }
    if (packed)
      extent_bodies.emplace_back(fmt::PackedExtents{std::exchange(block, {})});
    else
      extent_bodies.emplace_back(std::exchange(block, {}));
    used = 0;
  };
  if (content.extents_of) {
    content.extents_of(
        [&](std::uint32_t id, std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
          if (layout.indexed && !block.empty() && block.back().ns_id != id) end_block();
          for (std::size_t i = 0; i < sums.size();) {
            const std::size_t k = std::min(sums.size() - i, fmt::kMaxExtentBlocksPerRecord);
            fmt::record::Extent e{id, vblock + i, lba + i * per, {}};
            const fmt::record::Extent* previous = block.empty() ? nullptr : &block.back();
            // The entry's fixed part with one checksum: if even that does not fit, next block.
            e.checksums.assign(1, 0);
            const std::size_t fixed = entry_bytes(e, previous) - 4;
            if (used + fixed + 4 > fmt::kCheckpointPayloadBytes) {
              end_block();
              continue;
            }
            // A packed head may grow by a byte with the count: take the count that fits exactly.
            std::size_t take = std::min(k, (fmt::kCheckpointPayloadBytes - used - fixed) / 4);
            e.checksums.assign(sums.begin() + static_cast<std::ptrdiff_t>(i),
                               sums.begin() + static_cast<std::ptrdiff_t>(i + take));
            while (used + entry_bytes(e, previous) > fmt::kCheckpointPayloadBytes) {
              --take;
              e.checksums.pop_back();
            }
            if (take == 0) {  // cannot happen (the fixed part and one checksum fit), but never loop on it
              end_block();
              continue;
            }
            used += entry_bytes(e, previous);
            block.push_back(std::move(e));
            i += take;
          }
        });
  }
  if (!block.empty()) end_block();
  for (std::size_t i = 0; i < index.size(); i += fmt::kExtentIndexEntriesPerBlock) {
    const auto from = index.begin() + static_cast<std::ptrdiff_t>(i);
    bodies.emplace_back(fmt::ExtentIndex{
        {from, from + static_cast<std::ptrdiff_t>(std::min(fmt::kExtentIndexEntriesPerBlock, index.size() - i))}});
  }
  bodies.insert(bodies.end(), std::make_move_iterator(extent_bodies.begin()),
                std::make_move_iterator(extent_bodies.end()));
  std::vector<fmt::ZoneEntry> zone_entries;
  for (const auto& z : content.zones) {
    zone_entries.push_back(z);
    if (zone_entries.size() == fmt::kZonesPerBlock) bodies.emplace_back(std::exchange(zone_entries, {}));
  }
  if (!zone_entries.empty()) bodies.emplace_back(std::move(zone_entries));
  return bodies;
}

Result<std::vector<std::uint32_t>> write_checkpoint_beside(ZonedDevice& device, const fmt::Superblock& sb,
                                                           std::uint64_t seq, const std::vector<CheckpointBody>& bodies,
                                                           fmt::CheckpointCommit commit,
                                                           const std::vector<std::uint32_t>& keep) {
  MetaIo io(device);
  std::vector<std::uint32_t> targets;
  bool reset_any = false;
  const std::uint32_t needed = checkpoint_zones_needed(sb, bodies.size());
  for (std::uint32_t z = sb.checkpoint_zones.first; z < sb.checkpoint_zones.end() && targets.size() < needed; ++z) {
    if (std::find(keep.begin(), keep.end(), z) != keep.end()) continue;
    auto w = io.written(z);
    if (!w.ok()) return w.status();
    if (*w != 0) {
      NYADS_RETURN_IF_ERROR(device.manage_zone(ZoneAction::kReset, z));
      reset_any = true;
    }
    targets.push_back(z);
  }
  // The resets are made durable before the new checkpoint is written over the old one's
  // blocks. Otherwise a power cut could leave a zone that still holds an older checkpoint
  // with some blocks of the new one over it (a reset is durable at the next flush; the
  // emulated file writes pages back in any order): a torn checkpoint that reads as a damaged
  // older one. After the commit that comes before a checkpoint, this flush has little to do.
  if (reset_any) NYADS_RETURN_IF_ERROR(io.flush());
  NYADS_RETURN_IF_ERROR(write_checkpoint(device, sb, seq, targets, bodies, commit));
  targets.resize(std::min<std::size_t>(targets.size(), needed));
  return targets;
}

}  // namespace nyads
