"""smtp_out per-destination limits and reuse by server address:
destination_rate_delay / a destination_limits rate_delay spaces the starts
of deliveries to one domain without holding up other domains; a
destination_limits max_connections caps one domain's sessions while
another gets several; a bad destination_limits list is refused by
--check-config; domains whose MX records name the same server share its
connections, except where the TLS policy asks more than the connection
was checked for.

Uses test_smtp_out.py's instance and helpers. Times are taken at the
sinks and only lower bounds are asserted (a delay is at least so long),
never how fast anything went."""

import time

import pytest

import smtp_sink as sink_module
from dns_helpers import mail_dns  # noqa: F401 (fixture)
from smtp_sink import make_cert, smtp_sink  # noqa: F401 (fixture)
from test_smtp_out import MX1, MX2, MX3, OUT, outbound, wait_messages  # noqa: F401

OTHER = "other.test"


@pytest.fixture
def timed(monkeypatch):
    """Each sink transaction records when its MAIL arrived (tx.at), and
    each sink its most sessions open at once (sink.most); slow(seconds)
    makes every sink wait that long before answering the end of data."""
    init, run, finish = (sink_module.Transaction.__init__, sink_module._SessionRunner.run,
                         sink_module._SessionRunner.finish)
    delay = {"s": 0.0}

    def tx_init(self, *args, **kw):
        init(self, *args, **kw)
        self.at = time.monotonic()

    def counted_run(self):
        sink = self.sink
        with sink.lock:
            sink.open_now = getattr(sink, "open_now", 0) + 1
            sink.most = max(getattr(sink, "most", 0), sink.open_now)
        try:
            return run(self)
        finally:
            with sink.lock:
                sink.open_now -= 1

    def slow_finish(self, tx):
        time.sleep(delay["s"])
        return finish(self, tx)

    monkeypatch.setattr(sink_module.Transaction, "__init__", tx_init)
    monkeypatch.setattr(sink_module._SessionRunner, "run", counted_run)
    monkeypatch.setattr(sink_module._SessionRunner, "finish", slow_finish)
    return lambda seconds: delay.update(s=seconds)


@pytest.fixture
def other_domain(mail_dns):
    """other.test: MX 10 mx.other.test (MX2)."""
    mail_dns.mx(OTHER, (10, f"mx.{OTHER}"))
    mail_dns.host(f"mx.{OTHER}", MX2)
    return mail_dns


# --- rate delay ----------------------------------------------------------------------


def test_rate_delay_spaces_one_domain_only(outbound, smtp_sink, other_domain, timed):
    srv = outbound(destination_limits=[{"domain": OUT.upper(), "rate_delay": "1s"}]).start()
    sink = smtp_sink(MX1, srv.port)
    other = smtp_sink(MX2, srv.port)
    for i in range(4):
        srv.send([f"bob@{OUT}"], subject=f"paced {i}")
    srv.send([f"carol@{OTHER}"], subject="not paced")
    [o] = wait_messages(other, 1, srv)
    msgs = wait_messages(sink, 4, srv)
    srv.wait_empty()
    starts = sorted(m.at for m in msgs)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # At least the delay between two starts (less the difference between
    # a first session's connection and a reused one's).
    assert all(g >= 0.8 for g in gaps), gaps
    assert o.at < starts[-1]  # the other domain did not wait for them
    assert "rate delay" in srv.log()


def test_global_rate_delay_and_exemption(outbound, smtp_sink, other_domain, timed):
    """destination_rate_delay for all, rate_delay = 0 for one domain."""
    srv = outbound(destination_rate_delay="1s",
                   destination_limits=[{"domain": OTHER, "rate_delay": "0"}]).start()
    sink = smtp_sink(MX1, srv.port)
    other = smtp_sink(MX2, srv.port)
    for i in range(2):
        srv.send([f"bob@{OUT}"], subject=f"paced {i}")
    msgs = wait_messages(sink, 2, srv)
    assert abs(msgs[1].at - msgs[0].at) >= 0.8
    for i in range(2):
        srv.send([f"carol@{OTHER}"], subject=f"exempt {i}")
    wait_messages(other, 2, srv)
    srv.wait_empty()


# --- concurrency per destination -----------------------------------------------------


def test_max_connections_per_domain(outbound, smtp_sink, other_domain, timed):
    timed(1.0)  # each message takes a second at the sinks: sessions overlap
    srv = outbound(destination_limits=[{"domain": OUT, "max_connections": 1}]).start()
    sink = smtp_sink(MX1, srv.port)
    other = smtp_sink(MX2, srv.port)
    for i in range(3):
        srv.send([f"bob@{OUT}"], subject=f"one at a time {i}")
        srv.send([f"carol@{OTHER}"], subject=f"in parallel {i}")
    wait_messages(sink, 3, srv)
    wait_messages(other, 3, srv)
    srv.wait_empty()
    assert sink.most == 1
    assert other.most >= 2


@pytest.mark.parametrize("limits, why", [
    ([{"domain": "a.test"}, {"domain": "A.test", "rate_delay": "1s"}], "listed twice"),
    ([{"domain": "a.test", "rate_delay": "soon"}], "rate_delay"),
    ([{"domain": "a.test", "rate_delay": "2h"}], "rate_delay"),
    ([{"domain": "a.test", "max_connections": 500}], "cannot exceed max_connections"),
    ([{"domain": "a..test"}], "not a domain name"),
])
def test_bad_destination_limits_refused(outbound, limits, why):
    srv = outbound(destination_limits=limits)
    rc, out = srv.inst.check_config()
    assert rc != 0, out
    assert "destination_limits" in out and why in out, out


def test_good_destination_limits_accepted(outbound):
    srv = outbound(destination_limits=[{"domain": ".example.com", "max_connections": 2},
                                       {"domain": "example.com", "rate_delay": "2m"}])
    rc, out = srv.inst.check_config()
    assert rc == 0, out


# --- reuse by server address ---------------------------------------------------------


@pytest.fixture
def shared_mx(mail_dns):
    """a.test and b.test: MX records naming mx.a.test and mx.b.test, both
    at MX3."""
    for d in ("a.test", "b.test"):
        mail_dns.mx(d, (10, f"mx.{d}"))
        mail_dns.host(f"mx.{d}", MX3)
    return mail_dns


def test_domains_at_one_server_share_a_connection(outbound, smtp_sink, shared_mx):
    srv = outbound(connection_reuse_time="60s").start()
    sink = smtp_sink(MX3, srv.port)
    for i in range(4):
        srv.send([f"bob@{'ab'[i % 2]}.test"], subject=f"shared {i}")
        wait_messages(sink, i + 1, srv)
    srv.wait_empty()
    assert sink.connections == 1
    assert len(sink.sessions[0].transactions) == 4
    assert srv.inst.stats()["smtp_out.reused"] == 3


def test_verify_policy_does_not_reuse_a_may_connection(outbound, smtp_sink, shared_mx, base_dir):
    """a.test (may) leaves a connection whose certificate was not verified
    for its name; b.test (verify, a certificate for mx.b.test) must not
    take it, and verifies a connection of its own."""
    cert, key = make_cert(base_dir / "certs-shared", "mx.b.test")
    srv = outbound(connection_reuse_time="60s", tls_ca_file=str(cert),
                   tls_policies=[{"domain": "b.test", "policy": "verify"}]).start()
    sink = smtp_sink(MX3, srv.port, tls_cert=cert, tls_key=key)
    srv.send(["bob@a.test"], subject="may")
    wait_messages(sink, 1, srv)
    srv.send(["bob@b.test"], subject="verify")
    msgs = wait_messages(sink, 2, srv)
    srv.wait_empty()
    assert sink.connections == 2
    assert msgs[1].rcpts == ["bob@b.test"] and msgs[1].tls
    assert msgs[1].session is not msgs[0].session


def test_one_connection_in_all_serves_both_domains(outbound, smtp_sink, shared_mx):
    """max_connections = 1: a message waiting for the only slot takes over
    the idle connection when it goes to the same server, and closes it
    when it does not (out.test's MX is elsewhere)."""
    srv = outbound(connection_reuse_time="60s", max_connections=1,
                   max_per_destination=1).start()
    sink = smtp_sink(MX3, srv.port)
    elsewhere = smtp_sink(MX1, srv.port)
    for i in range(6):
        srv.send([f"bob@{'ab'[i % 2]}.test"], subject=f"one slot {i}")
    wait_messages(sink, 6, srv)
    srv.wait_empty()
    assert sink.connections == 1
    srv.send([f"bob@{OUT}"], subject="elsewhere")
    wait_messages(elsewhere, 1, srv)
    srv.send(["bob@a.test"], subject="back")
    wait_messages(sink, 7, srv)
    srv.wait_empty()
    [first, *rest] = sink.wait_sessions(1)
    assert first.verbs()[-1] == "QUIT"  # closed to make room for out.test


def test_verify_reuses_a_connection_verified_for_the_same_mx_name(outbound, smtp_sink, mail_dns,
                                                                   base_dir):
    """c.test and d.test both name mx.shared.test: a connection verified
    for that name serves both under verify."""
    for d in ("c.test", "d.test"):
        mail_dns.mx(d, (10, "mx.shared.test"))
    mail_dns.host("mx.shared.test", MX3)
    cert, key = make_cert(base_dir / "certs-same", "mx.shared.test")
    srv = outbound(connection_reuse_time="60s", tls="verify", tls_ca_file=str(cert)).start()
    sink = smtp_sink(MX3, srv.port, tls_cert=cert, tls_key=key)
    for i, d in enumerate(("c.test", "d.test", "c.test")):
        srv.send([f"bob@{d}"], subject=f"verified {i}")
        wait_messages(sink, i + 1, srv)
    srv.wait_empty()
    assert sink.connections == 1
    assert all(m.tls for m in sink.messages)
