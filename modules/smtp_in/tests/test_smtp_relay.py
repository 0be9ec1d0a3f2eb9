"""The open-relay suite: classic tricks to make smtp_in relay mail for a
domain that is not local without authentication. Every one must be
refused at MAIL or RCPT (never a 250 for the recipient), and nothing may
be queued or delivered. Positive controls: after AUTH, and from a
relay_networks address, the same remote recipient is accepted.

Local domain: example.test (accounts alice, bob, carol); remote: remote.test."""

import re

import pytest

from smtp_helpers import SmtpServer, queue_id

LOCAL = "example.test"
ALICE = f"alice@{LOCAL}"
SENDER = "sender@client.test"

RELAY_DENIED = r"554 5\.7\.1 <[^>]*>: relay access denied"
NO_USER = r"550 5\.1\.1 <[^>]*>: no such user here"
SYNTAX = r"501 5\.1\.[37] .+"
AUTH_REQUIRED = r"530 5\.7\.0 authentication required"


@pytest.fixture(scope="module")
def relay_srv(module_instance, env):
    srv = SmtpServer(module_instance, env, "relay")
    return srv.start()


# (id, RCPT TO argument as sent, reply pattern). Each on the MX port after
# EHLO and MAIL FROM a spoofed local sender.
ADDRESS_TRICKS = [
    ("percent-hack", "<user%remote.test@example.test>", NO_USER),
    ("percent-hack-account", "<alice%remote.test@example.test>", NO_USER),
    ("percent-hack-ip-literal", "<user%remote.test@[127.0.0.1]>", RELAY_DENIED),
    ("source-route-to-remote", "<@example.test:user@remote.test>", SYNTAX),
    ("source-route-via-remote", "<@remote.test:alice@example.test>", SYNTAX),
    ("source-route-list", "<@example.test,@remote.test:user@remote.test>", SYNTAX),
    ("bang-path", "<remote.test!user@example.test>", NO_USER),
    ("bang-path-unqualified", "<remote.test!user>", SYNTAX),
    ("quoted-at", '<"user@remote.test"@example.test>', NO_USER),
    ("quoted-percent", '<"user%remote.test"@example.test>', NO_USER),
    ("quoted-percent-ip-literal", '<"user%remote.test"@[127.0.0.1]>', RELAY_DENIED),
    ("unqualified", "<user>", SYNTAX),
    ("double-at", "<user@remote.test@example.test>", SYNTAX),
    ("escaped-at", "<user\\@remote.test@example.test>", SYNTAX),
    ("ip-literal", "<user@[127.0.0.1]>", RELAY_DENIED),
    ("ipv6-literal", "<user@[IPv6:::1]>", RELAY_DENIED),
    ("upper-case-remote", "<user@REMOTE.TEST>", RELAY_DENIED),
    ("trailing-dot-remote", "<user@remote.test.>", SYNTAX),
    ("trailing-dot-local", "<alice@example.test.>", SYNTAX),
    ("plain-remote", "<user@remote.test>", RELAY_DENIED),
    ("local-domain-as-prefix", "<user@example.test.remote.test>", RELAY_DENIED),
    ("local-domain-as-suffix", "<user@remote.test.example.test>", RELAY_DENIED),
    ("subdomain-of-local", "<alice@mail.example.test>", RELAY_DENIED),
    ("postmaster-remote", "<postmaster@remote.test>", RELAY_DENIED),
    ("localhost", "<user@localhost>", RELAY_DENIED),
    ("no-brackets", "user@remote.test", SYNTAX),
    ("space-before-path", " <user@remote.test>", RELAY_DENIED + "|" + SYNTAX),
    ("orcpt-remote-local-rcpt-unknown", "<nobody@example.test> ORCPT=rfc822;user@remote.test",
     NO_USER),
]


def check_nothing_kept(srv):
    assert srv.queued() == [], srv.queued()
    assert srv.queued("data") == [], srv.queued("data")
    assert srv.all_delivered() == [], srv.all_delivered()


def refused_at_rcpt(c, rcpt_arg, pattern, mail_from=ALICE, mail_params=""):
    """MAIL (must pass) then RCPT (must be refused as pattern); DATA then
    has no recipient."""
    c.send(f"MAIL FROM:<{mail_from}>{mail_params}\r\n".encode())
    assert c.reply_line() == "250 2.1.0 Ok"
    c.send(f"RCPT TO:{rcpt_arg}\r\n".encode())
    reply = c.reply_line()
    assert not reply.startswith("2"), f"RCPT TO:{rcpt_arg} accepted: {reply}"
    assert int(reply[:3]) >= 400
    assert re.fullmatch(pattern, reply), f"RCPT TO:{rcpt_arg}: {reply!r}, want {pattern!r}"
    assert c.command("DATA") == "554 5.5.1 no valid recipients"
    assert c.command("RSET") == "250 2.0.0 Ok"
    return reply


@pytest.mark.parametrize("rcpt_arg,pattern", [(a, p) for _, a, p in ADDRESS_TRICKS],
                         ids=[i for i, _, _ in ADDRESS_TRICKS])
def test_address_trick_refused(relay_srv, rcpt_arg, pattern):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        refused_at_rcpt(c, rcpt_arg, pattern)
    check_nothing_kept(relay_srv)


def test_utf8_remote_refused(relay_srv):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        c.send("MAIL FROM:<üser@example.test> SMTPUTF8\r\n".encode())
        assert c.reply_line() == "250 2.1.0 Ok"
        c.send("RCPT TO:<üser@rémote.test>\r\n".encode())
        assert c.reply_line() == "554 5.7.1 <üser@rémote.test>: relay access denied"
    check_nothing_kept(relay_srv)


@pytest.mark.parametrize("mail_from", ["", ALICE, f"postmaster@{LOCAL}", "user@remote.test"],
                         ids=["null-sender", "local-sender", "postmaster-sender",
                              "remote-sender"])
def test_plain_remote_with_any_sender(relay_srv, mail_from):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED, mail_from=mail_from)
    check_nothing_kept(relay_srv)


@pytest.mark.parametrize("helo", [LOCAL, "mx.example.test", "[127.0.0.1]", "localhost"])
def test_helo_claiming_to_be_local(relay_srv, helo):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo(helo)
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED)
    check_nothing_kept(relay_srv)


def test_mail_auth_parameter_grants_nothing(relay_srv):
    """AUTH=<mailbox> on MAIL (RFC 4954 section 5) is not a login."""
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED, mail_params=f" AUTH=<{ALICE}>")
    check_nothing_kept(relay_srv)


def test_mx_after_starttls_without_auth(relay_srv):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        c.starttls()
        c.ehlo()
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED)
    check_nothing_kept(relay_srv)


def test_mx_after_failed_auth(relay_srv):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert c.auth_plain(ALICE, "wrong password") == \
            "535 5.7.8 authentication credentials invalid"
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED)
        # A cancelled exchange is no login either.
        assert c.command("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.command("*") == "501 5.0.0 authentication cancelled"
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED)
    check_nothing_kept(relay_srv)


def test_mx_plaintext_auth_refused_then_no_relay(relay_srv):
    with relay_srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.auth_plain(ALICE) == \
            "538 5.7.11 encryption required for requested authentication mechanism"
        refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED)
    check_nothing_kept(relay_srv)


def test_auth_does_not_carry_to_another_connection(relay_srv):
    with relay_srv.raw() as authed, relay_srv.raw() as other:
        authed.greet()
        authed.ehlo()
        authed.starttls()
        authed.ehlo()
        assert authed.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
        other.greet()
        other.ehlo()
        refused_at_rcpt(other, "<user@remote.test>", RELAY_DENIED)
    check_nothing_kept(relay_srv)


@pytest.mark.parametrize("port,tls,starttls,failed_auth", [
    ("sub", False, False, False),
    ("sub", False, True, False),
    ("sub", False, True, True),
    ("smtps", True, False, False),
    ("smtps", True, False, True),
], ids=["submission-plain", "submission-starttls", "submission-failed-auth", "smtps",
        "smtps-failed-auth"])
def test_submission_without_auth(relay_srv, port, tls, starttls, failed_auth):
    p = relay_srv.sub_port if port == "sub" else relay_srv.smtps_port
    with relay_srv.raw(p, tls=tls) as c:
        c.greet()
        c.ehlo()
        if starttls:
            c.starttls()
            c.ehlo()
        if failed_auth:
            assert c.auth_plain(ALICE, "wrong password") == \
                "535 5.7.8 authentication credentials invalid"
        for frm in (ALICE, "", "user@remote.test"):
            assert c.command(f"MAIL FROM:<{frm}>") == "530 5.7.0 authentication required"
            reply = c.command("RCPT TO:<user@remote.test>")
            assert reply == "503 5.5.1 need MAIL command", reply
    check_nothing_kept(relay_srv)


# --- positive controls ------------------------------------------------------


def test_relay_after_auth_is_accepted(relay_srv):
    """The control: the same remote recipient, after a login, on MX (with
    STARTTLS), submission and SMTPS (no message sent)."""
    for port, tls, starttls in ((relay_srv.mx_port, False, True),
                                (relay_srv.sub_port, False, True),
                                (relay_srv.smtps_port, True, False)):
        with relay_srv.raw(port, tls=tls) as c:
            c.greet()
            c.ehlo()
            if starttls:
                c.starttls()
                c.ehlo()
            assert c.auth_plain(ALICE) == "235 2.7.0 Authentication successful"
            assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
            assert c.command("RCPT TO:<user@remote.test>") == "250 2.1.5 Ok"
            assert c.command("RCPT TO:<user@[127.0.0.1]>") == "250 2.1.5 Ok"
            assert c.command("RSET") == "250 2.0.0 Ok"
            # Still refused as syntax, logged in or not.
            assert c.command(f"MAIL FROM:<{ALICE}>") == "250 2.1.0 Ok"
            assert c.command("RCPT TO:<@example.test:user@remote.test>").startswith("501 ")
            assert c.command("RCPT TO:<user@remote.test.>").startswith("501 ")
    check_nothing_kept(relay_srv)


@pytest.fixture
def relay_net_srv(make_instance, env):
    return SmtpServer(make_instance, env, "relaynet",
                      smtp=dict(relay_networks=["127.0.0.2", "10.0.0.0/8"])).start()


def test_relay_networks(relay_net_srv):
    srv = relay_net_srv
    # From 127.0.0.2 (listed): relayed without a login, and queued.
    with srv.raw(source="127.0.0.2") as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        assert c.command("RCPT TO:<user@remote.test>") == "250 2.1.5 Ok"
        qid = queue_id(c.data("Subject: relayed\r\n\r\nx\r\n.\r\n"))
    assert srv.queued() == [qid]
    assert "client 127.0.0.2\n" in srv.envelope(qid)
    # From 127.0.0.1 and 127.0.0.3 (not listed): refused.
    for source in ("127.0.0.1", "127.0.0.3"):
        with srv.raw(source=source) as c:
            c.greet()
            c.ehlo()
            refused_at_rcpt(c, "<user@remote.test>", RELAY_DENIED)
    assert srv.queued() == [qid]
    # relay_networks is no login: submission still wants AUTH.
    with srv.raw(srv.sub_port, source="127.0.0.2") as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}>") == "530 5.7.0 authentication required"
    assert srv.all_delivered() == []


def test_catchall_keeps_tricks_local(make_instance, env):
    """With a catch-all, addresses of the local domain that hide a remote
    one are delivered to the catch-all, never routed to remote.test."""
    srv = SmtpServer(make_instance, env, "catchall")
    srv.ctl("domain", "catchall", LOCAL, ALICE)
    srv.start()
    # Dot-atoms with '%' and '!' are plain local parts of example.test; a
    # quoted local part may go to the catch-all or be refused, never out.
    tricks = [("user%remote.test@example.test", True), ("remote.test!user@example.test", True),
              ('"user@remote.test"@example.test', False),
              ('"user%remote.test"@example.test', False)]
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qids = []
        for rcpt, must_take in tricks:
            assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
            reply = c.command(f"RCPT TO:<{rcpt}>")
            # The remote domain itself is still refused.
            assert c.command("RCPT TO:<user@remote.test>") == \
                "554 5.7.1 <user@remote.test>: relay access denied"
            if reply != "250 2.1.5 Ok":
                assert not must_take and reply == f"550 5.1.1 <{rcpt}>: no such user here", \
                    (rcpt, reply)
                assert c.command("RSET") == "250 2.0.0 Ok"
                continue
            qids.append(queue_id(c.data(f"Subject: {rcpt}\r\n\r\nx\r\n.\r\n")))
    assert len(qids) >= 2
    assert len(srv.messages(ALICE)) == len(qids)
    assert srv.queued() == [] and srv.queued("data") == []
    log = srv.log()
    for qid in qids:
        assert f"{qid}: to=<{ALICE}> delivered" in log
