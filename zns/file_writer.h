// FileWriter: one thread that copies the emulated device's writes into its file (pwrite: the
// page cache), in the order they were queued, so that the thread that submitted them goes on
// with other work meanwhile (the daemon receives the next requests' bytes while this batch's
// are copied: what nbdkit gets from its threads). Completions come back in the same order;
// an eventfd turns readable whenever the queue runs empty, for a submitter that waits in epoll.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "nyads/status.h"

namespace nyads {

class FileWriter {
 public:
  // What to write where. The bytes must stay in place until the write's completion is taken.
  struct Write {
    const std::uint8_t* bytes = nullptr;
    std::size_t length = 0;
    std::uint64_t offset = 0;
    std::function<void()> prepare;  // run on the thread first, if set (IoRequest::prepare)
  };

  // Writes into `fd` (not owned) and names `what` in its errors. Nothing runs until start().
  FileWriter(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  ~FileWriter();  // finishes every queued write, then stops the thread
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  // Starts the thread and the eventfd. On failure the caller writes by itself.
  Status start();
  // Readable when every queued write has completed (cleared by take()).
  int event_fd() const { return event_fd_; }

  void queue(const Write& w);
  // Moves the outcomes of completed writes, oldest first, into `out` (appended); with `wait`,
  // first waits until at least one has completed. Returns how many were moved.
  std::size_t take(std::deque<Status>& out, bool wait);
  // Writes queued whose outcome take() has not returned yet.
  std::size_t outstanding() const { return outstanding_; }
  // Whether every queued write has completed (its outcome may still wait for take()).
  bool all_written() const;

 private:
  void run();

  const int fd_;
  const std::string what_;
  int event_fd_ = -1;
  std::thread thread_;
  std::size_t outstanding_ = 0;  // the submitter's count; only its thread touches it
  mutable std::mutex mutex_;
  std::condition_variable work_, completed_;
  std::deque<Write> queued_;  // guarded by mutex_
  std::deque<Status> done_;   // guarded by mutex_
  bool writing_ = false;      // guarded by mutex_: the thread holds a write taken from queued_
  bool stop_ = false;         // guarded by mutex_
};

}  // namespace nyads
