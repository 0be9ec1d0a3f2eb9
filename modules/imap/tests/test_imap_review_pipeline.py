"""Review finding (C2): a client may pipeline a LITERAL+ APPEND (RFC 7888)
behind a FETCH whose body goes out over many turns (RFC 3501 5.5); both
must complete, the FETCH literal whole, whatever the size of the
pipelined message."""

import pytest

from imap_helpers import Imap, ImapServer


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imappipe").start()


def message(subject, lines):
    return (f"From: a@example.test\r\nSubject: {subject}\r\n\r\n".encode() +
            (subject[:1].encode() * 76 + b"\r\n") * lines)


def test_literal_plus_append_behind_a_long_fetch(srv):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr("alice"), starttls=False)
    big = message("big", 40000)  # about 3 MB: the FETCH spans many turns
    c.send(f"p APPEND INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
    assert c.wait("p")[1].startswith("OK")
    c.ok("SELECT INBOX")
    small = message("pipelined", 5000)  # about 390 KB
    c.send(b"f FETCH 1 BODY[]\r\n" + f"q APPEND INBOX {{{len(small)}+}}\r\n".encode() +
           small + b"\r\n")
    untagged, done = c.wait("f")
    assert done.startswith("OK"), done
    assert untagged[0].endswith(big + b")"), untagged[0][-200:]
    untagged, done = c.wait("q")
    assert done.startswith("OK"), (done, untagged)
    fetched = c.ok("FETCH 2 (RFC822.SIZE)")
    assert f"RFC822.SIZE {len(small)}".encode() in fetched[0], fetched
    c.ok("LOGOUT")
