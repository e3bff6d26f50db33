// Batches: many requests' device I/O in flight at once. A device wrapper holds every queued
// request and runs them in a shuffled order, so appends land out of order and completions
// arrive out of order, the way a real queue may deliver them.
#include <algorithm>
#include <map>
#include <random>

#include "fsck/fsck.h"
#include "store_harness.h"

namespace nyads {
namespace {

// Runs queued requests in a random order when they are reaped.
class ShufflingDevice : public test::BorrowedDevice {
 public:
  ShufflingDevice(ZonedDevice& d, std::uint64_t seed) : BorrowedDevice(d), inner_(d), rng_(seed) {}
  Status submit(const IoRequest& r) override {
    if (held_.size() + inner_.in_flight() >= queue_depth()) return Status(Code::kBusy, "queue full");
    held_.push_back(r);
    max_held_ = std::max(max_held_, held_.size());
    return Status::Ok();
  }
  std::size_t reap(std::span<IoCompletion> out, std::size_t min) override {
    std::shuffle(held_.begin(), held_.end(), rng_);
    for (const auto& r : held_) EXPECT_TRUE(inner_.submit(r).ok());
    held_.clear();
    std::vector<IoCompletion> got(inner_.in_flight());
    got.resize(inner_.reap(got, got.size()));
    std::shuffle(got.begin(), got.end(), rng_);
    for (auto& c : got) pending_.push_back(std::move(c));
    std::size_t n = 0;
    while (n < out.size() && !pending_.empty() && (n < min || n < pending_.size())) {
      out[n++] = std::move(pending_.back());
      pending_.pop_back();
    }
    return n;
  }
  std::uint32_t in_flight() const override {
    return static_cast<std::uint32_t>(held_.size() + pending_.size()) + inner_.in_flight();
  }
  std::size_t max_held() const { return max_held_; }

 private:
  ZonedDevice& inner_;
  std::mt19937_64 rng_;
  std::vector<IoRequest> held_;
  std::vector<IoCompletion> pending_;
  std::size_t max_held_ = 0;
};

std::unique_ptr<Store> open_shuffled(ZonedDevice& d, std::uint64_t seed, ShufflingDevice** out = nullptr) {
  auto dev = std::make_unique<ShufflingDevice>(d, seed);
  if (out) *out = dev.get();
  auto s = Store::open(std::move(dev));
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? std::move(*s) : nullptr;
}

// Random batches of up to 48 requests over three namespaces, with the blocks each batch
// touches disjoint, checked against a model; then a crash after the last flush and a reopen.
TEST(StoreBatch, RandomBatchesMatchAModelWithShuffledCompletions) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto dev = test::formatted_memory_device(48);
    ShufflingDevice* shuffler = nullptr;
    auto st = open_shuffled(*dev, seed, &shuffler);
    constexpr std::uint64_t kSize = 4 << 20;
    std::vector<std::uint32_t> ids;
    std::vector<std::vector<std::uint8_t>> model;
    for (int i = 0; i < 3; ++i) {
      auto info = st->create_namespace("batch" + std::to_string(i), kSize);
      ASSERT_TRUE(info.ok());
      ids.push_back(info->id);
      model.emplace_back(kSize, 0);
    }
    for (int round = 0; round < 120; ++round) {
      const std::size_t n = 1 + rng() % 48;
      std::vector<StoreRequest> batch;
      std::vector<std::vector<std::uint8_t>> buffers;
      buffers.reserve(n);
      std::map<std::pair<std::size_t, std::uint64_t>, bool> touched;  // (ns, block)
      auto claim = [&](std::size_t ns, std::uint64_t off, std::uint64_t len) {
        for (std::uint64_t b = off / 4096; b < (off + len) / 4096; ++b)
          if (touched.count({ns, b})) return false;
        for (std::uint64_t b = off / 4096; b < (off + len) / 4096; ++b) touched[{ns, b}] = true;
        return true;
      };
      const std::vector<std::vector<std::uint8_t>> before = model;
      std::vector<std::pair<std::size_t, std::size_t>> reads;  // (request, namespace)
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t ns = rng() % 3;
        const std::uint64_t len = (1 + rng() % 32) * 4096;
        const std::uint64_t off = (rng() % ((kSize - len) / 4096 + 1)) * 4096;
        const int kind = static_cast<int>(rng() % 100);
        if (kind < 3) {
          batch.push_back(StoreRequest::flush());
          continue;
        }
        if (!claim(ns, off, len)) continue;
        if (kind < 55) {
          buffers.push_back(test::bytes_of(rng(), len));
          batch.push_back(StoreRequest::write(ids[ns], off, buffers.back(), rng() % 8 == 0));
          std::copy(buffers.back().begin(), buffers.back().end(), model[ns].begin() + static_cast<long>(off));
        } else if (kind < 90) {
          buffers.emplace_back(len, 0xEE);
          reads.emplace_back(batch.size(), ns);
          batch.push_back(StoreRequest::read(ids[ns], off, buffers.back()));
        } else {
          batch.push_back(StoreRequest::trim(ids[ns], off, len));
          std::fill_n(model[ns].begin() + static_cast<long>(off), len, 0);
        }
      }
      ASSERT_OK(st->execute(batch));
      for (auto& r : batch) ASSERT_OK(r.result);
      // Each read saw its blocks as they were before the batch (no request in it touched them).
      for (const auto& [request, ns] : reads) {
        const StoreRequest& r = batch[request];
        ASSERT_TRUE(std::equal(r.out.begin(), r.out.end(), before[ns].begin() + static_cast<long>(r.offset)))
            << "read in round " << round;
      }
      // Every block any request touched, read back through a plain read.
      for (std::size_t ns = 0; ns < 3; ++ns) {
        std::vector<std::uint8_t> got(kSize);
        ASSERT_OK(st->read(ids[ns], 0, got));
        ASSERT_TRUE(got == model[ns]) << "namespace " << ns << " round " << round;
      }
    }
    EXPECT_GT(shuffler->max_held(), 8u) << "the batches never had much in flight";
    // A crash right after a flush: everything flushed is there.
    ASSERT_OK(st->flush());
    st.reset();
    st = test::open_store(*dev);
    for (std::size_t ns = 0; ns < 3; ++ns) {
      std::vector<std::uint8_t> got(kSize);
      ASSERT_OK(st->read(ids[ns], 0, got));
      EXPECT_TRUE(got == model[ns]) << "namespace " << ns << " after reopen";
    }
    ASSERT_OK(st->close());
    st.reset();
    auto report = fsck::check_volume(*dev, {false, true, nullptr});
    EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
  }
}

// Reads in a batch see what the blocks held before the batch (the writes in it are disjoint).
TEST(StoreBatch, ReadsAndWritesOfDifferentBlocksInOneBatch) {
  auto dev = test::formatted_memory_device();
  auto st = open_shuffled(*dev, 7);
  auto info = st->create_namespace("rw", 1 << 20);
  ASSERT_TRUE(info.ok());
  auto first = test::bytes_of(1, 64 << 10);
  ASSERT_OK(st->write(info->id, 0, first));
  auto second = test::bytes_of(2, 64 << 10);
  std::vector<std::uint8_t> got(64 << 10);
  std::vector<StoreRequest> batch = {StoreRequest::write(info->id, 64 << 10, second),
                                     StoreRequest::read(info->id, 0, got), StoreRequest::flush()};
  ASSERT_OK(st->execute(batch));
  for (auto& r : batch) ASSERT_OK(r.result);
  EXPECT_TRUE(got == first);
  ASSERT_OK(st->read(info->id, 64 << 10, got));
  EXPECT_TRUE(got == second);
}

// `meanwhile` runs once a batch's I/O is queued and before the store waits for it (the
// daemon receives then), and only when some is in flight.
TEST(StoreBatch, MeanwhileRunsWhileTheBatchIsInFlight) {
  auto dev = test::formatted_memory_device();
  ShufflingDevice* shuffling = nullptr;
  auto st = open_shuffled(*dev, 13, &shuffling);
  auto info = st->create_namespace("mw", 1 << 20);
  ASSERT_TRUE(info.ok());
  auto first = test::bytes_of(3, 64 << 10), second = test::bytes_of(4, 64 << 10);
  ASSERT_OK(st->write(info->id, 0, first));
  std::vector<std::uint8_t> got(64 << 10);
  std::vector<StoreRequest> batch = {StoreRequest::write(info->id, 64 << 10, second),
                                     StoreRequest::read(info->id, 0, got)};
  int calls = 0;
  std::uint32_t in_flight = 0;
  ASSERT_OK(st->execute(batch, [&] {
    ++calls;
    in_flight = shuffling->in_flight();
  }));
  EXPECT_EQ(calls, 1);
  EXPECT_GE(in_flight, 2u) << "meanwhile ran after the store waited for the batch";
  for (auto& r : batch) ASSERT_OK(r.result);
  EXPECT_TRUE(got == first);
  ASSERT_OK(st->read(info->id, 64 << 10, got));
  EXPECT_TRUE(got == second);
  // Nothing for the device (a trim, a read of unwritten blocks): nothing to overlap.
  std::vector<StoreRequest> quiet = {StoreRequest::trim(info->id, 0, 4096),
                                     StoreRequest::read(info->id, 512 << 10, got)};
  ASSERT_OK(st->execute(quiet, [&] { ++calls; }));
  EXPECT_EQ(calls, 1) << "meanwhile ran with nothing in flight";
}

// Overlapping writes in one batch: the last one in batch order is what the map keeps.
TEST(StoreBatch, OverlappingWritesInABatchAreMappedInBatchOrder) {
  auto dev = test::formatted_memory_device();
  auto st = open_shuffled(*dev, 11);
  auto info = st->create_namespace("ow", 1 << 20);
  ASSERT_TRUE(info.ok());
  std::vector<std::vector<std::uint8_t>> data;
  std::vector<StoreRequest> batch;
  for (int i = 0; i < 20; ++i) data.push_back(test::bytes_of(100 + i, 8192));
  for (int i = 0; i < 20; ++i) batch.push_back(StoreRequest::write(info->id, 4096, data[i]));
  ASSERT_OK(st->execute(batch));
  std::vector<std::uint8_t> got(8192);
  ASSERT_OK(st->read(info->id, 4096, got));
  EXPECT_TRUE(got == data.back());
  ASSERT_OK(st->close());
  st.reset();
  st = test::open_store(*dev);
  ASSERT_OK(st->read(info->id, 4096, got));
  EXPECT_TRUE(got == data.back());
}

// One bad request fails alone; a failed append fails its request, and the store goes on.
TEST(StoreBatch, ErrorsStayWithTheirRequest) {
  auto mem = test::formatted_memory_device();
  FaultyDevice faulty(std::make_unique<test::BorrowedDevice>(*mem));
  auto st = test::open_store(faulty);
  auto a = st->create_namespace("a", 1 << 20);
  auto b = st->create_namespace("b", 1 << 20);
  ASSERT_TRUE(a.ok() && b.ok());
  auto data = test::bytes_of(3, 8192);
  std::vector<std::uint8_t> odd(1000);
  std::vector<StoreRequest> batch = {StoreRequest::write(a->id, 0, data),
                                     StoreRequest::write(a->id, (1 << 20) - 4096, data),
                                     StoreRequest::write(b->id, 100, odd), StoreRequest::write(99, 0, data),
                                     StoreRequest::write(b->id, 8192, data, /*fua=*/true)};
  ASSERT_OK(st->execute(batch));
  EXPECT_OK(batch[0].result);
  EXPECT_EQ(batch[1].result.code(), Code::kOutOfRange) << batch[1].result.to_string();
  EXPECT_EQ(batch[2].result.code(), Code::kInvalidArgument) << batch[2].result.to_string();
  EXPECT_EQ(batch[3].result.code(), Code::kNotFound) << batch[3].result.to_string();
  EXPECT_OK(batch[4].result);
  // Appends to namespace a's zone fail: its write fails, b's (in its own zone) does not,
  // and a's later writes go to another zone.
  ASSERT_OK(st->write(a->id, 4096, data));
  std::uint32_t zone = UINT32_MAX;
  for (const auto& e : faulty.events())
    if (e.kind == FaultyDevice::Event::Kind::kAppend) zone = faulty.geometry().zone_of(e.lba);
  ASSERT_NE(zone, UINT32_MAX);
  faulty.fail_writes_to_zone(zone);
  std::vector<StoreRequest> failing = {StoreRequest::write(a->id, 0, data), StoreRequest::write(b->id, 0, data)};
  ASSERT_OK(st->execute(failing));
  EXPECT_EQ(failing[0].result.code(), Code::kIoError) << failing[0].result.to_string();
  EXPECT_OK(failing[1].result);
  faulty.clear_faults();
  ASSERT_OK(st->write(a->id, 0, data));
  std::vector<std::uint8_t> got(8192);
  ASSERT_OK(st->read(a->id, 0, got));
  EXPECT_TRUE(got == data);
  ASSERT_OK(st->close());
  st.reset();
  auto report = fsck::check_volume(*mem, {false, true, nullptr});
  EXPECT_EQ(report.exit_code(), 0) << fsck::to_text(report, true);
}

// idle_work commits what clients have not flushed yet and checkpoints by time.
TEST(StoreBatch, IdleWorkCommitsAndCheckpoints) {
  auto dev = test::formatted_memory_device();
  StoreOptions o;
  o.checkpoint_interval_seconds = 0;
  auto st = test::open_store(*dev, o);
  auto info = st->create_namespace("idle", 1 << 20);
  ASSERT_TRUE(info.ok());
  auto data = test::bytes_of(5, 4096);
  ASSERT_OK(st->write(info->id, 0, data));
  const auto before = st->stats();
  auto wait = st->idle_work();
  ASSERT_TRUE(wait.ok()) << wait.status().to_string();
  const auto after = st->stats();
  EXPECT_GT(after.flushes, before.flushes);
  EXPECT_GT(after.checkpoints, before.checkpoints);
  st.reset();  // a crash: the idle commit made the write durable
  st = test::open_store(*dev);
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(info->id, 0, got));
  EXPECT_TRUE(got == data);
}

// Opening after a long journal replay writes no checkpoint (that would cost as much as every
// map); the first idle moment takes it, so the next open replays nothing.
TEST(StoreBatch, ALongReplayIsCheckpointedWhenIdleNotAtOpen) {
  auto dev = test::formatted_memory_device();
  StoreOptions o;
  o.checkpoint_after_journal_blocks = 64;  // a replay of 16 blocks or more is long
  o.checkpoint_interval_seconds = 3600;    // so only the long replay makes idle_work checkpoint
  auto st = test::open_store(*dev, o);
  auto info = st->create_namespace("replay", 1 << 20);
  ASSERT_TRUE(info.ok());
  for (int i = 0; i < 40; ++i) {
    ASSERT_OK(st->write(info->id, static_cast<std::uint64_t>(i % 256) * 4096,
                        test::bytes_of(static_cast<std::uint8_t>(i), 4096)));
    ASSERT_OK(st->flush());  // a journal block each
  }
  st.reset();  // crash
  st = test::open_store(*dev, o);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->stats().checkpoints, 0u);
  EXPECT_EQ(st->stats().metadata_bytes_written, 0u);  // opening wrote nothing
  ASSERT_TRUE(st->idle_work().ok());
  EXPECT_EQ(st->stats().checkpoints, 1u);
  ASSERT_TRUE(st->idle_work().ok());
  EXPECT_EQ(st->stats().checkpoints, 1u);  // once
  std::vector<std::uint8_t> got(4096);
  ASSERT_OK(st->read(info->id, 39 * 4096, got));
  EXPECT_EQ(got, test::bytes_of(39, 4096));
}

// A client that never flushes still has its writes committed now and then: the records that
// wait for a commit are bounded (512 KiB of journal, or a quarter of a journal zone), and so
// is the memory they hold.
TEST(StoreBatch, ManyWritesWithoutAFlushAreCommittedAnyway) {
  auto dev = test::formatted_memory_device(200);
  auto st = test::open_store(*dev);
  auto info = st->create_namespace("nonstop", 80 << 20);
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  const std::uint64_t flushes = st->stats().flushes;
  constexpr std::uint64_t kWrites = 20000;
  for (std::uint64_t i = 0; i < kWrites; ++i) ASSERT_OK(st->write(info->id, i * 4096, test::bytes_of(i, 4096)));
  EXPECT_GT(st->stats().flushes, flushes) << "20000 writes and nothing committed";
  st.reset();  // a crash: what the store committed on its own is there
  st = test::open_store(*dev);
  std::vector<std::uint8_t> got(4096);
  for (std::uint64_t i = 0; i < 2048; ++i) {
    ASSERT_OK(st->read(info->id, i * 4096, got));
    ASSERT_EQ(got, test::bytes_of(i, 4096)) << "block " << i;
  }
}

}  // namespace
}  // namespace nyads
