// ExtentMap: one namespace's map from virtual blocks (4 KiB units of its address space) to
// where they live on the device, with each block's checksum. Runs of consecutive virtual
// blocks written together are kept as one extent; an overwrite or trim splits what it covers
// and returns what it displaced, so the caller can account for the space it frees.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "fs/map/block_checksums.h"

namespace nyads {

class ExtentMap {
 public:
  // Extents are at most this long (1 MiB of data), so splitting one copies little.
  static constexpr std::size_t kMaxExtentBlocks = 256;

  // device_blocks_per_block: device blocks per 4 KiB virtual block (1 or 8). zone_blocks: the
  // device's zone size in device blocks; an extent never spans two zones (a zone whose
  // capacity is its size ends where the next begins, and a read may not cross them), 0: no
  // zones.
  explicit ExtentMap(std::uint32_t device_blocks_per_block = 1, std::uint64_t zone_blocks = 0)
      : per_(device_blocks_per_block), zone_blocks_(zone_blocks) {}

  // Device blocks that stopped being referenced: lba .. lba + blocks * per - 1.
  struct Displaced {
    std::uint64_t lba;
    std::uint64_t blocks;  // virtual blocks
  };
  // Maps vblock .. vblock + checksums.size() - 1 to consecutive blocks from lba. `born`: the
  // caller's 32-bit birth for the data, kept with it (through splits and relocations) so the
  // caller can tell how long data lives: a clock in the bits of `clock_mask` (2^k - 1; the
  // clock wraps there) and a tag in the bits above. Data continuing the extent before it
  // joins it (taking its birth) only when their tags are equal and their clocks at most
  // `join_within` apart.
  std::vector<Displaced> map(std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> checksums,
                             std::uint32_t born = 0, std::uint32_t join_within = UINT32_MAX,
                             std::uint32_t clock_mask = UINT32_MAX);
  // Unmaps vblock .. vblock + blocks - 1 (they read as zeros).
  std::vector<Displaced> unmap(std::uint64_t vblock, std::uint64_t blocks);
  // Moves the mapped blocks of vblock .. vblock + blocks - 1 to consecutive blocks from lba
  // (block i to lba + i * per), keeping their checksums and birth; unmapped ones stay unmapped.
  // Returns the unmapped pieces, as (vblock, blocks).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> relocate(std::uint64_t vblock, std::uint64_t blocks,
                                                                std::uint64_t lba);

  // The range vblock .. vblock + blocks - 1 as mapped and unmapped pieces, in order.
  struct Piece {
    std::uint64_t vblock = 0;
    std::uint64_t blocks = 0;
    bool mapped = false;
    std::uint64_t lba = 0;                     // when mapped
    const std::uint32_t* checksums = nullptr;  // when mapped: one per block
    std::uint32_t born = 0;                    // when mapped: the caller's birth for it (see map())
  };
  std::vector<Piece> lookup(std::uint64_t vblock, std::uint64_t blocks) const;

  std::uint64_t mapped_blocks() const { return mapped_; }
  std::size_t extent_count() const { return extents_.size(); }
  // Every extent in virtual-block order: (vblock, lba, checksums).
  void for_each(const std::function<void(std::uint64_t, std::uint64_t, std::span<const std::uint32_t>)>& fn) const;
  // Approximate bytes of memory this map holds.
  std::size_t memory_bytes() const;

 private:
  struct Extent {
    std::uint64_t lba;
    BlockChecksums checksums;
    std::uint32_t born = 0;  // see map()
  };
  static_assert(sizeof(Extent) == 24, "an extent is 24 bytes: lba, inline checksums or their array, birth");
  // Cuts the extents overlapping [vblock, end) out of the map, returning what they held there.
  std::vector<Displaced> cut(std::uint64_t vblock, std::uint64_t end);

  std::uint32_t per_;
  std::uint64_t zone_blocks_;
  std::map<std::uint64_t, Extent> extents_;  // keyed by first virtual block
  std::uint64_t mapped_ = 0;
};

}  // namespace nyads
