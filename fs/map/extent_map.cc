#include "fs/map/extent_map.h"

#include <algorithm>

namespace nyads {

std::vector<ExtentMap::Displaced> ExtentMap::cut(std::uint64_t vblock, std::uint64_t end) {
  std::vector<Displaced> out;
  auto it = extents_.upper_bound(vblock);
  if (it != extents_.begin()) --it;
  while (it != extents_.end() && it->first < end) {
    const std::uint64_t start = it->first;
    const std::uint64_t len = it->second.checksums.size();
    const std::uint64_t stop = start + len;
    if (stop <= vblock) {
      ++it;
      continue;
    }
    const std::uint64_t lo = std::max(start, vblock), hi = std::min(stop, end);
    out.push_back({it->second.lba + (lo - start) * per_, hi - lo});
    mapped_ -= hi - lo;
    Extent old = std::move(it->second);
    it = extents_.erase(it);
    // Keep what lies before and after the cut.
    if (start < lo) {
      extents_.emplace(start, Extent{old.lba, BlockChecksums(old.checksums.span().first(lo - start)), old.born});
    }
    if (hi < stop) {
      it = extents_
               .emplace(hi, Extent{old.lba + (hi - start) * per_,
                                   BlockChecksums(old.checksums.span().subspan(hi - start)), old.born})
               .first;
      ++it;
    }
  }
  return out;
}

std::vector<ExtentMap::Displaced> ExtentMap::map(std::uint64_t vblock, std::uint64_t lba,
                                                 std::span<const std::uint32_t> checksums, std::uint32_t born,
                                                 std::uint32_t join_within, std::uint32_t clock_mask) {
  if (checksums.empty()) return {};
  // Loading a checkpoint maps extents in order, each past the last: nothing to cut, and each
  // new extent goes at the end (a hinted insert, without a search).
  const auto last = extents_.rbegin();
  const bool past_the_end = last == extents_.rend() || last->first + last->second.checksums.size() <= vblock;
  auto displaced = past_the_end ? std::vector<Displaced>{} : cut(vblock, vblock + checksums.size());
  mapped_ += checksums.size();
  // Join with the extent before it when both are contiguous on the device too, up to the
  // extent length limit.
  auto next = past_the_end ? extents_.end() : extents_.lower_bound(vblock);
  if (next != extents_.begin()) {
    auto prev = std::prev(next);
    const std::uint64_t prev_len = prev->second.checksums.size();
    const bool same_zone = zone_blocks_ == 0 || prev->second.lba / zone_blocks_ == lba / zone_blocks_;
    const std::uint32_t was = prev->second.born;
    const bool same_tag = ((was ^ born) & ~clock_mask) == 0;
    const std::uint32_t apart =
        std::min<std::uint32_t>((was - born) & clock_mask, (born - was) & clock_mask);  // (the clock wraps)
    if (prev->first + prev_len == vblock && prev->second.lba + prev_len * per_ == lba && prev_len < kMaxExtentBlocks &&
        same_zone && same_tag && apart <= join_within) {
      const std::size_t k = std::min<std::size_t>(checksums.size(), kMaxExtentBlocks - prev_len);
      prev->second.checksums.append(checksums.first(k));
      vblock += k;
      lba += k * per_;
      checksums = checksums.subspan(k);
    }
  }
  // The rest in extents of at most kMaxExtentBlocks: a later split copies at most that much.
  while (!checksums.empty()) {
    const std::size_t k = std::min<std::size_t>(checksums.size(), kMaxExtentBlocks);
    extents_.emplace_hint(next, vblock,
                          Extent{lba, BlockChecksums(checksums.first(k)), born});  // (nothing lies between)
    vblock += k;
    lba += k * per_;
    checksums = checksums.subspan(k);
  }
  return displaced;
}

std::vector<ExtentMap::Displaced> ExtentMap::unmap(std::uint64_t vblock, std::uint64_t blocks) {
  return blocks == 0 ? std::vector<Displaced>{} : cut(vblock, vblock + blocks);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> ExtentMap::relocate(std::uint64_t vblock, std::uint64_t blocks,
                                                                         std::uint64_t lba) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> unmapped;
  for (const Piece& p : lookup(vblock, blocks)) {
    if (!p.mapped) {
      unmapped.emplace_back(p.vblock, p.blocks);
      continue;
    }
    const std::vector<std::uint32_t> sums(p.checksums, p.checksums + p.blocks);  // map() may free them
    (void)map(p.vblock, lba + (p.vblock - vblock) * per_, sums, p.born);
  }
  return unmapped;
}

std::vector<ExtentMap::Piece> ExtentMap::lookup(std::uint64_t vblock, std::uint64_t blocks) const {
  std::vector<Piece> out;
  const std::uint64_t end = vblock + blocks;
  std::uint64_t at = vblock;
  auto it = extents_.upper_bound(vblock);
  if (it != extents_.begin()) --it;
  for (; it != extents_.end() && at < end; ++it) {
    const std::uint64_t start = it->first, stop = start + it->second.checksums.size();
    if (stop <= at) continue;
    if (start >= end) break;
    if (start > at) {
      out.push_back({at, start - at, false, 0, nullptr});
      at = start;
    }
    const std::uint64_t hi = std::min(stop, end);
    out.push_back({at, hi - at, true, it->second.lba + (at - start) * per_, it->second.checksums.data() + (at - start),
                   it->second.born});
    at = hi;
  }
  if (at < end) out.push_back({at, end - at, false, 0, nullptr});
  return out;
}

void ExtentMap::for_each(
    const std::function<void(std::uint64_t, std::uint64_t, std::span<const std::uint32_t>)>& fn) const {
  for (const auto& [vblock, e] : extents_) fn(vblock, e.lba, e.checksums.span());
}

std::size_t ExtentMap::memory_bytes() const {
  // A std::map node (three pointers, color, key) plus the extent and its checksum array (when
  // not inline).
  constexpr std::size_t kNode = 4 * sizeof(void*) + sizeof(std::uint64_t) + sizeof(Extent);
  std::size_t bytes = sizeof(*this);
  for (const auto& [v, e] : extents_) bytes += kNode + e.checksums.heap_bytes();
  return bytes;
}

}  // namespace nyads
