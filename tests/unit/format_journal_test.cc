// Journal blocks and records: round trip, golden bytes, and every decode rule.
#include "format_samples.h"
#include "fs/format/codec.h"
#include "test_util.h"

namespace nyads::format {
namespace {

constexpr std::uint64_t kSeed = 0x5eed;

std::vector<std::uint8_t> encoded(const JournalBlock& b) {
  std::vector<std::uint8_t> out(kMetaBlockSize);
  Status s = encode_journal_block(b, kSeed, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

TEST(Journal, RoundTripsEveryRecordType) {
  const JournalBlock b = test::sample_journal_block();
  auto d = decode_journal_block(encoded(b), kSeed, "j");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(*d, b);
}

TEST(Journal, GoldenBytes) {
  JournalBlock b;
  b.seq = 9;
  b.records = {record::NamespaceCreate{3, 512, 8192, "ab"}, record::Extent{3, 1, 4096, {0x11223344}},
               record::NamespaceCreate{4, 4096, 1 << 30, "t", true}};
  const auto x = encoded(b);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(x.data()), 8), "NYADSJNL");
  EXPECT_EQ(get_le16(&x[8]), 3u);                          // version
  EXPECT_EQ(get_le16(&x[10]), 3u);                         // records
  EXPECT_EQ(get_le32(&x[12]), 4u + 19 + 4 + 28 + 4 + 18);  // payload bytes
  EXPECT_EQ(get_le64(&x[16]), 9u);                         // seq
  EXPECT_EQ(get_le64(&x[24]), block_checksum(x, kSeed));
  // record 1: type 1, flags 0, length 19, ns 3, block size 512, size 8192, name "ab"
  const std::uint8_t r1[] = {1, 0, 19, 0, 3, 0, 0, 0, 0, 2, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 2, 'a', 'b'};
  EXPECT_EQ(0, std::memcmp(&x[32], r1, sizeof r1));
  // record 2: type 4, length 28, ns 3, 1 block, vblock 1, lba 4096, checksum
  const std::uint8_t r2[] = {4, 0, 28, 0, 3, 0,    0, 0, 1, 0, 0, 0, 1,    0,    0,    0,
                             0, 0, 0,  0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11};
  EXPECT_EQ(0, std::memcmp(&x[32 + sizeof r1], r2, sizeof r2));
  // record 3: type 1, flags 1 (thin), length 18, ns 4, block size 4096, size 1 GiB, name "t"
  const std::uint8_t r3[] = {1, 1, 18, 0, 4, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 1, 't'};
  EXPECT_EQ(0, std::memcmp(&x[32 + sizeof r1 + sizeof r2], r3, sizeof r3));
  for (std::size_t i = 32 + sizeof r1 + sizeof r2 + sizeof r3; i < x.size(); ++i) ASSERT_EQ(x[i], 0) << i;
}

// A moved record: runs packed as vblock | (blocks - 1) << 52, no checksums.
TEST(Journal, MovedGoldenBytes) {
  JournalBlock b{3, {record::Moved{3, 4096, {{1, 1}, {0x10, 256}}}}};
  const auto x = encoded(b);
  EXPECT_EQ(get_le32(&x[12]), 4u + 32);
  const std::uint8_t r[] = {8, 0, 32, 0, 3, 0, 0, 0, 2, 0, 0,    0, 0, 0x10, 0, 0, 0,    0,
                            0, 0, 1,  0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0,    0, 0, 0xf0, 0x0f};
  EXPECT_EQ(0, std::memcmp(&x[32], r, sizeof r));
  auto d = decode_journal_block(x, kSeed, "j");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(*d, b);
}

// An unflushed-commit record: type 9, the commit's first sequence number; at most one a block,
// and not after the block's own sequence number.
TEST(Journal, UnflushedCommitGoldenBytesAndRules) {
  JournalBlock b{12, {record::UnflushedCommit{10}, record::NamespaceDelete{2}}};
  const auto x = encoded(b);
  EXPECT_EQ(get_le32(&x[12]), kUnflushedCommitRecordBytes + 8);
  EXPECT_EQ(encoded_size(record::UnflushedCommit{10}), kUnflushedCommitRecordBytes);
  const std::uint8_t r[] = {9, 0, 8, 0, 10, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(0, std::memcmp(&x[32], r, sizeof r));
  auto d = decode_journal_block(x, kSeed, "j");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(*d, b);
  EXPECT_EQ(d->unflushed_commit(), 10u);
  EXPECT_EQ((JournalBlock{12, {record::NamespaceDelete{2}}}.unflushed_commit()), std::nullopt);
  std::vector<std::uint8_t> out(kMetaBlockSize);
  EXPECT_NE(encode_journal_block(JournalBlock{12, {record::UnflushedCommit{13}}}, kSeed, out)
                .message()
                .find("after its own block's 12"),
            std::string::npos);
  EXPECT_NE(
      encode_journal_block(JournalBlock{12, {record::UnflushedCommit{10}, record::UnflushedCommit{10}}}, kSeed, out)
          .message()
          .find("a second"),
      std::string::npos);
  EXPECT_NE(
      encode_journal_block(JournalBlock{12, {record::UnflushedCommit{0}}}, kSeed, out).message().find("sequence 0"),
      std::string::npos);
}

TEST(Journal, EncodeRefusesWhatDoesNotFitOrIsInvalid) {
  JournalBlock b;
  b.seq = 1;
  b.records.push_back(record::Extent{1, 0, 0, std::vector<std::uint32_t>(kMaxExtentBlocksPerRecord, 7)});
  std::vector<std::uint8_t> out(kMetaBlockSize);
  EXPECT_TRUE(encode_journal_block(b, kSeed, out).ok());  // exactly full
  b.records.push_back(record::NamespaceDelete{1});
  EXPECT_NE(encode_journal_block(b, kSeed, out).message().find("a journal block holds 4064"), std::string::npos);
  JournalBlock bad{1, {record::NamespaceCreate{1, 4096, 4096, "bad name"}}};
  EXPECT_NE(encode_journal_block(bad, kSeed, out).message().find("the character ' '"), std::string::npos);
  EXPECT_EQ(encode_journal_block(JournalBlock{0, {}}, kSeed, out).code(), Code::kInvalidArgument);
}

// Every validate_record rule, through the encoder (which refuses) and the decoder (which
// reports corruption for the same record written past the encoder).
struct RecordRule {
  const char* name;
  JournalRecord record;
  const char* message;
};
void PrintTo(const RecordRule& r, std::ostream* os) { *os << r.name; }
class JournalRecordRule : public ::testing::TestWithParam<RecordRule> {};

TEST_P(JournalRecordRule, IsEnforced) {
  Status v = validate_record(GetParam().record);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.message().find(GetParam().message), std::string::npos) << v.message();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, JournalRecordRule,
    ::testing::Values(
        RecordRule{"create_ns0", record::NamespaceCreate{0, 4096, 4096, "a"}, "namespace id 0 is reserved"},
        RecordRule{"create_block_size", record::NamespaceCreate{1, 1024, 4096, "a"},
                   "block size 1024 is not 512 or 4096"},
        RecordRule{"create_size", record::NamespaceCreate{1, 4096, 1000, "a"},
                   "size 1000 bytes is not a positive multiple of 4096"},
        RecordRule{"create_name", record::NamespaceCreate{1, 4096, 4096, ""}, "namespace name is empty"},
        RecordRule{"delete_ns0", record::NamespaceDelete{0}, "namespace id 0"},
        RecordRule{"resize_size", record::NamespaceResize{1, 0}, "size 0 bytes"},
        RecordRule{"extent_empty", record::Extent{1, 0, 0, {}}, "extent of 0 blocks"},
        RecordRule{"extent_long", record::Extent{1, 0, 0, std::vector<std::uint32_t>(kMaxExtentBlocksPerRecord + 1)},
                   "per record"},
        RecordRule{"extent_far", record::Extent{1, (1ull << 52) - 1, 0, {1, 2}}, "runs past 2^52 blocks"},
        RecordRule{"trim_empty", record::Trim{1, 0, 0}, "trim of 0 blocks"},
        RecordRule{"trim_far", record::Trim{1, 1ull << 52, 1}, "runs past 2^52 blocks"},
        RecordRule{"checkpoint_seq", record::CheckpointDone{0, 4, 1}, "checkpoint sequence 0"},
        RecordRule{"checkpoint_blocks", record::CheckpointDone{1, 4, 0}, "checkpoint of 0 blocks"},
        RecordRule{"moved_empty", record::Moved{1, 0, {}}, "move of 0 runs"},
        RecordRule{"moved_run0", record::Moved{1, 0, {{5, 0}}}, "moved run of 0 blocks (1..4096)"},
        RecordRule{"moved_run_long", record::Moved{1, 0, {{5, 4097}}}, "moved run of 4097 blocks"},
        RecordRule{"moved_far", record::Moved{1, 0, {{(1ull << 52) - 1, 2}}}, "runs past 2^52 blocks"},
        RecordRule{"moved_many",
                   record::Moved{1, 0, std::vector<record::Moved::Run>(kMaxMovedRunsPerRecord + 1, {1, 1})},
                   "per record"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// Byte-level damage the decoder must name: each case edits an encoded block and reseals it.
struct ByteCase {
  const char* name;
  void (*edit)(std::vector<std::uint8_t>&);
  const char* message;
};
void PrintTo(const ByteCase& r, std::ostream* os) { *os << r.name; }
class JournalDecodeRule : public ::testing::TestWithParam<ByteCase> {};

TEST_P(JournalDecodeRule, IsReported) {
  auto x = encoded(test::sample_journal_block());
  GetParam().edit(x);
  seal_block(x, kSeed);
  auto d = decode_journal_block(x, kSeed, "journal zone 2 block 5");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("journal zone 2 block 5: "), std::string::npos) << d.status().message();
  EXPECT_NE(d.status().message().find(GetParam().message), std::string::npos) << d.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Bytes, JournalDecodeRule,
    ::testing::Values(
        ByteCase{"version", [](auto& x) { put_le16(&x[8], 7); }, "journal version 7"},
        ByteCase{"seq0", [](auto& x) { put_le64(&x[16], 0); }, "sequence 0"},
        ByteCase{"payload_big", [](auto& x) { put_le32(&x[12], 5000); }, "payload of 5000 bytes exceeds 4064"},
        ByteCase{"payload_short", [](auto& x) { put_le32(&x[12], get_le32(&x[12]) - 4); }, "runs past the payload"},
        ByteCase{"payload_long", [](auto& x) { put_le32(&x[12], get_le32(&x[12]) + 8); }, "the header says"},
        ByteCase{"count_more", [](auto& x) { put_le16(&x[10], 10); }, "record 9 at byte"},
        ByteCase{"flags", [](auto& x) { x[33] = 2; }, "flags 0x0000000000000002, expected only bit 0"},
        ByteCase{"type", [](auto& x) { x[32] = 99; }, "unknown record type 99"},
        ByteCase{"create_len", [](auto& x) { put_le16(&x[34], 12); },
                 "namespace-create body of 12 bytes, expected at least 17"},
        ByteCase{"create_namelen", [](auto& x) { x[32 + 4 + 16] = 9; }, "its name needs 26"},
        ByteCase{"create_invalid", [](auto& x) { put_le32(&x[32 + 8], 100); }, "block size 100"},
        // The sample's records start at 32 (create: 27 bytes), 59 (extent: 40), 99 (trim: 28), 127 (resize),
        // and the moved record at 175 (36 bytes: ns at 179, runs at 183, reserved at 185).
        ByteCase{"version_newer", [](auto& x) { put_le16(&x[8], 4); },
                 "journal version 4, this build reads versions 1 to 3"},
        ByteCase{"version1_moved", [](auto& x) { put_le16(&x[8], 1); },
                 "record 6 at byte 175: a moved record in a version 1 block"},
        ByteCase{"moved_reserved", [](auto& x) { put_le16(&x[185], 1); },
                 "record 6 at byte 175: reserved field is not zero"},
        ByteCase{"moved_runs", [](auto& x) { put_le16(&x[183], 3); }, "moved body of 32 bytes, its 3 runs need 40"},
        ByteCase{"moved_len", [](auto& x) { put_le16(&x[177], 20); },
                 "moved body of 20 bytes, expected 16 + 8 per run"},
        ByteCase{"moved_ns0", [](auto& x) { put_le32(&x[179], 0); }, "namespace id 0 is reserved"},
        ByteCase{"trim_reserved", [](auto& x) { put_le32(&x[99 + 8], 1); },
                 "record 2 at byte 99: reserved field is not zero"},
        ByteCase{"resize_reserved", [](auto& x) { put_le32(&x[127 + 8], 1); },
                 "record 3 at byte 127: reserved field is not zero"},
        ByteCase{"version2_unflushed", [](auto& x) { put_le16(&x[8], 2); },
                 "record 8 at byte 219: an unflushed-commit record in a version 2 block"},
        ByteCase{"unflushed_len", [](auto& x) { put_le16(&x[221], 4); },
                 "unflushed-commit body of 4 bytes, expected 8"},
        ByteCase{"unflushed_after_seq", [](auto& x) { put_le64(&x[223], 43); },
                 "unflushed commit starting at sequence 43, after its own block's 42"},
        ByteCase{"unflushed_zero", [](auto& x) { put_le64(&x[223], 0); }, "unflushed commit starting at sequence 0"},
        ByteCase{"extent_len", [](auto& x) { put_le16(&x[59 + 2], 44); },
                 "record 1 at byte 59: extent of 3 blocks takes 36 bytes, the record says 44"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Journal, DamageAndForeignSeedAreCaught) {
  auto x = encoded(test::sample_journal_block());
  auto torn = x;
  torn[3000] ^= 0x80;
  EXPECT_NE(decode_journal_block(torn, kSeed, "j").status().message().find("checksum mismatch"), std::string::npos);
  EXPECT_NE(decode_journal_block(x, kSeed + 1, "j").status().message().find("checksum mismatch"), std::string::npos);
  auto magic = x;
  magic[1] = 0;
  EXPECT_NE(decode_journal_block(magic, kSeed, "j").status().message().find("not a journal block (bad magic)"),
            std::string::npos);
  EXPECT_NE(decode_journal_block(std::span(x).first(64), kSeed, "j").status().message().find("a journal block is 4096"),
            std::string::npos);
}

TEST(Journal, RecordSizesMatchTheEncoding) {
  for (const auto& r : test::sample_journal_block().records) {
    JournalBlock one{50, {r}};  // after the sample unflushed commit's start
    auto x = encoded(one);
    EXPECT_EQ(get_le32(&x[12]), encoded_size(r));
  }
}

}  // namespace
}  // namespace nyads::format
