"""QUOTA (RFC 9208) over real exchanges: one root "" for an account with
limits, holding every folder, none for an account without; STORAGE in
KiB and MESSAGE figures equal to what was delivered and appended;
[OVERQUOTA] on an APPEND or COPY past a limit while MOVE, which frees as
much as it takes, goes through; a limit changed by the administrator
holds from the next command; SETQUOTA refused; bad forms answered BAD."""

import re

import pytest

from imap_helpers import Imap, ImapServer
from smtp_helpers import message


@pytest.fixture
def srv(make_instance, env):
    s = ImapServer(make_instance, env, "imapquota", imap_service={"max_errors": 100})
    s.add_account(s.addr("quo"), "--quota", "8k", "--messages", "3")
    s.add_account(s.addr("bytes"), "--quota", "4k")
    return s.start()


def session(srv, user):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


def quota(line):
    m = re.match(rb'^\* QUOTA "" \(([^)]*)\)$', line)
    assert m, line
    words = m.group(1).decode().split()
    return {words[i]: (int(words[i + 1]), int(words[i + 2])) for i in range(0, len(words), 3)}


def stored(c, folders=("INBOX", "Trash", "Junk")):
    """Bytes and messages in these folders, from FETCH RFC822.SIZE."""
    sizes = []
    for folder in folders:
        c.ok(f"EXAMINE {folder}")
        for line in c.ok("UID FETCH 1:* RFC822.SIZE"):
            sizes += [int(m) for m in re.findall(rb"RFC822\.SIZE (\d+)", line)]
    c.ok("UNSELECT")
    return sum(sizes), len(sizes)


def test_quota_figures_and_overquota(srv):
    srv.deliver(srv.addr("quo"), message("first", to=srv.addr("quo")).encode())
    c = session(srv, "quo")
    assert c.ok("GETQUOTAROOT INBOX")[0] == b'* QUOTAROOT "INBOX" ""'
    untagged = c.ok("GETQUOTAROOT Trash")
    assert untagged[0] == b'* QUOTAROOT "Trash" ""', untagged
    nbytes, nmsgs = stored(c)
    assert quota(untagged[1]) == {"STORAGE": ((nbytes + 1023) // 1024, 8),
                                  "MESSAGE": (nmsgs, 3)}, untagged
    assert nmsgs == 1

    body = b"Subject: small\r\n\r\n" + b"s" * 1000 + b"\r\n"
    c.ok(b"APPEND INBOX {%d+}\r\n" % len(body) + body)
    big = b"Subject: big\r\n\r\n" + (b"b" * 78 + b"\r\n") * 100  # 8 KB: past 8k with the rest
    untagged, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(big) + big)
    assert done.startswith("NO [OVERQUOTA]"), done
    nbytes, nmsgs = stored(c)
    assert nmsgs == 2
    assert quota(c.ok('GETQUOTA ""')[0]) == {"STORAGE": ((nbytes + 1023) // 1024, 8),
                                             "MESSAGE": (2, 3)}

    c.ok("SELECT INBOX")
    _, done = c.run("COPY 1:* Trash")  # 4 messages > 3
    assert done.startswith("NO [OVERQUOTA]"), done
    assert c.ok("STATUS Trash (MESSAGES)") == [b'* STATUS "Trash" (MESSAGES 0)']
    c.ok("COPY 2 Trash")
    tiny = b"Subject: t\r\n\r\nt\r\n"
    _, done = c.run(b"APPEND Junk {%d+}\r\n" % len(tiny) + tiny)  # a 4th message
    assert done.startswith("NO [OVERQUOTA]"), done
    c.ok("MOVE 1 Junk")  # at the limit, but a move takes nothing more
    c.ok("UNSELECT")
    nbytes, nmsgs = stored(c)
    assert nmsgs == 3
    assert quota(c.ok('GETQUOTA ""')[0]) == {"STORAGE": ((nbytes + 1023) // 1024, 8),
                                             "MESSAGE": (3, 3)}

    # the administrator raises the limits: the next command sees them
    srv.ctl("account", "quota", srv.addr("quo"), "64k", "none")
    assert quota(c.ok('GETQUOTA ""')[0]) == {"STORAGE": ((nbytes + 1023) // 1024, 64)}
    c.ok(b"APPEND Junk {%d+}\r\n" % len(tiny) + tiny)
    c.ok("LOGOUT")


def test_storage_only_and_no_quota(srv):
    c = session(srv, "bytes")
    untagged = c.ok("GETQUOTAROOT INBOX")
    assert untagged[0] == b'* QUOTAROOT "INBOX" ""'
    assert quota(untagged[1]) == {"STORAGE": (0, 4)}, untagged
    c.ok("LOGOUT")

    c = session(srv, "alice")  # no limits: no quota root (RFC 9208 section 4.3)
    assert c.ok("GETQUOTAROOT INBOX") == [b'* QUOTAROOT "INBOX"']
    untagged, done = c.run('GETQUOTA ""')
    assert done.startswith("NO [NONEXISTENT]") and untagged == [], done
    c.ok("LOGOUT")


def test_imaplib_getquotaroot(srv):
    m = srv.imap(srv.addr("quo"))
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK", data
    assert data[0] == [b'"INBOX" ""'], data
    assert re.match(rb'^"" \(STORAGE \d+ 8 MESSAGE 0 3\)$', data[1][0]), data
    typ, data = m.getquota('""')
    assert typ == "OK" and data[0].startswith(b'"" (STORAGE'), data
    m.logout()


def test_refusals(srv):
    c = session(srv, "quo")
    untagged, done = c.run("GETQUOTAROOT Nope")
    assert done.startswith("NO [NONEXISTENT]") and untagged == [], (untagged, done)
    _, done = c.run('GETQUOTA "other"')
    assert done.startswith("NO [NONEXISTENT]"), done
    _, done = c.run('SETQUOTA "" (STORAGE 100)')
    assert done.startswith("NO [NOPERM]") and "administrator" in done, done
    for bad in ('SETQUOTA "" (STORAGE)', 'SETQUOTA "" (STORAGE x)', "SETQUOTA", 'SETQUOTA ""',
                'SETQUOTA "" STORAGE 1', "GETQUOTA", 'GETQUOTA "" ""', "GETQUOTAROOT",
                "GETQUOTAROOT (INBOX)", 'SETQUOTA "" ((STORAGE) 1)'):
        untagged, done = c.run(bad)
        assert done.startswith("BAD") and untagged == [], (bad, done)
    c.ok("LOGOUT")
    assert "refused (BAD): SETQUOTA takes a quota root" in srv.log()
    c = Imap(srv.imap_port)
    _, done = c.run('GETQUOTA ""')  # before login
    assert done.startswith("BAD"), done
    c.close()
