// Building a checkpoint from a volume's state (the store's, or fsck's rebuilt one) and writing
// it beside the newest, so both write checkpoints the one way format.md §2.5 describes.
#include <algorithm>

#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

std::vector<CheckpointBody> pack_checkpoint(const CheckpointContent& content, std::uint32_t per) {
  std::vector<CheckpointBody> bodies;
  std::vector<fmt::NamespaceEntry> entries;
  for (const auto& e : content.namespaces) {
    entries.push_back(e);
    if (entries.size() == fmt::kNamespacesPerBlock) bodies.emplace_back(std::exchange(entries, {}));
  }
  if (!entries.empty() || bodies.empty()) bodies.emplace_back(std::move(entries));
  // Extents, packed (format.md §2.5): as many per block as fit; a long one continues in the
  // next block. An entry's size depends on the one before it, so it is measured as it is added.
  fmt::PackedExtents packed;
  std::size_t used = 0;
  if (content.extents_of) {
    content.extents_of([&](std::uint32_t id, std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
      for (std::size_t i = 0; i < sums.size();) {
        const std::size_t k = std::min(sums.size() - i, fmt::kMaxExtentBlocksPerRecord);
        fmt::record::Extent e{id, vblock + i, lba + i * per, {}};
        const fmt::record::Extent* previous = packed.extents.empty() ? nullptr : &packed.extents.back();
        // The entry's fixed part with one checksum: if even that does not fit, next block.
        e.checksums.assign(1, 0);
        const std::size_t fixed = fmt::packed_extent_bytes(e, previous) - 4;
        if (used + fixed + 4 > fmt::kCheckpointPayloadBytes) {
          bodies.emplace_back(std::exchange(packed, {}));
          used = 0;
          continue;
        }
        // Varints of the count may grow by a byte; measure the count that fits exactly.
        std::size_t take = std::min(k, (fmt::kCheckpointPayloadBytes - used - fixed) / 4);
        e.checksums.assign(sums.begin() + static_cast<std::ptrdiff_t>(i), sums.begin() + static_cast<std::ptrdiff_t>(i + take));
        while (used + fmt::packed_extent_bytes(e, previous) > fmt::kCheckpointPayloadBytes) {
          --take;
          e.checksums.pop_back();
        }
        if (take == 0) {
          bodies.emplace_back(std::exchange(packed, {}));
          used = 0;
          continue;
        }
        used += fmt::packed_extent_bytes(e, previous);
        packed.extents.push_back(std::move(e));
        i += take;
      }
    });
  }
  if (!packed.extents.empty()) bodies.emplace_back(std::move(packed));
  std::vector<fmt::ZoneEntry> zone_entries;
  for (const auto& z : content.zones) {
    zone_entries.push_back(z);
    if (zone_entries.size() == fmt::kZonesPerBlock) bodies.emplace_back(std::exchange(zone_entries, {}));
  }
  if (!zone_entries.empty()) bodies.emplace_back(std::move(zone_entries));
  return bodies;
}

Result<std::vector<std::uint32_t>> write_checkpoint_beside(ZonedDevice& device, const fmt::Superblock& sb, std::uint64_t seq,
                                                           const std::vector<CheckpointBody>& bodies, fmt::CheckpointCommit commit,
                                                           const std::vector<std::uint32_t>& keep) {
  MetaIo io(device);
  std::vector<std::uint32_t> targets;
  const std::uint32_t needed = checkpoint_zones_needed(sb, bodies.size());
  for (std::uint32_t z = sb.checkpoint_zones.first; z < sb.checkpoint_zones.end() && targets.size() < needed; ++z) {
    if (std::find(keep.begin(), keep.end(), z) != keep.end()) continue;
    auto w = io.written(z);
    if (!w.ok()) return w.status();
    if (*w != 0) NYADS_RETURN_IF_ERROR(device.manage_zone(ZoneAction::kReset, z));
    targets.push_back(z);
  }
  NYADS_RETURN_IF_ERROR(write_checkpoint(device, sb, seq, targets, bodies, commit));
  targets.resize(std::min<std::size_t>(targets.size(), needed));
  return targets;
}

}  // namespace nyads
