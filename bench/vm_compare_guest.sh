#!/usr/bin/env bash
# The guest half of bench/vm_compare.sh: one fio job set after another on the same emulated
# ZNS drive, each part starting from a fresh mkfs. Writes one fio JSON per job to the run's
# shared work directory (results/).
set -uo pipefail
bin=$1 runtime=${2:-8} ramp=${3:-2} nyads_device=${4:-/dev/ng0n1}
out=${NYADS_VM_WORK:?run inside tests/vm/run-vm.sh}/results  # the shared work dir reaches the host
drive=/dev/nvme0n1
mkfs=$bin/mkfs/mkfs.nyads nyadsd=$bin/fs/daemon/nyadsd nyads=$bin/fs/daemon/nyads
run=/run/nyads
mkdir -p "$out"
fail() { echo "FAIL: $*" >&2; [ -f /tmp/nyadsd.log ] && cp /tmp/nyadsd.log "$out/nyadsd.log" && tail -20 /tmp/nyadsd.log >&2; exit 1; }
ctl() { "$nyads" --run-dir $run "$@"; }
region=256M
job() {  # NAME TARGET RW BS QD [extra fio args]
  local name=$1 target=$2 rw=$3 bs=$4 qd=$5
  shift 5
  fio --name="$name" --filename="$target" --direct=1 --ioengine=libaio --rw="$rw" --bs="$bs" --iodepth="$qd" \
      --time_based --runtime="$runtime" --ramp_time="$ramp" --size=$region --randrepeat=0 --norandommap \
      --output-format=json --output="$out/$name.json" "$@" >/tmp/fio.err 2>&1 || { cat /tmp/fio.err "$out/$name.json"; fail "fio $name"; }
  echo "done $name"
}

echo "=== raw: the ZNS namespace itself"
blkzone reset $drive
fio --name=fill --filename=$drive --direct=1 --ioengine=libaio --zonemode=zbd --rw=write --bs=1M --iodepth=8 \
    --size=$region --output-format=json --output="$out/raw-fill.json" >/dev/null 2>&1 || fail "raw fill"
job raw-seqwrite-1M $drive write 1M 8 --zonemode=zbd --offset=$region --size=$region --time_based=0 --runtime=0 --ramp_time=0
job raw-randread-4k-qd1 $drive randread 4k 1
job raw-randread-4k-qd32 $drive randread 4k 32

echo "=== nyads on $nyads_device: one namespace, through ublk and through the kernel's NBD client"
"$mkfs" -q -f $nyads_device || fail "mkfs.nyads"
"$nyadsd" --run-dir $run $nyads_device 2>/tmp/nyadsd.log &
pid=$!
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl ns create b --size 512M >/dev/null || fail "ns create"
u=$(ctl ns attach b --ublk) || fail "attach: $u"
fio --name=pre --filename="$u" --direct=1 --ioengine=libaio --rw=write --bs=1M --iodepth=8 --size=$region >/dev/null 2>&1 || fail "precondition"
for dev in ublk nbd; do
  if [ $dev = nbd ]; then
    nbd-client -unix $run/nbd.sock -N b -b 4096 -C 2 /dev/nbd0 >/dev/null 2>&1 || fail "nbd-client"
    target=/dev/nbd0
  else
    target=$u
  fi
  job $dev-randread-4k-qd1 $target randread 4k 1
  job $dev-randread-4k-qd32 $target randread 4k 32
  job $dev-randwrite-4k-qd1 $target randwrite 4k 1
  job $dev-randwrite-4k-qd32 $target randwrite 4k 32
  job $dev-seqwrite-1M $target write 1M 8
  job $dev-seqread-1M $target read 1M 8
  [ $dev = nbd ] && nbd-client -d /dev/nbd0 >/dev/null 2>&1
done
ctl stats > "$out/nyads-stats.txt"

echo "=== ext4 on a nyads namespace (ublk)"
mkfs.ext4 -q -F "$u" || fail "mkfs.ext4"
mkdir -p /tmp/fs && mount "$u" /tmp/fs || fail "mount ext4"
job ext4-randwrite-4k-qd32 /tmp/fs/f randwrite 4k 32
umount /tmp/fs
ctl ns detach b >/dev/null
kill -TERM $pid; wait $pid

echo "=== btrfs in zoned mode on the raw ZNS namespace"
blkzone reset $drive
mkfs.btrfs -q -f -O zoned -d single -m single $drive || fail "mkfs.btrfs"
mount -t btrfs $drive /tmp/fs || fail "mount btrfs"
job btrfs-randwrite-4k-qd32 /tmp/fs/f randwrite 4k 32
umount /tmp/fs
echo "all jobs done"
