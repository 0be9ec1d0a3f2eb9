"""CONDSTORE and QRESYNC (RFC 7162) and ENABLE (RFC 5161) over a real
petreld: MODSEQ in SELECT, STATUS, FETCH and STORE, conditional STORE
between two sessions, CHANGEDSINCE, a client that reconnects with
SELECT (QRESYNC ...) and sees exactly what changed, VANISHED instead of
EXPUNGE, the [CLOSED] code, the store's expunged window, and bad input."""

import re

import pytest

from imap_helpers import Imap, ImapServer
from smtp_helpers import message


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapqresync").start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def deliver(srv, n, start=1, user="alice"):
    srv.deliver(srv.addr(user), *[message(subject=f"m{start + i}") for i in range(n)])


def code(untagged, name):
    for line in untagged:
        m = re.match(rb"\* OK \[" + name.encode() + rb" (\d+)\]", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no {name} in {untagged}")


def modseqs(untagged):
    """{uid: modseq} of FETCH lines that carry both."""
    out = {}
    for line in untagged:
        uid = re.search(rb"UID (\d+)", line)
        ms = re.search(rb"MODSEQ \((\d+)\)", line)
        if line.startswith(b"* ") and b" FETCH (" in line and uid and ms:
            out[int(uid.group(1))] = int(ms.group(1))
    return out


def fetches(untagged):
    return [l for l in untagged if re.match(rb"\* \d+ FETCH ", l)]


def test_enable_lists_what_it_turned_on(srv):
    c = session(srv)
    assert c.ok("ENABLE CONDSTORE") == [b"* ENABLED CONDSTORE"]
    # QRESYNC is new, CONDSTORE was on, unknown names are ignored.
    assert c.ok("ENABLE QRESYNC CONDSTORE X-UNKNOWN") == [b"* ENABLED QRESYNC"]
    assert c.ok("ENABLE QRESYNC") == [b"* ENABLED"]
    _, done = c.run("ENABLE")
    assert done.startswith("BAD")
    c.ok("SELECT INBOX")
    _, done = c.run("ENABLE CONDSTORE")
    assert done.startswith("BAD")
    c.close()
    c = session(srv)
    assert c.ok("ENABLE qresync") == [b"* ENABLED QRESYNC"]
    c.close()


def test_highestmodseq_in_select_and_status(srv):
    deliver(srv, 2)
    c = session(srv)
    st = c.ok("STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
    m = re.search(rb"HIGHESTMODSEQ (\d+)", st[0])
    assert m and b"MESSAGES 2" in st[0], st
    untagged = c.ok("SELECT INBOX")
    assert code(untagged, "HIGHESTMODSEQ") == int(m.group(1))
    # STATUS HIGHESTMODSEQ enabled CONDSTORE: FETCH FLAGS carries MODSEQ.
    out = c.ok("FETCH 1:* (UID FLAGS)")
    assert len(modseqs(out)) == 2
    assert max(modseqs(out).values()) == int(m.group(1))
    c.close()


def test_fetch_modseq_and_changedsince(srv):
    deliver(srv, 3)
    c = session(srv)
    untagged = c.ok("SELECT INBOX")
    high = code(untagged, "HIGHESTMODSEQ")
    # Without CONDSTORE on, FETCH FLAGS has no MODSEQ.
    assert b"MODSEQ" not in b"".join(c.ok("FETCH 1 FLAGS"))
    first = modseqs(c.ok("FETCH 1:* (UID MODSEQ)"))
    assert sorted(first) == [1, 2, 3] and max(first.values()) == high
    out = c.ok("STORE 2 +FLAGS (\\Flagged)")
    assert len(out) == 1 and b"FLAGS (\\Flagged)" in out[0], out
    new = int(re.search(rb"MODSEQ \((\d+)\)", out[0]).group(1))
    assert new > high
    out = c.ok(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {high})")
    assert len(out) == 1 and out[0].startswith(b"* 2 FETCH ")
    assert b"MODSEQ (%d)" % new in out[0], out
    assert c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {new})") == []
    # .SILENT still gives a CONDSTORE client the new MODSEQ.
    out = c.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
    assert len(out) == 1 and re.match(rb"\* 3 FETCH \(MODSEQ \(\d+\)\)$", out[0]), out
    c.close()


def test_unchangedsince_conflict_between_sessions(srv):
    deliver(srv, 3)
    a, b = session(srv), session(srv)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    ms = modseqs(a.ok("FETCH 1:3 (UID MODSEQ)"))
    out = a.ok(f"STORE 1 (UNCHANGEDSINCE {ms[1]}) +FLAGS (\\Flagged)")
    assert len(out) == 1 and b"\\Flagged" in out[0] and b"MODSEQ" in out[0], out
    # b still holds the old MODSEQs: message 1 fails, message 2 is stored.
    untagged, done = b.run(f"STORE 1:2 (UNCHANGEDSINCE {ms[3]}) +FLAGS (\\Seen)")
    assert done.startswith("OK [MODIFIED 1]"), done
    assert [l[:10] for l in fetches(untagged)] == [b"* 2 FETCH "], untagged
    assert b"\\Seen" not in b"".join(b.ok("FETCH 1 (FLAGS)"))
    _, done = b.run(f"UID STORE 1:3 (UNCHANGEDSINCE {ms[3]}) +FLAGS (\\Draft)")
    assert done.startswith("OK [MODIFIED 1:2]"), done
    # UNCHANGEDSINCE 0 always fails (every message has a MODSEQ).
    untagged, done = b.run("STORE 3 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)")
    assert done.startswith("OK [MODIFIED 3]") and fetches(untagged) == [], (untagged, done)
    a.close()
    b.close()


def qresync_select(c, uidvalidity, modseq, rest=""):
    c.ok("ENABLE QRESYNC")
    return c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}{rest}))")


def test_reconnect_with_qresync_sees_exactly_the_changes(srv):
    deliver(srv, 5)
    a = session(srv)
    assert a.ok("ENABLE QRESYNC") == [b"* ENABLED QRESYNC"]
    untagged = a.ok("SELECT INBOX")
    uidv, high = code(untagged, "UIDVALIDITY"), code(untagged, "HIGHESTMODSEQ")
    a.ok("LOGOUT")
    a.close()
    b = session(srv)
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS (\\Flagged)")
    b.ok("STORE 3:4 +FLAGS (\\Deleted)")
    b.ok("EXPUNGE")
    b.ok("LOGOUT")
    b.close()
    deliver(srv, 1, start=6)
    # Known UIDs limit the FETCHes too: the new message 6 is only in the
    # answer when the client gave none (or included it).
    for rest, new in (("", True), (" 1:6", True), (" 1:5", False), (" 1:5 (1:5 1:5)", False)):
        a = session(srv)
        untagged = qresync_select(a, uidv, high, rest)
        vanished = [l for l in untagged if l.startswith(b"* VANISHED")]
        assert vanished == [b"* VANISHED (EARLIER) 3:4"], untagged
        f = fetches(untagged)
        assert len(f) == (2 if new else 1), untagged
        assert re.match(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)$", f[0]), f
        if new:
            assert re.match(rb"\* 4 FETCH \(UID 6 FLAGS \(\) MODSEQ \(\d+\)\)$", f[1]), f
            assert code(untagged, "HIGHESTMODSEQ") == max(modseqs(f).values())
        assert b"* 4 EXISTS" in untagged
        a.close()
    # Known UIDs limit the answer; a wrong UIDVALIDITY gets none of it.
    a = session(srv)
    untagged = qresync_select(a, uidv, high, " 1:2")
    assert not any(l.startswith(b"* VANISHED") for l in untagged)
    assert len(fetches(untagged)) == 1
    a.close()
    a = session(srv)
    untagged = qresync_select(a, uidv + 1, high)
    assert not any(l.startswith(b"* VANISHED") for l in untagged) and fetches(untagged) == []
    a.close()


def test_vanished_instead_of_expunge(srv):
    deliver(srv, 6)
    q, plain, other = session(srv), session(srv), session(srv)
    q.ok("ENABLE QRESYNC")
    for c in (q, plain, other):
        c.ok("SELECT INBOX")
    other.ok("STORE 2,4 +FLAGS (\\Deleted)")
    other.ok("EXPUNGE")
    out = q.ok("NOOP")
    assert [l for l in out if b"VANISHED" in l or b"EXPUNGE" in l] == [b"* VANISHED 2,4"], out
    fl = fetches(out)
    assert fl == [] or all(b"UID " in l and b"MODSEQ" in l for l in fl), out
    out = plain.ok("NOOP")
    assert [l for l in out if b"EXPUNGE" in l] == [b"* 2 EXPUNGE", b"* 3 EXPUNGE"], out
    # The QRESYNC session's own EXPUNGE: VANISHED and HIGHESTMODSEQ.
    q.ok("UID STORE 5 +FLAGS (\\Deleted)")
    untagged, done = q.run("UID EXPUNGE 5")
    assert b"* VANISHED 5" in untagged and done.startswith("OK [HIGHESTMODSEQ "), (untagged, done)
    # MOVE, then IDLE seeing another session's expunge.
    q.ok("CREATE Other")
    untagged = q.ok("UID MOVE 6 Other")
    assert b"* VANISHED 6" in untagged and not any(b"EXPUNGE" in l for l in untagged), untagged
    q.send(b"i1 IDLE\r\n")
    assert q.raw_line().startswith(b"+")
    other.ok("UID STORE 1 +FLAGS (\\Deleted)")
    other.ok("EXPUNGE")
    lines = []
    while b"VANISHED" not in b"".join(lines):
        lines.append(q.raw_line())
    assert lines[-1] == b"* VANISHED 1", lines
    q.send(b"DONE\r\n")
    _, done = q.wait("i1")
    assert done.startswith("OK")
    for c in (q, plain, other):
        c.close()


def test_uid_fetch_changedsince_vanished(srv):
    deliver(srv, 4)
    c = session(srv)
    c.ok("ENABLE QRESYNC")
    high = code(c.ok("SELECT INBOX"), "HIGHESTMODSEQ")
    d = session(srv)
    d.ok("SELECT INBOX")
    d.ok("STORE 1 +FLAGS (\\Seen)")
    d.ok("STORE 3:4 +FLAGS (\\Deleted)")
    d.ok("EXPUNGE")
    d.close()
    # The FETCH does not report the expunges itself (RFC 3501 7.4.1), so
    # the table still has 4 messages; VANISHED (EARLIER) names 3:4.
    out = c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {high} VANISHED)")
    assert out[0] == b"* VANISHED (EARLIER) 3:4", out
    assert len(fetches(out)) == 1 and b"UID 1 " in out[1] and b"\\Seen" in out[1], out
    out = c.ok(f"UID FETCH 2:3 (FLAGS) (CHANGEDSINCE {high} VANISHED)")
    assert out == [b"* VANISHED (EARLIER) 3"], out
    c.close()


def test_closed_code_when_select_replaces(srv):
    c = session(srv)
    untagged = c.ok("SELECT INBOX")
    assert not any(b"[CLOSED]" in l for l in untagged)
    untagged = c.ok("EXAMINE INBOX")
    assert untagged[0].startswith(b"* OK [CLOSED]"), untagged
    c.close()


@pytest.mark.parametrize("cmd", [
    "SELECT INBOX (QRESYNC (1 2))",          # QRESYNC not enabled
    "SELECT INBOX (FOO)",
    "SELECT INBOX (CONDSTORE",
    "FETCH 1 FLAGS (CHANGEDSINCE 0)",
    "FETCH 1 FLAGS (CHANGEDSINCE abc)",
    "FETCH 1 FLAGS (CHANGEDSINCE 99999999999999999999)",
    "FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)",
    "FETCH 1 FLAGS (CHANGEDSINCE)",
    "FETCH 1 FLAGS (CHANGEDSINCE 5 VANISHED)",  # not UID FETCH, not enabled
    "UID FETCH 1 FLAGS (VANISHED)",
    "FETCH 1 FLAGS (FOO 1)",
    "STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)",
    "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)",
    "STORE 1 (FOO 1) +FLAGS (\\Seen)",
])
def test_bad_input(srv, cmd):
    deliver(srv, 1)
    c = session(srv)
    if not cmd.startswith("SELECT"):
        c.ok("SELECT INBOX")
    _, done = c.run(cmd)
    assert done.startswith("BAD"), (cmd, done)
    assert c.ok("NOOP") is not None
    c.close()


@pytest.mark.parametrize("param", [
    "(QRESYNC (0 1))", "(QRESYNC (1 0))", "(QRESYNC (1))", "(QRESYNC (1 2 x))",
    "(QRESYNC (1 2 1:5 (1:2)))", "(QRESYNC (1 2 1:5 (1 2) 3))", "(QRESYNC 1)", "(QRESYNC)",
])
def test_bad_qresync_parameters(srv, param):
    c = session(srv)
    c.ok("ENABLE QRESYNC")
    _, done = c.run(f"SELECT INBOX {param}")
    assert done.startswith("BAD"), (param, done)
    c.close()


def test_client_older_than_the_expunged_window(make_instance, env):
    """With expunged_max = 2 the store remembers the last two expunged
    UIDs: a client older than that gets every missing UID (even one it
    never knew), a newer one exactly what vanished since."""
    srv = ImapServer(make_instance, env, "imapwindow",
                     storage=dict(fsync=False, index_sync="off", expunged_max=2)).start()
    deliver(srv, 7)
    b = session(srv)
    b.ok("SELECT INBOX")

    def expunge(uid):
        b.ok(f"UID STORE {uid} +FLAGS (\\Deleted)")
        b.ok(f"UID EXPUNGE {uid}")

    expunge(1)
    a = session(srv)
    a.ok("ENABLE QRESYNC")
    untagged = a.ok("SELECT INBOX")
    uidv, old = code(untagged, "UIDVALIDITY"), code(untagged, "HIGHESTMODSEQ")
    a.close()
    expunge(2)
    expunge(3)
    recent = code(b.ok("SELECT INBOX"), "HIGHESTMODSEQ")
    expunge(4)
    expunge(5)
    a = session(srv)
    untagged = qresync_select(a, uidv, old)
    assert [l for l in untagged if b"VANISHED" in l] == [b"* VANISHED (EARLIER) 1:5"], untagged
    a.close()
    a = session(srv)
    untagged = qresync_select(a, uidv, recent)
    assert [l for l in untagged if b"VANISHED" in l] == [b"* VANISHED (EARLIER) 4:5"], untagged
    assert b"* 2 EXISTS" in untagged
    a.close()
    b.close()


def test_search_modseq(srv):
    deliver(srv, 4)
    c = session(srv)
    high = code(c.ok("SELECT INBOX"), "HIGHESTMODSEQ")
    c.ok("STORE 2,4 +FLAGS (\\Seen)")
    out = c.ok(f"SEARCH MODSEQ {high + 1}")
    m = re.match(rb"\* SEARCH 2 4 \(MODSEQ (\d+)\)$", out[0])
    assert m and int(m.group(1)) > high, out
    out = c.ok(f'UID SEARCH MODSEQ "/flags/\\\\seen" all {high + 1} UNSEEN')
    assert out == [b"* SEARCH"], out
    out = c.ok("SEARCH MODSEQ 0 SEEN")
    assert re.match(rb"\* SEARCH 2 4 \(MODSEQ \d+\)$", out[0]), out
    # Without a MODSEQ key the answer has no MODSEQ.
    assert c.ok("SEARCH SEEN") == [b"* SEARCH 2 4"]
    # ESEARCH (RFC 4731) ends with MODSEQ n (RFC 7162 3.1.5).
    out = c.ok(f"UID SEARCH RETURN (MIN COUNT) MODSEQ {high + 1}")
    assert re.match(rb'\* ESEARCH \(TAG "a\d+"\) UID MIN 2 COUNT 2 MODSEQ (\d+)$', out[0]), out
    out = c.ok(f"SEARCH RETURN (COUNT) MODSEQ {high + 1} UNSEEN")
    assert re.match(rb'\* ESEARCH \(TAG "a\d+"\) COUNT 0$', out[0]), out
    # SORT answers as SEARCH does (RFC 7162 section 7, sort-data), ESORT too.
    out = c.ok(f"SORT (ARRIVAL) UTF-8 MODSEQ {high + 1}")
    assert out == [b"* SORT 2 4 (MODSEQ " + m.group(1) + b")"], out
    out = c.ok(f"UID SORT RETURN (ALL) (ARRIVAL) UTF-8 MODSEQ {high + 1}")
    assert re.match(rb'\* ESEARCH \(TAG "a\d+"\) UID ALL 2,4 MODSEQ ' + m.group(1) + b"$", out[0]), out
    assert c.ok(f"SORT (ARRIVAL) UTF-8 MODSEQ {high + 1} UNSEEN") == [b"* SORT"]
    assert c.ok("SORT (ARRIVAL) UTF-8 SEEN") == [b"* SORT 2 4"]
    for bad in ("SEARCH MODSEQ", "SEARCH MODSEQ x", "SEARCH MODSEQ \"/flags/x\" other 5",
                "SEARCH MODSEQ 99999999999999999999"):
        _, done = c.run(bad)
        assert done.startswith("BAD"), (bad, done)
    c.close()
