#!/usr/bin/env bash
# The main job on the embedded default (an emulated zoned device in a file):
#   1. the zoned-device layer: writes at the write pointer, zone appends, reads, zone actions;
#   2. mkfs.nyads makes a volume on a new emulated device; fsck.nyads checks it.
# As the product grows this becomes: mkfs.nyads, nyadsd, a namespace attached over NBD.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${NYADS_JOBS:-2}" --target nyads-zonectl mkfs.nyads fsck.nyads >/dev/null
export PATH=$PWD/build/zns:$PWD/build/mkfs:$PWD/build/fsck:$PATH
dir=${NYADS_DEMO_DIR:-/tmp/nyads-demo}
mkdir -p "$dir"
run() { echo "\$ $*"; "$@"; }

echo "## 1. A zoned device in a file, driven through nyads' ZonedDevice layer"
scratch=$dir/scratch.img
run nyads-zonectl create "$scratch" --size 1G --zone-size 64M --zone-capacity 60M --force
run nyads-zonectl write "$scratch" 0 --blocks 256 --seed 7
run nyads-zonectl append "$scratch" 0 --blocks 64 --seed 7
run nyads-zonectl read "$scratch" 0 --blocks 320 --verify-seed 7
run nyads-zonectl finish "$scratch" 0
run nyads-zonectl report "$scratch" --count 3

echo
echo "## 2. A nyads volume: mkfs.nyads on a new emulated device, then fsck.nyads"
vol=$dir/zns.img
rm -f "$vol"
run mkfs.nyads -L demo --size 16G --zone-size 64M "$vol"
run fsck.nyads -n -v "$vol"
echo "the volume file takes $(du -h "$vol" | cut -f1) on disk for $(du -h --apparent-size "$vol" | cut -f1) of zones (sparse)"
