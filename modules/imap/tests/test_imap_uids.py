"""UIDs and UIDVALIDITY stay as they were across a restart and across an
index rebuild (the folder's SQLite index removed or damaged with the
server stopped, docs/storage.md), new UIDs stay above every UID given
before; two sessions on one mailbox see each other's changes (APPEND,
delivery, STORE, EXPUNGE) at their next command."""

import re

import pytest

from imap_helpers import Imap, ImapServer
from smtp_helpers import message

INDEX_FILES = ("petrel-index.sqlite", "petrel-index.sqlite-wal", "petrel-index.sqlite-shm")


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapuids").start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def uidvalidity(untagged):
    for line in untagged:
        m = re.match(rb"\* OK \[UIDVALIDITY (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no UIDVALIDITY in {untagged}")


def state(srv, folder="INBOX"):
    """(UIDVALIDITY, UIDNEXT, {uid: Message-ID}) of a folder."""
    c = session(srv)
    try:
        untagged = c.ok(f"SELECT {folder}")
        validity = uidvalidity(untagged)
        status = c.ok(f"STATUS {folder} (UIDNEXT UIDVALIDITY)")
        m = re.search(rb"UIDNEXT (\d+)", status[0])
        assert m and b"UIDVALIDITY %d" % validity in status[0], status
        uidnext = int(m.group(1))
        uids = {}
        if not any(l == b"* 0 EXISTS" for l in untagged):
            for line in c.ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
                uid = re.search(rb"UID (\d+)", line)
                mid = re.search(rb"Message-ID: (<[^>\r\n]+>)", line, re.I)
                assert uid and mid, line
                uids[int(uid.group(1))] = mid.group(1).decode()
        return validity, uidnext, uids
    finally:
        c.close()


def fill(srv):
    """Delivered and appended messages in INBOX and a folder, the two
    highest UIDs of INBOX expunged."""
    address = srv.addr("alice")
    srv.deliver(address, *(message(f"d{i}", to=address).encode() for i in range(1, 6)))
    c = session(srv)
    c.ok("CREATE Work")
    for i in range(1, 4):
        for folder in ("INBOX", "Work"):
            raw = message(f"a{i}.{folder}", to=address).encode()
            _, done = c.run(b"APPEND %s {%d+}\r\n" % (folder.encode(), len(raw)) + raw)
            assert done.startswith("OK [APPENDUID"), done
    c.ok("SELECT INBOX")
    c.ok("STORE 7:8 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.close()


def test_uids_survive_restart(srv):
    fill(srv)
    before = {f: state(srv, f) for f in ("INBOX", "Work")}
    assert len(before["INBOX"][2]) == 6 and len(before["Work"][2]) == 3, before
    srv.stop()
    srv.start()
    assert {f: state(srv, f) for f in ("INBOX", "Work")} == before


@pytest.mark.parametrize("damage", ["removed", "damaged"])
def test_uids_survive_index_rebuild(srv, damage):
    fill(srv)
    before = {f: state(srv, f) for f in ("INBOX", "Work")}
    highest = max(before["INBOX"][2])
    srv.stop()
    root = srv.maildir(srv.addr("alice"))
    for folder_dir in (root, root / ".Work"):
        assert (folder_dir / "petrel-index.sqlite").is_file(), list(folder_dir.iterdir())
        for name in INDEX_FILES:
            path = folder_dir / name
            if path.exists():
                path.unlink()
        if damage == "damaged":
            (folder_dir / "petrel-index.sqlite").write_bytes(b"not a database\n" * 512)
    srv.start()
    after = {f: state(srv, f) for f in ("INBOX", "Work")}
    for folder_dir in (root, root / ".Work"):  # a new index, a real database
        assert (folder_dir / "petrel-index.sqlite").read_bytes()[:16] == b"SQLite format 3\0"
    for folder in ("INBOX", "Work"):
        assert after[folder][0] == before[folder][0], (folder, "UIDVALIDITY changed")
        assert after[folder][2] == before[folder][2], (folder, "UID -> Message-ID changed")
        # The expunged UIDs 7 and 8 of INBOX are never given again.
        assert after[folder][1] >= before[folder][1], (folder, before, after)
    c = session(srv)
    raw = message("after-rebuild").encode()
    _, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", done)
    assert m, done
    assert int(m.group(1)) == before["INBOX"][0]
    assert int(m.group(2)) >= before["INBOX"][1] > highest, (done, before["INBOX"][1])
    c.close()
    if damage == "damaged":
        assert list(root.glob("petrel-index.sqlite.broken-*")), list(root.iterdir())


def test_two_sessions_see_each_other(srv):
    address = srv.addr("alice")
    srv.deliver(address, message("one", to=address).encode(), message("two", to=address).encode())
    a, b = session(srv), session(srv)
    try:
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        # APPEND by one session: EXISTS for the other at its NOOP.
        raw = message("three").encode()
        appended = b.ok(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert b"* 3 EXISTS" in a.ok("NOOP")
        # The appender may be told in APPEND's own answer already.
        assert b"* 3 EXISTS" in appended + b.ok("NOOP")
        # A delivery: both see it.
        srv.deliver(address, message("four", to=address).encode())
        assert b"* 4 EXISTS" in a.ok("NOOP")
        assert b"* 4 EXISTS" in b.ok("NOOP")
        # STORE by one: FETCH FLAGS for the other, with the new flags.
        untagged = a.ok("STORE 2 +FLAGS (\\Flagged $Label1)")
        assert untagged and untagged[0].startswith(b"* 2 FETCH (FLAGS ("), untagged
        untagged = b.ok("NOOP")
        got = [l for l in untagged if l.startswith(b"* 2 FETCH")]
        assert len(got) == 1 and b"\\Flagged" in got[0] and b"$Label1" in got[0], untagged
        b.ok("STORE 2 -FLAGS.SILENT (\\Flagged)")
        untagged = a.ok("NOOP")
        got = [l for l in untagged if l.startswith(b"* 2 FETCH")]
        assert len(got) == 1 and b"\\Flagged" not in got[0] and b"$Label1" in got[0], untagged
        # A NOOP with nothing new says nothing of the messages.
        assert not [l for l in a.ok("NOOP") if b"FETCH" in l or b"EXISTS" in l]
        # EXPUNGE by one: EXPUNGE for the other, highest first or in an
        # order that keeps sequence numbers right.
        uid_of_4 = re.search(rb"UID (\d+)", a.ok("FETCH 4 UID")[0]).group(1)
        b.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        orders = ([b"* 3 EXPUNGE", b"* 1 EXPUNGE"], [b"* 1 EXPUNGE", b"* 2 EXPUNGE"])
        untagged = b.ok("EXPUNGE")
        assert [l for l in untagged if l.endswith(b" EXPUNGE")] in orders, untagged
        untagged = a.ok("NOOP")
        assert [l for l in untagged if l.endswith(b" EXPUNGE")] in orders, untagged
        untagged = a.ok("FETCH 2 UID")
        assert untagged == [b"* 2 FETCH (UID %s)" % uid_of_4], untagged
        assert a.ok("SEARCH ALL") == b.ok("SEARCH ALL") == [b"* SEARCH 1 2"]
    finally:
        a.close()
        b.close()


def test_two_files_with_one_uid_renumber_under_a_new_uidvalidity(srv):
    """A copied file claiming a UID already in use makes every UID
    untrustworthy at the rebuild: a new UIDVALIDITY, all messages kept."""
    fill(srv)
    validity, _, uids = state(srv)
    srv.stop()
    root = srv.maildir(srv.addr("alice"))
    files = sorted(f for sub in ("new", "cur") for f in (root / sub).iterdir())
    victim = next(f for f in files if ",U=3" in f.name)
    head, _, tail = victim.name.partition(".")
    twin = victim.with_name(head + "9" + "." + tail)  # another unique name, the same U=3
    assert not twin.exists()
    twin.write_bytes(victim.read_bytes())
    for name in INDEX_FILES:
        if (root / name).exists():
            (root / name).unlink()
    srv.start()
    validity2, uidnext2, uids2 = state(srv)
    assert validity2 != validity, "UIDVALIDITY kept although two files claimed UID 3"
    assert sorted(uids2.values()) == sorted(list(uids.values()) + [uids[3]]), (uids, uids2)
    assert len(uids2) == len(uids) + 1 and max(uids2) < uidnext2
    assert f"duplicate UIDs in file names: new UIDVALIDITY {validity2}" in srv.log()
