"""Outbound connections and loop timers, through the echo example's
ECHO-FETCH and TIMER (petrel_conn_connect, petrel_timer_add): plain, TLS
verified against a CA file and the name, a self-signed peer, a wrong
name, STARTTLS, a refused port, a server that never answers, a name
resolved, and a client that leaves before its fetch or timer ends."""

import os
import socket
import time

import pytest

from harness import SOCK_TIMEOUT, Client, free_port, listener, service_conf
from test_echo_tls import pem_der, subject_cn

GREETING = "+OK petrel echo ready"


@pytest.fixture(scope="module")
def srv(module_instance):
    inst = module_instance("outbound")
    inst.ports = {"plain": free_port(), "implicit": free_port(), "starttls": free_port()}
    inst.write_confd("50-echo.conf", service_conf(
        "echo",
        listeners=[listener(inst.ports["plain"]),
                   listener(inst.ports["implicit"], tls="implicit"),
                   listener(inst.ports["starttls"], tls="starttls")]))
    inst.start()
    inst.cert = inst.dir / "tls" / "cert.pem"
    inst.cert_name = subject_cn(pem_der(inst.cert))
    return inst


def fetch(srv, args, timeout=15):
    """ECHO-FETCH args from a fresh client; the line it reports."""
    with Client(srv.ports["plain"], timeout=timeout) as c:
        assert c.cmd(f"ECHO-FETCH {args}") == "+OK fetching"
        return c.line()


def test_plain(srv):
    assert fetch(srv, f"127.0.0.1 {srv.ports['plain']}") == f"* fetched {GREETING}"


def test_ipv6_and_a_name(srv):
    # The listeners are on 127.0.0.1 only: ::1 is refused, then localhost
    # (which resolves to both) reaches the IPv4 one.
    assert fetch(srv, f"::1 {srv.ports['plain']}").startswith("* fetch failed ::1 port ")
    assert fetch(srv, f"localhost {srv.ports['plain']}") == f"* fetched {GREETING}"


def test_refused(srv):
    port = free_port()
    assert fetch(srv, f"127.0.0.1 {port}") == \
        f"* fetch failed 127.0.0.1 port {port}: Connection refused"


def test_server_that_never_answers(srv):
    """A listener whose backlog is full drops new SYNs: the connect times
    out (ECHO-FETCH allows 5 s)."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):  # fill the queue without accepting
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            time.sleep(0.2)
            t0 = time.monotonic()
            got = fetch(srv, f"127.0.0.1 {port}")
            assert got == f"* fetch failed 127.0.0.1 port {port}: connection timed out", got
            assert time.monotonic() - t0 >= 4.5
        finally:
            for s in fillers:
                s.close()


def test_tls_verified_with_a_ca_file_and_the_name(srv):
    got = fetch(srv, f"127.0.0.1 {srv.ports['implicit']} tls ca={srv.cert} "
                     f"name={srv.cert_name}")
    assert got == f"* fetched {GREETING}"


def test_peer_certificate_for_dane(srv):
    """The module gets the peer's certificate in DER (what a TLSA record
    matches): here the self-signed one, a chain of one."""
    size = len(pem_der(srv.cert))
    got = fetch(srv, f"127.0.0.1 {srv.ports['implicit']} tls noverify showcert")
    assert got == f"* fetched {GREETING} certs={size}"


def test_tls_self_signed_peer_is_refused(srv):
    # Checked against the system's store: its own name, but nobody vouches.
    got = fetch(srv, f"127.0.0.1 {srv.ports['implicit']} tls name={srv.cert_name}")
    assert got == "* fetch failed TLS certificate of 127.0.0.1 not trusted: self-signed certificate"
    # By address: the certificate names no IP address either.
    got = fetch(srv, f"127.0.0.1 {srv.ports['implicit']} tls")
    assert got == "* fetch failed TLS certificate of 127.0.0.1 not trusted: IP address mismatch"


def test_tls_wrong_name_is_refused(srv):
    got = fetch(srv, f"127.0.0.1 {srv.ports['implicit']} tls ca={srv.cert} name=wrong.test")
    assert got == "* fetch failed TLS certificate of 127.0.0.1 not trusted: hostname mismatch"


def test_tls_without_verification(srv):
    got = fetch(srv, f"127.0.0.1 {srv.ports['implicit']} tls noverify")
    assert got == f"* fetched {GREETING}"


def test_tls_to_a_plaintext_server_fails(srv):
    got = fetch(srv, f"127.0.0.1 {srv.ports['plain']} tls noverify")
    assert got.startswith("* fetch failed TLS handshake failed: "), got


def test_starttls_upgrade(srv):
    got = fetch(srv, f"127.0.0.1 {srv.ports['starttls']} starttls ca={srv.cert} "
                     f"name={srv.cert_name}")
    assert got == f"* fetched +OK tls=yes peer=127.0.0.1 sni={srv.cert_name}"


def test_starttls_with_a_wrong_name(srv):
    got = fetch(srv, f"127.0.0.1 {srv.ports['starttls']} starttls ca={srv.cert} "
                     "name=wrong.test")
    assert got == "* fetch failed TLS: hostname mismatch"


def test_bad_arguments(srv):
    with Client(srv.ports["plain"]) as c:
        assert c.cmd("ECHO-FETCH").startswith("-ERR a host and a port")
        assert c.cmd("ECHO-FETCH 127.0.0.1 0").startswith("-ERR a host and a port from 1")
        assert c.cmd("ECHO-FETCH 127.0.0.1 25 sideways").startswith("-ERR ECHO-FETCH host")


def test_client_leaves_before_its_fetch_ends(srv):
    """The fetch outlives its client: it must end quietly, and the server
    go on (sanitizers would catch a use after free)."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)  # accepts in the kernel, never answers
        port = lsock.getsockname()[1]
        for _ in range(5):
            with Client(srv.ports["plain"]) as c:
                assert c.cmd(f"ECHO-FETCH 127.0.0.1 {port}") == "+OK fetching"
        with Client(srv.ports["plain"]) as c:
            assert c.cmd(f"ECHO-FETCH 127.0.0.1 {free_port()}") == "+OK fetching"
    assert fetch(srv, f"127.0.0.1 {srv.ports['plain']}") == f"* fetched {GREETING}"


def test_timer(srv):
    with Client(srv.ports["plain"]) as c:
        t0 = time.monotonic()
        assert c.cmd("TIMER 200") == "+OK timer in 200"
        assert c.line() == "* timer"
        assert time.monotonic() - t0 >= 0.2
        # Reset before it fires: one "* timer", at the later time.
        assert c.cmd("TIMER 5000") == "+OK timer in 5000"
        assert c.cmd("TIMER 100") == "+OK timer in 100"
        assert c.line() == "* timer"
        assert c.cmd("ECHO still here") == "+OK still here"
    with Client(srv.ports["plain"]) as c:  # leaves with its timer set
        assert c.cmd("TIMER 300") == "+OK timer in 300"
    time.sleep(0.5)
    with Client(srv.ports["plain"]) as c:
        assert c.cmd("ECHO alive") == "+OK alive"


def test_proxy_relays_both_ways(srv):
    with Client(srv.ports["plain"]) as c:
        c.send(f"ECHO-PROXY 127.0.0.1 {srv.ports['plain']}\r\n")
        assert c.line() == "+OK connected"
        assert c.line() == GREETING  # the back-end's, relayed
        assert c.cmd("ECHO through the proxy") == "+OK through the proxy"
        # Pipelined and larger than a read: all of it, in order.
        lines = [f"ECHO {i} " + "y" * 3000 for i in range(200)]
        c.send("".join(x + "\r\n" for x in lines))
        for x in lines:
            assert c.line() == "+OK " + x[5:]
        assert c.cmd("QUIT") == "+OK bye"
        c.expect_eof()  # the back-end closed: so does the front


def test_proxy_to_nowhere(srv):
    port = free_port()
    with Client(srv.ports["plain"]) as c:
        c.send(f"ECHO-PROXY 127.0.0.1 {port}\r\n")
        assert c.line() == f"* fetch failed 127.0.0.1 port {port}: Connection refused"
        assert c.cmd("ECHO still mine") == "+OK still mine"


def test_stream_a_part_at_a_time(srv):
    """4 MiB answered to a client that reads slowly at first: sent as it
    drains, never queued whole (the output limit, 4 x 256 KiB, would close
    the connection)."""
    n = 4096
    with Client(srv.ports["plain"], rcvbuf=8192) as c:
        c.send(f"STREAM {n}\r\n")
        time.sleep(1)  # the socket fills; the server must wait, not queue
        for i in range(n):
            assert c.line() == "x" * 1022, i
        assert c.line() == f"+OK streamed {n}"
        assert c.cmd("ECHO after") == "+OK after"


def test_timeout_set_by_the_module(srv):
    with Client(srv.ports["plain"]) as c:
        assert c.cmd("TIMEOUT 1") == "+OK timeout 1"
        t0 = time.monotonic()
        assert c.line() == "-ERR idle timeout, closing"
        assert 0.9 <= time.monotonic() - t0 < 5
        c.expect_eof()


def test_timers_across_reload_and_shutdown(srv):
    """A timer set before a reload fires after it; one still set when the
    server stops is dropped cleanly (the stop's sanitizer and log checks)."""
    with Client(srv.ports["plain"]) as c:
        assert c.cmd("TIMER 1500") == "+OK timer in 1500"
        since = srv.log_size()
        r = srv.ctl("reload")
        assert r.returncode == 0 and r.stdout == "OK\n", r.stdout + r.stderr
        srv.wait_log(r"info: core: configuration reloaded", since=since)
        assert c.line() == "* timer"
    c = Client(srv.ports["plain"])
    assert c.cmd("TIMER 10000") == "+OK timer in 10000"
    srv.stop()
    c.close()
    srv.start()  # the module-scoped instance serves the tests after this one


def resolv_conf_of_our_own(path):
    """preexec_fn: petreld in a mount namespace whose /etc/resolv.conf names
    only 127.0.0.1, where nothing answers: a name fails at once, and no
    query leaves the machine."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private, ms_bind = 0x20000, 0x4000, 0x40000, 0x1000

    def run():
        if libc.unshare(clone_newns) != 0 or \
                libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0 or \
                libc.mount(str(path).encode(), b"/etc/resolv.conf", None, ms_bind, None) != 0:
            raise OSError(ctypes.get_errno(), "unshare/mount")
    return run


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts over /etc/resolv.conf (CI runs as root)")
def test_name_that_does_not_resolve(make_instance, tmp_path):
    """The failure is reported once and the connection ends once (it was
    destroyed twice: the resolve job's end, then its failure)."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    resolv.chmod(0o644)
    inst = make_instance("noname")
    port = free_port()
    inst.write_confd("50-echo.conf", service_conf("echo", listeners=[listener(port)]))
    inst.start(preexec_fn=resolv_conf_of_our_own(resolv))
    for _ in range(3):
        with Client(port) as c:
            assert c.cmd("ECHO-FETCH nowhere.test 25") == "+OK fetching"
            got = c.line()
            assert got.startswith("* fetch failed cannot resolve nowhere.test: "), got
            assert c.cmd("ECHO still here") == "+OK still here"
    with Client(port) as c:
        assert c.cmd(f"ECHO-FETCH 127.0.0.1 {port}") == "+OK fetching"
        assert c.line() == f"* fetched {GREETING}"
    inst.stop()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_tls_relay_to_a_stalled_back_end_waits_quietly(srv):
    """A TLS client relayed to a back-end that never reads: once the
    back-end's side is full, petreld waits for it to drain. It spun at
    full CPU: TLS data still buffered in OpenSSL asked for another turn at
    once, every turn."""
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        lsock.settimeout(SOCK_TIMEOUT)
        port = lsock.getsockname()[1]
        with Client(srv.ports["implicit"], tls=True, timeout=20) as c:
            assert c.cmd(f"ECHO-PROXY 127.0.0.1 {port}") == "+OK connected"
            back, _ = lsock.accept()  # never read from
            c.sock.settimeout(0.2)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    c.sock.send(b"y" * 5000)
                except (socket.timeout, BlockingIOError, OSError):
                    pass
            before = cpu_seconds(srv.proc.pid)
            time.sleep(2)
            used = cpu_seconds(srv.proc.pid) - before
            back.close()
        assert used < 0.5, f"{used:.2f} s of CPU in 2 s while waiting"
