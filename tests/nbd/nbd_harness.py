# Shared by nbd_protocol_test.py and nbd_abuse_test.py: a private nyadsd on an emulated device
# in a temporary directory, the nyads CLI, and a small check runner.
#
# Runs with /usr/bin/python3 (Debian's python3-libnbd lives there); stdlib and `nbd` only.
# The daemon is started with PR_SET_PDEATHSIG, so it dies with the test even if the test is
# SIGKILLed (ctest's timeout); normal exits and exceptions kill it in Harness.close().
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import nbd


class TestFailure(Exception):
    pass


class HardFailure(TestFailure):
    """A failure that counts even in a check marked expected-to-fail: the check went wrong in
    a way other than the known bug it is marked for."""


def require(cond, message):
    if not cond:
        raise TestFailure(message)


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: SIGKILL the daemon when the test process goes away.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class Harness:
    """One temporary directory, one emulated device, one nyadsd at a time."""

    def __init__(self, build_dir, prefix):
        self.build = os.path.abspath(build_dir)
        self.mkfs = os.path.join(self.build, "mkfs", "mkfs.nyads")
        self.nyadsd = os.path.join(self.build, "fs", "daemon", "nyadsd")
        self.nyads = os.path.join(self.build, "fs", "daemon", "nyads")
        for exe in (self.mkfs, self.nyadsd, self.nyads):
            if not os.access(exe, os.X_OK):
                raise TestFailure(f"{exe} is missing: build nyadsd, nyads and mkfs.nyads in {self.build}")
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.run_dir = os.path.join(self.dir, "run")
        self.sock = os.path.join(self.run_dir, "nbd.sock")
        self.image = os.path.join(self.dir, "dev.img")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.starts = 0

    # ----- lifecycle ---------------------------------------------------------------------
    def mkfs_device(self, size="2G", zone_size="64M"):
        subprocess.run([self.mkfs, "-q", "--size", size, "--zone-size", zone_size, self.image], check=True, timeout=60)

    def start(self, timeout=20.0):
        require(self.proc is None, "start: a daemon is already running")
        log = open(self.log_path, "ab")
        # Under AddressSanitizer, freed memory sits in a quarantine (256 MiB by default) and
        # counts in RSS: keep it small so the memory-bound checks measure the daemon, not ASan.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8").lstrip(":")
        self.proc = subprocess.Popen([self.nyadsd, "--run-dir", self.run_dir, self.image], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, preexec_fn=_die_with_parent, env=env)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure(f"nyadsd exited with {self.proc.returncode} at start\n{self.log_tail()}")
            if os.path.exists(self.sock) and self._greets():
                return
            time.sleep(0.05)
        raise TestFailure(f"nyadsd did not come up within {timeout}s\n{self.log_tail()}")

    def _greets(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(self.sock)
                got = b""
                while len(got) < 18:
                    k = s.recv(18 - len(got))
                    if not k:
                        return False
                    got += k
                return got[:8] == b"NBDMAGIC"
        except OSError:
            return False

    def stop(self, timeout=30.0):
        """SIGTERM; the daemon must exit 0 (after flushing and checkpointing)."""
        require(self.proc is not None, "stop: no daemon")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise TestFailure(f"nyadsd did not stop within {timeout}s of SIGTERM\n{self.log_tail()}")
        self.proc = None
        require(rc == 0, f"nyadsd exited {rc} on SIGTERM\n{self.log_tail()}")

    def kill(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except Exception:
                pass
            self.proc = None

    def close(self, keep=False):
        self.kill()
        if keep:
            print(f"(keeping {self.dir} for inspection)")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ----- inspection --------------------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def require_alive(self, context=""):
        if not self.alive():
            rc = self.proc.returncode if self.proc is not None else None
            raise TestFailure(f"nyadsd is not running{(' ' + context) if context else ''} (exit status {rc})\n{self.log_tail()}")

    def proc_status(self, key):
        """A field of /proc/PID/status in bytes (VmRSS, VmHWM)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise TestFailure(f"no {key} in /proc/{self.pid}/status")

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_tail(self, lines=25):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace").splitlines()
            return "--- daemon.log (tail) ---\n" + "\n".join(text[-lines:])
        except OSError:
            return "(no daemon log)"

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # ----- the CLI and URIs --------------------------------------------------------------
    def cli(self, *args, check=True):
        r = subprocess.run([self.nyads, "--run-dir", self.run_dir, *args], capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise TestFailure(f"nyads {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def cli_json(self, *args):
        return json.loads(self.cli("--json", *args).stdout)

    def create_ns(self, name, size, block_size=None):
        args = ["ns", "create", name, "--size", size]
        if block_size is not None:
            args += ["--block-size", str(block_size)]
        self.cli(*args)

    def delete_ns(self, name, timeout=5.0):
        """Deletes, retrying while the daemon still counts a just-closed client as attached."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.cli("ns", "delete", name, check=False)
            if r.returncode == 0:
                return
            if "attached" not in r.stderr or time.monotonic() > deadline:
                raise TestFailure(f"nyads ns delete {name}: exit {r.returncode}: {r.stderr.strip()}")
            time.sleep(0.1)

    def uri(self, name):
        return f"nbd+unix:///{name}?socket={self.sock}"


# ----- libnbd with deadlines ---------------------------------------------------------------
# The synchronous libnbd calls block without limit; a daemon that stops answering must fail a
# check, not hang the test until ctest's timeout. These drive the aio API with h.poll.

def _poll_until(h, done, deadline, what):
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure(f"{what}: no answer from nyadsd in time")
        if h.aio_is_dead() or h.aio_is_closed():
            raise TestFailure(f"{what}: the connection died")
        h.poll(max(1, int(left * 1000)))


def aio_connect(uri, deadline, what="connect"):
    h = nbd.NBD()
    h.aio_connect_uri(uri)
    _poll_until(h, lambda: h.aio_is_ready() or h.aio_is_dead() or h.aio_is_closed(), deadline, what)
    if not h.aio_is_ready():
        raise TestFailure(f"{what}: the handshake with {uri} failed")
    return h


def aio_run(h, cookie, deadline, what):
    _poll_until(h, lambda: h.aio_command_completed(cookie), deadline, what)


def quick_io(harness, name, timeout=10.0, offset=None):
    """A healthy client: connect, write 64 KiB (FUA), flush, read it back, within timeout s."""
    deadline = time.monotonic() + timeout
    h = aio_connect(harness.uri(name), deadline, f"healthy client on '{name}': connect")
    try:
        size = h.get_size()
        off = offset if offset is not None else int.from_bytes(os.urandom(4), "little") % (size // 65536) * 65536
        data = os.urandom(65536)
        aio_run(h, h.aio_pwrite(data, off, flags=nbd.CMD_FLAG_FUA), deadline, "healthy client: write")
        aio_run(h, h.aio_flush(), deadline, "healthy client: flush")
        buf = nbd.Buffer(65536)
        aio_run(h, h.aio_pread(buf, off), deadline, "healthy client: read")
        require(bytes(buf.to_bytearray()) == data, f"healthy client: read back at {off} differs from what was written")
        h.aio_disconnect()  # NBD_CMD_DISC; dropping the handle closes the socket
    finally:
        del h


def errno_of(e):
    return errno.errorcode.get(e.errnum, str(e.errnum)) if isinstance(e, nbd.Error) else "?"


def expect_nbd_error(fn, errnum, what):
    """fn() must fail with nbd.Error carrying errnum (the server's NBD error, as an errno)."""
    try:
        fn()
    except nbd.Error as e:
        require(e.errnum == errnum, f"{what}: expected {errno.errorcode[errnum]}, got {errno_of(e)} ({e.string})")
        return e
    raise TestFailure(f"{what}: succeeded, expected {errno.errorcode[errnum]}")


def run_checks(title, checks, harness):
    """Runs (name, fn, xfail) in order. xfail is None, or the reason a check is expected to
    fail (a known server bug): its failure is reported as XFAIL and does not fail the test;
    if it passes, that is reported as XPASS and does fail it, so the marker gets removed."""
    failed, xfailed = [], []
    started = time.monotonic()
    for name, fn, xfail in checks:
        t0 = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            fn()
            if harness.proc is not None and not harness.alive():
                raise HardFailure(f"nyadsd died during this check (exit status {harness.proc.returncode})")
        except Exception as e:  # noqa: BLE001 (a check's failure of any kind)
            detail = str(e) if isinstance(e, TestFailure) else "".join(traceback.format_exception(e)).rstrip()
            if xfail and not isinstance(e, HardFailure):
                print(f"    XFAIL (expected, known server bug: {xfail}): {detail}", flush=True)
                xfailed.append(name)
            else:
                print(f"    FAIL: {detail}", flush=True)
                if harness.proc is not None and not harness.alive():
                    print(harness.log_tail(), flush=True)
                failed.append(name)
                if harness.proc is None or not harness.alive():
                    print("    (the daemon is gone: stopping here)", flush=True)
                    break
            continue
        if xfail:
            print(f"    XPASS: expected to fail ({xfail}) but passed: remove the expected-failure marker", flush=True)
            failed.append(name + " (XPASS)")
        else:
            print(f"    ok ({time.monotonic() - t0:.2f}s)", flush=True)
    print(f"=== {title}: {len(checks)} checks, {len(failed)} failed, {len(xfailed)} expected failures, "
          f"{time.monotonic() - started:.1f}s", flush=True)
    for name in failed:
        print(f"FAILED: {name}", flush=True)
    for name in xfailed:
        print(f"XFAIL: {name}", flush=True)
    return 1 if failed else 0


def main(build_dir_args, prefix, body):
    """body(harness) returns an exit status. Cleans up whatever happens; the temp dir is kept
    on failure when NYADS_KEEP_TMP is set."""
    if len(build_dir_args) != 2:
        print(f"usage: {build_dir_args[0]} BUILD_DIR", file=sys.stderr)
        return 2
    # ctest (or a user) stopping us: turn SIGTERM/SIGINT into a normal exit so cleanup runs.
    def on_signal(signum, frame):
        raise SystemExit(f"interrupted by signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    harness = None
    rc = 1
    try:
        harness = Harness(build_dir_args[1], prefix)
        rc = body(harness)
    except TestFailure as e:
        print(f"FAIL: {e}", flush=True)
        rc = 1
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        if harness is not None:
            harness.close(keep=rc != 0 and bool(os.environ.get("NYADS_KEEP_TMP")))
    print("PASS" if rc == 0 else "FAIL", flush=True)
    return rc
