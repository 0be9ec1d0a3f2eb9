"""METADATA (RFC 5464) over real exchanges: server and mailbox entries set,
read (DEPTH, MAXSIZE with LONGENTRIES), replaced and removed with NIL;
kept across a restart; moved by RENAME and dropped by DELETE of their
folder; the value and entry-count limits answered [METADATA MAXSIZE] and
[METADATA TOOMANY] with nothing changed; bad entry names BAD; another
account sees none of them."""

import re

import pytest

from imap_helpers import Imap, ImapServer

VALUE_MAX = 16 * 1024
ENTRIES_MAX = 128


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapmeta", imap_service={"max_errors": 100}).start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def get(c, command):
    """GETMETADATA's untagged lines, entry names unquoted (the server
    quotes every name, which the astring syntax allows)."""
    return [re.sub(rb'"(/(?:private|shared)/[^"]*)"', rb"\1", line) for line in c.ok(command)]


def test_set_get_remove_and_depth(srv):
    c = session(srv)
    assert b"METADATA" in b" ".join(c.ok("CAPABILITY")).split()
    c.ok('SETMETADATA "" (/private/comment "my server" /shared/comment "shared one")')
    assert get(c, 'GETMETADATA "" /private/comment') == [
        b'* METADATA "" (/private/comment "my server")']
    assert get(c, 'GETMETADATA "" (/private/comment /shared/comment)') == [
        b'* METADATA "" (/private/comment "my server" /shared/comment "shared one")']
    # entry names in any case; an absent one is NIL
    assert get(c, 'GETMETADATA "" (/PRIVATE/Comment /private/none)') == [
        b'* METADATA "" (/private/comment "my server" /private/none NIL)']
    c.ok('SETMETADATA INBOX (/private/vendor/x/a "1" /private/vendor/x/a/b "2" '
         '/private/vendor/x/c {3+}\r\nt\x00t)')
    untagged = get(c, 'GETMETADATA (DEPTH 1) INBOX /private/vendor/x')
    assert untagged == [b'* METADATA "INBOX" (/private/vendor/x NIL /private/vendor/x/a "1" '
                        b'/private/vendor/x/c ~{3}\r\nt\x00t)'], untagged
    untagged = get(c, 'GETMETADATA (DEPTH infinity) INBOX /private/vendor/x')
    assert b'/private/vendor/x/a/b "2"' in untagged[0], untagged
    # MAXSIZE leaves out the longer values and says how long the longest is
    c.ok('SETMETADATA INBOX (/private/long "%s")' % ("L" * 100))
    untagged, done = c.run('GETMETADATA (MAXSIZE 10 DEPTH 1) INBOX /private')
    assert done.startswith("OK [METADATA LONGENTRIES 100]"), done
    assert b"/private/long" not in untagged[0] and b'/private/vendor' not in untagged[0]
    # replace, then remove with NIL
    c.ok('SETMETADATA "" (/private/comment "changed")')
    assert get(c, 'GETMETADATA "" /private/comment') == [
        b'* METADATA "" (/private/comment "changed")']
    c.ok('SETMETADATA "" (/private/comment NIL)')
    assert get(c, 'GETMETADATA "" /private/comment') == [b'* METADATA "" (/private/comment NIL)']
    # another account has its own
    b = session(srv, "bob")
    assert get(b, 'GETMETADATA "" /shared/comment') == [b'* METADATA "" (/shared/comment NIL)']
    b.ok("LOGOUT")
    c.ok("LOGOUT")


def test_kept_across_restart_and_follow_folders(srv):
    c = session(srv)
    c.ok("CREATE Work/Sub")
    c.ok('SETMETADATA Work (/private/comment "work")')
    c.ok('SETMETADATA Work/Sub (/shared/comment "sub")')
    c.ok('SETMETADATA "" (/private/comment "server")')
    c.ok("LOGOUT")
    srv.stop()
    srv.start()
    c = session(srv)
    assert get(c, 'GETMETADATA Work /private/comment') == [
        b'* METADATA "Work" (/private/comment "work")']
    c.ok("RENAME Work Job")
    assert get(c, 'GETMETADATA Job /private/comment') == [
        b'* METADATA "Job" (/private/comment "work")']
    assert get(c, 'GETMETADATA Job/Sub /shared/comment') == [
        b'* METADATA "Job/Sub" (/shared/comment "sub")']
    c.ok("DELETE Job/Sub")
    c.ok("CREATE Job/Sub")
    assert get(c, 'GETMETADATA Job/Sub /shared/comment') == [
        b'* METADATA "Job/Sub" (/shared/comment NIL)']
    _, done = c.run('GETMETADATA Work /private/comment')
    assert done.startswith("NO [NONEXISTENT]"), done
    assert get(c, 'GETMETADATA "" /private/comment') == [
        b'* METADATA "" (/private/comment "server")']
    c.ok("LOGOUT")


def test_limits_and_bad_forms(srv):
    c = session(srv)
    big = b"v" * (VALUE_MAX + 1)
    untagged, done = c.run(b'SETMETADATA "" (/private/ok "1" /private/big {%d+}\r\n'
                           % len(big) + big + b")")
    assert done.startswith(f"NO [METADATA MAXSIZE {VALUE_MAX}]"), done
    assert get(c, 'GETMETADATA "" /private/ok') == [b'* METADATA "" (/private/ok NIL)']
    exact = b"v" * VALUE_MAX
    c.ok(b'SETMETADATA "" (/private/exact {%d+}\r\n' % len(exact) + exact + b")")
    pairs = " ".join(f'/private/n{i} "{i}"' for i in range(ENTRIES_MAX - 1))
    c.ok(f'SETMETADATA "" ({pairs})')  # 128 with /private/exact
    _, done = c.run('SETMETADATA INBOX (/private/one "x" /private/more "y")')
    assert done.startswith("NO [METADATA TOOMANY]"), done
    assert get(c, 'GETMETADATA INBOX (/private/one)') == [b'* METADATA "INBOX" (/private/one NIL)']
    c.ok('SETMETADATA "" (/private/n0 NIL)')
    c.ok('SETMETADATA INBOX (/private/one "x")')
    _, done = c.run('SETMETADATA Nope (/private/one "x")')
    assert done.startswith("NO [NONEXISTENT]"), done
    for bad in ('GETMETADATA "" /other/comment', 'GETMETADATA "" /private/*',
                'GETMETADATA "" /private//x', 'GETMETADATA "" /private/x/',
                'GETMETADATA (DEPTH 2) "" /private/x', 'GETMETADATA (MAXSIZE) "" /private/x',
                'GETMETADATA ""', 'GETMETADATA "" ()', 'SETMETADATA "" /private/x "v"',
                'SETMETADATA "" (/private/x)', 'SETMETADATA "" (/private/x v)',
                'SETMETADATA "" ()', 'SETMETADATA "" (/private/x%y "v")', 'SETMETADATA "" (/private "v")'):
        untagged, done = c.run(bad)
        assert done.startswith("BAD") and untagged == [], (bad, done)
    c.ok("LOGOUT")
    assert re.search(r"refused \(BAD\): Bad entry name", srv.log())
