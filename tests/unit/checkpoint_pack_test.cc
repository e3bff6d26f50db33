// pack_checkpoint: extents go into packed blocks that each encode, decode back to the same
// blocks, and together hold exactly the extents given (split where a block or the 1009-block
// limit ends them); one-block extents of a random layout take about 10 bytes each.
#include <map>
#include <random>

#include "fs/format/codec.h"
#include "nyads/volume.h"
#include "test_util.h"

namespace nyads {
namespace {

namespace fmt = format;

struct Input {
  std::uint32_t ns;
  std::uint64_t vblock, lba;
  std::vector<std::uint32_t> sums;
};

// (ns, vblock) -> (lba, checksum), one entry per 4 KiB block.
using Blocks = std::map<std::pair<std::uint32_t, std::uint64_t>, std::pair<std::uint64_t, std::uint32_t>>;

std::vector<CheckpointBody> pack(const std::vector<Input>& in, std::uint32_t per, CheckpointLayout layout) {
  CheckpointContent content;
  content.namespaces.push_back({1, 0, 4096, 1ull << 40, 0, "a"});
  content.extents_of = [&](const ExtentVisitor& visit) {
    for (const auto& e : in) visit(e.ns, e.vblock, e.lba, e.sums);
  };
  return pack_checkpoint(content, per, layout);
}

// Every extent block's extents, and how many blocks held extents.
Blocks unpacked(const std::vector<CheckpointBody>& bodies, std::uint32_t per, std::size_t* extent_blocks) {
  Blocks out;
  *extent_blocks = 0;
  std::vector<std::uint8_t> buf(fmt::kMetaBlockSize);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const fmt::CheckpointBlock b{7, static_cast<std::uint32_t>(i), bodies[i]};
    Status s = fmt::encode_checkpoint_block(b, 1, buf);
    EXPECT_TRUE(s.ok()) << s.to_string();
    auto d = fmt::decode_checkpoint_block(buf, 1, "t");
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    if (!d.ok()) continue;
    EXPECT_EQ(*d, b);
    const std::vector<fmt::record::Extent>* extents = std::get_if<std::vector<fmt::record::Extent>>(&d->body);
    if (const auto* p = std::get_if<fmt::PackedExtents>(&d->body)) extents = &p->extents;
    if (extents == nullptr) continue;
    ++*extent_blocks;
    for (const auto& e : *extents)
      for (std::size_t k = 0; k < e.checksums.size(); ++k)
        out[{e.ns_id, e.vblock + k}] = {e.lba + k * per, e.checksums[k]};
  }
  return out;
}

Blocks expected(const std::vector<Input>& in, std::uint32_t per) {
  Blocks out;
  for (const auto& e : in)
    for (std::size_t k = 0; k < e.sums.size(); ++k) out[{e.ns, e.vblock + k}] = {e.lba + k * per, e.sums[k]};
  return out;
}

TEST(CheckpointPack, EveryExtentComesBackWhateverItsLengthOrPlace) {
  for (std::uint32_t per : {1u, 8u})
    for (bool packed : {true, false})
      for (bool indexed : {true, false}) {
        std::mt19937_64 rng(per);
        std::vector<Input> in;
        for (std::uint32_t ns : {1u, 2u, 7u}) {
          std::uint64_t vb = 0;
          for (int i = 0; i < 1000; ++i) {
            const std::size_t len = rng() % 8 == 0 ? 1 + rng() % 3000 : 1 + rng() % 4;
            std::vector<std::uint32_t> sums(len);
            for (auto& c : sums) c = static_cast<std::uint32_t>(rng());
            const std::uint64_t lba = rng() % 4 == 0 ? (1ull << 40) + rng() % 1000 : rng() % (1u << 22);
            in.push_back({ns, vb, lba, std::move(sums)});
            vb += len + rng() % 3;
          }
        }
        // Out of order: below namespace 1's last extent (it restates the namespace). A store's
        // maps come in order, which an index needs; the unindexed layouts take anything.
        // (5 was mapped by the first extents already: the later value wins in both maps.)
        if (!indexed) in.push_back({1, 5, 9, {1, 2}});
        const auto bodies = pack(in, per, {packed, indexed});
        for (const auto& b : bodies) {
          if (std::holds_alternative<std::vector<fmt::record::Extent>>(b) ||
              std::holds_alternative<fmt::PackedExtents>(b)) {
            EXPECT_EQ(std::holds_alternative<fmt::PackedExtents>(b), packed);
          }
        }
        std::size_t blocks = 0;
        EXPECT_EQ(unpacked(bodies, per, &blocks), expected(in, per))
            << "per " << per << " packed " << packed << " indexed " << indexed;
        EXPECT_GT(blocks, 1u);
        // Indexed: the index follows the namespaces, one entry per extent block in order, and
        // each block holds what its entry says (one namespace, its range, its block count).
        std::vector<fmt::ExtentIndexEntry> index;
        std::size_t extent_block = 0, position = 0;
        for (const auto& b : bodies) {
          if (const auto* x = std::get_if<fmt::ExtentIndex>(&b)) {
            EXPECT_EQ(position, 1u + index.size() / fmt::kExtentIndexEntriesPerBlock)
                << "index blocks come right after the namespaces";
            index.insert(index.end(), x->entries.begin(), x->entries.end());
          }
          const std::vector<fmt::record::Extent>* extents = std::get_if<std::vector<fmt::record::Extent>>(&b);
          if (const auto* p = std::get_if<fmt::PackedExtents>(&b)) extents = &p->extents;
          if (extents && indexed) {
            ASSERT_LT(extent_block, index.size());
            EXPECT_OK(fmt::check_indexed_extents(*extents, index[extent_block]));
            ++extent_block;
          }
          ++position;
        }
        EXPECT_EQ(index.size(), indexed ? blocks : 0u);
      }
}

TEST(CheckpointPack, OneBlockExtentsOfARandomLayoutTakeAboutTenBytes) {
  std::mt19937_64 rng(3);
  std::vector<Input> in;
  for (std::uint64_t vb = 0; vb < 100000; ++vb)
    in.push_back({1, vb, rng() % (1u << 21), {static_cast<std::uint32_t>(rng())}});
  std::size_t packed = 0, fixed = 0;
  EXPECT_EQ(unpacked(pack(in, 1, {true, false}), 1, &packed), expected(in, 1));
  EXPECT_EQ(unpacked(pack(in, 1, {false, false}), 1, &fixed), expected(in, 1));
  // 2^21 device blocks: 1 head + 1 gap + 3-4 lba difference + 4 checksum bytes; kind 2: 28.
  EXPECT_LE(packed, 100000 * 10 / fmt::kCheckpointPayloadBytes + 2);
  EXPECT_GE(fixed, 100000 * 28 / fmt::kCheckpointPayloadBytes);
}

}  // namespace
}  // namespace nyads
