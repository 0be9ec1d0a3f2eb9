"""Access rules and flow control (seed 3.3.2): levels, priorities, ranges,
per-address and rate limits, listener and service connection caps."""

import re
import ssl

import pytest

from harness import Client, admitted, free_port, listener, refused, service_conf

DENIED = "denied by rule"


def deny(*ips, **kw):
    return dict(action="deny", ips=list(ips), **kw)


def allow(*ips, **kw):
    return dict(action="allow", ips=list(ips), **kw)


@pytest.fixture(scope="module")
def srv(module_instance):
    """Global rules as `petrelctl init` writes them (allow 127.0.0.0/8 and
    ::1 at priority 100) plus one at priority 1 that a listener's own rule
    must still override; one listener per case."""
    inst = module_instance("rules")
    inst.set_global_rules([allow("127.0.0.0/8", "::1", priority=100),
                           allow("127.0.0.1", priority=1)])
    cases = {
        "deny": [deny("127.0.0.1")],
        "specific": [deny("127.0.0.0/8")],
        "priority": [allow("127.0.0.0/8", priority=10), deny("127.0.0.5", priority=20),
                     deny("127.0.0.6", priority=5),
                     allow("127.0.0.7", priority=10), deny("127.0.0.7", priority=10)],
        "disabled": [deny("127.0.0.0/8", enable=False)],
        "range": [deny("127.0.0.10-127.0.0.20")],
        "peer": [allow("127.0.0.0/8", peer_max_connections=2)],
        "rate": [allow("127.0.0.0/8", peer_max_interval_connections=2,
                       peer_time_interval="1h")],
    }
    inst.ports = {name: free_port() for name in list(cases) + ["max", "tls"]}
    listeners = [listener(inst.ports[name], rules=rules) for name, rules in cases.items()]
    listeners.append(listener(inst.ports["max"], max_connections=2))
    listeners.append(listener(inst.ports["tls"], tls="implicit", rules=[deny("127.0.0.1")]))
    inst.write_confd("50-echo.conf", service_conf("echo", listeners=listeners))
    return inst.start()


def test_listener_deny_is_answered_and_logged(srv):
    port = srv.ports["deny"]
    since = srv.log_size()
    refused(port, DENIED)
    m = srv.wait_log(r"info: echo: conn \d+ \[127\.0\.0\.1\]:\d+ refused on "
                     rf"127\.0\.0\.1:{port}: denied by rule at conf\.d/50-echo\.conf:(\d+)",
                     since=since)
    assert int(m.group(1)) > 1
    # Another address of 127.0.0.0/8 is not matched by the listener rule.
    admitted(port, source="127.0.0.2")
    st = srv.stats()
    assert st["core.connections.refused"] >= 1


def test_deny_on_a_tls_listener_closes_before_the_handshake(srv):
    since = srv.log_size()
    with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError, OSError)):
        Client(srv.ports["tls"], tls=True).close()
    srv.wait_log(rf"refused on 127\.0\.0\.1:{srv.ports['tls']}: denied by rule", since=since)
    with Client(srv.ports["tls"], tls=True, source="127.0.0.2") as c:
        assert c.cmd("INFO") == "+OK tls=yes peer=127.0.0.2 sni=-"


def test_more_specific_level_wins_over_priority(srv):
    """The global level allows 127.0.0.1 at priority 1, but the listener
    level has a matching deny: the most specific level decides."""
    refused(srv.ports["specific"], DENIED)
    refused(srv.ports["specific"], DENIED, source="127.0.0.9")


def test_priority_lower_number_wins_and_deny_wins_ties(srv):
    port = srv.ports["priority"]
    admitted(port, source="127.0.0.4")            # only the allow matches
    admitted(port, source="127.0.0.5")            # allow 10 beats deny 20
    refused(port, DENIED, source="127.0.0.6")     # deny 5 beats allow 10
    refused(port, DENIED, source="127.0.0.7")     # tie at 10: deny wins


def test_disabled_rule_is_ignored(srv):
    admitted(srv.ports["disabled"])
    admitted(srv.ports["disabled"], source="127.0.0.3")


@pytest.mark.parametrize("source,denied", [
    ("127.0.0.9", False), ("127.0.0.10", True), ("127.0.0.15", True), ("127.0.0.20", True),
    ("127.0.0.21", False)])
def test_address_range(srv, source, denied):
    if denied:
        refused(srv.ports["range"], DENIED, source=source)
    else:
        admitted(srv.ports["range"], source=source)


def test_peer_max_connections(srv):
    port = srv.ports["peer"]
    a = Client(port)
    b = Client(port)
    try:
        assert a.greeting == b.greeting == "+OK petrel echo ready"
        refused(port, "too many connections from this address")
        # Other addresses have their own count.
        other = [Client(port, source="127.0.0.2"), Client(port, source="127.0.0.2")]
        for c in other:
            assert c.cmd("ECHO x") == "+OK x"
        refused(port, "too many connections from this address", source="127.0.0.2")
        for c in other:
            c.close()
        # Both still work; closing one frees a place.
        assert a.cmd("ECHO a") == "+OK a"
        assert b.cmd("ECHO b") == "+OK b"
        assert b.cmd("QUIT") == "+OK bye"
        b.expect_eof()
    finally:
        a.close()
        b.close()
    srv.wait_idle()
    with Client(port) as c, Client(port) as d:
        assert c.cmd("ECHO again") == "+OK again"
        assert d.cmd("ECHO again") == "+OK again"


def test_peer_rate_limit(srv):
    port = srv.ports["rate"]
    admitted(port, source="127.0.0.30")
    admitted(port, source="127.0.0.30")
    # Closed or not, a third connection within the interval is refused.
    refused(port, "too many connections from this address in the time interval",
            source="127.0.0.30")
    admitted(port, source="127.0.0.31")


def test_listener_max_connections(srv):
    port = srv.ports["max"]
    a = Client(port)
    b = Client(port, source="127.0.0.2")
    try:
        refused(port, "too many connections", source="127.0.0.3")
        # Other listeners are not affected.
        admitted(srv.ports["disabled"], source="127.0.0.3")
    finally:
        a.close()
        b.close()
    srv.wait_idle()
    admitted(port, source="127.0.0.3")


@pytest.fixture(scope="module")
def srv_global_deny(module_instance):
    """Global level denies 127.0.0.0/8; the service and listeners allow some
    addresses back, and the service takes at most 3 connections."""
    inst = module_instance("rules-global")
    inst.set_global_rules([deny("127.0.0.0/8")])
    inst.ports = {"allow1": free_port(), "deny3": free_port()}
    inst.write_confd("50-echo.conf", service_conf(
        "echo",
        max_connections=3,
        rules=[allow("127.0.0.3"), allow("127.0.0.4")],
        listeners=[listener(inst.ports["allow1"], rules=[allow("127.0.0.1")]),
                   listener(inst.ports["deny3"], rules=[deny("127.0.0.3")])]))
    return inst.start()


def test_listener_allow_beats_global_deny(srv_global_deny):
    port = srv_global_deny.ports["allow1"]
    admitted(port)
    refused(port, DENIED, source="127.0.0.2")


def test_service_level_between_listener_and_global(srv_global_deny):
    s = srv_global_deny
    admitted(s.ports["allow1"], source="127.0.0.3")      # service allow beats global deny
    admitted(s.ports["deny3"], source="127.0.0.4")       # service allow, listener silent
    refused(s.ports["deny3"], DENIED, source="127.0.0.3")  # listener deny beats service allow
    refused(s.ports["deny3"], DENIED, source="127.0.0.2")  # only the global rule matches


def test_service_max_connections(srv_global_deny):
    s = srv_global_deny
    s.wait_idle()
    clients = [Client(s.ports["allow1"]), Client(s.ports["allow1"], source="127.0.0.4"),
               Client(s.ports["deny3"], source="127.0.0.4")]
    try:
        for c in clients:
            assert c.cmd("ECHO in") == "+OK in"
        refused(s.ports["allow1"], "too many connections to the service")
        refused(s.ports["deny3"], "too many connections to the service", source="127.0.0.4")
        r = s.ctl("modules")
        assert re.search(r"^module echo 1\.0 \S+ connections=3$", r.stdout, re.M), r.stdout
    finally:
        for c in clients:
            c.close()
    s.wait_idle()
    admitted(s.ports["allow1"])
