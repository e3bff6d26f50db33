#!/usr/bin/env bash
# The main job on the embedded default: build nyads, make an emulated zoned device in a file,
# and drive it through the ZonedDevice layer the way the store will (writes at the write
# pointer, zone appends, reads, flush, a reopen, zone actions).
# As the product grows this becomes: mkfs.nyads, nyadsd, a namespace attached over NBD.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${NYADS_JOBS:-2}" --target nyads-zonectl >/dev/null
zonectl=build/zns/nyads-zonectl
dir=${NYADS_DEMO_DIR:-/tmp/nyads-demo}
mkdir -p "$dir"
dev=$dir/zns.img
run() { echo "\$ ${*/#build\/zns\//}"; "$@"; }

run "$zonectl" create "$dev" --size 4G --zone-size 64M --zone-capacity 60M --max-open 14 --max-active 14 --force
run "$zonectl" info "$dev"
run "$zonectl" write "$dev" 0 --blocks 256 --seed 7
run "$zonectl" append "$dev" 0 --blocks 64 --seed 7
run "$zonectl" append "$dev" 3 --blocks 32 --seed 7
run "$zonectl" read "$dev" 0 --blocks 320 --verify-seed 7
run "$zonectl" report "$dev" --count 4
run "$zonectl" finish "$dev" 3
run "$zonectl" reset "$dev" 0
run "$zonectl" report "$dev" --count 4
echo "the device file takes $(du -h "$dev" | cut -f1) on disk for $(du -h --apparent-size "$dev" | cut -f1) of zones (sparse)"
