#!/usr/bin/env bash
# Installs every Debian package nyads needs to build, test and run its VM tests.
# Idempotent: safe to run again; apt-get skips what is already installed.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang lld libclang-rt-14-dev
  # style: the sources are checked against .clang-format (scripts/check-format.sh)
  clang-format-14
  # libraries (chosen on purpose: see README)
  libzbd-dev libnvme-dev libjson-c-dev liburing-dev libxxhash-dev libcli11-dev libgtest-dev libgmock-dev
  # tests: the VM runner (QEMU boots Debian's 6.12 kernel with an emulated ZNS drive)
  qemu-system-x86 qemu-utils busybox-static kmod xz-utils cpio
  # tests: real NBD clients and zoned tools
  nbdkit libnbd-bin python3-libnbd fio nbd-client zbd-utils nvme-cli
  # tests: filesystems on the exported devices, and process control for the power-cut driver
  e2fsprogs util-linux procps
  # bench: the kernel's zoned filesystem, compared with ext4 on nyads (bench/vm_compare.sh)
  btrfs-progs
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
