"""IMAP4rev2 (RFC 9051) beside IMAP4rev1, and UTF8=ACCEPT (RFC 6855),
each switched on per session with ENABLE: transcripts of real exchanges
with a petreld, a rev1 session beside a rev2 one on the same account."""

import re

import pytest

from imap_helpers import Imap, ImapServer


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imaprev2").start()


def session(srv, *enable, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    if enable:
        assert c.ok("ENABLE " + " ".join(enable)) == [b"* ENABLED " + " ".join(enable).encode()]
    return c


def message(subject, body="hello", extra=""):
    return (f"From: a@x.test\r\nTo: b@x.test\r\nSubject: {subject}\r\n{extra}"
            f"Message-ID: <{abs(hash(subject))}@x.test>\r\n\r\n{body}\r\n").encode()


def append(c, raw, folder=b"INBOX", flags=b""):
    _, done = c.run(b"APPEND %s (%s) {%d+}\r\n" % (folder, flags, len(raw)) + raw)
    assert done.startswith("OK"), done


def test_capabilities_and_enable(srv):
    c = session(srv)
    caps = set(c.ok("CAPABILITY")[0].split())
    assert {b"IMAP4rev1", b"IMAP4rev2", b"UTF8=ACCEPT", b"BINARY", b"LITERAL+", b"ENABLE"} <= caps, caps
    # Both at once; enabling again answers ENABLED with nothing new.
    assert c.ok("ENABLE IMAP4rev2 UTF8=ACCEPT") == [b"* ENABLED IMAP4rev2 UTF8=ACCEPT"]
    assert c.ok("ENABLE IMAP4rev2") == [b"* ENABLED"]
    # ENABLE only in the authenticated state (RFC 5161 3.1): the switches
    # must not change under an open folder.
    c2 = session(srv)
    c2.ok("SELECT INBOX")
    untagged, done = c2.run("ENABLE IMAP4rev2")
    assert done.startswith("BAD") and untagged == [], (untagged, done)
    assert any(b"RECENT" in line for line in c2.ok("SELECT INBOX"))


def test_select_differs_per_session(srv):
    c = session(srv)
    append(c, message("one"), flags=b"\\Seen")
    append(c, message("two"))
    rev1 = c.ok("SELECT INBOX")
    assert b"* 2 EXISTS" in rev1 and b"* 0 RECENT" in rev1, rev1
    assert b"* OK [UNSEEN 2] First unseen" in rev1, rev1
    assert not any(line.startswith(b"* LIST") for line in rev1), rev1

    r = session(srv, "IMAP4rev2")
    rev2 = r.ok("SELECT INBOX")
    assert b"* 2 EXISTS" in rev2, rev2
    assert not any(b"RECENT" in line or b"UNSEEN" in line for line in rev2), rev2
    lists = [line for line in rev2 if line.startswith(b"* LIST")]
    assert len(lists) == 1 and re.fullmatch(rb'\* LIST \([^)]*\) "/" "?INBOX"?', lists[0]), rev2
    assert any(line.startswith(b"* OK [UIDVALIDITY ") for line in rev2), rev2
    assert any(line.startswith(b"* FLAGS (") and b"\\Recent" not in line for line in rev2), rev2

    # A new message seen by polling: EXISTS, and RECENT only in rev1.
    append(session(srv), message("three"))
    assert r.ok("NOOP") == [b"* 3 EXISTS"]
    assert c.ok("NOOP") == [b"* 3 EXISTS", b"* 0 RECENT"]
    # FETCH FLAGS never carry \Recent in rev2.
    assert r.ok("FETCH 3 FLAGS") == [b"* 3 FETCH (FLAGS ())"]


def test_search_answers_esearch_in_rev2(srv):
    c = session(srv)
    for i, flags in enumerate((b"\\Seen", b"", b"\\Seen", b"")):
        append(c, message(f"s{i}"), flags=flags)
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH SEEN") == [b"* SEARCH 1 3"]

    r = session(srv, "IMAP4rev2")
    r.ok("SELECT INBOX")
    assert r.ok("SEARCH SEEN") == [f'* ESEARCH (TAG "a{r.n:03d}") ALL 1,3'.encode()]
    assert r.ok("UID SEARCH UNSEEN") == [f'* ESEARCH (TAG "a{r.n:03d}") UID ALL 2,4'.encode()]
    # Nothing found: the bare ESEARCH line, with UID for UID SEARCH.
    assert r.ok("UID SEARCH DELETED") == [f'* ESEARCH (TAG "a{r.n:03d}") UID'.encode()]
    assert r.ok("SEARCH DELETED") == [f'* ESEARCH (TAG "a{r.n:03d}")'.encode()]
    # RETURN options still choose what is answered; CHARSET is allowed in rev2.
    assert r.ok("SEARCH RETURN (COUNT) CHARSET UTF-8 ALL") == [
        f'* ESEARCH (TAG "a{r.n:03d}") COUNT 4'.encode()]


def test_utf8_mailbox_names(srv):
    """One folder, named in modified UTF-7 by a rev1 client and in UTF-8
    by a rev2 or UTF8=ACCEPT client."""
    old = session(srv)
    old.ok('CREATE "Caf&AOk-/R&AOk-sum&AOk-"')
    new = session(srv, "IMAP4rev2")
    listed = new.ok('LIST "" "Caf*"')
    assert listed == ['* LIST (\\HasChildren) "/" "Café"'.encode(),
                      '* LIST (\\HasNoChildren) "/" "Café/Résumé"'.encode()], listed
    # UTF-8 in quoted strings: SELECT, STATUS, APPEND, RENAME.
    append(new, message("utf8 folder"), folder='"Café/Résumé"'.encode())
    assert new.ok('STATUS "Café/Résumé" (MESSAGES)') == [
        '* STATUS "Café/Résumé" (MESSAGES 1)'.encode()]
    sel = new.ok('SELECT "Café/Résumé"')
    assert '* LIST (\\HasNoChildren) "/" "Café/Résumé"'.encode() in sel, sel
    new.ok('RENAME "Café/Résumé" "Café/Über"')
    # The rev1 session sees the same folders in modified UTF-7, and its
    # quoted strings stay ASCII-only.
    assert old.ok('LIST "" "Caf*"') == [b'* LIST (\\HasChildren) "/" "Caf&AOk-"',
                                        b'* LIST (\\HasNoChildren) "/" "Caf&AOk-/&ANw-ber"']
    _, done = old.run('SELECT "Café"'.encode())
    assert done.startswith("BAD"), done
    # UTF8=ACCEPT alone also switches names to UTF-8.
    u = session(srv, "UTF8=ACCEPT")
    assert '* LIST (\\HasNoChildren) "/" "Café/Über"'.encode() in u.ok('LIST "" "*"')
    # Invalid UTF-8 in a quoted string is a syntax error, and the session
    # goes on; a name that is both valid mUTF-7 and UTF-8 is taken as UTF-8.
    _, done = new.run(b'CREATE "bad\xc3("')
    assert done.startswith("BAD"), done
    _, done = new.run(b'CREATE "over\xc0\xaflong"')
    assert done.startswith("BAD"), done
    new.ok('CREATE "A&B"')
    assert old.ok('LIST "" "A&-B"') == [b'* LIST (\\HasNoChildren) "/" "A&-B"']


def test_utf8_accept_charset_rules(srv):
    u = session(srv, "UTF8=ACCEPT")
    append(u, message("Grüße", extra="X-Note: naïve\r\n"))
    u.ok("SELECT INBOX")
    # RFC 6855 and its errata 4029: no CHARSET on SEARCH, only UTF-8 on
    # SORT and THREAD.
    _, done = u.run("SEARCH CHARSET UTF-8 ALL")
    assert done.startswith("BAD"), done
    _, done = u.run("SORT (SUBJECT) US-ASCII ALL")
    assert done.startswith("BAD"), done
    _, done = u.run("THREAD REFERENCES US-ASCII ALL")
    assert done.startswith("BAD"), done
    assert u.ok("SORT (SUBJECT) UTF-8 ALL") == [b"* SORT 1"]
    # Search strings are UTF-8 without a charset.
    assert u.ok('SEARCH SUBJECT "grüße"') == [b"* SEARCH 1"]
    assert u.ok('SEARCH HEADER X-Note "naïve"') == [b"* SEARCH 1"]
    # Without UTF8=ACCEPT the same CHARSET is fine.
    c = session(srv)
    c.ok("SELECT INBOX")
    assert c.ok("SEARCH CHARSET UTF-8 ALL") == [b"* SEARCH 1"]


def test_append_utf8_literal(srv):
    u = session(srv, "UTF8=ACCEPT")
    raw = ("From: Jürgen <j@x.test>\r\nTo: b@x.test\r\nSubject: Grüße aus Köln\r\n\r\n"
           "Straße\r\n").encode()
    _, done = u.run(b"APPEND INBOX (\\Seen) UTF8 (~{%d+}\r\n" % len(raw) + raw + b")")
    assert done.startswith("OK [APPENDUID"), done
    # A large one goes through the spool file, as any big literal does.
    big = raw + b"".join(b"%077d\r\n" % i for i in range(1200))
    assert len(big) > 64 * 1024
    _, done = u.run(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(big) + big + b")")
    assert done.startswith("OK"), done
    u.ok("SELECT INBOX")
    got = u.ok("FETCH 1:2 BODY.PEEK[]")
    assert got[0].endswith(b"\r\n" + raw + b")"), got[0][:200]
    assert got[1].endswith(b"\r\n" + big + b")"), got[1][:200]
    assert u.ok("FETCH 1 (FLAGS)") == [b"* 1 FETCH (FLAGS (\\Seen))"]
    # Malformed: the UTF8 wrapper around a plain literal, around two, or
    # without ENABLE.
    for bad in (b"APPEND INBOX UTF8 ({5+}\r\nabcde)", b"APPEND INBOX UTF8 (~{1+}\r\na ~{1+}\r\nb)",
                b"APPEND INBOX UTF8 ()"):
        _, done = u.run(bad)
        assert done.startswith("BAD"), (bad, done)
    c = session(srv)
    _, done = c.run(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")")
    assert done.startswith("BAD"), done
    # Both sessions still work.
    c.ok("NOOP")
    u.ok("NOOP")


def test_rev2_literals(srv):
    """Non-synchronising literals (LITERAL+, which covers rev2's LITERAL-)
    and synchronising ones in a rev2 session."""
    r = session(srv, "IMAP4rev2")
    raw = message("literal")
    append(r, raw)
    tag = r.tag()
    r.send(b"%s APPEND INBOX {%d}\r\n" % (tag.encode(), len(raw)))
    assert r.raw_line().startswith(b"+ ")
    r.send(raw + b"\r\n")
    _, done = r.wait(tag)
    assert done.startswith("OK"), done
    r.ok("SELECT INBOX")
    assert r.ok("SEARCH ALL") == [f'* ESEARCH (TAG "a{r.n:03d}") ALL 1:2'.encode()]
