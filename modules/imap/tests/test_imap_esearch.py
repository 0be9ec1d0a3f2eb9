"""ESEARCH (RFC 4731), SEARCHRES (RFC 5182) and WITHIN (RFC 5032) with a
real petreld over the raw client; the expected answers are written by
hand from the RFCs for the messages appended here."""

import time

import pytest

from imap_helpers import Imap, ImapServer


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapesearch").start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def append(c, subject, date=None, flags=""):
    raw = (f"From: a@x.test\r\nTo: b@x.test\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '.')}@x.test>\r\n\r\nbody {subject}\r\n").encode()
    when = f' "{date}"' if date else ""
    _, done = c.run(b"APPEND INBOX (%s)%s {%d+}\r\n" % (flags.encode(), when.encode(), len(raw)) + raw)
    assert done.startswith("OK"), done


def filled(srv):
    """Six messages: 1, 3, 4 and 6 \\Seen; 1..6 have UIDs 1..6."""
    c = session(srv)
    for i in range(1, 7):
        append(c, f"m{i}", flags="\\Seen" if i in (1, 3, 4, 6) else "")
    c.ok("SELECT INBOX")
    return c


def test_esearch_return_options(srv):
    c = filled(srv)
    caps = c.ok("CAPABILITY")[0].split()
    assert {b"ESEARCH", b"SEARCHRES", b"WITHIN"} <= set(caps), caps
    # Plain SEARCH is unchanged without RETURN.
    assert c.ok("SEARCH SEEN") == [b"* SEARCH 1 3 4 6"]
    untagged, done = c.run("SEARCH RETURN (MIN MAX COUNT ALL) SEEN")
    assert done.startswith("OK"), done
    tag = f"a{c.n:03d}"
    assert untagged == [f'* ESEARCH (TAG "{tag}") MIN 1 MAX 6 ALL 1,3:4,6 COUNT 4'.encode()]
    # RETURN () is ALL.
    untagged = c.ok("SEARCH RETURN () UNSEEN")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") ALL 2,5'.encode()]
    # UID SEARCH says UID; nothing found: only COUNT 0.
    untagged = c.ok("UID SEARCH RETURN (MIN COUNT) UID 2:5 SEEN")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") UID MIN 3 COUNT 2'.encode()]
    untagged = c.ok("SEARCH RETURN (MIN MAX ALL COUNT) DELETED")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") COUNT 0'.encode()]
    # CHARSET after RETURN; an unknown option is BAD.
    untagged = c.ok("SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT m")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") COUNT 6'.encode()]
    _, done = c.run("SEARCH RETURN (PARTIAL) ALL")
    assert done.startswith("BAD"), done


def test_esearch_sequence_numbers_after_expunge(srv):
    c = filled(srv)
    c.ok("STORE 2 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    # UIDs 1,3,4,6 are now sequence numbers 1,2,3,5.
    untagged = c.ok("SEARCH RETURN (ALL) SEEN")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") ALL 1:3,5'.encode()]
    untagged = c.ok("UID SEARCH RETURN (ALL) SEEN")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") UID ALL 1,3:4,6'.encode()]


def test_searchres_dollar_everywhere(srv):
    c = filled(srv)
    # SAVE alone: no ESEARCH answer at all.
    assert c.ok("SEARCH RETURN (SAVE) UNSEEN") == []
    assert c.ok("SEARCH $") == [b"* SEARCH 2 5"]
    assert c.ok("UID SEARCH UID $") == [b"* SEARCH 2 5"]
    assert c.ok("SEARCH NOT $") == [b"* SEARCH 1 3 4 6"]
    fetched = c.ok("FETCH $ (UID)")
    assert fetched == [b"* 2 FETCH (UID 2)", b"* 5 FETCH (UID 5)"]
    assert c.ok("UID FETCH $ (FLAGS)") == [b"* 2 FETCH (UID 2 FLAGS ())",
                                            b"* 5 FETCH (UID 5 FLAGS ())"]
    c.ok("STORE $ +FLAGS.SILENT (\\Flagged)")
    assert c.ok("SEARCH FLAGGED") == [b"* SEARCH 2 5"]
    c.ok("CREATE Saved")
    c.ok("COPY $ Saved")
    assert b"MESSAGES 2" in c.ok("STATUS Saved (MESSAGES)")[0]
    # SAVE with MIN and MAX keeps those two only.
    untagged = c.ok("SEARCH RETURN (SAVE MIN MAX) SEEN")
    assert untagged == [f'* ESEARCH (TAG "a{c.n:03d}") MIN 1 MAX 6'.encode()]
    assert c.ok("SEARCH $") == [b"* SEARCH 1 6"]
    # "$" in the same command means the previous result.
    assert c.ok("SEARCH RETURN (SAVE) $ SEEN UID 6") == []
    assert c.ok("SEARCH $") == [b"* SEARCH 6"]
    # Expunged messages leave the saved result; MOVE and UID EXPUNGE take $.
    c.ok("SEARCH RETURN (SAVE) UID 1,6")
    c.ok("STORE 1 +FLAGS (\\Deleted)")
    c.ok("UID EXPUNGE $")
    assert c.ok("UID SEARCH $") == [b"* SEARCH 6"]
    c.ok("MOVE $ Saved")
    assert c.ok("UID SEARCH ALL") == [b"* SEARCH 2 3 4 5"]
    assert c.ok("SEARCH $") == [b"* SEARCH"]
    # A failed SEARCH ... SAVE empties it.
    c.ok("SEARCH RETURN (SAVE) ALL")
    _, done = c.run("SEARCH RETURN (SAVE) NOSUCHKEY")
    assert done.startswith("BAD"), done
    assert c.ok("SEARCH $") == [b"* SEARCH"]
    # SELECT empties it too.
    c.ok("SEARCH RETURN (SAVE) ALL")
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH $") == [b"* SEARCH"]
    assert c.ok("FETCH $ (UID)") == []


def test_within_older_younger(srv):
    c = session(srv)
    old = time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(time.time() - 3 * 86400))
    append(c, "old", date=old)
    append(c, "new")
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH YOUNGER 3600") == [b"* SEARCH 2"]
    assert c.ok("SEARCH OLDER 3600") == [b"* SEARCH 1"]
    assert c.ok("SEARCH OLDER 345600") == [b"* SEARCH"]
    assert c.ok("SEARCH YOUNGER 345600") == [b"* SEARCH 1 2"]
    assert c.ok("SEARCH OR OLDER 86400 SUBJECT new") == [b"* SEARCH 1 2"]
    _, done = c.run("SEARCH OLDER 0")
    assert done.startswith("BAD"), done
    _, done = c.run("SEARCH YOUNGER x")
    assert done.startswith("BAD"), done
