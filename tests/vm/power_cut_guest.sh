#!/usr/bin/env bash
# The guest half of tests/vm/power_cut.sh; runs inside the VM with the test disk as /dev/vda.
#   power_cut_guest.sh load BUILD ROUND     mkfs (round 1) or reopen; ext4 on a ublk-attached
#                                          namespace; batches of files, each synced, then its
#                                          checksums recorded on the host; signals the host to
#                                          cut the power once writing is under way, and writes on
#   power_cut_guest.sh verify BUILD        fsck, nyadsd, attach, mount: every recorded file has
#                                          its checksum; clean stop; fsck clean
set -uo pipefail
mode=$1 bin=$2 round=${3:-0}
device=/dev/vda
work=${NYADS_VM_WORK:?run inside tests/vm/run-vm.sh}
source "$(dirname "$0")/guest_lib.sh"
mkdir -p /tmp/mnt
for _ in $(seq 100); do [ -b $device ] && break; sleep 0.1; done  # virtio probes in the background
[ -b $device ] || fail "$device did not appear"

if [ "$mode" = load ]; then
  if [ "$round" -eq 1 ]; then
    "$mkfs" -q --emulate --zone-size 16M $device || fail "mkfs.nyads --emulate $device"
    : > "$work/synced.sums"
  fi
  start_daemon
  [ "$round" -eq 1 ] && { ctl ns create pc --size 384M >/dev/null || fail "ns create"; }
  dev=$(ctl ns attach pc --ublk) || fail "attach: $dev"
  [ "$round" -eq 1 ] && { mkfs.ext4 -q -F "$dev" || fail "mkfs.ext4"; }
  mount "$dev" /tmp/mnt || fail "mount"
  echo "round $round: writing on $dev"
  for batch in $(seq 1 400); do
    d=r$round/b$batch
    mkdir -p /tmp/mnt/$d
    for f in $(seq 1 12); do head -c $(( (RANDOM % 48 + 1) * 4096 + RANDOM % 4096 )) /dev/urandom > /tmp/mnt/$d/f$f; done
    head -c $((256 * 1024)) /dev/urandom > /tmp/mnt/hot.bin  # rewritten every batch: never verified
    sync
    (cd /tmp/mnt && sha256sum $d/*) >> "$work/synced.sums"
    # Writing is under way: the host may cut the power from now on.
    [ "$batch" -eq 3 ] && touch "$work/cut-now"
  done
  echo "round $round: wrote everything before the power cut came (the host did not cut)"
  exit 0
fi

# verify
"$fsck" -n $device > /tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; fail "fsck.nyads -n after the power cut"; }
grep -E "^(WARNING|ERROR)" /tmp/fsck.log | head -3
start_daemon
dev=$(ctl ns attach pc --ublk) || fail "attach after the power cut: $dev"
mount "$dev" /tmp/mnt || fail "mount after the power cut"
(cd /tmp/mnt && sha256sum --quiet -c "$work/synced.sums") || fail "a synced file lost its content"
echo "verified $(wc -l < "$work/synced.sums") synced files after the power cut"
umount /tmp/mnt || fail "umount"
ctl ns detach pc >/dev/null || fail "detach"
kill -TERM $pid
wait $pid || fail "nyadsd exited $? on SIGTERM"
"$fsck" -n $device > /tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; fail "fsck.nyads after a clean stop"; }
echo "power cut: verify passed"
