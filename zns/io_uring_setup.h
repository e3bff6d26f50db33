// Why an io_uring could not be set up, in words an operator can act on.
#pragma once

#include <string_view>

#include "nyads/status.h"

namespace nyads {

// The error of an io_uring_queue_init that failed with errno `err` (positive), for `what`.
// EPERM and ENOSYS get their usual causes: a seccomp profile (Docker's default one forbids
// io_uring), the kernel.io_uring_disabled sysctl, or a kernel built without io_uring.
Status io_uring_setup_error(int err, std::string_view what);

}  // namespace nyads
