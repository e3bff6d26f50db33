// The emulated device file's header and zone table: round trips, golden bytes, and every
// validation rule of the decoders.
#include "zns/emulated_format.h"

#include <xxhash.h>

#include "nyads/byte_order.h"
#include "test_util.h"

namespace nyads::emulated_format {
namespace {

std::vector<std::uint8_t> header_bytes(const EmulatedConfig& c) {
  std::vector<std::uint8_t> b(kHeaderBytes);
  encode_header(layout_for(c), b);
  return b;
}

// Rewrites the checksum so a test reaches the field rule it aims at, not the checksum.
void reseal(std::vector<std::uint8_t>& b) { put_le64(b.data() + 80, XXH3_64bits(b.data(), 80)); }

TEST(EmulatedHeader, RoundTrips) {
  const EmulatedConfig c = test::small_config();
  auto d = decode_header(header_bytes(c));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->config.zone_count, c.zone_count);
  EXPECT_EQ(d->config.zone_size_bytes, c.zone_size_bytes);
  EXPECT_EQ(d->config.zone_capacity_bytes, c.zone_capacity_bytes);
  EXPECT_EQ(d->config.max_open_zones, c.max_open_zones);
  EXPECT_EQ(d->config.max_active_zones, c.max_active_zones);
  EXPECT_EQ(d->config.max_append_bytes, c.max_append_bytes);
  EXPECT_EQ(d->config.max_io_bytes, c.max_io_bytes);
  EXPECT_EQ(d->data_offset, layout_for(c).data_offset);
}

// The bytes doc/format.md specifies, field by field.
TEST(EmulatedHeader, GoldenBytes) {
  const auto b = header_bytes(test::small_config());
  const std::uint8_t magic[8] = {'N', 'Y', 'A', 'D', 'S', 'E', 'M', 'U'};
  EXPECT_EQ(0, std::memcmp(b.data(), magic, 8));
  EXPECT_EQ(get_le32(b.data() + 8), 2u);       // version
  EXPECT_EQ(get_le32(b.data() + 12), 4096u);   // header bytes
  EXPECT_EQ(get_le32(b.data() + 16), 4096u);   // block size
  EXPECT_EQ(get_le32(b.data() + 20), 16u);     // zones
  EXPECT_EQ(get_le64(b.data() + 24), 256u);    // zone size, blocks
  EXPECT_EQ(get_le64(b.data() + 32), 192u);    // zone capacity, blocks
  EXPECT_EQ(get_le32(b.data() + 40), 6u);      // max open
  EXPECT_EQ(get_le32(b.data() + 44), 8u);      // max active
  EXPECT_EQ(get_le32(b.data() + 48), 16u);     // max append, blocks
  EXPECT_EQ(get_le32(b.data() + 52), 32u);     // max I/O, blocks
  EXPECT_EQ(get_le64(b.data() + 56), 4096u);   // table offset
  EXPECT_EQ(get_le64(b.data() + 64), 4096u);   // table slot bytes: 32 + 32 * 16 rounded up
  EXPECT_EQ(get_le64(b.data() + 72), 12288u);  // data offset
  EXPECT_EQ(get_le64(b.data() + 80), XXH3_64bits(b.data(), 80));
  for (std::size_t i = 88; i < b.size(); ++i) ASSERT_EQ(b[i], 0) << i;
}

struct HeaderCase {
  const char* name;
  std::size_t offset;
  std::uint64_t value;
  int width;
  Code code;
  const char* message;
};

void PrintTo(const HeaderCase& c, std::ostream* os) { *os << c.name; }

class EmulatedHeaderRule : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(EmulatedHeaderRule, IsEnforced) {
  const HeaderCase& c = GetParam();
  auto b = header_bytes(test::small_config());
  if (c.width == 4)
    put_le32(b.data() + c.offset, static_cast<std::uint32_t>(c.value));
  else
    put_le64(b.data() + c.offset, c.value);
  reseal(b);
  auto d = decode_header(b);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), c.code);
  EXPECT_NE(d.status().message().find(c.message), std::string::npos) << d.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, EmulatedHeaderRule,
    ::testing::Values(
        HeaderCase{"version", 8, 3, 4, Code::kNotSupported, "version 3, this build reads versions 1 to 2"},
        HeaderCase{"version_zero", 8, 0, 4, Code::kNotSupported, "version 0"},
        HeaderCase{"header_size", 12, 512, 4, Code::kCorruption, "header size 512"},
        HeaderCase{"block_size", 16, 3000, 4, Code::kCorruption, "block size 3000"},
        HeaderCase{"zone_size_zero", 24, 0, 8, Code::kCorruption, "zone size 0"},
        HeaderCase{"capacity_over_size", 32, 300, 8, Code::kCorruption, "capacity 300"},
        HeaderCase{"zone_count_zero", 20, 0, 4, Code::kCorruption, "zone count 0"},
        HeaderCase{"open_over_active", 40, 9, 4, Code::kCorruption, "max open zones 9 exceeds max active zones 8"},
        HeaderCase{"active_over_zones", 44, 17, 4, Code::kCorruption, "exceeds the zone count"},
        HeaderCase{"append_zero", 48, 0, 4, Code::kCorruption, "append limit 0"},
        HeaderCase{"io_huge", 52, 0xffffffffu, 4, Code::kCorruption, "I/O limit"},
        HeaderCase{"table_offset", 56, 8192, 8, Code::kCorruption, "do not match the geometry"},
        HeaderCase{"slot_bytes", 64, 4096 * 3, 8, Code::kCorruption, "do not match the geometry"},
        HeaderCase{"data_offset", 72, 4096, 8, Code::kCorruption, "do not match the geometry"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// A version 1 file (16-byte table entries) still opens: its layout is its own.
TEST(EmulatedHeader, ReadsVersion1WithItsOwnLayout) {
  EmulatedConfig c = test::small_config();
  c.zone_count = 200;  // 32 + 16 * 200 fits one 4 KiB slot; 32 + 32 * 200 needs two
  EXPECT_EQ(layout_for(c, 1).table_slot_bytes, 4096u);
  EXPECT_EQ(layout_for(c, 2).table_slot_bytes, 8192u);
  std::vector<std::uint8_t> b(kHeaderBytes);
  encode_header(layout_for(c, 1), b);
  EXPECT_EQ(get_le32(b.data() + 8), 1u);
  auto d = decode_header(b);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->version, 1u);
  EXPECT_EQ(d->table_slot_bytes, 4096u);
  EXPECT_EQ(d->data_offset, layout_for(c, 1).data_offset);
  // A version 1 header with a version 2 layout is refused.
  put_le32(b.data() + 8, 2);
  reseal(b);
  EXPECT_NE(decode_header(b).status().message().find("do not match the geometry"), std::string::npos);
}

TEST(EmulatedHeader, BadMagicShortInputAndChecksum) {
  auto b = header_bytes(test::small_config());
  EXPECT_NE(decode_header(std::span(b).first(100)).status().message().find("need 4096"), std::string::npos);
  auto bad_sum = b;
  bad_sum[30] ^= 1;
  EXPECT_NE(decode_header(bad_sum).status().message().find("checksum mismatch"), std::string::npos);
  auto bad_magic = b;
  bad_magic[0] = 'X';
  EXPECT_NE(decode_header(bad_magic).status().message().find("bad magic"), std::string::npos);
  EXPECT_FALSE(looks_like_emulated_device(bad_magic));
  EXPECT_TRUE(looks_like_emulated_device(b));
}

TEST(EmulatedConfigValidate, NamesTheRuleBroken) {
  auto check = [](auto mutate, const char* want) {
    EmulatedConfig c = test::small_config();
    mutate(c);
    Status s = c.validate();
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  check([](EmulatedConfig& c) { c.block_size = 1000; }, "block size 1000");
  check([](EmulatedConfig& c) { c.zone_size_bytes = 5000; }, "zone size 5000");
  check([](EmulatedConfig& c) { c.zone_capacity_bytes = 2 << 20; }, "exceeds zone size");
  check([](EmulatedConfig& c) { c.zone_count = 0; }, "zone count 0");
  check([](EmulatedConfig& c) { c.max_open_zones = 0; }, "(unlimited) exceeds max active");
  check(
      [](EmulatedConfig& c) {
        c.max_active_zones = 0;
        c.max_open_zones = 20;
      },
      "max open zones 20 exceeds the zone count");
  check([](EmulatedConfig& c) { c.max_append_bytes = 100; }, "max append size 100");
  EXPECT_TRUE(test::small_config().validate().ok());
}

// A table of small_config()'s zones: empty but zone 1 (closed at closed_wp) and zone 2 (full).
ZoneTable sample_table(std::uint64_t generation, std::uint64_t closed_wp) {
  const Geometry g = test::small_config().geometry();
  ZoneTable t;
  t.generation = generation;
  for (std::uint32_t z = 0; z < g.zone_count; ++z)
    t.zones.push_back({g.zone_start(z), g.zone_start(z), g.zone_capacity, ZoneState::kEmpty});
  t.zones[1] = {g.zone_start(1), g.zone_start(1) + closed_wp, g.zone_capacity, ZoneState::kClosed};
  t.zones[2] = {g.zone_start(2), g.zone_start(2) + g.zone_capacity, g.zone_capacity, ZoneState::kFull};
  return t;
}

class ZoneTableVersion : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(ZoneTableVersion, RoundTripsAndRejectsEveryBadField) {
  const std::uint32_t v = GetParam();
  const Geometry g = test::small_config().geometry();
  ZoneTable t = sample_table(77, 5);
  t.zones[3].state = ZoneState::kOffline;
  std::vector<std::uint8_t> b(layout_for(test::small_config(), v).table_slot_bytes);
  encode_zone_table(t, v, b);
  auto d = decode_zone_table(b, g, v);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->generation, 77u);
  EXPECT_EQ(d->zones, t.zones);

  auto expect_bad = [&](auto mutate, const char* want) {
    ZoneTable m = t;
    mutate(m);
    std::vector<std::uint8_t> mb(b.size());
    encode_zone_table(m, v, mb);
    auto r = decode_zone_table(mb, g, v);
    ASSERT_FALSE(r.ok()) << want;
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  };
  expect_bad(
      [&](ZoneTable& m) {
        m.zones[4].write_pointer = m.zones[4].start + 300;
        m.zones[4].state = ZoneState::kClosed;
      },
      "exceeds the zone capacity");
  expect_bad([&](ZoneTable& m) { m.zones[4].write_pointer = m.zones[4].start + 3; }, "is empty but its write pointer");
  expect_bad([&](ZoneTable& m) { m.zones[4].state = ZoneState::kFull; }, "is full but its write pointer");
  expect_bad([&](ZoneTable& m) { m.zones[4].state = static_cast<ZoneState>(9); }, "unknown state 9");
  expect_bad([&](ZoneTable& m) { m.zones.pop_back(); }, "15 zones, the header says 16");

  auto torn = b;
  torn[40] ^= 0xff;
  EXPECT_NE(decode_zone_table(torn, g, v).status().message().find("checksum mismatch"), std::string::npos);
  auto magic = b;
  magic[0] = 0;
  EXPECT_NE(decode_zone_table(magic, g, v).status().message().find("bad magic"), std::string::npos);
  EXPECT_NE(decode_zone_table(std::span(b).first(20), g, v).status().message().find("need"), std::string::npos);
  // A table of the other version's entry size is refused, not misread.
  const std::uint32_t other = v == 1 ? 2 : 1;
  EXPECT_NE(decode_zone_table(b, g, other).status().message().find("entry size"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Versions, ZoneTableVersion, ::testing::Values(1u, 2u));

// Version 2's unsynced blocks: where they sit in the entry, and their rules.
TEST(ZoneTable, Version2NamesUnsyncedBlocks) {
  const Geometry g = test::small_config().geometry();
  ZoneTable t = sample_table(9, 10);
  t.unsynced.resize(g.zone_count);
  for (std::uint32_t z = 0; z < g.zone_count; ++z) t.unsynced[z].from = t.zones[z].write_pointer - t.zones[z].start;
  t.unsynced[1] = {4, 0x1122334455667788ull};
  t.unsynced[2] = {0, 0x99ull};
  std::vector<std::uint8_t> b(layout_for(test::small_config()).table_slot_bytes);
  encode_zone_table(t, 2, b);
  EXPECT_EQ(get_le32(b.data() + 20), 32u);  // entry bytes
  const std::uint8_t* e1 = b.data() + 32 + 32;
  EXPECT_EQ(get_le64(e1), 10u);
  EXPECT_EQ(e1[8], 4);  // closed
  EXPECT_EQ(get_le64(e1 + 16), 4u);
  EXPECT_EQ(get_le64(e1 + 24), 0x1122334455667788ull);
  auto d = decode_zone_table(b, g, 2);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->unsynced, t.unsynced);

  auto expect_bad = [&](auto mutate, const char* want) {
    ZoneTable m = t;
    mutate(m);
    std::vector<std::uint8_t> mb(b.size());
    encode_zone_table(m, 2, mb);
    auto r = decode_zone_table(mb, g, 2);
    ASSERT_FALSE(r.ok()) << want;
    EXPECT_EQ(r.status().code(), Code::kCorruption);
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  };
  expect_bad([](ZoneTable& m) { m.unsynced[1].from = 11; },
             "unsynced blocks from offset 11, past its write pointer offset 10");
  expect_bad([](ZoneTable& m) { m.unsynced[3].hash = 5; }, "has a hash but no unsynced blocks");
  expect_bad([](ZoneTable& m) { m.zones[1].state = ZoneState::kReadOnly; }, "is read-only but has unsynced blocks");
}

}  // namespace
}  // namespace nyads::emulated_format
