"""The hand-written MIME corpus (tests/mime) end to end: each message
APPENDed over imaplib with its bytes untouched, then UID FETCH (ENVELOPE
BODYSTRUCTURE) compared with its .expected file; BODY[] and BODY.PEEK[]
give back the stored bytes of an 8-bit and a binary message; body
sections (1.MIME, HEADER.FIELDS, partials, a part that is not there);
\\Seen set by BODY[] and not by BODY.PEEK[]."""

import pathlib
import re

import pytest

from imap_helpers import Imap, ImapServer

MIME = pathlib.Path(__file__).parent / "mime"
NAMES = sorted(p.stem for p in MIME.glob("*.eml"))

# A multipart message whose parts are known byte for byte.
PART1_MIME = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
PART1 = "caf\u00e9 \u00fcber\r\nsecond line".encode()
PART2 = bytes(range(0x80, 0x100))
SECTIONS = (b"From: Carol <carol@example.com>\r\nSubject: Sections\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
            + PART1_MIME + PART1 + b"\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n"
            + PART2 + b"\r\n--b1--\r\n")
EIGHTBIT = ("From: Zo\u00eb <zoe@example.com>\r\nSubject: 8-bit\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "Gr\u00fc\u00dfe, \u20ac 5\r\n").encode()
# NUL, a bare CR, a bare LF, every byte 0x80-0xff.
BINARY = (b"Subject: binary\r\n\r\nnul\x00here\rbare cr\nbare lf\r\n" + bytes(range(256))
          + b"\x00\x00\r\r\n\n")


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapcorpus").start()


def append_exact(m, mailbox, raw):
    """imaplib's append() rewrites bare CR and LF as CRLF; the corpus
    must be stored as written, so the literal is handed over unchanged."""
    m.literal = raw
    typ, data = m._simple_command("APPEND", mailbox)
    assert typ == "OK", data
    found = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[-1])
    assert found, data
    return int(found.group(2))


def session(srv):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr("alice"), starttls=False)
    c.ok("SELECT INBOX")
    return c


def fetch_items(line, uid):
    """The items of one FETCH answer, its UID item taken out."""
    m = re.match(rb"\* \d+ FETCH \((.*)\)$", line, re.S)
    assert m, line[:200]
    items = m.group(1)
    u = b"UID %d" % uid
    if items.startswith(u + b" "):
        return items[len(u) + 1:]
    assert items.endswith(b" " + u), items[:200]
    return items[:-len(u) - 1]


def expected(name):
    """ENVELOPE and BODYSTRUCTURE as the wire carries them: one line,
    literals announced with CRLF (the file writes them with LF)."""
    text = (MIME / f"{name}.expected").read_bytes()
    text = re.sub(rb"(\{\d+\})\n", rb"\1\r\n", text)
    env, bs = text.split(b"\nBODYSTRUCTURE ", 1)
    return env + b" BODYSTRUCTURE " + bs.rstrip(b"\n")


def test_corpus_envelope_and_bodystructure(srv):
    assert len(NAMES) >= 16, NAMES
    m = srv.imap(srv.addr("alice"), tls="implicit")
    uids = {name: append_exact(m, "INBOX", (MIME / f"{name}.eml").read_bytes())
            for name in NAMES}
    m.logout()
    c = session(srv)
    wrong = []
    for name, uid in uids.items():
        untagged = c.ok(f"UID FETCH {uid} (ENVELOPE BODYSTRUCTURE)")
        assert len(untagged) == 1, (name, untagged)
        got = fetch_items(untagged[0], uid)
        if got != expected(name):
            wrong.append(f"{name}:\n  expected {expected(name)!r}\n       got {got!r}")
    assert not wrong, "\n".join(wrong)
    # The stored bytes are the file's bytes, bare LF and all.
    for name, uid in uids.items():
        raw = (MIME / f"{name}.eml").read_bytes()
        untagged = c.ok(f"UID FETCH {uid} BODY.PEEK[]")
        assert fetch_items(untagged[0], uid) == b"BODY[] {%d}\r\n" % len(raw) + raw, name
    c.close()


def body_of(c, uid, item_text, answer=None):
    """The bytes of one body item (a literal or a quoted string; None
    for NIL)."""
    untagged = c.ok(f"UID FETCH {uid} {item_text}")
    items = [fetch_items(l, uid) for l in untagged if l.startswith(b"* ")]
    assert len(items) == 1, untagged
    item = items[0]
    flags_item = re.match(rb"FLAGS \([^)]*\) ", item)  # \Seen newly set
    if flags_item:
        item = item[flags_item.end():]
    name = (answer or item_text).encode()
    assert item.startswith(name + b" "), (name, item[:200])
    rest = item[len(name) + 1:]
    m = re.match(rb"\{(\d+)\}\r\n", rest)
    if not m:
        value, _, tail = rest.partition(b" ")
        assert value in (b'""', b"NIL"), item[:200]
        value = None if value == b"NIL" else b""
    else:
        size = int(m.group(1))
        value, tail = rest[m.end():m.end() + size], rest[m.end() + size:]
        assert len(value) == size, item[:200]
    assert tail == b"" or re.fullmatch(rb" ?FLAGS \([^)]*\)", tail), item[:200]
    return value


def flags(c, uid):
    untagged = c.ok(f"UID FETCH {uid} FLAGS")
    m = re.search(rb"FLAGS \(([^)]*)\)", untagged[0])
    assert m, untagged
    return m.group(1).split()


@pytest.mark.parametrize("raw", [EIGHTBIT, BINARY], ids=["8bit", "binary"])
def test_body_bytes_exact_and_seen(srv, raw):
    m = srv.imap(srv.addr("alice"))
    uid = append_exact(m, "INBOX", raw)
    m.logout()
    c = session(srv)
    assert b"\\Seen" not in flags(c, uid)
    assert body_of(c, uid, "BODY.PEEK[]", "BODY[]") == raw
    assert b"\\Seen" not in flags(c, uid), "BODY.PEEK[] set \\Seen"
    size = re.search(rb"RFC822.SIZE (\d+)", c.ok(f"UID FETCH {uid} RFC822.SIZE")[0])
    assert int(size.group(1)) == len(raw)
    assert body_of(c, uid, "BODY[]") == raw
    assert b"\\Seen" in flags(c, uid), "BODY[] did not set \\Seen"
    assert body_of(c, uid, "BODY.PEEK[TEXT]", "BODY[TEXT]") == raw.split(b"\r\n\r\n", 1)[1]
    c.close()
    # imaplib sees the same bytes.
    m = srv.imap(srv.addr("alice"), tls="implicit")
    m.select("INBOX", readonly=True)
    typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == raw, data
    m.logout()


def test_sections(srv):
    m = srv.imap(srv.addr("alice"))
    uid = append_exact(m, "INBOX", SECTIONS)
    m.logout()
    c = session(srv)
    assert body_of(c, uid, "BODY.PEEK[1.MIME]", "BODY[1.MIME]") == PART1_MIME
    assert body_of(c, uid, "BODY.PEEK[1]", "BODY[1]") == PART1
    assert body_of(c, uid, "BODY.PEEK[2]", "BODY[2]") == PART2
    assert (body_of(c, uid, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY[HEADER.FIELDS (SUBJECT)]")
            == b"Subject: Sections\r\n\r\n")
    assert (body_of(c, uid, "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM CONTENT-TYPE)]",
                    "BODY[HEADER.FIELDS.NOT (SUBJECT FROM CONTENT-TYPE)]")
            == b"MIME-Version: 1.0\r\n\r\n")
    assert body_of(c, uid, "BODY.PEEK[]<0.10>", "BODY[]<0>") == SECTIONS[:10]
    assert body_of(c, uid, "BODY.PEEK[]<7.12>", "BODY[]<7>") == SECTIONS[7:19]
    assert body_of(c, uid, "BODY.PEEK[1]<5.1000>", "BODY[1]<5>") == PART1[5:]
    assert body_of(c, uid, "BODY.PEEK[]<100000.10>", "BODY[]<100000>") == b""
    # A part that is not there is empty, not an error (RFC 3501 6.4.5).
    assert body_of(c, uid, "BODY.PEEK[3]", "BODY[3]") == b""
    assert body_of(c, uid, "BODY.PEEK[1.4.2]", "BODY[1.4.2]") == b""
    assert b"\\Seen" not in flags(c, uid)
    assert body_of(c, uid, "BODY[1]") == PART1
    assert b"\\Seen" in flags(c, uid), "BODY[1] did not set \\Seen"
    c.close()


def test_imaplib_fetch_sections(srv):
    """The same through imaplib, on the STARTTLS port."""
    m = srv.imap(srv.addr("alice"))
    uid = append_exact(m, "INBOX", SECTIONS)
    assert m.select("INBOX")[0] == "OK"
    typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[2])")
    assert typ == "OK", data
    literals = [d[1] for d in data if isinstance(d, tuple)]
    assert literals == [b"Subject: Sections\r\n\r\n", PART2], data
    m.logout()

