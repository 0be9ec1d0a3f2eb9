"""Line limits, idle timeouts, error limits, the worker pool and
back-pressure."""

import select
import socket
import ssl
import time

import pytest

from harness import BioTLS, Client, admitted, free_port, listener, rss_kib, service_conf

MAX_LINE = 100


@pytest.fixture(scope="module")
def srv(module_instance):
    inst = module_instance("limits")
    inst.ports = {"main": free_port(), "idle": free_port(), "bulk": free_port(),
                  "bulk_tls": free_port(), "tls": free_port()}
    inst.write_confd("50-echo.conf", service_conf(
        "echo",
        max_errors=3,
        workers=4,
        listeners=[listener(inst.ports["main"], max_line=MAX_LINE),
                   listener(inst.ports["idle"], idle_timeout=1),
                   # A small output cap: without back-pressure the answers
                   # to a client that does not read would overflow it.
                   listener(inst.ports["bulk"], max_output="4k"),
                   listener(inst.ports["bulk_tls"], max_output="4k", tls="implicit"),
                   listener(inst.ports["tls"], tls="implicit")]))
    return inst.start()


def test_line_too_long_then_connection_still_works(srv):
    with Client(srv.ports["main"]) as c:
        body = "x" * (MAX_LINE - len("ECHO "))
        assert c.cmd("ECHO " + body) == "+OK " + body  # exactly at the limit
        since = srv.log_size()
        assert c.cmd("ECHO " + body + "y") == "-ERR line too long"
        srv.wait_log(rf"line longer than {MAX_LINE} bytes discarded", since=since)
        # Far longer than the input buffer: consumed as it arrives.
        c.send("ECHO " + "z" * 200000 + "\r\n")
        assert c.line() == "-ERR line too long"
        assert c.cmd("ECHO still here") == "+OK still here"


def test_idle_timeout(srv):
    with Client(srv.ports["idle"]) as c:
        assert c.cmd("ECHO quick") == "+OK quick"
        t0 = time.monotonic()
        assert c.line() == "-ERR idle timeout, closing"
        assert time.monotonic() - t0 < 4
        c.expect_eof()
    srv.wait_log(r"idle for 1s: closing")


def test_idle_timeout_is_never_early(srv):
    """idle_timeout = 1 means at least a second of silence, whenever in the
    second the client spoke last. (A lower bound only: a loaded machine
    can make the daemon late, never early.)"""
    clients = []
    try:
        for i in range(5):
            c = Client(srv.ports["idle"])
            assert c.cmd(f"ECHO {i}") == f"+OK {i}"
            clients.append((c, time.monotonic()))
            time.sleep(0.17)
        waiting = {c.sock: (c, spoke) for c, spoke in clients}
        deadline = time.monotonic() + 10
        while waiting and time.monotonic() < deadline:
            for sock in select.select(list(waiting), [], [], 1)[0]:
                c, spoke = waiting.pop(sock)
                idle = time.monotonic() - spoke
                assert c.line() == "-ERR idle timeout, closing"
                assert idle >= 0.9, f"closed after {idle:.3f}s of silence"
        assert not waiting
    finally:
        for c, _ in clients:
            c.close()


def test_idle_timeout_does_not_cut_a_busy_connection(srv):
    with Client(srv.ports["idle"]) as c:
        assert c.cmd("SLOW 2200") == "+OK slept 2200"
        assert c.cmd("ECHO alive") == "+OK alive"


def test_max_errors(srv):
    since = srv.log_size()
    with Client(srv.ports["main"]) as c:
        assert c.cmd("BOGUS") == "-ERR unknown command"
        assert c.cmd("ECHO fine") == "+OK fine"
        assert c.cmd("SLOW x") == "-ERR SLOW takes milliseconds from 0 to 10000"
        assert c.cmd("BOGUS") == "-ERR unknown command; too many errors, closing"
        c.expect_eof()
    srv.wait_log(r"too many errors \(3\): closing", since=since)


def test_nul_byte_in_command(srv):
    with Client(srv.ports["main"]) as c:
        assert c.cmd("ECH\0O x") == "-ERR NUL byte in command"
        c.send(b"\0\r\n")
        assert c.line() == "-ERR NUL byte in command"
        assert c.cmd("ECHO ok") == "+OK ok"
    admitted(srv.ports["main"])


def test_binary_garbage_does_not_crash(srv):
    with Client(srv.ports["bulk"]) as c:
        c.send(bytes(range(256)).replace(b"\n", b"") + b"\r\n")
        assert c.line() == "-ERR NUL byte in command"
        c.send(b"\xff\xfe\r\n\r\n")
        assert c.line() == "-ERR unknown command"
        assert c.line() == "-ERR unknown command; too many errors, closing"
        c.expect_eof()
    admitted(srv.ports["main"])


def test_client_gone_during_a_job(srv):
    """The job's answer has nowhere to go; the daemon must not mind."""
    for _ in range(3):
        c = Client(srv.ports["main"])
        c.send("SLOW 200\r\nECHO never\r\n")
        c.close()
    srv.wait_idle()
    admitted(srv.ports["main"])


def test_half_closed_client_gets_all_its_answers(srv):
    with Client(srv.ports["bulk"]) as c:
        c.send("".join(f"ECHO {i}\r\n" for i in range(2000)) + "SLOW 100\r\nECHO end\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        for i in range(2000):  # past the 4k output cap: held input after EOF
            assert c.line() == f"+OK {i}"
        assert c.line() == "+OK slept 100"
        assert c.line() == "+OK end"
        c.expect_eof()


def test_worker_pool_parallel_slow(srv):
    clients = [Client(srv.ports["main"]) for _ in range(6)]
    try:
        for c in clients:
            c.send("SLOW 500\r\n")
        for c in clients:
            assert c.line() == "+OK slept 500"
    finally:
        for c in clients:
            c.close()


def test_pipelined_command_waits_for_the_job(srv):
    """One handler at a time per connection: what follows SLOW in the same
    packet is answered after it, in order."""
    with Client(srv.ports["main"]) as c:
        c.send("SLOW 300\r\nECHO after\r\nSLOW 0\r\nECHO last\r\n")
        assert [c.line() for _ in range(4)] == \
            ["+OK slept 300", "+OK after", "+OK slept 0", "+OK last"]


@pytest.mark.parametrize("records", [2, 3, 7])
def test_tls_pipelined_burst(srv, records):
    """Commands that fill several whole TLS records (16 KiB each), sent at
    once: a record that does not fit what is left of the input buffer
    leaves bytes inside OpenSSL, which no socket event announces; the
    daemon must still answer every command."""
    size = records * 16384
    lines = []
    total = 0
    while size - total > 200:
        lines.append(f"ECHO {len(lines):05d} {'r' * (37 + len(lines) % 50)}\r\n")
        total += len(lines[-1])
    lines.append("ECHO last " + "s" * (size - total - 12) + "\r\n")
    assert sum(map(len, lines)) == size
    with Client(srv.ports["tls"], tls=True) as c:
        c.send("".join(lines))
        for i, line in enumerate(lines):
            assert c.line() == "+OK " + line[5:-2], i
        assert c.cmd("ECHO end") == "+OK end"


def bulk_exchange(sock, tls, data, on_stall, timeout=60):
    """Write data without reading until the daemon stops taking it (or it
    is all written), call on_stall(bytes written), then write the rest
    while reading every answer. One thread and select(): a TLS connection
    (tls, a BioTLS) must not be driven from two. Returns the answers."""
    sock.setblocking(False)
    pos, wire, plain, answers = 0, b"", b"", []
    expected = data.count(b"\n")
    reading = False
    deadline = time.monotonic() + timeout
    while len(answers) < expected or pos < len(data) or wire:
        assert time.monotonic() < deadline, f"{len(answers)}/{expected} answers"
        if not wire and pos < len(data):
            chunk = data[pos:pos + 16384]
            pos += len(chunk)
            if tls is None:
                wire = chunk
            else:
                tls.obj.write(chunk)
                wire = tls.outgoing.read()
        readable, writable, _ = select.select([sock] if reading else [], [sock] if wire else [],
                                              [], 0.5)
        if not readable and not writable:
            if not reading:
                on_stall(pos - len(wire))
                reading = True
            continue
        if writable:
            wire = wire[sock.send(wire):]
        if readable:
            raw = sock.recv(262144)
            assert raw, f"closed after {len(answers)}/{expected} answers"
            if tls is None:
                plain += raw
            else:
                tls.incoming.write(raw)
                try:
                    while True:
                        plain += tls.obj.read(262144)
                except ssl.SSLWantReadError:
                    pass
            *done, plain = plain.split(b"\r\n")
            answers += done
        if not reading and pos >= len(data) and not wire:
            on_stall(pos)  # the kernel took it all
            reading = True
    assert plain == b""
    return answers


@pytest.mark.parametrize("mode", ["plain", "tls"])
def test_back_pressure(srv, mode):
    """A client that writes 5 MB of commands without reading its answers:
    the daemon stops reading it, keeps serving others, its memory stays
    bounded, and the answers all come, in order, once the client reads.
    The kernel's socket buffers may take much of the 5 MB; what the daemon
    must not do is read on, as 5 MB of answers is far past the connection's
    output cap (4 x max_output = 16k here), which would close it."""
    total = 5 * 1024 * 1024
    lines = []
    size = 0
    while size < total:
        lines.append(f"ECHO {len(lines):07d} {'p' * 90}\r\n".encode())
        size += len(lines[-1])
    data = b"".join(lines)
    base_rss = rss_kib(srv.pid)
    since = srv.log_size()
    port = srv.ports["bulk" if mode == "plain" else "bulk_tls"]
    sock = socket.socket()
    sock.settimeout(5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    peak = [0]

    def on_stall(written):
        peak[0] = rss_kib(srv.pid)
        # Others are still served meanwhile.
        admitted(srv.ports["bulk"])
        admitted(srv.ports["main"])

    try:
        sock.connect(("127.0.0.1", port))
        tls = BioTLS(sock) if mode == "tls" else None
        if tls is None:
            greeting = b""
            while not greeting.endswith(b"\r\n"):
                greeting += sock.recv(1)
            greeting = greeting[:-2].decode()
        else:
            greeting = tls.line()
        answers = bulk_exchange(sock, tls, data, on_stall)
    finally:
        sock.close()
    assert greeting == "+OK petrel echo ready"
    assert len(answers) == len(lines)
    for i, answer in enumerate(answers):
        assert answer == f"+OK {i:07d} {'p' * 90}".encode(), (i, answer)
    peak[0] = max(peak[0], rss_kib(srv.pid))
    assert 0 < peak[0] < 200 * 1024, f"RSS {peak[0]} KiB (started at {base_rss} KiB)"
    assert "output limit" not in srv.log()[since:]
