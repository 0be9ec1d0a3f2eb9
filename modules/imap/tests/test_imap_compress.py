"""COMPRESS=DEFLATE (RFC 4978) with a zlib client over a raw socket, plain,
after STARTTLS and under implicit TLS: offered and allowed only after
login, once; the tagged OK plain and everything after it compressed both
ways; a large FETCH, an APPEND literal, IDLE seeing a delivery, commands pipelined
behind COMPRESS, garbage instead of a compressed stream, and a crowd of
compressed IDLE connections with the server's memory bounded."""

import os
import pathlib
import threading
import time
import zlib

import pytest

from harness import SOCK_TIMEOUT, rss_kib
from imap_helpers import Imap, ImapServer
from smtp_helpers import message


@pytest.fixture
def imap_server(make_instance, env):
    def factory(name="imapz", **kw):
        # LOGIN on the plain connection too: compression without TLS.
        kw.setdefault("auth", dict(failure_delay="0s", plaintext_without_tls=True))
        return ImapServer(make_instance, env, name, **kw).start()
    return factory


@pytest.fixture
def srv(imap_server):
    return imap_server()


class ZImap(Imap):
    """The raw client, compressing once COMPRESS is accepted: what it
    sends is deflated with a sync flush per send, what it reads inflated.
    wire_in counts the bytes that came over the socket."""

    def __init__(self, *a, **kw):
        self.comp = self.decomp = None
        self.wire_in = 0
        super().__init__(*a, **kw)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.comp is not None:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.wire_in += len(data)
        if self.decomp is not None:
            data = self.decomp.decompress(data)
            assert not self.decomp.eof
        self.buf += data

    def start_compressing(self, pipelined=b""):
        """COMPRESS DEFLATE; pipelined: commands sent compressed in the
        same write, before the answer. Returns the tagged answer."""
        tag = self.tag()
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        early = comp.compress(pipelined) + comp.flush(zlib.Z_SYNC_FLUSH) if pipelined else b""
        self.sock.sendall(tag.encode() + b" COMPRESS DEFLATE\r\n" + early)
        _, done = self.wait(tag)
        assert done.startswith("OK"), done
        self.comp = comp
        self.decomp = zlib.decompressobj(-15)
        # What came behind the OK in the same read was compressed.
        rest, self.buf = self.buf, b""
        self.buf = self.decomp.decompress(rest)
        return done


def big_message(address, kib=300):
    """A text message of about kib KiB, lines that differ."""
    lines = [f"Line {i}: the quick brown fox jumps over the lazy dog {i * 7919 % 1000}"
             for i in range(kib * 1024 // 64)]
    return message("big one", to=address, body="\r\n".join(lines)).encode()


def logged_in(srv, tls=False):
    """tls: False (plain), "starttls" (143 after STARTTLS) or True (993)."""
    c = ZImap(srv.imaps_port if tls is True else srv.imap_port, tls=tls is True)
    c.login(srv.addr("alice"), starttls=tls == "starttls")
    return c


def test_offered_after_login_only(srv):
    with ZImap(srv.imap_port) as c:
        caps = c.ok("CAPABILITY")[0]
        assert b"COMPRESS=DEFLATE" not in caps, caps
        _, done = c.run("COMPRESS DEFLATE")
        assert done.startswith("BAD"), done
        caps = c.login(srv.addr("alice"), starttls=False)
        caps = b" ".join(caps) + b" " + c.ok("CAPABILITY")[0]
        assert b"COMPRESS=DEFLATE" in caps, caps
        _, done = c.run("COMPRESS GZIP")
        assert done.startswith("BAD"), done
        _, done = c.run("COMPRESS")
        assert done.startswith("BAD"), done
        assert c.ok("NOOP") == []  # still plain


@pytest.mark.parametrize("tls", [False, "starttls", True], ids=["plain", "starttls", "implicit-tls"])
def test_session_compressed(srv, tls):
    address = srv.addr("alice")
    raw = big_message(address)
    srv.deliver(address, raw)
    with logged_in(srv, tls) as c:
        c.start_compressing()
        untagged = c.ok("SELECT INBOX")
        assert b"* 1 EXISTS" in untagged, untagged
        before = c.wire_in
        untagged = c.ok("FETCH 1 BODY.PEEK[]")
        body = untagged[0].split(b"\r\n", 1)[1]
        assert body.endswith(b"Line 4799: the quick brown fox jumps over the lazy dog "
                             + str(4799 * 7919 % 1000).encode() + b"\r\n)")
        assert len(body) > 250 * 1024
        # The text went over the wire compressed.
        assert c.wire_in - before < len(body) // 3, (c.wire_in - before, len(body))
        # APPEND with a synchronising literal, then the message back.
        appended = b"Subject: appended\r\n\r\n" + b"compressed literal line\r\n" * 200
        tag = c.tag()
        c.send(f"{tag} APPEND INBOX {{{len(appended)}}}\r\n".encode())
        assert c.raw_line().startswith(b"+")
        c.send(appended + b"\r\n")
        _, done = c.wait(tag)
        assert done.startswith("OK"), done
        untagged = c.ok("FETCH 2 BODY.PEEK[]")
        assert untagged[-1].split(b"\r\n", 1)[1].startswith(appended)
        # And a non-synchronising one (LITERAL+).
        _, done = c.run(b"APPEND INBOX {13+}\r\nSubject: x\r\n\r\n")
        assert done.startswith("OK"), done
        # Once only.
        _, done = c.run("COMPRESS DEFLATE")
        assert done.startswith("NO [COMPRESSIONACTIVE]"), done
        assert c.ok("NOOP") == []
        untagged, done = c.run("LOGOUT")
        assert untagged[0].startswith(b"* BYE") and done.startswith("OK"), (untagged, done)


def test_idle_compressed_sees_delivery(srv):
    address = srv.addr("alice")
    with logged_in(srv) as c:
        c.start_compressing()
        c.ok("SELECT INBOX")
        tag = c.tag()
        c.send(f"{tag} IDLE\r\n")
        assert c.line().startswith("+ ")
        t = time.monotonic()
        srv.deliver(address, message("idle", to=address).encode())
        assert c.line() == "* 1 EXISTS"
        assert c.line() == "* 0 RECENT"
        assert time.monotonic() - t < 2.0
        c.send("DONE\r\n")
        _, done = c.wait(tag)
        assert done == "OK IDLE terminated"
        assert c.ok("NOOP") == []


def test_pipelined_behind_compress(srv):
    with logged_in(srv, tls=True) as c:
        # Commands in the same write as COMPRESS, already compressed.
        c.start_compressing(pipelined=b"p1 NOOP\r\np2 SELECT INBOX\r\n")
        _, done = c.wait("p1")
        assert done.startswith("OK"), done
        _, done = c.wait("p2")
        assert done.startswith("OK"), done
        assert c.ok("NOOP") == []


def test_pipelined_behind_compress_while_busy(srv):
    """COMPRESS read while a long FETCH answer goes out: what the client
    sent behind it is held by the session, then inflated."""
    address = srv.addr("alice")
    srv.deliver(address, big_message(address, kib=2000))
    with logged_in(srv) as c:
        c.ok("SELECT INBOX")
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        early = comp.compress(b"p1 NOOP\r\n") + comp.flush(zlib.Z_SYNC_FLUSH)
        c.send(b"f1 FETCH 1 BODY.PEEK[]\r\nz1 COMPRESS DEFLATE\r\n" + early)
        untagged, done = c.wait("f1")
        assert done.startswith("OK") and len(untagged[0]) > 1800 * 1024, done
        _, done = c.wait("z1")
        assert done.startswith("OK"), done
        c.comp, c.decomp = comp, zlib.decompressobj(-15)
        rest, c.buf = c.buf, b""
        c.buf = c.decomp.decompress(rest)
        _, done = c.wait("p1")
        assert done.startswith("OK"), done
        assert c.ok("NOOP") == []


@pytest.mark.parametrize("garbage", [b"\xff\xfe\xfd not deflate at all\r\n",
                                     zlib.compress(b"a1 NOOP\r\n")],  # zlib header: not raw
                         ids=["garbage", "zlib-header"])
def test_garbage_after_compress(srv, garbage):
    with logged_in(srv) as c:
        c.start_compressing()
        c.sock.sendall(garbage)
        c.sock.settimeout(SOCK_TIMEOUT)
        with pytest.raises((EOFError, ConnectionResetError)):
            while True:
                c._fill()
    deadline = time.monotonic() + SOCK_TIMEOUT
    while "bad compressed input" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "bad compressed input" in srv.log()
    with logged_in(srv) as c:  # the server is fine
        c.start_compressing()
        assert c.ok("NOOP") == []


def test_stream_ended_by_client(srv):
    with logged_in(srv) as c:
        c.start_compressing()
        c.sock.sendall(c.comp.compress(b"a9 NOOP\r\n") + c.comp.flush(zlib.Z_FINISH))
        with pytest.raises((EOFError, ConnectionResetError)):
            while True:
                c._fill()
    assert "compressed stream ended" in srv.log()


def test_bomb_is_held_to_the_line_limit(imap_server):
    """A few KB that inflate to 20 MB of one line: refused as too long,
    without the server holding it, and the session goes on."""
    srv = imap_server(imap=dict(max_line=8192))
    with logged_in(srv) as c:
        c.start_compressing()
        comp = c.comp
        wire = b""
        wire += comp.compress(b"b1 NOOP ")
        for _ in range(20):
            wire += comp.compress(b"x" * (1024 * 1024))
        wire += comp.compress(b"\r\n") + comp.flush(zlib.Z_SYNC_FLUSH)
        assert len(wire) < 100 * 1024
        c.sock.sendall(wire)
        untagged, done = c.run("NOOP")
        assert done.startswith("OK"), done
        # The line's tag went with it: an untagged BAD.
        assert b"* BAD [LIMIT] Line too long" in untagged, untagged


CROWD = 150


def sanitized():
    """Whether the petreld under test is built with AddressSanitizer."""
    exe = pathlib.Path(os.environ["PETREL_PREFIX"]) / "sbin" / "petreld"
    return b"__asan_init" in exe.read_bytes()


def test_crowd_of_compressed_idlers(imap_server, monkeypatch):
    # Under AddressSanitizer freed memory waits in a quarantine, so each
    # answer's deflater would count as held: memory is reused at once
    # here, as without it. Nothing changes for an unsanitized daemon.
    asan = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "")
                       + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0")
    srv = imap_server(imap=dict(peer_max_connections=CROWD + 20,
                                peer_max_interval_connections=0),
                      imap_settings=dict(max_connections_per_user=CROWD + 20))
    address = srv.addr("alice")
    pid = srv.inst.pid
    clients = []
    # Warm-up: one session touches the code paths and caches first.
    with logged_in(srv) as w:
        w.start_compressing()
        w.ok("SELECT INBOX")
    time.sleep(0.2)
    rss_start = rss_kib(pid)
    try:
        for _ in range(CROWD):
            c = logged_in(srv)
            c.start_compressing()
            c.ok("SELECT INBOX")
            tag = c.tag()
            c.send(f"{tag} IDLE\r\n")
            assert c.line().startswith("+ ")
            c.idle_tag = tag
            clients.append(c)
        time.sleep(0.5)
        grown = rss_kib(pid) - rss_start
        per_conn = grown / CROWD
        # A plain IDLE session costs about 2 KiB (bench/RESULTS.md);
        # compression adds the client's history only, no zlib state
        # while idle (with it, about 80 KiB each at our window sizes).
        # AddressSanitizer's redzones and allocator make every block
        # larger.
        bound = 64 if sanitized() else 16
        assert per_conn < bound, f"{per_conn:.1f} KiB per compressed IDLE connection"
        srv.deliver(address, message("crowd", to=address).encode())
        woken = [0]
        lock = threading.Lock()

        def wake(c):
            assert c.line() == "* 1 EXISTS"
            c.send("DONE\r\n")
            _, done = c.wait(c.idle_tag)
            assert done == "OK IDLE terminated"
            with lock:
                woken[0] += 1

        threads = [threading.Thread(target=wake, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(4 * SOCK_TIMEOUT)
        assert woken[0] == CROWD
    finally:
        for c in clients:
            c.close()
    with logged_in(srv) as c:
        c.start_compressing()
        assert c.ok("NOOP") == []
