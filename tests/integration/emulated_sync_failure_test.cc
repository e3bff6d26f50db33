// A failed fdatasync on the emulated file backend fails every later flush: the kernel reports
// a failed writeback to one fdatasync only and marks the pages clean, so a later fdatasync
// would succeed over data that may be gone. This binary fails fdatasync on demand: it defines
// fdatasync itself, which the device (linked into it) calls instead of libc's.
#include <dlfcn.h>

#include <atomic>
#include <cerrno>

#include "test_util.h"

namespace {
std::atomic<int> g_fail_with{0};  // the errno fdatasync fails with; 0: libc's
}  // namespace

extern "C" int fdatasync(int fd) {
  if (const int e = g_fail_with.load(); e != 0) {
    errno = e;
    return -1;
  }
  using Fn = int (*)(int);
  static const Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "fdatasync"));
  return real(fd);
}

namespace nyads {
namespace {

using test::pattern;

class EmulatedSyncFailure : public test::EmulatedFileTest {
 protected:
  void TearDown() override { g_fail_with = 0; }
};

TEST_F(EmulatedSyncFailure, AFailedFlushFailsEveryLaterFlushUntilReopened) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 4, g_.block_size, 1);
  ASSERT_OK(SyncDevice(*d).write(0, 4, a.data()));
  g_fail_with = EIO;
  Status failed = SyncDevice(*d).flush();
  EXPECT_EQ(failed.code(), Code::kIoError) << failed.to_string();
  g_fail_with = 0;
  // The kernel would now report success: the device must not.
  Status again = SyncDevice(*d).flush();
  EXPECT_EQ(again.code(), Code::kIoError) << "a flush after a failed one succeeded";
  EXPECT_NE(again.message().find("every later flush fails until the device is opened again"), std::string::npos) << again.message();
  ASSERT_OK(SyncDevice(*d).write(4, 4, a.data()));
  EXPECT_EQ(SyncDevice(*d).flush().code(), Code::kIoError);
  d.reset();
  auto reopened = open_zoned_device(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  ASSERT_OK(SyncDevice(**reopened).flush());
}

TEST_F(EmulatedSyncFailure, AWritebackJobsFailureFailsTheNextFlush) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 8, g_.block_size, 2);
  ASSERT_OK(SyncDevice(*d).write(0, 8, a.data()));
  const std::uint64_t written = 8ull * g_.block_size;
  EXPECT_FALSE(d->writeback_job(written + 1)) << "a job for less than asked";
  auto job = d->writeback_job(written);
  ASSERT_TRUE(job) << "no writeback job for a file with unflushed writes";
  g_fail_with = EIO;
  job();  // the daemon runs it on its writeback thread
  g_fail_with = 0;
  Status flushed = SyncDevice(*d).flush();
  EXPECT_EQ(flushed.code(), Code::kIoError) << "the flush after a failed writeback job succeeded";
  EXPECT_NE(flushed.message().find("writing the file back failed"), std::string::npos) << flushed.message();
}

TEST_F(EmulatedSyncFailure, AGoodWritebackJobLeavesFlushesWorking) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, 8, g_.block_size, 3);
  ASSERT_OK(SyncDevice(*d).write(0, 8, a.data()));
  auto job = d->writeback_job(0);
  ASSERT_TRUE(job);
  job();
  ASSERT_OK(SyncDevice(*d).flush());
  EXPECT_FALSE(d->writeback_job(1)) << "a job right after a flush";
}

}  // namespace
}  // namespace nyads
