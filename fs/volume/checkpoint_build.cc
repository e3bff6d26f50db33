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
  // Extents: as many per block as fit; a long one continues in the next block.
  std::vector<fmt::record::Extent> extents;
  std::size_t used = 0;
  if (content.extents_of) {
    content.extents_of([&](std::uint32_t id, std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
      for (std::size_t i = 0; i < sums.size();) {
        const std::size_t room = (fmt::kCheckpointPayloadBytes - used) / 4;
        if (room <= 6 + 1) {  // not even a 1-block extent fits: next block
          bodies.emplace_back(std::exchange(extents, {}));
          used = 0;
          continue;
        }
        const std::size_t k = std::min(sums.size() - i, room - 6);
        extents.push_back({id, vblock + i, lba + i * per, std::vector<std::uint32_t>(sums.begin() + static_cast<std::ptrdiff_t>(i), sums.begin() + static_cast<std::ptrdiff_t>(i + k))});
        used += 24 + 4 * k;
        i += k;
      }
    });
  }
  if (!extents.empty()) bodies.emplace_back(std::move(extents));
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
