#include "nyads/sync_device.h"

#include <algorithm>
#include <array>
#include <cassert>

namespace nyads {

Result<std::uint64_t> SyncDevice::run(IoOp op, std::uint64_t lba, std::uint32_t blocks, void* buffer) {
  assert(device_.in_flight() == 0 && "SyncDevice must be the device's only user");
  const std::uint64_t tag = next_tag_++;
  NYADS_RETURN_IF_ERROR(device_.submit({op, lba, blocks, buffer, tag, {}, false}));
  std::array<IoCompletion, 1> done;
  while (device_.reap(done, 1) == 0) {
  }
  assert(done[0].tag == tag);
  if (!done[0].status.ok()) return done[0].status;
  return done[0].lba;
}

// Reads and writes longer than the device's largest I/O go in pieces, in order.
Status SyncDevice::chunked(IoOp op, std::uint64_t lba, std::uint32_t blocks, std::uint8_t* p) {
  const Geometry& g = device_.geometry();
  while (blocks > 0) {
    const std::uint32_t n = std::min(blocks, g.max_io_blocks);
    auto r = run(op, lba, n, p);
    if (!r.ok()) return r.status();
    lba += n;
    blocks -= n;
    p += static_cast<std::size_t>(n) * g.block_size;
  }
  return Status::Ok();
}

Status SyncDevice::read(std::uint64_t lba, std::uint32_t blocks, void* buffer) {
  return chunked(IoOp::kRead, lba, blocks, static_cast<std::uint8_t*>(buffer));
}

Status SyncDevice::write(std::uint64_t lba, std::uint32_t blocks, const void* buffer) {
  // The device only reads a write's buffer; the queue's request type is not const.
  return chunked(IoOp::kWrite, lba, blocks, static_cast<std::uint8_t*>(const_cast<void*>(buffer)));
}

Result<std::uint64_t> SyncDevice::append(std::uint64_t zone_start, std::uint32_t blocks, const void* buffer) {
  return run(IoOp::kAppend, zone_start, blocks, const_cast<void*>(buffer));
}

Status SyncDevice::flush() {
  auto r = run(IoOp::kFlush, 0, 0, nullptr);
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace nyads
