"""petrelctl queue list|show|flush|delete|hold|release against queue files
written by hand in the envelope format of modules/processing/envelope.h
(no daemon runs): the listing, the locking the queue runner also uses, and
the refusal of anything that is not a queue id or a regular file."""

import fcntl
import os
import subprocess
import time

import pytest

from harness import CMD_TIMEOUT, sanitizer_findings, service_conf

# Sorted: the listing is in id order.
ID_A = "0123456789ABCDEFGHIA"
ID_B = "0123456789ABCDEFGHIB"
ID_C = "0123456789ABCDEFGHIC"
MISSING = "0123456789ABCDEFGHIV"

ARRIVAL = 1714564800  # 2024-05-01T12:00:00Z
LATER = 2000000000    # 2033-05-18T03:33:20Z

MESSAGE = (b"Received: from client.example (client.example [192.0.2.1])\r\n"
           b"\tby mx.example.test (Petrel) with ESMTP id " + ID_A.encode() + b"\r\n"
           b"Subject: hello\x1b[2J there \xc3\xa9t\xc3\xa9\r\n"
           b"From: <alice@example.test>\r\n"
           b"\r\n"
           b"SECRET BODY\r\n")


def envelope(ident, sender="alice@example.test", rcpts=None, attempts=0, size=None,
             end=True):
    """Envelope text: rcpts are (state, route, notify, address, original,
    orcpt, reason) tuples."""
    if rcpts is None:
        rcpts = [("P", "L", 0, "bob@example.test", "", "", "")]
    lines = ["petrel-queue 1", f"id {ident}", f"arrival {ARRIVAL}", f"next {LATER}",
             f"attempts {attempts}", f"size {len(MESSAGE) if size is None else size}",
             f"from {sender}", "helo client.example", "client 192.0.2.1", "protocol ESMTP",
             "flags 0 0 0 0"]
    for state, route, notify, address, original, orcpt, reason in rcpts:
        lines.append(f"rcpt {state} {route} {notify} " +
                     "\t".join((address, original, orcpt, reason)))
    if end:
        lines.append("end")
    return "\n".join(lines) + "\n"


class Queue:
    """A queue directory as petreld lays it out."""

    def __init__(self, root):
        self.root = root
        for sub in ("", "tmp", "data", "active", "hold"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)

    def path(self, sub, ident):
        return self.root / sub / ident

    def add(self, ident, where="active", text=None, data=MESSAGE, mtime=LATER, **kw):
        if data is not None:
            self.path("data", ident).write_bytes(data)
        envelope_path = self.path(where, ident)
        envelope_path.write_text(text if text is not None else envelope(ident, **kw))
        os.utime(envelope_path, (mtime, mtime))
        return envelope_path

    def mtime(self, sub, ident):
        return self.path(sub, ident).stat().st_mtime


@pytest.fixture
def inst(make_instance):
    return make_instance()


@pytest.fixture
def queue(inst):
    return Queue(inst.dir / "data" / "queue")


def ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    assert not sanitizer_findings(r.stderr), r.stderr
    return r.stdout


def fails(r, message, status=1):
    assert r.returncode == status, f"status {r.returncode}: {r.stdout}{r.stderr}"
    assert not sanitizer_findings(r.stderr), r.stderr
    assert message in r.stderr, r.stderr
    return r.stderr


def is_now(t):
    return abs(t - time.time()) < 5


def test_empty_queue(inst):
    # No queue directory yet (the daemon makes it when it starts).
    assert ok(inst.ctl("queue", "list")) == "queue is empty\n"
    Queue(inst.dir / "data" / "queue")
    assert ok(inst.ctl("queue", "list")) == "queue is empty\n"
    assert ok(inst.ctl("queue", "flush")) == "0 messages flushed\n"


def test_list(inst, queue):
    queue.add(ID_A, attempts=1, size=1234, rcpts=[
        ("T", "L", 0, "bob@example.test", "team@example.test", "", "452 4.2.2 mailbox full"),
        ("D", "L", 0, "carol@example.test", "team@example.test", "", ""),
        ("P", "R", 6, "dave@far.test", "", "rfc822;dave@far.test", ""),
    ])
    queue.add(ID_B, where="hold", sender="", size=99, rcpts=[
        ("F", "R", 0, "x@far.test", "", "", "550 5.1.1 no such user"),
        ("B", "R", 0, "y@far.test", "", "", "550 5.7.1 refused"),
        ("S", "L", 2, "z@example.test", "", "", ""),
        ("E", "-", 0, "w@example.test", "", "", ""),
    ])
    queue.add(ID_C, text=envelope(ID_C, end=False))  # torn
    queue.path("active", "README").write_text("not an entry\n")
    lines = ok(inst.ctl("queue", "list")).splitlines()
    a = lines.index(f"{ID_A}  1234  2024-05-01T12:00:00Z  <alice@example.test>")
    assert lines[a + 1:a + 5] == [
        "  next attempt 2033-05-18T03:33:20Z, 1 attempt so far",
        "  <bob@example.test> (expanded from <team@example.test>)  deferred: "
        "452 4.2.2 mailbox full",
        "  <carol@example.test> (expanded from <team@example.test>)  delivered",
        "  <dave@far.test>  pending",
    ], lines
    b = lines.index(f"{ID_B}  99  2024-05-01T12:00:00Z  HELD  <>")
    assert lines[b + 1:b + 5] == [  # held: no next attempt
        "  <x@far.test>  failed: 550 5.1.1 no such user",
        "  <y@far.test>  bounced: 550 5.7.1 refused",
        "  <z@example.test>  delivered (report owed)",
        "  <w@example.test>  to expand",
    ], lines
    c = lines.index(f"{ID_C}: unreadable (malformed queue envelope)")
    assert a < b < c
    assert lines[-1] == "3 messages in the queue"
    assert "README" not in "\n".join(lines)

    # Due now: the modification time is the schedule.
    os.utime(queue.path("active", ID_A), (ARRIVAL, ARRIVAL))
    lines = ok(inst.ctl("queue", "list")).splitlines()
    assert "  next attempt 2024-05-01T12:00:00Z (due), 1 attempt so far" in lines


def test_show(inst, queue):
    queue.add(ID_A, attempts=3, rcpts=[
        ("T", "R", 6, "bob@far.test", "team@example.test", "rfc822;team@example.test",
         "451 4.4.1 no answer"),
    ])
    out = ok(inst.ctl("queue", "show", ID_A))
    lines = out.splitlines()
    for want in (f"id:         {ID_A}",
                 "queue:      active, next attempt 2033-05-18T03:33:20Z",
                 "arrival:    2024-05-01T12:00:00Z",
                 "attempts:   3",
                 f"size:       {len(MESSAGE)} bytes",
                 "from:       <alice@example.test>",
                 "helo:       client.example",
                 "client:     192.0.2.1",
                 "protocol:   ESMTP",
                 "recipient:  <bob@far.test>  deferred (route remote, notify SUCCESS,FAILURE, "
                 "orcpt rfc822;team@example.test, expanded from <team@example.test>)",
                 "  reason:   451 4.4.1 no answer",
                 "header:",
                 "Received: from client.example (client.example [192.0.2.1])",
                 f"\tby mx.example.test (Petrel) with ESMTP id {ID_A}",
                 # A terminal control sequence is shown escaped; UTF-8 as it is.
                 "Subject: hello\\x1B[2J there \u00e9t\u00e9",
                 "From: <alice@example.test>"):
        assert want in lines, out
    assert lines[-1] == "From: <alice@example.test>", out
    assert "SECRET BODY" not in out
    assert "\x1b" not in out

    queue.add(ID_B, where="hold")
    assert "queue:      held (not worked on until released)" in \
        ok(inst.ctl("queue", "show", ID_B)).splitlines()

    # A header without its end is cut at 64 KiB.
    long_header = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"x" * 60) for i in range(2000))
    queue.add(ID_C, data=long_header)
    out = ok(inst.ctl("queue", "show", ID_C))
    assert "[the header is longer than 64 KiB: cut]" in out
    assert 60 * 1024 < len(out) < 70 * 1024

    # A broken envelope, a missing data file.
    queue.path("active", ID_C).write_text(envelope(ID_C, end=False))
    fails(inst.ctl("queue", "show", ID_C), f"active/{ID_C}: unreadable (malformed queue "
                                           "envelope)")
    queue.path("data", ID_B).unlink()
    r = inst.ctl("queue", "show", ID_B)
    fails(r, f"data/{ID_B}: No such file or directory")
    assert f"id:         {ID_B}" in r.stdout


def test_hold_and_release(inst, queue):
    text = envelope(ID_A)
    queue.add(ID_A, text=text)
    assert ok(inst.ctl("queue", "hold", ID_A)) == f"{ID_A} held\n"
    assert not queue.path("active", ID_A).exists()
    assert queue.path("hold", ID_A).read_text() == text
    assert queue.path("data", ID_A).read_bytes() == MESSAGE
    assert f"{ID_A}  {len(MESSAGE)}  2024-05-01T12:00:00Z  HELD  <alice@example.test>" in \
        ok(inst.ctl("queue", "list")).splitlines()
    fails(inst.ctl("queue", "hold", ID_A), f"{ID_A} is already held")
    fails(inst.ctl("queue", "flush", ID_A), f"{ID_A} is held")
    assert queue.mtime("hold", ID_A) == LATER  # a held entry keeps its time until released

    assert ok(inst.ctl("queue", "release", ID_A)) == f"{ID_A} released\n"
    assert not queue.path("hold", ID_A).exists()
    assert queue.path("active", ID_A).read_text() == text
    assert is_now(queue.mtime("active", ID_A))  # due at once
    fails(inst.ctl("queue", "release", ID_A), f"{ID_A} is not held")

    # Never over an entry of the same id in the other directory.
    queue.add(ID_A, where="hold", text=envelope(ID_A, sender="other@example.test"))
    fails(inst.ctl("queue", "release", ID_A), f"{ID_A} is both in hold/ and in active/")
    assert queue.path("active", ID_A).read_text() == text


def test_flush(inst, queue):
    queue.add(ID_A)
    queue.add(ID_B)
    queue.add(ID_C, where="hold")
    assert ok(inst.ctl("queue", "flush")) == "2 messages flushed\n"
    assert is_now(queue.mtime("active", ID_A))
    assert is_now(queue.mtime("active", ID_B))
    assert queue.mtime("hold", ID_C) == LATER
    os.utime(queue.path("active", ID_B), (LATER, LATER))
    assert ok(inst.ctl("queue", "flush", ID_B)) == "1 message flushed\n"
    assert is_now(queue.mtime("active", ID_B))
    # The envelope is not rewritten: only its time changes.
    assert queue.path("active", ID_B).read_text() == envelope(ID_B)


def test_delete(inst, queue):
    queue.add(ID_A)
    queue.add(ID_B, where="hold")
    queue.add(ID_C, data=None)  # no data file: the envelope still goes
    for ident, where in ((ID_A, "active"), (ID_B, "hold"), (ID_C, "active")):
        assert ok(inst.ctl("queue", "delete", ident)) == f"{ident} deleted\n"
        assert not queue.path(where, ident).exists()
        assert not queue.path("data", ident).exists()
        fails(inst.ctl("queue", "delete", ident), f"{ident}: no such message")
    assert ok(inst.ctl("queue", "list")) == "queue is empty\n"


def test_bad_and_missing_ids(inst, queue):
    queue.add(ID_A)
    canary = inst.dir / "data" / "canary"
    canary.write_text(envelope(ID_A))
    bad = ["../canary", "../../data/canary", "../" + ID_A[3:], "../active/" + ID_A[:10],
           ID_A.lower(), ID_A[:-1], ID_A + "0", ID_A[:-1] + "W", ID_A[:-1] + "/", ".", "..",
           "", "-h"]
    for command in ("show", "delete", "hold", "release", "flush"):
        for ident in bad:
            fails(inst.ctl("queue", command, ident), "is not a queue id")
        fails(inst.ctl("queue", command, MISSING), f"{MISSING}: no such message")
    assert canary.exists()
    assert queue.path("active", ID_A).exists() and queue.path("data", ID_A).exists()
    r = inst.ctl("queue", "show", "bad\x1b[2Jid")
    fails(r, "'bad\\x1B[2Jid' is not a queue id")


def test_usage(inst):
    for args in (("queue",), ("queue", "list", ID_A), ("queue", "show"),
                 ("queue", "delete", ID_A, ID_B), ("queue", "frobnicate")):
        fails(inst.ctl(*args), "usage: petrelctl [--config FILE] queue list | show ID", 2)


def test_symbolic_links_not_followed(inst, queue):
    target = inst.dir / "outside"
    target.write_text(envelope(ID_A))
    os.utime(target, (LATER, LATER))
    queue.path("active", ID_A).symlink_to(target)
    queue.path("data", ID_A).write_bytes(MESSAGE)
    for command in ("show", "delete", "hold", "flush"):
        fails(inst.ctl("queue", command, ID_A), "a symbolic link, not followed")
    assert f"{ID_A}: unreadable (a symbolic link, not followed)" in \
        ok(inst.ctl("queue", "list")).splitlines()
    assert ok(inst.ctl("queue", "flush")) == "0 messages flushed\n"
    assert target.read_text() == envelope(ID_A) and target.stat().st_mtime == LATER
    assert queue.path("active", ID_A).is_symlink()
    # A FIFO is not opened (that would wait for a writer).
    os.mkfifo(queue.path("active", ID_B))
    fails(inst.ctl("queue", "show", ID_B, timeout=10), "not a regular file")


def test_waits_for_the_runner(inst, queue):
    """The runner holds an exclusive flock on the envelope while it works on
    an entry: petrelctl waits for it."""
    queue.add(ID_A)
    fd = os.open(queue.path("active", ID_A), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.monotonic()
        proc = subprocess.Popen([str(inst.env.petrelctl), "--config", str(inst.conf), "queue",
                                 "delete", ID_A], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        assert queue.path("active", ID_A).exists()
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=CMD_TIMEOUT)
    assert proc.returncode == 0 and not sanitizer_findings(err), out + err
    assert time.monotonic() - t0 >= 1.0
    assert not queue.path("active", ID_A).exists() and not queue.path("data", ID_A).exists()


def test_acts_on_the_envelope_the_runner_wrote(inst, queue):
    """After an attempt the runner replaces the envelope (tmp/, rename) and
    then lets go of its lock on the old file: petrelctl holds the new one."""
    queue.add(ID_A)
    fd = os.open(queue.path("active", ID_A), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = subprocess.Popen([str(inst.env.petrelctl), "--config", str(inst.conf), "queue",
                                 "hold", ID_A], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        new = envelope(ID_A, attempts=1)
        queue.path("tmp", ID_A).write_text(new)
        os.rename(queue.path("tmp", ID_A), queue.path("active", ID_A))
        time.sleep(0.3)
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=CMD_TIMEOUT)
    assert proc.returncode == 0 and not sanitizer_findings(err), out + err
    assert queue.path("hold", ID_A).read_text() == new


def test_queue_dir_setting(inst):
    """queue_dir of the processing module's conf.d file: relative to
    data_dir, or absolute."""
    spool = Queue(inst.dir / "data" / "spool")
    spool.add(ID_A)
    inst.write_confd("40-processing.conf",
                     service_conf("processing", settings={"queue_dir": "spool"}))
    assert ok(inst.ctl("queue", "list")).splitlines()[-1] == "1 message in the queue"
    elsewhere = Queue(inst.dir / "elsewhere")
    elsewhere.add(ID_B)
    elsewhere.add(ID_C)
    inst.write_confd("40-processing.conf",
                     service_conf("processing", settings={"queue_dir": str(elsewhere.root)}))
    assert ok(inst.ctl("queue", "list")).splitlines()[-1] == "2 messages in the queue"
    assert ok(inst.ctl("queue", "delete", ID_C)) == f"{ID_C} deleted\n"
    assert not elsewhere.path("active", ID_C).exists()
    # Not enabled: its settings do not count.
    inst.write_confd("40-processing.conf", service_conf(
        "processing", enabled=False, settings={"queue_dir": str(elsewhere.root)}))
    assert ok(inst.ctl("queue", "list")) == "queue is empty\n"
    # The daemon refuses '..'; so does petrelctl.
    inst.write_confd("40-processing.conf",
                     service_conf("processing", settings={"queue_dir": "../elsewhere"}))
    fails(inst.ctl("queue", "list"), "queue_dir must be a path without '..'")
