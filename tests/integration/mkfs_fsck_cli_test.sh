#!/usr/bin/env bash
# mkfs.nyads and fsck.nyads through their command lines: exit codes as documented, messages
# that say what is wrong, --json that parses, repair of a damaged primary superblock.
set -uo pipefail
mkfs=$1 fsck=$2 fallocate_runs_out=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
vol=$dir/vol.img
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() {  # expect_rc CODE CMD...: runs CMD, checks its exit status, keeps its output in $out
  local want=$1; shift
  out=$("$@" 2>&1); local rc=$?
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want: $out"
}

# mkfs on a new file: an emulated device of the geometry asked for.
expect_rc 0 "$mkfs" -L web-db -U 10325476-98ba-4cde-8011-223344556677 --size 1G --zone-size 16M --zone-capacity 12M "$vol"
grep -q "made a nyads volume on $vol (emulated backend)" <<<"$out" || fail "mkfs summary: $out"
grep -q "uuid        10325476-98ba-4cde-8011-223344556677" <<<"$out" || fail "uuid: $out"
grep -q "64 zones of 16 MiB (capacity 12 MiB)" <<<"$out" || fail "geometry: $out"
grep -q "^usable" <<<"$out" && grep -q "^overhead" <<<"$out" || fail "usable/overhead: $out"

# A new file has its whole size reserved on its filesystem; with --sparse, only what is written.
allocated() { echo $(($(stat -c '%b * %B' "$1"))); }
size=$(stat -c %s "$vol")
[ "$(allocated "$vol")" -ge "$size" ] || fail "the new file is not reserved: $(allocated "$vol") of $size bytes allocated"
expect_rc 0 "$mkfs" -q --sparse --size 1G "$dir/sparse.img"
[ "$(allocated "$dir/sparse.img")" -lt $((4 << 20)) ] || fail "--sparse allocated $(allocated "$dir/sparse.img") bytes"
rm "$dir/sparse.img"
# More than the filesystem has free: refused before anything is allocated, with the way out.
too_big=$(( $(df --output=avail -B1 "$dir" | tail -1) + (64 << 30) ))
expect_rc 1 "$mkfs" --size "$too_big" "$dir/huge.img"
grep -q "huge.img: cannot reserve .*: its filesystem has .* free for it (a smaller --size, or --sparse" <<<"$out" || fail "no room: $out"
[ ! -e "$dir/huge.img" ] || fail "a refused mkfs left its file behind"
# -f over a volume, asking for more than there is room for: refused, the volume untouched.
expect_rc 1 "$mkfs" -f --size "$too_big" "$vol"
grep -q "cannot reserve" <<<"$out" || fail "no room for -f: $out"
expect_rc 0 "$fsck" -n "$vol"
grep -q "clean" <<<"$out" || fail "the volume was harmed by a refused mkfs -f: $out"
# -f where the reservation fails past that check (a quota, extent metadata): refused, and the
# volume is still there, whole.
before=$(sha256sum <"$vol")
expect_rc 1 "$fallocate_runs_out" "$mkfs" -f --size 2G "$vol"
grep -q "vol.img: reserving .*: No space left on device" <<<"$out" || fail "a failed reservation: $out"
[ "$(sha256sum <"$vol")" = "$before" ] || fail "a mkfs -f whose reservation failed changed the volume"
expect_rc 0 "$fsck" -n "$vol"
grep -q "clean" <<<"$out" || fail "the volume was harmed by a mkfs -f whose reservation failed: $out"
# The same on a new file: refused, and no file left.
expect_rc 1 "$fallocate_runs_out" "$mkfs" --size 1G "$dir/unreserved.img"
[ ! -e "$dir/unreserved.img" ] || fail "a mkfs whose reservation failed left its file behind"

# fsck: clean, in text and JSON.
expect_rc 0 "$fsck" -n "$vol"
grep -q "clean" <<<"$out" || fail "fsck clean: $out"
expect_rc 0 "$fsck" --json "$vol"
/usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["exit_code"]==0 and r["label"]=="web-db" and r["problems"]==[], r' "$out" || fail "json: $out"

# mkfs refuses what it would destroy, and says how to go on.
expect_rc 1 "$mkfs" "$vol"
grep -q "holds a nyads volume (uuid 10325476-98ba-4cde-8011-223344556677, label 'web-db'); mkfs.nyads -f overwrites it" <<<"$out" || fail "refusal: $out"
expect_rc 1 "$mkfs" --size 2G "$vol"
grep -q "its geometry is fixed" <<<"$out" || fail "geometry refusal: $out"
echo "precious" > "$dir/notes.txt"
expect_rc 1 "$mkfs" "$dir/notes.txt"
grep -q "exists and is not an emulated zoned device" <<<"$out" || fail "plain file refusal: $out"
[ "$(cat "$dir/notes.txt")" = precious ] || fail "mkfs touched a file it refused"
expect_rc 0 "$mkfs" -n "$dir/new.img"
grep -q "dry run" <<<"$out" && [ ! -e "$dir/new.img" ] || fail "dry run created a file: $out"
expect_rc 1 "$mkfs" -U not-a-uuid "$dir/x.img"
grep -q "UUID 'not-a-uuid'" <<<"$out" || fail "uuid message: $out"
expect_rc 1 "$mkfs" --size 12Q "$dir/x.img"
grep -q "unknown unit 'Q'" <<<"$out" || fail "size message: $out"
[ ! -e "$dir/x.img" ] || fail "a failed mkfs left a file behind"
expect_rc 1 "$mkfs" --bogus "$vol"
# 0 zones for a role would mean "automatic" inside: refused, not quietly taken as the default.
for role in --journal-zones:2 --checkpoint-zones:2 --reserved-zones:1; do
  expect_rc 1 "$mkfs" "${role%:*}" 0 "$dir/x.img"
  grep -q -- "${role%:*}: Value 0 not in range ${role#*:}" <<<"$out" || fail "$role 0: $out"
done
[ ! -e "$dir/x.img" ] || fail "a refused layout left a file behind"
expect_rc 0 "$mkfs" -V
grep -q "mkfs.nyads 0" <<<"$out" || fail "version: $out"
expect_rc 0 "$mkfs" -f -q -L again "$vol"
[ -z "$out" ] || fail "-q printed: $out"

# Damage the primary superblock in the file (zone 0 begins at the device's data offset).
data_offset=$(/usr/bin/python3 -c 'import struct,sys; print(struct.unpack_from("<Q", open(sys.argv[1],"rb").read(80), 72)[0])' "$vol")
printf '\xff\xff\xff\xff' | dd of="$vol" bs=1 seek=$((data_offset + 200)) conv=notrunc status=none
expect_rc 4 "$fsck" -n "$vol"
grep -q "ERROR \[superblock, zone 0 offset 0\] the primary copy has no valid superblock" <<<"$out" || fail "fsck -n report: $out"
grep -q "fixable with -y" <<<"$out" || fail "fixable: $out"
expect_rc 4 "$fsck" "$vol" </dev/null   # no terminal: checks only
expect_rc 1 "$fsck" -y "$vol"
grep -q "FIXED" <<<"$out" || fail "fsck -y report: $out"
expect_rc 0 "$fsck" -n "$vol"

# A damaged zone-table slot of the emulated device: it opens with the other, and fsck says so
# (had the damaged one been the newer, what was flushed after the other is out of sight).
table_offset=$(/usr/bin/python3 -c 'import struct,sys; print(struct.unpack_from("<Q", open(sys.argv[1],"rb").read(80), 56)[0])' "$vol")
cp "$vol" "$dir/slot.img"
printf '\xff' | dd of="$dir/slot.img" bs=1 seek=$((table_offset + 40)) conv=notrunc status=none
expect_rc 0 "$fsck" -n "$dir/slot.img"
grep -q "WARNING \[device\] $dir/slot.img: zone table slot 0 (.*); opened with the other slot, generation [0-9]*. If the damaged one was newer" <<<"$out" ||
  fail "no word of a damaged zone-table slot: $out"
rm "$dir/slot.img"
# A damaged emulated-device header: mkfs says how to make the file anew, and does so.
cp "$vol" "$dir/header.img"
printf '\xff' | dd of="$dir/header.img" bs=1 seek=30 conv=notrunc status=none
expect_rc 1 "$mkfs" -f "$dir/header.img"
grep -q "emulated device header: checksum mismatch (mkfs.nyads -f --size SIZE, with the zone options it was made with, makes the file anew" <<<"$out" ||
  fail "a damaged header: $out"
expect_rc 0 "$mkfs" -q -f --size 1G --zone-size 16M --zone-capacity 12M "$dir/header.img"
expect_rc 0 "$fsck" -n "$dir/header.img"
rm "$dir/header.img"

# Operational and usage errors.
expect_rc 8 "$fsck" -n "$dir/missing.img"
grep -q "No such file" <<<"$out" || fail "missing device: $out"
expect_rc 8 "$fsck" -n "$dir/notes.txt"
expect_rc 16 "$fsck" -n -y "$vol"
expect_rc 16 "$fsck"
expect_rc 8 "$fsck" --json "$dir/missing.img"
/usr/bin/python3 -c 'import json,sys; assert json.loads(sys.argv[1])["exit_code"]==8' "$out" || fail "json for an operational error: $out"
echo "mkfs/fsck CLI: all checks passed"
