"""pop3 end to end (issue 13) with Python's poplib and a raw client: every
command of RFC 1939, CAPA, STLS, AUTH with and without an initial
response, implicit TLS, plaintext refused before TLS, deletions only at
QUIT, UIDLs that survive sessions, restarts and index rebuilds, the
maildrop lock, pipelining, the message's framing (sizes, dots, bare LF),
bad input (alone, from a crowd and a byte at a time) and the idle
timeout."""

import concurrent.futures
import poplib
import subprocess
import time

import pytest

from harness import CMD_TIMEOUT, b64, wait_for
from pop3_helpers import Pop3, Pop3Server
from smtp_helpers import PASSWORD, message


@pytest.fixture
def pop3_server(make_instance, env):
    def factory(name="pop3", **kw):
        return Pop3Server(make_instance, env, name, **kw).start()
    return factory


@pytest.fixture
def srv(pop3_server):
    return pop3_server()


def fill(srv, local="alice", n=3):
    """n messages for local; returns the address."""
    address = srv.addr(local)
    srv.deliver(address, *(message(f"m{i}", to=address, body=f"body {i}\r\n.dot {i}\r\n").encode()
                           for i in range(1, n + 1)))
    return address


def uidls(srv, address):
    p = srv.pop(address)
    _, lines, _ = p.uidl()
    p.quit()
    return [l.decode() for l in lines]


def test_capa_before_and_after_tls(srv):
    with Pop3(srv.pop3_port) as c:
        assert c.greeting.startswith("+OK ")
        assert c.cmd("CAPA").startswith("+OK")
        before = c.unstuff(c.multi()).decode().split("\r\n")
        assert "STLS" in before and "USER" not in before, before
        assert not any(x.startswith("SASL") for x in before), before
        c.stls()
        assert c.cmd("CAPA").startswith("+OK")
        after = c.unstuff(c.multi()).decode().split("\r\n")
        for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER",
                    "SASL PLAIN LOGIN", "IMPLEMENTATION Petrel"):
            assert cap in after, after
        assert "STLS" not in after


def test_capa_expire_and_login_delay(pop3_server):
    srv = pop3_server(pop3_settings=dict(expire="NEVER", login_delay=900))
    caps = srv.pop().capa()
    assert caps["EXPIRE"] == ["NEVER"] and caps["LOGIN-DELAY"] == ["900"], caps


def test_every_command(srv):
    a = fill(srv)
    stored = srv.messages(a)
    p = srv.pop(a)
    count, size = p.stat()
    assert count == 3 and size == sum(len(m) for m in stored)
    resp, lines, _ = p.list()
    assert resp.startswith(b"+OK 3 messages")
    assert lines == [f"{i + 1} {len(m)}".encode() for i, m in enumerate(stored)]
    assert p.list(2) == f"+OK 2 {len(stored[1])}".encode()
    _, ids, _ = p.uidl()
    assert len({l.split()[1] for l in ids}) == 3
    assert p.uidl(3) == b"+OK " + ids[2]
    for i, m in enumerate(stored, 1):
        resp, lines, octets = p.retr(i)
        assert resp == f"+OK {len(m)} octets".encode()
        assert b"\r\n".join(lines) + b"\r\n" == m
    head, _, body = stored[0].partition(b"\r\n\r\n")
    _, lines, _ = p.top(1, 0)
    assert b"\r\n".join(lines) + b"\r\n" == head + b"\r\n\r\n"
    _, lines, _ = p.top(1, 1)
    assert b"\r\n".join(lines) + b"\r\n" == head + b"\r\n\r\n" + body.split(b"\r\n")[0] + b"\r\n"
    _, lines, _ = p.top(1, 100)
    assert b"\r\n".join(lines) + b"\r\n" == stored[0]
    assert p.noop().startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    assert len(srv.messages(a)) == 3
    stats = srv.inst.stats()
    assert stats["pop3.logins"] == 1 and stats["pop3.retrieved"] == 6, stats
    assert stats["pop3.retrieved_bytes"] >= sum(len(m) for m in stored), stats


def test_list_sizes_are_the_octets_retr_sends(srv):
    a = srv.addr("alice")
    srv.deliver(a, message("dots", to=a, body=".\r\n..\r\n. x\r\n" * 50).encode(),
                message("big", to=a, body="0123456789" * 100 + "\r\n" * 3000).encode())
    with Pop3(srv.pop3_port) as c:
        c.login(a)
        for n in (1, 2):
            size = int(c.cmd(f"LIST {n}").split()[2])
            assert c.cmd(f"RETR {n}") == f"+OK {size} octets"
            raw = c.multi()
            assert len(c.unstuff(raw)) == size
            assert b"\n" not in raw.replace(b"\r\n", b"")
            assert n == 2 or b"\r\n..\r\n...\r\n.. x\r\n" in raw


def test_foreign_file_with_bare_lf_is_sent_with_crlf(srv):
    a = fill(srv, n=1)
    srv.drop(a, "1700000000.foreign.host", b"Subject: lf\n\n.starts with a dot\nend")
    with Pop3(srv.pop3_port) as c:
        c.login(a)
        assert c.cmd("STAT").startswith("+OK 2 ")
        assert c.cmd("RETR 2").startswith("+OK")
        raw = c.multi()
        assert raw == b"Subject: lf\r\n\r\n..starts with a dot\r\nend\r\n.\r\n"


def test_new_mail_shows_at_the_next_login(srv):
    a = fill(srv, n=1)
    p = srv.pop(a)
    fill(srv, n=1)
    assert p.stat()[0] == 1
    p.quit()
    assert srv.pop(a).stat()[0] == 2


def test_dele_then_rset_keeps_everything(srv):
    a = fill(srv)
    p = srv.pop(a)
    assert p.dele(1).startswith(b"+OK") and p.dele(3).startswith(b"+OK")
    assert p.stat()[0] == 1
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    assert p.rset().startswith(b"+OK 3 messages")
    assert p.stat()[0] == 3
    p.quit()
    assert len(srv.messages(a)) == 3


def test_dele_then_quit_expunges(srv):
    a = fill(srv)
    before = uidls(srv, a)
    p = srv.pop(a)
    p.dele(2)
    assert len(p.list()[1]) == 2
    assert p.quit() == b"+OK Bye, 1 messages deleted"
    assert len(srv.messages(a)) == 2  # the file is gone: IMAP sees it too
    assert srv.inst.stats()["pop3.deleted"] == 1
    assert uidls(srv, a) == [f"1 {before[0].split()[1]}", f"2 {before[2].split()[1]}"]


def test_disconnect_without_quit_deletes_nothing(srv):
    a = fill(srv)
    with Pop3(srv.pop3_port) as c:
        c.login(a)
        assert c.cmd("DELE 1").startswith("+OK")
        assert c.cmd("DELE 2").startswith("+OK")
    srv.inst.wait_idle()
    assert len(srv.messages(a)) == 3
    assert srv.pop(a).stat()[0] == 3


def test_uidl_stable_across_sessions_restart_and_index_rebuild(srv):
    a = fill(srv)
    first = uidls(srv, a)
    assert uidls(srv, a) == first
    validity = first[0].split()[1].split(".")[0]
    assert all(l.split()[1].split(".")[0] == validity for l in first)
    srv.stop()
    srv.start()
    assert uidls(srv, a) == first
    srv.stop()
    index = list(srv.maildir(a).glob("petrel-index.sqlite*"))
    assert index, list(srv.maildir(a).iterdir())
    for f in index:
        f.unlink()
    srv.start()
    assert uidls(srv, a) == first
    fill(srv, n=1)
    after = uidls(srv, a)
    assert after[:3] == first and after[3] not in first


def test_second_login_gets_in_use_until_the_first_ends(srv):
    a = fill(srv, n=1)
    first = Pop3(srv.pop3_port)
    first.login(a)
    with Pop3(srv.pop3_port) as second:
        second.stls()
        assert second.cmd(f"USER {a}").startswith("+OK")
        assert second.cmd(f"PASS {PASSWORD}").startswith("-ERR [IN-USE] ")
        assert srv.inst.stats()["pop3.in_use"] == 1
        assert second.cmd("NOOP").startswith("-ERR")  # still not logged in
        first.close()  # dies without QUIT: the lock goes with it

        def relogin():
            assert second.cmd(f"USER {a}").startswith("+OK")
            return second.cmd(f"PASS {PASSWORD}").startswith("+OK")
        wait_for(relogin, what="the lock released")
        assert second.cmd("STAT").startswith("+OK 1 ")


def test_other_accounts_are_not_locked(srv):
    a, b = fill(srv, "alice", 1), fill(srv, "bob", 2)
    pa, pb = srv.pop(a), srv.pop(b)
    assert pa.stat()[0] == 1 and pb.stat()[0] == 2
    pa.quit()
    pb.quit()


def test_plaintext_refused_before_tls(srv):
    a = fill(srv, n=1)
    with Pop3(srv.pop3_port) as c:
        r = c.cmd(f"USER {a}")
        assert r.startswith("-ERR [AUTH] ") and "STLS" in r, r
        r = c.cmd("AUTH PLAIN " + b64(f"\0{a}\0{PASSWORD}"))
        assert r.startswith("-ERR [AUTH] ") and "STLS" in r, r
        assert c.cmd("AUTH").startswith("+OK")
        assert c.multi() == b".\r\n"  # no mechanism offered here
        c.login(a)  # after STLS it works
        assert c.cmd("STAT").startswith("+OK 1 ")


def test_plaintext_allowed_when_configured(pop3_server):
    srv = pop3_server(auth=dict(failure_delay="0s", plaintext_without_tls=True))
    a = fill(srv, n=1)
    p = srv.pop(a, tls=None)
    assert p.stat()[0] == 1
    p.quit()


def test_auth_mechanisms(srv):
    a = fill(srv, n=1)
    with Pop3(srv.pop3_port) as c:  # PLAIN with an initial response (RFC 5034)
        c.stls()
        assert c.cmd("AUTH").startswith("+OK")
        assert c.unstuff(c.multi()) == b"PLAIN\r\nLOGIN\r\n"
        assert c.cmd("AUTH PLAIN " + b64(f"\0{a}\0{PASSWORD}")).startswith("+OK")
        assert c.cmd("QUIT").startswith("+OK")
    with Pop3(srv.pop3_port) as c:  # PLAIN without, then LOGIN
        c.stls()
        assert c.cmd("AUTH PLAIN") == "+ "
        assert c.cmd(b64(f"\0{a}\0wrong")).startswith("-ERR [AUTH] ")
        assert c.cmd("AUTH LOGIN").startswith("+ ")
        assert c.cmd(b64(a)).startswith("+ ")
        assert c.cmd(b64(PASSWORD)).startswith("+OK")
        assert c.cmd("STAT").startswith("+OK 1 ")
    with Pop3(srv.pop3_port) as c:  # garbage and cancel go on
        c.stls()
        assert c.cmd("AUTH PLAIN") == "+ "
        assert c.cmd("*").startswith("-ERR")
        assert c.cmd("AUTH PLAIN !!notbase64!!").startswith("-ERR")
        assert c.cmd("AUTH CRAM-MD5").startswith("-ERR")
        assert c.cmd("AUTH PLAIN") == "+ "
        assert c.cmd("x" * 3000).startswith("-ERR")  # a line over max_line
        assert c.cmd("CAPA").startswith("+OK")


def test_implicit_tls(srv):
    a = fill(srv, n=2)
    p = srv.pop(a, tls="implicit")
    assert p.stat()[0] == 2
    assert "STLS" not in p.capa()
    p.quit()


def test_wrong_password_then_lockout_closes(pop3_server):
    srv = pop3_server(pop3_service=dict(max_auth_errors=2))
    a = fill(srv, n=1)
    with Pop3(srv.pop3_port) as c:
        c.stls()
        for _ in range(2):
            assert c.cmd(f"USER {a}").startswith("+OK")
            assert c.cmd("PASS wrong").startswith("-ERR [AUTH] ")
        c.expect_eof()


def test_pipelining(srv):
    a = fill(srv)
    with Pop3(srv.pop3_port) as c:
        c.login(a)
        c.send("STAT\r\nLIST\r\nRETR 1\r\nUIDL\r\nTOP 2 0\r\nDELE 3\r\nRETR 3\r\nLIST 3\r\n"
               "NOOP\r\nRSET\r\nRETR 2\r\nSTAT\r\n")
        assert c.line().startswith("+OK 3 ")
        assert c.line().startswith("+OK 3 messages")
        assert len(c.unstuff(c.multi()).split(b"\r\n")) == 4
        assert c.line().startswith("+OK")
        assert c.multi().endswith(b"\r\n..dot 1\r\n.\r\n")
        assert c.line().startswith("+OK")
        c.multi()
        assert c.line().startswith("+OK")
        assert c.multi().endswith(b"\r\n\r\n.\r\n")
        assert c.line() == "+OK Message 3 deleted"
        assert c.line() == "-ERR Message 3 already deleted"
        assert c.line() == "-ERR Message 3 already deleted"
        assert c.line() == "+OK"
        assert c.line().startswith("+OK 3 messages")
        assert c.line().startswith("+OK")
        assert c.multi().endswith(b"\r\n..dot 2\r\n.\r\n")
        assert c.line().startswith("+OK 3 ")


# Bad input in the TRANSACTION state: each gets -ERR and the session goes on.
BAD = [
    "XYZZY", "STAT 1", "LIST 1 2", "LIST x", "RETR", "RETR 0", "RETR -1", "RETR 4294967296",
    "RETR 99999999999999999999999", "RETR 9", "RETR 1 1", "DELE", "DELE 0", "DELE 9", "TOP 1",
    "TOP 1 -1", "TOP 0 1", "TOP 9 0", "UIDL 0", "UIDL 9", "LIST 9", "NOOP x", "RSET x",
    "USER x", "PASS x", "AUTH PLAIN", "STLS", "APOP a b", "", " ", "RETR  1", "\x00STAT",
    "STAT\x00", "\xff\xfe", "DELE 2", "DELE 2",
]


def bad_input(srv, address):
    """The BAD list after login (message 2 is deleted by the first DELE 2,
    so the second is a deleted message number): all -ERR but that one."""
    with Pop3(srv.pop3_port, timeout=60) as c:
        c.login(address)
        bad_list(c)


def bad_list(c):
    send = c.send
    deleted = False
    for line in BAD:
        send(line.encode("latin-1") + b"\r\n")
        r = c.line()
        if line == "DELE 2" and not deleted:
            assert r.startswith("+OK"), r
            deleted = True
            continue
        assert r.startswith("-ERR"), (line, r)
    send(b"X" * 100_000 + b"\r\n")  # a 100 KB line
    assert c.line() == "-ERR line too long"
    send(b"STAT\r\n")
    assert c.line().startswith("+OK 2 ")
    send(b"QUIT\r\n")
    assert c.line().startswith("+OK")


@pytest.fixture
def lenient(pop3_server):
    """max_errors above the bad input's count."""
    return pop3_server(pop3_service=dict(max_errors=100))


def test_bad_input_gets_err_and_the_session_goes_on(lenient):
    a = fill(lenient)
    bad_input(lenient, a)
    assert len(lenient.messages(a)) == 2  # the DELE 2 of the list, at QUIT


def test_bad_input_before_login(lenient):
    with Pop3(lenient.pop3_port) as c:
        for line in ("STAT", "RETR 1", "PASS x", "XYZZY", "TOP 1 1", "USER", "AUTH " + "A" * 50):
            assert c.cmd(line).startswith("-ERR"), line
        assert c.cmd("CAPA").startswith("+OK")
        c.multi()


def test_bad_input_from_a_crowd(lenient):
    """50 sessions at once, each on an account of its own (the lock lets
    one session in per maildrop), each sending the whole bad list."""
    accounts = [fill(lenient, "alice", 3)] + [
        fill(lenient, lenient.add_account(f"crowd{i}@{lenient.domain}").split("@")[0], 3)
        for i in range(49)]
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        for f in [pool.submit(bad_input, lenient, a) for a in accounts]:
            f.result(timeout=120)
    lenient.inst.wait_idle()
    assert all(len(lenient.messages(a)) == 2 for a in accounts)


def test_bad_input_a_byte_at_a_time(lenient):
    a = fill(lenient)

    def trickle(data):
        for i in range(len(data)):
            c.sock.sendall(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
    c = Pop3(lenient.pop3_port, timeout=20)
    c.login(a)
    for line in BAD[:20]:
        trickle(line.encode("latin-1") + b"\r\n")
        assert c.line().startswith("-ERR"), line
    trickle(b"RETR 1\r\n")
    assert c.line().startswith("+OK")
    c.multi()
    trickle(b"QUIT\r\n")
    assert c.line().startswith("+OK")
    c.close()


def test_too_many_errors_closes(pop3_server):
    srv = pop3_server(pop3_service=dict(max_errors=3))
    with Pop3(srv.pop3_port) as c:
        assert c.cmd("XYZZY").startswith("-ERR")
        assert c.cmd("XYZZY").startswith("-ERR")
        assert c.cmd("XYZZY").startswith("-ERR")
        assert c.line() == "-ERR too many errors, closing"
        c.expect_eof()


def test_idle_timeout_deletes_nothing(pop3_server):
    srv = pop3_server(pop3=dict(idle_timeout="1s"))
    a = fill(srv, n=2)
    with Pop3(srv.pop3_port, timeout=10) as c:
        c.login(a)
        assert c.cmd("DELE 1").startswith("+OK")
        assert c.line() == "-ERR Disconnected for inactivity"
        c.expect_eof()
    srv.inst.wait_idle()
    assert len(srv.messages(a)) == 2


def test_init_enables_pop3_on_port_base_plus_110_and_995(env, base_dir):
    d = base_dir / "init-pop3"
    r = subprocess.run([str(env.petrelctl), "init", str(d), "--port-base", "30000"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    text = next((d / "conf.d").glob("*-pop3.conf")).read_text()
    assert 'module = "pop3";' in text and "enabled = true;" in text
    assert '"127.0.0.1:30110"' in text and '"127.0.0.1:30995"' in text


def test_message_removed_by_another_program_during_the_session(srv):
    """The other way round: a message expunged elsewhere (here its file
    removed, as an IMAP EXPUNGE or another program does) while the
    session holds its snapshot."""
    a = fill(srv)
    with Pop3(srv.pop3_port) as c:
        c.login(a)
        first = sorted(f for sub in ("new", "cur") for f in (srv.maildir(a) / sub).iterdir())[0]
        first.unlink()
        assert c.cmd("RETR 1") == "-ERR Message 1 was removed by another session"
        assert c.cmd("RETR 2").startswith("+OK")
        c.multi()
        assert c.cmd("DELE 1").startswith("+OK")  # gone already: QUIT still succeeds
        assert c.cmd("QUIT").startswith("+OK")
    assert srv.pop(a).stat()[0] == 2


def test_shutdown_with_a_session_open_deletes_nothing(srv):
    a = fill(srv)
    c = Pop3(srv.pop3_port, timeout=20)
    c.login(a)
    assert c.cmd("DELE 1").startswith("+OK")
    srv.stop()  # exits 0, nothing left behind (the harness checks)
    assert c.line() == "-ERR [SYS/TEMP] server shutting down, nothing deleted"
    c.expect_eof()
    c.close()
    srv.start()
    assert srv.pop(a).stat()[0] == 3
