#!/usr/bin/env bash
# Runs inside the VM (tests/vm/run-vm.sh): nyads-zonectl on the kernel's ZNS namespace
# through both kernel backends, the refusal of devices nyads cannot use, and what it says where
# io_uring is forbidden.
set -euo pipefail
zonectl=$1 without_io_uring=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

"$zonectl" info /dev/nvme0n1 | tee /dev/stderr | grep -q "zbd backend" || fail "nvme0n1 is not opened with zbd"
"$zonectl" info /dev/ng0n1 | tee /dev/stderr | grep -q "nvme backend" || fail "ng0n1 is not opened with nvme"
"$zonectl" info /dev/ng0n1 | grep -q "native append" || fail "nvme backend lacks native append"

"$zonectl" reset /dev/nvme0n1 --all
# Written through the block device, read back through passthrough, and the other way round.
"$zonectl" write /dev/nvme0n1 1 --blocks 16 --seed 3 | grep -q "wrote 16 blocks at 2048"
"$zonectl" read /dev/ng0n1 2048 --blocks 16 --verify-seed 3 | grep -q verified
"$zonectl" append /dev/ng0n1 1 --blocks 8 --seed 3 | grep -q "appended 8 blocks at 2064"
"$zonectl" read /dev/nvme0n1 2048 --blocks 24 --verify-seed 3 | grep -q verified
"$zonectl" report /dev/nvme0n1 --zone 1 --count 1 | grep -qE "^1 +implicitly-open +2048 +2072" || fail "report: $("$zonectl" report /dev/nvme0n1 --zone 1 --count 1)"
"$zonectl" finish /dev/ng0n1 1
"$zonectl" report /dev/nvme0n1 --zone 1 --count 1 | grep -qE "^1 +full" || fail "finish through nvme not seen by zbd"
"$zonectl" reset /dev/ng0n1 --all
"$zonectl" report /dev/nvme0n1 --zone 1 --count 1 | grep -qE "^1 +empty" || fail "reset all"

# Devices nyads cannot use are refused with a message that lists what it supports.
out=$("$zonectl" info /dev/nvme0 2>&1) && fail "the controller device was accepted"
grep -q "not an NVMe generic device" <<<"$out" || fail "controller message: $out"
out=$("$zonectl" info /dev/null 2>&1) && fail "/dev/null was accepted"
grep -q "host-managed zoned block device" <<<"$out" || fail "/dev/null message: $out"

# Where io_uring is forbidden (a container's seccomp profile), both kernel backends say so and why.
for dev in /dev/nvme0n1 /dev/ng0n1; do
  out=$("$without_io_uring" "$zonectl" info $dev 2>&1) && fail "$dev opened where io_uring is forbidden"
  grep -q "setting up io_uring: Operation not permitted (io_uring is forbidden here: by a seccomp profile" <<<"$out" || fail "$dev without io_uring: $out"
done
echo "zonectl on kernel devices: all checks passed"
