// One namespace exported as a kernel block device, /dev/ublkbN, through the ublk driver.
//
// Lifecycle (all of it driven from the daemon's one thread, none of it blocking that thread
// on the kernel's block layer):
//   create(): ADD_DEV and SET_PARAMS on /dev/ublk-control, waited for (they touch no disk and
//             are answered at once, though ADD_DEV takes the driver's global mutex), the char
//             device /dev/ublkcN opened, its I/O descriptors mapped, a FETCH_REQ queued for
//             every tag of every queue, then START_DEV sent *asynchronously*: the kernel runs
//             it on an io_uring worker and, while adding the disk, reads the partition table
//             through the very queues this thread serves. kStarting -> kLive (or kFailed).
//   poll():   requests the kernel handed over (a FETCH completed) become StoreRequests;
//             answer() commits each result and re-arms its tag (COMMIT_AND_FETCH_REQ).
//   remove(): STOP_DEV, asynchronously: the kernel deletes the disk (serving what is in flight
//             through us meanwhile) and aborts our fetches; after the last abort we close the
//             char device and send DEL_DEV_ASYNC (plain DEL_DEV before 6.9, which waits for
//             the last opener of /dev/ublkbN). kRemoving -> kGone.
// A daemon killed with the device live leaves it to the kernel: it fails I/O and stops the
// disk; DEL_DEV by number (remove_stale) frees what is left.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fs/ublk/ublk_uapi.h"
#include "nyads/status.h"
#include "nyads/store.h"

namespace nyads::ublk {

struct UblkConfig {
  std::uint32_t ns = 0;  // the namespace served
  std::uint64_t size_bytes = 0;
  std::uint32_t block_size = 4096;         // the namespace's: the disk's logical block size
  std::uint16_t queues = 1;                // hardware queues (the kernel caps it at its CPU count)
  std::uint16_t depth = 64;                // requests in flight per queue
  std::uint32_t max_io_bytes = 256 << 10;  // largest request; one buffer of this size per tag
  int dev_id = -1;                         // -1: the kernel picks the number
};

// A request the kernel sent, as the store will run it.
struct UblkRequest {
  std::uint16_t queue = 0;
  std::uint16_t tag = 0;
  std::uint8_t op = 0;  // UBLK_IO_OP_*
  StoreRequest store;
  bool runnable = true;  // false: answered with `errno_result` without the store
  int errno_result = 0;
};

// "READ", "WRITE", "FLUSH", "DISCARD", "WRITE_ZEROES" or "op N", for logs.
std::string op_name(std::uint8_t op);

class UblkDevice {
 public:
  enum class State { kStarting, kLive, kFailed, kRemoving, kGone };

  static Result<std::unique_ptr<UblkDevice>> create(const UblkConfig& config);
  // Frees a device a killed daemon left behind (DEL_DEV by number); waits at most timeout_ms.
  static Status remove_stale(int dev_id, int timeout_ms);
  ~UblkDevice();  // closes everything; a live device is then stopped by the kernel

  UblkDevice(const UblkDevice&) = delete;
  UblkDevice& operator=(const UblkDevice&) = delete;

  State state() const { return state_; }
  const Status& error() const { return error_; }  // why kFailed, or a failed removal
  // Whether the kernel confirmed the device deleted (kGone after a DEL_DEV that succeeded).
  bool deleted() const { return deleted_; }
  int dev_id() const { return dev_id_; }
  std::string disk_name() const { return "ublkb" + std::to_string(dev_id_); }  // as in /sys/block
  std::string block_path() const { return "/dev/" + disk_name(); }
  const UblkConfig& config() const { return config_; }
  // The file descriptors to watch for readiness (both rings): poll() when one is readable.
  std::vector<int> fds() const;

  // Takes the kernel's completions: state changes, and requests to run (appended to `out`).
  void poll(std::vector<UblkRequest>& out);
  // Answers a request taken by poll(): `result` is bytes done (read, write) or 0, or -errno.
  // Queued; sent by submit().
  void answer(const UblkRequest& request, int result);
  void submit();
  // Starts removal (DEL_DEV). Harmless when already removing or gone.
  void remove();
  // Requests the kernel handed over and not yet answered.
  std::size_t unanswered() const { return unanswered_; }

 private:
  UblkDevice() = default;
  Status open_control();
  Status control_sync(std::uint32_t op, void* buffer, std::uint16_t length, std::uint64_t data0);
  Status control_async(std::uint32_t op, std::uint64_t data0);
  Status setup_queues();
  void close_queues();  // after the last fetch came back aborted
  void queue_fetch(std::uint16_t queue, std::uint16_t tag, std::uint32_t op, int result);
  std::uint8_t* buffer(std::uint16_t queue, std::uint16_t tag) const;

  UblkConfig config_;
  State state_ = State::kStarting;
  Status error_;
  int dev_id_ = -1;
  int control_fd_ = -1;
  io_uring control_ring_{};
  bool control_ring_ready_ = false;
  int char_fd_ = -1;
  io_uring queue_ring_{};
  bool queue_ring_ready_ = false;
  std::vector<const ublksrv_io_desc*> descs_;  // per queue, mapped from the char device
  std::size_t desc_map_bytes_ = 0;
  std::uint8_t* buffers_ = nullptr;  // queues * depth * max_io_bytes, anonymous
  std::size_t buffer_bytes_ = 0;
  std::size_t armed_ = 0;       // tags waiting in the kernel (FETCH outstanding)
  std::size_t unanswered_ = 0;  // tags held by us
  void send_pending_control();  // STOP/DEL that could not be submitted: tried again each poll
  bool remove_wanted_ = false;  // remove() came while starting: do it once started
  bool stop_wanted_ = false, stop_sent_ = false, stop_done_ = false;
  bool delete_wanted_ = false, delete_sent_ = false, deleted_ = false;
  std::uint32_t delete_op_ = kCmdDelDevAsync;
};

}  // namespace nyads::ublk
