// without_io_uring [--enter] COMMAND [ARG...]: runs COMMAND where the io_uring system calls
// fail with EPERM, as they do in a container under Docker's default seccomp profile (since
// Docker 25). With --enter only io_uring_enter fails: rings are made, but nothing submitted to
// them ever runs (a ring that breaks). The filter is inherited by everything COMMAND starts.
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  const bool enter_only = argc > 1 && std::strcmp(argv[1], "--enter") == 0;
  if (enter_only) ++argv, --argc;
  if (argc < 2) {
    std::fprintf(stderr, "usage: without_io_uring [--enter] COMMAND [ARG...]\n");
    return 2;
  }
  // io_uring_setup, _enter and _register have the same numbers on every architecture. With
  // --enter, a setup or register reads as "not enter" (a jump past the refusal).
  const std::uint32_t setup = enter_only ? UINT32_MAX : __NR_io_uring_setup;
  const std::uint32_t reg = enter_only ? UINT32_MAX : __NR_io_uring_register;
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, reg, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  // Without no_new_privs an unprivileged process may not install a filter.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::fprintf(stderr, "without_io_uring: installing the seccomp filter: %s\n", std::strerror(errno));
    return 2;
  }
  // Proof that the filter holds, before the command relies on it; with --enter, that rings
  // can still be made (else the host refuses io_uring already: exit 77, nothing to test).
  const long probe = enter_only ? __NR_io_uring_enter : __NR_io_uring_setup;
  if (::syscall(probe, enter_only ? -1 : 1, 0, 0, 0, nullptr, 0) != -1 || errno != EPERM) {
    std::fprintf(stderr, "without_io_uring: io_uring is not refused with EPERM\n");
    return 2;
  }
  if (enter_only) {
    io_uring_params params{};
    const long ring = ::syscall(__NR_io_uring_setup, 1, &params);
    if (ring < 0) {
      std::fprintf(stderr, "without_io_uring: io_uring_setup is refused here already: %s\n", std::strerror(errno));
      return 77;
    }
    ::close(static_cast<int>(ring));
  }
  ::execvp(argv[1], argv + 1);
  std::fprintf(stderr, "without_io_uring: %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
