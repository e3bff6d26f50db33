// Checkpoint blocks: round trips of every kind, golden header bytes, every decode rule.
#include "format_samples.h"
#include "fs/format/codec.h"
#include "test_util.h"

namespace nyads::format {
namespace {

constexpr std::uint64_t kSeed = 77;

std::vector<std::uint8_t> encoded(const CheckpointBlock& b) {
  std::vector<std::uint8_t> out(kMetaBlockSize);
  Status s = encode_checkpoint_block(b, kSeed, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

CheckpointBlock namespaces_block() {
  return {5, 0,
          std::vector<NamespaceEntry>{{1, 0, 4096, 1ull << 30, 17, "web-db"},
                                      {2, kNamespaceQuarantined, 512, 8192, 0, "cache"}}};
}
CheckpointBlock extents_block() {
  return {5, 1, std::vector<record::Extent>{{1, 0, 98304, {1, 2, 3}}, {2, 1, 98400, {4}}}};
}
// Packed: namespace 1's extents at vblocks 0 (3 blocks) and 5 (a gap of 2, the lba
// falling back), then namespace 2, then namespace 1 again below where it was (restated).
CheckpointBlock packed_block() {
  return {
      5, 1,
      PackedExtents{{{1, 0, 98304, {1, 2, 3}}, {1, 5, 98200, {4}}, {2, 1, 98400, {5, 6}}, {1, 4, 1ull << 40, {7}}}}};
}
CheckpointBlock packed_at_the_top_block() { return {5, 1, PackedExtents{{{1, (1ull << 52) - 4, 0, {1, 2, 3}}}}}; }
// The index of two extent blocks: namespace 1's blocks 0..12 (10 of them mapped), and
// namespace 3's 100..101.
CheckpointBlock index_block() {
  return {5, 1, ExtentIndex{{{1, 10, 0, 13, 0x1122334455667788}, {3, 2, 100, 102, 0x99}}}};
}
CheckpointBlock zones_block() { return {5, 2, std::vector<ZoneEntry>{{6, 1, 100, 42}, {7, 2, 0, 0}}}; }
CheckpointBlock commit_block() { return {5, 3, CheckpointCommit{3, 3, 40, 2, 7, 0xabcdef, 1700000000, {4, 5}}}; }

TEST(Checkpoint, RoundTripsEveryKind) {
  for (const auto& b :
       {namespaces_block(), extents_block(), zones_block(), commit_block(), packed_block(), index_block()}) {
    auto d = decode_checkpoint_block(encoded(b), kSeed, "c");
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    EXPECT_EQ(*d, b);
  }
}

TEST(Checkpoint, GoldenBytes) {
  const auto x = encoded(namespaces_block());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(x.data()), 8), "NYADSCKP");
  EXPECT_EQ(get_le16(&x[8]), 1u);   // version
  EXPECT_EQ(get_le16(&x[10]), 1u);  // kind: namespaces
  EXPECT_EQ(get_le32(&x[12]), 2u);  // entries
  EXPECT_EQ(get_le64(&x[16]), 5u);  // checkpoint seq
  EXPECT_EQ(get_le64(&x[24]), block_checksum(x, kSeed));
  EXPECT_EQ(get_le32(&x[32]), 0u);    // index
  EXPECT_EQ(get_le32(&x[36]), 192u);  // payload: 2 x 96
  // entry 0: id 1, flags 0, block size 4096, name length 6, size 1 GiB, 17 written, name
  EXPECT_EQ(get_le32(&x[40]), 1u);
  EXPECT_EQ(get_le32(&x[48]), 4096u);
  EXPECT_EQ(get_le32(&x[52]), 6u);
  EXPECT_EQ(get_le64(&x[56]), 1ull << 30);
  EXPECT_EQ(get_le64(&x[64]), 17u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&x[72]), 6), "web-db");
  EXPECT_EQ(get_le32(&x[40 + 96 + 4]), kNamespaceQuarantined);
  const auto c = encoded(commit_block());
  EXPECT_EQ(get_le16(&c[10]), 4u);
  EXPECT_EQ(get_le32(&c[12]), 2u);   // zones named
  EXPECT_EQ(get_le32(&c[36]), 48u);  // 40 + 2 x 4
  EXPECT_EQ(get_le32(&c[40]), 3u);   // block count
  EXPECT_EQ(get_le32(&c[44]), 3u);   // next namespace id
  EXPECT_EQ(get_le64(&c[48]), 40u);  // journal seq
  EXPECT_EQ(get_le32(&c[56]), 2u);   // journal zone
  EXPECT_EQ(get_le32(&c[60]), 7u);   // journal block
  EXPECT_EQ(get_le64(&c[64]), 0xabcdefu);
  EXPECT_EQ(get_le64(&c[72]), 1700000000u);
  EXPECT_EQ(get_le32(&c[80]), 4u);
  EXPECT_EQ(get_le32(&c[84]), 5u);
}

TEST(Checkpoint, PackedGoldenBytes) {
  const auto x = encoded(packed_block());
  EXPECT_EQ(get_le16(&x[8]), 2u);   // version: packed extents came with version 2
  EXPECT_EQ(get_le16(&x[10]), 5u);  // kind: packed extents
  EXPECT_EQ(get_le32(&x[12]), 4u);  // entries
  // entry 0: head 3<<1|1, namespace 1, gap 0, lba +98304 (zigzag 196608 = 0x80 0x80 0x0c), 3 checksums
  const std::vector<std::uint8_t> e0 = {0x07, 0x01, 0x00, 0x80, 0x80, 0x0c};
  EXPECT_EQ(std::vector<std::uint8_t>(x.begin() + 40, x.begin() + 46), e0);
  EXPECT_EQ(get_le32(&x[46]), 1u);
  EXPECT_EQ(get_le32(&x[54]), 3u);
  // entry 1: head 1<<1 (same namespace), gap 2 (from block 3 to 5), lba -104 (zigzag 207 = 0xcf 0x01)
  const std::vector<std::uint8_t> e1 = {0x02, 0x02, 0xcf, 0x01};
  EXPECT_EQ(std::vector<std::uint8_t>(x.begin() + 58, x.begin() + 62), e1);
  EXPECT_EQ(get_le32(&x[62]), 4u);
  // entry 2: head 2<<1|1, namespace 2, gap 1 (from 0), lba +200 (zigzag 400 = 0x90 0x03)
  const std::vector<std::uint8_t> e2 = {0x05, 0x02, 0x01, 0x90, 0x03};
  EXPECT_EQ(std::vector<std::uint8_t>(x.begin() + 66, x.begin() + 71), e2);
  // entry 3: namespace 1 restated (another namespace came between), gap 4, lba 2^40 - 98400
  EXPECT_EQ(x[79], 0x03);
  EXPECT_EQ(x[80], 0x01);
  EXPECT_EQ(x[81], 0x04);
  const std::size_t payload = get_le32(&x[36]);
  EXPECT_EQ(payload,
            6u + 12 + 4 + 4 + 5 + 8 + 3 + varint_bytes(zigzag(static_cast<std::int64_t>((1ull << 40) - 98400))) + 4);
  for (std::size_t i = 40 + payload; i < x.size(); ++i) ASSERT_EQ(x[i], 0) << i;
  // One-block extents of a random layout take about 10 bytes, where kind 2 takes 28.
  const record::Extent a{1, 1000, 1u << 21, {9}}, b{1, 1001, 77, {9}};
  EXPECT_EQ(packed_extent_bytes(b, &a), 1u + 1 + 4 + 4);
}

TEST(Checkpoint, ExtentIndexGoldenBytes) {
  const auto x = encoded(index_block());
  EXPECT_EQ(get_le16(&x[8]), 3u);                    // version: the extent index came with version 3
  EXPECT_EQ(get_le16(&x[10]), 6u);                   // kind: extent index
  EXPECT_EQ(get_le32(&x[12]), 2u);                   // entries
  EXPECT_EQ(get_le32(&x[36]), 64u);                  // payload: 2 x 32
  EXPECT_EQ(get_le32(&x[40]), 1u);                   // entry 0: namespace
  EXPECT_EQ(get_le32(&x[44]), 10u);                  // mapped blocks
  EXPECT_EQ(get_le64(&x[48]), 0u);                   // first vblock
  EXPECT_EQ(get_le64(&x[56]), 13u);                  // end vblock
  EXPECT_EQ(get_le64(&x[64]), 0x1122334455667788u);  // the extent block's checksum
  EXPECT_EQ(get_le32(&x[72]), 3u);
  EXPECT_EQ(get_le64(&x[80]), 100u);
  for (std::size_t i = 40 + 64; i < x.size(); ++i) ASSERT_EQ(x[i], 0) << i;
  EXPECT_EQ(kExtentIndexEntriesPerBlock, 126u);
  // A full block of entries round-trips; one more is refused.
  ExtentIndex full;
  for (std::uint64_t i = 0; i < kExtentIndexEntriesPerBlock; ++i) full.entries.push_back({1, 1, 2 * i, 2 * i + 1, i});
  auto d = decode_checkpoint_block(encoded({6, 1, full}), kSeed, "c");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(std::get<ExtentIndex>(d->body), full);
  full.entries.push_back({1, 1, 1000, 1001, 0});
  std::vector<std::uint8_t> out(kMetaBlockSize);
  EXPECT_NE(encode_checkpoint_block({6, 1, full}, kSeed, out).message().find("127 index entries exceed 126 per block"),
            std::string::npos);
}

// What an extent block holds against its index entry (format.md §2.5): each rule, by its message.
TEST(Checkpoint, IndexedExtentsMustBeWhatTheirEntrySays) {
  const std::vector<record::Extent> extents{{1, 0, 500, {1, 2, 3}}, {1, 5, 90, {4}}, {1, 9, 7, {5, 6, 7, 8}}};
  const ExtentIndexEntry entry{1, 8, 0, 13, 0};
  EXPECT_OK(check_indexed_extents(extents, entry));
  auto said = [&](std::vector<record::Extent> v, ExtentIndexEntry e, const char* want) {
    Status s = check_indexed_extents(v, e);
    EXPECT_EQ(s.code(), Code::kCorruption) << want;
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  said({}, entry, "holds no extents");
  said(extents, {2, 8, 0, 13, 0}, "extent 0 is of namespace 1, its index entry names 2");
  said(extents, {1, 8, 1, 13, 0}, "its first extent starts at block 0, its index entry says 1");
  said(extents, {1, 8, 0, 12, 0}, "its last extent ends at block 13, its index entry says 12");
  said(extents, {1, 9, 0, 13, 0}, "its extents map 8 blocks, its index entry says 9");
  said({{1, 0, 500, {1, 2, 3}}, {1, 2, 90, {4}}}, {1, 4, 0, 3, 0},
       "extent 1 at block 2 starts before the one before it ends (3)");
}

TEST(Checkpoint, PackedLongExtentsAndManyEntriesRoundTrip) {
  PackedExtents v;
  v.extents.push_back({3, 0, 0, std::vector<std::uint32_t>(kMaxExtentBlocksPerRecord - 20, 5)});
  std::uint64_t lba = 1u << 30;
  for (std::uint64_t vb = 2000; v.extents.size() < 10; vb += 3, lba -= 77)
    v.extents.push_back({3, vb, lba, {static_cast<std::uint32_t>(vb)}});
  const CheckpointBlock b{9, 2, v};
  auto d = decode_checkpoint_block(encoded(b), kSeed, "c");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(*d, b);
}

TEST(Checkpoint, EncodeRefusesInvalidEntries) {
  std::vector<std::uint8_t> out(kMetaBlockSize);
  auto refuse = [&](CheckpointBlock b, const char* want) {
    Status s = encode_checkpoint_block(b, kSeed, out);
    EXPECT_FALSE(s.ok()) << want;
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  refuse({1, 0, std::vector<NamespaceEntry>(kNamespacesPerBlock + 1, NamespaceEntry{1, 0, 4096, 4096, 0, "a"})},
         "per block");
  refuse({1, 0, std::vector<NamespaceEntry>{{1, 8, 4096, 4096, 0, "a"}}}, "unknown flags");
  refuse({1, 0, std::vector<NamespaceEntry>{{1, 0, 4096, 4096, 2, "a"}}}, "2 written blocks exceed its 1");
  refuse({1, 0, std::vector<ZoneEntry>{{6, 3, 0, 0}}}, "stream 3 is not defined");
  refuse({1, 0, std::vector<ZoneEntry>(kZonesPerBlock + 1)}, "per block");
  refuse({1, 2, CheckpointCommit{1, 1, 1, 2, 0, 0, 0, {4}}}, "must count 2 blocks");
  refuse({1, 0, CheckpointCommit{0, 1, 1, 2, 0, 0, 0, {}}}, "names no zones");
  refuse({1, 0, std::vector<record::Extent>(200, record::Extent{1, 0, 0, {1, 2, 3, 4}})},
         "a checkpoint block holds 4056");
  refuse({0, 0, std::vector<ZoneEntry>{}}, "checkpoint sequence 0");
  refuse({1, 0, PackedExtents{std::vector<record::Extent>(500, record::Extent{1, 0, 0, {1, 2}})}},
         "packed extents take");
  refuse({1, 0, PackedExtents{{record::Extent{0, 0, 0, {1}}}}}, "namespace");
  refuse({1, 0, PackedExtents{{record::Extent{1, 0, 0, {}}}}}, "extent of 0 blocks");
}

struct ByteCase {
  const char* name;
  CheckpointBlock (*block)();
  void (*edit)(std::vector<std::uint8_t>&);
  const char* message;
};
void PrintTo(const ByteCase& r, std::ostream* os) { *os << r.name; }
class CheckpointDecodeRule : public ::testing::TestWithParam<ByteCase> {};

TEST_P(CheckpointDecodeRule, IsReported) {
  auto x = encoded(GetParam().block());
  GetParam().edit(x);
  seal_block(x, kSeed);
  auto d = decode_checkpoint_block(x, kSeed, "checkpoint zone 4 block 1");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("checkpoint zone 4 block 1: "), std::string::npos) << d.status().message();
  EXPECT_NE(d.status().message().find(GetParam().message), std::string::npos) << d.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Bytes, CheckpointDecodeRule,
    ::testing::Values(
        ByteCase{"version", namespaces_block, [](auto& x) { put_le16(&x[8], 4); }, "checkpoint version 4, this build reads versions 1 to 3"},
        ByteCase{"index_version", index_block, [](auto& x) { put_le16(&x[8], 2); }, "a block of kind 6 has version 2, not 3"},
        ByteCase{"namespaces_version3", namespaces_block, [](auto& x) { put_le16(&x[8], 3); }, "a block of kind 1 has version 3, not 1"},
        ByteCase{"index_count", index_block, [](auto& x) { put_le32(&x[12], 3); }, "3 index entries need 96 bytes, the payload is 64"},
        ByteCase{"index_ns0", index_block, [](auto& x) { put_le32(&x[40], 0); }, "index entry 0: namespace id 0 is reserved"},
        ByteCase{"index_mapped0", index_block, [](auto& x) { put_le32(&x[44], 0); }, "index entry 0: an extent block of 0 mapped blocks"},
        ByteCase{"index_empty_range", index_block, [](auto& x) { put_le64(&x[56], 0); }, "index entry 0: blocks 0..0 are not a range within 2^52"},
        ByteCase{"index_past_2_52", index_block, [](auto& x) { put_le64(&x[56], (1ull << 52) + 1); }, "are not a range within 2^52"},
        ByteCase{"index_overfull", index_block, [](auto& x) { put_le32(&x[44], 14); }, "index entry 0: 14 mapped blocks do not fit in blocks 0..13"},
        ByteCase{"kind", namespaces_block, [](auto& x) { put_le16(&x[10], 9); }, "unknown checkpoint block kind 9"},
        ByteCase{"seq0", namespaces_block, [](auto& x) { put_le64(&x[16], 0); }, "checkpoint sequence 0"},
        ByteCase{"payload_big", namespaces_block, [](auto& x) { put_le32(&x[36], 4057); }, "payload of 4057 bytes exceeds 4056"},
        ByteCase{"ns_count", namespaces_block, [](auto& x) { put_le32(&x[12], 3); }, "3 namespace entries need 288 bytes, the payload is 192"},
        ByteCase{"ns_name_len", namespaces_block, [](auto& x) { put_le32(&x[52], 65); }, "name length 65 is not 1..64"},
        ByteCase{"ns_id0", namespaces_block, [](auto& x) { put_le32(&x[40], 0); }, "namespace id 0 is reserved"},
        ByteCase{"ns_size", namespaces_block, [](auto& x) { put_le64(&x[56], 5); }, "size 5 bytes"},
        ByteCase{"extent_count", extents_block, [](auto& x) { put_le32(&x[12], 3); }, "3 extents cannot fit in a payload of 64 bytes"},
        ByteCase{"extent_blocks", extents_block, [](auto& x) { put_le32(&x[44], 0); }, "extent 0: extent of 0 blocks"},
        ByteCase{"extent_overrun", extents_block, [](auto& x) { put_le32(&x[44], 1000); }, "runs past its record"},
        ByteCase{"extent_payload", extents_block, [](auto& x) { put_le32(&x[36], get_le32(&x[36]) + 4); }, "the header says"},
        ByteCase{"packed_version", packed_block, [](auto& x) { put_le16(&x[8], 1); }, "a block of kind 5 has version 1, not 2"},
        ByteCase{"namespaces_version2", namespaces_block, [](auto& x) { put_le16(&x[8], 2); }, "a block of kind 1 has version 2, not 1"},
        ByteCase{"packed_count", packed_block, [](auto& x) { put_le32(&x[12], 500); }, "500 packed extents cannot fit in a payload of"},
        ByteCase{"packed_first_unstated", packed_block, [](auto& x) { x[40] = 0x06; }, "packed extent 0: the first entry of a block does not state its namespace"},
        ByteCase{"packed_zero_blocks", packed_block, [](auto& x) { x[40] = 0x01; }, "packed extent 0: extent of 0 blocks"},
        ByteCase{"packed_too_long", packed_block, [](auto& x) { x[40] = 0xff; x[41] = 0x7f; }, "exceeds 1009"},
        ByteCase{"packed_ns0", packed_block, [](auto& x) { x[41] = 0; }, "namespace id 0 is not 1..2^32-1"},
        ByteCase{"packed_not_shortest", packed_block, [](auto& x) { x[42] = 0x80; x[43] = 0x00; }, "gap is not in its shortest form"},
        ByteCase{"packed_past_2_52", packed_at_the_top_block,
                 [](auto& x) {
                   x[40] = 5 << 1 | 1;  // 5 blocks from 2^52 - 4: the two more checksums are the zeros after
                   put_le32(&x[36], get_le32(&x[36]) + 8);
                 },
                 "packed extent 0: extent at virtual block 4503599627370492 runs past 2^52 blocks"},
        ByteCase{"packed_cut_short", packed_block,
                 [](auto& x) {
                   put_le32(&x[12], 2);
                   put_le32(&x[36], 21);  // ends inside entry 1's lba difference
                 },
                 "packed extent 1: lba difference is cut short"},
        ByteCase{"packed_checksums_cut", packed_block,
                 [](auto& x) {
                   put_le32(&x[12], 1);
                   put_le32(&x[36], 7);
                 },
                 "packed extent 0: extent of 3 blocks runs past the payload"},
        ByteCase{"packed_payload", packed_block, [](auto& x) { put_le32(&x[36], get_le32(&x[36]) + 4); }, "the header says"},
        ByteCase{"packed_overflow", packed_block,
                 [](auto& x) {
                   for (int i = 0; i < 9; ++i) x[42 + i] = 0xff;
                   x[51] = 0x02;
                 },
                 "gap does not fit in 64 bits"},
        ByteCase{"zone_count", zones_block, [](auto& x) { put_le32(&x[12], 1); }, "1 zone entries need 24 bytes, the payload is 48"},
        ByteCase{"zone_reserved", zones_block, [](auto& x) { put_le32(&x[40 + 12], 1); }, "reserved field is not zero"},
        ByteCase{"zone_flags", zones_block, [](auto& x) { put_le32(&x[40 + 4], 16); }, "unknown flags"},
        ByteCase{"commit_zones", commit_block, [](auto& x) { put_le32(&x[12], 0); }, "the commit names no zones"},
        ByteCase{"commit_payload", commit_block, [](auto& x) { put_le32(&x[12], 3); }, "a commit naming 3 zones needs 52 bytes"},
        ByteCase{"commit_count", commit_block, [](auto& x) { put_le32(&x[40], 2); }, "the commit at index 3 counts 2 blocks"},
        ByteCase{"commit_seq", commit_block, [](auto& x) { put_le64(&x[48], 0); }, "journal sequence 0"},
        ByteCase{"commit_nsid", commit_block, [](auto& x) { put_le32(&x[44], 0); }, "next namespace id 0"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Checkpoint, ChecksumsAndChain) {
  auto x = encoded(zones_block());
  auto torn = x;
  torn[100] ^= 1;
  EXPECT_NE(decode_checkpoint_block(torn, kSeed, "c").status().message().find("checksum mismatch"), std::string::npos);
  EXPECT_NE(decode_checkpoint_block(x, kSeed ^ 1, "c").status().message().find("checksum mismatch"), std::string::npos);
  auto magic = x;
  magic[7] = 0;
  EXPECT_NE(decode_checkpoint_block(magic, kSeed, "c").status().message().find("bad magic"), std::string::npos);
  const std::uint64_t a[] = {1, 2, 3}, b[] = {1, 3, 2};
  EXPECT_NE(chain_checksums(a, kSeed), chain_checksums(b, kSeed));  // order matters
  EXPECT_EQ(chain_checksums(a, kSeed), chain_checksums(a, kSeed));
  EXPECT_EQ(stored_checksum(x), get_le64(&x[24]));
}

}  // namespace
}  // namespace nyads::format
