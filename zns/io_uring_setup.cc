#include "zns/io_uring_setup.h"

#include <cerrno>
#include <string>

namespace nyads {

Status io_uring_setup_error(int err, std::string_view what) {
  const Status base = ErrnoStatus(err, std::string(what) + ": setting up io_uring");
  std::string why;
  if (err == EPERM)
    why =
        " (io_uring is forbidden here: by a seccomp profile, as Docker's and containerd's default ones, which must "
        "allow io_uring_setup, "
        "io_uring_enter and io_uring_register; or by the kernel.io_uring_disabled sysctl)";
  else if (err == ENOSYS)
    why = " (this kernel has no io_uring, CONFIG_IO_URING, or a seccomp profile hides it)";
  return Status(base.code(), base.message() + why);
}

}  // namespace nyads
