#!/bin/bash
# nyadsd with real NBD clients: nbdinfo, nbdcopy, qemu-img, qemu-io, fio (nbd engine, verify
# at QD32), the nyads CLI; a kill -9 during flushed writes; a stale socket; a second daemon;
# SIGTERM and fsck; a daemon where io_uring is forbidden; the warning about a sparse file. Usage: nbd_clients_test.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
MKFS=$BUILD/mkfs/mkfs.nyads FSCK=$BUILD/fsck/fsck.nyads NYADSD=$BUILD/fs/daemon/nyadsd NYADS=$BUILD/fs/daemon/nyads
PY=/usr/bin/python3
T=$(mktemp -d /tmp/nyads-nbd.XXXXXX)
PID=
cleanup() {
  for p in "$PID" "${PID2:-}" "${PID3:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$T/daemon.log" ] && tail -20 "$T/daemon.log" >&2; exit 1; }
step() { echo "--- $*"; }
SOCK=$T/run/nbd.sock
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }
cli() { "$NYADS" --run-dir "$T/run" "$@"; }

# One field of the JSON object on stdin.
json_field() { $PY -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Waits for a daemon started in the background to list its exports on SOCKET (an old socket
# file is not enough: a killed daemon leaves one). Fails the test, naming it WHAT, when
# process PID exits first or TRIES tenths of a second pass (default 100); with LOG, shows
# its last lines.
wait_until_serving() {
  local sock=$1 pid=$2 what=$3 tries=${4:-100} log=${5:-}
  for _ in $(seq "$tries"); do
    if [ -S "$sock" ] && nbdinfo --list "nbd+unix:///?socket=$sock" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || fail "$what exited at start${log:+: $(tail -5 "$log")}"
    sleep 0.1
  done
  fail "$what did not come up${log:+: $(tail -5 "$log")}"
}

start_daemon() {
  "$NYADSD" --run-dir "$T/run" "$T/dev.img" 2>>"$T/daemon.log" &
  PID=$!
  wait_until_serving "$SOCK" "$PID" nyadsd
}

step "mkfs a 2 GiB emulated device, start nyadsd"
"$MKFS" --size 2G --zone-size 64M "$T/dev.img" > "$T/mkfs.out"
start_daemon
# What mkfs said one namespace can be promised is what the daemon says a new one can have.
cli --json status | $PY -c '
import json, sys
def size(b):  # as format_size writes it
    units, v, u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], float(b), 0
    while v >= 1024 and u < 5: v, u = v / 1024, u + 1
    return ("%.0f %s" if v == int(v) else "%.2f %s") % (v, units[u])
said = open(sys.argv[1]).read()
want = "one namespace can be promised " + size(json.load(sys.stdin)["new_namespace_max_bytes"]) + " "
assert want in said, (want, said)' "$T/mkfs.out" || fail "mkfs and the daemon disagree on what a namespace can be promised"

step "nyads ns create / list / show, and its errors"
cli ns create alpha --size 256M >/dev/null
cli ns create beta --size 128M --block-size 512 >/dev/null
cli ns create alpha --size 1G 2>"$T/err" && fail "a duplicate name was accepted"
grep -q "exists already" "$T/err" || fail "duplicate: $(cat "$T/err")"
rc=0; cli ns create 'bad/name' --size 1G 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "a bad name gave exit $rc"
rc=0; cli ns create gamma --size 12345 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "multiple of 4096" "$T/err" || fail "a bad size: rc $rc $(cat "$T/err")"
rc=0; cli ns create gamma --size lots 2>"$T/err" || rc=$?
[ $rc -eq 2 ] || fail "an unparsable size gave exit $rc"
rc=0; cli ns show nosuch 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "no namespace 'nosuch'" "$T/err" || fail "show of a missing namespace: rc $rc $(cat "$T/err")"
rc=0; cli ns create huge --size 8G 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "namespace 'huge' needs 8 GiB, but only" "$T/err" || fail "a namespace the volume cannot promise: rc $rc $(cat "$T/err")"
cli ns create huge --size 8G --thin >/dev/null || fail "a thin namespace larger than the volume was refused"
cli --json ns list | $PY -c 'import json,sys; l=json.load(sys.stdin); assert [(x["name"],x["size"],x["block_size"],x["provisioning"]) for x in l]==[("alpha",268435456,4096,"promised"),("beta",134217728,512,"promised"),("huge",8589934592,4096,"thin")], l'
cli ns delete huge >/dev/null
cli --json status | $PY -c 'import json,sys; s=json.load(sys.stdin); assert s["namespaces"]==2 and s["backend"]=="emulated" and s["promised_bytes"]==384<<20 and s["unpromised_bytes"]==s["space_bytes"]-(384<<20), s'
# new_namespace_max_bytes is what ns create can promise now (a new namespace's write stream
# takes a zone of headroom, so it is less than unpromised_bytes): exactly that fits, no more.
max=$(cli --json status | $PY -c 'import json,sys; s=json.load(sys.stdin); assert 0 < s["new_namespace_max_bytes"] < s["unpromised_bytes"], s; print(s["new_namespace_max_bytes"])')
rc=0; cli ns create over --size $((max + 4096)) 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "counting the zone of headroom a new namespace's writes take" "$T/err" || fail "one block over new_namespace_max_bytes: rc $rc $(cat "$T/err")"
cli ns create fits --size "$max" >/dev/null || fail "a namespace of new_namespace_max_bytes was refused"
cli ns delete fits >/dev/null
rc=0; "$NYADS" --run-dir "$T/nowhere" ns list 2>"$T/err" || rc=$?
[ $rc -eq 3 ] && grep -q "cannot reach nyadsd" "$T/err" || fail "no daemon: rc $rc $(cat "$T/err")"
# An empty name is an argument of its own: refused, and the next argument does not take its
# place ("force" was once deleted as the name).
cli ns create force --size 4M >/dev/null
rc=0; cli ns delete "" --force 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "ns delete of an empty name: rc $rc $(cat "$T/err")"
cli ns show force >/dev/null || fail "ns delete '' --force deleted the namespace 'force'"
cli ns create "" --size 4K --thin 2>"$T/err" && fail "a namespace with an empty name was made"
grep -q "namespace name is empty" "$T/err" || fail "empty name: $(cat "$T/err")"
cli ns delete force >/dev/null
# A request line ending in CR LF (socat, nc -C): the CR is not part of the last argument.
$PY - "$T/run/control.sock" <<'PYEOF' || fail "a control request ending in CR LF"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"v1 ns-show alpha\r\n")
answer = b""
while not answer.endswith(b"\n\n"):
    chunk = s.recv(4096)
    if not chunk: break
    answer += chunk
assert answer.startswith(b"ok\nname=alpha "), answer
PYEOF
# --json keeps text as text: names that look like numbers, and bytes that are not UTF-8.
cli ns create 007 --size 4K --thin >/dev/null
cli --json ns show 007 | $PY -c 'import json,sys; r=json.load(sys.stdin); assert r["name"]=="007" and r["size"]==4096, r'
cli ns delete 007 >/dev/null
rc=0; cli ns show $'a\e[31mRED' 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -qF "no namespace 'a\x1b[31mRED'" "$T/err" || fail "an escape sequence in a message: rc $rc $(cat -v "$T/err")"
rc=0; cli --json ns show $'a\xffb' >"$T/out" 2>/dev/null || rc=$?
[ $rc -eq 1 ] && $PY -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$T/out" ||
  fail "--json of a missing name that is not UTF-8: rc $rc $(cat -v "$T/out")"
# The largest size NBD clients can address (they read it as signed 64-bit), and no more.
rc=0; cli ns create huge --size 9223372036854775808 --thin 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "the most NBD clients can address" "$T/err" || fail "a 2^63-byte namespace: rc $rc $(cat "$T/err")"
cli ns create huge --size 9223372036854771712 --thin >/dev/null
[ "$(nbdinfo --size "$(uri huge)")" = 9223372036854771712 ] || fail "nbdinfo's size of the largest namespace"
cli ns delete huge >/dev/null

step "nbdinfo lists the exports with their sizes"
nbdinfo --list --json "$(uri '')" > "$T/list.json"
$PY - "$T/list.json" <<'PYEOF'
import json, sys
exports = {e["export-name"]: e for e in json.load(open(sys.argv[1]))["exports"]}
assert exports["alpha"]["export-size"] == 256 << 20, exports["alpha"]
assert exports["beta"]["export-size"] == 128 << 20, exports["beta"]
assert exports["alpha"]["can_flush"] and exports["alpha"]["can_fua"] and exports["alpha"]["can_multi_conn"]
PYEOF

step "nbdcopy in and out, checksums compared"
head -c 96M /dev/urandom > "$T/in.bin"
nbdcopy "$T/in.bin" "$(uri alpha)"
nbdcopy "$(uri alpha)" "$T/out.bin"
[ "$(head -c 96M "$T/out.bin" | sha256sum)" = "$(sha256sum < "$T/in.bin")" ] || fail "nbdcopy round trip differs"
[ "$(tail -c +$((96 * 1048576 + 1)) "$T/out.bin" | tr -d '\0' | wc -c)" -eq 0 ] || fail "unwritten space is not zeros"

step "qemu-img convert and qemu-io on the 512-byte namespace"
head -c 8M /dev/urandom > "$T/q.bin"
qemu-img convert -n -f raw -O raw "$T/q.bin" "$(uri beta)"
qemu-img convert -f raw -O raw "$(uri beta)" "$T/q.out"
cmp <(head -c 8M "$T/q.out") "$T/q.bin" || fail "qemu-img round trip differs"
qemu-io -f raw -c "write -P 0xab 1536 2560" -c "read -P 0xab 1536 2560" -c "read -P 0 100M 4096" "$(uri beta)" > "$T/qio" 2>&1
grep -q "Pattern verification failed" "$T/qio" && fail "qemu-io pattern: $(cat "$T/qio")"
grep -c "^read" "$T/qio" | grep -q 2 || fail "qemu-io: $(cat "$T/qio")"

step "fio nbd engine, 4 KiB random writes at QD32 with crc32c verify"
fio --name=verify --ioengine=nbd --uri="$(uri alpha)" --rw=randwrite --bs=4k --iodepth=32 --size=64M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --output-format=json --output="$T/fio.json" >/dev/null 2>"$T/fio.err" || fail "fio: $(cat "$T/fio.err")"
$PY -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; assert j["error"]==0, j["error"]; assert j["read"]["io_bytes"]==64<<20, j["read"]["io_bytes"]' "$T/fio.json"

step "fio nbd engine, 1 MiB sequential writes at QD8 with crc32c verify, received while copied out"
# Each batch's writes are copied into the device file by the emulated device's writing thread
# while the loop takes in the next requests' bytes (doc/design.md): what it took in then is
# counted, and every block must still verify.
fio --name=seqverify --ioengine=nbd --uri="$(uri alpha)" --rw=write --bs=1m --iodepth=8 --size=192M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --output-format=json --output="$T/fio.json" >/dev/null 2>"$T/fio.err" || fail "fio: $(cat "$T/fio.err")"
$PY -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; assert j["error"]==0, j["error"]; assert j["read"]["io_bytes"]==192<<20, j["read"]["io_bytes"]' "$T/fio.json"
overlap=$(cli --json status | json_field bytes_received_while_writing)
[ "$overlap" -gt 0 ] || fail "nothing was received while the writing thread copied 192 MiB of 1 MiB writes (bytes_received_while_writing: $overlap)"
echo "    received while writing: $overlap bytes"

step "two namespaces see only their own data"
$PY - "$SOCK" <<'PYEOF'
import nbd, sys
sock = sys.argv[1]
def h(name):
    x = nbd.NBD(); x.connect_uri(f"nbd+unix:///{name}?socket={sock}"); return x
a, b = h("alpha"), h("beta")
a.pwrite(b"A" * 65536, 0); a.flush()
assert b.pread(65536, 0) != b"A" * 65536
b.pwrite(b"B" * 4096, 0)
assert a.pread(4096, 0) == b"A" * 4096
PYEOF

step "delete is refused while attached, allowed with --force"
$PY -c '
import nbd, sys, time, subprocess
h = nbd.NBD(); h.connect_uri(sys.argv[1])
r = subprocess.run([sys.argv[2], "--run-dir", sys.argv[3], "ns", "delete", "beta"], capture_output=True, text=True)
assert r.returncode == 1 and "attached" in r.stderr, (r.returncode, r.stderr)
' "$(uri beta)" "$NYADS" "$T/run"
cli ns create scratch --size 64M >/dev/null
$PY -c '
import nbd, sys, subprocess
h = nbd.NBD(); h.connect_uri(sys.argv[1])
r = subprocess.run([sys.argv[2], "--run-dir", sys.argv[3], "ns", "delete", "scratch", "--force"], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
try:
    h.pread(4096, 0); raise SystemExit("the forced-off client still reads")
except nbd.Error:
    pass
' "$(uri scratch)" "$NYADS" "$T/run"

step "kill -9 during flushed writes; restart; every flushed write is intact"
# A flush every 4 writes (272 KiB: the commit runs at once), and in every other stretch of
# 400 writes a flush every 200 (13.6 MiB: the writeback thread writes it out first).
$PY - "$(uri alpha)" > "$T/flushed" 2>/dev/null <<'PYEOF' &
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
for i in range(100000):
    h.pwrite(bytes([i % 251]) * 65536 + i.to_bytes(8, "little") * 512, (i % 3000) * 69632 % (256 << 20) // 4096 * 4096)
    every = 4 if i // 400 % 2 == 0 else 200
    if i % every == every - 1:
        h.flush(); print(i, flush=True)
PYEOF
WRITER=$!
sleep 3
writebacks=$(cli --json status | json_field writebacks_before_commit)
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=
[ "$writebacks" -ge 1 ] || fail "no flush went through the writeback thread before the kill (writebacks_before_commit: $writebacks)"
wait "$WRITER" 2>/dev/null || true
LAST=$(tail -1 "$T/flushed")
[ -n "$LAST" ] && [ "$LAST" -ge 3 ] || fail "the writer flushed nothing before the kill"
[ -S "$SOCK" ] || fail "the killed daemon's socket file should be left behind (stale)"
start_daemon  # over the stale socket
$PY - "$(uri alpha)" "$LAST" <<'PYEOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1]); last = int(sys.argv[2])
latest = {}
for i in range(last + 1):
    latest[(i % 3000) * 69632 % (256 << 20) // 4096 * 4096] = i
for off, i in latest.items():
    got = h.pread(69632, off)
    want = bytes([i % 251]) * 65536 + i.to_bytes(8, "little") * 512
    if got != want:
        # A later unflushed write may have landed too: it must be a whole write of a later i.
        j = int.from_bytes(got[65536:65544], "little")
        assert j > last and got == bytes([j % 251]) * 65536 + j.to_bytes(8, "little") * 512, (off, i, j)
print(f"{len(latest)} flushed writes verified (last flushed #{last})")
PYEOF

step "nyadsd's flags: socket modes and TCP ports it cannot honour are refused"
for mode in -1 0666junk 1777 8; do
  rc=0; "$NYADSD" --run-dir "$T/run2" --socket-mode "$mode" "$T/dev2.img" 2>"$T/err" || rc=$?
  [ $rc -eq 2 ] && grep -q "is not a file mode (octal digits, at most 0777)" "$T/err" || fail "--socket-mode $mode: rc $rc $(cat "$T/err")"
done
for port in 99999 :10809 ten; do
  "$MKFS" -q --sparse --size 1G "$T/dev2.img"
  rc=0; "$NYADSD" --run-dir "$T/run2" --tcp "$port" "$T/dev2.img" 2>"$T/err" || rc=$?
  [ $rc -ne 0 ] && grep -q -- "--tcp $port: " "$T/err" || fail "--tcp $port: rc $rc $(cat "$T/err")"
  rm -f "$T/dev2.img"
done
[ -e "$T/run2/nbd.sock" ] && fail "a refused start left its socket"
# --tcp 0: a port the kernel picks, and status says which; SIGHUP (its terminal closed) stops
# the daemon as SIGTERM does.
"$MKFS" -q --sparse --size 1G "$T/dev2.img"
"$NYADSD" --run-dir "$T/run2" --tcp 0 "$T/dev2.img" 2>"$T/d2.log" &
PID2=$!
wait_until_serving "$T/run2/nbd.sock" "$PID2" "nyadsd --tcp 0" 100 "$T/d2.log"
"$NYADS" --run-dir "$T/run2" ns create t --size 4M >/dev/null
where=$("$NYADS" --run-dir "$T/run2" --json status | json_field nbd)
port=$(sed -n 's/.* tcp:127\.0\.0\.1:\([0-9]*\)$/\1/p' <<<"$where")
[ -n "$port" ] && [ "$port" -ne 0 ] || fail "status does not name the TCP port bound: $where"
[ "$(nbdinfo --size "nbd://127.0.0.1:$port/t")" = 4194304 ] || fail "no export on the TCP port status named ($where)"
kill -HUP "$PID2"; rc=0; wait "$PID2" || rc=$?; PID2=
[ $rc -eq 0 ] && grep -q "received Hangup: stopping" "$T/d2.log" && grep -q "everything flushed and checkpointed" "$T/d2.log" ||
  fail "SIGHUP: rc $rc $(cat "$T/d2.log")"
rm -f "$T/dev2.img"

step "writes never flushed: at a quiet moment the writeback thread, then the idle commit"
# 96 MiB written and no flush. A quiet second later (--checkpoint-interval 1) the writeback
# thread writes the file back (64 MiB or more unflushed), so the idle commit's device flush
# does not hold the loop; then the commit. Polled every 2 s, as a control request is activity
# too. Killed after the commit, the daemon comes back with the writes.
"$MKFS" -q --sparse --size 4G "$T/dev3.img"
"$NYADSD" --run-dir "$T/run3" --checkpoint-interval 1 "$T/dev3.img" 2>"$T/d3.log" &
PID3=$!
wait_for_nbd3() { wait_until_serving "$T/run3/nbd.sock" "$PID3" "nyadsd on dev3.img" 300 "$T/d3.log"; }
wait_for_nbd3
"$NYADS" --run-dir "$T/run3" ns create quiet --size 128M >/dev/null || fail "ns create quiet on dev3.img failed"
n3() { "$NYADS" --run-dir "$T/run3" --json "$1" | json_field "$2"; }
flushes=$(n3 stats flushes)
$PY - "nbd+unix:///quiet?socket=$T/run3/nbd.sock" <<'PYEOF' || fail "the unflushed writes failed"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
for i in range(96):
    h.pwrite(bytes([i + 1]) * (1 << 20), i << 20)
h.shutdown()
PYEOF
committed=0
for _ in $(seq 15); do
  sleep 2
  [ "$(n3 stats flushes)" -gt "$flushes" ] && { committed=1; break; }
done
[ $committed -eq 1 ] || fail "no idle commit within 30 s of quiet after 96 MiB unflushed"
writebacks=$(n3 status writebacks_before_commit)
[ "$writebacks" -ge 1 ] || fail "the idle commit after 96 MiB unflushed ran with no writeback first (writebacks_before_commit: $writebacks)"
kill -9 "$PID3"; wait "$PID3" 2>/dev/null || true
"$NYADSD" --run-dir "$T/run3" "$T/dev3.img" 2>>"$T/d3.log" &
PID3=$!
wait_for_nbd3  # over the socket file the killed daemon left
$PY - "nbd+unix:///quiet?socket=$T/run3/nbd.sock" <<'PYEOF' || fail "the writes the idle commit made durable are not all back after kill -9: $(tail -5 "$T/d3.log")"
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
for i in range(96):
    assert h.pread(1 << 20, i << 20) == bytes([i + 1]) * (1 << 20), i
PYEOF
kill -TERM "$PID3"; rc=0; wait "$PID3" || rc=$?; PID3=
[ $rc -eq 0 ] || fail "nyadsd on dev3.img exited $rc on SIGTERM: $(tail -5 "$T/d3.log")"
rm -f "$T/dev3.img"

step "a second daemon on the same device is refused"
rc=0; "$NYADSD" --run-dir "$T/run2" "$T/dev.img" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] && grep -qi "in use\|locked\|another" "$T/err" || fail "second daemon: rc $rc $(cat "$T/err")"

cli ns delete beta >/dev/null  # one namespace left: the default export for socket activation below

step "SIGTERM stops cleanly; fsck is clean"
kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?; PID=
[ $rc -eq 0 ] || fail "nyadsd exited $rc on SIGTERM"
grep -q "everything flushed and checkpointed" "$T/daemon.log" || fail "no clean stop in the log"
[ -e "$SOCK" ] && fail "the socket file was left after a clean stop"
"$FSCK" -n "$T/dev.img" > "$T/fsck.out" 2>&1 || fail "fsck after stop: $(cat "$T/fsck.out")"
# Where io_uring is forbidden (Docker's default seccomp profile), or rings can be made but
# nothing submitted to them runs: the daemon serves, its reads done at once instead, and says
# so at start. serve_without_io_uring WARNING [--enter]
serve_without_io_uring() {
  local warning=$1; shift
  "$BUILD/tests/nbd/without_io_uring" "$@" "$NYADSD" --run-dir "$T/run" "$T/dev.img" 2>"$T/nu.log" &
  PID=$!
  wait_until_serving "$SOCK" "$PID" "nyadsd without io_uring ($*)"
  head -c 24M /dev/urandom > "$T/nu.bin"
  nbdcopy "$T/nu.bin" "$(uri alpha)" || fail "nbdcopy in, without io_uring ($*)"
  nbdcopy "$(uri alpha)" "$T/nu.out" || fail "nbdcopy out, without io_uring ($*)"
  cmp <(head -c 24M "$T/nu.out") "$T/nu.bin" || fail "round trip without io_uring ($*) differs"
  kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?; PID=
  [ $rc -eq 0 ] || fail "nyadsd without io_uring ($*) exited $rc on SIGTERM"
  "$FSCK" -n "$T/dev.img" > "$T/fsck.out" 2>&1 || fail "fsck after the run without io_uring ($*): $(cat "$T/fsck.out")"
  grep -q "nyadsd: warning: $T/dev.img: reads run one at a time, without io_uring ($T/dev.img: $warning" "$T/nu.log" ||
    fail "no warning at start without io_uring ($*): $(cat "$T/nu.log")"
}
step "where io_uring is forbidden (Docker's default seccomp profile)"
serve_without_io_uring "setting up io_uring: Operation not permitted (io_uring is forbidden here"
step "where rings can be made but nothing submitted to them runs"
rc=0; "$BUILD/tests/nbd/without_io_uring" --enter true || rc=$?
if [ $rc -eq 77 ]; then
  echo "(skipped: this host refuses io_uring_setup already)"
else
  serve_without_io_uring "a read through io_uring failed: Operation not permitted" --enter
fi

step "a sparse device file larger than its filesystem's free space: a warning at start"
grep -q "warning: .*sparse file" "$T/daemon.log" && fail "a warning about the reserved device: $(grep warning "$T/daemon.log")"
big=$(($(df --output=avail -B1 "$T" | tail -1) + (64 << 30)))
"$MKFS" -q --sparse --size "$big" --zone-size 256M "$T/sparse.img" || fail "mkfs --sparse"
"$NYADSD" --run-dir "$T/run-sparse" "$T/sparse.img" 2>"$T/sparse.log" &
PID=$!
for _ in $(seq 300); do grep -q "nyadsd: serving" "$T/sparse.log" && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$PID"; wait "$PID" || true; PID=
grep -q "nyadsd: warning: $T/sparse.img is a sparse file: .* are not allocated, and its filesystem has .* free; writes will fail once that fills (fallocate -l [0-9]* $T/sparse.img reserves the rest" "$T/sparse.log" ||
  fail "no warning about the sparse file: $(cat "$T/sparse.log")"
rm "$T/sparse.img"

step "socket activation: nbdinfo -- [ nyadsd DEVICE ] (LISTEN_FDS)"
size=$(nbdinfo --size -- [ "$NYADSD" "$T/dev.img" ] 2>/dev/null) || fail "nbdinfo with socket activation"
[ "$size" = $((256 << 20)) ] || fail "socket activation: size $size, want the one namespace left, alpha (256 MiB)"
echo "PASS"
