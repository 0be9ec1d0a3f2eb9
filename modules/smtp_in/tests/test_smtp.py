"""smtp_in end to end (issue 4): delivery into the Maildir store, the
extensions (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, CHUNKING, DSN,
STARTTLS, AUTH), submission and SMTPS, the message's framing (dots, bare
CR/LF, NUL, long lines, SMTP smuggling), limits and timeouts, aliases,
forwards, loops and quotas, the echo module's hooks, and real clients
(swaks, mutt)."""

import os
import re
import shutil
import smtplib
import subprocess
import time

import pytest

from harness import CMD_TIMEOUT, SRC_ROOT, wait_for
from smtp_helpers import (HELO, HOSTNAME, PASSWORD, REMOTE, SmtpServer, header_fields, login,
                          message, queue_id, smtplib_queue_id, stuff)

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
SENDER = "sender@client.test"


@pytest.fixture
def smtp_server(make_instance, env, echo_module):
    """smtp_server(name, **SmtpServer options): a started server."""
    def factory(name="smtp", **kw):
        kw.setdefault("echo_module", echo_module)
        return SmtpServer(make_instance, env, name, **kw).start()
    return factory


@pytest.fixture
def srv(smtp_server):
    return smtp_server()


# What the final delivery puts on top (RFC 5321 section 4.4), then ours.
DELIVERY_RE = r"^Return-Path: <(?P<return_path>[^>]*)>\r\nDelivered-To: (?P<delivered_to>\S+)\r\n"
RECEIVED_RE = (r"^Received: from (?P<helo>\S+) \(\[127\.0\.0\.1\]\)\r\n"
               rf"\tby {re.escape(HOSTNAME)} \(Petrel\) with (?P<proto>\w+) id (?P<id>\w+)"
               r"(?:\r\n\t\(using (?P<tls>TLSv[\d.]+ with cipher [\w-]+)\))?"
               r"(?:\r\n\tfor <(?P<for>[^>]+)>)?; (?P<date>[^\r]+)\r\n")


def delivered(raw):
    """A stored message less the Return-Path and Delivered-To that the
    final delivery put on top (they must be there); and their match."""
    m = re.match(DELIVERY_RE.encode(), raw)
    assert m, f"no Return-Path and Delivered-To on top:\n{raw[:400]!r}"
    return raw[m.end():], m


def received(raw):
    """The Received field Petrel put on top of a message, parsed (after the
    final delivery's fields, for a stored one); and the rest."""
    if raw.startswith(b"Return-Path: "):
        raw = delivered(raw)[0]
    text = raw.decode("utf-8", errors="surrogateescape")
    m = re.match(RECEIVED_RE, text)
    assert m, f"no Received field of ours on top:\n{raw[:400]!r}"
    return m, raw[len(m.group(0).encode("utf-8", errors="surrogateescape")):]


def only_message(srv, address):
    msgs = srv.messages(address)
    assert len(msgs) == 1, f"{address}: {len(msgs)} messages: {msgs!r}"
    return msgs[0]


def send_raw(c, frm, rcpts, payload, mail_params="", rcpt_params=""):
    """MAIL, RCPTs (each must get 250) and DATA with payload as sent."""
    assert c.command(f"MAIL FROM:<{frm}>{mail_params}") == "250 2.1.0 Ok"
    for r in rcpts:
        assert c.command(f"RCPT TO:<{r}>{rcpt_params}") == "250 2.1.5 Ok"
    return c.data(payload)


# --- delivery -------------------------------------------------------------


def test_mx_delivery_lands_in_the_maildir(srv):
    msg = message("plain delivery", to=ALICE, body="Hello Alice,\r\nline two\r\n")
    with srv.smtp() as s:
        code, banner = s.ehlo()
        assert code == 250
        assert s.mail(SENDER) == (250, b"2.1.0 Ok")
        assert s.rcpt(ALICE) == (250, b"2.1.5 Ok")
        reply = s.data(msg.encode())
        qid = smtplib_queue_id(reply)
        assert s.quit()[0] == 221
    assert len(qid) == 20, qid
    raw = only_message(srv, ALICE)
    m, rest = received(raw)
    assert m.group("id") == qid
    assert f" id {qid}".encode() in raw
    assert m.group("helo") == HELO
    assert m.group("proto") == "ESMTP"
    assert m.group("for") == ALICE
    assert rest == msg.encode()  # byte for byte after our trace field
    # Delivered directly: nothing left in the queue, no data file.
    assert srv.queued() == [] and srv.queued("data") == []
    assert srv.messages(BOB) == []
    srv.inst.wait_log(rf"processing: {qid}: to=<{ALICE}> delivered uid=1 folder=INBOX")
    srv.inst.wait_log(rf"smtp_in: conn \d+ \[127\.0\.0\.1\]:\d+: message from=<{SENDER}> "
                      rf"size=\d+: 250 2\.0\.0 Ok: queued as {qid}")


def test_greeting_and_reply_of_data(srv):
    with srv.raw() as c:
        assert c.greet() == [f"{HOSTNAME} ESMTP Petrel"]
        c.ehlo()
        reply = send_raw(c, SENDER, [ALICE], "Subject: x\r\n\r\nbody\r\n.\r\n")
        assert re.fullmatch(r"250 2\.0\.0 Ok: queued as [0-9A-Z]{20}", reply), reply
        assert c.command("QUIT") == "221 2.0.0 Bye"
        assert c.is_closed()


def test_unknown_local_user(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        assert c.command("RCPT TO:<nobody@example.test>") == \
            "550 5.1.1 <nobody@example.test>: no such user here"
        # Domains are case-insensitive, local parts of accounts too.
        assert c.command("RCPT TO:<Alice@EXAMPLE.TEST>") == "250 2.1.5 Ok"
        qid = queue_id(c.data("Subject: case\r\n\r\nx\r\n.\r\n"))
    raw = only_message(srv, ALICE)
    assert received(raw)[0].group("id") == qid
    assert not (srv.inst.dir / "data" / "mail" / "example.test" / "nobody").exists()


def test_ehlo_extensions_and_auth_only_after_starttls(srv):
    base = ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES"]
    tail = ["SMTPUTF8", "CHUNKING", "DSN", "HELP"]
    tls_tail = ["SMTPUTF8", "CHUNKING", "DSN", "REQUIRETLS", "HELP"]  # RFC 8689: on TLS only
    for port in (srv.mx_port, srv.sub_port):
        with srv.raw(port) as c:
            c.greet()
            assert c.ehlo() == base + ["STARTTLS"] + tail
            c.starttls()
            assert c.ehlo() == base + ["AUTH PLAIN LOGIN"] + tls_tail
    # SMTPS: TLS from the start, AUTH at once, no STARTTLS.
    with srv.raw(srv.smtps_port, tls=True) as c:
        c.greet()
        assert c.ehlo() == base + ["AUTH PLAIN LOGIN"] + tls_tail
        assert c.command("STARTTLS") == "503 5.5.1 TLS already active"
    # The first line names the server and the client.
    with srv.raw() as c:
        c.greet()
        c.send("EHLO client.test\r\n")
        code, lines = c.reply()
        assert lines[0] == f"{HOSTNAME} Hello client.test [127.0.0.1]"
        assert c.command("HELO client.test") == f"250 {HOSTNAME}"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_submission_auth_then_relay(srv, mech):
    remote = f"dave@{REMOTE}"
    msg = message(f"relay {mech}", frm=ALICE, to=remote)
    with srv.submission() as s:
        assert s.has_extn("auth") and s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert login(s, ALICE, mech=mech) == (235, b"2.7.0 Authentication successful")
        assert s.mail(ALICE) == (250, b"2.1.0 Ok")
        assert s.rcpt(remote) == (250, b"2.1.5 Ok")
        qid = smtplib_queue_id(s.data(msg.encode()))
    srv.inst.wait_log(rf"authenticated as {re.escape(ALICE)}")
    # Queued for the outbound side: envelope and data file, in `queue list`.
    assert srv.queued() == [qid]
    assert srv.queued("data") == [qid]
    envelope = srv.envelope(qid)
    assert f"from {ALICE}\n" in envelope
    assert f"auth {ALICE}\n" in envelope
    assert re.search(rf"^rcpt P R \d+ {re.escape(remote)}\t", envelope, re.M), envelope
    r = srv.inst.ctl("queue", "list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert qid in r.stdout and remote in r.stdout, r.stdout
    data = (srv.queue_dir("data") / qid).read_bytes()
    m, rest = received(data)
    assert m.group("proto") == "ESMTPSA" and m.group("id") == qid
    assert rest == msg.encode()


def test_submission_without_auth_is_refused(srv):
    for tls in (False, True):
        with srv.raw(srv.sub_port) as c:
            c.greet()
            c.ehlo()
            if tls:
                c.starttls()
                c.ehlo()
            assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
            assert c.command(f"RCPT TO:<{BOB}>") == "503 5.5.1 need MAIL command"
            assert c.command("DATA") == "503 5.5.1 need MAIL command"
    with srv.raw(srv.smtps_port, tls=True) as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{ALICE}>") == "530 5.7.0 authentication required"
    assert srv.all_delivered() == [] and srv.queued() == []


def test_submission_to_a_local_account(srv):
    msg = message("sub local", frm=ALICE, to=BOB)
    with srv.submission(ALICE) as s:
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        qid = smtplib_queue_id(s.data(msg.encode()))
    m, rest = received(only_message(srv, BOB))
    assert m.group("proto") == "ESMTPSA" and m.group("id") == qid
    assert rest == msg.encode()
    assert srv.queued() == []


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smtps_auth(srv, mech):
    remote = f"erin@{REMOTE}"
    msg = message(f"smtps {mech}", frm=ALICE, to=remote)
    with srv.smtps() as s:
        assert "starttls" not in s.esmtp_features
        assert login(s, ALICE, mech=mech) == (235, b"2.7.0 Authentication successful")
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(remote)[0] == 250
        assert s.rcpt(CAROL)[0] == 250
        qid = smtplib_queue_id(s.data(msg.encode()))
    assert srv.queued() == [qid]
    m, rest = received(only_message(srv, CAROL))
    assert m.group("proto") == "ESMTPSA" and m.group("id") == qid
    assert m.group("for") is None  # two recipients: neither named
    assert rest == msg.encode()


def test_wrong_password_on_submission(srv):
    with srv.submission() as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            login(s, ALICE, "not-the-password")
        assert e.value.smtp_code == 535
        assert e.value.smtp_error == b"5.7.8 authentication credentials invalid"
        assert s.mail(ALICE) == (530, b"5.7.0 authentication required")


# --- PIPELINING, CHUNKING --------------------------------------------------


def test_pipelining(srv):
    with srv.raw() as c:
        c.greet()
        assert "PIPELINING" in c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@example.test>\r\n"
               f"RCPT TO:<{BOB}>\r\nDATA\r\n")
        assert c.reply_line() == "250 2.1.0 Ok"
        assert c.reply_line() == "250 2.1.5 Ok"
        assert c.reply_line() == "550 5.1.1 <nobody@example.test>: no such user here"
        assert c.reply_line() == "250 2.1.5 Ok"
        assert c.reply_line() == "354 End data with <CR><LF>.<CR><LF>"
        # The message, its end, the next transaction and QUIT in one write.
        c.send(f"Subject: pipelined\r\n\r\nbody\r\n.\r\nRSET\r\nMAIL FROM:<{SENDER}>\r\n"
               f"RCPT TO:<{CAROL}>\r\nNOOP\r\nQUIT\r\n")
        qid = queue_id(c.reply_line())
        assert c.reply_line() == "250 2.0.0 Ok"
        assert c.reply_line() == "250 2.1.0 Ok"
        assert c.reply_line() == "250 2.1.5 Ok"
        assert c.reply_line() == "250 2.0.0 Ok"
        assert c.reply_line() == "221 2.0.0 Bye"
        assert c.is_closed()
    for rcpt in (ALICE, BOB):
        m, rest = received(only_message(srv, rcpt))
        assert m.group("id") == qid and rest == b"Subject: pipelined\r\n\r\nbody\r\n"
    assert srv.messages(CAROL) == []


def test_pipelined_body_after_refused_data_is_not_run(srv):
    """Issue 9: a client that sends the message right behind a DATA that is
    refused (no valid recipient, or no MAIL) has its message lines thrown
    away up to the end of data, not run as commands: the MAIL, RCPT and
    DATA inside it deliver nothing. A client that waits for the refusal
    goes on as before."""
    smuggled = (f"MAIL FROM:<x@client.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n"
                "Subject: smuggled\r\n\r\nrun as commands\r\n.\r\n")
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n"
               + smuggled + "NOOP\r\n")
        assert c.reply_line() == "250 2.1.0 Ok"
        assert c.reply_line() == "550 5.1.1 <nobody@example.test>: no such user here"
        assert c.reply_line() == "554 5.5.1 no valid recipients"
        assert c.reply_line() == "250 2.0.0 Ok"  # the NOOP after the dot
        # DATA without MAIL, the same.
        c.send("RSET\r\nDATA\r\n" + smuggled + "QUIT\r\n")
        assert c.reply_line() == "250 2.0.0 Ok"
        assert c.reply_line() == "503 5.5.1 need MAIL command"
        assert c.reply_line() == "221 2.0.0 Bye"
        assert c.is_closed()
    srv.inst.wait_log(r"DATA refused with input behind it: discarding up to the end of data")
    assert srv.messages(ALICE) == []
    assert srv.queued() == []
    # Waiting for the refusal: the next command is a command.
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.command("DATA") == "503 5.5.1 need MAIL command"
        assert c.command("NOOP") == "250 2.0.0 Ok"
        c.transaction(SENDER)
        assert c.command("RCPT TO:<nobody@example.test>").startswith("550 5.1.1 ")
        assert c.command("DATA") == "554 5.5.1 no valid recipients"
        assert c.command("RSET") == "250 2.0.0 Ok"
        assert queue_id(send_raw(c, SENDER, [ALICE], "Subject: after\r\n\r\nx\r\n.\r\n"))
    assert len(srv.messages(ALICE)) == 1


def test_pipelined_body_after_data_during_bdat_is_not_run(srv):
    """Found by fuzz_smtp_session: a DATA in the middle of a BDAT transfer
    is refused (503) and the transaction aborted; a message sent right
    behind it was run as commands, as after any refused DATA."""
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, BOB)
        c.send("BDAT 12\r\nSubject: x\r\n")
        assert c.reply_line() == "250 2.0.0 12 octets received"
        c.send(f"DATA\r\nMAIL FROM:<x@client.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n"
               "Subject: smuggled\r\n\r\nx\r\n.\r\nQUIT\r\n")
        assert c.reply_line() == "503 5.5.1 BDAT transfer not finished, transaction aborted"
        assert c.reply_line() == "221 2.0.0 Bye"
        assert c.is_closed()
    assert srv.messages(ALICE) == [] and srv.messages(BOB) == []


def test_pipelined_recipients_answered_in_order(srv):
    # Some unknown ones, fewer than max_errors (each refusal is an error).
    rcpts = [f"nobody{i}@example.test" if i % 10 == 9 else ALICE if i % 2 else BOB
             for i in range(90)]
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.send(f"MAIL FROM:<{SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) +
               "DATA\r\n")
        assert c.reply_line() == "250 2.1.0 Ok"
        for r in rcpts:
            want = "250 2.1.5 Ok" if "nobody" not in r else f"550 5.1.1 <{r}>: no such user here"
            assert c.reply_line() == want
        assert c.reply_line().startswith("354 ")
        qid = queue_id(c.data_body("Subject: many\r\n\r\nx\r\n.\r\n"))
    for rcpt in (ALICE, BOB):
        assert received(only_message(srv, rcpt))[0].group("id") == qid


def test_bdat(srv):
    chunk1 = b"Subject: chunked\r\n\r\nline one\r\n.leading dot stays\r\n"
    chunk2 = b"\r\n.\r\nMAIL FROM:<evil@client.test>\r\n"  # data, not a command
    chunk3 = b"last line\r\n"
    with srv.raw() as c:
        c.greet()
        assert "CHUNKING" in c.ehlo()
        c.transaction(SENDER, ALICE)
        c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        assert c.reply_line() == f"250 2.0.0 {len(chunk1)} octets received"
        c.send(b"BDAT %d\r\n" % len(chunk2) + chunk2)
        assert c.reply_line() == f"250 2.0.0 {len(chunk1) + len(chunk2)} octets received"
        c.send(b"BDAT %d LAST\r\n" % len(chunk3) + chunk3)
        qid1 = queue_id(c.reply_line())
        # BDAT 0 LAST ends a message whose chunks came before; the commands
        # and chunks pipelined in one write.
        chunk = b"Subject: zero last\r\n\r\nbody\r\n"
        c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{BOB}>\r\n".encode() +
               b"BDAT %d\r\n" % len(chunk) + chunk + b"BDAT 0 LAST\r\n")
        assert c.reply_line() == "250 2.1.0 Ok"
        assert c.reply_line() == "250 2.1.5 Ok"
        assert c.reply_line() == f"250 2.0.0 {len(chunk)} octets received"
        qid2 = queue_id(c.reply_line())
        # BDAT without a transaction: refused, the chunk is read and dropped.
        c.send(b"BDAT 5 LAST\r\nNOOP\r")
        assert c.reply_line() == "503 5.5.1 need MAIL command"
        assert c.command("NOOP") == "250 2.0.0 Ok"
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid1
    assert rest == chunk1 + chunk2 + chunk3  # no dot handling in BDAT
    m, rest = received(only_message(srv, BOB))
    assert m.group("id") == qid2 and rest == chunk


@pytest.mark.parametrize("bare_lf", ["normalize", "reject"])
def test_bdat_line_ends(smtp_server, bare_lf):
    """BDAT content is not dot-stuffed but gets DATA's line-end policy:
    bare LF and CR become CRLF (or refuse the message), and a CRLF split
    between two chunks stays one line end."""
    srv = smtp_server(smtp=dict(bare_lf=bare_lf))
    chunks = [b"Subject: bdat ends\r\n\r\nbare lf\n.\nbare cr\r.\rsplit\r",
              b"\nnext\r", b"x\r\nends in cr\r"]
    clean = [b"Subject: clean\r\n\r\nsplit crlf\r", b"\nend\r\n"]
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        for parts in (chunks, clean):
            c.transaction(SENDER, ALICE)
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                c.send(b"BDAT %d%s\r\n" % (len(part), b" LAST" if last else b"") + part)
                reply = c.reply_line()
                if parts is chunks and bare_lf == "reject":
                    # Refused at the first chunk; the transaction is over.
                    assert reply == ("554 5.6.0 message contains a bare CR or LF "
                                     "(RFC 5321 section 2.3.8)" if i == 0
                                     else "503 5.5.1 need MAIL command"), reply
                elif not last:
                    assert reply.startswith("250 2.0.0 "), reply
                else:
                    queue_id(reply)
    stored = [received(m)[1] for m in srv.messages(ALICE)]
    want = [b"Subject: clean\r\n\r\nsplit crlf\r\nend\r\n"]
    if bare_lf == "normalize":
        want.insert(0, b"Subject: bdat ends\r\n\r\nbare lf\r\n.\r\nbare cr\r\n.\r\n"
                       b"split\r\nnext\r\nx\r\nends in cr\r\n")
    assert sorted(stored) == sorted(want)


def test_bdat_chunks_that_fill_the_write_buffer(srv):
    """A chunk whose end arrives while the session's buffer is being written
    (256 KiB and more): the reply waits for the write, the message is whole
    (a review found a use-after-free here)."""
    body = b"".join(b"%07d %s\r\n" % (i, b"x" * 70) for i in range(9000))  # ~710 KB
    msg = b"Subject: big chunks\r\n\r\n" + body
    for sizes in ([len(msg)], [262144, len(msg) - 262144], [300000, 300000, len(msg) - 600000]):
        with srv.raw() as c:
            c.greet()
            c.ehlo()
            c.transaction(SENDER, ALICE)
            off = 0
            for i, n in enumerate(sizes):
                last = i == len(sizes) - 1
                c.send(b"BDAT %d%s\r\n" % (n, b" LAST" if last else b"") + msg[off:off + n])
                off += n
                line = c.reply_line()
                if last:
                    queue_id(line)
                else:
                    assert line == f"250 2.0.0 {off} octets received"
    stored = srv.messages(ALICE)
    assert len(stored) == 3
    for raw in stored:
        assert received(raw)[1] == msg


def test_bdat_then_other_command_aborts(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        c.send(b"BDAT 4\r\nabcd")
        assert c.reply_line() == "250 2.0.0 4 octets received"
        assert c.command("DATA") == "503 5.5.1 BDAT transfer not finished, transaction aborted"
        assert c.command("RCPT TO:<bob@example.test>") == "503 5.5.1 need MAIL command"
        # RSET may end an unfinished BDAT transfer.
        c.transaction(SENDER, ALICE)
        c.send(b"BDAT 4\r\nabcd")
        assert c.reply_line() == "250 2.0.0 4 octets received"
        assert c.command("RSET") == "250 2.0.0 Ok"
        c.send(b"BDAT 4 LAST\r\nefgh")
        assert c.reply_line() == "503 5.5.1 need MAIL command"
    assert srv.all_delivered() == []


# --- 8BITMIME, SMTPUTF8 -----------------------------------------------------


def test_8bitmime_stored_byte_exact(srv):
    body = ("Grüße aus Köln, ½ € — ✓\r\n".encode() +
            b"raw latin-1 \xe9\xe8\xff\xfe\x80\r\n" + bytes(range(0x80, 0x100)) + b"\r\n")
    payload = (b"Subject: 8bit\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    with srv.raw() as c:
        c.greet()
        assert "8BITMIME" in c.ehlo()
        qid = queue_id(send_raw(c, SENDER, [ALICE], payload + b".\r\n",
                                mail_params=" BODY=8BITMIME"))
        # BODY=7BIT is accepted too; an unknown BODY is not.
        assert c.command(f"MAIL FROM:<{SENDER}> BODY=7BIT") == "250 2.1.0 Ok"
        assert c.command("RSET") == "250 2.0.0 Ok"
        assert c.command(f"MAIL FROM:<{SENDER}> BODY=BINARYMIME").startswith("5")
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid
    assert rest == payload


def test_smtputf8(srv):
    srv_utf8_sender = "üser@例え.test"
    subject = "Subject: Grüße 例え\r\n".encode()
    with srv.raw() as c:
        c.greet()
        assert "SMTPUTF8" in c.ehlo()
        c.send(f"MAIL FROM:<{srv_utf8_sender}> SMTPUTF8\r\n".encode())
        assert c.reply_line() == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{ALICE}>") == "250 2.1.5 Ok"
        # A UTF-8 recipient in an SMTPUTF8 transaction is parsed, then unknown.
        c.send("RCPT TO:<ünknown@example.test>\r\n".encode())
        assert c.reply_line() == "550 5.1.1 <ünknown@example.test>: no such user here"
        qid = queue_id(c.data(subject + b"From: " + srv_utf8_sender.encode() +
                              b"\r\n\r\nhallo\r\n.\r\n"))
        # Without SMTPUTF8 a non-ASCII address is refused, as sender or recipient.
        c.send(f"MAIL FROM:<{srv_utf8_sender}>\r\n".encode())
        assert c.reply_line() == "553 5.6.7 non-ascii address requires SMTPUTF8"
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        c.send("RCPT TO:<üser@example.test>\r\n".encode())
        assert c.reply_line() == "553 5.6.7 non-ascii address requires SMTPUTF8"
    raw = only_message(srv, ALICE)
    m, rest = received(raw)
    assert m.group("id") == qid and m.group("proto") == "UTF8SMTP"
    assert rest == subject + "From: üser@例え.test\r\n\r\nhallo\r\n".encode()


# --- sizes ------------------------------------------------------------------


def test_20_megabyte_message(srv):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,:;-_+*#!\r\n"
    body = line * (20 * 1024 * 1024 // len(line) + 1)
    msg = b"Subject: big\r\n\r\n" + body
    assert len(msg) > 20 * 1024 * 1024
    with srv.smtp() as s:
        s.sock.settimeout(60)
        s.ehlo()
        assert s.mail(SENDER, [f"SIZE={len(msg)}"]) == (250, b"2.1.0 Ok")
        assert s.rcpt(ALICE)[0] == 250
        qid = smtplib_queue_id(s.data(msg))
    raw = only_message(srv, ALICE)
    m, rest = received(raw)
    assert m.group("id") == qid
    assert len(rest) == len(msg) and rest == msg
    # The spool file of the big message is gone once delivered.
    assert srv.queued("data") == [] and srv.queued() == []


def test_max_message_size(smtp_server):
    srv = smtp_server(smtp=dict(max_message_size="16k"))
    with srv.raw() as c:
        c.greet()
        assert "SIZE 16384" in c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}> SIZE=99999999999") == \
            "552 5.3.4 message size exceeds fixed limit"
        assert c.command(f"MAIL FROM:<{SENDER}> SIZE=16385") == \
            "552 5.3.4 message size exceeds fixed limit"
        # Over the limit without SIZE: read to the end, then refused.
        big = b"Subject: too big\r\n\r\n" + b"x" * 70 + b"\r\n"
        big = big * 300
        assert send_raw(c, SENDER, [ALICE], big + b".\r\n") == \
            "552 5.3.4 message size exceeds fixed limit"
        # The same with BDAT.
        c.transaction(SENDER, ALICE)
        c.send(b"BDAT %d LAST\r\n" % len(big) + big)
        assert c.reply_line() == "552 5.3.4 message size exceeds fixed limit"
        # The session goes on; a message under the limit is taken.
        assert c.command(f"MAIL FROM:<{SENDER}> SIZE=1000") == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{ALICE}>") == "250 2.1.5 Ok"
        qid = queue_id(c.data("Subject: small\r\n\r\nok\r\n.\r\n"))
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid and rest == b"Subject: small\r\n\r\nok\r\n"
    assert srv.queued("data") == []
    srv.inst.wait_log(r"message refused: too big")


def test_leading_dots_are_unstuffed(srv):
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n...\r\nmid.dle\r\n. space\r\nend\r\n"
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qid = queue_id(send_raw(c, SENDER, [ALICE], stuff(body) + b".\r\n"))
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid
    assert rest == body


def test_dsn_parameters(srv):
    remote = f"dave@{REMOTE}"
    with srv.submission(ALICE) as s:
        assert s.has_extn("dsn")
        assert s.mail(ALICE, ["RET=HDRS", "ENVID=env+2Bid-42"]) == (250, b"2.1.0 Ok")
        assert s.rcpt(remote, ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{remote}"]) == \
            (250, b"2.1.5 Ok")
        assert s.rcpt(BOB, ["NOTIFY=NEVER"]) == (250, b"2.1.5 Ok")
        qid = smtplib_queue_id(s.data(message("dsn", frm=ALICE, to=remote).encode()))
        # Malformed DSN parameters are refused.
        assert s.mail(ALICE, ["RET=SOMETIMES"])[0] == 501
        assert s.mail(ALICE, ["ENVID=a b"])[0] >= 500
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(remote, ["NOTIFY=NEVER,SUCCESS"])[0] == 501
        assert s.rcpt(remote, ["NOTIFY=SOMETIMES"])[0] == 501
        assert s.rcpt(remote, ["ORCPT=nocolon"])[0] == 501
        # Decoded values may not carry line ends into reports and queue files.
        assert s.rcpt(remote, ["ORCPT=rfc822;a+0D+0ABcc:+20x@y.test"])[0] == 501
        assert s.rcpt(remote, ["NOTIFY=FAILURE"])[0] == 250
        assert s.rset()[0] == 250
        assert s.mail(ALICE, ["ENVID=a+0Ab"])[0] == 501
    assert len(srv.messages(BOB)) == 1
    envelope = srv.envelope(qid)
    assert "envid env+id-42\n" in envelope, envelope
    # RET=HDRS; trusted (logged in)
    assert re.search(r"^flags 1 0 \d 2 1$", envelope, re.M), envelope
    notify = 2 | 4  # SUCCESS | FAILURE
    assert re.search(rf"^rcpt P R {notify} {re.escape(remote)}\t[^\t]*\trfc822;"
                     rf"{re.escape(remote)}(\t|$)", envelope, re.M), envelope
    # An MX client may give them too.
    with srv.raw() as c:
        c.greet()
        assert "DSN" in c.ehlo()
        qid = queue_id(send_raw(c, SENDER, [CAROL], "Subject: dsn mx\r\n\r\nx\r\n.\r\n",
                                mail_params=" RET=FULL ENVID=mx1",
                                rcpt_params=f" NOTIFY=FAILURE ORCPT=rfc822;{CAROL}"))
    assert received(only_message(srv, CAROL))[0].group("id") == qid


def test_requiretls(srv):
    """RFC 8689: REQUIRETLS is offered and taken over TLS only (530 5.7.10
    in plaintext), and the flag goes into the queue file (the sixth flag)."""
    remote = f"dave@{REMOTE}"
    with srv.raw() as c:
        c.greet()
        assert "REQUIRETLS" not in c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}> REQUIRETLS") == "530 5.7.10 REQUIRETLS needs TLS"
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        c.command("RSET")
        c.starttls()
        assert "REQUIRETLS" in c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}> REQUIRETLS=1") == \
            "501 5.5.4 REQUIRETLS takes no value"
        qid = queue_id(send_raw(c, SENDER, [ALICE], "Subject: rt mx\r\n\r\nx\r\n.\r\n",
                                mail_params=" REQUIRETLS"))
    assert received(only_message(srv, ALICE))[0].group("id") == qid
    # A remote recipient stays queued: the flag is in its envelope.
    with srv.submission(ALICE) as s:
        assert s.has_extn("requiretls")
        assert s.mail(ALICE, ["REQUIRETLS"]) == (250, b"2.1.0 Ok")
        assert s.rcpt(remote) == (250, b"2.1.5 Ok")
        qid = smtplib_queue_id(s.data(message("rt", frm=ALICE, to=remote).encode()))
        assert s.mail(ALICE) == (250, b"2.1.0 Ok")
        assert s.rcpt(remote) == (250, b"2.1.5 Ok")
        plain = smtplib_queue_id(s.data(message("no rt", frm=ALICE, to=remote).encode()))
    envelope = srv.envelope(qid)
    assert re.search(r"^flags 1 0 \d \d 1 1$", envelope, re.M), envelope
    envelope = srv.envelope(plain)
    assert re.search(r"^flags 1 0 \d \d 1$", envelope, re.M), envelope


def test_requiretls_setting_off(smtp_server):
    srv = smtp_server(smtp={"requiretls": False})
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.starttls()
        assert "REQUIRETLS" not in c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}> REQUIRETLS") == "555 5.5.4 unsupported parameter"


def test_message_id_and_date_added_on_submission_only(srv):
    bare = "From: <alice@example.test>\r\nSubject: no id\r\n\r\nbody\r\n"
    with srv.submission(ALICE) as s:
        assert s.mail(ALICE)[0] == 250 and s.rcpt(BOB)[0] == 250
        qid = smtplib_queue_id(s.data(bare.encode()))
    raw = only_message(srv, BOB)
    m, rest = received(raw)
    assert m.group("id") == qid
    assert header_fields(raw, "Message-ID") == [f"<{qid}@{HOSTNAME}>"]
    dates = header_fields(raw, "Date")
    assert len(dates) == 1
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", dates[0]), dates
    assert rest.endswith(bare.encode())
    # A message that has them keeps them, once.
    full = message("has id", frm=ALICE, to=CAROL)
    with srv.submission(ALICE) as s:
        assert s.mail(ALICE)[0] == 250 and s.rcpt(CAROL)[0] == 250
        smtplib_queue_id(s.data(full.encode()))
    raw = only_message(srv, CAROL)
    assert header_fields(raw, "Message-ID") == ["<has.id@client.test>"]
    assert len(header_fields(raw, "Date")) == 1
    assert received(raw)[1] == full.encode()
    # MX mail is left as it came.
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, SENDER, [ALICE], bare + ".\r\n"))
    raw = only_message(srv, ALICE)
    assert header_fields(raw, "Message-ID") == [] and header_fields(raw, "Date") == []
    assert received(raw)[1] == bare.encode()


# --- framing: smuggling, bare LF, NUL, long lines --------------------------

SMUGGLED = (b"Subject: smuggling\r\n\r\nbefore\r\n"
            b"one\n.\nMAIL FROM:<evil1@client.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"DATA\r\nSubject: smuggled 1\r\n\r\nx\r\n"
            b"two\r.\rMAIL FROM:<evil2@client.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"DATA\r\nSubject: smuggled 2\r\n\r\nx\r\n"
            b"three\r\n.\nMAIL FROM:<evil3@client.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"DATA\r\nSubject: smuggled 3\r\n\r\nx\r\n"
            b"four\n.\r\nMAIL FROM:<evil4@client.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"DATA\r\nSubject: smuggled 4\r\n\r\nx\r\n"
            b"after\r\n")


def test_smuggling_normalize(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        assert c.command("DATA").startswith("354 ")
        c.send(SMUGGLED + b".\r\nNOOP\r\n")
        qid = queue_id(c.reply_line())
        assert c.reply_line() == "250 2.0.0 Ok"  # the NOOP: nothing in between
        assert c.command("QUIT") == "221 2.0.0 Bye"
    assert srv.messages(BOB) == []
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid
    # Everything up to the real end is one message; bare CR and LF became
    # CRLF: every CR is followed by LF and every LF preceded by CR.
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", rest) is None, rest
    for i in (1, 2, 3, 4):
        assert f"MAIL FROM:<evil{i}@client.test>\r\n".encode() in rest, rest
        assert f"Subject: smuggled {i}\r\n".encode() in rest
    assert rest.startswith(b"Subject: smuggling\r\n\r\nbefore\r\none\r\n")
    assert rest.endswith(b"x\r\nafter\r\n")
    assert srv.log().count("message from=<") == 1


def test_smuggling_reject(smtp_server):
    srv = smtp_server(smtp=dict(bare_lf="reject"))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        assert c.command("DATA").startswith("354 ")
        c.send(SMUGGLED + b".\r\nNOOP\r\n")
        assert c.reply_line() == \
            "554 5.6.0 message contains a bare CR or LF (RFC 5321 section 2.3.8)"
        assert c.reply_line() == "250 2.0.0 Ok"
        # Each kind alone is refused too; a clean message still goes.
        for bad in (b"a\nb\r\n", b"a\rb\r\n", b"a\r\n.\nb\r\n", b"x\n.\r\n"):
            assert send_raw(c, SENDER, [ALICE], b"Subject: bad\r\n\r\n" + bad + b".\r\n") \
                .startswith("554 5.6.0 "), bad
        qid = queue_id(send_raw(c, SENDER, [ALICE], b"Subject: clean\r\n\r\nok\r\n.\r\n"))
    assert srv.messages(BOB) == []
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid and rest == b"Subject: clean\r\n\r\nok\r\n"
    srv.inst.wait_log(r"message refused: bare CR or LF")


@pytest.mark.parametrize("bare_lf", ["normalize", "reject"])
def test_smuggling_after_an_over_long_line(smtp_server, bare_lf):
    """An over-long line (dropped, the message refused) that ends in a bare
    LF does not make the next "." line an end of data: <LF>.<CRLF> never
    ends a message, so the text after it is not a new transaction."""
    srv = smtp_server(smtp=dict(bare_lf=bare_lf))  # max_line: the default 8k
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        assert c.command("DATA").startswith("354 ")
        c.send(b"Subject: long\r\n\r\n" + b"y" * 9000 + b"\n.\r\n"
               b"MAIL FROM:<evil@client.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nx\r\n.\r\nNOOP\r\n")
        assert c.reply_line() == "554 5.6.0 message has a line longer than the limit"
        assert c.reply_line() == "250 2.0.0 Ok"  # the NOOP, nothing before it
    assert srv.messages(BOB) == []
    assert srv.all_delivered() == []


def test_nul_byte_in_data(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert send_raw(c, SENDER, [ALICE], b"Subject: nul\r\n\r\nab\x00cd\r\n.\r\n") == \
            "554 5.6.0 message contains NUL bytes"
        assert srv.all_delivered() == []
        # The session goes on, the transaction is gone.
        assert c.command(f"RCPT TO:<{ALICE}>") == "503 5.5.1 need MAIL command"
        qid = queue_id(send_raw(c, SENDER, [ALICE], b"Subject: ok\r\n\r\nabcd\r\n.\r\n"))
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid and rest == b"Subject: ok\r\n\r\nabcd\r\n"
    assert srv.queued("data") == []


def test_over_long_data_line(smtp_server):
    srv = smtp_server(mx=dict(max_line="1k"))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        long = b"Subject: long\r\n\r\n" + b"y" * 3000 + b"\r\nshort\r\n.\r\n"
        assert send_raw(c, SENDER, [ALICE], long) == \
            "554 5.6.0 message has a line longer than the limit"
        # A line just under the limit is fine (the limit counts the CRLF).
        fine = b"Subject: fine\r\n\r\n" + b"z" * 900 + b"\r\n"
        qid = queue_id(send_raw(c, SENDER, [ALICE], fine + b".\r\n"))
        assert c.command("NOOP") == "250 2.0.0 Ok"
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid and rest == fine


# --- greeting delay, limits, timeouts -------------------------------------


def test_greeting_delay(smtp_server):
    srv = smtp_server(smtp=dict(greeting_delay="1s"))
    with srv.raw() as c:
        c.send(f"EHLO {HELO}\r\n")  # talks first
        assert c.reply_line() == \
            f"554 5.5.1 {HOSTNAME} Error: you talked before the greeting"
        assert c.is_closed()
    srv.inst.wait_log(r"refused: talked before the greeting")
    t0 = time.monotonic()
    with srv.raw() as c:
        assert c.greet() == [f"{HOSTNAME} ESMTP Petrel"]
        took = time.monotonic() - t0
        assert 0.9 <= took < 4.0, took
        c.ehlo()
        assert c.command("QUIT") == "221 2.0.0 Bye"


def test_max_recipients(smtp_server):
    srv = smtp_server(smtp=dict(max_recipients=3), accounts=("a1", "a2", "a3", "a4"))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        for i in (1, 2, 3):
            assert c.command(f"RCPT TO:<a{i}@example.test>") == "250 2.1.5 Ok"
        assert c.command("RCPT TO:<a4@example.test>") == "452 4.5.3 too many recipients"
        qid = queue_id(c.data("Subject: three\r\n\r\nx\r\n.\r\n"))
    for i in (1, 2, 3):
        assert received(only_message(srv, f"a{i}@example.test"))[0].group("id") == qid
    assert srv.messages("a4@example.test") == []


def test_max_errors(smtp_server):
    srv = smtp_server(service=dict(max_errors=3))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert c.command("FOO") == "500 5.5.2 command not recognized"
        assert c.command("RCPT TO:<x@y.test>") == "503 5.5.1 need MAIL command"
        assert c.command("BAR") == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert c.is_closed()
    srv.inst.wait_log(r"too many errors \(3\)")


def test_idle_timeout(smtp_server):
    srv = smtp_server(mx=dict(idle_timeout="2s"))
    with srv.raw(timeout=10) as c:
        c.greet()
        t0 = time.monotonic()
        c.ehlo()
        assert c.reply_line() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        took = time.monotonic() - t0
        assert 1.5 <= took < 8, took
        assert c.is_closed()
    srv.inst.wait_log(r"timeout waiting for a command")
    # In the middle of DATA: the same, and nothing is kept.
    with srv.raw(timeout=10) as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        assert c.command("DATA").startswith("354")
        c.send("Subject: cut\r\n\r\npartial line")
        assert c.reply_line() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        assert c.is_closed()
    srv.inst.wait_log(r"timeout during DATA")
    assert srv.all_delivered() == [] and srv.queued() == []


# --- aliases, forwards, loops, quotas -------------------------------------


def test_alias_delivers_once_to_each_target(make_instance, env):
    srv = SmtpServer(make_instance, env, "alias")
    srv.alias("team@example.test", ALICE, BOB)
    srv.start()
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qid1 = queue_id(send_raw(c, SENDER, ["team@example.test"],
                                 "Subject: team\r\n\r\nx\r\n.\r\n"))
        # The alias and one of its targets in one message: still one copy.
        qid2 = queue_id(send_raw(c, SENDER, ["team@example.test", ALICE],
                                 "Subject: team and alice\r\n\r\nx\r\n.\r\n"))
    for rcpt in (ALICE, BOB):
        msgs = srv.messages(rcpt)
        assert [received(m)[0].group("id") for m in msgs] == [qid1, qid2], rcpt
    assert srv.messages(CAROL) == [] and srv.queued() == []


def test_forward_with_and_without_keep(make_instance, env):
    srv = SmtpServer(make_instance, env, "forward")
    srv.forward(CAROL, f"dave@{REMOTE}", keep=True)
    srv.forward(BOB, ALICE)
    srv.start()
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qid1 = queue_id(send_raw(c, SENDER, [CAROL], "Subject: keep\r\n\r\nx\r\n.\r\n"))
        qid2 = queue_id(send_raw(c, SENDER, [BOB], "Subject: moved\r\n\r\nx\r\n.\r\n"))
    assert received(only_message(srv, CAROL))[0].group("id") == qid1
    assert srv.queued() == [qid1]
    assert re.search(rf"^rcpt P R \d+ dave@{REMOTE}\t{re.escape(CAROL)}\t",
                     srv.envelope(qid1), re.M), srv.envelope(qid1)
    assert srv.messages(BOB) == []
    assert received(only_message(srv, ALICE))[0].group("id") == qid2


def looping_server(srv):
    """Start srv with loopa and loopb aliased to each other: a recipient
    that is accepted at RCPT and fails in expansion. Written straight into
    the account file, as petrelctl refuses to make the loop."""
    with open(srv.inst.users, "a") as f:
        f.write("alias loopa@example.test loopb@example.test\n"
                "alias loopb@example.test loopa@example.test\n")
    srv.start()


def test_alias_loop(make_instance, env):
    srv = SmtpServer(make_instance, env, "loop")
    looping_server(srv)
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        # Alone: nothing can be delivered, the client hears why.
        assert send_raw(c, SENDER, ["loopa@example.test"],
                        "Subject: loop\r\n\r\nx\r\n.\r\n") == \
            "554 5.4.6 alias or forwarding loop"
        assert srv.all_delivered() == [] and srv.queued() == []
        # With a good recipient: accepted, the loop reported to the sender
        # (a local account here, so the report is delivered at once).
        qid = queue_id(send_raw(c, ALICE, ["loopa@example.test", BOB],
                                "Subject: loop and bob\r\n\r\nx\r\n.\r\n"))
    srv.inst.wait_log(rf"{qid}: loopa@example\.test: alias or forwarding loop")
    assert received(only_message(srv, BOB))[0].group("id") == qid
    report = only_message(srv, ALICE)
    assert b"multipart/report" in report and b"loopa@example.test" in report, report
    assert b"5.4.6" in report


@pytest.mark.parametrize("failure,reply", [
    ("temporary", "452 4.2.2 mailbox full"),
    ("permanent", "552 5.2.2 mailbox full"),
])
def test_quota(make_instance, env, failure, reply):
    srv = SmtpServer(make_instance, env, f"quota-{failure}",
                     processing=dict(quota_failure=failure))
    srv.add_account("tiny@example.test", "--quota", "2k")
    srv.start()
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        small = b"Subject: fits\r\n\r\nok\r\n"
        qid = queue_id(send_raw(c, SENDER, ["tiny@example.test"], small + b".\r\n"))
        big = b"Subject: too big for the quota\r\n\r\n" + (b"q" * 70 + b"\r\n") * 60
        assert send_raw(c, SENDER, ["tiny@example.test"], big + b".\r\n") == reply
    msgs = srv.messages("tiny@example.test")
    assert [received(m)[0].group("id") for m in msgs] == [qid]
    assert srv.queued() == [] and srv.queued("data") == []


# --- hooks of the echo module -------------------------------------------


def test_echo_hooks(smtp_server):
    srv = smtp_server(echo=dict(blocked_recipients=[BOB], stamp="checked by echo"))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        assert c.command("RCPT TO:<BOB@example.test>") == \
            "550 5.7.1 recipient blocked by the echo example module"
        qid = queue_id(c.data("Subject: stamped\r\n\r\nx\r\n.\r\n"))
    raw = delivered(only_message(srv, ALICE))[0]
    stamp = f"X-Echo-Stamp: checked by echo (queue id {qid})\r\n".encode()
    assert raw.startswith(stamp), raw[:300]
    m, rest = received(raw[len(stamp):])
    assert m.group("id") == qid and rest == b"Subject: stamped\r\n\r\nx\r\n"
    assert header_fields(raw, "X-Echo-Stamp") == [f"checked by echo (queue id {qid})"]
    assert srv.messages(BOB) == []


SESSION_RE = r"session=(\d+) conn=(\d+) mails=(\d+) rcpts=(\d+)$"


def test_hook_session_slot(smtp_server):
    """petrel/smtp.h's session slot, through echo's session_header: the
    record a handler leaves in it at smtp.mail is the one the smtp.rcpt
    and smtp.data handlers of the same session find (and every event names
    that connection); another session has a slot of its own; smtp.disconnect
    gets it at the end to free it."""
    srv = smtp_server(echo=dict(session_header=True))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE, CAROL)
        first = queue_id(c.data("Subject: one\r\n\r\nx\r\n.\r\n"))
        c.transaction(SENDER, ALICE)
        second = queue_id(c.data("Subject: two\r\n\r\nx\r\n.\r\n"))
        assert c.command("QUIT").startswith("221")
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        third = queue_id(c.data("Subject: three\r\n\r\nx\r\n.\r\n"))
        assert c.command("QUIT").startswith("221")
    seen = {}
    for raw in srv.messages(ALICE):
        (field,) = header_fields(raw, "X-Echo-Session")
        top = f"X-Echo-Session: {field}\r\n".encode()
        body = delivered(raw)[0]
        assert body.startswith(top), body[:300]
        m, _ = received(body[len(top):])
        seen[m.group("id")] = tuple(int(v) for v in re.match(SESSION_RE, field).groups())
    assert set(seen) == {first, second, third}
    (s1, c1, _, _), (s3, c3, _, _) = seen[first], seen[third]
    # Counted in one record per session: MAIL and RCPT saw the same slot.
    assert seen[first] == (s1, c1, 1, 2)
    assert seen[second] == (s1, c1, 2, 3)
    assert seen[third] == (s3, c3, 1, 1)
    assert s1 != s3 and c1 != c3
    srv.inst.wait_log(rf"smtp session {s1} \(conn {c1}\) ended after 2 messages")
    srv.inst.wait_log(rf"smtp session {s3} \(conn {c3}\) ended after 1 messages")


# --- real clients ----------------------------------------------------------


def swaks(*args):
    if shutil.which("swaks") is None:
        pytest.fail("swaks is not installed (scripts/deps.sh)")
    r = subprocess.run(["swaks", "--timeout", "10", "--helo", HELO, *args],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    return r


def swaks_queued(r):
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^<[-~]  250 2\.0\.0 Ok: queued as (\w+)$", r.stdout, re.M)
    assert m, r.stdout
    return m.group(1)


def test_swaks_plain_delivery(srv):
    r = swaks("--server", f"127.0.0.1:{srv.mx_port}", "--to", ALICE, "--from", SENDER,
              "--header", "Subject: swaks plain")
    qid = swaks_queued(r)
    raw = only_message(srv, ALICE)
    m, rest = received(raw)
    assert m.group("id") == qid and m.group("proto") == "ESMTP"
    assert header_fields(raw, "Subject") == ["swaks plain"]
    assert header_fields(raw, "X-Mailer")[0].startswith("swaks")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth(srv, mech):
    remote = f"frank@{REMOTE}"
    r = swaks("--server", f"127.0.0.1:{srv.sub_port}", "-tls", "--auth", mech,
              "--auth-user", ALICE, "--auth-password", PASSWORD,
              "--to", f"{remote},{BOB}", "--from", ALICE,
              "--header", f"Subject: swaks {mech}")
    qid = swaks_queued(r)
    assert "<~  235 2.7.0 Authentication successful" in r.stdout, r.stdout
    assert srv.queued() == [qid]
    raw = only_message(srv, BOB)
    m, _ = received(raw)
    assert m.group("id") == qid and m.group("proto") == "ESMTPSA"
    assert PASSWORD not in srv.log()


def test_swaks_pipeline(srv):
    r = swaks("--server", f"127.0.0.1:{srv.mx_port}", "--pipeline",
              "--to", f"{ALICE},nobody@example.test,{CAROL}", "--from", SENDER,
              "--header", "Subject: swaks pipelined")
    # swaks counts the refused recipient as an error but sends the message.
    assert "550 5.1.1 <nobody@example.test>: no such user here" in r.stdout, r.stdout
    m = re.search(r"^<[-~]  250 2\.0\.0 Ok: queued as (\w+)$", r.stdout, re.M)
    assert m, r.stdout
    assert "PIPELINING" in r.stdout
    for rcpt in (ALICE, CAROL):
        assert received(only_message(srv, rcpt))[0].group("id") == m.group(1)


def test_mutt_sends_through_submission(srv, base_dir):
    mutt = shutil.which("mutt")
    if mutt is None:
        pytest.skip("mutt is not installed")
    home = base_dir / f"mutt-home-{srv.sub_port}"
    home.mkdir()
    (home / "Mail").mkdir()
    muttrc = home / ".muttrc"
    cert = srv.inst.dir / "tls" / "cert.pem"
    muttrc.write_text(
        f'set smtp_url="smtp://{ALICE}@127.0.0.1:{srv.sub_port}/"\n'
        f'set smtp_pass="{PASSWORD}"\n'
        'set ssl_starttls=yes\nset ssl_force_tls=yes\n'
        'set ssl_verify_host=no\nset ssl_verify_dates=no\n'
        f'set certificate_file="{cert}"\n'
        'set smtp_authenticators="plain"\n'
        f'set from="{ALICE}"\nset use_from=yes\nset realname="Alice"\n'
        'set record=""\nset copy=no\nset mbox_type=Maildir\n'
        f'set folder="{home}/Mail"\nset spoolfile="{home}/Mail"\n'
        f'set hostname="client.test"\n'
        'set charset="utf-8"\nset send_charset="utf-8"\n')
    env = dict(os.environ, HOME=str(home), TERM="dumb", LANG="C.UTF-8")
    env.pop("MAIL", None)
    r = subprocess.run([mutt, "-n", "-F", str(muttrc), "-s", "mutt over submission", "--", BOB],
                       input="Hello from mutt.\n", env=env, capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, f"mutt failed: {r.stdout}{r.stderr}\n{srv.log()}"
    raw = only_message(srv, BOB)
    m, rest = received(raw)
    assert m.group("proto") == "ESMTPSA"
    assert header_fields(raw, "Subject") == ["mutt over submission"]
    assert b"Hello from mutt." in rest
    srv.inst.wait_log(rf"authenticated as {re.escape(ALICE)}")


# --- more of the pipeline ---------------------------------------------------


def test_trace_protocol_names(srv):
    """RFC 3848: SMTP after HELO, ESMTP, ESMTPS after STARTTLS, ESMTPSA
    after AUTH, with the TLS version and cipher the client saw; a single
    recipient is named in the trace, not several."""
    with srv.raw() as c:
        c.greet()
        assert c.command(f"HELO {HELO}") == f"250 {HOSTNAME}"
        q_smtp = queue_id(send_raw(c, SENDER, [ALICE], "Subject: helo\r\n\r\nx\r\n.\r\n"))
        c.ehlo()
        c.starttls()
        c.ehlo("tls.client.test")
        tls_trace = f"{c.sock.version()} with cipher {c.sock.cipher()[0]}"
        q_tls = queue_id(send_raw(c, SENDER, [ALICE], "Subject: tls\r\n\r\nx\r\n.\r\n"))
        assert c.auth_plain(BOB) == "235 2.7.0 Authentication successful"
        q_auth = queue_id(send_raw(c, BOB, [ALICE], "Subject: auth\r\n\r\nx\r\n.\r\n"))
    got = [received(m)[0] for m in srv.messages(ALICE)]
    assert [(m.group("id"), m.group("proto"), m.group("helo"), m.group("for")) for m in got] == [
        (q_smtp, "SMTP", HELO, ALICE),
        (q_tls, "ESMTPS", "tls.client.test", ALICE),
        (q_auth, "ESMTPSA", "tls.client.test", ALICE),
    ]
    # The TLS protocol and suite are named once TLS is on.
    assert [m.group("tls") for m in got] == [None] + [tls_trace] * 2


def test_helo_argument_must_be_a_host_name_or_literal(srv):
    """Issue 8: the HELO/EHLO argument goes into Received:, so text that
    would forge trace clauses is refused (501 5.5.2) and logged; host names
    (an underscore too) and address literals are taken as they are."""
    forged = "x)by(trusted.example)with(ESMTPSA)id(FAKE);"
    with srv.raw() as c:
        c.greet()
        for verb in ("HELO", "EHLO"):
            assert c.command(f"{verb} {forged}") == \
                "501 5.5.2 invalid domain name or address literal"
        assert c.command("HELO [garbage") == "501 5.5.2 invalid domain name or address literal"
        # Nothing was recorded: the session still needs a greeting.
        assert c.command(f"MAIL FROM:<{SENDER}>") == "503 5.5.1 send HELO or EHLO first"
        for name in ("[127.0.0.1]", "[IPv6:::1]", "mail_1.client.test"):
            assert c.command(f"HELO {name}") == f"250 {HOSTNAME}"
        q = queue_id(send_raw(c, SENDER, [ALICE], "Subject: helo\r\n\r\nx\r\n.\r\n"))
    srv.inst.wait_log(r"HELO refused: invalid domain name or address literal: "
                      + re.escape(forged))
    m, _ = received(only_message(srv, ALICE))
    assert (m.group("id"), m.group("helo")) == (q, "mail_1.client.test")


def test_duplicate_recipient_and_null_sender(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qid = queue_id(send_raw(c, "", [ALICE, ALICE, "ALICE@example.test"],
                                "Subject: bounce-like\r\n\r\nx\r\n.\r\n"))
    assert received(only_message(srv, ALICE))[0].group("id") == qid


def test_header_only_and_empty_messages(srv):
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        q1 = queue_id(send_raw(c, SENDER, [ALICE], "Subject: only a header\r\n.\r\n"))
        q2 = queue_id(send_raw(c, SENDER, [ALICE], ".\r\n"))
        q3 = queue_id(send_raw(c, SENDER, [ALICE], "\r\nbody without header\r\n.\r\n"))
    msgs = srv.messages(ALICE)
    assert len(msgs) == 3
    parsed = [received(m) for m in msgs]
    assert [m.group("id") for m, _ in parsed] == [q1, q2, q3]
    assert [rest for _, rest in parsed] == [b"Subject: only a header\r\n", b"",
                                             b"\r\nbody without header\r\n"]


def test_line_ends_split_across_packets(smtp_server):
    """CR and LF of one line end in different reads are one CRLF, also for
    the final dot (bare_lf = "reject" would refuse a lone CR or LF)."""
    srv = smtp_server(smtp=dict(bare_lf="reject"))
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.transaction(SENDER, ALICE)
        assert c.command("DATA").startswith("354 ")
        for part in (b"Subject: split\r", b"\n\r", b"\nline one\r", b"\n", b"..dot\r\n.",
                     b"\r", b"\n"):
            c.send(part)
            time.sleep(0.15)
        qid = queue_id(c.reply_line())
        c.send(b"NO")
        time.sleep(0.15)
        c.send(b"OP\r")
        time.sleep(0.15)
        c.send(b"\n")
        assert c.reply_line() == "250 2.0.0 Ok"
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid
    assert rest == b"Subject: split\r\n\r\nline one\r\n.dot\r\n"


def test_submission_limits(smtp_server):
    srv = smtp_server(smtp=dict(max_message_size="1M", max_recipients=5,
                                submission_max_message_size="8k",
                                submission_max_recipients=2))
    with srv.submission(ALICE) as s:
        assert s.esmtp_features["size"] == "8192"
        assert s.mail(ALICE, ["SIZE=8193"]) == (552, b"5.3.4 message size exceeds fixed limit")
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        assert s.rcpt(CAROL)[0] == 250
        assert s.rcpt(f"x@{REMOTE}") == (452, b"4.5.3 too many recipients")
        reply = s.data(b"Subject: big\r\n\r\n" + (b"b" * 70 + b"\r\n") * 200)
        assert reply == (552, b"5.3.4 message size exceeds fixed limit")
    with srv.raw() as c:
        c.greet()
        assert "SIZE 1048576" in c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}> SIZE=8193") == "250 2.1.0 Ok"
        for rcpt in (ALICE, BOB, CAROL):
            assert c.command(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
        queue_id(c.data(b"Subject: fits on MX\r\n\r\n" + (b"b" * 70 + b"\r\n") * 200 + b".\r\n"))
    assert len(srv.messages(BOB)) == 1 and len(srv.messages(CAROL)) == 1


def test_extensions_can_be_turned_off(smtp_server):
    srv = smtp_server(smtp=dict(smtputf8=False, dsn=False, chunking=False))
    with srv.raw() as c:
        c.greet()
        assert c.ehlo() == ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES",
                            "STARTTLS", "HELP"]
        assert c.command(f"MAIL FROM:<{SENDER}> SMTPUTF8").startswith("555 5.5.4 ")
        assert c.command(f"MAIL FROM:<{SENDER}> RET=FULL").startswith("555 5.5.4 ")
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{ALICE}> NOTIFY=NEVER").startswith("555 5.5.4 ")
        assert c.command(f"RCPT TO:<{ALICE}>") == "250 2.1.5 Ok"
        c.send("BDAT 3 LAST\r\nabc")
        assert c.reply_line() == "502 5.5.1 BDAT not available"
        assert c.is_closed()
    assert srv.all_delivered() == []


def test_too_many_hops(smtp_server):
    srv = smtp_server(processing=dict(max_hops=3))
    hop = "Received: from a.test by b.test; Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        assert send_raw(c, SENDER, [ALICE], hop * 4 + "Subject: loop\r\n\r\nx\r\n.\r\n") == \
            "554 5.4.6 too many hops, a mail loop?"
        qid = queue_id(send_raw(c, SENDER, [ALICE], hop * 3 + "Subject: ok\r\n\r\nx\r\n.\r\n"))
    m, rest = received(only_message(srv, ALICE))
    assert m.group("id") == qid and rest.startswith(hop.encode() * 3)
    assert srv.queued() == []


def test_postmaster(srv):
    """RFC 5321 section 4.5.1: <postmaster> without a domain is the
    primary domain's postmaster, which `petrelctl init` makes an alias of
    the demo account."""
    assert "postmaster@example.test demo@example.test\n" in srv.ctl("alias", "list")
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qid = queue_id(send_raw(c, "", ["postmaster", "PostMaster@Example.Test"],
                                "Subject: to postmaster\r\n\r\nx\r\n.\r\n"))
    assert received(only_message(srv, "demo@example.test"))[0].group("id") == qid


def test_delivery_status_notifications(make_instance, env):
    """A success report when asked (NOTIFY=SUCCESS), a failure report for a
    recipient that failed after acceptance, with ENVID, ORCPT and RET;
    nothing for NOTIFY=NEVER or the null sender. Logged in: success
    reports are only for such clients (dsn_trusted_only)."""
    srv = SmtpServer(make_instance, env, "dsn")
    looping_server(srv)
    with srv.raw_login(ALICE) as c:
        assert c.command(f"MAIL FROM:<{ALICE}> RET=HDRS ENVID=env+2D1") == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{BOB}> NOTIFY=SUCCESS ORCPT=rfc822;bob+40x.test") == \
            "250 2.1.5 Ok"
        assert c.command("RCPT TO:<loopa@example.test> NOTIFY=FAILURE") == "250 2.1.5 Ok"
        qid = queue_id(c.data("Subject: report me\r\n\r\nsecret body\r\n.\r\n"))
        # NOTIFY=NEVER and the null sender: no report.
        queue_id(send_raw(c, ALICE, [CAROL, "loopa@example.test"],
                          "Subject: never\r\n\r\nx\r\n.\r\n", rcpt_params=" NOTIFY=NEVER"))
        queue_id(send_raw(c, "", [CAROL, "loopa@example.test"],
                          "Subject: null\r\n\r\nx\r\n.\r\n"))
    assert received(only_message(srv, BOB))[0].group("id") == qid
    reports = srv.messages(ALICE)
    assert len(reports) == 2, reports
    text = b"\n".join(reports).decode()
    assert "Subject: Undelivered Mail Returned to Sender" in text
    assert "Subject: Successful Mail Delivery Report" in text
    assert "Original-Envelope-Id: env-1" in text
    assert ("Final-Recipient: rfc822; bob@example.test\r\nOriginal-Recipient: rfc822;bob@x.test\r\n"
            "Action: delivered\r\nStatus: 2.0.0\r\n") in text
    assert ("Final-Recipient: rfc822; loopa@example.test\r\nAction: failed\r\n"
            "Status: 5.4.6\r\nDiagnostic-Code: smtp; 554 5.4.6 alias or forwarding loop") in text
    assert "Subject: report me" in text  # RET=HDRS: the header...
    assert "secret body" not in text     # ...not the body
    for r in reports:
        assert delivered(r)[0].startswith(f"Received: by {HOSTNAME} (Petrel) id ".encode()), \
            r[:200]
        assert header_fields(r, "From") == [f"Mail Delivery System <MAILER-DAEMON@{HOSTNAME}>"]
        assert header_fields(r, "Auto-Submitted") == ["auto-replied"]
    assert len(srv.messages(CAROL)) == 2
    assert srv.queued() == []


def test_smtputf8_failure_report_is_internationalized(make_instance, env):
    """RFC 6533: a message that came with SMTPUTF8 and failed after
    acceptance is reported with message/global-delivery-status and its
    header as message/global-headers; the report to a UTF-8 sender keeps
    SMTPUTF8 in its own envelope (it waits in the outbound queue here)."""
    srv = SmtpServer(make_instance, env, "dsn8")
    looping_server(srv)
    sender = "üser@例え.test"
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        c.send(f"MAIL FROM:<{sender}> SMTPUTF8\r\n".encode())
        assert c.reply_line() == "250 2.1.0 Ok"
        assert c.command(f"RCPT TO:<{BOB}>") == "250 2.1.5 Ok"
        assert c.command("RCPT TO:<loopa@example.test>") == "250 2.1.5 Ok"
        qid = queue_id(c.data("Subject: Grüße\r\n\r\nkörper\r\n.\r\n".encode()))
    assert received(only_message(srv, BOB))[0].group("id") == qid
    ids = [q for q in srv.queued() if q != qid]
    assert len(ids) == 1, srv.queued()
    envelope = srv.envelope(ids[0])
    lines = envelope.splitlines()
    assert "from " in lines  # the report's own sender is <>
    flags = next(line for line in lines if line.startswith("flags ")).split()
    assert flags[2] == "1", envelope  # "flags SUBMISSION SMTPUTF8 BODY RET"
    report = (srv.queue_dir("data") / ids[0]).read_bytes().decode()
    assert "report-type=global-delivery-status" in report
    assert f"To: <{sender}>" in report
    assert "Content-Type: text/plain; charset=utf-8" in report
    assert "Content-Type: message/global-delivery-status" in report
    assert ("Final-Recipient: rfc822; loopa@example.test\r\nAction: failed\r\n"
            "Status: 5.4.6\r\n") in report
    assert "Content-Type: message/global-headers" in report
    assert "Subject: Grüße" in report and "körper" not in report
    # An ASCII sender gets the global form too, delivered here; the same
    # failure without SMTPUTF8 keeps the plain types.
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, CAROL, [BOB, "loopa@example.test"],
                          "Subject: ascii\r\n\r\nx\r\n.\r\n", mail_params=" SMTPUTF8"))
        queue_id(send_raw(c, ALICE, [BOB, "loopa@example.test"],
                          "Subject: plain\r\n\r\nx\r\n.\r\n"))
    ascii_sender = only_message(srv, CAROL).decode()
    assert "Content-Type: message/global-delivery-status" in ascii_sender
    plain = only_message(srv, ALICE).decode()
    assert "report-type=delivery-status" in plain and "global" not in plain
    assert "Content-Type: text/rfc822-headers" in plain


def test_big_spooled_message_with_stamp_and_remote_copy(smtp_server):
    """Over processing's memory_limit the message is spooled to a file; the
    smtp.data hook's header goes on top of the file, and the same bytes
    reach the mailbox and the queue."""
    srv = smtp_server(processing=dict(memory_limit="64k"), echo=dict(stamp="big"))
    body = b"".join(b"%08d the quick brown fox jumps over the lazy dog\r\n" % i
                    for i in range(60000))
    msg = message("spooled", frm=ALICE, to=BOB).encode() + body
    with srv.submission(ALICE) as s:
        s.sock.settimeout(30)
        assert s.mail(ALICE)[0] == 250
        assert s.rcpt(BOB)[0] == 250
        assert s.rcpt(f"far@{REMOTE}")[0] == 250
        qid = smtplib_queue_id(s.data(msg))
    stamp = f"X-Echo-Stamp: big (queue id {qid})\r\n".encode()
    raw = delivered(only_message(srv, BOB))[0]
    assert raw.startswith(stamp)
    m, rest = received(raw[len(stamp):])
    assert m.group("id") == qid and rest == msg
    assert srv.queued() == [qid]
    assert (srv.queue_dir("data") / qid).read_bytes() == raw


def test_quota_mixed_recipients(make_instance, env):
    """One recipient over quota, one fine: 250; the full one is retried
    later from the queue (temporary), the other delivered."""
    srv = SmtpServer(make_instance, env, "quota-mixed")
    srv.add_account("tiny@example.test", "--messages", "1")
    srv.start()
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, SENDER, ["tiny@example.test"], "Subject: 1\r\n\r\nx\r\n.\r\n"))
        assert send_raw(c, SENDER, ["tiny@example.test"], "Subject: 2\r\n\r\nx\r\n.\r\n") == \
            "452 4.2.2 mailbox full"
        qid = queue_id(send_raw(c, SENDER, ["tiny@example.test", ALICE],
                                "Subject: 3\r\n\r\nx\r\n.\r\n"))
    assert len(srv.messages("tiny@example.test")) == 1
    assert received(only_message(srv, ALICE))[0].group("id") == qid
    assert srv.queued() == [qid]
    env_text = srv.envelope(qid)
    assert re.search(r"^rcpt T L \d+ tiny@example\.test\t.*452 4\.2\.2 mailbox full", env_text,
                     re.M), env_text


def test_access_rules_refuse(make_instance, env):
    srv = SmtpServer(make_instance, env, "rules",
                     mx=dict(rules=[dict(action="deny", ips=["127.0.0.3"])]))
    srv.start()
    with srv.raw(source="127.0.0.3") as c:
        assert c.reply_line() == f"554 5.7.1 {HOSTNAME} Error: access denied"
        assert c.is_closed()
    with srv.raw(source="127.0.0.4") as c:
        assert c.greet() == [f"{HOSTNAME} ESMTP Petrel"]


def test_shutdown_says_goodbye(srv):
    c = srv.raw()
    try:
        c.greet()
        c.ehlo()
        assert c.command(f"MAIL FROM:<{SENDER}>") == "250 2.1.0 Ok"
        srv.stop()
        assert c.reply_line() == f"421 4.3.2 {HOSTNAME} Service shutting down"
        assert c.is_closed()
    finally:
        c.close()
    assert srv.all_delivered() == []


# --- trace fields of the final delivery, and DSN backscatter ---------------


def test_return_path_and_delivered_to(srv):
    """RFC 5321 section 4.4: the delivering server adds Return-Path with the
    envelope sender; the client's own Return-Path fields (folded ones too)
    are dropped, and Delivered-To names each recipient."""
    forged = ("Return-Path: <forged@trusted.example>\r\n"
              "Return-Path:\r\n <folded@trusted.example>\r\n")
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        qid = queue_id(send_raw(c, SENDER, [ALICE, BOB],
                                (forged + "Subject: trace\r\n\r\nbody\r\n.\r\n").encode()))
    for rcpt in (ALICE, BOB):
        raw = only_message(srv, rcpt)
        rest, m = delivered(raw)
        assert m.group("return_path") == SENDER.encode()
        assert m.group("delivered_to") == rcpt.encode()
        assert b"forged@" not in raw and b"folded@" not in raw, raw
        assert header_fields(raw, "Return-Path") == [f"<{SENDER}>"]
        assert received(rest)[0].group("id") == qid
    # The null sender is <>.
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, "", [CAROL], b"Subject: null\r\n\r\nx\r\n.\r\n"))
    assert delivered(only_message(srv, CAROL))[1].group("return_path") == b""


def test_return_path_with_blanks_before_the_colon(srv):
    """RFC 5322 obsolete syntax lets blanks stand before a field's colon,
    and some readers take "Return-Path :" as the field: it is dropped
    like the plain one, folded lines and all."""
    forged = ("Return-Path :<spaced@trusted.example>\r\n"
              "return-path\t\t: <tabbed@trusted.example>\r\n"
              "Return-Path :\r\n <folded@trusted.example>\r\n"
              "Return-Pathx: <kept@trusted.example>\r\n")
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, SENDER, [ALICE],
                          (forged + "Subject: blanks\r\n\r\nbody\r\n.\r\n").encode()))
    raw = only_message(srv, ALICE)
    for who in (b"spaced@", b"tabbed@", b"folded@"):
        assert who not in raw, raw[:600]
    assert b"Return-Pathx: <kept@trusted.example>\r\n" in raw
    assert header_fields(raw, "Return-Path") == [f"<{SENDER}>"]


def long_header(size):
    """Harmless fields of about size bytes, lines well under 998."""
    line = "X-Filler: " + "f" * 500 + "\r\n"
    return line * (size // len(line) + 1)


@pytest.mark.parametrize("memory_limit", ["1M", "4096"])
def test_header_past_what_is_scanned(smtp_server, memory_limit):
    """The header is filtered to its end however long it is, in memory or
    spilled to the spool file: a Return-Path after 64 KiB of fields is
    dropped, and Received fields there count towards max_hops."""
    srv = smtp_server(processing=dict(max_hops=3, memory_limit=memory_limit))
    filler = long_header(70 * 1024)
    hop = "Received: from a.test by b.test; Thu, 01 Jan 2026 00:00:00 +0000\r\n"
    forged = "Return-Path: <forged@trusted.example>\r\nReturn-Path:\r\n <folded@trusted.example>\r\n"
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, SENDER, [ALICE],
                          filler + forged + "Subject: long\r\n\r\nbody\r\n.\r\n"))
        assert send_raw(c, SENDER, [BOB], filler + hop * 4 + "Subject: loop\r\n\r\nx\r\n.\r\n") \
            == "554 5.4.6 too many hops, a mail loop?"
    raw = only_message(srv, ALICE)
    assert b"forged@" not in raw and b"folded@" not in raw
    assert header_fields(raw, "Return-Path") == [f"<{SENDER}>"]
    assert raw.endswith(b"Subject: long\r\n\r\nbody\r\n")
    assert srv.messages(BOB) == []


def test_delivered_to_shows_a_loop(srv):
    """A message that already says it was delivered to the recipient came
    back through a forward elsewhere: it fails (554 5.4.6) instead of
    going round again."""
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, "", [ALICE, BOB],
                          f"Delivered-To: {ALICE.upper()}\r\nSubject: loop\r\n\r\nx\r\n.\r\n"))
    assert srv.messages(ALICE) == []
    assert len(srv.messages(BOB)) == 1
    assert "mail forwarding loop (Delivered-To)" in srv.log()


def test_dsn_backscatter_refused_for_anonymous_clients(make_instance, env):
    """An MX client naming a victim as sender cannot have a success report
    or the whole message sent there: NOTIFY=SUCCESS/DELAY and RET=FULL
    count only for logged-in clients (dsn_trusted_only), and a failure
    report for a message that came without a login carries its header
    only. Off, the MX client's NOTIFY=SUCCESS is honoured (the control)."""
    victim = f"victim@{REMOTE}"
    srv = SmtpServer(make_instance, env, "backscatter")
    looping_server(srv)
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, victim, [ALICE], b"Subject: spam\r\n\r\nsecret body\r\n.\r\n",
                          mail_params=" RET=FULL", rcpt_params=" NOTIFY=SUCCESS"))
        queue_id(send_raw(c, victim, [BOB, "loopa@example.test"],
                          b"Subject: spam2\r\n\r\nsecret body\r\n.\r\n",
                          mail_params=" RET=FULL", rcpt_params=" NOTIFY=SUCCESS,FAILURE"))
    assert len(srv.messages(ALICE)) == 1 and len(srv.messages(BOB)) == 1
    srv.inst.wait_log(r"DSN NOTIFY=SUCCESS/DELAY and RET=FULL ignored")
    reports = [(srv.queue_dir("data") / q).read_bytes() for q in srv.queued()]
    assert len(reports) == 1, reports  # the failure only: no success report
    assert b"Action: failed" in reports[0] and b"Action: delivered" not in reports[0]
    assert b"Subject: spam2" in reports[0] and b"secret body" not in reports[0]
    srv.stop()
    srv.inst.set_module_settings("smtp_in", dsn_trusted_only=False)
    srv.start()
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, victim, [CAROL], b"Subject: asked\r\n\r\nx\r\n.\r\n",
                          rcpt_params=" NOTIFY=SUCCESS"))
    wait_for(lambda: len(srv.queued()) == 2, what="the success report queued")


def test_dsn_full_for_relay_networks(make_instance, env):
    """A client in relay_networks is trusted as a logged-in one is: smtp_in
    keeps its RET=FULL (dsn_trusted_only), so its failure report carries
    the whole message, not the header only."""
    sender = f"app@{REMOTE}"
    srv = SmtpServer(make_instance, env, "trustednet",
                     smtp=dict(relay_networks=["127.0.0.1"]))
    looping_server(srv)
    with srv.raw() as c:
        c.greet()
        c.ehlo()
        queue_id(send_raw(c, sender, [BOB, "loopa@example.test"],
                          b"Subject: full\r\n\r\nthe whole body\r\n.\r\n",
                          mail_params=" RET=FULL"))
    assert len(srv.messages(BOB)) == 1
    reports = [(srv.queue_dir("data") / q).read_bytes() for q in srv.queued()]
    assert len(reports) == 1, reports
    assert b"Action: failed" in reports[0]
    assert b"Content-Type: message/rfc822" in reports[0]
    assert b"the whole body" in reports[0], reports[0]
    assert "RET=FULL ignored" not in srv.log()


def test_queued_dot_line_is_stuffed_on_the_way_out(srv, env, tmp_path):
    """A client's bare-CR "<CR>.<CR>" becomes a real "." line in the queue
    (bare_lf normalize). What sends queued data on (smtp_out) goes through
    libpetrel's dot-stuffing: built out of tree against the installed
    headers, it stuffs the queued file so that the data ends only at its
    real end and unstuffs back to what was queued."""
    with srv.raw_login(ALICE) as c:
        qid = queue_id(send_raw(c, ALICE, [f"far@{REMOTE}"],
                                b"Subject: smuggle\r\n\r\nx\r.\rMAIL FROM:<evil@x.test>\r\n"
                                b".\r\n"))
    data = (srv.queue_dir("data") / qid).read_bytes()
    assert b"\r\nx\r\n.\r\nMAIL FROM:<evil@x.test>\r\n" in data, data
    tool = tmp_path / "dotstuff_file"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "petrel"], capture_output=True,
                           text=True, timeout=CMD_TIMEOUT,
                           env=dict(os.environ, PKG_CONFIG_PATH=str(env.pkgconfig)))
    assert flags.returncode == 0, flags.stderr
    r = subprocess.run([env.cc, *env.module_cflags.split(), "-o", str(tool),
                        str(SRC_ROOT / "tests/integration/tools/dotstuff_file.c"),
                        *flags.stdout.split(), f"-Wl,-rpath,{env.prefix}/lib"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    wire = subprocess.run([str(tool), str(srv.queue_dir("data") / qid)], capture_output=True,
                          timeout=CMD_TIMEOUT).stdout
    assert wire.endswith(b"\r\n.\r\n") and wire.count(b"\r\n.\r\n") == 1, wire
    assert b"\r\nx\r\n..\r\nMAIL FROM:" in wire
    lines = wire[:-len(b".\r\n")].split(b"\r\n")
    assert b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines) == data
