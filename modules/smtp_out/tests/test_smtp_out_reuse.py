"""smtp_out connection reuse and relay hosts (issue 12): several messages
to one next hop over one connection (within connection_reuse_limit and
connection_reuse_time), a cached connection the server dropped replaced
without losing mail; relay_host with and without brackets, relay_domains,
implicit TLS, AUTH PLAIN/LOGIN after STARTTLS, a refused AUTH deferred
(never bounced), and a credentials file others may read refused at start.

Uses test_smtp_out.py's instance and helpers. Every wait is a bounded
poll; nothing asserts how long a step took."""

import os

import pytest

from dns_helpers import mail_dns  # noqa: F401 (fixture)
from smtp_sink import make_cert, smtp_sink  # noqa: F401 (fixture)
from test_smtp_out import ALICE, MX1, MX2, MX3, OUT, outbound, wait_messages  # noqa: F401

RELAY = "relay.test"
USER, PASSWORD = "relayuser", "s3cret pass word"


def send_one_by_one(srv, sink, n, prefix="msg"):
    """n messages to bob@OUT, each sent once the one before has arrived
    (so they are one after another, never in parallel)."""
    for i in range(n):
        srv.send([f"bob@{OUT}"], subject=f"{prefix} {i}")
        wait_messages(sink, i + 1, srv)
    srv.wait_empty()


# --- connection reuse ---------------------------------------------------------------


def test_messages_share_one_connection(outbound, smtp_sink):
    srv = outbound(connection_reuse_time="60s").start()
    sink = smtp_sink(MX1, srv.port)
    send_one_by_one(srv, sink, 3)
    assert sink.connections == 1
    [sess] = sink.sessions
    assert len(sess.transactions) == 3
    assert sess.verbs().count("EHLO") == 1
    assert "RSET" not in sess.verbs()  # each transaction ended well
    stats = srv.inst.stats()
    assert stats["smtp_out.reused"] == 2, stats
    assert stats["smtp_out.connections"] == 1, stats
    srv.stop()  # the idle connection is closed politely at stop
    [sess] = sink.wait_sessions(1)
    assert sess.verbs()[-1] == "QUIT"


def test_reuse_limit_opens_a_new_connection(outbound, smtp_sink):
    srv = outbound(connection_reuse_time="60s", connection_reuse_limit=2).start()
    sink = smtp_sink(MX1, srv.port)
    send_one_by_one(srv, sink, 3)
    first = sink.wait_sessions(1)[0]  # ended: QUIT after its second message
    assert len(first.transactions) == 2
    assert first.verbs()[-1] == "QUIT"
    assert sink.connections == 2
    assert len(sink.sessions[1].transactions) == 1


def test_idle_timeout_sends_quit(outbound, smtp_sink):
    srv = outbound(connection_reuse_time="1s").start()
    sink = smtp_sink(MX1, srv.port)
    send_one_by_one(srv, sink, 1)
    [sess] = sink.wait_sessions(1)
    assert sess.ended == "quit" and sess.verbs()[-1] == "QUIT"
    send_one_by_one(srv, sink, 1, prefix="later")
    assert sink.connections == 2


def test_reuse_disabled(outbound, smtp_sink):
    srv = outbound(connection_reuse_time=0).start()
    sink = smtp_sink(MX1, srv.port)
    send_one_by_one(srv, sink, 2)
    assert sink.connections == 2
    assert all(s.verbs()[-1] == "QUIT" for s in sink.wait_sessions(2))


def test_dropped_cached_connection_is_replaced(outbound, smtp_sink):
    srv = outbound(connection_reuse_time="60s").start()
    sink = smtp_sink(MX1, srv.port)
    send_one_by_one(srv, sink, 1)
    sink.close_connections()  # the server hangs up on the idle connection
    sink.wait_sessions(1)
    srv.send([f"bob@{OUT}"], subject="after the drop")
    msgs = wait_messages(sink, 2, srv)
    assert b"Subject: after the drop\r\n" in msgs[1].data
    srv.wait_empty()
    assert sink.connections == 2
    assert srv.messages(ALICE) == []


def test_421_on_a_cached_connection_goes_the_normal_path(outbound, smtp_sink):
    """The second MAIL (on the cached connection) gets 421 and a close:
    the message goes on a new connection, not deferred, not bounced."""
    srv = outbound(connection_reuse_time="60s").start()
    sink = smtp_sink(MX1, srv.port,
                     replies={"MAIL": ["250 2.1.0 Ok", "421 4.3.2 going away", "250 2.1.0 Ok"]})
    send_one_by_one(srv, sink, 2)
    assert sink.connections == 2
    assert sink.sessions[0].ended == "421"
    assert [len(s.transactions) for s in sink.sessions] == [1, 1]
    assert srv.messages(ALICE) == []


def test_failed_transaction_rset_before_reuse(outbound, smtp_sink):
    """Every recipient refused: the next message on the same connection
    starts with RSET."""
    srv = outbound(connection_reuse_time="60s").start()
    sink = smtp_sink(MX1, srv.port, rcpt_replies={f"nobody@{OUT}": "550 5.1.1 no such user"})
    srv.send([f"nobody@{OUT}"], subject="refused")
    srv.bounces(1)
    srv.send([f"bob@{OUT}"], subject="accepted")
    wait_messages(sink, 1, srv)
    srv.wait_empty()
    assert sink.connections == 1
    verbs = sink.sessions[0].verbs()
    assert verbs.index("RSET") < len(verbs) - 1 and verbs[verbs.index("RSET") + 1] == "MAIL"


# --- relay hosts ----------------------------------------------------------------------


@pytest.fixture
def relay_dns(mail_dns):
    """relay.test: MX 10 smart.relay.test (MX2), and an A record of its
    own (MX3) for the bracketed form."""
    mail_dns.mx(RELAY, (10, f"smart.{RELAY}"))
    mail_dns.host(f"smart.{RELAY}", MX2)
    mail_dns.host(RELAY, MX3)
    return mail_dns


def test_relay_host_by_mx(outbound, smtp_sink, relay_dns):
    srv = outbound()
    srv.configure(relay_host=f"{RELAY}:{srv.port}")
    srv.start()
    sink = smtp_sink(MX2, srv.port)
    srv.send([f"bob@{OUT}"])
    [m] = wait_messages(sink, 1, srv)
    assert m.rcpts == [f"bob@{OUT}"]
    srv.wait_empty()
    assert relay_dns.asked(RELAY, 15) >= 1  # no brackets: its MX


def test_relay_host_in_brackets_and_relay_domains(outbound, smtp_sink, relay_dns):
    """[relay.test]: its A record, not its MX; other.test by relay_domains
    to [127.0.0.5] (the port from `port`)."""
    srv = outbound()
    srv.configure(relay_host=f"[{RELAY}]:{srv.port}",
                  relay_domains=[{"domain": "other.test", "host": "[127.0.0.5]"}])
    srv.start()
    sink = smtp_sink(MX3, srv.port)
    other = smtp_sink("127.0.0.5", srv.port)
    srv.send([f"bob@{OUT}"], subject="bracketed")
    srv.send(["carol@other.test"], subject="per domain")
    [m] = wait_messages(sink, 1, srv)
    assert m.rcpts == [f"bob@{OUT}"]
    [o] = wait_messages(other, 1, srv)
    assert o.rcpts == ["carol@other.test"]
    srv.wait_empty()
    assert relay_dns.asked(RELAY, 15) == 0  # brackets: no MX lookup
    assert relay_dns.asked(RELAY, 1) >= 1


def test_relay_implicit_tls(outbound, smtp_sink, base_dir):
    cert, key = make_cert(base_dir / "certs-465", "smtps.relay.test")
    srv = outbound()
    srv.configure(relay_host=f"[{MX2}]:{srv.port}", relay_tls="implicit")
    srv.start()
    sink = smtp_sink(MX2, srv.port, tls_cert=cert, tls_key=key, implicit_tls=True)
    srv.send([f"bob@{OUT}"])
    [m] = wait_messages(sink, 1, srv)
    assert m.tls
    assert "STARTTLS" not in sink.sessions[0].verbs()
    srv.wait_empty()


def creds_file(base_dir, mode=0o600, text=f"{USER} {PASSWORD}\n"):
    path = base_dir / "relay-auth"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def auth_relay(outbound, smtp_sink, base_dir, **sink_settings):
    cert, key = make_cert(base_dir / "certs-auth", "auth.relay.test")
    srv = outbound()
    srv.configure(relay_host=f"[{MX2}]", relay_auth_file=creds_file(base_dir))
    srv.start()
    sink = smtp_sink(MX2, srv.port, tls_cert=cert, tls_key=key, **sink_settings)
    return srv, sink


@pytest.mark.parametrize("mechs", [["PLAIN", "LOGIN"], ["LOGIN"]])
def test_relay_auth_after_starttls(outbound, smtp_sink, base_dir, mechs):
    srv, sink = auth_relay(outbound, smtp_sink, base_dir, auth=mechs,
                           auth_users={USER: PASSWORD})
    srv.send([f"bob@{OUT}"])
    [m] = wait_messages(sink, 1, srv)
    assert m.tls
    sess = sink.sessions[0]
    assert sess.auth == (mechs[0], USER, PASSWORD)
    verbs = sess.verbs()
    assert verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"], verbs
    srv.wait_empty()
    assert "s3cret" not in srv.log()


def test_relay_auth_refused_is_deferred(outbound, smtp_sink, base_dir):
    srv, sink = auth_relay(outbound, smtp_sink, base_dir, auth=["PLAIN"],
                           auth_users={USER: "another"})
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert row["reason"].startswith("4") and "535" in row["reason"], row
    assert sink.messages == []
    assert srv.messages(ALICE) == []
    assert "s3cret" not in srv.log()


def test_relay_without_auth_is_deferred(outbound, smtp_sink, base_dir):
    srv, sink = auth_relay(outbound, smtp_sink, base_dir)  # no AUTH offered
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert "offers no AUTH" in row["reason"], row
    assert sink.messages == []
    assert not any("AUTH" in s.verbs() for s in sink.sessions)


def test_relay_auth_never_in_plaintext(outbound, smtp_sink, base_dir):
    srv = outbound()
    srv.configure(relay_host=f"[{MX2}]", relay_auth_file=creds_file(base_dir))
    srv.start()
    sink = smtp_sink(MX2, srv.port, auth=["PLAIN"], auth_plaintext=True,
                     auth_users={USER: PASSWORD})  # no certificate: no STARTTLS
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert "TLS is required to authenticate" in row["reason"], row
    assert not any("AUTH" in s.verbs() for s in sink.sessions)


def test_credentials_file_others_may_read_is_refused(outbound, base_dir):
    srv = outbound()
    srv.configure(relay_host=f"[{MX2}]", relay_auth_file=creds_file(base_dir, mode=0o644))
    rc, text = srv.inst.run_fail()
    assert rc != 0, text
    assert "relay_auth_file" in text and "group or others" in text, text
    assert PASSWORD not in text
