// mkfs: lays a new nyads volume on a zoned device. The CLI (main.cc) wraps this; tests call it
// directly too.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "nyads/format.h"
#include "nyads/volume.h"
#include "nyads/zoned_device.h"

namespace nyads::mkfs {

struct Options {
  std::string label;
  std::optional<format::Uuid> uuid;  // random when not given
  bool force = false;                // overwrite an existing volume or data
  bool dry_run = false;              // plan and report, write nothing
  LayoutOptions layout;
  // Called as zones are reset: (done, total).
  std::function<void(std::uint32_t, std::uint32_t)> progress;
};

struct Result {
  format::Superblock sb;
  std::uint32_t zones_reset = 0;
};

// What the device already holds, if anything worth protecting: "a nyads volume (label ...)",
// "an ext4 file system", or "data in 3 of 64 zones". Empty when every zone is empty.
nyads::Result<std::string> existing_contents(ZonedDevice& device);

// Formats the device: resets the zones that hold data, writes the first checkpoint, then the
// superblock and its backup, flushing after each step. Without force it refuses a device that
// holds anything (existing_contents), and says what it found.
nyads::Result<Result> format_volume(ZonedDevice& device, const Options& options);

// The summary mkfs prints: capacity, zones by role, usable space, metadata overhead.
std::string describe(const format::Superblock& sb);

}  // namespace nyads::mkfs
