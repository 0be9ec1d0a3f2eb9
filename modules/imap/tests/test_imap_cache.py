"""FETCH ENVELOPE and BODYSTRUCTURE read each message file once, ever: the
first fetch builds each message's structure and keeps it in the store's
per-message cache; later fetches, in other sessions and after a restart,
answer from the cache. Measured with the bytes petreld reads
(/proc/PID/io rchar), against the messages' total size."""

import re

import pytest

from imap_helpers import ImapServer
from smtp_helpers import message

COUNT = 200
BODY = ("a line of text for the cache test, long enough to count.\r\n" * 300)  # ~17 KB


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imap-cache").start()


def rchar(pid):
    with open(f"/proc/{pid}/io") as f:
        return int(re.search(r"^rchar: (\d+)$", f.read(), re.M).group(1))


def fetch_all(srv, user):
    """Bytes petreld read while one session fetched every ENVELOPE and
    BODYSTRUCTURE, and the answer."""
    with srv.imap(user) as c:
        typ, _ = c.select("INBOX", readonly=True)
        assert typ == "OK"
        before = rchar(srv.inst.pid)
        typ, data = c.fetch("1:*", "(ENVELOPE BODYSTRUCTURE)")
        read = rchar(srv.inst.pid) - before
    assert typ == "OK"
    answers = [d if isinstance(d, bytes) else d[0] for d in data]
    return read, b"\n".join(a for a in answers if a != b")")


def test_structure_fetch_reads_each_file_once(srv):
    a = srv.addr("alice")
    srv.deliver(a, *(message(f"m{i}", to=a, body=BODY).encode() for i in range(COUNT)))
    total = sum(len(raw) for raw in srv.messages(a))
    assert total > COUNT * 16000
    first, answer = fetch_all(srv, a)
    assert answer.count(b"ENVELOPE") == COUNT and answer.count(b"BODYSTRUCTURE") == COUNT
    assert first >= total, (first, total)  # the measure sees the files being read
    again, answer2 = fetch_all(srv, a)
    assert answer2 == answer
    assert again < total // 4, (again, total)
    srv.stop()
    srv.start()
    restarted, answer3 = fetch_all(srv, a)
    assert answer3 == answer
    assert restarted < total // 4, (restarted, total)
