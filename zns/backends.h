// Constructors of the kernel backends, used by open_zoned_device(). Internal to zns/.
#pragma once

#include <memory>
#include <string>

#include "nyads/zoned_device.h"

namespace nyads {

// A host-managed zoned block device (e.g. /dev/nvme0n1, null_blk) through libzbd and io_uring.
Result<std::unique_ptr<ZonedDevice>> open_zbd_device(const std::string& path, const OpenOptions& options);
// An NVMe ZNS namespace's generic character device (/dev/ngXnY) through libnvme and io_uring
// NVMe passthrough, with native zone append.
Result<std::unique_ptr<ZonedDevice>> open_nvme_device(const std::string& path, const OpenOptions& options);

}  // namespace nyads
