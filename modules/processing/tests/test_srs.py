"""SRS for forwarded mail and the next hop in the queue listing, end to
end: smtp_in, processing, storage and smtp_out on loopback, the MX hosts
in a scripted name server (dns_helpers.MailDNS) and SMTP sinks
(smtp_sink.py) on 127.0.0.x, all on one port number (smtp_out's `port`).

bob@ (local) forwards to fwd@remote.test, whose MX is a sink; the
original senders are at sender.test, whose MX is another sink, where
replies to the rewritten addresses (bounces) must arrive. Every wait is a
bounded poll."""

import base64
import hashlib
import hmac
import json
import re
import threading
import time

import pytest

from dns_helpers import mail_dns, set_dnr  # noqa: F401 (fixture)
from harness import wait_for
from smtp_helpers import SmtpServer
from smtp_sink import shared_port, smtp_sink  # noqa: F401 (fixture)

REMOTE, SENDER_DOMAIN = "remote.test", "sender.test"
MX_REMOTE, MX_SENDER = "127.0.0.2", "127.0.0.3"
FWD = f"fwd@{REMOTE}"
SENDER = f"Alice.Remote@{SENDER_DOMAIN}"
WAIT = 30.0  # seconds for anything the queue and smtp_out do (ASan is slow)
SRS0_RE = re.compile(r"^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=(?P<domain>[^=]+)=(?P<local>.+)@(?P<srs>.+)$")


def srs0(key, local, domain, srs_domain, day=None):
    """An SRS0 address as libsrs2 / postsrsd make it, computed here."""
    b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    d = (int(time.time()) // 86400 if day is None else day) % 1024
    tt = b32[d >> 5] + b32[d & 31]
    mac = hmac.new(key.encode(), (tt + domain + local).lower().encode(), hashlib.sha1).digest()
    return f"SRS0={base64.b64encode(mac).decode()[:4]}={tt}={domain}={local}@{srs_domain}"


class Forwarding(SmtpServer):
    def __init__(self, make_instance, env, dns, name="srs", processing=None, smtp=None):
        self.port = shared_port(("127.0.0.1", MX_REMOTE, MX_SENDER))
        super().__init__(make_instance, env, name, processing=processing, smtp=smtp,
                         smtp_out=dict(port=self.port, connect_timeout="5s",
                                       command_timeout="10s", data_timeout="10s"))
        set_dnr(self.inst, [dns.address], timeout="1s", attempts=2)
        self.bob = self.addr("bob")

    def from_remote(self, rcpts, sender=SENDER, subject="forward me"):
        """A message from outside (the MX port, no login)."""
        msg = (f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n"
               f"Message-ID: <{time.monotonic_ns()}@{SENDER_DOMAIN}>\r\n\r\nhello\r\n")
        s = self.smtp()
        try:
            s.ehlo()
            assert s.sendmail(sender, rcpts, msg.encode()) == {}
        finally:
            s.quit()

    def rows(self):
        r = self.inst.ctl("--json", "queue", "list")
        assert r.returncode == 0, r.stdout + r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def wait_row(self, recipient, state):
        def find():
            return next((row for row in self.rows()
                         if row["recipient"] == recipient and row["state"] == state), None)
        try:
            return wait_for(find, WAIT, f"{recipient} {state} in the queue")
        except AssertionError as e:
            raise AssertionError(f"{e}\nqueue: {self.rows()}\nlog:\n{self.log()[-4000:]}")

    def secret(self):
        return self.inst.dir / "data" / "queue" / "srs.secret"


def wait_messages(sink, n, srv):
    try:
        return sink.wait_messages(n, timeout=WAIT)
    except AssertionError as e:
        raise AssertionError(f"{e}\nqueue: {srv.rows()}\nlog:\n{srv.log()[-4000:]}")


@pytest.fixture
def forwarding(make_instance, env, mail_dns):
    """forwarding(**kw): a Forwarding, not started; remote.test's MX is
    127.0.0.2, sender.test's 127.0.0.3."""
    mail_dns.mx(REMOTE, (10, f"mx1.{REMOTE}"))
    mail_dns.host(f"mx1.{REMOTE}", MX_REMOTE)
    mail_dns.mx(SENDER_DOMAIN, (10, f"mx.{SENDER_DOMAIN}"))
    mail_dns.host(f"mx.{SENDER_DOMAIN}", MX_SENDER)

    def factory(**kw):
        return Forwarding(make_instance, env, mail_dns, **kw)
    return factory


# --- the forward path -----------------------------------------------------------


def test_forwarded_copy_has_an_srs_sender(forwarding, smtp_sink):
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    srv.start()
    secret = srv.secret()
    assert secret.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", secret.read_text())
    sink = smtp_sink(MX_REMOTE, srv.port)
    srv.from_remote([srv.bob])
    [m] = wait_messages(sink, 1, srv)
    assert m.rcpts == [FWD]
    got = SRS0_RE.match(m.mail_from)
    assert got, m.mail_from
    assert (got["local"], got["domain"], got["srs"]) == ("Alice.Remote", SENDER_DOMAIN,
                                                         srv.domain)
    # The same address as any SRS implementation makes with this secret.
    key = secret.read_text().strip()
    assert m.mail_from.lower() == srs0(key, "Alice.Remote", SENDER_DOMAIN, srv.domain).lower()
    # Only the envelope: the header is as it came.
    header = m.data.partition(b"\r\n\r\n")[0]
    assert b"SRS0" not in header
    assert f"From: <{SENDER}>".encode() in header
    assert not header.startswith(b"Return-Path")


def test_bounce_to_the_srs_address_reaches_the_original_sender(forwarding, smtp_sink):
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    srv.start()
    fwd_sink = smtp_sink(MX_REMOTE, srv.port)
    sender_sink = smtp_sink(MX_SENDER, srv.port)
    srv.from_remote([srv.bob])
    [m] = wait_messages(fwd_sink, 1, srv)
    srs_address = m.mail_from
    # The remote side bounces: a null sender to the SRS address, on the MX port.
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        c.transaction("", srs_address)
        assert c.data("From: MAILER-DAEMON@remote.test\r\nSubject: bounce\r\n\r\nsorry\r\n.\r\n"
                      ).startswith("250 ")
    finally:
        c.close()
    [b] = wait_messages(sender_sink, 1, srv)
    assert b.mail_from == "" and b.rcpts == [SENDER]
    assert b"Subject: bounce\r\n" in b.data
    # A case-folded copy of the address (some hops fold case) works too.
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        c.transaction("", srs_address.lower())
        assert c.data("Subject: folded\r\n\r\nsorry\r\n.\r\n").startswith("250 ")
    finally:
        c.close()
    msgs = wait_messages(sender_sink, 2, srv)
    assert msgs[1].rcpts == [SENDER.lower()]


def test_srs1_for_another_forwarders_address_and_back(forwarding, smtp_sink):
    """A sender that is sender.test's SRS0 address (it forwarded to us):
    our copy names sender.test in an SRS1 address, and a bounce to that
    goes back to sender.test's SRS0 address, for it to turn back."""
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    srv.start()
    fwd_sink = smtp_sink(MX_REMOTE, srv.port)
    sender_sink = smtp_sink(MX_SENDER, srv.port)
    theirs = f"SRS0=abcd=ME=orig.test=carl@{SENDER_DOMAIN}"
    srv.from_remote([srv.bob], sender=theirs)
    [m] = wait_messages(fwd_sink, 1, srv)
    assert re.fullmatch(rf"SRS1=[A-Za-z0-9+/]{{4}}={SENDER_DOMAIN}==abcd=ME=orig\.test=carl@"
                        rf"{re.escape(srv.domain)}", m.mail_from), m.mail_from
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        c.transaction("", m.mail_from)
        assert c.data("Subject: bounce\r\n\r\nsorry\r\n.\r\n").startswith("250 ")
    finally:
        c.close()
    [b] = wait_messages(sender_sink, 1, srv)
    assert b.mail_from == "" and b.rcpts == [theirs]


def test_own_bounce_of_a_forwarded_copy_goes_to_the_original_sender(forwarding, smtp_sink):
    """The queue keeps the original sender: a copy refused by the next
    hop is reported to it, not to the SRS address."""
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    srv.start()
    fwd_sink = smtp_sink(MX_REMOTE, srv.port, rcpt_replies={FWD: "550 5.1.1 no such user"})
    sender_sink = smtp_sink(MX_SENDER, srv.port)
    srv.from_remote([srv.bob], subject="refused later")
    [report] = wait_messages(sender_sink, 1, srv)
    assert report.mail_from == "" and report.rcpts == [SENDER]
    assert b"multipart/report" in report.data and FWD.encode() in report.data
    [tx] = [t for t in fwd_sink.transactions() if t.refused]
    assert tx.mail_from.startswith("SRS0=")


@pytest.mark.parametrize("tamper", ["hash", "local", "expired", "future", "malformed"])
def test_invalid_srs_address_refused_at_rcpt(forwarding, tamper):
    srv = forwarding().start()
    key = srv.secret().read_text().strip()
    today = int(time.time()) // 86400
    good = srs0(key, "victim", "elsewhere.test", srv.domain)
    address = {
        "hash": good[:5] + ("AAAA" if good[5:9] != "AAAA" else "BBBB") + good[9:],
        "local": good.replace("=victim@", "=other@"),
        "expired": srs0(key, "victim", "elsewhere.test", srv.domain, day=today - 22),
        "future": srs0(key, "victim", "elsewhere.test", srv.domain, day=today + 2),
        "malformed": f"SRS0=abcd=ME@{srv.domain}",
    }[tamper]
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        assert c.command("MAIL FROM:<>") == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{address}>") == \
            f"550 5.1.1 <{address}>: invalid or expired SRS address"
        # Not an SRS address: the account database's answer, as before.
        assert c.command(f"RCPT TO:<nobody@{srv.domain}>") == \
            f"550 5.1.1 <nobody@{srv.domain}>: no such user here"
        # The day before the limit is still good.
        fine = srs0(key, "victim", "elsewhere.test", srv.domain, day=today - 20)
        assert c.command(f"RCPT TO:<{fine}>") == "250 2.1.5 Ok"
    finally:
        c.close()
    wait_for(lambda: "invalid or expired SRS address" in srv.log(), WAIT, "the log line")


def test_tampered_rcpts_from_a_crowd(forwarding):
    """50 sessions at once, each with tampered SRS addresses: every RCPT
    gets its 550 and the server stays up."""
    srv = forwarding().start()
    key = srv.secret().read_text().strip()
    good = srs0(key, "victim", "elsewhere.test", srv.domain)
    errors, replies = [], []
    lock = threading.Lock()

    def session(n):
        try:
            c = srv.raw()
            try:
                c.greet()
                c.ehlo()
                assert c.command("MAIL FROM:<>") == "250 2.1.0 Ok"
                for i in range(3):
                    bad = good.replace("=victim@", f"=victim{n}x{i}@")
                    r = c.command(f"RCPT TO:<{bad}>")
                    with lock:
                        replies.append(r)
                assert c.command("QUIT").startswith("221")
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001 (reported below)
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=session, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT * 2)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(replies) == 150
    assert all(r.startswith("550 5.1.1 <SRS0=") and r.endswith("invalid or expired SRS address")
               for r in replies), set(replies)
    # Still answering, and still taking a good one.
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        c.transaction("", good)
    finally:
        c.close()


# --- what is not rewritten ----------------------------------------------------------


def test_local_sender_not_rewritten(forwarding, smtp_sink):
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    srv.start()
    sink = smtp_sink(MX_REMOTE, srv.port)
    alice = srv.addr("alice")
    s = srv.submission(alice)
    try:
        assert s.sendmail(alice, [srv.bob], b"Subject: local\r\n\r\nhi\r\n") == {}
    finally:
        s.quit()
    [m] = wait_messages(sink, 1, srv)
    assert m.mail_from == alice and m.rcpts == [FWD]


def test_sender_too_long_for_srs_goes_as_it_is(forwarding, smtp_sink):
    """234 octets fit in a path; their SRS form (over 254) does not."""
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    srv.start()
    sink = smtp_sink(MX_REMOTE, srv.port)
    domain = ".".join(["d" * 40] * 4) + ".long.test"
    sender = "s" * 60 + "@" + domain
    assert len(sender) == 234
    srv.from_remote([srv.bob], sender=sender)
    [m] = wait_messages(sink, 1, srv)
    assert m.mail_from == sender and m.rcpts == [FWD]
    assert re.search(r"forwarded copies keep the sender <s{60}@d+\S*>: its SRS form would exceed "
                     r"254 octets", srv.log()), srv.log()[-2000:]


def test_srs_off(forwarding, smtp_sink):
    srv = forwarding(processing=dict(srs=False))
    srv.forward(srv.bob, FWD)
    srv.start()
    sink = smtp_sink(MX_REMOTE, srv.port)
    srv.from_remote([srv.bob])
    [m] = wait_messages(sink, 1, srv)
    assert m.mail_from == SENDER and m.rcpts == [FWD]


def test_direct_and_forwarded_recipients_go_as_two_transactions(forwarding, smtp_sink):
    """A relay client sends to bob@ (forwarded to remote.test) and to
    direct@remote.test: the same domain, two senders, two transactions."""
    srv = forwarding(smtp=dict(relay_networks=["127.0.0.1"]))
    srv.forward(srv.bob, FWD)
    srv.start()
    sink = smtp_sink(MX_REMOTE, srv.port)
    direct = f"direct@{REMOTE}"
    srv.from_remote([srv.bob, direct])
    msgs = wait_messages(sink, 2, srv)
    by_rcpt = {tuple(m.rcpts): m.mail_from for m in msgs}
    assert set(by_rcpt) == {(FWD,), (direct,)}, by_rcpt
    assert by_rcpt[(direct,)] == SENDER
    assert SRS0_RE.match(by_rcpt[(FWD,)]), by_rcpt


def test_secret_rotation(forwarding, smtp_sink):
    """The first line signs, every line verifies."""
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    secret = srv.inst.dir / "srs-keys"
    secret.write_text("# keys\nnew-key\n\n  old-key  \n")
    secret.chmod(0o600)
    srv.inst.set_module_settings("processing", srs_secret_file=str(secret))
    srv.start()
    fwd_sink = smtp_sink(MX_REMOTE, srv.port)
    sender_sink = smtp_sink(MX_SENDER, srv.port)
    srv.from_remote([srv.bob])
    [m] = wait_messages(fwd_sink, 1, srv)
    assert m.mail_from.lower() == srs0("new-key", "Alice.Remote", SENDER_DOMAIN,
                                       srv.domain).lower()
    old = srs0("old-key", "someone", SENDER_DOMAIN, srv.domain)
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        c.transaction("", old)
        assert c.data("Subject: old key\r\n\r\nback\r\n.\r\n").startswith("250 ")
    finally:
        c.close()
    [b] = wait_messages(sender_sink, 1, srv)
    assert b.rcpts == [f"someone@{SENDER_DOMAIN}"]


# --- the next hop in the queue listing ---------------------------------------------------


def test_next_hop_of_a_deferred_recipient(forwarding, smtp_sink, mail_dns):
    mail_dns.servfail("broken.test")
    srv = forwarding(smtp=dict(relay_networks=["127.0.0.1"]))
    srv.start()
    smtp_sink(MX_REMOTE, srv.port, rcpt_replies={f"later@{REMOTE}": "451 4.7.1 greylisted"})
    srv.from_remote([f"later@{REMOTE}", "x@broken.test"], subject="later")
    hop = f"mx1.{REMOTE}[{MX_REMOTE}]:{srv.port}"
    row = srv.wait_row(f"later@{REMOTE}", "deferred")
    assert row["next_hop"] == hop, row
    assert "451 4.7.1 greylisted" in row["reason"]
    # Nowhere to go (the lookup failed): the domain.
    row = srv.wait_row("x@broken.test", "deferred")
    assert row["next_hop"] == "broken.test", row
    text = srv.inst.ctl("queue", "list").stdout
    assert re.search(rf"^  <later@{REMOTE}>  deferred via {re.escape(hop)}: 451 4\.7\.1 .*"
                     "greylisted", text, re.M), text
    assert re.search(r"^  <x@broken\.test>  deferred via broken\.test: 4", text, re.M), text
    show = srv.inst.ctl("queue", "show", row["id"]).stdout
    assert f"  next hop: {hop}" in show.splitlines(), show
    [show_row] = [r for r in (json.loads(x) for x in srv.inst.ctl(
        "--json", "queue", "show", row["id"]).stdout.splitlines())
        if r["recipient"] == f"later@{REMOTE}"]
    assert show_row["next_hop"] == hop


def test_catchall_of_the_srs_domain_takes_no_srs_address(forwarding, smtp_sink):
    """The queue is asked before the account database: with a catch-all
    on srs_domain, a tampered SRS address is still refused and a valid
    one still goes back to the original sender, not to the catch-all."""
    srv = forwarding()
    srv.forward(srv.bob, FWD)
    r = srv.inst.ctl("domain", "catchall", srv.domain, srv.addr("carol"))
    assert r.returncode == 0, r.stdout + r.stderr
    srv.start()
    key = srv.secret().read_text().strip()
    good = srs0(key, "Alice.Remote", SENDER_DOMAIN, srv.domain)
    bad = good[:5] + ("AAAA" if good[5:9] != "AAAA" else "BBBB") + good[9:]
    sender_sink = smtp_sink(MX_SENDER, srv.port)
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        assert c.command("MAIL FROM:<>") == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{bad}>") == \
            f"550 5.1.1 <{bad}>: invalid or expired SRS address"
        # Any other unknown address is the catch-all's.
        assert c.command(f"RCPT TO:<nobody@{srv.domain}>") == "250 2.1.5 Ok"
        assert c.command(f"RCPT TO:<{good}>") == "250 2.1.5 Ok"
        assert c.data("Subject: bounce\r\n\r\nsorry\r\n.\r\n").startswith("250 ")
    finally:
        c.close()
    [b] = wait_messages(sender_sink, 1, srv)
    assert b.rcpts == [SENDER] and b"Subject: bounce\r\n" in b.data
