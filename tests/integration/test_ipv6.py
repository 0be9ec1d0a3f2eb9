"""Listening on IPv6 loopback."""

import socket

import pytest

from harness import Client, free_port, listener, refused, service_conf


def ipv6_loopback_usable():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not ipv6_loopback_usable(), reason="::1 cannot be bound here")


def test_ipv6_listener(make_instance):
    inst = make_instance("ipv6")
    port, tls_port, deny_port = free_port("::1"), free_port("::1"), free_port("::1")
    inst.write_confd("50-echo.conf", service_conf("echo", listeners=[
        listener(port, host="::1"),
        listener(tls_port, host="::1", tls="implicit"),
        listener(deny_port, host="::1", rules=[dict(action="deny", ips=["::1/128"])]),
    ]))
    inst.start()
    inst.wait_log(rf"listening on \[::1\]:{port} for echo \(none\)")
    with Client(port, host="::1") as c:
        assert c.greeting == "+OK petrel echo ready"
        assert c.cmd("INFO") == "+OK tls=no peer=::1 sni=-"
    with Client(tls_port, host="::1", tls=True) as c:
        assert c.cmd("INFO") == "+OK tls=yes peer=::1 sni=-"
    refused(deny_port, "denied by rule", host="::1")
    # An IPv6 listener does not take IPv4 clients.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    r = inst.ctl("modules")
    assert f"  listener [::1]:{port} protocol=echo tls=none\n" in r.stdout
