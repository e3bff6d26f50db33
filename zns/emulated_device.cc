// The emulated backend. Every request runs through ZoneRules (the ZNS state machine), then
// touches the bytes: a sparse file or memory.
//
// Queue depth (file): a request's zone rules run at submit, in order, as a drive's controller
// would. A read's bytes then move through io_uring, so many reads are in flight at once (a
// read of cached pages completes inside the submission; one that misses waits on the disk,
// not on us). A small write's bytes are copied into the page cache at once, by a pwrite in
// the submitting thread; a large one's, when its submitter goes on with other work (the
// daemon receives the next requests: IoRequest::caller_goes_on), by the writing thread
// (FileWriter), which runs the write's prepare step (the store's checksums) first. Not through the
// ring: it would hand a buffered write to a kernel worker, and a submitter with nothing else
// to do sleeps while the worker copies (1 MiB NBD writes, QD8: 1.96-2.23 GB/s that way,
// 2.40-2.72 inline, measured together). Flushes and zone actions first wait for the reads
// and writes in flight; a read, for the writes queued into its zone.
//
// Durability (file): the zone table on disk is the "durable view": write pointers and zone
// states as of the last completed flush, plus finishes, which are persistent at completion.
// A reset, like a write, is made durable by the next flush: persisting one at once would be
// a flush of the file (every dirty page of it) per reset. Two table slots alternate with a
// generation number, so a torn table write leaves the other slot valid.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>

#include <liburing.h>
#include <xxhash.h>

#include "nyads/aligned_buffer.h"
#include "nyads/emulated_device.h"
#include "nyads/units.h"
#include "zns/emulated_format.h"
#include "zns/file_writer.h"
#include "zns/io_uring_setup.h"
#include "zns/zone_rules.h"

namespace nyads {

namespace {

namespace ef = emulated_format;

Status full_pwrite(int fd, const void* buf, std::size_t n, std::uint64_t off, const std::string& what) {
  const auto* p = static_cast<const std::uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
  return Status::Ok();
}

Status full_pread(int fd, void* buf, std::size_t n, std::uint64_t off, const std::string& what) {
  auto* p = static_cast<std::uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    if (r == 0) {  // past the end of a sparse file that someone truncated: zeros
      std::memset(p, 0, n);
      return Status::Ok();
    }
    p += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
  return Status::Ok();
}

// A device file's bytes, the disk space it holds now, and what its filesystem has free: what
// a reservation needs (mkfs) and what a sparse file still lacks (nyadsd's warning).
struct FileSpaceUse {
  bool regular = false;  // a regular file (not an emulated layout on a block device)
  std::uint64_t size = 0;
  std::uint64_t allocated = 0;
  std::uint64_t free = 0;
};
Result<FileSpaceUse> file_space_use(int fd, const std::string& path) {
  struct stat st;
  struct statvfs fs;
  if (::fstat(fd, &st) != 0 || ::fstatvfs(fd, &fs) != 0) return ErrnoStatus(errno, path + ": stat");
  return FileSpaceUse{S_ISREG(st.st_mode), static_cast<std::uint64_t>(st.st_size),
                      static_cast<std::uint64_t>(st.st_blocks) * 512,
                      static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize};
}

class Emulated final : public EmulatedDevice {
 public:
  // File-backed.
  Emulated(std::string path, int fd, const ef::Layout& layout, bool read_only)
      : name_(std::move(path)),
        fd_(fd),
        layout_(layout),
        g_(layout.config.geometry()),
        rules_(g_),
        read_only_(read_only),
        writes_in_zone_(g_.zone_count),
        unflushed_in_zone_(g_.zone_count) {
    if (read_only_) return;
    // Now rather than at the first write, so that the device's threads and descriptors are
    // all there once it is open. Without it, every write is copied by the submitter.
    auto w = std::make_unique<FileWriter>(fd_, name_ + ": write");
    writer_unusable_ = w->start();
    if (writer_unusable_.ok()) writer_ = std::move(w);
  }
  // Memory-backed.
  explicit Emulated(const EmulatedConfig& config)
      : name_("memory"),
        layout_(ef::layout_for(config)),
        g_(config.geometry()),
        rules_(g_),
        memory_(config.zone_count) {}

  ~Emulated() override {
    while (!writes_.empty()) collect_writes(true);  // their bytes are the caller's
    writer_.reset();
    if (ring_) {
      // Writeback kicks too: one still running would hold the file (and its lock) past us.
      while (!pending_.empty() || kicks_in_flight_ > 0) collect(true);
      io_uring_queue_exit(&*ring_);
    }
    // The newest table names blocks that its sync made durable: say so, so that damage to
    // them later is not taken for a write the power lost (opening would undo their zone
    // without a word). Best effort: without it the next open checks them.
    if (table_names_unsynced_ && sync_failure_.ok()) (void)write_table();
    if (fd_ >= 0) ::close(fd_);
  }

  Status init_table(const ef::ZoneTable& table) {
    rules_.load(table.zones);
    durable_ = rules_.zones();
    generation_ = table.generation;
    return Status::Ok();
  }

  // Opened with one zone-table slot damaged: said by warnings() from then on.
  void note_damaged_table_slot(std::string what) { damaged_table_slot_ = std::move(what); }

  // Opening a version 2 file: the blocks the newest table says its sync covered must hold the
  // bytes that were written. A zone whose blocks do not (the power failed before they reached
  // the disk, or a later write into the zone after a reset no flush followed overwrote them)
  // goes back to where they began; the others keep their write pointers. Those blocks were
  // written after the last completed sync, so a completed flush is undone only where a write
  // after it (into a zone reset since, with no flush after the reset) overwrote them: data
  // the reset had already let go.
  Status check_unsynced(ef::ZoneTable& table) {
    if (!table.names_unsynced()) return init_table(table);
    // The check must read the disk, not the page cache: after a crash of this process (not of
    // the machine) the pages may still be dirty, or clean after a failed writeback without
    // having reached the disk. Sync them first (a writable open; a failure fails the open),
    // then drop them, so the reads below come from the disk.
    if (!read_only_) NYADS_RETURN_IF_ERROR(sync_file("syncing before checking the last flush's blocks"));
    AlignedBuffer buf(std::size_t{1} << 20);
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
    if (!state) return IoError(name_ + ": no memory to check the zone table");
    for (std::uint32_t z = 0; z < table.unsynced.size(); ++z) {
      ZoneInfo& info = table.zones[z];
      const ef::UnsyncedBlocks& un = table.unsynced[z];
      std::uint64_t at = byte_offset(info.start + un.from);
      std::uint64_t left = (info.write_pointer - info.start - un.from) * g_.block_size;
      if (left == 0) continue;
      (void)::posix_fadvise(fd_, static_cast<off_t>(at), static_cast<off_t>(left), POSIX_FADV_DONTNEED);
      XXH3_64bits_reset(state.get());
      while (left > 0) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
        NYADS_RETURN_IF_ERROR(
            full_pread(fd_, buf.data(), n, at,
                       name_ + ": checking the blocks of zone " + std::to_string(z) + " the last flush wrote"));
        XXH3_64bits_update(state.get(), buf.data(), n);
        at += n;
        left -= n;
      }
      if (XXH3_64bits_digest(state.get()) == un.hash) continue;
      info.write_pointer = info.start + un.from;
      info.state = un.from == 0 ? ZoneState::kEmpty : ZoneState::kClosed;
    }
    table.unsynced.clear();
    NYADS_RETURN_IF_ERROR(init_table(table));
    // Written down at once (a writable open): an undone zone's next writes must not make a
    // later open take them for the lost blocks, and blocks that did land must not be taken
    // for lost ones if they are damaged later.
    return write_table();
  }

  // Writes durable_ into the next table slot and syncs.
  Status write_table() { return write_table_and_sync(durable_, {}, "syncing the zone table"); }

  // Writes `zones` into the next table slot, with (version 2) the blocks the same sync covers
  // that opening must check, then syncs.
  Status write_table_and_sync(const std::vector<ZoneInfo>& zones, std::vector<ef::UnsyncedBlocks> unsynced,
                              const char* what) {
    if (fd_ < 0 || read_only_) return Status::Ok();
    // After a failed sync no table is written: it could name blocks the disk lacks.
    NYADS_RETURN_IF_ERROR(sync_failure_);
    ef::ZoneTable t{generation_ + 1, zones, std::move(unsynced)};
    AlignedBuffer slot(layout_.table_slot_bytes);
    ef::encode_zone_table(t, layout_.version, slot.span());
    const std::uint64_t off = layout_.table_offset + (t.generation % 2) * layout_.table_slot_bytes;
    NYADS_RETURN_IF_ERROR(full_pwrite(fd_, slot.data(), slot.size(), off, name_ + ": writing the zone table"));
    NYADS_RETURN_IF_ERROR(sync_file(what));
    generation_ = t.generation;
    table_names_unsynced_ = t.names_unsynced();
    return Status::Ok();
  }

  const Geometry& geometry() const override { return g_; }
  std::string backend() const override { return "emulated"; }
  std::vector<std::string> warnings() const override {
    std::vector<std::string> out;
    if (!damaged_table_slot_.empty()) out.push_back(damaged_table_slot_);
    if (!ring_unusable_.ok())
      out.push_back(name_ + ": reads run one at a time, without io_uring (" + ring_unusable_.message() + ")");
    if (!writer_unusable_.ok())
      out.push_back(name_ + ": writes are copied by the serving thread (" + writer_unusable_.message() + ")");
    // A sparse file (mkfs.nyads --sparse, nyads-zonectl create) its filesystem cannot fill:
    // writes fail, and a store over it stops, once that fills.
    if (fd_ >= 0 && !read_only_) {
      auto use = file_space_use(fd_, name_);
      if (use.ok() && use->regular && use->allocated < use->size && use->size - use->allocated > use->free)
        out.push_back(name_ + " is a sparse file: " + format_size(use->size - use->allocated) + " of its " +
                      format_size(use->size) + " are not allocated, and its filesystem has " + format_size(use->free) +
                      " free; writes will fail once that fills (fallocate -l " + std::to_string(use->size) + " " +
                      name_ + " reserves the rest, keeping the data)");
    }
    return out;
  }
  const std::string& name() const override { return name_; }

  Result<std::vector<ZoneInfo>> report_zones(std::uint32_t first, std::uint32_t count) override {
    if (first >= g_.zone_count)
      return OutOfRange("zone " + std::to_string(first) + " beyond the device's " + std::to_string(g_.zone_count) +
                        " zones");
    const std::uint32_t end = first + std::min(count, g_.zone_count - first);
    return std::vector<ZoneInfo>(rules_.zones().begin() + first, rules_.zones().begin() + end);
  }

  Status manage_zone(ZoneAction action, std::uint32_t zone) override {
    if (read_only_) return read_only_error();
    settle();
    if (action == ZoneAction::kFinish) NYADS_RETURN_IF_ERROR(flush_data());
    NYADS_RETURN_IF_ERROR(rules_.apply(action, zone));
    return after_action(action, zone);
  }

  Status manage_all_zones(ZoneAction action) override {
    if (read_only_) return read_only_error();
    settle();
    if (action == ZoneAction::kFinish) NYADS_RETURN_IF_ERROR(flush_data());
    std::vector<ZoneInfo> before = rules_.zones();
    NYADS_RETURN_IF_ERROR(rules_.apply_all(action));
    if (action != ZoneAction::kReset && action != ZoneAction::kFinish) return Status::Ok();
    if (action == ZoneAction::kReset) {  // durable at the next flush
      for (std::uint32_t z = 0; z < g_.zone_count; ++z)
        if (before[z] != rules_.zone(z)) forget_bytes(z);
      return Status::Ok();
    }
    for (std::uint32_t z = 0; z < g_.zone_count; ++z)
      if (before[z] != rules_.zone(z)) durable_[z] = rules_.zone(z);
    return write_table();
  }

  EarlyWriteback early_writeback() const override { return early_writeback_; }

  Status set_zone_condition(std::uint32_t zone, ZoneState state) override {
    settle();
    NYADS_RETURN_IF_ERROR(flush_data());  // the table it writes must name only synced blocks
    NYADS_RETURN_IF_ERROR(rules_.set_condition(zone, state));
    unsynced_.erase(zone);
    durable_[zone] = rules_.zone(zone);
    return write_table();
  }

  Status submit(const IoRequest& r) override {
    if (in_flight() >= queue_depth()) return Status(Code::kBusy, "queue full: reap completions first");
    IoCompletion c{r.tag, Status::Ok(), 0};
    if (fd_ >= 0 && (r.op == IoOp::kRead || r.op == IoOp::kWrite || r.op == IoOp::kAppend) && r.buffer != nullptr) {
      c.status = queue_file_io(r, &c.lba);
      if (c.status.ok()) return Status::Ok();  // completes through the ring
    } else {
      if (r.op == IoOp::kFlush) settle();  // a flush covers the writes completed before it
      c.status = execute(r, &c.lba);
    }
    done_.push_back(std::move(c));
    return Status::Ok();
  }

  std::size_t reap(std::span<IoCompletion> out, std::size_t min_count) override {
    std::size_t n = 0;
    for (;;) {
      while (n < out.size() && !done_.empty()) {
        out[n++] = std::move(done_.front());
        done_.pop_front();
      }
      if (n >= out.size() || n >= min_count || (pending_.empty() && writes_.empty())) return n;
      if (!writes_.empty() && collect_writes(/*wait=*/pending_.empty()) > 0) continue;
      if (!pending_.empty()) collect(/*wait=*/true);
    }
  }
  std::uint32_t in_flight() const override {
    return static_cast<std::uint32_t>(done_.size() + pending_.size() + writes_.size());
  }
  bool writing() const override { return !writes_.empty() && !writer_->all_written(); }
  int writes_done_fd() const override { return writer_ ? writer_->event_fd() : -1; }
  // Every write path runs it: on the writing thread for a write handed to it, else at submit.
  bool runs_prepare() const override { return true; }
  std::uint32_t queue_depth() const override { return kQueueDepth; }
  // Buffered file I/O and memory copies take any address.
  std::size_t buffer_alignment() const override { return 1; }

 private:
  static constexpr std::uint32_t kQueueDepth = 256;

  // One read of file bytes in flight on the ring.
  struct FileRead {
    IoCompletion completion;
    std::uint8_t* buffer = nullptr;
    std::size_t bytes = 0;
    std::uint64_t offset = 0;
  };

  // Checks the zone rules now, then moves a write's bytes at once, or queues a read's on the
  // ring (completing it at once when there are no bytes to read). An error is the request's
  // outcome.
  Status queue_file_io(const IoRequest& r, std::uint64_t* where) {
    FileRead io;
    io.completion.tag = r.tag;
    io.buffer = static_cast<std::uint8_t*>(r.buffer);
    const std::size_t bs = g_.block_size;
    if (r.op == IoOp::kRead) {
      NYADS_RETURN_IF_ERROR(rules_.check_read(r.lba, r.blocks));
      // Blocks still with the writing thread are not in the file yet.
      for (const std::uint32_t z : {g_.zone_of(r.lba), g_.zone_of(r.lba + r.blocks - 1)})
        while (writes_in_zone_[z] > 0) collect_writes(/*wait=*/true);
      const std::uint64_t valid = written_blocks(r.lba, r.blocks);
      std::memset(io.buffer + valid * bs, 0, (r.blocks - valid) * bs);
      if (valid == 0) {  // nothing to read: complete at once
        done_.push_back(std::move(io.completion));
        return Status::Ok();
      }
      io.bytes = valid * bs;
      io.offset = byte_offset(r.lba);
    } else {
      if (read_only_) return read_only_error();
      NYADS_RETURN_IF_ERROR(rules_.write(r.op, r.lba, r.blocks, where));
      io.completion.lba = *where;
      const std::size_t bytes = r.blocks * bs;
      const std::uint32_t zone = g_.zone_of(*where);
      const bool hand_over = (r.caller_goes_on && bytes >= writer_bytes()) || !writes_.empty();
      write_file(std::move(io.completion), io.buffer, bytes, zone, r.prepare, hand_over);
      // Start the kernel's writeback every kKickBytes written (unless writes die in the page
      // cache: writes_die_in_cache), so that the disk works while the data arrives and the
      // next flush (fdatasync) finds only the last few MiB dirty, not what the kernel's
      // thresholds allow (gigabytes). See doc/design.md, "Queue depth on a file". Best
      // effort: the write has completed whatever becomes of it.
      unkicked_bytes_ += bytes;
      unflushed_bytes_ += bytes;
      unflushed_in_zone_[zone] += bytes;
      recent_written_bytes_ += bytes;
      if (unkicked_bytes_ >= kKickBytes) {
        unkicked_bytes_ = 0;
        if (writes_die_in_cache()) {
          ++early_writeback_.skipped;
        } else {
          ++early_writeback_.started;
          start_writeback();
        }
        if (recent_written_bytes_ >= kRecentBytes) {  // a window that slides: older writes count half
          recent_written_bytes_ /= 2;
          recent_died_bytes_ /= 2;
        }
      }
      return Status::Ok();
    }
    if (!ensure_ring().ok()) {
      // No io_uring here (Docker's default seccomp profile forbids it; so can a sysctl), or
      // the ring failed: the read runs now instead.
      io.completion.status = full_pread(fd_, io.buffer, io.bytes, io.offset, name_ + ": read");
      done_.push_back(std::move(io.completion));
      return Status::Ok();
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&*ring_);
    if (sqe == nullptr) {  // the ring's submission queue is full: send it on, then retry
      io_uring_submit(&*ring_);
      sqe = io_uring_get_sqe(&*ring_);
      if (sqe == nullptr)
        return IoError(name_ + ": read: the ring's submission queue is full (io_uring_submit failed)");
    }
    const std::uint64_t id = next_id_++;
    io_uring_prep_read(sqe, fd_, io.buffer, static_cast<unsigned>(io.bytes), io.offset);
    io_uring_sqe_set_data(sqe, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)));
    pending_.emplace(id, std::move(io));
    return Status::Ok();
  }

  // fdatasync on another thread: the file's dirty pages go to the disk (and the filesystem's
  // journal commits) while the daemon goes on serving; the commit's own fdatasync after it
  // then writes only what came meanwhile. A failure is kept for the next flush to report: the
  // kernel reports a failed writeback to one fdatasync only, and that one is the job's.
  std::function<void()> writeback_job(std::uint64_t min_bytes) override {
    if (fd_ < 0 || read_only_ || unflushed_bytes_ < min_bytes) return {};
    // On a file opened again for the job: the kernel reports a writeback error once per open
    // file, so the job's fdatasync and the flush's each see it, whichever runs first.
    return [path = "/proc/self/fd/" + std::to_string(fd_), fd = fd_, failed = job_errno_] {
      const int own = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (::fdatasync(own >= 0 ? own : fd) != 0) failed->store(errno);
      if (own >= 0) ::close(own);
    };
  }

  // Starts writeback of the whole file on a worker of the ring (sync_file_range blocks until
  // the pages are under I/O): nothing waits for it but closing the device. Best effort: with
  // no ring or no room in it, this kick is skipped and the next one (or the kernel) does it.
  void start_writeback() {
    if (!ensure_ring().ok()) return;
    collect(/*wait=*/false);  // earlier kicks that finished
    // Writes outrunning the disk: a kick still queued, or one still walking the file, starts
    // this data's writeback too.
    if (kicks_in_flight_ >= kMaxKicksInFlight) return;
    io_uring_sqe* k = io_uring_get_sqe(&*ring_);
    if (k == nullptr) {
      io_uring_submit(&*ring_);
      k = io_uring_get_sqe(&*ring_);
    }
    if (k == nullptr) return;
    io_uring_prep_sync_file_range(k, fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
    io_uring_sqe_set_data(k, reinterpret_cast<void*>(static_cast<std::uintptr_t>(kKickId)));
    ++kicks_in_flight_;
    io_uring_submit(&*ring_);  // a failure leaves it queued: collect() sends it on
  }

  // The ring, created at the first use and tried with a read, so that a ring whose
  // submissions fail (a seccomp profile that allows io_uring_setup but not io_uring_enter)
  // is found before any request depends on it. Without a working ring the file's reads run
  // at submit (queue_file_io); that is not tried again.
  Status ensure_ring() {
    if (!ring_unusable_.ok()) return ring_unusable_;
    if (ring_) return Status::Ok();
    ring_.emplace();
    if (int e = io_uring_queue_init(kQueueDepth, &*ring_, 0); e < 0) {
      ring_.reset();
      ring_unusable_ = io_uring_setup_error(-e, name_);
      return ring_unusable_;
    }
    // A read of the header, as the device's reads are (a kernel or sandbox may set up rings
    // that do less than that).
    std::array<std::uint8_t, ef::kHeaderBytes> header;
    io_uring_sqe* probe = io_uring_get_sqe(&*ring_);
    io_uring_prep_read(probe, fd_, header.data(), static_cast<unsigned>(header.size()), 0);
    io_uring_sqe_set_data(probe, reinterpret_cast<void*>(static_cast<std::uintptr_t>(kProbeId)));
    int e = submit_and_wait_one();
    io_uring_cqe* cqe = nullptr;
    if (e >= 0) {
      do e = io_uring_wait_cqe(&*ring_, &cqe);
      while (e == -EINTR);
    }
    if (e >= 0) {
      const int res = cqe->res;
      io_uring_cqe_seen(&*ring_, cqe);
      if (res == static_cast<int>(header.size())) return Status::Ok();
      e = res < 0 ? res : -EIO;
    }
    io_uring_queue_exit(&*ring_);
    ring_.reset();
    ring_unusable_ = ErrnoStatus(-e, name_ + ": a read through io_uring failed");
    return ring_unusable_;
  }

  // Sends what is queued on the ring and waits for one completion; a signal does not end it.
  int submit_and_wait_one() {
    int e;
    do e = io_uring_submit_and_wait(&*ring_, 1);
    while (e == -EINTR);
    return e;
  }

  // Moves finished ring I/O to done_; with wait, waits for at least one.
  void collect(bool wait) {
    if (!ring_ || (pending_.empty() && kicks_in_flight_ == 0)) return;
    // Whatever is queued and not yet with the kernel (a batch's reads; a submission that
    // failed) goes now, with the wait when there is one.
    io_uring_cqe* cqe = nullptr;
    if (wait) {
      const int e = submit_and_wait_one();
      // The ring worked at its creation (ensure_ring), so requests may be with the kernel:
      // their buffers are not ours to give back until they complete. A failure to wait is
      // retried by the caller, after a pause rather than at once (no spinning on a ring that
      // keeps failing: EAGAIN, EBUSY, or worse).
      if (e < 0 && io_uring_cq_ready(&*ring_) == 0) ::usleep(1000);
    } else if (io_uring_sq_ready(&*ring_) > 0) {
      io_uring_submit(&*ring_);
    }
    while (io_uring_peek_cqe(&*ring_, &cqe) == 0) {
      const std::uint64_t id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(io_uring_cqe_get_data(cqe)));
      const int res = cqe->res;
      io_uring_cqe_seen(&*ring_, cqe);
      if (id == kKickId) {
        --kicks_in_flight_;
        continue;
      }
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      FileRead& io = it->second;
      Status st;
      if (res < 0) {
        st = ErrnoStatus(-res, name_ + ": read");
      } else if (static_cast<std::size_t>(res) < io.bytes) {  // short: finish it here
        const std::size_t k = static_cast<std::size_t>(res);
        st = full_pread(fd_, io.buffer + k, io.bytes - k, io.offset + k, name_ + ": read");
      }
      io.completion.status = std::move(st);
      done_.push_back(std::move(io.completion));
      pending_.erase(it);
    }
  }

  // Waits for everything in flight on the ring and the writing thread (their completions wait
  // in done_).
  void settle() {
    while (!pending_.empty()) collect(true);
    while (!writes_.empty()) collect_writes(true);
  }

  // Hands a write to the writing thread (if asked, and there is one), or writes it now: into
  // the page cache (see the top of this file); either way the completion waits in done_.
  void write_file(IoCompletion completion, const std::uint8_t* bytes, std::size_t length, std::uint32_t zone,
                  const std::function<void()>& prepare, bool hand_over) {
    if (!hand_over || !writer_) {
      if (prepare) prepare();
      completion.status = full_pwrite(fd_, bytes, length, byte_offset(completion.lba), name_ + ": write");
      note_unsynced(completion.lba, bytes, length, completion.status.ok());
      done_.push_back(std::move(completion));
      return;
    }
    writer_->queue({bytes, length, byte_offset(completion.lba), prepare});
    writes_.push_back({std::move(completion), bytes, length, zone});
    ++writes_in_zone_[zone];
  }

  // Moves the writing thread's completed writes to done_, in the order they were queued (the
  // thread writes in that order); with wait, waits for at least one. Returns how many.
  std::size_t collect_writes(bool wait) {
    std::deque<Status> outcomes;
    writer_->take(outcomes, wait);
    for (Status& st : outcomes) {
      InFlightWrite& w = writes_.front();
      note_unsynced(w.completion.lba, w.bytes, w.length, st.ok());
      w.completion.status = std::move(st);
      --writes_in_zone_[w.zone];
      done_.push_back(std::move(w.completion));
      writes_.pop_front();
    }
    return outcomes.size();
  }

  Status read_only_error() const { return InvalidArgument(name_ + " is opened read-only"); }

  Status execute(const IoRequest& r, std::uint64_t* where) {
    if (r.op != IoOp::kFlush && r.buffer == nullptr) return InvalidArgument("request without a buffer");
    switch (r.op) {
      case IoOp::kRead:
        NYADS_RETURN_IF_ERROR(rules_.check_read(r.lba, r.blocks));
        return read_blocks(r.lba, r.blocks, static_cast<std::uint8_t*>(r.buffer));
      case IoOp::kWrite:
      case IoOp::kAppend:
        if (read_only_) return read_only_error();
        NYADS_RETURN_IF_ERROR(rules_.write(r.op, r.lba, r.blocks, where));
        if (r.prepare) r.prepare();
        return write_blocks(*where, r.blocks, static_cast<const std::uint8_t*>(r.buffer));
      case IoOp::kFlush: return flush_data();
    }
    return InvalidArgument("unknown I/O operation");
  }

  // Of `blocks` from lba, how many lie below the zone's write pointer. Blocks at or past it
  // read as zeros, whatever the bytes underneath hold.
  std::uint64_t written_blocks(std::uint64_t lba, std::uint32_t blocks) const {
    const ZoneInfo& z = rules_.zone(g_.zone_of(lba));
    return lba >= z.write_pointer ? 0 : std::min<std::uint64_t>(blocks, z.write_pointer - lba);
  }

  Status read_blocks(std::uint64_t lba, std::uint32_t blocks, std::uint8_t* out) {
    const ZoneInfo& z = rules_.zone(g_.zone_of(lba));
    const std::uint64_t valid = written_blocks(lba, blocks);
    const std::size_t bs = g_.block_size;
    if (valid > 0) {
      if (fd_ >= 0) {
        NYADS_RETURN_IF_ERROR(full_pread(fd_, out, valid * bs, byte_offset(lba), name_ + ": read"));
      } else {
        const auto& zone_bytes = memory_[g_.zone_of(lba)];
        const std::size_t off = (lba - z.start) * bs;
        std::memcpy(out, zone_bytes.data() + off, valid * bs);
      }
    }
    std::memset(out + valid * bs, 0, (blocks - valid) * bs);
    return Status::Ok();
  }

  Status write_blocks(std::uint64_t lba, std::uint32_t blocks, const std::uint8_t* in) {
    const std::size_t bs = g_.block_size;
    if (fd_ >= 0) return full_pwrite(fd_, in, blocks * bs, byte_offset(lba), name_ + ": write");
    auto& zone_bytes = memory_[g_.zone_of(lba)];
    if (zone_bytes.empty()) zone_bytes.resize(g_.zone_capacity * bs);
    std::memcpy(zone_bytes.data() + (lba - g_.zone_start(g_.zone_of(lba))) * bs, in, blocks * bs);
    return Status::Ok();
  }

  // A flush of a version 2 file that wrote little since the last sync is one sync: the table,
  // naming those blocks and their hash, goes to the file with them, and opening checks them
  // (format.md §1.3). Otherwise (more written, a failed write, a version 1 file) the data is
  // synced first and the table after it: two syncs.
  Status flush_data() {
    if (fd_ < 0 || read_only_) return Status::Ok();
    std::vector<ZoneInfo> zones = rules_.zones();
    if (layout_.version >= 2 && unsynced_checkable_ && durable_ != zones && unsynced_matches(zones)) {
      std::vector<ef::UnsyncedBlocks> unsynced(g_.zone_count);
      for (std::uint32_t z = 0; z < g_.zone_count; ++z) unsynced[z].from = zones[z].write_pointer - zones[z].start;
      for (const auto& [z, u] : unsynced_) unsynced[z] = {u.from, XXH3_64bits_digest(u.hash.get())};
      NYADS_RETURN_IF_ERROR(write_table_and_sync(zones, std::move(unsynced), "flush"));
    } else {
      NYADS_RETURN_IF_ERROR(sync_file("flush"));
      if (durable_ != zones) NYADS_RETURN_IF_ERROR(write_table_and_sync(zones, {}, "syncing the zone table"));
    }
    durable_ = std::move(zones);
    unflushed_bytes_ = 0;
    std::fill(unflushed_in_zone_.begin(), unflushed_in_zone_.end(), 0);
    unsynced_.clear();
    unsynced_bytes_ = 0;
    unsynced_checkable_ = true;
    return Status::Ok();
  }

  // Whether every zone's tracked blocks end at its write pointer (they do: every move of a
  // write pointer either goes through note_unsynced or drops the zone's entry; checked, as a
  // table naming blocks past a write pointer would be refused at open).
  bool unsynced_matches(const std::vector<ZoneInfo>& zones) const {
    for (const auto& [z, u] : unsynced_)
      if (!u.hash || u.from + u.blocks != zones[z].write_pointer - zones[z].start) return false;
    return true;
  }

  // Keeps the hash of the blocks each zone took since the last sync, for a flush to name
  // (version 2), while they stay small: past kCheckedFlushBytes, or after a write whose bytes
  // are unknown (it failed), the next flush syncs the data before the table instead.
  void note_unsynced(std::uint64_t lba, const std::uint8_t* bytes, std::size_t n, bool written) {
    if (layout_.version < 2 || !unsynced_checkable_) return;
    const std::uint32_t zone = g_.zone_of(lba);
    const std::uint64_t offset = lba - g_.zone_start(zone);
    auto [it, fresh] = unsynced_.try_emplace(zone);
    UnsyncedZone& u = it->second;
    if (fresh) {
      u.from = offset;
      u.hash.reset(XXH3_createState());
      if (u.hash) XXH3_64bits_reset(u.hash.get());
    }
    unsynced_bytes_ += n;
    // (Writes to a zone land at its write pointer, so they follow each other; checked anyway.)
    if (!written || !u.hash || unsynced_bytes_ > kCheckedFlushBytes || offset != u.from + u.blocks) {
      unsynced_checkable_ = false;
      unsynced_.clear();
      return;
    }
    XXH3_64bits_update(u.hash.get(), bytes, n);
    u.blocks += n / g_.block_size;
  }

  // fdatasync, and whether every writeback of the file since it was opened succeeded. Once one
  // failed, every later sync fails: the kernel reports a failed writeback once and marks the
  // pages clean, so a sync that succeeds after it would promise data that may be gone (the
  // store retries a failed flush, which is right for a device that keeps its writes).
  Status sync_file(const char* what) {
    if (sync_failure_.ok()) {
      int e = ::fdatasync(fd_) != 0 ? errno : 0;
      if (const int job = job_errno_->exchange(0); e == 0) e = job;
      if (e != 0)
        sync_failure_ =
            ErrnoStatus(e, name_ + ": " + what +
                               ": writing the file back failed; data written since the last good flush may be lost, "
                               "and every later flush fails until the device is opened again");
    }
    return sync_failure_;
  }

  // A reset is durable at the next flush, as writes are; a finish at once.
  Status after_action(ZoneAction action, std::uint32_t zone) {
    if (action == ZoneAction::kReset) forget_bytes(zone);
    if (action != ZoneAction::kFinish) return Status::Ok();
    durable_[zone] = rules_.zone(zone);
    return write_table();
  }

  // A reset zone's old bytes are dead. In memory they are freed. In a file they stay until
  // overwritten (reads past the write pointer return zeros whatever the file holds): punching
  // them out cost ~22 ms a 64 MiB zone on ext4 here, on the I/O path, and a reset not yet
  // flushed must leave them in place (a crash brings the zone back as it was). Blocks written
  // into it since the last sync are no longer the next flush's to name.
  void forget_bytes(std::uint32_t zone) {
    if (fd_ < 0) std::vector<std::uint8_t>().swap(memory_[zone]);
    unsynced_.erase(zone);
    if (fd_ >= 0) {
      // At most what the window holds: one large zone (a real drive's are 1-2 GiB) written
      // before the window last halved would otherwise outweigh it for long.
      recent_died_bytes_ = std::min(recent_died_bytes_ + unflushed_in_zone_[zone], recent_written_bytes_);
      unflushed_in_zone_[zone] = 0;
    }
  }

  std::uint64_t byte_offset(std::uint64_t lba) const { return layout_.data_offset + lba * g_.block_size; }

  std::string name_;
  int fd_ = -1;
  ef::Layout layout_;
  // Said when it was opened with one zone-table slot damaged (empty: both were sound).
  std::string damaged_table_slot_;
  Geometry g_;
  ZoneRules rules_;
  std::vector<ZoneInfo> durable_;
  std::uint64_t generation_ = 0;
  bool read_only_ = false;
  std::vector<std::vector<std::uint8_t>> memory_;
  std::deque<IoCompletion> done_;
  std::optional<io_uring> ring_;  // file I/O, created at the first request
  Status ring_unusable_;          // why there is no ring to use (ok: there is, or will be)
  std::unordered_map<std::uint64_t, FileRead> pending_;
  // Writes of kWriterBytes or more whose submitter goes on meanwhile (IoRequest::
  // caller_goes_on: the daemon receives the next requests' bytes; 1 MiB writes QD8 through
  // NBD, see doc/design.md) go to a thread that checksums and copies them into the page
  // cache. Others (a caller that waits at once: SyncDevice) are copied at once, as are
  // smaller ones, unless
  // writes are queued (they stay in order: note_unsynced hashes a zone's blocks in order):
  // a handoff costs more than the copy of a few KiB, and a 4 KiB write's latency is the job.
  // (Or a whole append, when the device takes less in one: a writer that streams.)
  static constexpr std::size_t kWriterBytes = 128 << 10;
  std::size_t writer_bytes() const {
    return std::min<std::size_t>(kWriterBytes, std::size_t{g_.max_append_blocks} * g_.block_size);
  }
  struct InFlightWrite {
    IoCompletion completion;  // lba: where it lands
    const std::uint8_t* bytes = nullptr;
    std::size_t length = 0;
    std::uint32_t zone = 0;
  };
  std::unique_ptr<FileWriter> writer_;         // file-backed and writable
  Status writer_unusable_;                     // why a writable file has none (its thread failed)
  std::deque<InFlightWrite> writes_;           // with the writer, oldest first
  std::vector<std::uint32_t> writes_in_zone_;  // of writes_, by zone (reads of a zone wait for them)
  std::uint64_t next_id_ = 1;
  std::uint64_t unkicked_bytes_ = 0;  // written since writeback was last started
  // How often writeback is started. Measured (fio 1 MiB writes QD8 through NBD with a flush
  // every 64 MiB, back to back with nbdkit): every 64 MiB, 0.93-0.98 GB/s against nbdkit's
  // 0.99-1.04 (0.90x); every 8 MiB, 1.08-1.16; every 4 MiB, 0.88-1.18 (nbd_bench medians
  // 0.99x and 1.06x, 1.06-1.15x in pairs by hand). Without flushes, the interval moved
  // neither that job nor 4 KiB random writes QD32 beyond the runs' spread.
  static constexpr std::uint64_t kKickBytes = 4ull << 20;
  // Whether most of what was written lately died before any flush asked for it (its zone was
  // reset first). Then the writer rewrites the same data and asks for no durability, as a
  // scratch volume does: the pages it overwrites in the page cache need never reach the disk,
  // unless a kick sends them there. So kicks stop, and the kernel's thresholds decide, as for
  // a server that writes a raw file in place. A writer that fills new space, or flushes, lets
  // little die unflushed and keeps its kicks (a limit on the bytes since the last flush would
  // stop those too). See doc/design.md, "Queue depth on a file", for the figures.
  bool writes_die_in_cache() const { return recent_died_bytes_ * 2 > recent_written_bytes_; }
  // Written, and of that died unflushed, lately: both halve whenever the first reaches
  // kRecentBytes, so a write counts less the older it is.
  std::uint64_t recent_written_bytes_ = 0;
  std::uint64_t recent_died_bytes_ = 0;
  static constexpr std::uint64_t kRecentBytes = 256ull << 20;
  EarlyWriteback early_writeback_;
  // Kicks queued on the ring's workers at most; each holds one while the disk is busy.
  static constexpr std::uint32_t kMaxKicksInFlight = 8;
  std::uint64_t unflushed_bytes_ = 0;  // written since the last flush
  // By zone, what its present data took since the last flush (a reset zeroes it; file-backed).
  std::vector<std::uint64_t> unflushed_in_zone_;
  // Version 2: the blocks each zone took since the last sync, hashed as they are written.
  struct UnsyncedZone {
    std::uint64_t from = 0;    // offset from the zone start of the first
    std::uint64_t blocks = 0;  // how many
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hash{nullptr, &XXH3_freeState};
  };
  std::unordered_map<std::uint32_t, UnsyncedZone> unsynced_;
  std::uint64_t unsynced_bytes_ = 0;
  bool unsynced_checkable_ = true;     // false: too many bytes, or a failed write, since the last sync
  bool table_names_unsynced_ = false;  // the newest table slot names unsynced blocks
  // What a one-sync flush may name. Hashing costs ~0.07 ms a MiB as it is written and opening
  // reads it back after a crash; a sync saved is ~0.2-0.4 ms on the disks measured.
  static constexpr std::uint64_t kCheckedFlushBytes = 4ull << 20;
  // The errno of a writeback job's failed fdatasync (0: none), shared with the jobs.
  std::shared_ptr<std::atomic<int>> job_errno_ = std::make_shared<std::atomic<int>>(0);
  Status sync_failure_;  // a failed sync: every later one fails with it
  std::uint32_t kicks_in_flight_ = 0;
  static constexpr std::uint64_t kKickId = UINT64_MAX;       // a kick's completion, not a request's
  static constexpr std::uint64_t kProbeId = UINT64_MAX - 1;  // ensure_ring's trial read
};

Status lock_file(int fd, bool read_only, const std::string& path) {
  if (::flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0) return Status::Ok();
  if (errno == EWOULDBLOCK)
    return Status(Code::kBusy, path + " is in use by another process (it holds the emulated device's lock)");
  return ErrnoStatus(errno, path + ": lock");
}

}  // namespace

Result<std::unique_ptr<EmulatedDevice>> EmulatedDevice::create_memory(const EmulatedConfig& config) {
  NYADS_RETURN_IF_ERROR(config.validate());
  auto dev = std::make_unique<Emulated>(config);
  NYADS_RETURN_IF_ERROR(dev->init_table({0, ZoneRules(config.geometry()).zones(), {}}));
  return std::unique_ptr<EmulatedDevice>(std::move(dev));
}

namespace {
// The bytes a file holds, or a block device's capacity (emulated zones on a plain disk).
Result<std::uint64_t> bytes_of(int fd, const std::string& path, bool* block_device) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "stat " + path);
  *block_device = S_ISBLK(st.st_mode);
  if (!*block_device) return static_cast<std::uint64_t>(st.st_size);
  std::uint64_t bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return ErrnoStatus(errno, path + ": BLKGETSIZE64");
  return bytes;
}

// Whether a device file of `bytes` can have all its blocks: the filesystem's free space plus
// what the file holds now (its blocks are kept), and fallocate there at all. Asked before the
// file is touched, so that a refusal leaves an existing file as it was.
Status check_room_to_reserve(int fd, const std::string& path, std::uint64_t bytes) {
  auto use = file_space_use(fd, path);
  if (!use.ok()) return use.status();
  const std::uint64_t room = use->free + use->allocated;
  if (room < bytes)
    return Status(Code::kNoSpace, path + ": cannot reserve " + format_size(bytes) + ": its filesystem has " +
                                      format_size(room) + " free for it");
  // A block at the start, the size kept: no change to what the file reads as.
  if (::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096) != 0) {
    if (errno == EOPNOTSUPP)
      return Status(Code::kNotSupported, path + ": its filesystem cannot reserve space (fallocate)");
    return ErrnoStatus(errno, path + ": reserving space");
  }
  return Status::Ok();
}

// Gives the device file all its blocks (unwritten extents: reads of them are zeros), so that
// no write can later fail for want of room on the filesystem (where blocks are written in
// place: ext4, XFS; a copy-on-write filesystem takes new blocks for every rewrite), and makes
// it read as zeros. The blocks are taken first, beside whatever the file holds: past the room
// check a full reservation can still fail (quotas, extent metadata), and a refused `mkfs -f`
// must leave the volume it would have replaced as it was. Only then is the old content let go,
// by zeroing in place, which keeps the blocks.
Status reserve_file_space(int fd, const std::string& path, std::uint64_t bytes, std::uint64_t old_size) {
  if (::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes)) != 0) {
    const Status failed = ErrnoStatus(errno, path + ": reserving " + format_size(bytes));
    // What it took past the old end goes back; the old bytes were not touched.
    (void)::ftruncate(fd, static_cast<off_t>(old_size));
    return failed;
  }
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return ErrnoStatus(errno, "sizing " + path);
  if (::fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, static_cast<off_t>(bytes)) == 0) return Status::Ok();
  if (errno != EOPNOTSUPP) return ErrnoStatus(errno, path + ": zeroing");
  // No zeroing in place (tmpfs): empty the file and take its blocks again. Only something
  // else filling the filesystem in between can make this fail.
  if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0)
    return ErrnoStatus(errno, "sizing " + path);
  if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) != 0)
    return ErrnoStatus(errno, path + ": reserving " + format_size(bytes));
  return Status::Ok();
}
}  // namespace

Result<std::unique_ptr<EmulatedDevice>> EmulatedDevice::create_file(const std::string& path,
                                                                    const EmulatedConfig& config, bool overwrite,
                                                                    FileSpace space) {
  NYADS_RETURN_IF_ERROR(config.validate().with_context(path));
  int flags = O_RDWR | O_CREAT | O_CLOEXEC | (overwrite ? 0 : O_EXCL);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return Status(Code::kAlreadyExists, path + " exists (pass overwrite/force to replace it)");
    return ErrnoStatus(errno, "creating " + path);
  }
  Status locked = lock_file(fd, false, path);
  if (!locked.ok()) {
    ::close(fd);
    return locked;
  }
  const ef::Layout layout = ef::layout_for(config);
  auto dev = std::make_unique<Emulated>(path, fd, layout, false);
  bool block_device = false;
  auto have = bytes_of(fd, path, &block_device);
  if (!have.ok()) return have.status();
  if (block_device) {
    // A plain disk keeps its old bytes; reads past a zone's write pointer return zeros anyway.
    if (*have < layout.file_bytes())
      return InvalidArgument(path + " holds " + std::to_string(*have) + " bytes; this geometry needs " +
                             std::to_string(layout.file_bytes()));
  } else {
    if (space == FileSpace::kReserved) {
      NYADS_RETURN_IF_ERROR(check_room_to_reserve(fd, path, layout.file_bytes()));
      NYADS_RETURN_IF_ERROR(reserve_file_space(fd, path, layout.file_bytes(), *have));
    } else if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(layout.file_bytes())) != 0) {
      return ErrnoStatus(errno, "sizing " + path);  // an empty, sparse file of the full size
    }
  }
  AlignedBuffer header(ef::kHeaderBytes);
  ef::encode_header(layout, header.span());
  NYADS_RETURN_IF_ERROR(full_pwrite(fd, header.data(), header.size(), 0, path + ": writing the header"));
  NYADS_RETURN_IF_ERROR(dev->init_table({0, ZoneRules(config.geometry()).zones(), {}}));
  NYADS_RETURN_IF_ERROR(dev->write_table());
  if (::fsync(fd) != 0) return ErrnoStatus(errno, "syncing " + path);
  return std::unique_ptr<EmulatedDevice>(std::move(dev));
}

Result<std::unique_ptr<EmulatedDevice>> EmulatedDevice::open_file(const std::string& path, bool read_only) {
  int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "opening " + path);
  auto close_on_error = [fd](Status s) {
    ::close(fd);
    return s;
  };
  Status locked = lock_file(fd, read_only, path);
  if (!locked.ok()) return close_on_error(locked);
  AlignedBuffer header(ef::kHeaderBytes);
  Status rs = full_pread(fd, header.data(), header.size(), 0, path + ": reading the header");
  if (!rs.ok()) return close_on_error(rs);
  auto layout = ef::decode_header(header.span());
  if (!layout.ok()) return close_on_error(layout.status().with_context(path));
  bool block_device = false;
  auto have = bytes_of(fd, path, &block_device);
  if (!have.ok()) return close_on_error(have.status());
  if (*have < layout->file_bytes())
    return close_on_error(Corruption(path + ": " + (block_device ? "device" : "file") + " is " + std::to_string(*have) +
                                     " bytes, its geometry needs " + std::to_string(layout->file_bytes())));
  auto dev = std::make_unique<Emulated>(path, fd, *layout, read_only);
  // Both table slots; the valid one with the higher generation wins.
  const Geometry g = layout->config.geometry();
  AlignedBuffer slot(layout->table_slot_bytes);
  std::optional<ef::ZoneTable> best;
  std::string errors, damaged;
  for (int i = 0; i < 2; ++i) {
    NYADS_RETURN_IF_ERROR(full_pread(fd, slot.data(), slot.size(), layout->table_offset + i * layout->table_slot_bytes,
                                     path + ": reading the zone table"));
    auto t = ef::decode_zone_table(slot.span(), g, layout->version);
    if (!t.ok()) {
      errors += " slot " + std::to_string(i) + ": " + t.status().message() + ";";
      // All zeros: a slot never written yet (a new device has one), not a damaged one.
      const auto bytes = slot.span();
      if (std::any_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b != 0; }))
        damaged = "slot " + std::to_string(i) + " (" + t.status().message() + ")";
      continue;
    }
    if (!best || t->generation > best->generation) best = std::move(t.value());
  }
  if (!best) return Corruption(path + ": both zone table slots are damaged:" + errors);
  // Which of the two was the newer cannot be told from a damaged slot. If it was, the zones'
  // write pointers are as of the flush before, and what was flushed after is out of sight:
  // harmless after a crash in the middle of writing the table (that flush never completed),
  // a loss if the file was damaged. Said, so that a rollback is never silent.
  if (!damaged.empty())
    dev->note_damaged_table_slot(path + ": zone table " + damaged + "; opened with the other slot, generation " +
                                 std::to_string(best->generation) +
                                 ". If the damaged one was newer, writes flushed after that generation are out of "
                                 "sight (no loss after a crash while the table was written; a loss if the file was "
                                 "damaged)");
  NYADS_RETURN_IF_ERROR(dev->check_unsynced(*best));
  return std::unique_ptr<EmulatedDevice>(std::move(dev));
}

}  // namespace nyads
