// fallocate_runs_out COMMAND [ARG...]: runs COMMAND where every fallocate of more than 1 MiB
// fails with ENOSPC, as on a filesystem whose quota or extent metadata runs out after a
// free-space check passed. Smaller ones go through (mkfs.nyads tries fallocate with 4 KiB).
// The filter is inherited by everything COMMAND starts.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {
constexpr std::uint32_t kLargest = 1u << 20;  // the most a fallocate may ask for
// fallocate(fd, mode, offset, len): len is the fourth argument, a 64-bit value (little-endian:
// its low half first).
constexpr std::uint32_t kLenLow = offsetof(seccomp_data, args) + 3 * sizeof(std::uint64_t);
constexpr std::uint32_t kLenHigh = kLenLow + sizeof(std::uint32_t);
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fallocate_runs_out COMMAND [ARG...]\n");
    return 2;
  }
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fallocate, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kLenHigh),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2),  // 4 GiB or more: refused
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kLenLow),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, kLargest, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSPC & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  // Without no_new_privs an unprivileged process may not install a filter.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::fprintf(stderr, "fallocate_runs_out: installing the seccomp filter: %s\n", std::strerror(errno));
    return 2;
  }
  // Proof that the filter holds, before the command relies on it (fd -1: not a call that works).
  if (::syscall(__NR_fallocate, -1, 0, 0L, static_cast<long>(kLargest) + 1) != -1 || errno != ENOSPC) {
    std::fprintf(stderr, "fallocate_runs_out: a large fallocate is not refused with ENOSPC\n");
    return 2;
  }
  ::execvp(argv[1], argv + 1);
  std::fprintf(stderr, "fallocate_runs_out: %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
