#include "fs/daemon/writeback_thread.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>

namespace nyads::daemon {

WritebackThread::~WritebackThread() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();  // after the job that runs, if any
  if (event_fd_ >= 0) ::close(event_fd_);
}

Status WritebackThread::init() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return ErrnoStatus(errno, "eventfd");
  return Status::Ok();
}

Status WritebackThread::start(std::function<void()> job) {
  if (!thread_.joinable()) {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      return IoError(std::string("starting the writeback thread: ") + e.what());
    }
  }
  {
    std::lock_guard lock(mutex_);
    job_ = std::move(job);
  }
  busy_ = true;
  wake_.notify_all();
  return Status::Ok();
}

void WritebackThread::finished() {
  std::uint64_t count = 0;
  while (::read(event_fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
  busy_ = false;
}

void WritebackThread::wait() {
  // The eventfd turns readable when the job is done, as the loop sees it.
  pollfd ready{event_fd_, POLLIN, 0};
  while (::poll(&ready, 1, -1) < 0 && errno == EINTR) {
  }
  finished();
}

void WritebackThread::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || job_; });
    if (!job_) return;  // stopping, nothing left to run
    std::function<void()> job = std::move(job_);
    job_ = nullptr;
    lock.unlock();
    job();
    const std::uint64_t one = 1;
    while (::write(event_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    lock.lock();
  }
}

}  // namespace nyads::daemon
