"""A maildrop of 10,000 messages: the snapshot, STAT, LIST and UIDL in
bounded memory (the listing goes out in batches), RETR of the last one,
and DELE of many at QUIT in one expunge. The messages are dropped into
the Maildir as another program would (the store adopts them at login),
which is much faster than 10,000 SMTP deliveries."""

import time

from harness import rss_kib
from pop3_helpers import Pop3, Pop3Server
from smtp_helpers import message

COUNT = 10_000
# petreld's RSS may grow by this much while one session logs in to and
# lists the maildrop (the session's snapshot is about 160 KiB; SQLite's
# page cache of the index and malloc's arenas take the rest: about 4 MiB
# measured). Under AddressSanitizer freed memory stays in its quarantine
# (256 MiB) and every allocation has shadow memory: only a gross leak shows.
RSS_GROWTH_MAX_KIB = 24 * 1024
RSS_GROWTH_MAX_KIB_ASAN = 768 * 1024


def sanitized(env):
    return b"AddressSanitizer" in env.petreld.read_bytes()


def test_ten_thousand_messages_list_in_bounded_memory(make_instance, env):
    srv = Pop3Server(make_instance, env, "pop3-large").start()
    a = srv.addr("alice")
    srv.deliver(a, message("first", to=a).encode())
    srv.pop(a).quit()  # the mailbox exists
    t0 = int(time.time())
    for i in range(COUNT):
        srv.drop(a, f"{t0}.M{i}P1.other", message(f"n{i}", to=a, body=f"{i}\r\n").encode())
    rss_before = rss_kib(srv.inst.pid)
    with Pop3(srv.pop3_port, timeout=120) as c:
        c.login(a)
        assert c.cmd("STAT").startswith(f"+OK {COUNT + 1} ")
        for verb in ("LIST", "UIDL"):
            # The whole answer is sent before the client reads any of it.
            c.send(f"{verb}\r\n")
            time.sleep(0.5)
            assert c.line().startswith("+OK")
            lines = c.unstuff(c.multi()).split(b"\r\n")[:-1]
            assert len(lines) == COUNT + 1
            assert lines[-1].startswith(f"{COUNT + 1} ".encode())
        growth = rss_kib(srv.inst.pid) - rss_before
        limit = RSS_GROWTH_MAX_KIB_ASAN if sanitized(env) else RSS_GROWTH_MAX_KIB
        assert growth < limit, f"RSS grew by {growth} KiB"
        assert c.cmd(f"RETR {COUNT + 1}").startswith("+OK")
        assert b"\r\nSubject: n" in c.multi()  # adopted in an order of the store's
        for n in range(2, COUNT + 2, 2):
            c.send(f"DELE {n}\r\n")
        for n in range(2, COUNT + 2, 2):
            assert c.line() == f"+OK Message {n} deleted"
        assert c.cmd("QUIT") == f"+OK Bye, {COUNT // 2} messages deleted"
    print(f"RSS growth for a {COUNT + 1}-message session: {growth} KiB")
    p = srv.pop(a)
    assert p.stat()[0] == COUNT // 2 + 1
    p.quit()


def test_large_messages_with_the_smallest_max_output(make_instance, env):
    """A listener's max_output at its minimum (4 KiB, so 16 KiB queued at
    most before the core closes the connection): RETR streams a 300 KB
    message, with lines that dot-stuffing lengthens, in pieces that fit,
    and the bytes arrive whole."""
    srv = Pop3Server(make_instance, env, "pop3-small-out", pop3={"max_output": 4096})
    user = srv.addr("alice")
    line = b"." + b"x" * 70 + b"\r\n"
    body = line * (300_000 // len(line))
    raw = message(subject="big", to=user, body=body.decode()).encode()
    srv.start()
    srv.deliver(user, raw)
    p = srv.pop(user)
    try:
        resp, lines, octets = p.retr(1)
        assert resp.startswith(b"+OK")
        got = b"\r\n".join(lines) + b"\r\n"
        assert got.endswith(body)
        assert octets >= len(body)
    finally:
        p.quit()
    srv.stop()
