#include "nyads/status.h"

#include <cerrno>

#include "nyads/units.h"
#include "test_util.h"

namespace nyads {
namespace {

TEST(ParseSize, AcceptsWhatPeopleWrite) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("64M"), 64ull << 20);
  EXPECT_EQ(*parse_size("64MiB"), 64ull << 20);
  EXPECT_EQ(*parse_size("20G"), 20ull << 30);
  EXPECT_EQ(*parse_size("1.5K"), 1536u);
  EXPECT_EQ(*parse_size("2t"), 2ull << 40);
  EXPECT_EQ(*parse_size("512B"), 512u);
}

TEST(ParseSize, RefusesWhatItCannotRead) {
  for (const char* bad : {"", "-1", "G", "12X", "1.5", "99999999999999999999", "17179869184G", "4MBs", "1 G"}) {
    auto r = parse_size(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("size '"), std::string::npos) << r.status().message();
  }
}

TEST(FormatSize, UsesBinaryUnits) {
  EXPECT_EQ(format_size(64ull << 20), "64 MiB");
  EXPECT_EQ(format_size(1536ull << 20), "1.50 GiB");
  EXPECT_EQ(format_size(100), "100 B");
}

TEST(Status, CarriesCodeMessageAndErrno) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.to_string(), "ok");
  Status s(Code::kZoneFull, "write to zone 3");
  EXPECT_EQ(s.to_string(), "zone is full: write to zone 3");
  EXPECT_EQ(s.to_errno(), ENOSPC);
  EXPECT_EQ(s.with_context("mkfs").message(), "mkfs: write to zone 3");
  EXPECT_EQ(ErrnoStatus(ETOOMANYREFS, "open").code(), Code::kTooManyOpenZones);
  EXPECT_EQ(ErrnoStatus(EOVERFLOW, "open").code(), Code::kTooManyActiveZones);
  EXPECT_NE(ErrnoStatus(EIO, "read").message().find("Input/output error"), std::string::npos);
  Result<int> r = 5;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
  Result<int> e = IoError("x");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kIoError);
}

}  // namespace
}  // namespace nyads
