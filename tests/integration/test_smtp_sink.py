"""The test SMTP sink (smtp_sink.py) proven with Python's smtplib and a raw
socket as the client, and the outbound-test zone (dns_helpers.MailDNS)
proven through petreld's own resolver (the dnsprobe test module): what
the smtp_out tests rely on must itself be right."""

import smtplib
import socket
import ssl
import time

import pytest

from dns_helpers import MailDNS, Probe, dns_instance, mail_dns  # noqa: F401 (fixture)
from smtp_sink import MAX_LINE, SmtpSink, make_cert, smtp_sink  # noqa: F401 (fixture)

TIMEOUT = 5.0


def client(sink, **kw):
    s = smtplib.SMTP(sink.host, sink.port, local_hostname="client.test", timeout=TIMEOUT, **kw)
    return s


class Raw:
    """A raw client: send bytes as they are, read whole replies."""

    def __init__(self, sink, timeout=TIMEOUT):
        self.sock = socket.create_connection((sink.host, sink.port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self):
        lines = []
        for _ in range(100):
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError(f"closed after {lines}")
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] == b" ":
                return lines
        raise AssertionError(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def eof(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


MSG = (b"From: <a@client.test>\r\nTo: <b@x.test>\r\nSubject: hi\r\n\r\n"
       b"line one\r\n.leading dot\r\n..two dots\r\n.\r\n. space\r\nlast\r\n")


def test_delivery_recorded(smtp_sink):
    sink = smtp_sink(extensions=["PIPELINING", "SIZE 100000", "8BITMIME", "DSN"])
    with client(sink) as s:
        code, text = s.ehlo()
        assert code == 250
        assert s.has_extn("pipelining") and s.has_extn("dsn") and s.has_extn("8bitmime")
        assert text.decode().splitlines()[0] == "mx.sink.test hello client.test"
        refused = s.sendmail("a@client.test", ["b@x.test", "c@x.test"], MSG,
                             mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"])
        assert refused == {}
    [m] = sink.wait_messages(1)
    assert m.mail_from == "a@client.test"
    assert m.params == {"SIZE": str(len(MSG)), "BODY": "8BITMIME"}
    assert m.rcpts == ["b@x.test", "c@x.test"]
    assert m.rcpt_param("c@x.test", "notify") == "FAILURE"
    assert m.data == MSG  # unstuffed: the bytes smtplib was given
    assert b"\r\n..leading dot\r\n...two dots\r\n..\r\n.. space\r\n" in m.raw_data
    assert m.raw_data.endswith(b"last\r\n.\r\n")
    assert m.via == "DATA" and not m.tls and m.accepted
    [sess] = sink.wait_sessions(1)
    assert sess.verbs() == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert sess.helo == "client.test" and sess.ended == "quit" and sess.tls is None
    assert sink.connections == 1
    assert not any(c.pipelined for c in sess.commands)  # smtplib waits for each reply


def test_helo_and_empty_and_null_sender(smtp_sink):
    sink = smtp_sink()
    r = Raw(sink)
    assert r.reply() == ["220 mx.sink.test ESMTP petrel test sink"]
    assert r.cmd("MAIL FROM:<>") == ["503 5.5.1 EHLO first"]
    assert r.cmd("HELO c.test") == ["250 mx.sink.test"]
    assert r.cmd("MAIL FROM:<>") == ["250 2.1.0 Ok"]
    assert r.cmd("DATA") == ["554 5.5.1 no valid recipients"]
    assert r.cmd("RCPT TO:<b@x.test>") == ["250 2.1.5 Ok"]
    assert r.cmd("DATA")[0].startswith("354 ")
    assert r.cmd(".")[0].startswith("250 2.0.0 Ok")  # an empty message
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]
    assert r.cmd("VRFY x") == ["502 5.5.2 command not implemented"]
    assert r.cmd("QUIT") == ["221 2.0.0 bye"]
    assert r.eof()
    [m] = sink.wait_messages(1)
    assert (m.mail_from, m.rcpts, m.data, m.raw_data) == ("", ["b@x.test"], b"", b".\r\n")


def test_pipelined_commands_recorded(smtp_sink):
    sink = smtp_sink()
    r = Raw(sink)
    r.reply()
    r.cmd("EHLO c.test")
    # RFC 2920: the whole envelope and DATA in one write.
    r.send("MAIL FROM:<a@c.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
    assert [r.reply()[0][:3] for _ in range(4)] == ["250", "250", "250", "354"]
    r.send("hello\r\n.\r\nQUIT\r\n")
    assert r.reply()[0].startswith("250 ")
    assert r.reply() == ["221 2.0.0 bye"]
    [sess] = sink.wait_sessions(1)
    cmds = sess.commands
    assert [c.verb for c in cmds] == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert [c.pipelined for c in cmds] == [False, False, True, True, True, True]
    assert cmds[1].chunk == cmds[2].chunk == cmds[3].chunk == cmds[4].chunk != cmds[0].chunk
    assert [c.reply[:3] for c in cmds] == ["250", "250", "250", "250", "354", "221"]
    [m] = sink.messages
    assert m.data == b"hello\r\n"


@pytest.mark.parametrize("wire,want", [
    (b"a\r\n..b\r\n.c\r\n\r\n.\r\n", b"a\r\n.b\r\nc\r\n\r\n"),  # an unstuffed dot is dropped too
    (b"x\n.\r\ny\r\n.\r\n", b"x\n.\r\ny\r\n"),  # after a bare LF a dot starts no line
    (b"x\r\n.\ny\r\n.\r\n", b"x\r\n\ny\r\n"),  # ".\n" is no terminator
    (b"no final newline\r\n.\r\n", b"no final newline\r\n"),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"a\r\n..\r\n\r\n.\r\n", b"a\r\n.\r\n\r\n"),
])
def test_dot_unstuffing(smtp_sink, wire, want):
    sink = smtp_sink()
    r = Raw(sink)
    r.reply()
    r.cmd("EHLO c.test")
    r.cmd("MAIL FROM:<a@c.test>")
    r.cmd("RCPT TO:<b@x.test>")
    assert r.cmd("DATA")[0].startswith("354")
    # One byte at a time: the terminator is found across reads.
    for i in range(len(wire)):
        r.send(wire[i:i + 1])
        time.sleep(0.001)
    assert r.reply()[0].startswith("250 ")
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]  # nothing after the dot was taken as data
    [m] = sink.wait_messages(1)
    assert m.data == want
    assert m.raw_data == wire


def test_bdat(smtp_sink):
    sink = smtp_sink(extensions=["PIPELINING", "CHUNKING", "BINARYMIME"])
    r = Raw(sink)
    r.reply()
    assert "250-CHUNKING" in r.cmd("EHLO c.test")
    body1, body2 = b"Subject: x\r\n\r\n.dot not stuffed\r\n", b"\r\n.\r\nBDAT 3\r\nend\r\n"
    r.send(b"MAIL FROM:<a@c.test> BODY=BINARYMIME\r\nRCPT TO:<b@x.test>\r\n"
           + f"BDAT {len(body1)}\r\n".encode() + body1
           + f"BDAT {len(body2)} LAST\r\n".encode() + body2)
    replies = [r.reply()[0] for _ in range(4)]
    assert replies[:3] == ["250 2.1.0 Ok", "250 2.1.5 Ok", f"250 2.0.0 {len(body1)} octets received"]
    assert replies[3].startswith("250 2.0.0 Ok: queued")
    [m] = sink.wait_messages(1)
    assert m.via == "BDAT" and m.chunks == [len(body1), len(body2)]
    assert m.data == body1 + body2  # as is: no dot-stuffing in BDAT
    assert m.params == {"BODY": "BINARYMIME"}
    # BDAT without CHUNKING offered: the chunk is still read, then refused.
    plain = smtp_sink()
    r = Raw(plain)
    r.reply()
    r.cmd("EHLO c.test")
    r.cmd("MAIL FROM:<a@c.test>")
    r.cmd("RCPT TO:<b@x.test>")
    r.send("BDAT 6 LAST\r\nNOOP\r\n")
    assert r.reply() == ["502 5.5.1 CHUNKING not offered"]
    assert r.cmd("NOOP") == ["250 2.0.0 Ok"]
    assert plain.messages == []


def test_starttls(smtp_sink, tmp_path):
    cert, key = make_cert(tmp_path, "mx1.out.test")
    sink = smtp_sink(tls_cert=cert, tls_key=key)
    with client(sink) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False  # smtplib gives its host (127.0.0.1) as the name
        s.starttls(context=ctx)
        s.ehlo()
        assert not s.has_extn("starttls")
        s.sendmail("a@c.test", ["b@x.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    [m] = sink.wait_messages(1)
    assert m.tls and m.data == b"Subject: tls\r\n\r\nsecret\r\n"
    [sess] = sink.wait_sessions(1)
    assert sess.tls in ("TLSv1.2", "TLSv1.3")
    assert sess.verbs() == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert [c.tls for c in sess.commands] == [False, False, True, True, True, True, True]
    # A client that verifies and does not trust the certificate: the
    # handshake fails and the sink records why.
    with client(sink) as s:
        s.ehlo()
        with pytest.raises(ssl.SSLError):
            s.starttls(context=ssl.create_default_context())
    sess = sink.wait_sessions(2)[1]
    assert sess.tls is None and sess.tls_error is not None
    # starttls=False: not offered; a scripted refusal of STARTTLS.
    sink.configure(starttls=False)
    with client(sink) as s:
        s.ehlo()
        assert not s.has_extn("starttls")
    sink.configure(starttls=True, replies={"STARTTLS": "454 4.7.0 TLS not available now"})
    with client(sink) as s:
        s.ehlo()
        assert s.has_extn("starttls")
        assert s.docmd("STARTTLS") == (454, b"4.7.0 TLS not available now")


def test_starttls_injection_discarded(smtp_sink, tmp_path):
    cert, key = make_cert(tmp_path)
    sink = smtp_sink(tls_cert=cert, tls_key=key)
    r = Raw(sink)
    r.reply()
    r.cmd("EHLO c.test")
    r.send("STARTTLS\r\nRSET\r\n")  # the RSET is plaintext sent before the handshake
    assert r.reply() == ["220 2.0.0 Ready to start TLS"]
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    tls = ctx.wrap_socket(r.sock)
    tls.sendall(b"NOOP\r\n")
    assert tls.recv(100) == b"250 2.0.0 Ok\r\n"  # nothing answered for the RSET
    tls.close()
    [sess] = sink.wait_sessions(1)
    assert sess.starttls_injection and sess.verbs() == ["EHLO", "STARTTLS", "NOOP"]


def test_scripted_replies(smtp_sink):
    sink = smtp_sink(rcpt_replies={"bad@x.test": "550 5.1.1 no such user",
                                   "Later@X.test": "451 4.3.0 try later"},
                     data_reply="451 4.3.0 data not now")
    with client(sink) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@c.test", ["good@x.test", "BAD@x.test", "later@x.test"], b"x\r\n")
        assert e.value.smtp_code == 451 and e.value.smtp_error == b"4.3.0 data not now"
    assert sink.messages == []
    [tx] = sink.transactions()
    assert tx.rcpts == ["good@x.test"] and not tx.accepted
    assert tx.refused == [("BAD@x.test", "550 5.1.1 no such user"),
                          ("later@x.test", "451 4.3.0 try later")]
    assert tx.data == b"x\r\n" and tx.data_reply == "451 4.3.0 data not now"
    # smtplib reports the refused ones when the rest is accepted.
    sink.configure(data_reply=None)
    with client(sink) as s:
        refused = s.sendmail("a@c.test", ["good@x.test", "bad@x.test"], b"y\r\n")
    assert refused == {"bad@x.test": (550, b"5.1.1 no such user")}
    [m] = sink.wait_messages(1)
    assert m.rcpts == ["good@x.test"] and m.data == b"y\r\n"
    # A sequence: refused once, then accepted; MAIL and a multi-line reply.
    sink.configure(rcpt_replies={"later@x.test": ["451 4.3.0 try later", "250 2.1.5 fine"]},
                   mail_reply=["452 4.3.1 full", "250 2.1.0 sure"],
                   replies={"NOOP": "250 first\nsecond"})
    with client(sink) as s:
        s.ehlo()
        assert s.noop() == (250, b"first\nsecond")
        assert s.mail("a@c.test") == (452, b"4.3.1 full")
        assert s.mail("a@c.test") == (250, b"2.1.0 sure")
        assert s.rcpt("later@x.test") == (451, b"4.3.0 try later")
        assert s.rcpt("later@x.test") == (250, b"2.1.5 fine")
        assert s.rcpt("later@x.test") == (250, b"2.1.5 fine")


def test_size_enforced(smtp_sink):
    sink = smtp_sink(extensions=["SIZE 100"])
    big = b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n"
    with client(sink) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail("a@c.test", ["b@x.test"], big)  # smtplib sends SIZE=
        assert e.value.smtp_code == 552
    r = Raw(sink)
    r.reply()
    assert "250 SIZE 100" in r.cmd("EHLO c.test")
    r.cmd("MAIL FROM:<a@c.test>")  # no SIZE=: found out after the data
    r.cmd("RCPT TO:<b@x.test>")
    r.cmd("DATA")
    assert r.cmd(big.decode() + ".")[0].startswith("552 5.3.4 ")
    assert sink.messages == []


def test_greetings(smtp_sink):
    sink = smtp_sink(greeting="220 mx.sink.test first line\nsecond line", ehlo_name="me.test")
    r = Raw(sink)
    assert r.reply() == ["220-mx.sink.test first line", "220 second line"]
    assert r.cmd("EHLO c.test")[0] == "250-me.test hello c.test"
    r.close()
    # smtplib reads a multi-line greeting too.
    with client(sink) as s:
        assert s.ehlo()[0] == 250
    sink.configure(greeting="421 4.3.2 too busy")
    with pytest.raises(smtplib.SMTPConnectError) as e:
        client(sink)
    assert e.value.smtp_code == 421
    sink.configure(greeting="554 5.7.1 go away")
    r = Raw(sink)
    assert r.reply() == ["554 5.7.1 go away"]
    assert r.cmd("EHLO c.test") == ["503 5.5.1 no service here"]
    assert r.cmd("QUIT") == ["221 2.0.0 bye"]
    assert r.eof()
    sink.configure(greeting=["220-a", "220-b", "220 c"])
    r = Raw(sink)
    assert r.reply() == ["220-a", "220-b", "220 c"]
    sink.wait_sessions(4)
    assert [s.ended for s in sink.sessions[:4]] == ["client closed", "quit", "421 greeting",
                                                    "quit"]


def test_faults(smtp_sink):
    sink = smtp_sink(close_after_greeting=True)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        with client(sink) as s:
            s.ehlo()
    sink.configure(close_after_greeting=False, drop_after="RCPT")
    with client(sink) as s:
        s.ehlo()
        s.mail("a@c.test")
        assert s.rcpt("b@x.test")[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.data(b"x\r\n")
    sink.configure(drop_after="DATA")  # right after the 354
    with client(sink) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@c.test", ["b@x.test"], b"x\r\n")
    sink.configure(drop_after="DATA_END")  # the data is in, not answered
    with client(sink) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@c.test", ["b@x.test"], b"x\r\n")
    sink.configure(drop_after=None, drop_at="MAIL")
    with client(sink) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.mail("a@c.test")
    sessions = sink.wait_sessions(5)
    assert [s.ended for s in sessions] == [
        "closed after the greeting", "dropped after RCPT", "dropped after the 354",
        "dropped at the end of the data", "dropped at MAIL"]
    assert sink.messages == []
    assert sessions[3].transactions[0].data == b"x\r\n"  # recorded, not accepted
    assert not sessions[3].transactions[0].accepted


def test_stall(smtp_sink):
    sink = smtp_sink(stall_after="MAIL")
    s = smtplib.SMTP(sink.host, sink.port, local_hostname="c.test", timeout=1.0)
    s.ehlo()
    assert s.mail("a@c.test")[0] == 250
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        s.rcpt("b@x.test")
    s.close()
    sink.configure(stall_after=None, stall_at="DATA")
    s = smtplib.SMTP(sink.host, sink.port, local_hostname="c.test", timeout=1.0)
    s.ehlo()
    s.mail("a@c.test")
    s.rcpt("b@x.test")
    with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
        s.data(b"x\r\n")
    s.close()
    sessions = sink.wait_sessions(2)
    assert [x.ended for x in sessions] == ["stalled, then closed"] * 2
    assert sessions[0].verbs() == ["EHLO", "MAIL"]  # the RCPT came during the stall
    # stop() ends a stalled session at once.
    sink.configure(stall_at=None, stall_after="EHLO")
    s = smtplib.SMTP(sink.host, sink.port, local_hostname="c.test", timeout=5.0)
    s.ehlo()
    sink.wait_sessions(3, ended=False)
    t0 = time.monotonic()
    sink.stop()
    assert time.monotonic() - t0 < 5
    s.close()


def test_faults_for_the_first_sessions_only(smtp_sink):
    sink = smtp_sink(drop_after="DATA", faults_for=1)
    with client(sink) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@c.test", ["b@x.test"], b"x\r\n")
    with client(sink) as s:
        assert s.sendmail("a@c.test", ["b@x.test"], b"x\r\n") == {}
    assert len(sink.wait_messages(1)) == 1


def test_other_loopback_addresses_share_a_port(smtp_sink):
    a = smtp_sink(host="127.0.0.2", ehlo_name="mx1.out.test")
    b = smtp_sink(host="127.0.0.3", port=a.port, ehlo_name="mx2.out.test")
    six = smtp_sink(host="::1", port=a.port, ehlo_name="mx6.out.test")
    for sink, name in ((a, "mx1"), (b, "mx2"), (six, "mx6")):
        with client(sink) as s:
            assert s.ehlo()[1].decode().startswith(f"{name}.out.test ")
    assert (a.connections, b.connections, six.connections) == (1, 1, 1)
    assert a.sessions[0].local == ("127.0.0.2", a.port)
    assert six.address == f"[::1]:{a.port}"


def test_long_line_and_unknown_settings(smtp_sink):
    with pytest.raises(TypeError):
        smtp_sink(no_such_setting=1)
    sink = smtp_sink()
    r = Raw(sink)
    r.reply()
    r.send(b"NOOP " + b"x" * (MAX_LINE + 10))
    assert r.reply() == ["500 5.5.2 line too long"]
    assert r.eof()


# --- the outbound zone through petreld's resolver ---------------------------------


def test_mail_dns_through_the_resolver(make_instance, env, mail_dns):
    dns = mail_dns
    dns.mx("out.test", (20, "mx2.out.test"), (10, "mx1.out.test"))
    dns.host("mx1.out.test", "127.0.0.2")
    dns.host("mx2.out.test", "127.0.0.3", "::1")
    dns.null_mx("nomail.test")
    dns.nxdomain("gone.test")
    dns.servfail("broken.test")
    dns.txt("out.test", "v=spf1 -all")
    dns.host("implicit.test", "127.0.0.4")
    dns.tlsa("mx1.out.test", 3, 1, 1, "ab" * 32)
    dns.host("sec.test", "127.0.0.5")
    dns.set_secure("sec.test")
    inst, port = dns_instance(make_instance, env, [dns.address], timeout="1s", attempts=1)
    inst.start()
    with Probe(port) as p:
        f, recs = p.resolve("MX", "out.test")
        assert (f["status"], recs) == ("OK", ["10 mx1.out.test", "20 mx2.out.test"])
        f, recs = p.resolve("A", "mx2.out.test")
        assert (f["status"], recs) == ("OK", ["127.0.0.3"])
        f, recs = p.resolve("AAAA", "mx2.out.test")
        assert (f["status"], recs) == ("OK", ["::1"])
        f, recs = p.resolve("AAAA", "mx1.out.test")
        assert (f["status"], f["rcode"]) == ("NODATA", 0)
        f, _ = p.resolve("MX", "nomail.test")
        assert f["status"] == "OK" and f["nullmx"]
        f, _ = p.resolve("MX", "implicit.test")
        assert f["status"] == "NODATA"
        f, _ = p.resolve("MX", "gone.test")
        assert (f["status"], f["rcode"]) == ("NXDOMAIN", 3)
        f, _ = p.resolve("A", "never-mentioned.test")
        assert f["status"] == "NXDOMAIN"
        f, _ = p.resolve("MX", "broken.test")
        assert f["status"] == "SERVFAIL"
        f, recs = p.resolve("TXT", "out.test")
        assert recs == ["v=spf1 -all"]
        f, recs = p.resolve("TLSA", "_25._tcp.mx1.out.test")
        assert (recs, f["ad"]) == ([f"3 1 1 {'ab' * 32}"], True)
        f, _ = p.resolve("A", "sec.test")
        assert f["ad"]
        f, _ = p.resolve("A", "mx1.out.test")
        assert not f["ad"]
    assert dns.asked("out.test") >= 2
