// SyncDevice: blocking calls over a ZonedDevice's queue, for tools (mkfs, fsck) and tests.
// It submits one request and reaps until that request completes, so it must be the device's
// only user while it runs.
#pragma once

#include <cstdint>

#include "nyads/zoned_device.h"

namespace nyads {

class SyncDevice {
 public:
  explicit SyncDevice(ZonedDevice& device) : device_(device) {}

  Status read(std::uint64_t lba, std::uint32_t blocks, void* buffer);
  // Writes at the zone's write pointer; splits into max_io_blocks pieces.
  Status write(std::uint64_t lba, std::uint32_t blocks, const void* buffer);
  // Appends to the zone that starts at zone_start; returns the first block written.
  Result<std::uint64_t> append(std::uint64_t zone_start, std::uint32_t blocks, const void* buffer);
  Status flush();

  ZonedDevice& device() { return device_; }

 private:
  Result<std::uint64_t> run(IoOp op, std::uint64_t lba, std::uint32_t blocks, void* buffer);
  Status chunked(IoOp op, std::uint64_t lba, std::uint32_t blocks, std::uint8_t* buffer);
  ZonedDevice& device_;
  std::uint64_t next_tag_ = 1;
};

}  // namespace nyads
