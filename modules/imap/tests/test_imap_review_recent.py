"""Review findings (C2) on the updates a selected session gets: RECENT
(always 0 here, docs/imap.md) must never exceed EXISTS after messages
leave (RFC 3501 7.3.2), no session sees a message as \\Recent, and a
keyword another session removes must reach this session as a FETCH FLAGS
update (RFC 3501 7.4.2)."""

import re

import pytest

from imap_helpers import Imap, ImapServer


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imaprev").start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def raw(i):
    return (f"From: a@example.test\r\nSubject: m{i}\r\nMessage-ID: <{i}@example.test>\r\n"
            f"\r\nbody {i}\r\n").encode()


def counts(untagged):
    """The last EXISTS and RECENT counts among untagged lines."""
    exists = recent = None
    for line in untagged:
        m = re.match(rb"\* (\d+) (EXISTS|RECENT)$", line)
        if m and m.group(2) == b"EXISTS":
            exists = int(m.group(1))
        elif m:
            recent = int(m.group(1))
    return exists, recent


def test_recent_not_above_exists_after_expunge(srv):
    addr = srv.addr("alice")
    srv.deliver(addr, raw(1), raw(2), raw(3))
    a = session(srv)
    exists, recent = counts(a.ok("SELECT INBOX"))
    assert exists == 3 and recent == 0
    a.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert a.ok("EXPUNGE").count(b"* 1 EXPUNGE") == 2
    srv.deliver(addr, raw(4))
    exists, recent = counts(a.ok("NOOP"))
    assert exists == 2, exists
    assert recent == 0, (exists, recent)
    a.ok("LOGOUT")


def test_no_message_is_recent(srv):
    """Two sessions selecting new mail: neither is told it is recent, in
    SELECT, EXAMINE, STATUS, FLAGS, updates or SEARCH (RECENT, NEW, OLD)."""
    addr = srv.addr("alice")
    srv.deliver(addr, raw(1), raw(2))
    a, b = session(srv), session(srv)
    for c, cmd in ((a, "SELECT INBOX"), (b, "EXAMINE INBOX")):
        untagged = c.ok(cmd)
        assert counts(untagged) == (2, 0), untagged
        flags = [l for l in untagged if b"FLAGS" in l]
        assert flags and not any(b"\\Recent" in l for l in flags), untagged
    status = b.ok("STATUS INBOX (MESSAGES RECENT)")
    assert b"MESSAGES 2 RECENT 0" in status[0], status
    assert not any(b"\\Recent" in l for l in a.ok("FETCH 1:* (FLAGS)"))
    assert a.ok("SEARCH RECENT") == [b"* SEARCH"]
    assert a.ok("SEARCH NEW") == [b"* SEARCH"]
    assert a.ok("SEARCH OLD") == [b"* SEARCH 1 2"]
    srv.deliver(addr, raw(3))
    assert counts(a.ok("NOOP")) == (3, 0)
    assert not any(b"\\Recent" in l for l in a.ok("FETCH 3 (FLAGS)"))
    a.ok("LOGOUT")
    b.ok("LOGOUT")


def test_keyword_removal_reported(srv):
    srv.deliver(srv.addr("alice"), raw(1))
    a, b = session(srv), session(srv)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS ($label1)")
    assert any(b"$label1" in l for l in a.ok("NOOP"))
    b.ok("STORE 1 -FLAGS ($label1)")
    updates = [l for l in a.ok("NOOP") if l.startswith(b"* 1 FETCH")]
    assert updates, "the keyword's removal was not reported"
    assert b"$label1" not in updates[-1], updates
    a.ok("LOGOUT")
    b.ok("LOGOUT")
