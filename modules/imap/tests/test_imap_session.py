"""imap sessions end to end: the greeting and CAPABILITY before and after
TLS (LOGINDISABLED, STARTTLS, AUTH=), LOGIN and AUTHENTICATE (SASL-IR and
an exchange) through the core's login flow, implicit TLS, the small
commands (NOOP, ID, ENABLE, NAMESPACE, LOGOUT), commands in the wrong
state, bad input (unbalanced parentheses, 8-bit atoms, unknown commands,
an over-long line) that gets BAD with the session going on, and the
per-user connection limit."""

import imaplib
import time

import pytest

from harness import b64
from imap_helpers import Imap, ImapServer
from smtp_helpers import PASSWORD


@pytest.fixture
def imap_server(make_instance, env):
    def factory(name="imap", **kw):
        return ImapServer(make_instance, env, name, **kw).start()
    return factory


@pytest.fixture
def srv(imap_server):
    return imap_server()


def caps(line):
    return line.split("[CAPABILITY ", 1)[1].split("]", 1)[0].split()


def test_greeting_and_capabilities(srv):
    with Imap(srv.imap_port) as c:
        assert c.greeting.startswith("* OK [CAPABILITY IMAP4rev1 ")
        before = caps(c.greeting)
        assert "STARTTLS" in before and "LOGINDISABLED" in before, before
        assert not any(x.startswith("AUTH=") for x in before), before
        for cap in ("LITERAL+", "SASL-IR", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "ID",
                    "ENABLE", "UNSELECT", "CHILDREN", "SPECIAL-USE"):
            assert cap in before, before
        untagged = c.ok("CAPABILITY")
        assert untagged[0].decode().split()[2:] == before
        c.ok("STARTTLS")
        c.starttls()
        after = c.ok("CAPABILITY")[0].decode().split()[2:]
        assert "STARTTLS" not in after and "LOGINDISABLED" not in after, after
        assert "AUTH=PLAIN" in after and "AUTH=LOGIN" in after, after


def test_login_refused_without_tls(srv):
    with Imap(srv.imap_port) as c:
        _, done = c.run(f'LOGIN {srv.addr("alice")} {PASSWORD}')
        assert done.startswith("NO [PRIVACYREQUIRED]"), done
        _, done = c.run("AUTHENTICATE PLAIN " + b64(f"\0{srv.addr('alice')}\0{PASSWORD}"))
        assert done.startswith("NO [PRIVACYREQUIRED]"), done


def test_imaplib_starttls_and_implicit(srv):
    for tls in ("starttls", "implicit"):
        m = srv.imap(srv.addr("alice"), tls=tls)
        typ, data = m.capability()
        assert typ == "OK" and b"AUTH=PLAIN" not in data[0], data
        assert m.noop()[0] == "OK"
        assert m.logout()[0] == "BYE"


def test_bad_login_is_delayed_and_counted(imap_server):
    srv = imap_server(auth=dict(failure_delay="1s"))
    with Imap(srv.imap_port) as c:
        c.ok("STARTTLS")
        c.starttls()
        t = time.monotonic()
        _, done = c.run(f'LOGIN {srv.addr("alice")} wrong')
        assert done.startswith("NO [AUTHENTICATIONFAILED]"), done
        assert time.monotonic() - t >= 0.9
        c.login(srv.addr("alice"), starttls=False)


def test_too_many_failed_logins_close(srv):
    with Imap(srv.imap_port) as c:
        c.ok("STARTTLS")
        c.starttls()
        for _ in range(2):
            _, done = c.run(f'LOGIN {srv.addr("alice")} wrong')
            assert done.startswith("NO "), done
        tag = c.tag()
        c.send(f'{tag} LOGIN {srv.addr("alice")} wrong\r\n')
        lines = [c.line(), c.line()]
        assert lines[0].startswith(f"{tag} NO") and lines[1].startswith("* BYE"), lines
        c.expect_eof()


def test_authenticate_sasl_ir_and_exchange(srv):
    user = srv.addr("alice")
    with Imap(srv.imap_port) as c:
        c.ok("STARTTLS")
        c.starttls()
        done = c.ok("AUTHENTICATE PLAIN " + b64(f"\0{user}\0{PASSWORD}"))
        assert done == []
        _, done = c.run("SELECT INBOX")
        assert done.startswith("OK [READ-WRITE]"), done
    with Imap(srv.imaps_port, tls=True) as c:
        tag = c.tag()
        c.send(f"{tag} AUTHENTICATE LOGIN\r\n")
        assert c.line().startswith("+ ")
        c.send(b64(user) + "\r\n")
        assert c.line().startswith("+ ")
        c.send(b64(PASSWORD) + "\r\n")
        _, done = c.wait(tag)
        assert done.startswith("OK [CAPABILITY IMAP4rev1"), done
    with Imap(srv.imaps_port, tls=True) as c:
        tag = c.tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        assert c.line() == "+ "
        c.send("*\r\n")
        _, done = c.wait(tag)
        assert done.startswith("BAD"), done
        _, done = c.run("AUTHENTICATE CRAM-MD5")
        assert done.startswith("NO"), done
        c.login(user, starttls=False)


def test_small_commands(srv):
    with Imap(srv.imaps_port, tls=True) as c:
        assert c.ok("NOOP") == []
        untagged = c.ok('ID ("name" "pytest")')
        assert untagged[0].startswith(b'* ID ("name" "Petrel"'), untagged
        assert c.ok("ID NIL")[0].startswith(b"* ID ")
        _, done = c.run("ENABLE CONDSTORE")
        assert done.startswith("BAD"), done  # not before login
        c.login(srv.addr("alice"), starttls=False)
        assert c.ok("ENABLE CONDSTORE") == [b"* ENABLED CONDSTORE"]
        assert c.ok("NAMESPACE") == [b'* NAMESPACE (("" "/")) NIL NIL']
        tag = c.tag()
        c.send(f"{tag} LOGOUT\r\n")
        assert c.line().startswith("* BYE")
        assert c.line() == f"{tag} OK LOGOUT completed"
        c.expect_eof()


def bad_or_no(c, commands):
    for cmd in commands:
        _, done = c.run(cmd)
        assert done.startswith("BAD") or done.startswith("NO"), (cmd, done)


def test_wrong_state(srv):
    with Imap(srv.imaps_port, tls=True) as c:
        bad_or_no(c, ("SELECT INBOX", "FETCH 1 FLAGS", "LIST \"\" *", "APPEND INBOX {3+}\r\nabc",
                      "CLOSE", "UID FETCH 1 FLAGS", "IDLE", "STARTTLS", "NAMESPACE"))
        c.login(srv.addr("alice"), starttls=False)
        bad_or_no(c, ("LOGIN a b", "AUTHENTICATE PLAIN", "FETCH 1 FLAGS", "STORE 1 +FLAGS \\Seen",
                      "EXPUNGE", "CLOSE", "UNSELECT", "COPY 1 Trash", "UID FETCH 1 FLAGS"))
        assert c.ok("NOOP") == []


def test_bad_input_goes_on(srv):
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        bad_or_no(c, ("FOO", "SELECT", "SELECT (INBOX", "LIST a", "STATUS INBOX (BOGUS)",
                      "STATUS INBOX (MESSAGES", "CREATE \"unterminated", "NOOP extra",
                      b"SELECT caf\xc3\xa9", b"CREATE \xff", "SELECT &Jjo"))
        assert c.ok("NOOP") == []
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        c.ok("SELECT INBOX")
        bad_or_no(c, ("FETCH 0 FLAGS", "FETCH 1:x FLAGS", "FETCH 5 FLAGS", "FETCH 1 (FLAGS",
                      "FETCH 1 BOGUS", "STORE 1 FLAGS \\Bogus", "UID BOGUS 1", "COPY 1",
                      "FETCH 1 BODY[1.HEADER.FIELDS]", "FETCH 1 FLAGS)", "UID FETCH * (FLAGS"))
        assert c.ok("NOOP") == []


def test_long_line_and_big_command(srv):
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        # The core drops an over-long line whole, tag included.
        c.send("a1 NOOP " + "x" * 70000 + "\r\n")
        assert c.line().startswith("* BAD [LIMIT]")
        _, done = c.run("LIST \"\" {100000}")
        assert done.startswith("NO [TOOBIG]") or done.startswith("BAD [LIMIT]"), done
        assert c.ok("NOOP") == []


def test_pipelined_commands(srv):
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        c.send("p1 NOOP\r\np2 SELECT INBOX\r\np3 LIST \"\" INBOX\r\np4 NOOP\r\n")
        for tag in ("p1", "p2", "p3", "p4"):
            _, done = c.wait(tag)
            assert done.startswith("OK"), (tag, done)


def test_per_user_limit(imap_server):
    srv = imap_server(imap_settings=dict(max_connections_per_user=2))
    user = srv.addr("alice")
    a, b = srv.imap(user), srv.imap(user)
    with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
        srv.imap(user)
    srv.imap(srv.addr("bob")).logout()
    a.logout()
    time.sleep(0.2)
    srv.imap(user).logout()
    b.logout()


def test_timeout_before_login(imap_server):
    srv = imap_server(imap=dict(idle_timeout="1s"))
    with Imap(srv.imap_port, timeout=5) as c:
        t = time.monotonic()
        assert c.line().startswith("* BYE"), "no goodbye"
        assert time.monotonic() - t < 4
        c.expect_eof()


def test_literal_longer_than_announced(srv):
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        # {3} takes "abc"; "def" is then the rest of the command's line.
        _, done = c.run("CREATE {3+}\r\nabcdef")
        assert done.startswith("BAD"), done
        assert c.ok("NOOP") == []
        _, done = c.run("LIST \"\" {3+}\r\nINBOX")
        assert done.startswith("BAD"), done
        assert c.ok("NOOP") == []


def test_append_over_max_literal(imap_server):
    srv = imap_server(imap_settings=dict(max_literal="2k"))
    with Imap(srv.imaps_port, tls=True) as c:
        c.login(srv.addr("alice"), starttls=False)
        # Synchronising: refused before the client sends it.
        _, done = c.run("APPEND INBOX {5000}")
        assert done.startswith("NO [TOOBIG]"), done
        # Non-synchronising: read and thrown away, then refused.
        _, done = c.run(b"APPEND INBOX {5000+}\r\n" + b"x" * 5000)
        assert done.startswith("NO [TOOBIG]"), done
        raw = b"Subject: fits\r\n\r\n" + b"y" * 1500 + b"\r\n"
        _, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert done.startswith("OK [APPENDUID"), done
        assert c.ok("NOOP") == []
