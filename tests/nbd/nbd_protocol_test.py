#!/usr/bin/python3
# nyadsd's NBD server driven by libnbd (python3-libnbd, hence /usr/bin/python3): the handshake
# with and without structured replies, option mode, export sizes, flags and block sizes, data
# round trips on a 512-byte-block namespace, FUA, flush, trim, write zeroes, base:allocation
# block status, error replies (EINVAL, ENOSPC), 64 requests in flight, multi-conn, isolation
# of namespaces, persistence across a SIGTERM restart, delete and recreate.
#
# Usage: nbd_protocol_test.py BUILD_DIR   (exit 0 on pass)
import errno
import os
import random
import sys
import time

import nbd

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_harness import TestFailure, expect_nbd_error, main, require, run_checks  # noqa: E402

MiB = 1 << 20
MAX_PAYLOAD = 32 * MiB  # what the server advertises as the maximum block size
# Verification reads go in 1 MiB pieces: with nyadsd (and libnbd) allocating a fresh buffer per
# request, 32 MiB reads run about 10x slower per byte than 1 MiB ones on this machine.
VERIFY_CHUNK = 1 * MiB
STATE_HOLE_ZERO = nbd.STATE_HOLE | nbd.STATE_ZERO

# The namespaces: name -> (size, block size). vol512 has room for a 32 MiB write at an offset
# that is not a multiple of 4096.
VOL512 = 96 * MiB
NAMESPACES = {"vol512": (VOL512, 512), "vol4k": (64 * MiB, 4096), "other": (64 * MiB, 4096)}


class State:
    def __init__(self, harness):
        self.d = harness
        self.rng = random.Random(int.from_bytes(os.urandom(8), "little"))
        # What every namespace should read as: updated with every write, trim and zero.
        self.model = {name: bytearray(size) for name, (size, _) in NAMESPACES.items()}
        # The ranges each namespace had written, trimmed or zeroed: [(offset, end)], merged.
        self.touched = {name: [] for name in NAMESPACES}

    def touch(self, name, offset, length):
        spans = sorted(self.touched[name] + [(offset, offset + length)])
        merged = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.touched[name] = merged

    def data(self, n):
        return os.urandom(n)  # random.randbytes is ~10x slower for the 32 MiB writes

    def connect(self, name, structured=True, meta=True, strict=None, block_size=True):
        h = nbd.NBD()
        h.set_handle_name(f"test-{name}")
        h.set_request_structured_replies(structured)
        h.set_request_block_size(block_size)
        if meta:
            h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        if strict is not None:
            h.set_strict_mode(strict)
        h.connect_uri(self.d.uri(name))
        return h

    def write(self, h, name, data, offset, flags=0):
        h.pwrite(data, offset, flags=flags)
        self.model[name][offset:offset + len(data)] = data
        self.touch(name, offset, len(data))

    def erase(self, name, offset, length):
        self.model[name][offset:offset + length] = bytes(length)
        self.touch(name, offset, length)

    def verify_range(self, h, name, offset, length, what):
        got = h.pread(length, offset)
        want = bytes(self.model[name][offset:offset + length])
        if got != want:
            first = next(i for i in range(length) if got[i] != want[i])
            raise TestFailure(f"{what}: '{name}' bytes {offset}..{offset + length} differ from what was written, "
                              f"first at {offset + first} (got {got[first]:#x}, want {want[first]:#x})")

    def verify_all(self, h, name, what):
        """Reads back every byte of the namespace."""
        size = len(self.model[name])
        for off in range(0, size, VERIFY_CHUNK):
            self.verify_range(h, name, off, min(VERIFY_CHUNK, size - off), what)

    def verify_touched(self, h, name, what):
        """Reads back every range ever written, trimmed or zeroed, and the first and last
        64 KiB of every gap between them (which must be zeros)."""
        size = len(self.model[name])
        at = 0
        for a, b in self.touched[name] + [(size, size)]:
            if a > at:  # a gap never written
                for off, ln in ((at, min(65536, a - at)), (max(at, a - 65536), min(65536, a - at))):
                    self.verify_range(h, name, off, ln, what + " (never written)")
            for off in range(a, b, VERIFY_CHUNK):
                self.verify_range(h, name, off, min(VERIFY_CHUNK, b - off), what)
            at = max(at, b)


def close(h):
    """Ends a session politely (NBD_CMD_DISC) and closes the socket."""
    try:
        h.shutdown()
    except nbd.Error:
        pass


def extents(h, count, offset, flags=0):
    """base:allocation extents as [(offset, length, flags)], merged where adjacent and equal."""
    got = []

    def cb(metacontext, off, entries, err):
        if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
            got.append((off, list(entries)))
        return 0

    h.block_status(count, offset, cb, flags=flags)
    require(len(got) == 1, f"block_status at {offset}: {len(got)} base:allocation callbacks, expected 1")
    start, entries = got[0]
    require(start == offset, f"block_status: extents start at {start}, asked for {offset}")
    require(len(entries) >= 2 and len(entries) % 2 == 0, f"block_status at {offset}: entries {entries}")
    out = []
    at = offset
    for i in range(0, len(entries), 2):
        length, state = entries[i], entries[i + 1]
        require(length > 0, f"block_status at {offset}: an extent of length 0 ({entries})")
        if out and out[-1][2] == state and out[-1][0] + out[-1][1] == at:
            out[-1] = (out[-1][0], out[-1][1] + length, state)
        else:
            out.append((at, length, state))
        at += length
    return out, entries


def state_at(exts, offset, length):
    """The one state extents give [offset, offset + length), or None when it is mixed or not covered."""
    states = set()
    covered = offset
    for start, ln, state in exts:
        end = start + ln
        if end <= offset or start >= offset + length:
            continue
        if start > covered:
            return None
        states.add(state)
        covered = max(covered, end)
    if covered < offset + length or len(states) != 1:
        return None
    return states.pop()


def build_checks(s):
    d = s.d

    def setup():
        print("    mkfs.nyads 2 GiB (64 MiB zones), start nyadsd, create " +
              ", ".join(f"{n} ({sz // MiB} MiB, {bs}-byte blocks)" for n, (sz, bs) in NAMESPACES.items()))
        d.mkfs_device()
        d.start()
        for name, (size, bs) in NAMESPACES.items():
            d.create_ns(name, f"{size // MiB}M", bs)
        listed = {x["name"]: (x["size"], x["block_size"]) for x in d.cli_json("ns", "list")}
        require(listed == NAMESPACES, f"nyads ns list: {listed}")

    def handshake_structured():
        print("    connect to vol512 with structured replies and base:allocation requested (the default)")
        h = s.connect("vol512")
        require(h.get_protocol() == "newstyle-fixed", f"protocol {h.get_protocol()}")
        require(h.get_structured_replies_negotiated(), "structured replies were not negotiated")
        flags = h.get_handshake_flags()
        require(flags & nbd.HANDSHAKE_FLAG_FIXED_NEWSTYLE, f"handshake flags {flags:#x} lack FIXED_NEWSTYLE")
        require(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation was not negotiated")
        require(h.get_size() == VOL512, f"size {h.get_size()}")
        data = s.data(65536)
        s.write(h, "vol512", data, 65536)
        require(h.pread(65536, 65536) == data, "round trip with structured replies differs")
        close(h)

    def handshake_simple():
        print("    connect with set_request_structured_replies(False): simple replies for reads and errors")
        h = s.connect("vol512", structured=False, strict=0)
        require(not h.get_structured_replies_negotiated(), "structured replies were negotiated although not requested")
        require(not h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "a meta context without structured replies")
        require(h.get_size() == VOL512, f"size {h.get_size()}")
        data = s.data(3 * 65536)
        s.write(h, "vol512", data, 1 * MiB + 512)
        require(h.pread(len(data), 1 * MiB + 512) == data, "round trip with simple replies differs")
        print("    an out-of-range read answers a simple error reply (EINVAL), and the session goes on")
        expect_nbd_error(lambda: h.pread(4096, VOL512), errno.EINVAL, "simple-reply read past the end")
        require(h.pread(512, 1 * MiB + 512) == data[:512], "read after an error reply differs")
        close(h)

    def opt_mode():
        print("    set_opt_mode(True): NBD_OPT_LIST, NBD_OPT_INFO (full info), NBD_OPT_LIST_META_CONTEXT, NBD_OPT_GO")
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.set_full_info(True)
        h.set_request_block_size(True)
        h.connect_uri(f"nbd+unix:///?socket={d.sock}")
        require(h.aio_is_negotiating(), "not negotiating in opt mode")
        names = []
        n = h.opt_list(lambda name, desc: names.append(name))
        require(n == len(NAMESPACES) and sorted(names) == sorted(NAMESPACES), f"opt_list: {n} {names}")

        print("    opt_info on the empty (default) export name with 3 namespaces: an error")
        h.set_export_name("")
        try:
            h.opt_info()
            raise TestFailure("opt_info of the default export succeeded with several namespaces")
        except nbd.Error:
            pass
        require(h.aio_is_negotiating(), "the session left negotiation after a failed opt_info")

        h.set_export_name("vol4k")
        h.opt_info()
        require(h.get_size() == 64 * MiB, f"opt_info vol4k: size {h.get_size()}")
        require(h.get_canonical_export_name() == "vol4k", f"canonical name {h.get_canonical_export_name()!r}")
        desc = h.get_export_description()
        require("vol4k" in desc, f"description {desc!r}")
        require(h.get_block_size(nbd.SIZE_MINIMUM) == 4096, f"opt_info vol4k: minimum block {h.get_block_size(nbd.SIZE_MINIMUM)}")
        require(h.can_flush() and h.can_fua() and h.can_multi_conn(), "opt_info vol4k: flags")

        contexts = []
        n = h.opt_list_meta_context(lambda name: contexts.append(name))
        require(contexts == ["base:allocation"] and n == 1, f"opt_list_meta_context (all): {n} {contexts}")
        h.add_meta_context("nosuch:context")
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        contexts = []
        n = h.opt_list_meta_context(lambda name: contexts.append(name))
        require(contexts == ["base:allocation"], f"opt_list_meta_context (nosuch:context, base:allocation): {contexts}")

        print("    opt_info and opt_go of an unknown export fail; the negotiation goes on")
        h.set_export_name("nosuch")
        for op in (h.opt_info, h.opt_go):
            try:
                op()
                raise TestFailure(f"{op.__name__} of an unknown export succeeded")
            except nbd.Error:
                pass
            require(h.aio_is_negotiating(), f"the session left negotiation after a failed {op.__name__}")

        h.set_export_name("vol512")
        h.opt_go()
        require(h.aio_is_ready(), "not ready after opt_go")
        require(h.get_size() == VOL512, f"opt_go vol512: size {h.get_size()}")
        require(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "opt_go: base:allocation not negotiated")
        s.verify_range(h, "vol512", 0, 4 * MiB, "after opt_go")
        close(h)

        print("    opt_abort ends the negotiation cleanly")
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_uri(f"nbd+unix:///?socket={d.sock}")
        h.opt_abort()
        require(h.aio_is_closed(), "not closed after opt_abort")

    def sizes_and_flags():
        for name, (size, bs) in NAMESPACES.items():
            print(f"    {name}: size {size}, can_flush/fua/trim/zero/multi_conn, not read-only")
            h = s.connect(name)
            got = {"size": h.get_size(), "flush": h.can_flush(), "fua": h.can_fua(), "trim": h.can_trim(),
                   "zero": h.can_zero(), "multi_conn": h.can_multi_conn(), "read_only": h.is_read_only()}
            want = {"size": size, "flush": True, "fua": True, "trim": True, "zero": True, "multi_conn": True, "read_only": False}
            require(got == want, f"{name}: {got}, expected {want}")
            # Not advertised, so must be off: DF, cache, fast zero.
            require(not h.can_cache() and not h.can_fast_zero(), f"{name}: cache or fast zero advertised")
            close(h)

    def block_sizes():
        for name, (size, bs) in NAMESPACES.items():
            h = s.connect(name, block_size=True)
            got = (h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED), h.get_block_size(nbd.SIZE_MAXIMUM))
            want = (bs, max(bs, 4096), MAX_PAYLOAD)
            print(f"    {name}: (minimum, preferred, maximum) = {got}")
            require(got == want, f"{name}: block sizes {got}, expected {want}")
            close(h)
        print("    without set_request_block_size: no sizes are sent (a client that did not ask may not honour them)")
        h = s.connect("vol512", block_size=False)
        got = h.get_block_size(nbd.SIZE_MINIMUM)
        require(got == 0, f"minimum block size {got} although not requested")
        close(h)

    def unknown_export():
        print("    connect_uri to nbd+unix:///nosuch fails")
        h = nbd.NBD()
        try:
            h.connect_uri(d.uri("nosuch"))
            raise TestFailure("connected to an export that does not exist")
        except nbd.Error as e:
            print(f"    libnbd: {e}")
        print("    and the default export (empty name) is refused while there are several namespaces")
        h = nbd.NBD()
        try:
            h.connect_uri(f"nbd+unix:///?socket={d.sock}")
            raise TestFailure("connected to the default export with 3 namespaces")
        except nbd.Error:
            pass

    def round_trip_512():
        h = s.connect("vol512")
        cases = [(4096, 4096), (512, 512), (8192, 1536), (65536, 7 * 512), (1536, 3 * MiB + 512), (4608, 5 * MiB - 512),
                 (1 * MiB, 8 * MiB + 512), (4 * MiB, 12 * MiB + 2560), (1 * MiB + 512, 20 * MiB - 1024),
                 (32 * MiB, 60 * MiB + 3584), (32 * MiB, 0)]
        t0 = time.monotonic()
        for length, offset in cases:
            print(f"    pwrite/pread {length} bytes at {offset} ({'unaligned' if offset % 4096 else 'aligned'} to 4096)")
            data = s.data(length)
            s.write(h, "vol512", data, offset)
            got = h.pread(length, offset)
            require(got == data, f"{length} bytes at {offset}: read back differs")
        print("    overlapping rewrites keep only the newest bytes; neighbours stay intact")
        for _ in range(40):  # within the first 64 MiB: 93..96 MiB stays never written
            length = s.rng.randrange(1, 256) * 512
            offset = s.rng.randrange(0, (64 * MiB - length) // 512) * 512
            s.write(h, "vol512", s.data(length), offset)
        for _ in range(40):
            length = s.rng.randrange(1, 512) * 512
            offset = s.rng.randrange(0, (VOL512 - length) // 512) * 512
            s.verify_range(h, "vol512", offset, length, "random rewrites")
        print("    the whole namespace matches what was written (and zeros elsewhere)")
        s.verify_all(h, "vol512", "whole namespace")
        print(f"    ({time.monotonic() - t0:.1f}s)")
        close(h)

    def fua_writes():
        for name, off in (("vol512", 40 * MiB + 512), ("vol4k", 2 * MiB)):
            print(f"    pwrite with CMD_FLAG_FUA on {name} at {off}, read back on a new connection")
            h = s.connect(name)
            for i in range(4):
                s.write(h, name, s.data(65536 + i * 4096), off + i * MiB, flags=nbd.CMD_FLAG_FUA)
            close(h)
            h = s.connect(name)
            for i in range(4):
                s.verify_range(h, name, off + i * MiB, 65536 + i * 4096, "FUA write")
            close(h)

    def flush():
        h = s.connect("vol4k")
        print("    flush with nothing written, flush after writes, flush twice")
        h.flush()
        s.write(h, "vol4k", s.data(12288), 3 * MiB)
        h.flush()
        h.flush()
        s.verify_range(h, "vol4k", 3 * MiB, 12288, "after flush")
        close(h)

    def trim():
        for name, off, length in (("vol512", 50 * MiB + 1536, 65536 + 512), ("vol4k", 4 * MiB + 4096, 256 * 1024)):
            h = s.connect(name)
            print(f"    {name}: write {length + 8192} bytes, trim {length} bytes at {off} (leaving data either side), read zeros")
            s.write(h, name, s.data(length + 8192), off - 4096)
            h.trim(length, off)
            s.erase(name, off, length)
            require(h.pread(length, off) == bytes(length), f"{name}: trimmed range does not read as zeros")
            s.verify_range(h, name, off - 4096, length + 8192, "around the trim")
            # The store maps 4 KiB blocks: a trim of part of one zeroes that part but may leave
            # the block allocated (state 0 is always a correct answer). Whole 4 KiB blocks
            # inside the range must be holes.
            inner_start, inner_end = -(-off // 4096) * 4096, (off + length) // 4096 * 4096
            exts, _ = extents(h, length, off)
            require(state_at(exts, inner_start, inner_end - inner_start) == STATE_HOLE_ZERO,
                    f"{name}: trimmed range {inner_start}..{inner_end} block status {exts}")
            print(f"    {name}: block status of the trimmed range: {[(o - off, ln, st) for o, ln, st in exts]} (relative)")
            print(f"    {name}: trim with CMD_FLAG_FUA")
            s.write(h, name, s.data(8192), off + length + 65536)
            h.trim(8192, off + length + 65536, flags=nbd.CMD_FLAG_FUA)
            s.erase(name, off + length + 65536, 8192)
            s.verify_range(h, name, off + length + 65536, 8192, "after FUA trim")
            close(h)

    def write_zeroes():
        h = s.connect("vol4k")
        base = 6 * MiB
        print("    zero (no flags) over written data: reads zeros, block status hole|zero")
        s.write(h, "vol4k", s.data(1 * MiB), base)
        h.zero(256 * 1024, base + 64 * 1024)
        s.erase("vol4k", base + 64 * 1024, 256 * 1024)
        s.verify_range(h, "vol4k", base, 1 * MiB, "zero")
        exts, _ = extents(h, 256 * 1024, base + 64 * 1024)
        require(state_at(exts, base + 64 * 1024, 256 * 1024) == STATE_HOLE_ZERO, f"zeroed range: {exts}")
        print("    zero with CMD_FLAG_NO_HOLE: reads zeros, stays allocated (block status 0)")
        h.zero(128 * 1024, base + 512 * 1024, flags=nbd.CMD_FLAG_NO_HOLE)
        s.erase("vol4k", base + 512 * 1024, 128 * 1024)
        s.verify_range(h, "vol4k", base, 1 * MiB, "zero NO_HOLE")
        exts, _ = extents(h, 128 * 1024, base + 512 * 1024)
        require(state_at(exts, base + 512 * 1024, 128 * 1024) == 0, f"NO_HOLE-zeroed range: {exts}")
        print("    zero with NO_HOLE over never-written space allocates it")
        h.zero(65536, base + 2 * MiB, flags=nbd.CMD_FLAG_NO_HOLE)
        exts, _ = extents(h, 65536, base + 2 * MiB)
        require(state_at(exts, base + 2 * MiB, 65536) == 0, f"NO_HOLE on unwritten space: {exts}")
        require(h.pread(65536, base + 2 * MiB) == bytes(65536), "NO_HOLE on unwritten space: not zeros")
        print("    zero with CMD_FLAG_FUA, and FUA|NO_HOLE")
        s.write(h, "vol4k", s.data(65536), base + 3 * MiB)
        h.zero(32768, base + 3 * MiB, flags=nbd.CMD_FLAG_FUA)
        h.zero(16384, base + 3 * MiB + 32768, flags=nbd.CMD_FLAG_FUA | nbd.CMD_FLAG_NO_HOLE)
        s.erase("vol4k", base + 3 * MiB, 49152)
        s.verify_range(h, "vol4k", base + 3 * MiB, 65536, "FUA zero")
        print("    zero on the 512-byte namespace at an offset not a multiple of 4096")
        h2 = s.connect("vol512")
        s.write(h2, "vol512", s.data(16384), 60 * MiB)
        h2.zero(1536, 60 * MiB + 2560)
        s.erase("vol512", 60 * MiB + 2560, 1536)
        s.verify_range(h2, "vol512", 60 * MiB, 16384, "512-byte zero")
        close(h2)
        close(h)

    def block_status():
        h = s.connect("other")
        size = 64 * MiB
        print("    never-written namespace: one hole|zero (3) answer over the whole export")
        exts, raw = extents(h, size, 0)
        total = sum(ln for _, ln, _ in exts)
        require(all(st == STATE_HOLE_ZERO for _, _, st in exts), f"unwritten: {exts[:8]}")
        require(0 < total <= size, f"unwritten: extents cover {total} bytes of {size}")
        print(f"    ({len(raw) // 2} descriptors covering {total} bytes)")
        print("    written 64 KiB at 1 MiB => 0; either side still 3")
        s.write(h, "other", s.data(65536), 1 * MiB)
        exts, _ = extents(h, 3 * MiB, 0)
        require(state_at(exts, 0, 1 * MiB) == STATE_HOLE_ZERO, f"before the write: {exts}")
        require(state_at(exts, 1 * MiB, 65536) == 0, f"the write: {exts}")
        require(state_at(exts, 1 * MiB + 65536, 1 * MiB) == STATE_HOLE_ZERO, f"after the write: {exts}")
        print("    trimmed half of it => 3 again")
        h.trim(32768, 1 * MiB)
        s.erase("other", 1 * MiB, 32768)
        exts, _ = extents(h, 65536, 1 * MiB)
        require(state_at(exts, 1 * MiB, 32768) == STATE_HOLE_ZERO, f"trimmed half: {exts}")
        require(state_at(exts, 1 * MiB + 32768, 32768) == 0, f"kept half: {exts}")
        print("    CMD_FLAG_REQ_ONE: exactly one extent, no longer than asked")
        for off, count, want in ((0, 4 * MiB, STATE_HOLE_ZERO), (1 * MiB + 32768, 4 * MiB, 0), (1 * MiB + 32768, 8192, 0)):
            _, raw = extents(h, count, off, flags=nbd.CMD_FLAG_REQ_ONE)
            require(len(raw) == 2, f"REQ_ONE at {off}: {len(raw) // 2} extents")
            require(0 < raw[0] <= count and raw[1] == want, f"REQ_ONE at {off} count {count}: {raw}, state expected {want}")
        print("    block status at an unaligned offset on the 512-byte namespace")
        h2 = s.connect("vol512")
        exts, _ = extents(h2, 4096, 93 * MiB + 512)
        require(state_at(exts, 93 * MiB + 512, 4096) == STATE_HOLE_ZERO, f"vol512 unwritten: {exts}")
        close(h2)
        close(h)

    def out_of_range():
        print("    with strict mode off (libnbd sends what it is given): requests past the end")
        for name, (size, bs) in (("vol4k", NAMESPACES["vol4k"]), ("vol512", NAMESPACES["vol512"])):
            h = s.connect(name, strict=0)
            expect_nbd_error(lambda: h.pread(4096, size), errno.EINVAL, f"{name}: read at the end")
            expect_nbd_error(lambda: h.pread(8192, size - 4096), errno.EINVAL, f"{name}: read across the end")
            expect_nbd_error(lambda: h.pread(4096, (1 << 63) + 4096), errno.EINVAL, f"{name}: read at 2^63")
            expect_nbd_error(lambda: h.pread(4096, (1 << 64) - 4096), errno.EINVAL, f"{name}: read whose end wraps 2^64")
            expect_nbd_error(lambda: h.pwrite(bytes(8192), size - 4096), errno.ENOSPC, f"{name}: write across the end")
            expect_nbd_error(lambda: h.pwrite(bytes(4096), size), errno.ENOSPC, f"{name}: write at the end")
            expect_nbd_error(lambda: h.trim(8192, size - 4096), errno.ENOSPC, f"{name}: trim across the end")
            expect_nbd_error(lambda: h.zero(8192, size - 4096), errno.ENOSPC, f"{name}: zero across the end")
            print(f"    {name}: read EINVAL, write/trim/zero ENOSPC; the last block is still usable")
            s.write(h, name, s.data(4096), size - 4096)
            s.verify_range(h, name, size - 4096, 4096, "the last block")
            close(h)
        print("    a read over the advertised maximum (32 MiB + 4096) is refused with EINVAL")
        h = s.connect("vol512", strict=0)
        expect_nbd_error(lambda: h.pread(MAX_PAYLOAD + 4096, 0), errno.EINVAL, "read over the maximum")
        s.verify_range(h, "vol512", 0, 4096, "after the refused read")
        close(h)

    def misaligned():
        print("    vol4k (4096-byte blocks), strict mode off: misaligned offsets and lengths => EINVAL")
        h = s.connect("vol4k", strict=0, block_size=True)
        require(h.get_block_size(nbd.SIZE_MINIMUM) == 4096, "minimum block size")
        before = h.pread(3 * 4096, 8 * MiB)
        expect_nbd_error(lambda: h.pread(512, 8 * MiB), errno.EINVAL, "read of 512 bytes")
        expect_nbd_error(lambda: h.pread(4096, 8 * MiB + 512), errno.EINVAL, "read at +512")
        expect_nbd_error(lambda: h.pwrite(b"x" * 4097, 8 * MiB), errno.EINVAL, "write of 4097 bytes")
        expect_nbd_error(lambda: h.pwrite(b"x" * 4096, 8 * MiB + 100), errno.EINVAL, "write at +100")
        expect_nbd_error(lambda: h.trim(2048, 8 * MiB), errno.EINVAL, "trim of 2048")
        expect_nbd_error(lambda: h.zero(4096, 8 * MiB + 1024), errno.EINVAL, "zero at +1024")
        print("    a zero-length read => EINVAL")
        expect_nbd_error(lambda: h.pread(0, 8 * MiB), errno.EINVAL, "zero-length read")
        require(h.pread(3 * 4096, 8 * MiB) == before, "refused misaligned requests changed the data")
        s.verify_range(h, "vol4k", 8 * MiB, 3 * 4096, "after misaligned requests")
        close(h)

    def in_flight():
        h = s.connect("vol4k")
        depth, block, count = 64, 65536, 384
        base = 16 * MiB
        slots = list(range(count))
        s.rng.shuffle(slots)
        payload = {i: s.data(block) for i in slots}
        print(f"    {count} writes of {block} bytes at distinct offsets, random order, {depth} in flight")

        def pump(make, done):
            pending = {}
            todo = list(slots)
            max_seen = 0
            deadline = time.monotonic() + 60
            while todo or pending:
                while todo and len(pending) < depth:
                    i = todo.pop()
                    cookie, keep = make(i)
                    pending[cookie] = (i, keep)
                max_seen = max(max_seen, h.aio_in_flight())
                if time.monotonic() > deadline:
                    raise TestFailure("in-flight requests did not complete within 60 s")
                h.poll(1000)
                for cookie in [c for c in pending if h.aio_command_completed(c)]:
                    i, keep = pending.pop(cookie)
                    done(i, keep)
            return max_seen

        def make_write(i):
            buf = payload[i]
            return h.aio_pwrite(buf, base + i * block), buf

        max_w = pump(make_write, lambda i, keep: None)
        for i in slots:
            s.model["vol4k"][base + i * block:base + (i + 1) * block] = payload[i]
        s.touch("vol4k", base, count * block)
        s.rng.shuffle(slots)
        bad = []

        def make_read(i):
            buf = nbd.Buffer(block)
            return h.aio_pread(buf, base + i * block), buf

        def check_read(i, buf):
            if bytes(buf.to_bytearray()) != payload[i]:
                bad.append(i)

        max_r = pump(make_read, check_read)
        print(f"    most in flight: {max_w} writes, {max_r} reads")
        require(not bad, f"{len(bad)} reads differ, e.g. block {bad[:5]}")
        require(max_w >= depth and max_r >= depth, f"never had {depth} in flight ({max_w}, {max_r})")
        print("    mixed: 64 in flight of writes, reads, flushes, trims, zeros over disjoint blocks")
        pending = []
        kinds = []
        for k in range(64):
            off = 48 * MiB + k * 65536
            kind = k % 4
            if kind == 0:
                buf = s.data(65536)
                s.model["vol4k"][off:off + 65536] = buf
                s.touch("vol4k", off, 65536)
                pending.append((h.aio_pwrite(buf, off, flags=nbd.CMD_FLAG_FUA), None))
            elif kind == 1:
                buf = nbd.Buffer(65536)
                pending.append((h.aio_pread(buf, off), (buf, off)))
            elif kind == 2:
                pending.append((h.aio_trim(65536, off), None))
                s.erase("vol4k", off, 65536)
            else:
                pending.append((h.aio_zero(65536, off), None))
                s.erase("vol4k", off, 65536)
            kinds.append(kind)
        pending.append((h.aio_flush(), None))
        deadline = time.monotonic() + 30
        waiting = {c for c, _ in pending}
        while waiting:
            require(time.monotonic() < deadline, f"{len(waiting)} of the mixed requests did not complete in 30 s")
            h.poll(1000)
            waiting = {c for c in waiting if not h.aio_command_completed(c)}
        for (c, extra) in pending:
            if extra is not None:
                buf, off = extra
                require(bytes(buf.to_bytearray()) == bytes(s.model["vol4k"][off:off + 65536]), f"mixed read at {off}")
        s.verify_range(h, "vol4k", 48 * MiB, 64 * 65536, "after the mixed batch")
        close(h)

    def multi_conn():
        print("    two connections to vol4k: write on A, flush on B; both read the new data")
        a, b = s.connect("vol4k"), s.connect("vol4k")
        require(a.can_multi_conn() and b.can_multi_conn(), "multi-conn not advertised")
        data = s.data(131072)
        s.write(a, "vol4k", data, 10 * MiB)
        b.flush()
        require(a.pread(len(data), 10 * MiB) == data, "A does not read its own write")
        require(b.pread(len(data), 10 * MiB) == data, "B does not read A's write after B's flush")
        print("    FUA write on B is visible on A; trim on A is visible on B")
        data2 = s.data(65536)
        s.write(b, "vol4k", data2, 10 * MiB + 4096, flags=nbd.CMD_FLAG_FUA)
        s.verify_range(a, "vol4k", 10 * MiB, 131072, "A after B's FUA write")
        a.trim(8192, 10 * MiB)
        a.flush()
        s.erase("vol4k", 10 * MiB, 8192)
        s.verify_range(b, "vol4k", 10 * MiB, 131072, "B after A's trim")
        close(a)
        close(b)

    def isolation():
        print("    vol4k and other: different data at the same offsets; each reads only its own")
        a, b = s.connect("vol4k"), s.connect("other")
        for off in (0, 20 * MiB, 63 * MiB):
            s.write(a, "vol4k", s.data(65536), off)
            s.write(b, "other", s.data(65536), off)
        a.flush()
        b.flush()
        for off in (0, 20 * MiB, 63 * MiB):
            s.verify_range(a, "vol4k", off, 65536, "vol4k")
            s.verify_range(b, "other", off, 65536, "other")
        print("    all of 'other', and what was written to 'vol4k', match their own model (no write leaked across)")
        s.verify_all(b, "other", "other")
        s.verify_touched(a, "vol4k", "vol4k")
        close(a)
        close(b)

    def restart():
        print("    flush everything, SIGTERM (must exit 0), start again, every byte written is back")
        for name in NAMESPACES:
            h = s.connect(name)
            h.flush()
            close(h)
        d.stop()
        require("everything flushed and checkpointed" in d.log_text(), "no clean stop in the daemon log")
        d.start()
        listed = {x["name"]: (x["size"], x["block_size"]) for x in d.cli_json("ns", "list")}
        require(listed == NAMESPACES, f"after restart, nyads ns list: {listed}")
        for name in NAMESPACES:
            h = s.connect(name)
            s.verify_touched(h, name, "after restart")
            close(h)
        print("    unflushed writes acknowledged before a SIGTERM are kept too (the daemon flushes on stop)")
        h = s.connect("vol512")
        s.write(h, "vol512", s.data(1 * MiB), 94 * MiB + 512)
        close(h)
        d.stop()
        d.start()
        h = s.connect("vol512")
        s.verify_range(h, "vol512", 94 * MiB, 2 * MiB, "unflushed write after SIGTERM")
        close(h)

    def delete_recreate():
        print("    'other' has data; delete it, create it again with the same name and size: all zeros")
        h = s.connect("other")
        require(h.pread(65536, 0) != bytes(65536), "'other' has no data to begin with")
        close(h)
        d.delete_ns("other")
        d.create_ns("other", "64M")
        s.model["other"] = bytearray(64 * MiB)
        s.touched["other"] = []
        h = s.connect("other")
        require(h.get_size() == 64 * MiB, f"recreated size {h.get_size()}")
        s.verify_all(h, "other", "recreated namespace")
        exts, _ = extents(h, 64 * MiB, 0)
        require(all(st == STATE_HOLE_ZERO for _, _, st in exts), f"recreated namespace block status: {exts[:8]}")
        close(h)
        print("    the other namespaces are untouched")
        for name in ("vol4k", "vol512"):
            h = s.connect(name)
            s.verify_touched(h, name, "after deleting 'other'")
            close(h)
        print("    and the recreated namespace is still empty after a restart")
        d.stop()
        d.start()
        h = s.connect("other")
        s.verify_range(h, "other", 0, 8 * MiB, "recreated, after restart")
        close(h)

    def alive():
        d.require_alive("at the end")
        print(f"    daemon pid {d.pid} alive; VmRSS {d.proc_status('VmRSS') // MiB} MiB")

    return [
        ("setup: device, daemon, namespaces", setup, None),
        ("handshake with structured replies", handshake_structured, None),
        ("handshake without structured replies", handshake_simple, None),
        ("option mode: list, info, list_meta_context, go, abort", opt_mode, None),
        ("export sizes and transmission flags", sizes_and_flags, None),
        ("block sizes (NBD_INFO_BLOCK_SIZE)", block_sizes, None),
        ("unknown export name is refused", unknown_export, None),
        ("pread/pwrite round trip, 512-byte namespace, 512 B..32 MiB, unaligned to 4096", round_trip_512, None),
        ("FUA writes", fua_writes, None),
        ("flush", flush, None),
        ("trim, then reads zeros", trim, None),
        ("write zeroes, with and without NO_HOLE", write_zeroes, None),
        ("block status (base:allocation), REQ_ONE", block_status, None),
        ("out-of-range requests: EINVAL for reads, ENOSPC for writes", out_of_range, None),
        ("misaligned requests on a 4096-byte namespace: EINVAL", misaligned, None),
        ("64 requests in flight, data verified", in_flight, None),
        ("multi-conn: write on one connection, flush on another", multi_conn, None),
        ("namespaces do not see each other's data", isolation, None),
        ("SIGTERM and restart keep the data", restart, None),
        ("delete and recreate a namespace: reads as zeros", delete_recreate, None),
        ("daemon alive at the end", alive, None),
    ]


def body(harness):
    s = State(harness)
    return run_checks("nbd_protocol", build_checks(s), harness)


if __name__ == "__main__":
    sys.exit(main(sys.argv, "nyads-nbd-protocol-", body))
