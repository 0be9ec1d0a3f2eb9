"""BINARY (RFC 3516) over real exchanges: FETCH BINARY[part], BINARY.PEEK
with a partial, BINARY.SIZE, checked byte for byte against Python's email
module decoding of the same message (quoted-printable, base64 with NULs,
a base64 part over 256 KiB that streams); literal8 only when the bytes
hold a NUL; \\Seen set by BINARY and not by BINARY.PEEK or BINARY.SIZE;
an unknown transfer encoding is NO [UNKNOWN-CTE]; bad syntax is BAD; an
APPEND with a literal8 stores the bytes as sent."""

import email
import email.policy
import os
import re
from email.message import EmailMessage

import pytest

from imap_helpers import Imap, ImapServer

LARGE = 300 * 1024


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapbin", imap_service={"max_errors": 100}).start()


def multipart():
    """text/plain in QP, a base64 part with NULs, a large base64 part,
    base64 text without NULs, and an attached message with a QP part and
    a base64 one."""
    outer = EmailMessage()
    outer["Subject"] = "binary"
    outer["From"] = "a@example.test"
    outer.set_content("caf\u00e9 = cr\u00e8me " * 20 + "\nline two\n", cte="quoted-printable")
    outer.add_attachment(bytes(range(256)) * 4, maintype="application", subtype="octet-stream")
    outer.add_attachment(os.urandom(LARGE), maintype="application", subtype="x-large")
    outer.add_attachment("plain text in base64\n", subtype="plain", cte="base64")
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("inner caf\u00e9 text\n", cte="quoted-printable")
    inner.add_attachment(b"\x00inner\x00", maintype="application", subtype="octet-stream")
    outer.add_attachment(inner)
    return outer.as_bytes(policy=email.policy.SMTP)


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def append(srv, raw):
    m = srv.imap(srv.addr("alice"))
    assert m.append("INBOX", None, None, raw)[0] == "OK"
    m.logout()


def value(untagged, name):
    """The bytes of item name (e.g. b"BINARY[2]") in a FETCH answer and
    whether it came as a literal8."""
    line = b"\n".join(untagged)
    m = re.search(re.escape(name) + rb" (~?)\{(\d+)\}\r\n", line)
    assert m, (name, line[:300])
    start = m.end()
    return line[start:start + int(m.group(2))], m.group(1) == b"~"


def size(untagged, name):
    m = re.search(re.escape(name) + rb" (\d+)", b"\n".join(untagged))
    assert m, (name, untagged)
    return int(m.group(1))


def flags(c, seq=1):
    line = b"".join(c.ok(f"FETCH {seq} (FLAGS)"))
    return re.search(rb"FLAGS \(([^)]*)\)", line).group(1).split()


def decoded_parts(raw):
    msg = email.message_from_bytes(raw)
    return [p.get_payload(decode=True) for p in msg.get_payload()]


def test_capability(srv):
    c = session(srv)
    assert b"BINARY" in b" ".join(c.ok("CAPABILITY")).split()


def test_fetch_binary_parts(srv):
    raw = multipart()
    append(srv, raw)
    want = decoded_parts(raw)
    c = session(srv)
    c.ok("SELECT INBOX")
    for n in range(1, 5):
        untagged = c.ok(f"FETCH 1 (BINARY.PEEK[{n}] BINARY.SIZE[{n}])")
        data, lit8 = value(untagged, f"BINARY[{n}]".encode())
        assert data == want[n - 1], n
        assert lit8 == (b"\x00" in data), n
        assert size(untagged, f"BINARY.SIZE[{n}]".encode()) == len(data)
    assert len(want[2]) == LARGE
    # a partial counts decoded bytes; its name shows the origin only
    data, _ = value(c.ok("FETCH 1 (BINARY.PEEK[2]<0.100>)"), b"BINARY[2]<0>")
    assert data == want[1][:100]
    data, lit8 = value(c.ok("FETCH 1 (BINARY.PEEK[3]<200000.90000>)"), b"BINARY[3]<200000>")
    assert data == want[2][200000:290000]
    data, _ = value(c.ok("FETCH 1 (BINARY.PEEK[1]<5000.10>)"), b"BINARY[1]<5000>")
    assert data == b""
    # the attached message's parts, decoded by their own encodings
    inner = email.message_from_bytes(raw).get_payload()[4].get_payload()[0]
    inner_parts = [p.get_payload(decode=True) for p in inner.get_payload()]
    for n in (1, 2):
        data, _ = value(c.ok(f"FETCH 1 (BINARY.PEEK[5.{n}])"), f"BINARY[5.{n}]".encode())
        assert data == inner_parts[n - 1]
    assert flags(c) == []


def test_whole_message_and_multipart(srv):
    raw = multipart()
    append(srv, raw)
    c = session(srv)
    c.ok("SELECT INBOX")
    body, _ = value(c.ok("FETCH 1 (BODY.PEEK[])"), b"BODY[]")
    data, lit8 = value(c.ok("FETCH 1 (BINARY.PEEK[])"), b"BINARY[]")
    assert data == body and not lit8
    # a multipart and a message/rfc822 part have identity encodings: as stored
    body, _ = value(c.ok("FETCH 1 (BODY.PEEK[5])"), b"BODY[5]")
    data, _ = value(c.ok("FETCH 1 (BINARY.PEEK[5])"), b"BINARY[5]")
    assert data == body
    # no such part: empty, as BODY[] gives
    untagged = c.ok("FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])")
    assert value(untagged, b"BINARY[9]") == (b"", False)
    assert size(untagged, b"BINARY.SIZE[9]") == 0


def test_seen(srv):
    append(srv, multipart())
    c = session(srv)
    c.ok("SELECT INBOX")
    c.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2])")
    assert flags(c) == []
    untagged = c.ok("FETCH 1 (BINARY[1])")
    assert b"\\Seen" in untagged[0]
    assert flags(c) == [b"\\Seen"]


def test_unknown_cte(srv):
    raw = (b"Subject: uu\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: x-uuencode\r\n\r\n"
           b"begin 644 f\r\n#86)C\r\n`\r\nend\r\n")
    append(srv, raw)
    append(srv, b"Subject: plain\r\n\r\nhello\r\n")
    c = session(srv)
    c.ok("SELECT INBOX")
    for item in ("BINARY[1]", "BINARY.PEEK[1]", "BINARY.SIZE[1]"):
        untagged, done = c.run(f"FETCH 1 ({item})")
        assert done.startswith("NO [UNKNOWN-CTE]"), (item, done)
        assert untagged == [], untagged
    assert flags(c) == []
    # the other message is still answered; the command is NO
    untagged, done = c.run("FETCH 1:2 (BINARY.PEEK[1])")
    assert done.startswith("NO [UNKNOWN-CTE]"), done
    assert len(untagged) == 1 and untagged[0].startswith(b"* 2 FETCH"), untagged
    assert value(untagged, b"BINARY[1]")[0] == b"hello\r\n"
    # BODY[] is not decoded, so it works; so does BINARY[] (the message as it is)
    c.ok("FETCH 1 (BODY.PEEK[1] BINARY.PEEK[])")


def test_bad_syntax(srv):
    append(srv, b"Subject: x\r\n\r\nx\r\n")
    c = session(srv)
    c.ok("SELECT INBOX")
    for item in ("BINARY[1.HEADER]", "BINARY[TEXT]", "BINARY[1.MIME]", "BINARY[0]",
                 "BINARY[1.]", "BINARY[1", "BINARY.SIZE[1]<0.10>", "BINARY[1]<0.0>",
                 "BINARY.PEEK[x]", "BINARY[1]x", "BINARY", "BINARY.SIZE"):
        _, done = c.run(f"FETCH 1 ({item})")
        assert done.startswith("BAD"), (item, done)
    assert flags(c) == []


def test_append_literal8(srv):
    body = b"\x00\x01binary\r\n\xff\x00 and more\r\n"
    raw = (b"Subject: l8\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    c = session(srv)
    untagged, done = c.run(b"APPEND INBOX ~{%d+}\r\n" % len(raw) + raw)
    assert done.startswith("OK"), done
    c.ok("SELECT INBOX")
    data, lit8 = value(c.ok("FETCH 1 (BINARY.PEEK[])"), b"BINARY[]")
    assert data == raw and lit8
    data, lit8 = value(c.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"), b"BINARY[1]")
    assert data == body and lit8
