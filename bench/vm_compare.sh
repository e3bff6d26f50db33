#!/usr/bin/env bash
# nyads against the kernel's own answers, in one VM run on one emulated ZNS drive (issue 6's
# comparison): fio 4 KiB random read/write at QD1 and QD32 and 1 MiB sequential on /dev/ublkbN
# and on /dev/nbdN (the same namespace, the kernel's nbd-client with 2 connections); ext4 on
# nyads against btrfs in zoned mode, one 4 KiB random-write QD32 job on a file in each; and the
# drive itself (4 KiB random reads, 1 MiB sequential writes with --zonemode=zbd).
#
#   bench/vm_compare.sh [--build DIR] [--out DIR] [--runtime 8] [--ramp 2] [--nyads-device /dev/ng0n1]
#
# nyadsd runs on --nyads-device: /dev/ng0n1 (NVMe passthrough, native zone append: the fast
# path) or /dev/nvme0n1 (the zoned block layer: writes one at a time per zone).
#
# Software emulation (QEMU TCG, no KVM here) makes every figure slow and noisy: compare within
# one run, as ratios. The report is OUT/report.md (also printed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build out=/var/tmp/nyads-vm-compare runtime=8 ramp=2 nyads_device=/dev/ng0n1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --ramp) ramp=$2; shift 2 ;;
    --nyads-device) nyads_device=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--out DIR] [--runtime S] [--ramp S] [--nyads-device DEV]" >&2; exit 2 ;;
  esac
done
build=$(realpath "$build"); mkdir -p "$out"; out=$(realpath "$out")
rm -rf "$out/vm"
"$here/../tests/vm/run-vm.sh" --keep-work "$out/vm" --zns-size 1G --zone-size 8M --zone-capacity 8M --max-open 14 --max-active 14 \
  --modules "nvme nbd ublk_drv ext4 btrfs" --timeout 1500 -- "$here/vm_compare_guest.sh" "$build" "$runtime" "$ramp" "$nyads_device"
rm -f "$out/vm/zns.img"
/usr/bin/python3 "$here/vm_compare_report.py" "$out/vm/results" | tee "$out/report.md"
