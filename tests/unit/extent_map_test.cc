// ExtentMap against a plain per-block model: random maps and unmaps, every lookup compared.
#include "fs/map/extent_map.h"

#include <random>

#include "test_util.h"

namespace nyads {
namespace {

TEST(ExtentMap, MapsSplitsAndReportsWhatItDisplaces) {
  ExtentMap m(1);
  const std::uint32_t a[] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_TRUE(m.map(10, 1000, a).empty());
  EXPECT_EQ(m.mapped_blocks(), 8u);
  const std::uint32_t b[] = {9, 9};
  auto d = m.map(12, 2000, b);  // overwrite blocks 12, 13 in the middle
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].lba, 1002u);
  EXPECT_EQ(d[0].blocks, 2u);
  EXPECT_EQ(m.extent_count(), 3u);
  auto p = m.lookup(8, 12);  // 8..19
  ASSERT_EQ(p.size(), 5u);
  EXPECT_FALSE(p[0].mapped);
  EXPECT_EQ(p[0].blocks, 2u);
  EXPECT_EQ(p[1].lba, 1000u);
  EXPECT_EQ(p[1].checksums[1], 2u);
  EXPECT_EQ(p[2].lba, 2000u);
  EXPECT_EQ(p[3].lba, 1004u);
  EXPECT_EQ(p[3].checksums[0], 5u);
  EXPECT_EQ(p[4].vblock, 18u);
  EXPECT_FALSE(p[4].mapped);
  auto u = m.unmap(0, 100);
  EXPECT_EQ(u.size(), 3u);
  EXPECT_EQ(m.mapped_blocks(), 0u);
  EXPECT_EQ(m.extent_count(), 0u);
}

TEST(ExtentMap, JoinsWritesThatContinueEachOtherUpToTheLengthLimit) {
  ExtentMap m(8);  // 512-byte device blocks
  const std::uint32_t c[] = {1};
  for (std::uint64_t i = 0; i < 100; ++i) m.map(i, 4096 + i * 8, c);
  EXPECT_EQ(m.extent_count(), 1u);
  EXPECT_EQ(m.lookup(50, 1)[0].lba, 4096u + 50 * 8);
  for (std::uint64_t i = 100; i < 600; ++i) m.map(i, 4096 + i * 8, c);
  EXPECT_EQ(m.extent_count(), 3u);  // 256 + 256 + 88
  std::vector<std::uint32_t> long_run(1000, 7);
  ExtentMap big(1);
  big.map(0, 0, long_run);
  EXPECT_EQ(big.extent_count(), 4u);  // 256 x 3 + 232
  EXPECT_EQ(big.mapped_blocks(), 1000u);
  auto pieces = big.lookup(0, 1000);
  std::uint64_t total = 0;
  for (const auto& p : pieces) {
    EXPECT_TRUE(p.mapped);
    EXPECT_EQ(p.lba, p.vblock);
    total += p.blocks;
  }
  EXPECT_EQ(total, 1000u);
}

TEST(ExtentMap, AgreesWithAPerBlockModel) {
  std::mt19937_64 rng(5);
  ExtentMap m(1);
  struct Cell {
    bool mapped = false;
    std::uint64_t lba = 0;
    std::uint32_t sum = 0;
  };
  std::vector<Cell> model(512);
  std::uint64_t next_lba = 1 << 20;
  std::map<std::uint64_t, int> live;  // lba -> referenced
  for (int step = 0; step < 5000; ++step) {
    const std::uint64_t v = rng() % 500, n = 1 + rng() % 12;
    std::vector<ExtentMap::Displaced> d;
    if (rng() % 4 == 0) {
      d = m.unmap(v, n);
      for (std::uint64_t i = v; i < v + n; ++i) model[i].mapped = false;
    } else {
      std::vector<std::uint32_t> sums(n);
      for (auto& s : sums) s = static_cast<std::uint32_t>(rng());
      d = m.map(v, next_lba, sums);
      for (std::uint64_t i = 0; i < n; ++i) model[v + i] = {true, next_lba + i, sums[i]};
      for (std::uint64_t i = 0; i < n; ++i) live[next_lba + i] = 1;
      next_lba += n + (rng() % 2);
    }
    for (const auto& x : d)
      for (std::uint64_t i = 0; i < x.blocks; ++i)
        ASSERT_EQ(live.erase(x.lba + i), 1u) << "displaced twice or never mapped";
  }
  std::uint64_t mapped = 0;
  for (const auto& p : m.lookup(0, 512)) {
    for (std::uint64_t i = 0; i < p.blocks; ++i) {
      const Cell& c = model[p.vblock + i];
      ASSERT_EQ(c.mapped, p.mapped) << p.vblock + i;
      if (p.mapped) {
        ASSERT_EQ(c.lba, p.lba + i);
        ASSERT_EQ(c.sum, p.checksums[i]);
        ++mapped;
      }
    }
  }
  EXPECT_EQ(mapped, m.mapped_blocks());
  EXPECT_EQ(live.size(), m.mapped_blocks());  // every live block is referenced exactly once
}

// A zone whose capacity is its size ends where the next zone begins: blocks contiguous on the
// device across that boundary stay two extents, so no read crosses zones.
TEST(ExtentMap, NeverJoinsAcrossAZoneBoundary) {
  ExtentMap m(1, 64);  // zones of 64 device blocks
  std::vector<std::uint32_t> sums(8, 7);
  m.map(0, 56, sums);   // device blocks 56..63: the end of zone 0
  m.map(8, 64, sums);   // 64..71: the start of zone 1, contiguous on the device
  m.map(16, 72, sums);  // 72..79: joins the extent before it (same zone)
  EXPECT_EQ(m.extent_count(), 2u);
  auto pieces = m.lookup(0, 24);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].lba, 56u);
  EXPECT_EQ(pieces[0].blocks, 8u);
  EXPECT_EQ(pieces[1].lba, 64u);
  EXPECT_EQ(pieces[1].blocks, 16u);
}

// What the cleaner's moved records do: mapped blocks go to the new place with their
// checksums; unmapped ones are returned and stay unmapped.
TEST(ExtentMap, RelocateKeepsChecksumsAndReportsUnmappedBlocks) {
  ExtentMap m;
  m.map(10, 1000, std::vector<std::uint32_t>{1, 2, 3});
  const auto unmapped = m.relocate(9, 5, 5000);  // 9 and 13 hold nothing
  ASSERT_EQ(unmapped.size(), 2u);
  EXPECT_EQ(unmapped[0], std::make_pair(std::uint64_t{9}, std::uint64_t{1}));
  EXPECT_EQ(unmapped[1], std::make_pair(std::uint64_t{13}, std::uint64_t{1}));
  const auto pieces = m.lookup(10, 3);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_TRUE(pieces[0].mapped);
  EXPECT_EQ(pieces[0].lba, 5001u);
  EXPECT_EQ(std::vector<std::uint32_t>(pieces[0].checksums, pieces[0].checksums + 3),
            (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(m.mapped_blocks(), 3u);
}

// Each extent keeps the clock its data was written at (`born`), through splits and moves;
// data continuing an extent joins it only when their births are close enough.
TEST(ExtentMap, BirthIsKeptThroughSplitsAndMovesAndLimitsJoining) {
  ExtentMap m;
  m.map(0, 1000, std::vector<std::uint32_t>(8, 1), /*born=*/7);
  m.map(3, 2000, std::vector<std::uint32_t>(2, 2), /*born=*/9);  // splits 0-7 in three
  auto p = m.lookup(0, 8);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].born, 7u);
  EXPECT_EQ(p[1].born, 9u);
  EXPECT_EQ(p[2].born, 7u);
  (void)m.relocate(5, 3, 3000);  // the moved tail keeps its birth
  p = m.lookup(5, 3);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].lba, 3000u);
  EXPECT_EQ(p[0].born, 7u);
  // Continuing 5-7 on the device: births 2 apart join within 2, not within 1.
  m.map(8, 3003, std::vector<std::uint32_t>(1, 3), /*born=*/5, /*join_within=*/1);
  EXPECT_EQ(m.lookup(5, 4).size(), 2u);
  m.map(8, 3003, std::vector<std::uint32_t>(1, 3), /*born=*/5, /*join_within=*/2);
  p = m.lookup(5, 4);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].born, 7u) << "joined data takes the extent's birth";
  // The clock wraps: UINT32_MAX and 1 are 2 apart.
  m.map(100, 5000, std::vector<std::uint32_t>(1, 4), /*born=*/UINT32_MAX);
  m.map(101, 5001, std::vector<std::uint32_t>(1, 4), /*born=*/1, /*join_within=*/2);
  EXPECT_EQ(m.lookup(100, 2).size(), 1u);
}

// A birth may pack a tag above a narrower clock: data joins only with the same tag, and the
// clock wraps at the mask, not at 2^32.
TEST(ExtentMap, BirthsJoinOnlyWithTheSameTagAndTheClockWrapsAtItsMask) {
  constexpr std::uint32_t kMask = (1u << 30) - 1;
  ExtentMap m;
  // Tag 1 at the clock's last tick, then tag 2 at its first: 1 apart on 32 bits, not joined.
  m.map(0, 1000, std::vector<std::uint32_t>(1, 1), /*born=*/(1u << 30) | kMask);
  m.map(1, 1001, std::vector<std::uint32_t>(1, 1), /*born=*/2u << 30, /*join_within=*/4, kMask);
  EXPECT_EQ(m.lookup(0, 2).size(), 2u) << "different tags joined";
  // Tag 3 at clock 0 after tag 0 at the clock's last tick: 1 apart on 32 bits too.
  m.map(10, 2000, std::vector<std::uint32_t>(1, 1), /*born=*/3u << 30);
  m.map(11, 2001, std::vector<std::uint32_t>(1, 1), /*born=*/kMask, /*join_within=*/4, kMask);
  EXPECT_EQ(m.lookup(10, 2).size(), 2u) << "different tags joined";
  // One tag across the clock's wrap: 2 apart, joined.
  m.map(20, 3000, std::vector<std::uint32_t>(1, 1), /*born=*/(2u << 30) | kMask);
  m.map(21, 3001, std::vector<std::uint32_t>(1, 1), /*born=*/(2u << 30) | 1, /*join_within=*/2, kMask);
  auto p = m.lookup(20, 2);
  ASSERT_EQ(p.size(), 1u) << "one tag, 2 apart across the wrap, not joined";
  EXPECT_EQ(p[0].born, (2u << 30) | kMask);
}

// Checksums: two inline, more on the heap, growing by appends; moves hand the array over.
TEST(BlockChecksums, HoldTwoInlineAndGrowOnTheHeap) {
  std::vector<std::uint32_t> want;
  BlockChecksums c;
  EXPECT_EQ(c.size(), 0u);
  for (std::uint32_t i = 0; i < 300; ++i) {
    const std::uint32_t more[] = {i * 7 + 1, i * 7 + 2};
    const std::size_t k = i % 2 + 1;
    c.append(std::span(more, k));
    want.insert(want.end(), more, more + k);
    ASSERT_EQ(std::vector<std::uint32_t>(c.span().begin(), c.span().end()), want) << i;
    EXPECT_EQ(c.heap_bytes() == 0, want.size() <= 2);
  }
  BlockChecksums moved(std::move(c));
  EXPECT_EQ(std::vector<std::uint32_t>(moved.span().begin(), moved.span().end()), want);
  EXPECT_EQ(c.size(), 0u);  // NOLINT(bugprone-use-after-move): a moved-from run is empty
  BlockChecksums one(std::span<const std::uint32_t>(want.data(), 1));
  one = std::move(moved);
  EXPECT_EQ(one.size(), want.size());
  moved = BlockChecksums(std::span<const std::uint32_t>(want.data(), 2));
  EXPECT_EQ(moved.heap_bytes(), 0u);
  EXPECT_EQ(moved.data()[1], want[1]);
}

// One-block extents (a random layout) cost a map node and 24 bytes, no heap array.
TEST(ExtentMap, OneBlockExtentsHoldTheirChecksumInline) {
  ExtentMap m;
  for (std::uint64_t v = 0; v < 1000; ++v) {
    const std::uint32_t sum = static_cast<std::uint32_t>(v);
    m.map(v, 100000 - v * 3, std::span(&sum, 1));
  }
  EXPECT_EQ(m.extent_count(), 1000u);
  EXPECT_LE(m.memory_bytes(), sizeof(ExtentMap) + 1000 * (4 * sizeof(void*) + 8 + 24));
  for (std::uint64_t v = 0; v < 1000; v += 97) EXPECT_EQ(m.lookup(v, 1)[0].checksums[0], v);
}

}  // namespace
}  // namespace nyads
