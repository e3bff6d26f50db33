#include "fs/ublk/ublk_device.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "zns/io_uring_setup.h"

namespace nyads::ublk {

namespace {

constexpr std::uint16_t kNoQueue = 0xffff;

std::string control_op_name(std::uint32_t op) {
  switch (_IOC_NR(op)) {
    case UBLK_CMD_ADD_DEV: return "ADD_DEV";
    case UBLK_CMD_DEL_DEV: return "DEL_DEV";
    case 0x14: return "DEL_DEV_ASYNC";
    case UBLK_CMD_START_DEV: return "START_DEV";
    case UBLK_CMD_STOP_DEV: return "STOP_DEV";
    case UBLK_CMD_SET_PARAMS: return "SET_PARAMS";
    default: return "command " + std::to_string(_IOC_NR(op));
  }
}

Status control_failure(int err, std::uint32_t op, int dev_id) {
  std::string what = "ublk " + control_op_name(op) + (dev_id >= 0 ? " (device " + std::to_string(dev_id) + ")" : "");
  if (err == EPERM || err == EACCES) what += ": not permitted (adding ublk devices needs CAP_SYS_ADMIN)";
  if (err == EEXIST) what += ": that device number is taken";
  return ErrnoStatus(err, what);
}

std::uint8_t shift_of(std::uint32_t v) {
  std::uint8_t s = 0;
  while ((1u << s) < v) ++s;
  return s;
}

void fill_control_sqe(io_uring_sqe* sqe, int fd, std::uint32_t op, int dev_id, void* buffer, std::uint16_t length,
                      std::uint64_t data0) {
  std::memset(sqe, 0, 2 * sizeof *sqe);  // a 128-byte SQE
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fd;
  sqe->cmd_op = op;
  sqe->user_data = op;
  auto* cmd = reinterpret_cast<ublksrv_ctrl_cmd*>(sqe->cmd);
  cmd->dev_id = static_cast<std::uint32_t>(dev_id);
  cmd->queue_id = kNoQueue;
  cmd->len = length;
  cmd->addr = reinterpret_cast<std::uintptr_t>(buffer);
  cmd->data[0] = data0;
}

// /dev/ublk-control and a small ring of 128-byte SQEs for its commands.
Status open_control_ring(int* fd, io_uring* ring) {
  *fd = ::open("/dev/ublk-control", O_RDWR | O_CLOEXEC);
  if (*fd < 0) {
    const int e = errno;
    if (e == ENOENT)
      return NotSupported(
          "ublk: /dev/ublk-control does not exist: the kernel's ublk driver is not loaded (modprobe ublk_drv; it needs "
          "CONFIG_BLK_DEV_UBLK)");
    if (e == EACCES || e == EPERM)
      return ErrnoStatus(e, "ublk: cannot open /dev/ublk-control (adding ublk devices needs root or CAP_SYS_ADMIN)");
    return ErrnoStatus(e, "ublk: open /dev/ublk-control");
  }
  if (int e = io_uring_queue_init(4, ring, IORING_SETUP_SQE128); e < 0) {
    ::close(*fd);
    *fd = -1;
    return io_uring_setup_error(-e, "ublk: /dev/ublk-control");
  }
  return Status::Ok();
}

}  // namespace

std::string op_name(std::uint8_t op) {
  switch (op) {
    case UBLK_IO_OP_READ: return "READ";
    case UBLK_IO_OP_WRITE: return "WRITE";
    case UBLK_IO_OP_FLUSH: return "FLUSH";
    case UBLK_IO_OP_DISCARD: return "DISCARD";
    case UBLK_IO_OP_WRITE_ZEROES: return "WRITE_ZEROES";
    default: return "op " + std::to_string(op);
  }
}

Status UblkDevice::open_control() {
  NYADS_RETURN_IF_ERROR(open_control_ring(&control_fd_, &control_ring_));
  control_ring_ready_ = true;
  return Status::Ok();
}

Status UblkDevice::control_sync(std::uint32_t op, void* buffer, std::uint16_t length, std::uint64_t data0) {
  io_uring_sqe* sqe = io_uring_get_sqe(&control_ring_);
  if (sqe == nullptr) return IoError("ublk: control ring full");
  fill_control_sqe(sqe, control_fd_, op, dev_id_, buffer, length, data0);
  io_uring_cqe* cqe = nullptr;
  int e = io_uring_submit(&control_ring_);
  if (e < 0) return ErrnoStatus(-e, "ublk: io_uring " + control_op_name(op));
  // Submitted: the kernel may write into `buffer` until it answers, so wait for the answer.
  do {
    e = io_uring_wait_cqe(&control_ring_, &cqe);
  } while (e == -EINTR || e == -EAGAIN);
  if (e < 0) return ErrnoStatus(-e, "ublk: io_uring " + control_op_name(op));
  const int res = cqe->res;
  io_uring_cqe_seen(&control_ring_, cqe);
  if (res < 0) return control_failure(-res, op, dev_id_);
  return Status::Ok();
}

Status UblkDevice::control_async(std::uint32_t op, std::uint64_t data0) {
  io_uring_sqe* sqe = io_uring_get_sqe(&control_ring_);
  if (sqe == nullptr) return IoError("ublk: control ring full");
  fill_control_sqe(sqe, control_fd_, op, dev_id_, nullptr, 0, data0);
  // The driver runs control commands on an io_uring worker thread (it answers -EAGAIN to the
  // non-blocking attempt), so this returns at once; the completion arrives in poll().
  if (int e = io_uring_submit(&control_ring_); e < 0) return ErrnoStatus(-e, "ublk: io_uring " + control_op_name(op));
  return Status::Ok();
}

Result<std::unique_ptr<UblkDevice>> UblkDevice::create(const UblkConfig& config) {
  if (config.block_size != 512 && config.block_size != 4096)
    return InvalidArgument("ublk: block size must be 512 or 4096");
  if (config.size_bytes == 0 || config.size_bytes % 4096 != 0)
    return InvalidArgument("ublk: size must be a positive multiple of 4096");
  std::unique_ptr<UblkDevice> d(new UblkDevice());
  d->config_ = config;
  NYADS_RETURN_IF_ERROR(d->open_control());

  ublksrv_ctrl_dev_info info{};
  info.nr_hw_queues = config.queues;
  info.queue_depth = config.depth;
  info.max_io_buf_bytes = config.max_io_bytes;
  info.dev_id = config.dev_id < 0 ? UINT32_MAX : static_cast<std::uint32_t>(config.dev_id);
  info.flags = kFlagCmdIoctlEncode;
  d->dev_id_ = config.dev_id;
  NYADS_RETURN_IF_ERROR(d->control_sync(kCmdAddDev, &info, sizeof info, 0));
  // The kernel's answer: the number it chose and the limits it accepted.
  d->dev_id_ = static_cast<int>(info.dev_id);
  d->config_.dev_id = d->dev_id_;
  d->config_.queues = info.nr_hw_queues;
  d->config_.depth = info.queue_depth;
  d->config_.max_io_bytes = info.max_io_buf_bytes;

  auto fail = [&](Status s) -> Status {
    // Nothing started: undo the ADD_DEV synchronously (no disk exists to drain).
    d->close_queues();
    (void)d->control_sync(kCmdDelDev, nullptr, 0, 0);
    d->state_ = State::kGone;
    return s;
  };

  ublk_params p{};
  p.len = sizeof p;
  p.types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD;
  // A write cache (FLUSH is sent) with FUA: the same promise as the NBD export's flags.
  p.basic.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
  p.basic.logical_bs_shift = shift_of(config.block_size);
  p.basic.physical_bs_shift = 12;
  p.basic.io_min_shift = 12;
  p.basic.io_opt_shift = 12;
  p.basic.max_sectors = d->config_.max_io_bytes >> 9;
  p.basic.dev_sectors = config.size_bytes >> 9;
  p.discard.discard_granularity = 4096;
  p.discard.max_discard_sectors = 1u << 23;  // 4 GiB per request
  p.discard.max_write_zeroes_sectors = 1u << 23;
  p.discard.max_discard_segments = 1;
  if (Status s = d->control_sync(kCmdSetParams, &p, sizeof p, 0); !s.ok()) return fail(s);
  if (Status s = d->setup_queues(); !s.ok()) return fail(s);
  if (Status s = d->control_async(kCmdStartDev, static_cast<std::uint64_t>(::getpid())); !s.ok()) return fail(s);
  return d;
}

Status UblkDevice::setup_queues() {
  const std::string path = "/dev/ublkc" + std::to_string(dev_id_);
  // devtmpfs makes the node as the kernel adds the device; udev may still be adjusting it.
  for (int attempt = 0; attempt < 100; ++attempt) {
    char_fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (char_fd_ >= 0 || errno != ENOENT) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (char_fd_ < 0) return ErrnoStatus(errno, "ublk: open " + path);
  const std::size_t queues = config_.queues, depth = config_.depth;
  desc_map_bytes_ = (depth * sizeof(ublksrv_io_desc) + 4095) & ~std::size_t{4095};
  for (std::size_t q = 0; q < queues; ++q) {
    void* m = ::mmap(nullptr, desc_map_bytes_, PROT_READ, MAP_SHARED | MAP_POPULATE, char_fd_,
                     static_cast<off_t>(UBLKSRV_CMD_BUF_OFFSET + q * kMaxCmdBufBytes));
    if (m == MAP_FAILED) return ErrnoStatus(errno, "ublk: mmap the I/O descriptors of " + path);
    descs_.push_back(static_cast<const ublksrv_io_desc*>(m));
  }
  // One buffer per tag, where the kernel copies write data in and read data out. Pages are
  // only touched as requests use them.
  buffer_bytes_ = queues * depth * config_.max_io_bytes;
  void* b = ::mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (b == MAP_FAILED) return ErrnoStatus(errno, "ublk: buffers");
  buffers_ = static_cast<std::uint8_t*>(b);
  if (int e = io_uring_queue_init(static_cast<unsigned>(queues * depth), &queue_ring_, 0); e < 0)
    return io_uring_setup_error(-e, "ublk: " + path);
  queue_ring_ready_ = true;
  for (std::size_t q = 0; q < queues; ++q)
    for (std::size_t t = 0; t < depth; ++t)
      queue_fetch(static_cast<std::uint16_t>(q), static_cast<std::uint16_t>(t), kIoFetchReq, 0);
  // FETCH is handled inline, in this thread: it becomes the queues' server thread.
  if (int e = io_uring_submit(&queue_ring_); e < 0) return ErrnoStatus(-e, "ublk: FETCH_REQ");
  return Status::Ok();
}

std::uint8_t* UblkDevice::buffer(std::uint16_t queue, std::uint16_t tag) const {
  return buffers_ + (static_cast<std::size_t>(queue) * config_.depth + tag) * config_.max_io_bytes;
}

void UblkDevice::queue_fetch(std::uint16_t queue, std::uint16_t tag, std::uint32_t op, int result) {
  io_uring_sqe* sqe = io_uring_get_sqe(&queue_ring_);
  if (sqe == nullptr) {
    io_uring_submit(&queue_ring_);
    sqe = io_uring_get_sqe(&queue_ring_);
    if (sqe == nullptr) return;  // cannot happen: the ring holds one entry per tag
  }
  std::memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = char_fd_;
  sqe->cmd_op = op;
  sqe->user_data = (std::uint64_t{queue} << 16) | tag;
  auto* cmd = reinterpret_cast<ublksrv_io_cmd*>(sqe->cmd);
  cmd->q_id = queue;
  cmd->tag = tag;
  cmd->result = result;
  cmd->addr = reinterpret_cast<std::uintptr_t>(buffer(queue, tag));
  ++armed_;
}

std::vector<int> UblkDevice::fds() const {
  std::vector<int> out;
  if (control_ring_ready_) out.push_back(control_ring_.ring_fd);
  if (queue_ring_ready_) out.push_back(queue_ring_.ring_fd);
  return out;
}

void UblkDevice::poll(std::vector<UblkRequest>& out) {
  if (control_ring_ready_) {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&control_ring_, &cqe) == 0) {
      const auto op = static_cast<std::uint32_t>(cqe->user_data);
      const int res = cqe->res;
      io_uring_cqe_seen(&control_ring_, cqe);
      if (op == kCmdStartDev) {
        if (res < 0) {
          state_ = State::kFailed;
          error_ = control_failure(-res, op, dev_id_);
        } else if (state_ == State::kStarting) {
          state_ = State::kLive;
        }
        if (remove_wanted_) remove();
      } else if (op == kCmdStopDev) {
        stop_done_ = true;
        if (res < 0) error_ = control_failure(-res, op, dev_id_);
      } else if (op == kCmdDelDevAsync && (res == -EOPNOTSUPP || res == -EINVAL)) {
        delete_op_ = kCmdDelDev;  // a kernel before 6.9: the plain command, which may wait
        delete_sent_ = false;
      } else if (op == kCmdDelDev || op == kCmdDelDevAsync) {
        if (res < 0 && res != -ENODEV) error_ = control_failure(-res, op, dev_id_);
        deleted_ = res >= 0 || res == -ENODEV;
        state_ = State::kGone;
      }
    }
  }
  if (queue_ring_ready_) {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&queue_ring_, &cqe) == 0) {
      const auto queue = static_cast<std::uint16_t>(cqe->user_data >> 16);
      const auto tag = static_cast<std::uint16_t>(cqe->user_data & 0xffff);
      const int res = cqe->res;
      io_uring_cqe_seen(&queue_ring_, cqe);
      --armed_;
      if (res != UBLK_IO_RES_OK) {
        // UBLK_IO_RES_ABORT: the device is going away and this tag retires. Anything else
        // is a command the driver refused: that tag is lost (its request, if any, hangs in
        // the kernel until the device is removed), so the device is failed and removed.
        if (res != UBLK_IO_RES_ABORT) {
          error_ = ErrnoStatus(-res, "ublk device " + std::to_string(dev_id_) + ": queue " + std::to_string(queue) +
                                         " tag " + std::to_string(tag) + ": the driver refused an I/O command");
          if (state_ == State::kStarting || state_ == State::kLive) state_ = State::kFailed;
        }
        continue;
      }
      const ublksrv_io_desc& d = descs_[queue][tag];
      UblkRequest r;
      r.queue = queue;
      r.tag = tag;
      r.op = static_cast<std::uint8_t>(d.op_flags & 0xff);
      const std::uint64_t offset = d.start_sector << 9;
      const std::uint64_t length = std::uint64_t{d.nr_sectors} << 9;
      const bool fua = (d.op_flags & UBLK_IO_F_FUA) != 0;
      if ((r.op == UBLK_IO_OP_READ || r.op == UBLK_IO_OP_WRITE) && length > config_.max_io_bytes) {
        r.runnable = false;
        r.errno_result = EINVAL;
      } else if (r.op == UBLK_IO_OP_READ) {
        r.store = StoreRequest::read(config_.ns, offset, {buffer(queue, tag), length});
      } else if (r.op == UBLK_IO_OP_WRITE) {
        r.store = StoreRequest::write(config_.ns, offset, {buffer(queue, tag), length}, fua);
      } else if (r.op == UBLK_IO_OP_FLUSH) {
        r.store = StoreRequest::flush();
      } else if (r.op == UBLK_IO_OP_DISCARD) {
        r.store = StoreRequest::trim(config_.ns, offset, length, fua);
      } else if (r.op == UBLK_IO_OP_WRITE_ZEROES) {
        r.store = StoreRequest::write_zeroes(config_.ns, offset, length, (d.op_flags & UBLK_IO_F_NOUNMAP) != 0, fua);
      } else {
        r.runnable = false;
        r.errno_result = EOPNOTSUPP;
      }
      ++unanswered_;
      out.push_back(std::move(r));
    }
  }
  send_pending_control();
  // Every fetch came back aborted without our asking (the device was deleted behind our
  // back, e.g. by another tool): nothing can reach us any more, so remove what is left.
  if (state_ == State::kLive && !stop_wanted_ && armed_ == 0 && unanswered_ == 0) {
    if (error_.ok()) error_ = IoError("ublk device " + std::to_string(dev_id_) + " was stopped by someone else");
    remove();
  }
  // Removal: once STOP_DEV is done the disk is gone and every fetch came back aborted; close
  // our side (the kernel frees the device only then), and delete it.
  if (stop_done_ && !delete_wanted_ && unanswered_ == 0 && armed_ == 0) {
    close_queues();
    delete_wanted_ = true;
  }
  send_pending_control();
}

void UblkDevice::send_pending_control() {
  if (stop_wanted_ && !stop_sent_) {
    if (Status s = control_async(kCmdStopDev, 0); s.ok())
      stop_sent_ = true;
    else if (error_.ok())
      error_ = s;  // tried again at the next poll
  }
  if (delete_wanted_ && !delete_sent_) {
    if (Status s = control_async(delete_op_, 0); s.ok())
      delete_sent_ = true;
    else if (error_.ok())
      error_ = s;
  }
}

void UblkDevice::answer(const UblkRequest& request, int result) {
  if (unanswered_ > 0) --unanswered_;
  if (!queue_ring_ready_) return;
  queue_fetch(request.queue, request.tag, kIoCommitAndFetchReq, result);
}

void UblkDevice::submit() {
  if (queue_ring_ready_ && io_uring_sq_ready(&queue_ring_) > 0) io_uring_submit(&queue_ring_);
}

void UblkDevice::remove() {
  if (state_ == State::kStarting) {
    remove_wanted_ = true;
    return;
  }
  if (stop_wanted_ || state_ == State::kGone) return;
  stop_wanted_ = true;
  state_ = State::kRemoving;
  send_pending_control();
}

void UblkDevice::close_queues() {
  if (queue_ring_ready_) {
    io_uring_queue_exit(&queue_ring_);
    queue_ring_ready_ = false;
  }
  for (const ublksrv_io_desc* m : descs_) ::munmap(const_cast<ublksrv_io_desc*>(m), desc_map_bytes_);
  descs_.clear();
  if (buffers_ != nullptr) ::munmap(buffers_, buffer_bytes_);
  buffers_ = nullptr;
  if (char_fd_ >= 0) ::close(char_fd_);
  char_fd_ = -1;
}

UblkDevice::~UblkDevice() {
  close_queues();
  if (control_ring_ready_) io_uring_queue_exit(&control_ring_);
  if (control_fd_ >= 0) ::close(control_fd_);
}

Status UblkDevice::remove_stale(int dev_id, int timeout_ms) {
  int fd = -1;
  io_uring ring{};
  NYADS_RETURN_IF_ERROR(open_control_ring(&fd, &ring));
  Status out = Status::Ok();
  for (std::uint32_t op : {kCmdDelDevAsync, kCmdDelDev}) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    fill_control_sqe(sqe, fd, op, dev_id, nullptr, 0, 0);
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
    int e = io_uring_submit(&ring);
    if (e >= 0) e = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
    if (e == -ETIME) {
      out = Status(Code::kBusy, "ublk device " + std::to_string(dev_id) +
                                    " is still in use (a mount or an open /dev/ublkb" + std::to_string(dev_id) + "?)");
      break;
    }
    if (e < 0) {
      out = ErrnoStatus(-e, "ublk: io_uring " + control_op_name(op));
      break;
    }
    const int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    if (op == kCmdDelDevAsync && (res == -EOPNOTSUPP || res == -EINVAL)) continue;  // before 6.9
    if (res < 0 && res != -ENODEV) out = control_failure(-res, op, dev_id);
    break;
  }
  io_uring_queue_exit(&ring);
  ::close(fd);
  return out;
}

}  // namespace nyads::ublk
