#!/usr/bin/env bash
# Power cuts of the whole product: nyads on a virtio disk in the guest (emulated zones on a
# plain block device: QEMU 7.2's ZNS drive forgets its zone state when QEMU restarts), a
# namespace attached through ublk with ext4 on it, a file workload syncing batch after batch;
# QEMU is killed (kill -9, no shutdown) while it writes; the VM boots again on the same disk:
# fsck.nyads, nyadsd, attach, mount, and every file synced before the cut has its checksum.
# Repeated ROUNDS times, the cut coming later each round, on the same volume.
#
#   tests/vm/power_cut.sh RUN_VM BUILD [ROUNDS]
set -uo pipefail
run_vm=$1 bin=$2 rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /var/tmp/nyads-power-cut.XXXXXX)
trap 'pkill -9 -f "nyads.work=$scratch/work" 2>/dev/null; rm -rf "$scratch"' EXIT
disk=$scratch/disk.img
truncate -s 1G "$disk"
fail() { echo "FAIL: $*" >&2; exit 1; }
vm() { "$run_vm" --keep-work "$scratch/work" --disk "$disk" --modules "virtio_blk ublk_drv ext4" --timeout 300 -- "$@"; }

for round in $(seq 1 "$rounds"); do
  echo "=== round $round: load, then the power is cut"
  rm -f "$scratch/work/cut-now"
  vm "$here/power_cut_guest.sh" load "$bin" "$round" > "$scratch/load.log" 2>&1 &
  runner=$!
  for _ in $(seq 1200); do [ -e "$scratch/work/cut-now" ] || ! kill -0 $runner 2>/dev/null && break; sleep 0.1; done
  [ -e "$scratch/work/cut-now" ] || { cat "$scratch/load.log"; fail "round $round: the load never got under way"; }
  # Later each round: 0.5 s, 2 s, 3.5 s... after the third synced batch.
  sleep "$(awk -v r="$round" 'BEGIN { print 0.5 + 1.5 * (r - 1) }')"
  pkill -9 -f "nyads.work=$scratch/work" || fail "round $round: no QEMU to kill (the load ended early?)"
  wait $runner
  grep -E "^round|FAIL" "$scratch/load.log"
  grep -q "FAIL" "$scratch/load.log" && fail "round $round: the load failed"
  echo "$(wc -l < "$scratch/work/synced.sums") files synced before the cut"
  echo "=== round $round: boot again, recover, verify"
  vm "$here/power_cut_guest.sh" verify "$bin" || fail "round $round: verify"
done
echo "power cut: all $rounds rounds passed"
