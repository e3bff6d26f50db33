#!/usr/bin/env bash
# Runs inside the VM (tests/vm/run-vm.sh): mkfs.nyads and fsck.nyads on the kernel's ZNS
# namespace through both kernel backends, and a superblock repair on the real device.
set -uo pipefail
bin=$1
mkfs=$bin/mkfs/mkfs.nyads fsck=$bin/fsck/fsck.nyads zonectl=$bin/zns/nyads-zonectl
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() {
  local want=$1; shift
  out=$("$@" 2>&1); local rc=$?
  echo "\$ $* -> $rc"
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want: $out"
}

# Through the block device (zbd backend), checked through passthrough (nvme backend).
expect_rc 0 "$mkfs" -L vm-zbd /dev/nvme0n1
grep -q "(zbd backend)" <<<"$out" || fail "mkfs backend: $out"
echo "$out"
expect_rc 0 "$fsck" -n /dev/ng0n1
expect_rc 0 "$fsck" -n -v /dev/nvme0n1
echo "$out"

# Again through passthrough, which must refuse the existing volume first.
expect_rc 1 "$mkfs" /dev/ng0n1
grep -q "holds a nyads volume" <<<"$out" || fail "refusal: $out"
expect_rc 0 "$mkfs" -f -L vm-nvme /dev/ng0n1
grep -q "(nvme backend)" <<<"$out" || fail "mkfs backend: $out"
expect_rc 0 "$fsck" -n /dev/nvme0n1
expect_rc 0 "$fsck" --json /dev/ng0n1
grep -q '"label": "vm-nvme"' <<<"$out" || fail "json label: $out"

# Lose the primary superblock on the drive: reset zone 0 and leave garbage there.
"$zonectl" reset /dev/nvme0n1 0 || fail "reset zone 0"
"$zonectl" write /dev/nvme0n1 0 --blocks 1 --seed 9 >/dev/null || fail "garbage write"
expect_rc 4 "$fsck" -n /dev/nvme0n1
grep -q "primary copy has no valid superblock" <<<"$out" || fail "fsck -n: $out"
expect_rc 1 "$fsck" -y /dev/ng0n1
expect_rc 0 "$fsck" -n /dev/nvme0n1
echo "mkfs/fsck on kernel devices: all checks passed"
