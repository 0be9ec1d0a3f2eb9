"""smtp_in against attackers: AUTH brute force (the auth module's failure
delay, its lock-outs of the attacking address, per account and for every
account, answered at once; max_auth_errors), the STARTTLS plaintext
injection (CVE-2011-0411 style), AUTH only under TLS, and the state that
STARTTLS must forget (RFC 3207 section 4.2)."""

import socket
import time

import pytest

from harness import SOCK_TIMEOUT, Client
from smtp_helpers import HOSTNAME, PASSWORD, SmtpServer, b64, plain_token

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
DELAY = 1.0  # the auth module's failure_delay in these tests (its default is 2s)


def starttls_session(srv, port=None, source=None):
    c = srv.raw(port or srv.sub_port, source=source)
    c.greet()
    c.ehlo()
    c.starttls()
    c.ehlo()
    return c


def test_auth_failures_are_slow_then_rate_limited(make_instance, env):
    srv = SmtpServer(make_instance, env, "brute",
                     auth=dict(failure_delay=f"{int(DELAY)}s", max_failures_per_ip=4,
                               max_failures_per_account=0, lockout="1h"),
                     service=dict(max_auth_errors=0)).start()
    with starttls_session(srv) as c:
        for i, mech in enumerate(("PLAIN", "LOGIN", "PLAIN", "LOGIN")):
            t0 = time.monotonic()
            if mech == "PLAIN":
                reply = c.auth_plain(ALICE if i % 2 else f"guess{i}@example.test", f"wrong{i}")
            else:
                assert c.command("AUTH LOGIN") == "334 VXNlcm5hbWU6"
                assert c.command(b64(ALICE)) == "334 UGFzc3dvcmQ6"
                reply = c.command(b64(f"wrong{i}"))
            took = time.monotonic() - t0
            assert reply == "535 5.7.8 authentication credentials invalid", (i, reply)
            assert took >= DELAY * 0.95, f"failure {i} ({mech}) answered after {took:.2f}s"
            assert took < DELAY + 8, took
        srv.inst.wait_log(r"too many failed logins from 127\.0\.0\.1")
        # Now the right password is refused too, on this connection and on a new one.
        assert c.auth_plain(ALICE) == "454 4.7.0 too many failed logins, try again later"
        assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
    with srv.smtps() as s:
        s.user, s.password = ALICE, PASSWORD
        code, text = s.docmd("AUTH", "PLAIN " + plain_token(ALICE, PASSWORD))
        assert (code, text) == (454, b"4.7.0 too many failed logins, try again later")
    # Another client address is not locked out.
    with starttls_session(srv, source="127.0.0.2") as c:
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
    log = srv.log()
    assert "wrong0" not in log and "wrong3" not in log and PASSWORD not in log


def test_auth_lockout_hits_the_attacker_not_the_owner(make_instance, env):
    """Wrong passwords for alice from 127.0.0.2 lock out 127.0.0.2 for alice,
    and then for everyone, with a 454 that comes at once (not after the
    failure delay); alice from 127.0.0.1 still logs in."""
    delay = 4.0  # long enough that an immediate answer cannot be mistaken for it
    srv = SmtpServer(make_instance, env, "lockout",
                     auth=dict(failure_delay=f"{int(delay)}s", max_failures_per_account=2,
                               max_failures_per_ip=3, lockout="1h"),
                     service=dict(max_auth_errors=0)).start()
    locked = "454 4.7.0 too many failed logins, try again later"
    with starttls_session(srv, source="127.0.0.2") as c:
        for i in range(2):
            t0 = time.monotonic()
            assert c.auth_plain(ALICE, f"wrong{i}") == \
                "535 5.7.8 authentication credentials invalid"
            assert time.monotonic() - t0 >= delay * 0.95
        srv.inst.wait_log(r"too many failed logins for alice@example\.test from 127\.0\.0\.2")
        for password in ("wrong2", PASSWORD):
            t0 = time.monotonic()
            assert c.auth_plain(ALICE, password) == locked
            took = time.monotonic() - t0
            assert took < delay / 2, f"454 after {took:.2f}s: the failure delay is {delay}s"
        # Other accounts are still open to this address, up to its own limit.
        assert c.auth_plain(BOB, "wrong3") == "535 5.7.8 authentication credentials invalid"
        srv.inst.wait_log(r"too many failed logins from 127\.0\.0\.2")
        for user in (BOB, CAROL):
            t0 = time.monotonic()
            assert c.auth_plain(user) == locked
            assert time.monotonic() - t0 < delay / 2
        assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
    # The owner, from another address: the account is not locked.
    with starttls_session(srv, source="127.0.0.1") as c:
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
    with starttls_session(srv, source="127.0.0.1") as c:
        assert c.auth_plain(BOB) == "235 2.7.0 Authentication successful"
    stats = srv.inst.stats()
    assert stats["auth.ratelimited"] == 4
    assert stats["auth.failure"] == 3
    assert stats["auth.success"] == 2


def test_max_auth_errors_closes_the_connection(make_instance, env):
    srv = SmtpServer(make_instance, env, "authmax", service=dict(max_auth_errors=2)).start()
    with starttls_session(srv) as c:
        assert c.auth_plain(ALICE, "bad-1") == "535 5.7.8 authentication credentials invalid"
        assert c.auth_plain(BOB, "bad-2") == "535 5.7.8 authentication credentials invalid"
        assert c.reply_line() == f"421 4.7.0 {HOSTNAME} Error: too many failed logins"
        assert c.is_closed()
    srv.inst.wait_log(r"too many failed logins \(2\): closing")
    # A new connection may try again (the per-IP limit is far away).
    with starttls_session(srv) as c:
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"


def test_default_auth_failure_delay_is_applied(make_instance, env):
    """Without a failure_delay setting the auth module's default (2s) holds."""
    srv = SmtpServer(make_instance, env, "authdefault")
    path = next(srv.inst.confd.glob("*-auth.conf"))
    text = path.read_text()
    start = text.index("settings: {")
    end = text.index("};", start) + 2
    path.write_text(text[:start] + "settings: { };" + text[end:])
    srv.start()
    with starttls_session(srv) as c:
        t0 = time.monotonic()
        assert c.auth_plain(ALICE, "nope") == "535 5.7.8 authentication credentials invalid"
        assert time.monotonic() - t0 >= 1.9


@pytest.fixture
def srv(make_instance, env):
    return SmtpServer(make_instance, env, "sec").start()


def read_nothing(sock, wait=0.5):
    """Bytes the server sends within wait seconds (b"" for none)."""
    sock.settimeout(wait)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return b""
    finally:
        sock.settimeout(SOCK_TIMEOUT)


@pytest.mark.parametrize("port_name", ["mx", "sub"])
@pytest.mark.parametrize("injected", [
    "RSET",
    "MAIL FROM:<evil@client.test>",
    "EHLO evil.test\r\nAUTH PLAIN " + plain_token(ALICE, PASSWORD),
], ids=["rset", "mail", "ehlo-auth"])
def test_starttls_plaintext_injection(srv, port_name, injected):
    """Commands sent in the same packet as STARTTLS, before the handshake,
    must not be run: no reply to them in plaintext or inside TLS; inside
    TLS the first reply is to our own EHLO and no transaction exists."""
    port = srv.mx_port if port_name == "mx" else srv.sub_port
    with srv.raw(port) as c:
        c.greet()
        c.ehlo()
        c.send(f"STARTTLS\r\n{injected}\r\n")
        assert c.reply_line() == "220 2.0.0 Ready to start TLS"
        assert c.buf == b""
        # A TLS server never speaks first: anything now is a plaintext
        # answer to the injected command.
        early = read_nothing(c.sock)
        assert early == b"", f"plaintext after 220: {early!r}"
        Client.starttls(c)  # the handshake only: STARTTLS was sent above
        first = c.command("RCPT TO:<alice@example.test>")
        # The first reply inside TLS answers the first command inside TLS.
        assert first == "503 5.5.1 need MAIL command", first
        assert c.command(f"MAIL FROM:<{ALICE}>") == "503 5.5.1 send HELO or EHLO first"
        ext = c.ehlo()
        assert "AUTH PLAIN LOGIN" in ext and "STARTTLS" not in ext
        # Not logged in by the injected AUTH.
        if port_name == "sub":
            assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
        else:
            assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
            assert c.command("RCPT TO:<user@remote.test>") == \
                "554 5.7.1 <user@remote.test>: relay access denied"
        assert c.command("QUIT") == "221 2.0.0 Bye"
    assert "authenticated as" not in srv.log()
    assert srv.all_delivered() == [] and srv.queued() == []


def test_auth_needs_tls(srv):
    for port in (srv.sub_port, srv.mx_port):
        with srv.raw(port) as c:
            c.greet()
            ext = c.ehlo()
            assert not any(x.startswith("AUTH") for x in ext), ext
            assert c.auth_plain(ALICE) == \
                "538 5.7.11 encryption required for requested authentication mechanism"
            assert c.command("AUTH LOGIN") == \
                "538 5.7.11 encryption required for requested authentication mechanism"
            if port == srv.sub_port:
                assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
    assert "authenticated as" not in srv.log()


def test_starttls_forgets_the_session(srv):
    with srv.raw(srv.sub_port) as c:
        c.greet()
        c.ehlo()
        assert c.command("STARTTLS extra") == "501 5.5.4 syntax: STARTTLS"
        c.starttls()
        # No HELO/EHLO after the handshake yet.
        assert c.command(f"MAIL FROM:<{ALICE}>") == "503 5.5.1 send HELO or EHLO first"
        assert c.auth_plain(ALICE) == "503 5.5.1 send HELO or EHLO first"
        c.ehlo()
        assert c.command("STARTTLS") == "503 5.5.1 TLS already active"
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
        assert c.auth_plain(ALICE) == "503 5.5.1 already authenticated"
        assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
    # On MX a transaction started before STARTTLS is gone after it.
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{BOB}>") == "250 2.1.5 Ok"
        c.starttls()
        c.ehlo()
        assert c.command("DATA") == "503 5.5.1 need MAIL command"
        assert c.command(f"RCPT TO:<{BOB}>") == "503 5.5.1 need MAIL command"
    assert srv.all_delivered() == []


def test_login_before_starttls_is_forgotten(make_instance, env):
    """With plaintext logins allowed, a login made before STARTTLS does not
    survive the handshake (RFC 3207 section 4.2)."""
    srv = SmtpServer(make_instance, env, "plainauth",
                     auth=dict(failure_delay="0s", plaintext_without_tls=True)).start()
    with srv.raw(srv.sub_port) as c:
        c.greet()
        assert "AUTH PLAIN LOGIN" in c.ehlo()
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
        c.starttls()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
        assert c.auth_plain(BOB) == "235 2.7.0 Authentication successful"
        assert c.command(f"MAIL FROM:<{BOB}>") == "250 2.1.0 Ok"


def test_auth_not_during_a_transaction(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
        assert c.auth_plain(ALICE) == "503 5.5.1 AUTH not allowed during a mail transaction"
        assert c.command("RCPT TO:<user@remote.test>") == \
            "554 5.7.1 <user@remote.test>: relay access denied"


def test_auth_on_mx_can_be_turned_off(make_instance, env):
    srv = SmtpServer(make_instance, env, "noauthmx", smtp=dict(auth_on_mx=False)).start()
    with starttls_session(srv, srv.mx_port) as c:
        assert c.ehlo() == ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES",
                            "SMTPUTF8", "CHUNKING", "DSN", "REQUIRETLS", "HELP"]
        assert c.auth_plain(ALICE) == "502 5.5.1 AUTH not available"
    with starttls_session(srv) as c:
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"


def test_bad_bdat_length_closes(srv):
    """A BDAT whose length cannot be read: its bytes must not be taken as
    commands, so the server hangs up."""
    for arg in ("BDAT x", "BDAT 99999999999999999999999", "BDAT -1", "BDAT 10 NOTLAST"):
        with srv.raw() as c:
            c.greet()
            c.ehlo()
            assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
            assert c.command(f"RCPT TO:<{BOB}>") == "250 2.1.5 Ok"
            c.send(f"{arg}\r\nRSET\r\n")
            reply = c.reply_line()
            assert reply.startswith("501 "), (arg, reply)
            assert c.is_closed(), arg
    assert srv.all_delivered() == []


def test_sasl_garbage(srv):
    with starttls_session(srv) as c:
        assert c.command("AUTH PLAIN !!!notbase64") .startswith("501 5.5.2 ")
        assert c.command("AUTH CRAM-MD5") == "504 5.5.4 unrecognized authentication mechanism"
        assert c.command("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.command("*") == "501 5.0.0 authentication cancelled"
        assert c.command("AUTH PLAIN " + b64(f"{BOB}\0{ALICE}\0{PASSWORD}")) == \
            "535 5.7.8 authentication credentials invalid"
        assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
        # LOGIN with the user name as initial response (RFC 4954).
        assert c.command("AUTH LOGIN " + b64(ALICE)) == "334 UGFzc3dvcmQ6"
        assert c.command(b64(PASSWORD)) == "235 2.7.0 Authentication successful"


def test_no_user_enumeration_by_vrfy_or_expn(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        for who in (ALICE, "nobody@example.test", "alice", "postmaster"):
            assert c.command(f"VRFY {who}") == \
                "252 2.5.0 Cannot VRFY user, but will accept message"
        assert c.command("EXPN staff") == "502 5.5.1 EXPN not available"
        assert c.command("HELP") == "214 2.0.0 See RFC 5321"


def test_logged_in_clients_send_only_as_themselves(make_instance, env):
    """sender_login_match: after AUTH as alice, MAIL FROM may be alice (any
    case), an alias that delivers to her, or <>; colleagues, aliases of
    others, the catch-all (even one that delivers to her) and foreign
    addresses get 553 5.7.1, on MX and submission. Clients that did not
    log in are not affected (MX)."""
    srv = SmtpServer(make_instance, env, "senders")
    srv.alias("sales@example.test", ALICE, "carol@example.test")
    srv.alias("billing@example.test", BOB)
    srv.ctl("domain", "catchall", "example.test", ALICE)  # owning everything is no licence
    srv.start()
    owned = (ALICE, "Alice@Example.TEST", "sales@example.test", "")
    foreign = (BOB, "billing@example.test", "nobody@example.test", "ceo@remote.test")
    for port in (srv.mx_port, srv.sub_port):
        with starttls_session(srv, port) as c:
            assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
            for frm in owned:
                assert c.command(f"MAIL FROM:<{frm}>") == "250 2.1.0 Ok", frm
                assert c.command("RSET") == "250 2.0.0 Ok"
            for frm in foreign:
                assert c.command(f"MAIL FROM:<{frm}>") == \
                    f"553 5.7.1 <{frm}>: sender address not owned by {ALICE}", frm
                # The refused MAIL left no transaction behind.
                assert c.command(f"RCPT TO:<{BOB}>") == "503 5.5.1 need MAIL command"
            assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
            assert c.command(f"RCPT TO:<{BOB}>") == "250 2.1.5 Ok"
    assert "sender address not owned" in srv.log()
    # Without a login, MX takes any sender (that is SPF's and DMARC's job).
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{BOB}>") == "250 2.1.0 Ok"
    assert srv.all_delivered() == []


def test_sender_login_match_off(make_instance, env):
    srv = SmtpServer(make_instance, env, "anysender", smtp=dict(sender_login_match=False)).start()
    with starttls_session(srv) as c:
        assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
        for frm in (BOB, "ceo@remote.test"):
            assert c.command(f"MAIL FROM:<{frm}>") == "250 2.1.0 Ok"
            assert c.command("RSET") == "250 2.0.0 Ok"
