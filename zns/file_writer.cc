#include "zns/file_writer.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace nyads {

FileWriter::~FileWriter() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    work_.notify_one();
    thread_.join();  // after every queued write: their bytes are still the caller's
  }
  if (event_fd_ >= 0) ::close(event_fd_);
}

Status FileWriter::start() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return ErrnoStatus(errno, what_ + ": eventfd for the writing thread");
  // Started with every signal blocked: a signal sent to the process (SIGHUP, SIGTERM, which a
  // daemon takes through a signalfd on its own thread) must not land here and kill it.
  sigset_t all, before;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &before);
  Status st = Status::Ok();
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    ::close(event_fd_);
    event_fd_ = -1;
    st = Status(Code::kIoError, what_ + ": cannot start the writing thread: " + e.what());
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  return st;
}

void FileWriter::queue(const Write& w) {
  {
    std::lock_guard lock(mutex_);
    queued_.push_back(w);
  }
  ++outstanding_;
  work_.notify_one();
}

std::size_t FileWriter::take(std::deque<Status>& out, bool wait) {
  std::unique_lock lock(mutex_);
  if (wait) completed_.wait(lock, [this] { return !done_.empty(); });
  const std::size_t n = done_.size();
  for (auto& s : done_) out.push_back(std::move(s));
  done_.clear();
  outstanding_ -= n;
  std::uint64_t drained;
  (void)!::read(event_fd_, &drained, sizeof drained);  // nonblocking: clears a signal, if any
  return n;
}

bool FileWriter::all_written() const {
  std::lock_guard lock(mutex_);
  return queued_.empty() && !writing_;
}

void FileWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [this] { return stop_ || !queued_.empty(); });
    if (queued_.empty()) return;  // stopping, with nothing left to write
    const Write w = std::move(queued_.front());
    queued_.pop_front();
    writing_ = true;
    lock.unlock();
    if (w.prepare) w.prepare();
    Status st = Status::Ok();
    const std::uint8_t* p = w.bytes;
    std::size_t left = w.length;
    std::uint64_t at = w.offset;
    while (left > 0) {
      const ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(at));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        st = n < 0 ? ErrnoStatus(errno, what_) : IoError(what_ + ": the file took no bytes");
        break;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
      at += static_cast<std::uint64_t>(n);
    }
    lock.lock();
    writing_ = false;
    done_.push_back(std::move(st));
    const bool idle = queued_.empty();
    completed_.notify_one();
    if (idle) {
      const std::uint64_t one = 1;
      (void)!::write(event_fd_, &one, sizeof one);
    }
  }
}

}  // namespace nyads
