"""imap folders and messages end to end with imaplib and the raw client:
LIST/LSUB with SPECIAL-USE and CHILDREN, names in modified UTF-7,
CREATE/DELETE/RENAME/SUBSCRIBE, STATUS, SELECT/EXAMINE, APPEND (flags,
date, LITERAL+, 8-bit and binary bytes) then FETCH of every item giving
the same bytes, \\Seen set by a non-peek fetch, STORE and .SILENT,
COPY/MOVE with COPYUID, EXPUNGE and UID EXPUNGE, CLOSE and UNSELECT, two
sessions seeing each other's changes, and IDLE woken by an SMTP
delivery."""

import re
import time

import pytest

from imap_helpers import Imap, ImapServer
from smtp_helpers import message


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapmb").start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def test_list_special_use_children_and_utf7(srv):
    m = srv.imap(srv.addr("alice"))
    typ, data = m.list()
    assert typ == "OK"
    lines = [d.decode() for d in data]
    names = {l.rsplit(" ", 1)[1].strip('"'): l for l in lines}
    for name, attr in (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
                       ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert attr in names[name], lines
    assert "INBOX" in names
    assert m.create("Work/Projects")[0] == "OK"
    assert m.create("Caf&AOk-")[0] == "OK"
    typ, data = m.list('""', "*")
    lines = [d.decode() for d in data]
    work = next(l for l in lines if l.endswith(' "Work"'))
    assert "\\HasChildren" in work, lines
    assert any(l.endswith('"Work/Projects"') and "\\HasNoChildren" in l for l in lines), lines
    assert any(l.endswith('"Caf&AOk-"') for l in lines), lines
    typ, data = m.list('""', "%")
    assert not any(b"Projects" in d for d in data), data
    typ, data = m.list("Work/", "%")
    assert [d.decode().rsplit(" ", 1)[1] for d in data] == ['"Work/Projects"'], data
    typ, data = m.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""'], data
    assert m.list('""', "inbox")[1][0].endswith(b'"INBOX"')
    assert m.subscribe("Work")[0] == "OK"
    typ, data = m.lsub('""', "*")
    assert any(d.endswith(b'"Work"') for d in data), data
    assert m.unsubscribe("Work")[0] == "OK"
    assert not any(d.endswith(b'"Work"') for d in m.lsub('""', "*")[1] if d), data
    assert m.rename("Work/Projects", "Done")[0] == "OK"
    assert m.delete("Done")[0] == "OK"
    assert m.delete("INBOX")[0] == "NO"
    assert m.create("INBOX")[0] == "NO"
    assert m.select("Nope")[0] == "NO"
    typ, data = m.status("Caf&AOk-", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)")
    assert typ == "OK" and re.search(rb"MESSAGES 0 .*UIDNEXT \d+ UIDVALIDITY \d+", data[0]), data
    m.logout()


def test_append_fetch_identical_bytes(srv):
    c = session(srv)
    c.ok("SELECT INBOX")
    assert c.ok("FETCH 1:* FLAGS") == []  # an empty folder: an empty set
    _, done = c.run("FETCH 1 FLAGS")
    assert done.startswith("BAD"), done
    c.ok("UNSELECT")
    bodies = [
        message("ascii").encode(),
        message("8bit", body="caf\xe9 na\xefve \u00fc\r\n").encode("utf-8"),
        b"Subject: binary\r\n\r\n" + bytes(range(256)) + b"\r\nend\r\n",
        b"Subject: big\r\n\r\n" + (b"0123456789abcdef" * 64 + b"\r\n") * 300,
    ]
    uids = []
    for raw in bodies:
        tag = c.tag()
        c.send(f'{tag} APPEND INBOX (\\Seen $Work) "17-Jul-1996 02:44:25 -0700" {{{len(raw)}}}\r\n'
               .encode())
        assert c.line().startswith("+ ")
        c.send(raw + b"\r\n")
        _, done = c.wait(tag)
        m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", done)
        assert m, done
        uids.append(int(m.group(2)))
    raw = b"Subject: plus\r\n\r\nliteral plus\r\n"
    _, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    assert done.startswith("OK [APPENDUID"), done
    untagged = c.ok("SELECT INBOX")
    assert b"* 5 EXISTS" in untagged, untagged
    for i, (uid, raw) in enumerate(zip(uids, bodies), 1):
        untagged = c.ok(f"UID FETCH {uid} (BODY.PEEK[] RFC822.SIZE FLAGS INTERNALDATE)")
        assert len(untagged) == 1, untagged
        line = untagged[0]
        assert line.startswith(f"* {i} FETCH (UID {uid} ".encode()), line[:80]
        assert f"RFC822.SIZE {len(raw)}".encode() in line
        assert b'INTERNALDATE "17-Jul-1996 09:44:25 +0000"' in line, line[:200]
        assert b"\\Seen" in line and b"$Work" in line
        body = line.split(b"BODY[] {%d}\r\n" % len(raw), 1)[1]
        assert body[:len(raw)] == raw and body[len(raw):] == b")", i
    untagged = c.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY[HEADER.FIELDS (Subject)] BODY[TEXT])")
    assert b'"ascii"' in untagged[0] and b"BODYSTRUCTURE (" in untagged[0], untagged
    assert b"BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: ascii\r\n\r\n" in untagged[0], untagged
    assert b"BODY[TEXT] {7}\r\nhello\r\n" in untagged[0], untagged
    c.close()


def test_seen_store_copy_move_expunge(srv):
    address = srv.addr("alice")
    srv.deliver(address, *(message(f"m{i}", to=address).encode() for i in range(1, 5)))
    c = session(srv)
    untagged = c.ok("SELECT INBOX")
    assert b"* 4 EXISTS" in untagged and b"* OK [UNSEEN 1] First unseen" in untagged, untagged
    assert any(l.startswith(b"* OK [UIDVALIDITY ") for l in untagged)
    untagged = c.ok("FETCH 1 BODY[HEADER]")
    assert b"FLAGS (\\Seen" in untagged[0], untagged
    # No message is \\Recent (docs/imap.md): an unread one has no flags.
    assert c.ok("FETCH 1:* FLAGS")[1] == b"* 2 FETCH (FLAGS ())"
    untagged = c.ok("STORE 2 +FLAGS (\\Flagged)")
    assert len(untagged) == 1 and untagged[0].startswith(b"* 2 FETCH (FLAGS (\\Flagged")
    assert c.ok("STORE 2 -FLAGS.SILENT (\\Flagged)") == []
    untagged = c.ok("UID STORE 1:* FLAGS.SILENT (\\Answered)")
    assert untagged == []
    _, done = c.run("COPY 1:2 Trash")
    assert re.match(r"OK \[COPYUID \d+ \d+:\d+ \d+:\d+\] COPY completed", done), done
    untagged, done = c.run("MOVE 3 Archive")
    assert done.startswith("OK"), done
    assert untagged[0].startswith(b"* OK [COPYUID "), untagged
    assert b"* 3 EXPUNGE" in untagged, untagged
    _, done = c.run("COPY 1 Nowhere")
    assert done.startswith("NO [TRYCREATE]"), done
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    uid2 = int(re.search(rb"UID (\d+)", c.ok("FETCH 2 UID")[0]).group(1))
    untagged = c.ok(f"UID EXPUNGE {uid2}")
    assert untagged == [b"* 2 EXPUNGE"], untagged
    assert c.ok("EXPUNGE") == [b"* 1 EXPUNGE"]
    assert c.ok("STATUS Trash (MESSAGES)") == [b"* STATUS \"Trash\" (MESSAGES 2)"]
    untagged = c.ok("EXAMINE Trash")
    # The folder this EXAMINE replaces is closed first (RFC 7162 3.2.11).
    assert untagged[0].startswith(b"* OK [CLOSED]"), untagged
    _, done = c.run("STORE 1 +FLAGS (\\Seen)")
    assert done.startswith("NO [READ-ONLY]"), done
    c.ok("UNSELECT")
    c.ok("SELECT Trash")
    c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    c.ok("CLOSE")
    assert c.ok("STATUS Trash (MESSAGES)") == [b"* STATUS \"Trash\" (MESSAGES 0)"]
    c.close()


def test_two_sessions_see_each_other(srv):
    address = srv.addr("alice")
    srv.deliver(address, message("one", to=address).encode(), message("two", to=address).encode())
    a, b = session(srv), session(srv)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    untagged = b.ok("NOOP")
    assert b"* 1 FETCH (FLAGS (\\Flagged))" in untagged, untagged
    srv.deliver(address, message("three", to=address).encode())
    untagged = a.ok("NOOP")
    assert b"* 3 EXISTS" in untagged, untagged
    b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    untagged = a.ok("NOOP")
    assert b"* 2 EXPUNGE" in untagged, untagged
    # FETCH may not report the expunge (RFC 3501 7.4.1): the next NOOP does.
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    untagged = a.ok("FETCH 1 FLAGS")
    assert not any(b"EXPUNGE" in l for l in untagged), untagged
    assert b"* 1 EXPUNGE" in a.ok("NOOP")
    a.close()
    b.close()


def test_idle_sees_delivery(srv):
    address = srv.addr("alice")
    c = session(srv)
    c.ok("SELECT INBOX")
    tag = c.tag()
    c.send(f"{tag} IDLE\r\n")
    assert c.line().startswith("+ ")
    t = time.monotonic()
    srv.deliver(address, message("idle", to=address).encode())
    assert c.line() == "* 1 EXISTS"
    assert c.line() == "* 0 RECENT"
    assert time.monotonic() - t < 2.0
    other = session(srv)
    other.ok("SELECT INBOX")
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.ok("EXPUNGE")
    line = c.line()
    while line.startswith("* 1 FETCH (FLAGS"):  # the \\Deleted first, maybe
        line = c.line()
    assert line == "* 1 EXPUNGE"
    c.send("DONE\r\n")
    _, done = c.wait(tag)
    assert done == "OK IDLE terminated"
    tag = c.tag()
    c.send(f"{tag} IDLE\r\n")
    assert c.line().startswith("+ ")
    c.send("NOPE\r\n")
    _, done = c.wait(tag)
    assert done.startswith("BAD"), done
    assert c.ok("NOOP") == []
    c.close()
    other.close()


def test_imaplib_end_to_end(srv):
    address = srv.addr("alice")
    m = srv.imap(address)
    raw = message("lib", to=address).encode()
    assert m.append("INBOX", "(\\Flagged)", None, raw)[0] == "OK"
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"], data
    typ, data = m.fetch("1", "(RFC822)")
    assert typ == "OK" and data[0][1] == raw, data
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert b"\\Seen" in data[0] and b"\\Flagged" in data[0], data
    assert m.store("1", "+FLAGS", "\\Deleted")[0] == "OK"
    assert m.expunge()[1] == [b"1"]
    assert m.close()[0] == "OK"
    m.logout()


def test_search(srv):
    address = srv.addr("alice")
    srv.deliver(address, message("apple pie", to=address, body="crust\r\n").encode(),
                message("banana", to=address, body="apple inside\r\n").encode(),
                message("cherry", to=address).encode())
    c = session(srv)
    c.ok("SELECT INBOX")
    c.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert c.ok("SEARCH ALL") == [b"* SEARCH 1 2 3"]
    assert c.ok("SEARCH SUBJECT apple") == [b"* SEARCH 1"]
    assert c.ok("SEARCH TEXT apple") == [b"* SEARCH 1 2"]
    assert c.ok("SEARCH BODY crust") == [b"* SEARCH 1"]
    assert c.ok("SEARCH FLAGGED") == [b"* SEARCH 2"]
    assert c.ok("SEARCH NOT FLAGGED 2:*") == [b"* SEARCH 3"]
    assert c.ok("SEARCH OR 1 3") == [b"* SEARCH 1 3"]
    assert c.ok("SEARCH SUBJECT nothing-like-it") == [b"* SEARCH"]
    uids = c.ok("UID SEARCH ALL")[0].split()[2:]
    assert len(uids) == 3
    assert c.ok(f"UID SEARCH UID {uids[1].decode()}") == [b"* SEARCH " + uids[1]]
    _, done = c.run("SEARCH CHARSET KOI8-R ALL")
    assert done.startswith("NO [BADCHARSET"), done
    _, done = c.run("SEARCH BOGUS")
    assert done.startswith("BAD"), done
    _, done = c.run("SEARCH (ALL")
    assert done.startswith("BAD"), done
    c.close()


def test_pipelined_behind_a_long_fetch(srv):
    """Commands (with a literal) sent while a large body streams out run
    after it, in order."""
    c = session(srv)
    raw = b"Subject: large\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3000
    _, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    assert done.startswith("OK"), done
    c.ok("SELECT INBOX")
    small = b"Subject: s\r\n\r\nsmall\r\n"
    c.send(b"f1 FETCH 1 BODY.PEEK[]\r\nf2 APPEND INBOX {%d+}\r\n%s\r\nf3 NOOP\r\n"
           b"f4 FETCH 1:* (FLAGS)\r\n" % (len(small), small))
    untagged, done = c.wait("f1")
    assert done.startswith("OK") and untagged[0].endswith(raw + b")"), done
    for tag in ("f2", "f3"):
        _, done = c.wait(tag)
        assert done.startswith("OK"), (tag, done)
    untagged, done = c.wait("f4")
    assert done.startswith("OK") and len(untagged) == 2, untagged
    c.close()


def test_delivery_reaches_every_idle_session(srv):
    address = srv.addr("alice")
    clients = [session(srv) for _ in range(5)]
    for c in clients:
        c.ok("SELECT INBOX")
        c.send("i1 IDLE\r\n")
        assert c.line().startswith("+ ")
    t = time.monotonic()
    srv.deliver(address, message("all", to=address).encode())
    for c in clients:
        assert c.line() == "* 1 EXISTS"
    assert time.monotonic() - t < 2.0
    for c in clients:
        assert c.line() == "* 0 RECENT"
        c.send("DONE\r\n")
        _, done = c.wait("i1")
        assert done == "OK IDLE terminated"
        c.close()


def test_keyword_changes_reach_other_sessions(srv):
    address = srv.addr("alice")
    srv.deliver(address, message("kw", to=address).encode())
    a, b = session(srv), session(srv)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 1 +FLAGS.SILENT ($Label1)")
    assert any(b"$Label1" in l for l in b.ok("NOOP"))
    a.ok("STORE 1 -FLAGS.SILENT ($Label1)")
    untagged = b.ok("NOOP")
    assert any(l.startswith(b"* 1 FETCH (FLAGS (") and b"$Label1" not in l for l in untagged), \
        untagged
    a.close()
    b.close()


@pytest.fixture
def small_output(make_instance, env):
    return ImapServer(make_instance, env, "imapout", imap=dict(max_output="4k")).start()


def test_large_update_goes_out_in_parts(small_output):
    """Answers far beyond the listener's max_output (a FETCH FLAGS line
    for each of 400 messages another session flagged, SEARCH, FETCH) are
    sent a part at a time, and the session goes on."""
    srv = small_output
    a, b = session(srv), session(srv)
    raw = b"Subject: n\r\n\r\nx\r\n"
    a.send(b"".join(b"p%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(raw), raw) for i in range(400)))
    for i in range(400):
        _, done = a.wait(f"p{i}")
        assert done.startswith("OK"), done
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    a.ok("STORE 1:* +FLAGS.SILENT (\\Flagged)")
    untagged = b.ok("NOOP")
    assert sum(1 for l in untagged if b"FETCH (FLAGS (\\Flagged" in l) == 400, untagged[:3]
    assert len(b.ok("SEARCH FLAGGED")[0].split()) == 402
    assert len(b.ok("FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[])")) == 400
    b.send("i1 IDLE\r\n")
    assert b.line().startswith("+ ")
    a.ok("STORE 1:* -FLAGS.SILENT (\\Flagged)")
    for _ in range(400):
        assert b.line().startswith("* ")
    b.send("DONE\r\n")
    _, done = b.wait("i1")
    assert done == "OK IDLE terminated"
    assert b.ok("NOOP") == []
    a.close()
    b.close()
