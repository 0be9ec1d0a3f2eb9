"""The full-text index (docs/fts.md) end to end: a generated corpus in
mixed charsets and encodings (fts_corpus.py) APPENDed, then many SEARCH
text keys answered with the index and, after a restart with storage
`fts = false`, by the scan: the UIDs must be the same. Then the index
lagging (messages appended and expunged while it was off), and removed
(rebuilt from the files), must still give the scan's answers.

PETREL_FTS_COUNT sets the corpus size (default 2000), e.g. 20000 by hand:
    PETREL_FTS_COUNT=20000 ... pytest modules/imap/tests/test_imap_fts.py
"""

import os
import re
import time
import sqlite3

import pytest

import fts_corpus
from imap_helpers import Imap, ImapServer

COUNT = int(os.environ.get("PETREL_FTS_COUNT", "2000"))

KEYS = ["BODY", "TEXT", "SUBJECT", "FROM", "TO", "HEADER X-Tag"]


def lit(s):
    b = s.encode()
    return b"{%d+}\r\n" % len(b) + b


def queries():
    """(name, command bytes after "UID SEARCH CHARSET UTF-8 ")."""
    out = []
    for key in KEYS:
        # Every needle in the body keys, every third in the header ones.
        needles = fts_corpus.NEEDLES if key in ("BODY", "TEXT") else fts_corpus.NEEDLES[::3]
        for n in needles:
            out.append((f"{key} {n!r}", key.encode() + b" " + lit(n)))
    a, b = "petrel", "café"
    out += [
        ("or", b"OR BODY " + lit(a) + b" SUBJECT " + lit(b)),
        ("and", b"BODY " + lit("storm") + b" BODY " + lit("harbour")),
        ("field-and", b"SUBJECT " + lit(b) + b" (TEXT " + lit(a) + b" SEEN)"),
        ("not", b"NOT BODY " + lit(a)),
        ("not-or", b"NOT OR TEXT " + lit("привет") + b" FROM " + lit("jörg")),
        ("flag", b"UNSEEN BODY " + lit("gannet")),
    ]
    return out


def session(srv):
    # A search may first index what the background has not reached yet
    # (all of it when the index was removed): about 1 ms a message, more
    # under the sanitizers.
    c = Imap(srv.imaps_port, tls=True, timeout=max(60.0, COUNT / 50))
    c.login(srv.addr("alice"), starttls=False)
    return c


def search_all(srv):
    c = session(srv)
    c.ok("SELECT INBOX")
    results = {}
    for name, q in queries():
        untagged, done = c.run(b"UID SEARCH CHARSET UTF-8 " + q)
        assert done.startswith("OK"), (name, done)
        hits = [ln for ln in untagged if ln.startswith(b"* SEARCH")]
        assert len(hits) == 1, (name, untagged)
        results[name] = sorted(int(x) for x in hits[0].split()[2:])
    c.ok("LOGOUT")
    return results


def append_all(srv, messages):
    c = session(srv)
    for raw in messages:
        tag = c.tag()
        c.send(tag.encode() + b" APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
        _, done = c.wait(tag)
        assert done.startswith("OK"), done
    c.ok("LOGOUT")


def fts_files(srv):
    return sorted(p for p in srv.inst.dir.rglob("petrel-fts.sqlite*"))


def set_fts(srv, on):
    srv.stop()
    srv.inst.set_module_settings("storage", fsync=False, index_sync="off", fts=on,
                                 fts_catchup="10m")
    srv.start()


def compare(with_index, scan):
    diffs = {k: (with_index[k], scan[k]) for k in scan if with_index[k] != scan[k]}
    assert not diffs, list(diffs.items())[:5]


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapfts",
                      storage=dict(fsync=False, index_sync="off", fts=True,
                                   fts_catchup="10m")).start()


def test_index_equals_scan(srv):
    append_all(srv, fts_corpus.generate(COUNT))
    indexed = search_all(srv)
    # The index exists and holds every message.
    files = [p for p in fts_files(srv) if p.name == "petrel-fts.sqlite"]
    assert len(files) == 1, files
    db = sqlite3.connect(files[0])
    assert db.execute("SELECT count(*) FROM done").fetchone()[0] == COUNT
    db.close()
    # The needles find something and not everything (the test can fail).
    assert indexed["BODY 'albatross'"] and len(indexed["BODY 'albatross'"]) < COUNT
    assert indexed["BODY 'été'"] and indexed["BODY 'résumé'"] and indexed["TEXT 'при'"]
    assert indexed["BODY 'script'"] == [] and indexed["BODY 'hidden'"] == []
    assert indexed["BODY 'nomatchatall'"] == []
    set_fts(srv, False)
    scanned = search_all(srv)
    compare(indexed, scanned)

    # Lag: changes while the index was off, then the index used again.
    c = session(srv)
    c.ok("SELECT INBOX")
    c.ok("UID STORE 1:50,300:320 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("LOGOUT")
    append_all(srv, fts_corpus.generate(COUNT + 40)[COUNT:])
    scanned = search_all(srv)
    set_fts(srv, True)
    compare(search_all(srv), scanned)

    # Removed (and damaged): made again from the files.
    srv.stop()
    for p in fts_files(srv):
        p.unlink()
    srv.start()
    compare(search_all(srv), scanned)
    srv.stop()
    main = [p for p in fts_files(srv) if p.name == "petrel-fts.sqlite"][0]
    main.write_bytes(b"this is not an sqlite database" * 100)
    for p in fts_files(srv):
        if p != main:
            p.unlink()
    srv.start()
    compare(search_all(srv), scanned)
    assert re.search(r"full-text index .* made again", srv.log())

    # The answer does come from the index: a message's rows taken out of
    # it (its "done" mark kept) is no longer found.
    uid = scanned["BODY 'albatross'"][0]
    srv.stop()
    db = sqlite3.connect(main)
    db.execute("DELETE FROM texts WHERE rowid >= ? AND rowid < ?", (uid << 20, (uid + 1) << 20))
    db.commit()
    db.close()
    srv.start()
    assert search_all(srv)["BODY 'albatross'"] == scanned["BODY 'albatross'"][1:]


def done_count(path):
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute("SELECT count(*) FROM done").fetchone()[0]
    except sqlite3.OperationalError:  # being made
        return 0
    finally:
        db.close()


def test_background_indexing(make_instance, env):
    """Messages delivered, appended and copied are indexed a few seconds
    later with no search asking for it (the storage's background runs,
    every 5 s)."""
    srv = ImapServer(make_instance, env, "imapftsbg",
                     storage=dict(fsync=False, index_sync="off", fts=True)).start()
    smtp = [(f"From: a@x.test\r\nTo: b@x.test\r\nSubject: smtp {i}\r\n\r\n"
             f"delivered body {i} of the quagmire\r\n").encode() for i in range(20)]
    srv.deliver(srv.addr("alice"), *smtp)
    append_all(srv, fts_corpus.generate(280))
    c = session(srv)
    c.ok("SELECT INBOX")
    c.ok("UID COPY 1:50 Archive")
    c.ok("LOGOUT")
    home = next(p.parent for p in srv.inst.dir.rglob("petrel-index.sqlite")
                if (p.parent / ".Archive").is_dir())
    inbox, archive = home / "petrel-fts.sqlite", home / ".Archive" / "petrel-fts.sqlite"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (done_count(inbox), done_count(archive)) != (300, 50):
        time.sleep(0.5)
    assert (done_count(inbox), done_count(archive)) == (300, 50)
    # The searches find the index current: nothing to catch up, and the
    # answers right.
    c = session(srv)
    c.ok("SELECT INBOX")
    untagged = c.ok("UID SEARCH BODY quagmire")
    assert untagged == [b"* SEARCH " + b" ".join(b"%d" % u for u in range(1, 21))], untagged
