"""The policies pop3 announces in CAPA and keeps (RFC 2449): LOGIN-DELAY
(a login too soon after the last one is refused, the session stays in
AUTHORIZATION and may try again; no delay, no refusal; a crowd of users
with no cross-talk) and EXPIRE 0 (the messages RETR sent are expunged at
QUIT, not those TOP showed, nothing without QUIT)."""

import concurrent.futures
import re
import time

import pytest

from pop3_helpers import Pop3, Pop3Server
from smtp_helpers import PASSWORD, message


@pytest.fixture
def pop3_server(make_instance, env):
    def factory(name="pop3-policy", **kw):
        return Pop3Server(make_instance, env, name, **kw).start()
    return factory


def fill(srv, local="alice", n=3):
    address = srv.addr(local)
    srv.deliver(address, *(message(f"m{i}", to=address, body=f"body {i}\r\n").encode()
                           for i in range(1, n + 1)))
    return address


def subjects(srv, address):
    """The Subject of each message left, through a POP3 login."""
    p = srv.pop(address)
    found = []
    for i in range(1, p.stat()[0] + 1):
        _, lines, _ = p.top(i, 0)
        found += [l.decode()[9:] for l in lines if l.startswith(b"Subject: ")]
    p.quit()
    return found


def login_reply(c, address, password=PASSWORD):
    assert c.cmd(f"USER {address}").startswith("+OK")
    return c.cmd(f"PASS {password}")


# --- LOGIN-DELAY ---


def test_login_delay_refuses_then_admits(pop3_server):
    srv = pop3_server(pop3_settings=dict(login_delay=3))
    a = fill(srv, n=1)
    p = srv.pop(a)
    assert p.capa()["LOGIN-DELAY"] == ["3"]
    p.quit()
    with Pop3(srv.pop3_port, timeout=10) as c:
        c.stls()
        r = login_reply(c, a)
        assert r.startswith("-ERR [LOGIN-DELAY] One login every 3 seconds: try again in "), r
        srv.inst.wait_log(rf"login of {re.escape(a)} refused: \d+s left of login_delay 3s")
        assert srv.inst.stats()["pop3.login_delayed"] == 1
        # Still in AUTHORIZATION and usable; a wrong password says only that.
        assert c.cmd("STAT").startswith("-ERR")
        assert c.cmd("CAPA").startswith("+OK")
        assert b"LOGIN-DELAY 3\r\n" in c.multi()
        assert login_reply(c, a, "wrong").startswith("-ERR [AUTH] ")
        wait = int(re.search(r"try again in (\d+) seconds", r).group(1))
        assert 1 <= wait <= 3, r
        time.sleep(wait)
        for _ in range(10):  # the wait is rounded up: the first try should do
            r = login_reply(c, a)
            if not r.startswith("-ERR [LOGIN-DELAY]"):
                break
            time.sleep(0.5)
        assert r.startswith("+OK"), r
        assert c.cmd("STAT").startswith("+OK 1 ")
        assert c.cmd("QUIT").startswith("+OK")


def test_login_delay_comes_before_in_use(pop3_server):
    srv = pop3_server(pop3_settings=dict(login_delay=60))
    a = fill(srv, n=1)
    with Pop3(srv.pop3_port) as first, Pop3(srv.pop3_port) as second:
        first.login(a)
        second.stls()
        assert login_reply(second, a).startswith("-ERR [LOGIN-DELAY] ")
        assert first.cmd("STAT").startswith("+OK 1 ")


def test_no_login_delay_quick_relogins(pop3_server):
    srv = pop3_server()
    a = fill(srv, n=1)
    for _ in range(5):
        p = srv.pop(a)
        assert "LOGIN-DELAY" not in p.capa()
        assert p.stat()[0] == 1
        p.quit()
    assert srv.inst.stats()["pop3.login_delayed"] == 0


def test_login_delay_crowd_of_users(pop3_server):
    """30 users log in at once: all get in; then at once again: each is
    refused for its own login, no other's."""
    srv = pop3_server(pop3_settings=dict(login_delay=60), accounts=())
    users = [srv.add_account(srv.addr(f"crowd{i}")) for i in range(30)]

    def login(address):
        with Pop3(srv.pop3_port, timeout=30) as c:
            c.stls()
            r = login_reply(c, address)
            if r.startswith("+OK"):
                assert c.cmd("QUIT").startswith("+OK")
            return r

    for round_ in ("+OK", "-ERR [LOGIN-DELAY] "):
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            replies = [f.result(timeout=120) for f in [pool.submit(login, u) for u in users]]
        assert all(r.startswith(round_) for r in replies), replies
    stats = srv.inst.stats()
    assert stats["pop3.logins"] == 30 and stats["pop3.login_delayed"] == 30, stats


# --- EXPIRE ---


def test_expire_zero_expunges_what_retr_sent(pop3_server):
    srv = pop3_server(pop3_settings=dict(expire="0"))
    a = fill(srv)
    p = srv.pop(a)
    assert p.capa()["EXPIRE"] == ["0"]
    _, ids, _ = p.uidl()
    p.retr(1)
    p.retr(3)
    p.top(2, 0)  # a look, not a retrieval
    assert p.stat()[0] == 3  # gone at QUIT, not before
    p.dele(3)  # retrieved and deleted: counted once
    p.rset()  # undoes the DELE, not the retrieval
    assert p.quit() == b"+OK Bye, 2 messages deleted"
    srv.inst.wait_log(r"logout: 2 messages expunged \(2 retrieved with EXPIRE 0\)")
    assert srv.inst.stats()["pop3.deleted"] == 2
    assert len(srv.messages(a)) == 1  # the files are gone: IMAP sees it too
    assert subjects(srv, a) == ["m2"]
    p = srv.pop(a)
    assert p.uidl()[1] == [b"1 " + ids[1].split()[1]]
    p.quit()


def test_expire_zero_without_quit_deletes_nothing(pop3_server):
    srv = pop3_server(pop3_settings=dict(expire="0"))
    a = fill(srv)
    with Pop3(srv.pop3_port) as c:
        c.login(a)
        for n in (1, 2):
            assert c.cmd(f"RETR {n}").startswith("+OK")
            c.multi()
    srv.inst.wait_idle()
    assert len(srv.messages(a)) == 3
    assert subjects(srv, a) == ["m1", "m2", "m3"]


@pytest.mark.parametrize("expire", ["NEVER", "5"])
def test_other_expire_values_keep_retrieved_messages(pop3_server, expire):
    srv = pop3_server(pop3_settings=dict(expire=expire))
    a = fill(srv)
    p = srv.pop(a)
    assert p.capa()["EXPIRE"] == [expire]
    for n in (1, 2, 3):
        p.retr(n)
    assert p.quit() == b"+OK Bye"
    assert len(srv.messages(a)) == 3
