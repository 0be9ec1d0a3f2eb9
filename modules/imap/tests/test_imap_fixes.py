"""Fixes after the review of the IMAP module: the extended LIST forms
clients send when SPECIAL-USE is advertised (RFC 5258, RFC 6154), no
\\Subscribed in plain LIST, LSUB's \\Noselect parents (RFC 3501 6.3.9)."""

import re

import pytest

from imap_helpers import Imap, ImapServer


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapfix").start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def names(untagged, verb=b"LIST"):
    """{name: attributes} of LIST or LSUB lines."""
    out = {}
    for line in untagged:
        m = re.match(rb'\* ' + verb + rb' \(([^)]*)\) "/" "?([^"]*)"?$', line)
        assert m, line
        out[m.group(2).decode()] = m.group(1).decode().split()
    return out


def test_list_extended_forms(srv):
    c = session(srv)
    assert b"LIST-EXTENDED" in b" ".join(c.ok("CAPABILITY")).split()
    c.ok("CREATE Work")
    c.ok("SUBSCRIBE Work")
    plain = names(c.ok('LIST "" "*"'))
    assert "Work" in plain and "\\Trash" in plain["Trash"], plain
    assert not any("\\Subscribed" in a for a in plain.values()), plain

    ret = names(c.ok('LIST "" "*" RETURN (SPECIAL-USE)'))
    assert ret == plain
    ret = names(c.ok('LIST "" "*" RETURN (SPECIAL-USE CHILDREN SUBSCRIBED)'))
    assert set(ret) == set(plain) and "\\Subscribed" in ret["Work"], ret
    assert "\\HasNoChildren" in ret["Work"] and "\\Trash" in ret["Trash"], ret

    special = names(c.ok('LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)'))
    assert {"Trash", "Sent", "Drafts", "Junk", "Archive"} <= set(special), special
    assert "INBOX" not in special and "Work" not in special, special

    subscribed = names(c.ok('LIST (SUBSCRIBED) "" "*"'))
    assert "Work" in subscribed and "\\Subscribed" in subscribed["Work"], subscribed
    c.ok("UNSUBSCRIBE Work")
    assert "Work" not in names(c.ok('LIST (SUBSCRIBED) "" "*"'))

    several = names(c.ok('LIST "" ("INBOX" "Tr%" "Wo*") RETURN (CHILDREN)'))
    assert set(several) == {"INBOX", "Trash", "Work"}, several

    for bad in ('LIST (RECENT) "" "*"', 'LIST "" "*" RETURN (FOO)', 'LIST "" ()',
                'LIST "" "*" RETURN', 'LSUB "" ("*")', 'LIST (SPECIAL-USE) ""'):
        _, done = c.run(bad)
        assert done.startswith("BAD"), (bad, done)
    c.ok("LOGOUT")


def test_lsub_gives_unsubscribed_parent_noselect(srv):
    c = session(srv)
    c.ok("CREATE a/b/c")
    c.ok("SUBSCRIBE a/b/c")
    assert names(c.ok('LSUB "" "a/%"'), b"LSUB") == {"a/b": ["\\Noselect"]}
    assert names(c.ok('LSUB "" "a/*"'), b"LSUB") == {"a/b/c": []}
    assert names(c.ok('LSUB "" "%"'), b"LSUB").get("a") == ["\\Noselect"]
    c.ok("SUBSCRIBE a/b")
    assert names(c.ok('LSUB "" "a/%"'), b"LSUB") == {"a/b": []}
    c.ok("LOGOUT")


@pytest.fixture
def patient(make_instance, env):
    return ImapServer(make_instance, env, "imaplog", imap_service={"max_errors": 100}).start()


def test_refusals_logged_bounded_without_password(patient):
    srv = patient
    c = session(srv)
    c.ok("SELECT INBOX")
    _, done = c.run("FROB")
    assert done.startswith("BAD")
    _, done = c.run("SELECT Nope")
    assert done.startswith("NO")
    _, done = c.run('LOGIN "x" "hunter2-secret"')
    assert done.startswith("BAD")
    for _ in range(30):
        _, done = c.run("GARBAGE garbage")
        assert done.startswith("BAD")
    c.ok("LOGOUT")
    log = srv.log()
    assert "refused (BAD): Unknown command" in log, log
    assert re.search(r"refused \(NO\): \[NONEXISTENT\]", log), log
    assert "hunter2-secret" not in log
    assert log.count("refused (") == 16, log
    assert log.count("further refusals not logged") == 1, log


@pytest.fixture
def small(make_instance, env):
    return ImapServer(make_instance, env, "imapans", imap_service={"max_errors": 100},
                      imap_settings={"max_answer": "4k"}).start()


def raw(i):
    return (f"From: a@example.test\r\nSubject: m{i}\r\nMessage-ID: <{i}@example.test>\r\n"
            f"\r\nbody {i}\r\n").encode()


def test_answer_over_max_answer_is_refused_not_cut(small):
    srv = small
    c = session(srv)
    for i in range(90):
        c.ok(f"CREATE folder-with-a-long-name-{i:03}")
    untagged, done = c.run('LIST "" "*"')
    assert untagged == [] and done.startswith("NO [LIMIT]"), (done, untagged[-1:])
    c.ok("NOOP")  # no folder selected: the session goes on
    c.ok("SELECT INBOX")
    untagged, done = c.run('LIST "" "*"')
    assert done.startswith("NO [LIMIT]") and untagged == [], (done, untagged)
    assert c.line() == "* BYE Answer too large, closing"
    assert "answer larger than 4096 bytes refused: closing" in srv.log()


def test_updates_sent_in_parts(small):
    srv = small
    n = 400
    srv.deliver(srv.addr("alice"), *(raw(i) for i in range(n)))
    a, b = session(srv), session(srv)
    assert b"* %d EXISTS" % n in a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    b.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    b.run("CLOSE")
    expunged, parts = 0, 0
    while expunged < n and parts < 10:
        untagged = a.ok("NOOP")
        assert sum(len(l) + 2 for l in untagged) < 4096, len(untagged)
        expunged += sum(1 for l in untagged if l == b"* 1 EXPUNGE")
        parts += 1
    assert expunged == n and parts > 1, (expunged, parts)
    assert a.ok("NOOP") == []
    untagged = a.ok("STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 0" in untagged[0]
    a.ok("LOGOUT")


def test_enable_login_closed(srv):
    c = session(srv)
    _, done = c.run('LOGIN "x" "y"')
    assert done == "BAD Already logged in", done
    _, done = c.run("AUTHENTICATE PLAIN")
    assert done == "BAD Already logged in", done
    c.ok("ENABLE IMAP4rev1")
    c.ok("SELECT INBOX")
    _, done = c.run("ENABLE IMAP4rev1")
    assert done.startswith("BAD"), done
    untagged = c.ok("EXAMINE INBOX")
    assert not any(b"CLOSED" in l for l in untagged), untagged
    c.ok("UNSELECT")
    c.ok("ENABLE IMAP4rev1")
    c.ok("LOGOUT")


def test_own_store_not_echoed_by_next_command(srv):
    srv.deliver(srv.addr("alice"), raw(1), raw(2))
    a, b = session(srv), session(srv)
    a.ok("SELECT INBOX")
    b.ok("SELECT INBOX")
    assert a.ok("STORE 1 +FLAGS.SILENT ($Label1)") == []
    assert a.ok("NOOP") == []
    assert len(a.ok("STORE 2 +FLAGS ($Label2 \\Flagged)")) == 1
    assert a.ok("NOOP") == []
    # Another session's change of the same messages still reaches A.
    b.ok("STORE 1 -FLAGS.SILENT ($Label1)")
    updates = a.ok("NOOP")
    assert updates == [b"* 1 FETCH (FLAGS ())"], updates
    a.ok("LOGOUT")
    b.ok("LOGOUT")


def test_append_spool_in_the_instance_data_dir(srv):
    spool = srv.inst.dir / "data" / "imap-spool"
    assert spool.is_dir() and spool.stat().st_mode & 0o777 == 0o700
    c = session(srv)
    body = b"".join(b"line %06d of a message larger than the reader keeps\r\n" % i
                    for i in range(4000))
    raw = b"From: a@example.test\r\nSubject: big\r\n\r\n" + body
    assert len(raw) > 64 * 1024
    _, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
    assert done.startswith("OK [APPENDUID"), (done, [l for l in srv.log().splitlines()
                                                     if "spool" in l])
    c.ok("SELECT INBOX")
    assert any(b"RFC822.SIZE %d" % len(raw) in l for l in c.ok("FETCH 1 RFC822.SIZE"))
    assert list(spool.iterdir()) == []
    c.ok("LOGOUT")
