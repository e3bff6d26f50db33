#!/usr/bin/env bash
# nyads-zonectl through its real command line: create an emulated device, write, append,
# read back, flush, reopen, and the errors a user sees for bad input.
set -euo pipefail
zonectl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
dev=$dir/dev.zns
fail() { echo "FAIL: $*" >&2; exit 1; }

"$zonectl" create "$dev" --size 64M --zone-size 4M --zone-capacity 3M --max-open 4 --max-active 6 | grep -q "16 zones of 1024 blocks (capacity 768)" || fail "create summary"
"$zonectl" info "$dev" | grep -q "emulated backend" || fail "info"
"$zonectl" write "$dev" 2 --blocks 8 --seed 5 | grep -q "wrote 8 blocks at 2048" || fail "write"
"$zonectl" append "$dev" 2 --blocks 4 --seed 5 | grep -q "appended 4 blocks at 2056" || fail "append"
"$zonectl" read "$dev" 2048 --blocks 12 --verify-seed 5 | grep -q "verified 12 blocks" || fail "verify"
"$zonectl" report "$dev" --zone 2 --count 1 | grep -qE "^2 +closed +2048 +2060" || fail "report after reopen: $("$zonectl" report "$dev" --zone 2 --count 1)"
"$zonectl" finish "$dev" 2
"$zonectl" report "$dev" --zone 2 --count 1 | grep -qE "^2 +full" || fail "finish"
"$zonectl" reset "$dev" --all
"$zonectl" report "$dev" --zone 2 --count 1 | grep -qE "^2 +empty" || fail "reset --all"

# Errors: specific, on stderr, non-zero.
out=$("$zonectl" create "$dev" --size 1G 2>&1) && fail "create over an existing file succeeded"
grep -q "exists" <<<"$out" || fail "no 'exists' in: $out"
out=$("$zonectl" create "$dir/b.zns" --zone-size 4M --zone-capacity 8M 2>&1) && fail "capacity > size accepted"
grep -q "exceeds zone size" <<<"$out" || fail "capacity message: $out"
out=$("$zonectl" create "$dir/c.zns" --size 12Q 2>&1) && fail "bad size accepted"
grep -q "unknown unit" <<<"$out" || fail "size message: $out"
out=$("$zonectl" write "$dev" 99 2>&1) && fail "write to zone 99 accepted"
grep -q "zone 99" <<<"$out" || fail "zone range message: $out"
out=$("$zonectl" info /etc/hostname 2>&1) && fail "a text file opened as a device"
grep -q "not an emulated zoned device" <<<"$out" || fail "unsupported message: $out"
echo "zonectl CLI: all checks passed"
