#include <algorithm>

#include "nyads/volume.h"

namespace nyads {

Result<format::Superblock> plan_volume(const Geometry& g, const LayoutOptions& o) {
  if (g.block_size == 0 || format::kMetaBlockSize % g.block_size != 0)
    return NotSupported("device block size " + std::to_string(g.block_size) +
                        " does not divide the 4096-byte metadata block");
  format::Superblock sb;
  sb.block_size = g.block_size;
  sb.zone_count = g.zone_count;
  sb.zone_size = g.zone_size;
  sb.zone_capacity = g.zone_capacity;
  sb.max_open_zones = g.max_open_zones;
  sb.max_active_zones = g.max_active_zones;
  sb.max_append_blocks = g.max_append_blocks;
  const std::uint32_t journal = o.journal_zones ? o.journal_zones : std::clamp<std::uint32_t>(g.zone_count / 64, 2, 16);
  std::uint32_t checkpoint = o.checkpoint_zones;
  if (checkpoint == 0) {
    // Worst case: every 4 KiB block its own extent (24 + 4 bytes), twice over (the new
    // checkpoint is written before the old one is dropped), plus one zone of slack.
    const std::uint64_t store_blocks =
        std::uint64_t{g.zone_count} * g.zone_capacity * g.block_size / format::kStoreBlockSize;
    const std::uint64_t bytes = store_blocks * 28 * 2;
    const std::uint64_t zone_bytes = g.zone_capacity * g.block_size;
    checkpoint = static_cast<std::uint32_t>(std::max<std::uint64_t>(2, (bytes + zone_bytes - 1) / zone_bytes + 1));
  }
  sb.journal_zones = {2, journal};
  sb.checkpoint_zones = {sb.journal_zones.end(), checkpoint};
  if (std::uint64_t{sb.checkpoint_zones.end()} >= g.zone_count)
    return InvalidArgument("the device's " + std::to_string(g.zone_count) +
                           " zones leave no data zones after 2 superblock, " + std::to_string(journal) +
                           " journal and " + std::to_string(checkpoint) + " checkpoint zones");
  sb.data_zones = {sb.checkpoint_zones.end(), g.zone_count - sb.checkpoint_zones.end()};
  sb.reserved_data_zones =
      o.reserved_zones ? o.reserved_zones
                       : std::min(std::max<std::uint32_t>(2, sb.data_zones.count / 100), sb.data_zones.count - 1);
  return sb;
}

std::uint32_t zone_limit_of(std::uint32_t max_open_zones, std::uint32_t max_active_zones) {
  if (max_open_zones == 0 || max_active_zones == 0) return std::max(max_open_zones, max_active_zones);
  return std::min(max_open_zones, max_active_zones);
}

std::uint32_t shared_stream_count(std::uint32_t zone_limit, std::uint32_t shared_cap) {
  if (zone_limit == 0 || zone_limit >= 12) return std::min<std::uint32_t>(4, shared_cap);
  return zone_limit >= 6 ? 2 : 1;
}

std::uint32_t user_stream_budget(std::uint32_t zone_limit, std::uint32_t shared_cap) {
  if (zone_limit == 0) return 64;
  const std::uint32_t others = 3 + shared_stream_count(zone_limit, shared_cap);
  return zone_limit > others ? zone_limit - others : 1;
}

std::uint64_t promise_limit_bytes(const format::Superblock& sb, std::uint32_t zone_limit, std::size_t namespace_count,
                                  std::uint32_t shared_cap) {
  const std::uint64_t streams = std::min<std::uint64_t>(namespace_count, user_stream_budget(zone_limit, shared_cap)) +
                                shared_stream_count(zone_limit, shared_cap);
  const std::uint64_t headroom = std::uint64_t{sb.reserved_data_zones} + 1 + streams;
  const std::uint64_t usable = sb.data_zones.count > headroom ? sb.data_zones.count - headroom : 0;
  // Whole 4 KiB store blocks of each zone: what a zone holds of namespace data.
  const std::uint64_t per_zone = std::uint64_t{sb.zone_capacity} * sb.block_size / format::kStoreBlockSize;
  return usable * per_zone * format::kStoreBlockSize;
}

}  // namespace nyads
