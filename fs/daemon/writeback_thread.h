// A thread that runs one job at a time beside the daemon's loop (the device's writeback
// before a commit) and says when it is done through an eventfd the loop watches, so the loop
// goes on serving every client meanwhile.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "nyads/status.h"

namespace nyads::daemon {

class WritebackThread {
 public:
  WritebackThread() = default;
  ~WritebackThread();  // waits for a job that runs, then stops the thread
  WritebackThread(const WritebackThread&) = delete;
  WritebackThread& operator=(const WritebackThread&) = delete;

  // Creates the eventfd (the thread starts with the first job).
  Status init();
  // Readable when a job has finished; finished() then clears it.
  int fd() const { return event_fd_; }

  // Whether a job was started and finished() has not been called for it since.
  bool busy() const { return busy_; }
  // Runs the job on the thread. Only when not busy(). Fails only when the thread cannot be
  // created (then nothing runs, and it is not busy).
  Status start(std::function<void()> job);
  // After fd() turned readable, or to end a job it waited for: not busy any more.
  void finished();
  // Blocks until the job started last has finished; then not busy any more.
  void wait();

 private:
  void run();

  int event_fd_ = -1;
  bool busy_ = false;  // the loop's view; only the loop's thread reads or writes it
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::function<void()> job_;  // guarded by mutex_: set by start(), cleared by the thread
  bool stop_ = false;          // guarded by mutex_
};

}  // namespace nyads::daemon
