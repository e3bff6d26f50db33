#!/usr/bin/env bash
# Runs inside the VM (tests/vm/run-vm.sh --modules "nvme nbd"): nyadsd on the kernel's ZNS
# drive, a namespace attached by the kernel's own NBD driver through nbd-client, ext4 on it,
# files written and synced, detached, attached again (with two connections: multi-conn), and
# verified; then a clean stop and fsck.
set -uo pipefail
bin=$1
device=${2:-/dev/nvme0n1}
source "$(dirname "$0")/guest_lib.sh"

step "mkfs.nyads $device, nyadsd, a namespace"
"$mkfs" -q "$device" || fail "mkfs"
start_daemon
ctl ns create c1 --size 96M || fail "ns create"

attach() {
  nbd-client -unix $run/nbd.sock -N c1 -b 4096 "$@" /dev/nbd0 >/tmp/nbd-client.log 2>&1 || fail "nbd-client: $(cat /tmp/nbd-client.log)"
  for _ in $(seq 50); do [ "$(cat /sys/block/nbd0/size)" -gt 0 ] && return 0; sleep 0.1; done
  fail "/dev/nbd0 has no size after attaching"
}
detach() { nbd-client -d /dev/nbd0 >/dev/null 2>&1 || fail "nbd-client -d"; }

step "nbd-client attaches /dev/nbd0; mkfs.ext4; mount; write files; sync; umount; detach"
attach
[ "$(cat /sys/block/nbd0/size)" -eq $((96 * 2048)) ] || fail "nbd0 size $(cat /sys/block/nbd0/size) sectors"
mkfs.ext4 -q -F /dev/nbd0 || fail "mkfs.ext4"
mkdir -p /tmp/mnt
mount /dev/nbd0 /tmp/mnt || fail "mount"
mkdir -p /tmp/mnt/tree/a /tmp/mnt/tree/b
for i in $(seq 1 24); do
  head -c $((i * 97 * 1024)) /dev/urandom > /tmp/mnt/tree/$((i % 2 == 0 ? 0 : 1))$i.bin
done
for i in $(seq 1 200); do echo "small file $i" > /tmp/mnt/tree/a/s$i; done
(cd /tmp/mnt && find tree -type f -print0 | sort -z | xargs -0 sha256sum) > /tmp/sums
sync
umount /tmp/mnt || fail "umount"
detach

step "attach again with two connections (multi-conn); every file has its checksum"
attach -C 2
mount /dev/nbd0 /tmp/mnt || fail "mount again"
(cd /tmp/mnt && sha256sum --quiet -c /tmp/sums) || fail "checksums after reattach"
echo "$(wc -l < /tmp/sums) files verified"
rm -rf /tmp/mnt/tree/a
fstrim -v /tmp/mnt || fail "fstrim"
umount /tmp/mnt
detach
ctl ns list

step "SIGTERM; fsck.nyads clean"
kill -TERM $pid
wait $pid || fail "nyadsd exited $? on SIGTERM"
"$fsck" -n "$device" || fail "fsck"
echo "kernel NBD client on nyads: all checks passed"
