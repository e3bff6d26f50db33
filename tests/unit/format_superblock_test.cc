// The superblock: round trip, golden bytes, and every validation rule with its message.
#include <xxhash.h>

#include <random>

#include "format_samples.h"
#include "nyads/byte_order.h"
#include "test_util.h"

namespace nyads::format {
namespace {

std::vector<std::uint8_t> encoded(const Superblock& sb) {
  std::vector<std::uint8_t> b(kMetaBlockSize);
  encode_superblock(sb, b);
  return b;
}

TEST(Superblock, RoundTrips) {
  const Superblock sb = test::sample_superblock();
  auto d = decode_superblock(encoded(sb), "test");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(*d, sb);
}

// doc/format.md §2.2, field by field.
TEST(Superblock, GoldenBytes) {
  const Superblock sb = test::sample_superblock();
  const auto b = encoded(sb);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), 8), "NYADSVOL");
  EXPECT_EQ(get_le32(&b[8]), 1u);
  EXPECT_EQ(get_le32(&b[12]), 4096u);
  EXPECT_EQ(get_le64(&b[16]), 3u);
  EXPECT_EQ(get_le64(&b[32]), 0u);  // compat
  EXPECT_EQ(get_le64(&b[40]), 0u);  // ro_compat
  EXPECT_EQ(get_le64(&b[48]), 7u);  // incompat: data_checksum32, packed_extents, extent_index
  EXPECT_EQ(0, std::memcmp(&b[56], sb.uuid.data(), 16));
  EXPECT_EQ(get_le64(&b[72]), 1700000000u);
  EXPECT_EQ(get_le32(&b[80]), 4096u);
  EXPECT_EQ(get_le32(&b[84]), 64u);
  EXPECT_EQ(get_le64(&b[88]), 16384u);
  EXPECT_EQ(get_le64(&b[96]), 15360u);
  EXPECT_EQ(get_le32(&b[104]), 14u);
  EXPECT_EQ(get_le32(&b[108]), 14u);
  EXPECT_EQ(get_le32(&b[112]), 256u);
  EXPECT_EQ(get_le32(&b[116]), 2u);
  const std::uint32_t ranges[8] = {0, 2, 2, 2, 4, 2, 6, 58};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(get_le32(&b[120 + 4 * i]), ranges[i]) << i;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&b[152])), "web-db");
  for (std::size_t i = 152 + 6; i < b.size(); ++i) ASSERT_EQ(b[i], 0) << i;
  // The checksum: XXH3-64 of the block with bytes 24..31 zero, seeded with XXH3-64(uuid).
  auto zeroed = b;
  std::memset(&zeroed[24], 0, 8);
  const std::uint64_t seed = XXH3_64bits(sb.uuid.data(), 16);
  EXPECT_EQ(get_le64(&b[24]), XXH3_64bits_withSeed(zeroed.data(), zeroed.size(), seed));
  EXPECT_EQ(sb.seed(), seed);
}

TEST(Superblock, DetectsDamageAndForeignBlocks) {
  auto b = encoded(test::sample_superblock());
  auto flipped = b;
  flipped[2000] ^= 0x10;
  auto d = decode_superblock(flipped, "superblock at zone 0 block 0");
  EXPECT_EQ(d.status().code(), Code::kCorruption);
  EXPECT_NE(d.status().message().find("superblock at zone 0 block 0: checksum mismatch"), std::string::npos)
      << d.status().message();
  auto magic = b;
  magic[0] = 'X';
  EXPECT_NE(decode_superblock(magic, "z").status().message().find("not a nyads superblock (bad magic)"),
            std::string::npos);
  EXPECT_NE(decode_superblock(std::span(b).first(100), "z").status().message().find("a superblock is 4096"),
            std::string::npos);
  // A block from a volume with another UUID fails its checksum once the UUID is swapped.
  auto other = b;
  other[56] ^= 1;
  EXPECT_NE(decode_superblock(other, "z").status().message().find("checksum mismatch"), std::string::npos);
}

// Re-encodes after a mutation that encode itself does not check, so decode meets the rule.
struct Rule {
  const char* name;
  void (*mutate)(Superblock&);
  Code code;
  const char* message;
};

void PrintTo(const Rule& r, std::ostream* os) { *os << r.name; }

class SuperblockRule : public ::testing::TestWithParam<Rule> {};

TEST_P(SuperblockRule, IsEnforcedByDecodeWithAPreciseMessage) {
  Superblock sb = test::sample_superblock();
  GetParam().mutate(sb);
  auto d = decode_superblock(encoded(sb), "superblock at zone 0");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), GetParam().code) << d.status().to_string();
  EXPECT_NE(d.status().message().find(GetParam().message), std::string::npos) << d.status().message();
  if (GetParam().code == Code::kCorruption) {
    Status v = validate_superblock(sb, "x");
    // validate applies the same rule (feature checks are decode's alone)
    if (std::string(GetParam().name).find("feature") == std::string::npos) {
      EXPECT_FALSE(v.ok()) << GetParam().name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rules, SuperblockRule,
    ::testing::Values(
        Rule{"generation", [](Superblock& s) { s.generation = 0; }, Code::kCorruption, "generation 0"},
        Rule{"nil_uuid", [](Superblock& s) { s.uuid = {}; }, Code::kCorruption, "the UUID is nil"},
        Rule{"block_size", [](Superblock& s) { s.block_size = 8192; }, Code::kCorruption,
             "block_size 8192 is not a power of two from 512 to 4096"},
        Rule{"zone_size", [](Superblock& s) { s.zone_size = 0; }, Code::kCorruption, "zone_size is 0 blocks"},
        Rule{"zone_capacity_zero", [](Superblock& s) { s.zone_capacity = 0; }, Code::kCorruption,
             "zone_capacity is 0 blocks"},
        Rule{"capacity_over_size",
             [](Superblock& s) {
               s.zone_size = 65536;
               s.zone_capacity = 70000;
             },
             Code::kCorruption, "superblock at zone 0: zone_capacity 70000 blocks exceeds zone_size 65536 blocks"},
        Rule{"tiny_zone", [](Superblock& s) { s.zone_capacity = 15; }, Code::kCorruption,
             "holds fewer than 16 metadata blocks"},
        Rule{"few_zones", [](Superblock& s) { s.zone_count = 6; }, Code::kCorruption,
             "zone_count 6 is below the minimum of 7"},
        Rule{"open_over_active", [](Superblock& s) { s.max_open_zones = 20; }, Code::kCorruption,
             "max_open_zones 20 exceeds max_active_zones 14"},
        Rule{"active_over_zones",
             [](Superblock& s) {
               s.max_active_zones = 65;
               s.max_open_zones = 1;
             },
             Code::kCorruption, "max_active_zones 65 exceeds zone_count 64"},
        Rule{"append",
             [](Superblock& s) {
               s.block_size = 512;
               s.max_append_blocks = 4;
               s.zone_capacity = 15360;
             },
             Code::kCorruption, "max_append_blocks 4 is smaller than one metadata block (8 blocks)"},
        Rule{"sb_zones",
             [](Superblock& s) {
               s.superblock_zones = {0, 3};
             },
             Code::kCorruption, "expected zones 0 and 1"},
        Rule{"journal_start", [](Superblock& s) { s.journal_zones.first = 3; }, Code::kCorruption,
             "journal zones start at zone 3, expected 2"},
        Rule{"journal_count",
             [](Superblock& s) {
               s.journal_zones.count = 1;
               s.checkpoint_zones.first = 3;
               s.checkpoint_zones.count = 3;
             },
             Code::kCorruption, "journal zone count 1 is below 2"},
        Rule{"checkpoint_start", [](Superblock& s) { s.checkpoint_zones.first = 5; }, Code::kCorruption,
             "checkpoint zones start at zone 5, expected 4"},
        Rule{"checkpoint_count",
             [](Superblock& s) {
               s.checkpoint_zones.count = 1;
               s.data_zones = {5, 59};
             },
             Code::kCorruption, "checkpoint zone count 1 is below 2"},
        Rule{"data_start", [](Superblock& s) { s.data_zones.first = 7; }, Code::kCorruption,
             "data zones start at zone 7, expected 6"},
        Rule{"no_data", [](Superblock& s) { s.data_zones.count = 0; }, Code::kCorruption, "there are no data zones"},
        Rule{"data_end", [](Superblock& s) { s.data_zones.count = 57; }, Code::kCorruption,
             "data zones end at zone 63, expected zone_count 64"},
        Rule{"reserve", [](Superblock& s) { s.reserved_data_zones = 58; }, Code::kCorruption,
             "reserved_data_zones 58 leaves no data zone of 58"},
        Rule{"label_control", [](Superblock& s) { s.label = "a\tb"; }, Code::kCorruption,
             "label has the control character 0x09"},
        Rule{"unknown_incompat_feature", [](Superblock& s) { s.incompat |= 1ull << 9; }, Code::kNotSupported,
             "incompatible features 0x0000000000000200 are unknown to this build"},
        Rule{"missing_checksum_feature", [](Superblock& s) { s.incompat = 0; }, Code::kCorruption, "data_checksum32"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Superblock, VersionAndSizeFieldsAreChecked) {
  Superblock sb = test::sample_superblock();
  auto b = encoded(sb);
  put_le32(&b[8], 2);
  put_le64(&b[24], 0);
  put_le64(&b[24], [&] {
    auto z = b;
    return XXH3_64bits_withSeed(z.data(), z.size(), sb.seed());
  }());
  auto d = decode_superblock(b, "sb");
  EXPECT_EQ(d.status().code(), Code::kNotSupported);
  EXPECT_NE(d.status().message().find("format version 2, this build reads version 1"), std::string::npos)
      << d.status().message();
  auto c = encoded(sb);
  put_le32(&c[12], 512);
  put_le64(&c[24], 0);
  put_le64(&c[24], [&] {
    auto z = c;
    return XXH3_64bits_withSeed(z.data(), z.size(), sb.seed());
  }());
  EXPECT_NE(decode_superblock(c, "sb").status().message().find("superblock size 512"), std::string::npos);
  // The label must end within its 64 bytes.
  auto l = encoded(sb);
  std::memset(&l[152], 'x', 64);
  put_le64(&l[24], 0);
  put_le64(&l[24], [&] {
    auto z = l;
    return XXH3_64bits_withSeed(z.data(), z.size(), sb.seed());
  }());
  EXPECT_NE(decode_superblock(l, "sb").status().message().find("not NUL-terminated"), std::string::npos);
}

TEST(Superblock, UnknownReadOnlyFeaturesAllowReadingOnly) {
  Superblock sb = test::sample_superblock();
  sb.ro_compat = 1ull << 3;
  sb.compat = 1ull << 5;  // unknown compatible features are ignored
  auto d = decode_superblock(encoded(sb), "sb");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->check_writable().code(), Code::kNotSupported);
  EXPECT_NE(d->check_writable().message().find("read-only"), std::string::npos);
  EXPECT_TRUE(test::sample_superblock().check_writable().ok());
}

TEST(Names, FollowTheDocumentedCharacterSet) {
  for (const char* ok : {"web-db", "a", "A.b_c-9", "0abc"}) EXPECT_TRUE(validate_namespace_name(ok).ok()) << ok;
  EXPECT_NE(validate_namespace_name("").message().find("empty"), std::string::npos);
  EXPECT_NE(validate_namespace_name("-x").message().find("must start with a letter or digit"), std::string::npos);
  EXPECT_NE(validate_namespace_name("a/b").message().find("the character '/'"), std::string::npos);
  EXPECT_NE(validate_namespace_name("caf\xc3\xa9").message().find("the character '0xc3'"), std::string::npos);
  EXPECT_NE(validate_namespace_name(std::string(65, 'a')).message().find("65 bytes, the limit is 64"),
            std::string::npos);
  EXPECT_TRUE(validate_namespace_name(std::string(64, 'a')).ok());
}

TEST(Uuid, ParsesAndPrints) {
  auto u = parse_uuid("10325476-98ba-4cde-8011-223344556677");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, test::sample_superblock().uuid);
  EXPECT_EQ(uuid_to_string(*u), "10325476-98ba-4cde-8011-223344556677");
  EXPECT_FALSE(parse_uuid("10325476-98ba-4cde-8011-22334455667").ok());
  EXPECT_FALSE(parse_uuid("10325476x98ba-4cde-8011-223344556677").ok());
  EXPECT_FALSE(parse_uuid("1032547g-98ba-4cde-8011-223344556677").ok());
  EXPECT_NE(parse_uuid("00000000-0000-0000-0000-000000000000").status().message().find("nil"), std::string::npos);
}

TEST(DataChecksum, DependsOnSeedAddressAndContent) {
  std::vector<std::uint8_t> block(4096, 0xab);
  const std::uint64_t seed = test::sample_superblock().seed();
  const std::uint32_t c = data_checksum(seed, 1, 10, block);
  EXPECT_EQ(c, data_checksum(seed, 1, 10, block));
  EXPECT_NE(c, data_checksum(seed + 1, 1, 10, block));  // another volume
  EXPECT_NE(c, data_checksum(seed, 2, 10, block));      // another namespace
  EXPECT_NE(c, data_checksum(seed, 1, 11, block));      // another address
  block[100] ^= 1;
  EXPECT_NE(c, data_checksum(seed, 1, 10, block));
}

// data_checksum takes the library's fastest XXH3 for this CPU; the format (§2.7) is XXH3
// itself, so it must agree with the portable path bit for bit.
TEST(DataChecksum, IsTheLow32BitsOfSeededXxh3) {
  std::mt19937_64 rng(7);
  const std::uint64_t seed = test::sample_superblock().seed();
  for (std::size_t size : {512u, 4096u}) {
    std::vector<std::uint8_t> block(size);
    for (auto& b : block) b = static_cast<std::uint8_t>(rng());
    const std::uint32_t ns = 3;
    const std::uint64_t vblock = rng() >> 12;
    const std::uint64_t s = seed ^ (std::uint64_t{ns} * 0x9E3779B185EBCA87ull) ^ (vblock * 0xC2B2AE3D27D4EB4Full);
    EXPECT_EQ(data_checksum(seed, ns, vblock, block),
              static_cast<std::uint32_t>(XXH3_64bits_withSeed(block.data(), block.size(), s)))
        << size;
  }
}

}  // namespace
}  // namespace nyads::format
