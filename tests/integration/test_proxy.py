"""The PROXY protocol (HAProxy v1 and v2) on listeners behind a proxy."""

import socket
import struct

import pytest

from harness import BioTLS, Client, free_port, listener, service_conf

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst="127.0.0.1", sport=5555, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst="127.0.0.1", sport=5555, dport=25, command=0x1):
    if ":" in src:
        fam = 0x21
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam = 0x11
        addrs = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    body = addrs + struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


@pytest.fixture(scope="module")
def srv(module_instance):
    inst = module_instance("proxy")
    inst.ports = {"proxy": free_port(), "deny": free_port(), "tls": free_port()}
    common = dict(proxy_protocol=True, proxy_from=["127.0.0.1"])
    inst.write_confd("50-echo.conf", service_conf(
        "echo",
        listeners=[
            listener(inst.ports["proxy"], **common),
            listener(inst.ports["deny"], **common,
                     rules=[dict(action="deny", ips=["192.0.2.0/24"])]),
            listener(inst.ports["tls"], tls="implicit", **common),
        ]))
    return inst.start()


def proxied(port, header, **kw):
    c = Client(port, greeting=False, **kw)
    c.send(header)
    return c


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
def test_proxy_header_sets_the_peer(srv, make):
    with proxied(srv.ports["proxy"], make("192.0.2.7")) as c:
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=192.0.2.7 sni=-"
    with proxied(srv.ports["proxy"], make("2001:db8::5", dst="2001:db8::1")) as c:
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=2001:db8::5 sni=-"


def test_proxy_header_and_command_in_one_packet(srv):
    with proxied(srv.ports["proxy"], v1("192.0.2.8") + b"INFO\r\n") as c:
        assert c.line() == "+OK petrel echo ready"
        assert c.line() == "+OK tls=no peer=192.0.2.8 sni=-"


def test_proxy_header_in_pieces(srv):
    header = v2("192.0.2.9")
    with Client(srv.ports["proxy"], greeting=False) as c:
        for i in range(0, len(header), 5):
            c.send(header[i:i + 5])
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=192.0.2.9 sni=-"


def test_proxy_local_and_unknown_keep_the_socket_address(srv):
    with proxied(srv.ports["proxy"], b"PROXY UNKNOWN\r\n") as c:
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=127.0.0.1 sni=-"
    with proxied(srv.ports["proxy"], v2("192.0.2.7", command=0x0)) as c:
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=127.0.0.1 sni=-"


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
def test_rules_apply_to_the_proxied_address(srv, make):
    since = srv.log_size()
    with proxied(srv.ports["deny"], make("192.0.2.7")) as c:
        assert c.line() == "-ERR access denied: denied by rule"
        c.expect_eof()
    srv.wait_log(rf"conn \d+ \[192\.0\.2\.7\]:5555 refused on 127\.0\.0\.1:{srv.ports['deny']}"
                 r": denied by rule", since=since)
    with proxied(srv.ports["deny"], make("198.51.100.1")) as c:
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=198.51.100.1 sni=-"


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.0\r\n\r\n",
    b"PROXY TCP4 192.0.2.7 127.0.0.1 5555\r\n",
    b"PROXY TCP4 300.0.2.7 127.0.0.1 5555 25\r\n",
    b"ECHO hi\r\n",
    V2_SIG + b"\x21\x11\xff\xff",
], ids=["http", "v1-short", "v1-bad-ip", "command", "v2-huge"])
def test_garbage_header_closes(srv, garbage):
    since = srv.log_size()
    with Client(srv.ports["proxy"], greeting=False) as c:
        c.send(garbage)
        c.expect_eof()
    srv.wait_log(r"bad PROXY protocol header", since=since)


def test_client_not_in_proxy_from_is_direct(srv):
    with Client(srv.ports["proxy"], source="127.0.0.2") as c:
        assert c.greeting == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=127.0.0.2 sni=-"
    # ... and a header from it is not believed: it is just a bad command.
    with Client(srv.ports["proxy"], source="127.0.0.2") as c:
        assert c.cmd(v1("192.0.2.7").decode().strip()) == "-ERR unknown command"
        assert c.cmd("INFO") == "+OK tls=no peer=127.0.0.2 sni=-"


@pytest.mark.parametrize("make", [v1, v2], ids=["v1", "v2"])
def test_proxy_then_implicit_tls(srv, make):
    """A TLS listener behind a proxy: the ClientHello that follows the
    header in the same packet must not be lost."""
    with socket.create_connection(("127.0.0.1", srv.ports["tls"]), timeout=5) as sock:
        tls = BioTLS(sock, prefix=make("192.0.2.7"))
        assert tls.line() == "+OK petrel echo ready"
        assert tls.cmd("INFO") == "+OK tls=yes peer=192.0.2.7 sni=-"
    # A header sent alone, then the handshake.
    with Client(srv.ports["tls"], greeting=False) as c:
        c.send(make("192.0.2.8"))
        c.starttls()
        assert c.line() == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=yes peer=192.0.2.8 sni=-"
