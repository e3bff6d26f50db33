#!/usr/bin/env bash
# Runs inside the VM (tests/vm/run-vm.sh --modules "nvme ublk_drv ext4"): nyadsd on the
# kernel's ZNS drive exports namespaces as /dev/ublkbN through the kernel's ublk driver.
# Checks the block device the kernel made (size, block sizes, write cache and FUA, discard),
# raw I/O and fio verify at QD32, ext4 with files across detach/attach, a detach refused while
# mounted (and forced), a 512-byte namespace, kill -9 of the daemon (the restarted daemon frees the old
# device and attaches the namespace again at the same /dev/ublkbN: synced files intact), and
# a SIGTERM that removes the devices and leaves a clean volume.
set -uo pipefail
bin=$1
device=${2:-/dev/nvme0n1}
source "$(dirname "$0")/guest_lib.sh"
attr() { cat "/sys/block/$1/$2"; }

step "mkfs.nyads $device, nyadsd, namespace u1 attached through ublk"
"$mkfs" -q "$device" || fail "mkfs"
start_daemon
ctl ns create u1 --size 96M >/dev/null || fail "ns create"
dev=$(ctl ns attach u1 --ublk) || fail "ns attach: $dev"
echo "u1 is $dev"
[ -b "$dev" ] || fail "$dev is not a block device"
b=$(basename "$dev")
[ "$(attr $b size)" -eq $((96 * 2048)) ] || fail "$b size $(attr $b size) sectors"
[ "$(attr $b queue/logical_block_size)" -eq 4096 ] || fail "logical block size $(attr $b queue/logical_block_size)"
[ "$(attr $b queue/write_cache)" = "write back" ] || fail "write cache '$(attr $b queue/write_cache)' (FLUSH would never be sent)"
[ "$(attr $b queue/fua)" -eq 1 ] || fail "fua $(attr $b queue/fua)"
[ "$(attr $b queue/discard_max_bytes)" -gt 0 ] || fail "no discard"
[ "$(attr $b queue/write_zeroes_max_bytes)" -gt 0 ] || fail "no write zeroes"
echo "queues: $(ls /sys/block/$b/mq | wc -l), nr_requests $(attr $b queue/nr_requests)"
ctl ns attach u1 --ublk 2>/tmp/err && fail "a second attach of u1 was accepted"
grep -q "already attached" /tmp/err || fail "second attach: $(cat /tmp/err)"
ctl ns list | grep -q "u1 .*$dev" || fail "ns list does not show $dev"

step "raw I/O: direct writes and reads, FUA, discard, write zeroes"
head -c $((8 << 20)) /dev/urandom > /tmp/pattern
dd if=/tmp/pattern of="$dev" bs=1M oflag=direct,sync status=none || fail "dd write"
cmp <(dd if="$dev" bs=1M count=8 iflag=direct status=none) /tmp/pattern || fail "read back differs"
blkdiscard -o $((4 << 20)) -l $((4 << 20)) "$dev" || fail "blkdiscard"
cmp <(dd if="$dev" bs=1M skip=4 count=4 iflag=direct status=none) <(head -c $((4 << 20)) /dev/zero) || fail "discarded range is not zeros"
blkdiscard -z -o 0 -l $((1 << 20)) "$dev" || fail "blkdiscard -z (write zeroes)"
cmp <(dd if="$dev" bs=1M count=1 iflag=direct status=none) <(head -c $((1 << 20)) /dev/zero) || fail "zeroed range is not zeros"
cmp <(dd if="$dev" bs=1M skip=1 count=3 iflag=direct status=none) <(tail -c +$(((1 << 20) + 1)) /tmp/pattern | head -c $((3 << 20))) || fail "data beside the zeroed range changed"

step "fio: 4 KiB random writes at QD32 with crc32c verify, then a verify pass"
fio --name=v --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k --iodepth=32 --size=32M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --output=/tmp/fio.log >/dev/null 2>&1 || { cat /tmp/fio.log; fail "fio verify"; }
grep -q "err= 0" /tmp/fio.log || { cat /tmp/fio.log; fail "fio reported errors"; }

step "ext4: files, sync; detach refused while mounted; umount, detach, attach again, verify"
mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"
mkdir -p /tmp/mnt
mount "$dev" /tmp/mnt || fail "mount"
mkdir -p /tmp/mnt/tree/a
for i in $(seq 1 16); do head -c $((i * 113 * 1024)) /dev/urandom > /tmp/mnt/tree/f$i.bin; done
for i in $(seq 1 100); do echo "small file $i" > /tmp/mnt/tree/a/s$i; done
(cd /tmp/mnt && find tree -type f -print0 | sort -z | xargs -0 sha256sum) > /tmp/sums
sync
ctl ns detach u1 2>/tmp/err && fail "detach of a mounted device was accepted"
grep -q "is in use (mounted on /tmp/mnt)" /tmp/err || fail "detach while mounted: $(cat /tmp/err)"
umount /tmp/mnt || fail "umount"
ctl ns detach u1 >/dev/null || fail "detach"
[ -e "$dev" ] && fail "$dev still exists after detach"
dev2=$(ctl ns attach u1 --ublk) || fail "attach again: $dev2"
mount "$dev2" /tmp/mnt || fail "mount after reattach"
(cd /tmp/mnt && sha256sum --quiet -c /tmp/sums) || fail "checksums after reattach"
echo "$(wc -l < /tmp/sums) files verified on $dev2"
rm -rf /tmp/mnt/tree/a
fstrim /tmp/mnt || fail "fstrim"

step "a 512-byte namespace"
ctl ns create u2 --size 16M --block-size 512 >/dev/null || fail "ns create u2"
dev3=$(ctl ns attach u2 --ublk) || fail "attach u2: $dev3"
[ "$(attr "$(basename "$dev3")" queue/logical_block_size)" -eq 512 ] || fail "u2 logical block size"
head -c 512 /dev/urandom > /tmp/sector
dd if=/tmp/sector of="$dev3" bs=512 seek=7 oflag=direct status=none || fail "512-byte write"
cmp <(dd if="$dev3" bs=512 skip=7 count=1 iflag=direct status=none) /tmp/sector || fail "512-byte read back"

step "kill -9 nyadsd while writing; restart: the device comes back at $dev2, synced files intact"
(cd /tmp/mnt/tree && for i in $(seq 1 400); do head -c 65536 /dev/urandom > w$i.bin 2>/dev/null || break; done) &
writer=$!
sleep 2
kill -9 $pid
wait $pid 2>/dev/null
kill $writer 2>/dev/null; wait $writer 2>/dev/null
umount -l /tmp/mnt 2>/dev/null || true
for _ in $(seq 50); do [ -e "$dev2" ] || break; sleep 0.1; done
"$fsck" -n "$device" > /tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; fail "fsck -n after kill -9"; }
start_daemon
for _ in $(seq 100); do [ "$(ctl ns show u1 --json 2>/dev/null | grep -o '"ublk": "[^"]*"')" = "\"ublk\": \"$dev2\"" ] && break; sleep 0.1; done
ctl ns list
[ -b "$dev2" ] || fail "u1 was not attached again as $dev2 after the restart: $(grep ublk /tmp/nyadsd.log | tail -5)"
for _ in $(seq 50); do [ "$(attr "$(basename "$dev2")" size)" -gt 0 ] && break; sleep 0.1; done
mount "$dev2" /tmp/mnt || fail "mount after restart"
(cd /tmp/mnt && sha256sum --quiet -c <(grep -v ' tree/a/' /tmp/sums)) || fail "synced files after kill -9"
umount /tmp/mnt || fail "umount"

step "detach --force of a mounted device answers (the mount keeps the dead disk, not the daemon)"
mkfs.ext4 -q -F "$dev3" || fail "mkfs.ext4 on u2"
mkdir -p /tmp/mnt2 && mount "$dev3" /tmp/mnt2 || fail "mount u2"
timeout 30 "$nyads" --run-dir $run ns detach u2 --force >/dev/null || fail "detach --force of a mounted device did not answer"
umount -l /tmp/mnt2 2>/dev/null
ctl ns show u2 | grep -q "ublk *-" || fail "u2 still shows a ublk device"

step "SIGTERM: ublk devices removed, clean exit, fsck clean"
kill -TERM $pid
wait $pid || fail "nyadsd exited $? on SIGTERM"
ls /dev/ublkb* 2>/dev/null && fail "ublk devices left after SIGTERM"
"$fsck" -n "$device" > /tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; fail "fsck after SIGTERM"; }
grep -c "" /tmp/nyadsd.log >/dev/null
echo "ublk export: all checks passed"
