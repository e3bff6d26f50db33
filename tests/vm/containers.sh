#!/usr/bin/env bash
# Runs inside the VM (tests/vm/run-vm.sh --modules "nvme nbd ublk_drv ext4"): nyads the way
# containers use it, on the kernel's ZNS drive (DEVICE: /dev/nvme0n1 through the zoned block
# layer, or /dev/ng0n1 through NVMe passthrough with zone append). The scenarios of the
# end-to-end issue:
#   1. three namespaces, two attached by the kernel's nbd-client (/dev/nbd0, /dev/nbd1), one
#      through ublk; ext4 on each, a file tree with known checksums, sync
#   2. kill -9 nyadsd while all three are being written; fsck.nyads -n clean; restart (the ublk
#      one comes back by itself), nbd-client again; every synced file has its checksum
#   4. a namespace's filesystem filled until ENOSPC: the writer gets "No space left on device",
#      the others keep working; after rm + fstrim the namespace's space is back. And the volume
#      itself filled by a thin namespace larger than the drive, written raw until ENOSPC: the
#      others (promised their size) keep writing new files; after a discard the space is back
#   5. a namespace deleted and made again with the same size reads as zeros
#   6. (nvme0n1) fio --zonemode=zbd write and randwrite jobs with verify on the raw drive
set -uo pipefail
bin=$1 device=${2:-/dev/nvme0n1}
source "$(dirname "$0")/guest_lib.sh"
nbd_attach() {  # NAME /dev/nbdX
  nbd-client -unix $run/nbd.sock -N "$1" -b 4096 "$2" >/tmp/nbd-client.log 2>&1 || fail "nbd-client $1: $(cat /tmp/nbd-client.log)"
  for _ in $(seq 50); do [ "$(cat /sys/block/$(basename "$2")/size)" -gt 0 ] && return 0; sleep 0.1; done
  fail "$2 has no size after attaching $1"
}
write_tree() {  # MOUNT SUMS
  local k
  mkdir -p "$1/tree/small"
  for k in $(seq 1 12); do head -c $((k * 61 * 1024 + k)) /dev/urandom > "$1/tree/f$k.bin"; done
  for k in $(seq 1 60); do echo "file $k of $1" > "$1/tree/small/s$k"; done
  (cd "$1" && find tree -type f -print0 | sort -z | xargs -0 sha256sum) > "$2"
}

if [ "$device" = /dev/nvme0n1 ]; then
  step "6. fio --zonemode=zbd on the raw drive: sequential and random zone writes, verified"
  fio --name=seq --filename=$device --direct=1 --ioengine=libaio --zonemode=zbd --rw=write --bs=64k --iodepth=1 \
      --size=48M --verify=crc32c --verify_fatal=1 --output=/tmp/fio-seq.log >/dev/null 2>&1 || { cat /tmp/fio-seq.log; fail "fio zbd write"; }
  fio --name=rnd --filename=$device --direct=1 --ioengine=psync --zonemode=zbd --rw=randwrite --bs=16k --max_open_zones=4 \
      --offset=64M --size=48M --io_size=24M --verify=crc32c --verify_fatal=1 --output=/tmp/fio-rnd.log >/dev/null 2>&1 || { cat /tmp/fio-rnd.log; fail "fio zbd randwrite"; }
  grep -h "WRITE:" /tmp/fio-seq.log /tmp/fio-rnd.log
fi

step "1. mkfs.nyads $device; three namespaces: two through nbd-client, one through ublk; ext4 and files on each"
"$mkfs" -q -f "$device" || fail "mkfs"
start_daemon
for c in c1 c2 c3; do ctl ns create $c --size 32M >/dev/null || fail "ns create $c"; done
nbd_attach c1 /dev/nbd0
nbd_attach c2 /dev/nbd1
u=$(ctl ns attach c3 --ublk) || fail "attach c3: $u"
devs=(/dev/nbd0 /dev/nbd1 "$u")
for i in 0 1 2; do
  mkfs.ext4 -q -F "${devs[$i]}" || fail "mkfs.ext4 ${devs[$i]}"
  mkdir -p /tmp/m$i
  mount "${devs[$i]}" /tmp/m$i || fail "mount ${devs[$i]}"
  write_tree /tmp/m$i /tmp/sums$i
done
for i in 0 1 2; do sync -f /tmp/m$i || fail "sync ${devs[$i]}"; done
ctl ns list

step "2. kill -9 nyadsd while all three are written; fsck -n; restart; every synced file intact"
for i in 0 1 2; do (for k in $(seq 1 200); do head -c 32768 /dev/urandom > /tmp/m$i/w$k 2>/dev/null || break; done) & done
sleep 2
kill -9 $pid
wait $pid 2>/dev/null
sleep 0.5
for i in 0 1 2; do umount -l /tmp/m$i 2>/dev/null; done
nbd-client -d /dev/nbd0 >/dev/null 2>&1; nbd-client -d /dev/nbd1 >/dev/null 2>&1
wait  # the writers end with I/O errors
"$fsck" -n "$device" > /tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; fail "fsck -n after kill -9"; }
start_daemon
nbd_attach c1 /dev/nbd0
nbd_attach c2 /dev/nbd1
for _ in $(seq 100); do [ -b "$u" ] && [ "$(cat /sys/block/$(basename "$u")/size)" -gt 0 ] && break; sleep 0.1; done
[ -b "$u" ] || fail "c3 did not come back as $u after the restart"
for i in 0 1 2; do
  mount "${devs[$i]}" /tmp/m$i || fail "mount ${devs[$i]} after the restart"
  (cd /tmp/m$i && sha256sum --quiet -c /tmp/sums$i) || fail "synced files on ${devs[$i]} after kill -9"
done
echo "$(cat /tmp/sums0 /tmp/sums1 /tmp/sums2 | wc -l) synced files verified on three namespaces"

step "5. c2 deleted and made again with the same size: it reads as zeros"
umount /tmp/m1 || fail "umount c2"
nbd-client -d /dev/nbd1 >/dev/null 2>&1 || fail "detach c2"
ctl ns delete c2 >/dev/null || fail "delete c2"
ctl ns create c2 --size 32M >/dev/null || fail "create c2 again"
nbd_attach c2 /dev/nbd1
cmp -n $((32 << 20)) /dev/nbd1 /dev/zero || fail "the new c2 does not read as zeros"
nbd-client -d /dev/nbd1 >/dev/null 2>&1
ctl ns delete c2 >/dev/null || fail "delete c2 at the end of scenario 5"

step "4. c4 (thin, larger than the drive, through ublk) filled until ENOSPC; the others keep working; a discard frees it"
ctl ns create c4 --size 1G 2>/tmp/c4.err && fail "a 1 GiB namespace was promised on a 256 MiB drive"
grep -q "needs 1 GiB" /tmp/c4.err || fail "creating a namespace larger than the drive: $(cat /tmp/c4.err)"
ctl ns create c4 --size 1G --thin >/dev/null || fail "create c4 --thin"
u4=$(ctl ns attach c4 --ublk) || fail "attach c4: $u4"
dd if=/dev/urandom of="$u4" bs=1M oflag=direct status=none 2>/tmp/dd.err && fail "c4 took 1 GiB on a 256 MiB drive"
grep -q "No space left on device" /tmp/dd.err || fail "the writer's error is not ENOSPC: $(cat /tmp/dd.err)"
echo "writer: $(tail -1 /tmp/dd.err)"
ctl stats | grep -E "free_zones|user_bytes"
for i in 0 2; do
  head -c $((4 << 20)) /dev/urandom > /tmp/m$i/after-full.bin || fail "write on ${devs[$i]} with c4 full"
  sync -f /tmp/m$i || fail "sync of ${devs[$i]} with c4 full (new blocks within its promise)"
  (cd /tmp/m$i && sha256sum after-full.bin >> /tmp/sums$i)
  (cd /tmp/m$i && sha256sum --quiet -c /tmp/sums$i) || fail "files on ${devs[$i]} with c4 full"
done
blkdiscard "$u4" || fail "discard c4"
dd if=/dev/urandom of="$u4" bs=1M count=32 oflag=direct,sync status=none || fail "c4 cannot write after the discard"
ctl ns detach c4 >/dev/null || fail "detach c4"
ctl ns delete c4 >/dev/null || fail "delete c4"

step "4. c5 (48 MiB, through ublk): ext4 filled until ENOSPC; the others keep working; rm + fstrim give its space back"
allocated() { ctl --json ns show "$1" | sed -n 's/.*"allocated": *\([0-9]*\).*/\1/p'; }
ctl ns create c5 --size 48M >/dev/null || fail "create c5"
u5=$(ctl ns attach c5 --ublk) || fail "attach c5: $u5"
mkfs.ext4 -q -F "$u5" || fail "mkfs.ext4 $u5"
mkdir -p /tmp/m5 && mount "$u5" /tmp/m5 || fail "mount $u5"
write_tree /tmp/m5 /tmp/sums5
dd if=/dev/urandom of=/tmp/m5/fill bs=1M status=none 2>/tmp/dd5.err && fail "a 48 MiB filesystem took an endless file"
grep -q "No space left on device" /tmp/dd5.err || fail "the writer's error is not ENOSPC: $(cat /tmp/dd5.err)"
echo "writer: $(tail -1 /tmp/dd5.err)"
sync -f /tmp/m5 || fail "sync of the full filesystem on c5"
full=$(allocated c5)
for i in 0 2; do
  head -c $((256 * 1024)) /dev/urandom > /tmp/m$i/after-c5-full.bin || fail "write on ${devs[$i]} with c5 full"
  sync -f /tmp/m$i || fail "sync of ${devs[$i]} with c5 full"
  (cd /tmp/m$i && sha256sum --quiet -c /tmp/sums$i) || fail "files on ${devs[$i]} with c5 full"
done
rm /tmp/m5/fill && sync -f /tmp/m5 || fail "rm on the full filesystem"  # freed once the journal commits
fstrim -v /tmp/m5 || fail "fstrim on c5"
freed=$(( full - $(allocated c5) ))
echo "c5: $((full >> 20)) MiB allocated when full, $((freed >> 20)) MiB given back by rm + fstrim"
[ "$freed" -ge $((24 << 20)) ] || fail "rm + fstrim gave back only $freed bytes of c5"
head -c $((16 << 20)) /dev/urandom > /tmp/m5/again.bin && sync -f /tmp/m5 || fail "c5 cannot write after rm + fstrim"
(cd /tmp/m5 && sha256sum --quiet -c /tmp/sums5) || fail "files on c5 after filling it"
umount /tmp/m5 || fail "umount c5"
ctl ns detach c5 >/dev/null || fail "detach c5"
ctl ns delete c5 >/dev/null || fail "delete c5"

step "SIGTERM (filesystems unmounted first): the ublk device removed, clean exit; fsck clean"
for i in 0 2; do umount /tmp/m$i || fail "umount ${devs[$i]}"; done
nbd-client -d /dev/nbd0 >/dev/null 2>&1
kill -TERM $pid
wait $pid || fail "nyadsd exited $? on SIGTERM"
"$fsck" -n "$device" > /tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; fail "fsck at the end"; }
echo "containers on $device: all checks passed"
