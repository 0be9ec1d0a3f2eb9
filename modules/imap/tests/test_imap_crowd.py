"""Bad input as a crowd and as a trickle: 200 anonymous connections at
once each sending bad input get BAD, NO or BYE while the server's memory
stays bounded and a normal client works afterwards; a command sent a byte
at a time is answered; a client stalled inside a literal is dropped at
the idle timeout while others are served; 100 pipelined commands are
answered in order."""

import socket
import threading
import time

import pytest

from harness import SOCK_TIMEOUT, rss_kib
from imap_helpers import Imap, ImapServer

CROWD = 200
# Each anonymous connection sends one of these.
BAD_INPUT = (
    b"a1 ID (\"name\" \"crowd\"\r\n",               # unbalanced parentheses
    b"a1 ID (\"name\" \"crowd\"))\r\n",
    b"a1 LOGIN {1000000000}\r\n",                   # a literal no one will send
    b"a1 NO\xc3\xa9OP\r\n",                         # 8-bit in atoms
    b"a1 ID (\"name\" caf\xe9)\r\n",
    b"a1 NOOP " + b"x" * (1024 * 1024) + b"\r\n",   # a 1 MB line
)


@pytest.fixture
def imap_server(make_instance, env):
    def factory(name="imapcrowd", **kw):
        return ImapServer(make_instance, env, name, **kw).start()
    return factory


def answer_to_bad(sock):
    """Lines up to a tagged answer, a BYE or the end of the connection."""
    buf = b""
    lines = []
    deadline = time.monotonic() + 4 * SOCK_TIMEOUT
    sock.settimeout(SOCK_TIMEOUT)  # each read, on top of the deadline
    while time.monotonic() < deadline:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            lines.append(line)
            if line.startswith((b"a1 ", b"* BYE", b"* BAD")):
                return lines
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return lines + [b"<reset>"]
        if not data:
            return lines + [b"<eof>"]
        buf += data
        assert len(buf) < 65536, buf[:200]
    return lines + [b"<no answer>"]


def acceptable(lines):
    last = lines[-1] if lines else b""
    return (last.startswith((b"a1 BAD", b"a1 NO", b"* BYE", b"* BAD"))
            and not any(l.startswith(b"+") for l in lines))


def test_crowd_of_bad_input(imap_server):
    srv = imap_server(imap=dict(peer_max_connections=CROWD + 20,
                                peer_max_interval_connections=0))
    pid = srv.inst.pid
    rss_start = rss_kib(pid)
    connected = threading.Barrier(CROWD + 1, timeout=60)
    sent = threading.Barrier(CROWD + 1, timeout=60)
    results = [None] * CROWD
    peak = [rss_start]

    def one(i):
        sock = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=SOCK_TIMEOUT)
        try:
            sock.settimeout(SOCK_TIMEOUT)
            greeting = b""
            while b"\r\n" not in greeting and len(greeting) < 4096:
                data = sock.recv(4096)
                if not data:
                    break
                greeting += data
            connected.wait()
            try:
                sock.sendall(BAD_INPUT[i % len(BAD_INPUT)])
            except (ConnectionResetError, BrokenPipeError):
                pass
            sent.wait()
            results[i] = (greeting, answer_to_bad(sock))
        except Exception as e:  # kept for the report below
            results[i] = (b"", [repr(e).encode()])
            connected.abort()
            sent.abort()
        finally:
            sock.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CROWD)]
    for t in threads:
        t.start()
    connected.wait()
    sent.wait()
    # Sample the memory while the crowd is being answered.
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], rss_kib(pid))
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=30)
    peak[0] = max(peak[0], rss_kib(pid))
    wrong = [(i, BAD_INPUT[i % len(BAD_INPUT)][:40], r) for i, r in enumerate(results)
             if r is None or not r[0].startswith(b"* OK") or not acceptable(r[1])]
    assert not wrong, f"{len(wrong)} of {CROWD} wrong, first: {wrong[:3]}"
    assert peak[0] - rss_start < 100 * 1024, f"RSS from {rss_start} KiB to {peak[0]} KiB"
    # The server still serves a normal client.
    m = srv.imap(srv.addr("alice"))
    assert m.select("INBOX")[0] == "OK"
    assert m.noop()[0] == "OK"
    m.logout()


def test_trickled_command_is_answered(imap_server):
    srv = imap_server()
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        command = b't1 STATUS "INBOX" (MESSAGES UIDNEXT)\r\n'
        t = time.monotonic()
        for i in range(len(command)):
            c.send(command[i:i + 1])
            time.sleep(0.02)
        untagged, done = c.wait("t1")
        assert time.monotonic() - t < 10
        assert done.startswith("OK"), done
        assert untagged[0].startswith(b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT '), untagged
        # A literal trickled as well.
        raw = b"Subject: slow\r\n\r\nbody\r\n"
        command = b"t2 APPEND INBOX {%d}\r\n" % len(raw)
        for i in range(len(command)):
            c.send(command[i:i + 1])
            time.sleep(0.01)
        assert c.line().startswith("+")
        for i in range(len(raw)):
            c.send(raw[i:i + 1])
            time.sleep(0.01)
        c.send(b"\r\n")
        _, done = c.wait("t2")
        assert done.startswith("OK [APPENDUID"), done
        untagged = c.ok("SELECT INBOX")
        assert b"* 1 EXISTS" in untagged, untagged
        untagged = c.ok("FETCH 1 BODY.PEEK[]")
        assert untagged[0].endswith(b"BODY[] {%d}\r\n" % len(raw) + raw + b")"), untagged


@pytest.mark.parametrize("i", range(len(BAD_INPUT)))
def test_trickled_bad_input(imap_server, i):
    """The crowd's bad input sent in small pieces gets the same answers,
    and the session goes on unless it said BYE."""
    srv = imap_server()
    data = BAD_INPUT[i]
    piece = 1 if len(data) < 1000 else 4096
    sock = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=SOCK_TIMEOUT)
    try:
        greeting = b""
        while b"\r\n" not in greeting and len(greeting) < 4096:
            data = sock.recv(4096)  # the socket's timeout: SOCK_TIMEOUT
            assert data, greeting
            greeting += data
        assert greeting.startswith(b"* OK"), greeting
        t = time.monotonic()
        for at in range(0, len(data), piece):
            sock.sendall(data[at:at + piece])
            time.sleep(0.005)
        assert time.monotonic() - t < 30
        lines = answer_to_bad(sock)
        assert acceptable(lines), lines
        if not lines[-1].startswith(b"* BYE"):
            sock.sendall(b"a2 NOOP\r\n")
            buf = b""
            while b"a2 " not in buf and len(buf) < 65536:
                data = sock.recv(4096)
                assert data, buf
                buf += data
            assert b"a2 OK" in buf, buf
    finally:
        sock.close()


def test_stalled_literal_dropped_at_idle_timeout(imap_server):
    srv = imap_server(imap=dict(idle_timeout="2s"))
    stalled = Imap(srv.imaps_port, tls=True)
    try:
        stalled.send(b"s1 LOGIN {10}\r\n")
        assert stalled.line().startswith("+"), "no continuation for the literal"
        stalled.send(b"alic")
        t = time.monotonic()
        # Others are served while it waits.
        with Imap(srv.imaps_port, tls=True) as other:
            other.login(srv.addr("bob"), starttls=False)
            assert other.ok("NOOP") == []
        stalled.sock.settimeout(15)
        lines = []
        while True:
            try:
                lines.append(stalled.line())
            except (EOFError, ConnectionResetError):
                break
            assert len(lines) < 5, lines
        took = time.monotonic() - t
        assert 1.5 <= took < 10, took
        assert all(l.startswith("* BYE") for l in lines), lines
    finally:
        stalled.close()
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        assert c.ok("NOOP") == []


def test_hundred_pipelined_commands(imap_server):
    srv = imap_server()
    address = srv.addr("alice")
    m = srv.imap(address)
    assert m.append("INBOX", None, None, b"Subject: one\r\n\r\nbody\r\n")[0] == "OK"
    m.logout()
    kinds = (
        (b"NOOP", "OK"),
        (b"SELECT INBOX", "OK"),
        (b"FETCH 1 (FLAGS RFC822.SIZE)", "OK"),
        (b"BOGUS", "BAD"),
        (b'STATUS "Nope" (MESSAGES)', "NO"),
        (b'LIST "" INBOX', "OK"),
        (b"UID FETCH 1:* UID", "OK"),
        (b"CAPABILITY", "OK"),
        (b"CHECK", "OK"),
        (b"EXAMINE Nope", "NO"),
    )
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(address, starttls=False)
        c.ok("SELECT INBOX")
        wire = b""
        want = []
        for i in range(100):
            cmd, status = kinds[i % len(kinds)]
            tag = f"p{i:03d}"
            wire += tag.encode() + b" " + cmd + b"\r\n"
            want.append((tag, status))
        c.send(wire)
        got = []
        untagged = []
        while len(got) < 100:
            line = c.raw_line()
            if line.startswith(b"* "):
                untagged.append(line)
                continue
            tag, _, rest = line.decode(errors="replace").partition(" ")
            got.append((tag, rest.split(" ", 1)[0]))
        assert got == want
        assert sum(1 for l in untagged if l.startswith(b"* 1 FETCH (FLAGS")) == 10, untagged
        assert c.ok("NOOP") == []
