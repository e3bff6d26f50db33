// The emulated file backend's writing thread (zns/file_writer.h): large writes are copied into
// the file by another thread while the submitter goes on; their completions, reads of their
// blocks, flushes and closing all wait for them; a failed copy is that write's error. A
// write's prepare step (the store's checksums) runs on that thread too, before the copy.
// This binary defines pwrite itself, which the device (linked into it) calls instead of
// libc's: large writes can be held at a gate, or failed, on demand.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "store_harness.h"
#include "test_util.h"
#include "zns/file_writer.h"

namespace {
constexpr std::size_t kLarge = 64 << 10;  // small_config's largest append: the writer takes it
std::mutex g_gate_mutex;
std::condition_variable g_gate_opened;
bool g_gate_closed = false;       // large pwrites wait while set
std::atomic<int> g_held{0};       // large pwrites waiting at the gate now
std::atomic<int> g_fail_with{0};  // the errno large pwrites fail with; 0: libc's
std::atomic<std::thread::id> g_last_writer{};

void close_gate() {
  std::lock_guard lock(g_gate_mutex);
  g_gate_closed = true;
}
void open_gate() {
  {
    std::lock_guard lock(g_gate_mutex);
    g_gate_closed = false;
  }
  g_gate_opened.notify_all();
}
void wait_until_held(int n) {
  for (int i = 0; i < 5000 && g_held.load() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}
bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}
}  // namespace

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (n >= kLarge) {
    g_last_writer = std::this_thread::get_id();
    std::unique_lock lock(g_gate_mutex);
    ++g_held;
    g_gate_opened.wait(lock, [] { return !g_gate_closed; });
    --g_held;
    if (const int e = g_fail_with.load(); e != 0) {
      errno = e;
      return -1;
    }
  }
  using Fn = ssize_t (*)(int, const void*, size_t, off_t);
  static const Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "pwrite"));
  return real(fd, buf, n, off);
}

namespace nyads {
namespace {

using test::pattern;

class EmulatedWriter : public test::EmulatedFileTest {
 protected:
  void TearDown() override {
    open_gate();
    g_fail_with = 0;
  }
  std::uint32_t large_blocks() const { return static_cast<std::uint32_t>(kLarge / g_.block_size); }
  // A large append of `a` (tag 1) whose copy the writing thread holds at the gate on return.
  void submit_held_append(ZonedDevice& d, AlignedBuffer& a) {
    close_gate();
    ASSERT_OK(d.submit({IoOp::kAppend, 0, large_blocks(), a.data(), 1, {}, true}));
    wait_until_held(1);
    ASSERT_EQ(g_held.load(), 1) << "the write was not handed to the writing thread";
  }
};

// Reaps until `done` is full, however the completions come.
template <std::size_t N>
void reap_all(ZonedDevice& d, IoCompletion (&done)[N]) {
  for (std::size_t n = 0; n < N;) n += d.reap(std::span(done).subspan(n), 1);
}

// Opens the gate 50 ms from now, from another thread (join it).
std::thread open_gate_soon() {
  return std::thread([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    open_gate();
  });
}

TEST_F(EmulatedWriter, ALargeWriteIsCopiedByAnotherThreadWhileTheSubmitterGoesOn) {
  auto d = create();
  ASSERT_TRUE(d);
  ASSERT_GE(d->writes_done_fd(), 0) << "a writable file has a writing thread";
  auto a = pattern(0, large_blocks(), g_.block_size, 1);
  close_gate();
  ASSERT_OK(d->submit({IoOp::kAppend, 0, large_blocks(), a.data(), 7, {}, true}));
  // submit returned with the copy held at the gate: it is not the submitter's.
  wait_until_held(1);
  ASSERT_EQ(g_held.load(), 1) << "the write was not handed to the writing thread";
  EXPECT_NE(g_last_writer.load(), std::this_thread::get_id());
  EXPECT_TRUE(d->writing());
  EXPECT_FALSE(readable(d->writes_done_fd())) << "writes-done signalled while a write is held";
  IoCompletion none[1];
  EXPECT_EQ(d->reap(none, 0), 0u) << "a held write completed";
  open_gate();
  pollfd p{d->writes_done_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "writes-done never signalled";
  EXPECT_FALSE(d->writing());
  IoCompletion done[1];
  ASSERT_EQ(d->reap(done, 1), 1u);
  EXPECT_EQ(done[0].tag, 7u);
  ASSERT_OK(done[0].status);
  EXPECT_EQ(done[0].lba, 0u);
  AlignedBuffer got(kLarge);
  ASSERT_OK(SyncDevice(*d).read(0, large_blocks(), got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), kLarge));
}

// A large write whose submitter waits at once (caller_goes_on unset: SyncDevice, the cleaner's
// moves, a batch with nothing to do meanwhile) is copied at submit, on the submitter's thread:
// a handoff would only add two wakeups.
TEST_F(EmulatedWriter, ALargeWriteWhoseCallerWaitsIsCopiedAtSubmit) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, large_blocks(), g_.block_size, 12);
  g_last_writer = std::thread::id{};
  ASSERT_OK(d->submit({IoOp::kAppend, 0, large_blocks(), a.data(), 1, {}, false}));
  EXPECT_EQ(g_last_writer.load(), std::this_thread::get_id()) << "the copy was not made by the submitter";
  EXPECT_FALSE(d->writing());
  IoCompletion done[1];
  ASSERT_EQ(d->reap(done, 0), 1u) << "the write had not completed at submit";
  ASSERT_OK(done[0].status);
}

// IoRequest::prepare: on the writing thread, before the copy, for a write handed to it; at
// submit, on the submitter's thread, for a small one.
TEST_F(EmulatedWriter, APrepareStepRunsOnTheWritingThreadBeforeTheCopy) {
  auto d = create();
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->runs_prepare());
  auto a = pattern(0, large_blocks(), g_.block_size, 9);
  std::atomic<int> prepared{0};
  std::atomic<std::thread::id> prepared_on{};
  IoRequest large{IoOp::kAppend, 0, large_blocks(), a.data(), 1, {}, true};
  large.prepare = [&] {
    prepared_on = std::this_thread::get_id();
    ++prepared;
  };
  close_gate();
  ASSERT_OK(d->submit(large));
  wait_until_held(1);
  ASSERT_EQ(g_held.load(), 1);
  EXPECT_EQ(prepared.load(), 1) << "the copy started before its prepare step ran";
  EXPECT_NE(prepared_on.load(), std::this_thread::get_id()) << "the prepare step ran on the submitter's thread";
  open_gate();
  IoCompletion done[1];
  ASSERT_EQ(d->reap(done, 1), 1u);
  ASSERT_OK(done[0].status);
  // A small write (copied at submit): its prepare step has run when submit returns.
  auto small = pattern(large_blocks(), 1, g_.block_size, 10);
  IoRequest one{IoOp::kAppend, 0, 1, small.data(), 2, {}, false};
  one.prepare = [&] {
    prepared_on = std::this_thread::get_id();
    ++prepared;
  };
  ASSERT_OK(d->submit(one));
  EXPECT_EQ(prepared.load(), 2);
  EXPECT_EQ(prepared_on.load(), std::this_thread::get_id());
  ASSERT_EQ(d->reap(done, 1), 1u);
  ASSERT_OK(done[0].status);
}

// Says the device runs prepare steps (as the emulated one does) and records which writes
// came with one, forwarding them to the device.
class PrepareRecordingDevice : public test::BorrowedDevice {
 public:
  using BorrowedDevice::BorrowedDevice;
  bool runs_prepare() const override { return true; }
  Status submit(const IoRequest& r) override {
    if (r.op == IoOp::kAppend || r.op == IoOp::kWrite) (r.prepare ? with : without) += r.blocks;
    return BorrowedDevice::submit(r);
  }
  std::uint64_t with = 0, without = 0;  // blocks written with a prepare step, without
};

// The store checksums a write's blocks in its prepare step when the device runs them: the
// emulated device's writing thread computes them beside the copy when the batch has
// something to do meanwhile, the submitter at submit otherwise. A sum computed wrong (or
// never) fails the reads after reopening.
TEST_F(EmulatedWriter, TheStoreChecksumsLargeWritesInThePrepareStep) {
  {
    auto d = EmulatedDevice::create_file(path_, test::store_config());
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    ASSERT_TRUE(mkfs::format_volume(**d, {}).ok());
  }
  auto data = test::bytes_of(11, 512 << 10);
  {
    auto d = open_zoned_device(path_);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    auto recording = std::make_unique<PrepareRecordingDevice>(**d);
    PrepareRecordingDevice* rec = recording.get();
    auto st = Store::open(std::move(recording));
    ASSERT_TRUE(st.ok()) << st.status().to_string();
    auto info = (*st)->create_namespace("sums", 4 << 20);
    ASSERT_TRUE(info.ok()) << info.status().to_string();
    const std::uint64_t before = rec->with;
    // With something to do meanwhile: the writing thread copies (and checksums) the first.
    std::vector<StoreRequest> batch = {StoreRequest::write(info->id, 0, std::span(data).first(256 << 10))};
    g_last_writer = std::thread::id{};
    int meanwhile = 0;
    ASSERT_OK((*st)->execute(batch, [&] { ++meanwhile; }));
    ASSERT_OK(batch[0].result);
    EXPECT_EQ(meanwhile, 1);
    EXPECT_NE(g_last_writer.load(), std::this_thread::get_id()) << "a batch with work meanwhile was copied inline";
    // With nothing to do meanwhile: copied (and checksummed) at submit.
    batch = {StoreRequest::write(info->id, 1 << 20, std::span(data).subspan(256 << 10))};
    ASSERT_OK((*st)->execute(batch));
    ASSERT_OK(batch[0].result);
    EXPECT_EQ(g_last_writer.load(), std::this_thread::get_id()) << "a batch that waits at once was handed over";
    EXPECT_EQ(rec->with - before, (512u << 10) / 4096) << "a write went to the device without its prepare step";
    ASSERT_OK((*st)->close());
  }
  auto d = open_zoned_device(path_);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  auto st = Store::open(std::move(*d));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  auto info = (*st)->find_namespace("sums");
  ASSERT_TRUE(info.ok());
  std::vector<std::uint8_t> got(256 << 10);
  ASSERT_OK((*st)->read(info->id, 0, got));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin()));
  ASSERT_OK((*st)->read(info->id, 1 << 20, got));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + (256 << 10)));
  EXPECT_EQ((*st)->stats().checksum_errors, 0u);
}

TEST_F(EmulatedWriter, AReadOfBlocksStillBeingCopiedWaitsForThem) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, large_blocks(), g_.block_size, 2);
  submit_held_append(*d, a);
  // The read is submitted from this thread while the copy is held: it must wait for it, not
  // read what the file held before.
  std::thread opener = open_gate_soon();
  AlignedBuffer got(kLarge);
  ASSERT_OK(d->submit({IoOp::kRead, 0, large_blocks(), got.data(), 2, {}, false}));
  IoCompletion done[2];
  reap_all(*d, done);
  opener.join();
  EXPECT_EQ(done[0].tag, 1u) << "the write completes before the read that waited for it";
  for (const auto& c : done) ASSERT_OK(c.status);
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), kLarge)) << "the read saw the blocks before the write";
}

TEST_F(EmulatedWriter, CompletionsKeepTheOrderOfSubmissionSmallWritesIncluded) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, large_blocks(), g_.block_size, 3);
  auto small = pattern(large_blocks(), 1, g_.block_size, 4);
  close_gate();
  ASSERT_OK(d->submit({IoOp::kAppend, 0, large_blocks(), a.data(), 1, {}, true}));
  // A small write behind a large one is queued behind it too (the zone's blocks are hashed
  // in order for the next flush), not copied at once.
  ASSERT_OK(d->submit({IoOp::kAppend, 0, 1, small.data(), 2, {}, false}));
  wait_until_held(1);
  IoCompletion none[2];
  EXPECT_EQ(d->reap(none, 0), 0u) << "the small write overtook the large one";
  open_gate();
  IoCompletion done[2];
  reap_all(*d, done);
  EXPECT_EQ(done[0].tag, 1u);
  EXPECT_EQ(done[1].tag, 2u);
  EXPECT_EQ(done[1].lba, large_blocks());
  // The flush that follows can name these blocks by hash (one sync), and reopening finds them.
  ASSERT_OK(SyncDevice(*d).flush());
  d.reset();
  auto reopened = open_zoned_device(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  EXPECT_EQ((*(*reopened)->report_zones(0, 1))[0].write_pointer, large_blocks() + 1u);
  AlignedBuffer got(kLarge + g_.block_size);
  ASSERT_OK(SyncDevice(**reopened).read(0, large_blocks() + 1, got.data()));
  EXPECT_EQ(0, std::memcmp(got.data(), a.data(), kLarge));
  EXPECT_EQ(0, std::memcmp(got.data() + kLarge, small.data(), g_.block_size));
}

TEST_F(EmulatedWriter, AFlushWaitsForTheCopiesBeforeIt) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, large_blocks(), g_.block_size, 5);
  submit_held_append(*d, a);
  std::thread opener = open_gate_soon();
  ASSERT_OK(d->submit({IoOp::kFlush, 0, 0, nullptr, 2, {}, false}));
  IoCompletion done[2];
  reap_all(*d, done);
  opener.join();
  EXPECT_EQ(done[0].tag, 1u) << "the flush completed before the write it covers";
  for (const auto& c : done) ASSERT_OK(c.status);
  d.reset();
  auto reopened = open_zoned_device(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
  EXPECT_EQ((*(*reopened)->report_zones(0, 1))[0].write_pointer, large_blocks());
}

TEST_F(EmulatedWriter, AFailedCopyIsThatWritesError) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, large_blocks(), g_.block_size, 6);
  g_fail_with = EIO;
  ASSERT_OK(d->submit({IoOp::kAppend, 0, large_blocks(), a.data(), 1, {}, true}));
  IoCompletion done[1];
  ASSERT_EQ(d->reap(done, 1), 1u);
  EXPECT_EQ(done[0].status.code(), Code::kIoError) << done[0].status.to_string();
  EXPECT_NE(done[0].status.message().find(path_ + ": write"), std::string::npos) << done[0].status.message();
  g_fail_with = 0;
  // The next flush syncs the data before the table (a failed write's bytes are unknown), and
  // the device goes on.
  ASSERT_OK(SyncDevice(*d).flush());
  auto b = pattern(large_blocks(), large_blocks(), g_.block_size, 7);
  auto lba = SyncDevice(*d).append(0, large_blocks(), b.data());
  ASSERT_TRUE(lba.ok()) << lba.status().to_string();
}

TEST_F(EmulatedWriter, ClosingWaitsForTheCopiesStillHeld) {
  auto d = create();
  ASSERT_TRUE(d);
  auto a = pattern(0, large_blocks(), g_.block_size, 8);
  submit_held_append(*d, a);
  std::atomic<bool> opened{false};
  std::thread opener([&opened] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    opened = true;
    open_gate();
  });
  d.reset();  // must not return (and close the file the copy goes to) while the copy is held
  EXPECT_TRUE(opened.load()) << "the device closed with a write still being copied";
  opener.join();
  auto reopened = open_zoned_device(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().to_string();
}

TEST(FileWriter, WritesInOrderAndSignalsWhenAllAreWritten) {
  test::TempDir dir;
  const std::string path = dir.file("f");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  {
    FileWriter w(fd, path);
    ASSERT_OK(w.start());
    std::vector<std::uint8_t> one(kLarge, 1), two(kLarge, 2);
    close_gate();
    w.queue({one.data(), one.size(), 0, {}});
    w.queue({two.data(), two.size(), 0, {}});  // the same place: the second must land last
    wait_until_held(1);
    EXPECT_FALSE(w.all_written());
    EXPECT_EQ(w.outstanding(), 2u);
    std::deque<Status> out;
    EXPECT_EQ(w.take(out, false), 0u);
    open_gate();
    pollfd p{w.event_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    EXPECT_TRUE(w.all_written());
    while (out.size() < 2) w.take(out, true);
    for (const auto& s : out) ASSERT_OK(s);
    EXPECT_EQ(w.outstanding(), 0u);
    EXPECT_FALSE(readable(w.event_fd())) << "take() leaves the signal set";
  }
  std::uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, kLarge - 1), 1);
  EXPECT_EQ(b, 2) << "the writes landed out of order";
  ::close(fd);
}

}  // namespace
}  // namespace nyads
