// The kernel's ublk interface (include/uapi/linux/ublk_cmd.h), as nyadsd uses it.
//
// Debian 12's linux-libc-dev carries the 6.1 version of the header: its structures are the
// ones every later kernel still accepts, but it lacks the ioctl-encoded command numbers
// (UBLK_U_*), which kernels built without CONFIG_BLKDEV_UBLK_LEGACY_OPCODES require. They are
// spelled here the way the kernel defines them: _IOWR('u', nr, struct).
#pragma once

#include <linux/ublk_cmd.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace nyads::ublk {

// Control commands, sent to /dev/ublk-control in 128-byte SQEs.
inline constexpr std::uint32_t kCmdAddDev = _IOWR('u', UBLK_CMD_ADD_DEV, struct ublksrv_ctrl_cmd);
inline constexpr std::uint32_t kCmdDelDev = _IOWR('u', UBLK_CMD_DEL_DEV, struct ublksrv_ctrl_cmd);
inline constexpr std::uint32_t kCmdStartDev = _IOWR('u', UBLK_CMD_START_DEV, struct ublksrv_ctrl_cmd);
inline constexpr std::uint32_t kCmdStopDev = _IOWR('u', UBLK_CMD_STOP_DEV, struct ublksrv_ctrl_cmd);
inline constexpr std::uint32_t kCmdSetParams = _IOWR('u', UBLK_CMD_SET_PARAMS, struct ublksrv_ctrl_cmd);
// Kernel 6.9+: DEL_DEV that answers without waiting for the last opener of /dev/ublkbN to go
// (plain DEL_DEV waits for it: a mounted filesystem would hold the answer back forever).
inline constexpr std::uint32_t kCmdDelDevAsync = _IOR('u', 0x14, struct ublksrv_ctrl_cmd);

// I/O commands, sent to /dev/ublkcN.
inline constexpr std::uint32_t kIoFetchReq = _IOWR('u', UBLK_IO_FETCH_REQ, struct ublksrv_io_cmd);
inline constexpr std::uint32_t kIoCommitAndFetchReq = _IOWR('u', UBLK_IO_COMMIT_AND_FETCH_REQ, struct ublksrv_io_cmd);

// ADD_DEV flag (kernel 6.3+): the server speaks ioctl-encoded commands.
inline constexpr std::uint64_t kFlagCmdIoctlEncode = 1ULL << 6;

// The per-queue array of I/O descriptors is mmap'ed from the char device at this stride.
inline constexpr std::size_t kMaxCmdBufBytes =
    ((UBLK_MAX_QUEUE_DEPTH * sizeof(ublksrv_io_desc)) + 4095) & ~std::size_t{4095};

static_assert(sizeof(ublksrv_ctrl_cmd) == 32, "ublksrv_ctrl_cmd is 32 bytes in every kernel");
static_assert(sizeof(ublksrv_ctrl_dev_info) == 64, "ublksrv_ctrl_dev_info is 64 bytes in every kernel");
static_assert(sizeof(ublksrv_io_cmd) == 16, "ublksrv_io_cmd fits a 64-byte SQE");
static_assert(sizeof(ublksrv_io_desc) == 24, "ublksrv_io_desc is 24 bytes");

}  // namespace nyads::ublk
