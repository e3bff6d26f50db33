// Reading back the data of the journal's last unflushed commit (format.md §2.4): one device
// flush made its journal blocks and its data durable together, so after a crash the blocks
// may be there and some of the data not.
#include <algorithm>

#include "nyads/aligned_buffer.h"
#include "nyads/sync_device.h"
#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }
}  // namespace

Result<UnflushedCheck> check_unflushed_commit(ZonedDevice& device, const fmt::Superblock& sb,
                                              std::span<const fmt::JournalBlock> blocks) {
  const Geometry& g = device.geometry();
  const std::uint32_t per = sb.blocks_per_meta_block();  // device blocks per 4 KiB data block
  if (blocks.size() > fmt::kUnflushedCommitMaxJournalBlocks)
    return Corruption("an unflushed commit of " + n(blocks.size()) + " journal blocks (a writer makes at most " +
                      n(fmt::kUnflushedCommitMaxJournalBlocks) + ")");
  std::uint64_t data_blocks = 0;
  for (const auto& b : blocks)
    for (const auto& r : b.records)
      if (const auto* x = std::get_if<fmt::record::Extent>(&r)) data_blocks += x->checksums.size();
  if (data_blocks > fmt::kUnflushedCommitMaxDataBlocks)
    return Corruption("an unflushed commit naming " + n(data_blocks) + " data blocks (a writer names at most " +
                      n(fmt::kUnflushedCommitMaxDataBlocks) + ")");
  UnflushedCheck check;
  for (const auto& b : blocks) {
    for (const auto& r : b.records) {
      if (std::holds_alternative<fmt::record::Moved>(r))
        return Corruption("journal block " + n(b.seq) +
                          ": a moved record in an unflushed commit (its data cannot be checked)");
      const auto* x = std::get_if<fmt::record::Extent>(&r);
      if (x == nullptr) continue;
      const std::string what = "journal block " + n(b.seq) + ": namespace " + n(x->ns_id) + " blocks " + n(x->vblock) +
                               ".." + n(x->vblock + x->checksums.size() - 1) + " at device block " + n(x->lba);
      const std::uint64_t device_blocks = x->checksums.size() * std::uint64_t{per};
      if (x->lba >= std::uint64_t{g.zone_count} * g.zone_size || !sb.data_zones.contains(g.zone_of(x->lba)))
        return Corruption(what + ": not in a data zone");
      const std::uint32_t zone = g.zone_of(x->lba);
      auto info = device.report_zones(zone, 1);
      if (!info.ok()) return info.status().with_context(what);
      const ZoneInfo& z = (*info)[0];
      const std::uint64_t end = z.state == ZoneState::kFull ? z.start + z.capacity : z.write_pointer;
      if (x->lba + device_blocks > end) {
        // The device kept a prefix of the zone's writes: this one did not land.
        check.landed = false;
        check.why = what + ": past the zone's write pointer (the data did not reach the device)";
        return check;
      }
      auto data = AlignedBuffer::uninitialized(x->checksums.size() * fmt::kMetaBlockSize);
      NYADS_RETURN_IF_ERROR(SyncDevice(device).read(x->lba, static_cast<std::uint32_t>(device_blocks), data.data()));
      for (std::size_t i = 0; i < x->checksums.size(); ++i) {
        const auto block = data.span().subspan(i * fmt::kMetaBlockSize, fmt::kMetaBlockSize);
        // Below the write pointer a device holds what was written: a mismatch is damage.
        if (fmt::data_checksum(sb.seed(), x->ns_id, x->vblock + i, block) != x->checksums[i])
          return Corruption(what + ": block " + n(x->vblock + i) +
                            " does not match its checksum, below the zone's write pointer");
      }
      check.data_zones.push_back(zone);
    }
  }
  std::sort(check.data_zones.begin(), check.data_zones.end());
  check.data_zones.erase(std::unique(check.data_zones.begin(), check.data_zones.end()), check.data_zones.end());
  return check;
}

}  // namespace nyads
