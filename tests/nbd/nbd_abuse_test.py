#!/usr/bin/python3
# nyadsd's NBD server against misbehaving clients, speaking the protocol by hand over raw
# sockets (NetworkBlockDevice/nbd doc/proto.md; every integer big-endian): bad handshakes,
# bad and oversized options, framing errors after NBD_OPT_GO, unknown commands, stalled and
# greedy clients, and a storm of half-finished connections. After each case a healthy libnbd
# client must still read and write (within a deadline) and the daemon must be alive; at the
# end its RSS must have stayed under 512 MiB.
#
# Usage: nbd_abuse_test.py BUILD_DIR   (exit 0 on pass)
import os
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbd_harness import HardFailure, TestFailure, main, quick_io, require, run_checks  # noqa: E402

MiB = 1 << 20

# proto.md constants
NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 1, 2, 3, 5, 6, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT, OPT_EXTENDED_HEADERS = 9, 10, 11
REP_ACK, REP_SERVER, REP_INFO, REP_META_CONTEXT = 1, 2, 3, 4
REP_ERR_UNSUP, REP_ERR_POLICY, REP_ERR_INVALID, REP_ERR_UNKNOWN = (1 << 31) + 1, (1 << 31) + 2, (1 << 31) + 3, (1 << 31) + 6
INFO_EXPORT = 0
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
CMD_FLAG_FUA = 1
REPLY_FLAG_DONE = 1
REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_ERROR = 1, (1 << 15) + 1
NBD_EINVAL = 22

EXPORT = "vol"
EXPORT_SIZE = 64 * MiB

# Server bugs this test found, now fixed (each check below guards one):
#  - a session the server ended without a reply was never closed (no EOF for the client);
#  - a turn took 256 READs whatever their length (1 GiB of buffers for 4 MiB READs);
#  - unparsed input was unbounded for a client pipelining requests without reading replies.

EOF_WAIT = 2.0      # seconds a server gets to close a connection it must close
HEALTH_TIMEOUT = 8.0  # seconds a healthy client gets for connect + write + flush + read
RSS_LIMIT = 512 * MiB


class Raw:
    """A hand-driven NBD client on the daemon's unix socket."""

    def __init__(self, path, timeout=5.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, data):
        self.s.sendall(data)

    def recv_exact(self, n, what="reply"):
        buf = b""
        while len(buf) < n:
            try:
                k = self.s.recv(n - len(buf))
            except socket.timeout:
                raise HardFailure(f"{what}: no answer (got {len(buf)} of {n} bytes)")
            if not k:
                raise HardFailure(f"{what}: the server closed the connection (got {len(buf)} of {n} bytes)")
            buf += k
        return buf

    # --- handshake ---
    def greeting(self):
        magic, opt, flags = struct.unpack(">QQH", self.recv_exact(18, "greeting"))
        require(magic == NBDMAGIC and opt == IHAVEOPT, f"greeting magic {magic:#x} {opt:#x}")
        require(flags & FLAG_FIXED_NEWSTYLE, f"greeting flags {flags:#x} lack FIXED_NEWSTYLE")
        return flags

    def start(self, client_flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        self.greeting()
        self.send(struct.pack(">I", client_flags))
        return self

    def option(self, opt, data=b""):
        self.send(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def option_reply(self):
        magic, opt, rtype, length = struct.unpack(">QIII", self.recv_exact(20, "option reply header"))
        if magic != REPLY_MAGIC:
            raise HardFailure(f"option reply magic {magic:#x}, expected {REPLY_MAGIC:#x}")
        payload = self.recv_exact(length, "option reply payload")
        return opt, rtype, payload

    def option_replies(self, opt):
        """Replies to one option up to the final one (ACK or an error)."""
        out = []
        while True:
            ropt, rtype, payload = self.option_reply()
            if ropt != opt:
                raise HardFailure(f"reply for option {ropt}, expected {opt}")
            out.append((rtype, payload))
            if rtype == REP_ACK or rtype & (1 << 31):
                return out

    @staticmethod
    def go_data(name, infos=()):
        n = name.encode()
        return struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) + b"".join(struct.pack(">H", i) for i in infos)

    def go(self, name=EXPORT, structured=False):
        if structured:
            self.option(OPT_STRUCTURED_REPLY)
            r = self.option_replies(OPT_STRUCTURED_REPLY)
            require(r[-1][0] == REP_ACK, f"NBD_OPT_STRUCTURED_REPLY: {r}")
        self.option(OPT_GO, self.go_data(name))
        replies = self.option_replies(OPT_GO)
        require(replies[-1][0] == REP_ACK, f"NBD_OPT_GO {name}: final reply {replies[-1][0]:#x} {replies[-1][1][4:]!r}")
        size = None
        for rtype, payload in replies:
            if rtype == REP_INFO and struct.unpack(">H", payload[:2])[0] == INFO_EXPORT:
                size, flags = struct.unpack(">QH", payload[2:12])
        require(size == EXPORT_SIZE, f"NBD_OPT_GO {name}: size {size}")
        return self

    # --- transmission ---
    @staticmethod
    def request(cmd, cookie, offset, length, flags=0, magic=REQUEST_MAGIC):
        return struct.pack(">IHHQQI", magic, flags, cmd, cookie, offset, length)

    def simple_reply(self, cookie, what):
        magic, err, got_cookie = struct.unpack(">IIQ", self.recv_exact(16, what))
        if magic != SIMPLE_REPLY_MAGIC:
            raise HardFailure(f"{what}: reply magic {magic:#x}, expected a simple reply {SIMPLE_REPLY_MAGIC:#x}")
        if got_cookie != cookie:
            raise HardFailure(f"{what}: reply cookie {got_cookie}, expected {cookie}")
        return err

    def chunk(self, what):
        magic, flags, ctype, cookie, length = struct.unpack(">IHHQI", self.recv_exact(20, what))
        if magic != STRUCTURED_REPLY_MAGIC:
            raise HardFailure(f"{what}: chunk magic {magic:#x}")
        return flags, ctype, cookie, self.recv_exact(length, what + " payload")

    def expect_closed(self, timeout=EOF_WAIT, what="the server"):
        """The server must close the connection (EOF or reset) within timeout, sending nothing."""
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(4096)
        except socket.timeout:
            raise TestFailure(f"{what}: the connection is still open {timeout:.0f}s later (no EOF)")
        except ConnectionResetError:
            return
        if data:
            raise HardFailure(f"{what}: the server sent {len(data)} bytes ({data[:32]!r}) instead of closing")


def build_checks(d):
    st = {"raw": [], "peak_rss": 0, "baseline_fds": None}

    def sample_rss():
        if d.alive():
            st["peak_rss"] = max(st["peak_rss"], d.proc_status("VmRSS"))

    def healthy(what):
        def fn():
            d.require_alive(f"after {what}")
            print(f"    a libnbd client writes 64 KiB (FUA), flushes and reads it back within {HEALTH_TIMEOUT:.0f}s; daemon alive")
            quick_io(d, EXPORT, timeout=HEALTH_TIMEOUT)
            d.require_alive(f"after {what}")
            sample_rss()
        return (f"healthy after {what}", fn, None)

    def fresh():
        r = Raw(d.sock)
        st["raw"].append(r)
        return r

    def setup():
        print(f"    mkfs.nyads 2 GiB, start nyadsd, create '{EXPORT}' ({EXPORT_SIZE // MiB} MiB)")
        d.mkfs_device()
        d.start()
        d.create_ns(EXPORT, f"{EXPORT_SIZE // MiB}M")
        quick_io(d, EXPORT)
        st["baseline_fds"] = d.open_fds()
        sample_rss()

    # ----- turns ---------------------------------------------------------------------------
    def pipelined_turns():
        # A turn takes at most 256 requests; the rest wait, already received, for the next
        # turns, which run at once. Those are not idle moments: the store's idle work (a
        # commit, with a device flush) must not run between them. (It did after every such
        # turn: a client that kept more than a turn queued paid an fdatasync per turn.)
        # 1000 writes in one send (a send buffer large enough to hold them) make three or four
        # turns of one receive, each leaving writes to commit: two flushes or more without the
        # fix. A genuine idle moment, once they are all done, commits once.
        r = fresh().start().go()
        r.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * MiB)
        count, size = 1000, 4096
        data = [bytes([i % 251]) * size for i in range(count)]
        before = int(d.cli_json("stats")["flushes"])
        print(f"    {count} WRITEs of {size} bytes in one send, no flush (client send buffer "
              f"{r.s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 1024} KiB)")
        r.send(b"".join(r.request(CMD_WRITE, 1 + i, i * size, size) + data[i] for i in range(count)))
        for i in range(count):
            require(r.simple_reply(1 + i, f"write {i}") == 0, f"write {i} failed")
        flushes = int(d.cli_json("stats")["flushes"]) - before
        print(f"    device flushes while they ran: {flushes} (a quiet moment may add one)")
        require(flushes <= 1, f"the device was flushed {flushes} times between the turns (no client flush)")
        r.send(r.request(CMD_READ, 5000, 7 * size, size))
        require(r.simple_reply(5000, "read back") == 0 and r.recv_exact(size, "read back data") == data[7], "read back differs")
        r.close()

    def writes_before_the_commit():
        # A turn runs what needs no commit first and answers it, then flushes and FUA writes
        # with the commit: plain writes sent with a flush do not wait for the device flush.
        # Sent in one send, so one turn takes them all: WRITE 1, FLUSH 2, WRITE 3, WRITE 4
        # with FUA, WRITE 5. Replies: 1, 3, 5 (in order), then 2 and 4; the flush made every
        # write durable (the device was flushed), and all read back.
        r = fresh().start().go()
        size = 4096
        data = {c: bytes([c]) * size for c in (1, 3, 4, 5)}
        before = int(d.cli_json("stats")["flushes"])
        before_one = int(d.cli_json("stats")["one_flush_commits"])
        print("    WRITE 1, FLUSH 2, WRITE 3, WRITE 4 (FUA), WRITE 5 in one send")
        r.send(r.request(CMD_WRITE, 1, 0, size) + data[1] + r.request(CMD_FLUSH, 2, 0, 0) +
               r.request(CMD_WRITE, 3, size, size) + data[3] +
               r.request(CMD_WRITE, 4, 2 * size, size, flags=CMD_FLAG_FUA) + data[4] +
               r.request(CMD_WRITE, 5, 3 * size, size) + data[5])
        order = []
        for i in range(5):
            magic, err, cookie = struct.unpack(">IIQ", r.recv_exact(16, f"reply {i + 1}"))
            require(magic == SIMPLE_REPLY_MAGIC and err == 0, f"reply {i + 1}: magic {magic:#x}, error {err}")
            order.append(cookie)
        print(f"    replies in the order {order}")
        require(order == [1, 3, 5, 2, 4], f"replies came as {order}: expected the plain writes (1, 3, 5) "
                                          "before the flush and the FUA write (2, 4)")
        flushes = int(d.cli_json("stats")["flushes"]) - before
        require(flushes >= 1, "the flush did not flush the device")
        # 16 KiB of writes: a commit that one device flush makes durable with its data.
        require(int(d.cli_json("stats")["one_flush_commits"]) > before_one,
                "the flush's commit took two device flushes (one_flush_commits did not move)")
        for c in (1, 3, 4, 5):
            r.send(r.request(CMD_READ, 100 + c, {1: 0, 3: 1, 4: 2, 5: 3}[c] * size, size))
            require(r.simple_reply(100 + c, f"read of write {c}") == 0 and r.recv_exact(size) == data[c],
                    f"write {c} does not read back")
        r.close()
        # A session ended with requests of both phases in flight: the flush is still answered
        # (proto.md: the server handles what is outstanding before it closes for DISC).
        print("    WRITE 6, FLUSH 7, DISC in one send: both answered, then the server closes")
        r = fresh().start().go()
        before = int(d.cli_json("stats")["flushes"])
        r.send(r.request(CMD_WRITE, 6, 4 * size, size) + bytes([6]) * size + r.request(CMD_FLUSH, 7, 0, 0) +
               r.request(CMD_DISC, 8, 0, 0))
        require(r.simple_reply(6, "write 6") == 0, "write 6 failed")
        require(r.simple_reply(7, "flush 7 (sent before DISC)") == 0, "flush 7 failed")
        r.expect_closed(what="after DISC")
        require(int(d.cli_json("stats")["flushes"]) > before, "the flush before DISC did not flush the device")
        # With 8 MiB or more written since the device's last flush, a flush waits for the
        # writeback thread (the device's dirty data written out beside the loop) and then the
        # commit; the session's end waits for it too.
        print("    WRITE 10 (16 MiB), FLUSH 11, DISC: the flush waits for the writeback thread and the commit")
        r = fresh().start().go()
        before = int(d.cli_json("status")["writebacks_before_commit"])
        big = bytes(range(251)) * (16 * MiB // 251) + bytes(16 * MiB % 251)
        r.send(r.request(CMD_WRITE, 10, 4 * MiB, len(big)) + big + r.request(CMD_FLUSH, 11, 0, 0) + r.request(CMD_DISC, 12, 0, 0))
        require(r.simple_reply(10, "write 10") == 0, "write 10 failed")
        require(r.simple_reply(11, "flush 11 (after 16 MiB)") == 0, "flush 11 failed")
        r.expect_closed(what="after DISC")
        require(int(d.cli_json("status")["writebacks_before_commit"]) == before + 1,
                "the flush after 16 MiB did not go through the writeback thread")
        r = fresh().start().go()
        r.send(r.request(CMD_READ, 13, 4 * MiB, len(big)))
        require(r.simple_reply(13, "read 13") == 0 and r.recv_exact(len(big)) == big, "the 16 MiB write does not read back")
        r.close()

    # ----- handshake ---------------------------------------------------------------------
    def bad_client_flags():
        print("    client flags 0xfffffff1 (unknown bits): the spec says the server MUST close")
        r = fresh().start(client_flags=0xFFFFFFF1)
        r.expect_closed(what="unknown client flags")

    def no_fixed_newstyle():
        print("    client flags 0 (no FIXED_NEWSTYLE, the only handshake served): the server closes")
        r = fresh().start(client_flags=0)
        r.expect_closed(what="client flags 0")

    def bad_option_magic():
        print("    an option header with magic 0x0102030405060708: the server closes")
        r = fresh().start()
        r.send(struct.pack(">QII", 0x0102030405060708, OPT_GO, 0))
        r.expect_closed(what="bad option magic")

    def huge_option():
        print("    NBD_OPT_GO with length 0xFFFFFFFF (and no data): the server closes without waiting for 4 GiB")
        r = fresh().start()
        r.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 0xFFFFFFFF))
        r.expect_closed(what="option of length 0xFFFFFFFF")

    def truncated_option():
        print("    NBD_OPT_GO header announcing 100 bytes, 10 sent, then hang up")
        r = fresh().start()
        r.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 100) + b"\0" * 10)
        r.close()
        time.sleep(0.2)

    def unknown_option():
        print("    option 99 with 5 bytes of data => NBD_REP_ERR_UNSUP, and the session goes on")
        r = fresh().start()
        r.option(99, b"hello")
        replies = r.option_replies(99)
        require(len(replies) == 1 and replies[0][0] == REP_ERR_UNSUP, f"option 99: {[(hex(t), p) for t, p in replies]}")
        print(f"    (message: {replies[0][1].decode(errors='replace')!r})")
        print("    NBD_OPT_STARTTLS => an error (TLS is not served); NBD_OPT_EXTENDED_HEADERS => an error")
        for opt in (OPT_STARTTLS, OPT_EXTENDED_HEADERS):
            r.option(opt)
            replies = r.option_replies(opt)
            require(len(replies) == 1 and replies[0][0] & (1 << 31), f"option {opt}: {[(hex(t), p) for t, p in replies]}")
        print("    NBD_OPT_LIST with data => NBD_REP_ERR_INVALID; without => NBD_REP_SERVER + ACK")
        r.option(OPT_LIST, b"junk")
        replies = r.option_replies(OPT_LIST)
        require(replies[-1][0] == REP_ERR_INVALID, f"OPT_LIST with data: {replies}")
        r.option(OPT_LIST)
        replies = r.option_replies(OPT_LIST)
        names = [p[4:4 + struct.unpack(">I", p[:4])[0]].decode() for t, p in replies if t == REP_SERVER]
        require(replies[-1][0] == REP_ACK and names == [EXPORT], f"OPT_LIST: {names} {replies[-1]}")
        print("    then NBD_OPT_GO works and a READ is answered on the same session")
        r.go(structured=True)
        r.send(r.request(CMD_READ, 7, 0, 4096))
        flags, ctype, cookie, payload = r.chunk("READ after odd options")
        require(cookie == 7 and ctype == REPLY_TYPE_OFFSET_DATA and flags & REPLY_FLAG_DONE and len(payload) == 8 + 4096,
                f"READ reply: flags {flags} type {ctype} cookie {cookie} {len(payload)} bytes")

    def go_overflow():
        print("    NBD_OPT_GO whose name length (1000) overflows the option's 9 bytes => NBD_REP_ERR_INVALID")
        r = fresh().start()
        r.option(OPT_GO, struct.pack(">I", 1000) + b"vol" + struct.pack(">H", 0))
        replies = r.option_replies(OPT_GO)
        require(len(replies) == 1 and replies[0][0] == REP_ERR_INVALID, f"overflowing GO: {[(hex(t), p) for t, p in replies]}")
        print("    NBD_OPT_GO claiming 5 information requests but carrying none => NBD_REP_ERR_INVALID")
        r.option(OPT_GO, struct.pack(">I", 3) + b"vol" + struct.pack(">H", 5))
        replies = r.option_replies(OPT_GO)
        require(replies[-1][0] == REP_ERR_INVALID, f"short info list: {[(hex(t), p) for t, p in replies]}")
        print("    NBD_OPT_INFO of an unknown export => NBD_REP_ERR_UNKNOWN")
        r.option(OPT_INFO, r.go_data("nosuch"))
        replies = r.option_replies(OPT_INFO)
        require(replies[-1][0] == REP_ERR_UNKNOWN, f"unknown export: {[(hex(t), p) for t, p in replies]}")
        print("    the session goes on: a correct NBD_OPT_GO, then a READ")
        r.go()
        r.send(r.request(CMD_READ, 1, 0, 4096))
        require(r.simple_reply(1, "READ") == 0, "READ after the refused options failed")
        r.recv_exact(4096, "READ data")

    def export_name_unknown():
        print("    NBD_OPT_EXPORT_NAME of an unknown export: it has no error reply, so the spec says close")
        r = fresh().start()
        r.option(OPT_EXPORT_NAME, b"nosuch")
        r.expect_closed(what="NBD_OPT_EXPORT_NAME nosuch")

    # ----- transmission ------------------------------------------------------------------
    def bad_request_magic():
        print("    after NBD_OPT_GO, a request with magic 0xdeadbeef: the server closes")
        r = fresh().start().go()
        r.send(r.request(CMD_READ, 1, 0, 4096, magic=0xDEADBEEF))
        r.expect_closed(what="bad request magic")

    def huge_write():
        print("    a WRITE header claiming 1 GiB of payload (none sent): the server closes at once")
        r = fresh().start().go()
        r.send(r.request(CMD_WRITE, 1, 0, 1 << 30))
        r.expect_closed(what="1 GiB WRITE")

    def half_close():
        # A client that shuts down its sending side after its last requests still gets every
        # reply. The daemon takes in what comes while a batch's large writes are copied
        # (receive_meanwhile) and parses it after the batch; the end of input it meets next
        # must not drop those requests unanswered (it did). A 32 MiB WRITE first makes the
        # connection's input buffer large, so that the READs sent 1 ms after a 16 MiB WRITE
        # find room behind it while it is copied (a few ms).
        tries, reads, size, big = 10, 8, 4096, 16 * MiB
        print(f"    {tries} times: a 32 MiB WRITE (answered), a 16 MiB WRITE, 1 ms later {reads} READs, then "
              f"shutdown(SHUT_WR): all answered")
        payload = bytes(range(256)) * (big // 256)
        before = int(d.cli_json("status")["bytes_received_while_writing"])
        for t in range(tries):
            r = fresh().start().go()
            r.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)
            r.send(r.request(CMD_WRITE, 100, 0, 2 * big) + payload + payload)
            require(r.simple_reply(100, f"try {t}: the 32 MiB WRITE") == 0, f"try {t}: the 32 MiB WRITE failed")
            # The READs are of other blocks: requests in flight together have no order.
            r.send(r.request(CMD_WRITE, 1, 0, big) + payload)
            time.sleep(0.001)
            r.send(b"".join(r.request(CMD_READ, 2 + i, 2 * big + i * size, size) for i in range(reads)))
            r.s.shutdown(socket.SHUT_WR)
            require(r.simple_reply(1, f"try {t}: the WRITE") == 0, f"try {t}: the WRITE failed")
            for i in range(reads):
                require(r.simple_reply(2 + i, f"try {t}: READ {i}") == 0, f"try {t}: READ {i} failed")
                r.recv_exact(size, f"try {t}: READ {i} data")
            r.expect_closed(what=f"try {t}: after the replies")
            r.close()
        during = int(d.cli_json("status")["bytes_received_while_writing"]) - before
        print(f"    bytes received while writes were copied: {during}")
        r = fresh().start().go()
        r.send(r.request(CMD_READ, 1, 0, big))
        require(r.simple_reply(1, "reading the WRITE back") == 0 and r.recv_exact(big, "its data") == payload,
                "the 16 MiB WRITE reads back other bytes")
        r.close()

    def disconnect():
        print("    NBD_CMD_DISC: the server closes the connection")
        r = fresh().start().go()
        r.send(r.request(CMD_DISC, 1, 0, 0))
        r.expect_closed(what="NBD_CMD_DISC")

    def unknown_command():
        for structured in (False, True):
            print(f"    command type 99 ({'structured' if structured else 'simple'} replies) => EINVAL, and the session goes on")
            r = fresh().start().go(structured=structured)
            r.send(r.request(99, 0xABCDEF, 0, 4096))
            if structured:
                # Either reply form is allowed for a command that is not READ or BLOCK_STATUS.
                head = r.recv_exact(4, "command 99 reply")
                rest = r.recv_exact(12 if head == struct.pack(">I", SIMPLE_REPLY_MAGIC) else 16, "command 99 reply")
                if head == struct.pack(">I", SIMPLE_REPLY_MAGIC):
                    err, cookie = struct.unpack(">IQ", rest)
                else:
                    flags, ctype, cookie, length = struct.unpack(">HHQI", rest)
                    payload = r.recv_exact(length)
                    require(ctype == REPLY_TYPE_ERROR and flags & REPLY_FLAG_DONE, f"command 99: chunk type {ctype} flags {flags}")
                    err = struct.unpack(">I", payload[:4])[0]
                require(cookie == 0xABCDEF and err == NBD_EINVAL, f"command 99: cookie {cookie:#x} error {err}")
            else:
                err = r.simple_reply(0xABCDEF, "command 99")
                require(err == NBD_EINVAL, f"command 99: error {err}, expected EINVAL")
            r.send(r.request(CMD_WRITE, 2, 8192, 4096) + b"\x5a" * 4096)
            require(r.simple_reply(2, "WRITE after command 99") == 0, "WRITE after command 99 failed")
            r.send(r.request(CMD_READ, 3, 8192, 4096))
            if structured:
                flags, ctype, cookie, payload = r.chunk("READ after command 99")
                require(cookie == 3 and ctype == REPLY_TYPE_OFFSET_DATA and payload[8:] == b"\x5a" * 4096, "READ after command 99")
            else:
                require(r.simple_reply(3, "READ after command 99") == 0, "READ after command 99 failed")
                require(r.recv_exact(4096) == b"\x5a" * 4096, "READ after command 99: data")

    def read_beyond_end():
        for structured in (False, True):
            print(f"    READ at {EXPORT_SIZE} (the end) and across it ({'structured' if structured else 'simple'} replies) => EINVAL")
            r = fresh().start().go(structured=structured)
            for cookie, (off, ln) in enumerate(((EXPORT_SIZE, 4096), (EXPORT_SIZE - 4096, 8192), ((1 << 64) - 4096, 8192)), 1):
                r.send(r.request(CMD_READ, cookie, off, ln))
                if structured:
                    flags, ctype, got, payload = r.chunk("READ beyond the end")
                    require(got == cookie and ctype == REPLY_TYPE_ERROR and flags & REPLY_FLAG_DONE,
                            f"READ {off}+{ln}: chunk type {ctype:#x} flags {flags} cookie {got}")
                    err = struct.unpack(">I", payload[:4])[0]
                else:
                    err = r.simple_reply(cookie, "READ beyond the end")
                require(err == NBD_EINVAL, f"READ {off}+{ln}: error {err}, expected EINVAL")
            print("    and a WRITE across the end => ENOSPC (payload consumed, the stream stays in sync)")
            r.send(r.request(CMD_WRITE, 10, EXPORT_SIZE - 4096, 8192) + b"\1" * 8192)
            if structured:
                head = r.recv_exact(16, "WRITE beyond the end")
                magic, err, cookie = struct.unpack(">IIQ", head)
                require(magic == SIMPLE_REPLY_MAGIC and cookie == 10 and err == 28, f"WRITE beyond: {magic:#x} {err} {cookie}")
            else:
                require(r.simple_reply(10, "WRITE beyond the end") == 28, "WRITE beyond the end: not ENOSPC")
            r.send(r.request(CMD_FLUSH, 11, 0, 0))
            head = r.recv_exact(16, "FLUSH")
            require(struct.unpack(">IIQ", head) == (SIMPLE_REPLY_MAGIC, 0, 11), f"FLUSH after errors: {head!r}")

    def half_request():
        print("    client A: 10 bytes of a request header, then silence; client B: half a WRITE payload, then silence")
        a = fresh().start().go()
        a.send(a.request(CMD_READ, 5, 0, 4096)[:10])
        b = fresh().start().go()
        b.send(b.request(CMD_WRITE, 6, 65536, 8192) + b"\x77" * 4096)
        time.sleep(0.3)
        print("    meanwhile a libnbd session works normally")
        quick_io(d, EXPORT, timeout=HEALTH_TIMEOUT)
        print("    A and B send the rest: both requests are answered")
        a.send(a.request(CMD_READ, 5, 0, 4096)[10:])
        require(a.simple_reply(5, "A's completed READ") == 0, "A's READ failed")
        a.recv_exact(4096, "A's READ data")
        b.send(b"\x77" * 4096)
        require(b.simple_reply(6, "B's completed WRITE") == 0, "B's WRITE failed")
        b.send(b.request(CMD_READ, 7, 65536, 8192))
        require(b.simple_reply(7, "B's READ") == 0, "B's READ failed")
        require(b.recv_exact(8192) == b"\x77" * 8192, "B's write did not land whole")
        a.close()
        b.close()

    def greedy_reader():
        print("    a client sends 4 KiB READs as fast as it can for 2 s and never reads a reply")
        g = fresh().start().go()
        g.s.setblocking(False)
        burst = b"".join(g.request(CMD_READ, i, (i * 4096) % EXPORT_SIZE, 4096) for i in range(4096))
        sent = 0
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            try:
                k = g.s.send(burst[sent % len(burst):])
                sent += k
            except BlockingIOError:
                time.sleep(0.01)
        print(f"    {sent // 28} requests sent before the socket filled up (the daemon must stop reading)")
        sample_rss()
        print("    another client is served within a few seconds")
        t0 = time.monotonic()
        quick_io(d, EXPORT, timeout=HEALTH_TIMEOUT)
        print(f"    ({time.monotonic() - t0:.2f}s)")
        sample_rss()
        rss = d.proc_status("VmRSS")
        print(f"    daemon VmRSS while the greedy client holds its replies: {rss // MiB} MiB")
        require(rss < RSS_LIMIT, f"VmRSS {rss // MiB} MiB with a greedy client")
        g.close()

    def storm():
        print("    200 connections, each stopped at a different point of the handshake, then dropped")
        conns0, fds0 = int(d.cli_json("status")["nbd_connections"]), d.open_fds()
        socks = []
        for i in range(200):
            r = Raw(d.sock)
            socks.append(r)
            step = i % 6
            try:
                if step >= 1:
                    r.greeting()
                if step == 2:
                    r.send(b"\0\0")  # half the client flags
                if step >= 3:
                    r.send(struct.pack(">I", FLAG_FIXED_NEWSTYLE))
                if step == 4:
                    r.send(struct.pack(">QI", IHAVEOPT, OPT_GO))  # half an option header
                if step == 5:
                    r.send(struct.pack(">QII", IHAVEOPT, OPT_GO, 64) + b"\0\0\0\x03vo")  # half an option
            except OSError as e:
                raise HardFailure(f"connection {i}: {e}")
        sample_rss()
        print("    (a libnbd client is served while all 200 are open)")
        quick_io(d, EXPORT, timeout=HEALTH_TIMEOUT)
        for i, r in enumerate(socks):
            if i % 2:
                # Abortive close (RST on TCP; on a unix socket simply a close with unread data).
                r.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            r.close()
        print(f"    the daemon forgets them all: nbd_connections back to {conns0}, open fds back to {fds0}")
        deadline = time.monotonic() + 5
        while True:
            conns = int(d.cli_json("status")["nbd_connections"])
            fds = d.open_fds()
            if conns <= conns0 and fds <= fds0:
                break
            require(time.monotonic() < deadline, f"5 s after dropping 200 connections: nbd_connections {conns} "
                                                 f"(was {conns0}), {fds} open fds (was {fds0})")
            time.sleep(0.1)

    def close_raw():
        print("    close every raw connection still open; the daemon forgets them (nbd_connections 0, fds back)")
        for r in st["raw"]:
            r.close()
        st["raw"].clear()
        deadline = time.monotonic() + 5
        while True:
            conns = int(d.cli_json("status")["nbd_connections"])
            fds = d.open_fds()
            if conns == 0 and fds <= st["baseline_fds"]:
                break
            require(time.monotonic() < deadline, f"nbd_connections {conns}, {fds} open fds (baseline {st['baseline_fds']})")
            time.sleep(0.1)

    def final():
        d.require_alive("at the end")
        quick_io(d, EXPORT, timeout=HEALTH_TIMEOUT)
        sample_rss()
        rss, hwm = d.proc_status("VmRSS"), d.proc_status("VmHWM")
        print(f"    daemon alive; VmRSS {rss // MiB} MiB, peak (VmHWM) {hwm // MiB} MiB, largest sample {st['peak_rss'] // MiB} MiB")
        require(hwm < RSS_LIMIT, f"the daemon's peak RSS {hwm // MiB} MiB reached the {RSS_LIMIT // MiB} MiB limit")
        print("    SIGTERM: the daemon stops cleanly (exit 0) after all this")
        d.stop()
        d.start()
        quick_io(d, EXPORT, timeout=HEALTH_TIMEOUT)

    def read_flood():
        # Last, because a flood may leave the daemon's memory high (bounded by its reply queue).
        print("    a client sends 300 READs of 4 MiB and never reads a reply: memory must stay bounded by the")
        print("    reply queue limit (64 MiB) and another client must be served within a few seconds")
        g = fresh().start().go()
        base = d.proc_status("VmRSS")
        g.send(b"".join(g.request(CMD_READ, i, (i * 4 * MiB) % EXPORT_SIZE, 4 * MiB) for i in range(300)))
        t0 = time.monotonic()
        served, err = False, None
        try:
            quick_io(d, EXPORT, timeout=3.0)
            served = True
        except TestFailure as e:
            err = str(e)
        waited = time.monotonic() - t0
        peak = base
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            peak = max(peak, d.proc_status("VmRSS"))
            time.sleep(0.1)
        print(f"    VmRSS {base // MiB} MiB before, {peak // MiB} MiB after; other client {'served' if served else 'NOT served'} "
              f"in {waited:.1f}s")
        g.close()
        problems = []
        if peak - base > 256 * MiB:
            problems.append(f"RSS grew by {(peak - base) // MiB} MiB")
        if not served:
            problems.append(f"another client was not served within 3 s ({err})")
        require(not problems, "; ".join(problems))

    def input_flood():
        # After read_flood: start from a fresh daemon (kill -9 is fine: nothing to keep).
        d.kill()
        d.start()
        limit = 128 * MiB  # the 64 MiB reply queue, an 8 MiB read, a 32 MiB WRITE payload, slack
        print("    a client pipelines NBD_CMD_FLUSH requests (16-byte replies) as fast as the daemon takes them")
        print(f"    and never reads a reply: the daemon's RSS must not grow by {limit // MiB} MiB (up to 10 s)")
        g = fresh().start().go()
        chunk = b"".join(g.request(CMD_FLUSH, i, 0, 0) for i in range(8 * MiB // 28))
        base = d.proc_status("VmRSS")
        sent, growth, verdict = 0, 0, None
        start = time.monotonic()
        while verdict is None:
            left = 10.0 - (time.monotonic() - start)
            if left <= 0:
                verdict = "time"
                break
            g.s.settimeout(min(left, 1.5))
            try:
                g.s.sendall(chunk)
                sent += len(chunk)
            except socket.timeout:
                verdict = "blocked"  # the daemon stopped reading: what a bounded server does
            growth = d.proc_status("VmRSS") - base
            if growth > limit:
                verdict = "grew"
        print(f"    {sent // MiB} MiB of requests accepted in {time.monotonic() - start:.1f}s, RSS grew {growth // MiB} MiB "
              f"({verdict})")
        g.close()
        require(verdict != "grew", f"the daemon's RSS grew by {growth // MiB} MiB (> {limit // MiB} MiB) "
                                   f"while a client sent {sent // MiB} MiB of requests without reading replies")

    checks = [("setup: device, daemon, namespace", setup, None)]
    cases = [
        ("handshake: unknown client flags => close", bad_client_flags, None),
        ("handshake: client flags without FIXED_NEWSTYLE => close", no_fixed_newstyle, None),
        ("handshake: bad option magic => close", bad_option_magic, None),
        ("handshake: option length 0xFFFFFFFF => close", huge_option, None),
        ("handshake: truncated option, then hang-up", truncated_option, None),
        ("handshake: unknown and refused options, session continues", unknown_option, None),
        ("handshake: NBD_OPT_GO name length overflowing the payload => NBD_REP_ERR_INVALID", go_overflow, None),
        ("handshake: NBD_OPT_EXPORT_NAME of an unknown export => close", export_name_unknown, None),
        ("transmission: bad request magic => close", bad_request_magic, None),
        ("transmission: WRITE claiming 1 GiB => close", huge_write, None),
        ("transmission: NBD_CMD_DISC => close", disconnect, None),
        ("transmission: requests before a half-close are all answered", half_close, None),
        ("transmission: unknown command 99 => EINVAL, session continues", unknown_command, None),
        ("transmission: READ beyond the end => EINVAL", read_beyond_end, None),
        ("1000 pipelined WRITEs: several turns, no commit between them", pipelined_turns, None),
        ("writes sent with a flush are answered before its commit", writes_before_the_commit, None),
        ("a client stalled mid-request does not stall others", half_request, None),
        ("a client that never reads its replies does not stall others", greedy_reader, None),
        ("200 connections dropped mid-handshake", storm, None),
    ]
    for name, fn, xfail in cases:
        checks.append((name, fn, xfail))
        checks.append(healthy(name.split(" => ")[0]))
    checks += [
        ("raw connections closed: nothing leaks", close_raw, None),
        ("at the end: healthy, RSS under 512 MiB, clean SIGTERM", final, None),
        ("a flood of 4 MiB READs never read: memory bounded, others served", read_flood, None),
        ("a flood of pipelined FLUSH requests, replies never read: memory bounded", input_flood, None),
    ]
    return checks


def body(harness):
    return run_checks("nbd_abuse", build_checks(harness), harness)


if __name__ == "__main__":
    sys.exit(main(sys.argv, "nyads-nbd-abuse-", body))
