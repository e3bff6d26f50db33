#!/usr/bin/env bash
# The main job on the embedded default (an emulated zoned device in a file):
#   mkfs.nyads makes a volume; nyadsd serves it; `nyads ns create` makes two namespaces; real
#   NBD clients (nbdinfo, nbdcopy, qemu-io) use them; nyadsd stops cleanly; fsck.nyads checks.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${NYADS_JOBS:-2}" --target mkfs.nyads fsck.nyads nyadsd nyads >/dev/null
export PATH=$PWD/build/mkfs:$PWD/build/fsck:$PWD/build/fs/daemon:$PATH
dir=${NYADS_DEMO_DIR:-/tmp/nyads-demo}
mkdir -p "$dir"
run() { echo "\$ $*"; "$@"; }
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

echo "## 1. A nyads volume on a new emulated zoned device (a file, its 8 GiB reserved on disk)"
vol=$dir/zns.img
rm -f "$vol"
run mkfs.nyads -L demo --size 8G --zone-size 64M "$vol"

echo
echo "## 2. nyadsd serves it: NBD on $dir/run/nbd.sock, control on $dir/run/control.sock"
echo "\$ nyadsd --run-dir $dir/run $vol &"
nyadsd --run-dir "$dir/run" "$vol" 2>"$dir/nyadsd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/run/control.sock" ] && break; sleep 0.1; done
run nyads --run-dir "$dir/run" ns create web --size 4G
run nyads --run-dir "$dir/run" ns create db --size 2G --block-size 512
run nyads --run-dir "$dir/run" ns list
sock="socket=$dir/run/nbd.sock"

echo
echo "## 3. Real NBD clients use the namespaces"
run nbdinfo --list "nbd+unix:///?$sock"
head -c 64M /dev/urandom > "$dir/data.bin"
run nbdcopy "$dir/data.bin" "nbd+unix:///web?$sock"
run nbdcopy "nbd+unix:///web?$sock" "$dir/back.bin"
if cmp -s <(head -c 64M "$dir/back.bin") "$dir/data.bin"; then echo "64 MiB written and read back through NBD: identical"; else echo "MISMATCH"; exit 1; fi
run qemu-io -f raw -c "write -P 0x5a 512 7680" -c "read -P 0x5a 512 7680" -c "read -P 0 1G 64k" "nbd+unix:///db?$sock"
run nyads --run-dir "$dir/run" stats
rm -f "$dir/data.bin" "$dir/back.bin"

echo
echo "## 4. Stop (SIGTERM flushes and checkpoints), then check the volume"
kill -TERM "$pid"
wait "$pid"
pid=
tail -2 "$dir/nyadsd.log"
run fsck.nyads -n "$vol"
echo "the volume file takes $(du -h "$vol" | cut -f1) on disk for $(du -h --apparent-size "$vol" | cut -f1) of zones (reserved at mkfs; --sparse: only what is written)"
