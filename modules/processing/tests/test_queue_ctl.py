"""petrelctl queue list|show|flush|delete|hold|release (the processing
module's admin commands) against queue files written by hand in the
envelope format of modules/processing/envelope.h: the listing and its
--json rows, the locking the queue runner also uses, and the refusal of
anything that is not a queue id or a regular file.

Every command test runs twice: offline (no daemon: petrelctl runs the
command itself) and online (petreld runs it, as its own user, the one
owning the queue). With the daemon running its runner works on entries
that are due, so the entries here are due only where a test makes them
so, and then have a recent arrival and a remote recipient: the runner's
attempt leaves them in the queue (waiting for outbound delivery), one
attempt more and due later."""

import fcntl
import json
import os
import subprocess
import time

import pytest

from harness import CMD_TIMEOUT, ctl_fails as fails, ctl_ok as ok, sanitizer_findings, wait_for

# Sorted: the listing is in id order.
ID_A = "0123456789ABCDEFGHIA"
ID_B = "0123456789ABCDEFGHIB"
ID_C = "0123456789ABCDEFGHIC"
MISSING = "0123456789ABCDEFGHIV"

ARRIVAL = 1714564800  # 2024-05-01T12:00:00Z
LATER = 2000000000    # 2033-05-18T03:33:20Z
RECENT = int(time.time())  # not expired: the runner keeps the entry
REMOTE = [("P", "R", 0, "dave@far.test", "", "", "")]  # waits for outbound delivery
RUNNER_WAIT = 30  # seconds an online test waits for the runner (ASan is slow)

MESSAGE = (b"Received: from client.example (client.example [192.0.2.1])\r\n"
           b"\tby mx.example.test (Petrel) with ESMTP id " + ID_A.encode() + b"\r\n"
           b"Subject: hello\x1b[2J there \xc3\xa9t\xc3\xa9\r\n"
           b"From: <alice@example.test>\r\n"
           b"\r\n"
           b"SECRET BODY\r\n")


def envelope(ident, sender="alice@example.test", rcpts=None, attempts=0, size=None,
             end=True, arrival=ARRIVAL, flags="0 0 0 0", extra=()):
    """Envelope text: rcpts are (state, route, notify, address, original,
    orcpt, reason[, next_hop, flags]) tuples; extra, more "key value"
    lines."""
    if rcpts is None:
        rcpts = [("P", "L", 0, "bob@example.test", "", "", "")]
    lines = ["petrel-queue 1", f"id {ident}", f"arrival {arrival}", f"next {LATER}",
             f"attempts {attempts}", f"size {len(MESSAGE) if size is None else size}",
             f"from {sender}", "helo client.example", "client 192.0.2.1", "protocol ESMTP",
             f"flags {flags}", *extra]
    for state, route, notify, *fields in rcpts:
        lines.append(f"rcpt {state} {route} {notify} " + "\t".join(fields))
    if end:
        lines.append("end")
    return "\n".join(lines) + "\n"


class Queue:
    """A queue directory as petreld lays it out, its files the daemon
    user's (online the daemon changes them as that user)."""

    def __init__(self, root, env):
        self.root = root
        self.owner = (env.run_uid, env.run_gid)
        for sub in ("", "tmp", "data", "active", "hold"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
            os.chown(root / sub, *self.owner)

    def path(self, sub, ident):
        return self.root / sub / ident

    def write(self, path, content):
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        os.chown(path, *self.owner)
        return path

    def add(self, ident, where="active", text=None, data=MESSAGE, mtime=LATER, **kw):
        if data is not None:
            self.write(self.path("data", ident), data)
        envelope_path = self.write(self.path(where, ident),
                                   text if text is not None else envelope(ident, **kw))
        os.utime(envelope_path, (mtime, mtime))
        return envelope_path

    def mtime(self, sub, ident):
        return self.path(sub, ident).stat().st_mtime

    def attempts(self, ident):
        """The attempts an active envelope counts (replaced by rename: never
        half written)."""
        for line in self.path("active", ident).read_text().splitlines():
            if line.startswith("attempts "):
                return int(line.split()[1])
        raise AssertionError(f"{ident}: no attempts line")


@pytest.fixture(params=["offline", "online"])
def inst(request, make_instance):
    """An instance with the modules processing needs (userdb_file and
    storage) and no listeners; online, with petreld running."""
    inst = make_instance(stock_modules=True)
    for name in ("smtp_in", "auth"):
        inst.remove_confd(next(inst.confd.glob(f"*-{name}.conf")).name)
    inst.online = request.param == "online"
    if inst.online:
        inst.start()
    return inst


@pytest.fixture
def queue(inst):
    return Queue(inst.dir / "data" / "queue", inst.env)


def made_due(inst, queue, ident, attempts_before=0):
    """The entry was made due: offline its time is now; online the runner,
    woken, works on it (it is not expired and waits for outbound delivery,
    so it stays with one attempt more)."""
    if not inst.online:
        assert is_now(queue.mtime("active", ident))
        return
    wait_for(lambda: queue.attempts(ident) > attempts_before, timeout=RUNNER_WAIT,
             what=f"an attempt at {ident}")


def ctl_json(inst, *args):
    """The command's --json output, one object a line."""
    out = ok(inst.ctl("--json", *args))
    return [json.loads(line) for line in out.splitlines()]


def is_now(t):
    return abs(t - time.time()) < 5


def test_empty_queue(inst):
    if not inst.online:
        # No queue directory yet (the daemon makes it when it starts).
        assert not (inst.dir / "data" / "queue").exists()
        assert ok(inst.ctl("queue", "list")) == "queue is empty\n"
    Queue(inst.dir / "data" / "queue", inst.env)
    assert ok(inst.ctl("queue", "list")) == "queue is empty\n"
    assert ok(inst.ctl("queue", "flush")) == "0 messages flushed\n"


def test_list(inst, queue):
    queue.add(ID_A, attempts=1, size=1234, rcpts=[
        ("T", "L", 0, "bob@example.test", "team@example.test", "", "452 4.2.2 mailbox full"),
        ("D", "L", 0, "carol@example.test", "team@example.test", "", ""),
        ("P", "R", 6, "dave@far.test", "", "rfc822;dave@far.test", ""),
        ("T", "R", 0, "eve@far.test", "", "", "451 4.7.1 later", "mx1.far.test[127.0.0.2]:25",
         "f"),
    ])
    queue.add(ID_B, where="hold", sender="", size=99, rcpts=[
        ("F", "R", 0, "x@far.test", "", "", "550 5.1.1 no such user"),
        ("B", "R", 0, "y@far.test", "", "", "550 5.7.1 refused"),
        ("S", "L", 2, "z@example.test", "", "", ""),
        ("E", "-", 0, "w@example.test", "", "", ""),
    ])
    queue.add(ID_C, text=envelope(ID_C, end=False))  # torn
    queue.write(queue.path("active", "README"), "not an entry\n")
    lines = ok(inst.ctl("queue", "list")).splitlines()
    a = lines.index(f"{ID_A}  1234  2024-05-01T12:00:00Z  <alice@example.test>")
    assert lines[a + 1:a + 6] == [
        "  next attempt 2033-05-18T03:33:20Z, 1 attempt so far",
        "  <bob@example.test> (expanded from <team@example.test>)  deferred: "
        "452 4.2.2 mailbox full",
        "  <carol@example.test> (expanded from <team@example.test>)  delivered",
        "  <dave@far.test>  pending",
        "  <eve@far.test>  deferred via mx1.far.test[127.0.0.2]:25: 451 4.7.1 later",
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

    # Due now: the modification time is the schedule. Locked as the runner
    # locks an entry, so a running one leaves it alone (list does not lock).
    fd = os.open(queue.path("active", ID_A), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.utime(queue.path("active", ID_A), (ARRIVAL, ARRIVAL))
        lines = ok(inst.ctl("queue", "list")).splitlines()
        os.utime(queue.path("active", ID_A), (LATER, LATER))  # not due again
    finally:
        os.close(fd)
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
                 "  next hop: far.test",
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
    queue.write(queue.path("active", ID_C), envelope(ID_C, end=False))
    fails(inst.ctl("queue", "show", ID_C), f"active/{ID_C}: unreadable (malformed queue "
                                           "envelope)")
    queue.path("data", ID_B).unlink()
    r = inst.ctl("queue", "show", ID_B)
    fails(r, f"data/{ID_B}: No such file or directory")
    assert f"id:         {ID_B}" in r.stdout


def test_hold_and_release(inst, queue):
    text = envelope(ID_A, arrival=RECENT, rcpts=REMOTE)
    queue.add(ID_A, text=text)
    assert ok(inst.ctl("queue", "hold", ID_A)) == f"{ID_A} held\n"
    assert not queue.path("active", ID_A).exists()
    assert queue.path("hold", ID_A).read_text() == text
    assert queue.path("data", ID_A).read_bytes() == MESSAGE
    arrival = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(RECENT))
    assert f"{ID_A}  {len(MESSAGE)}  {arrival}  HELD  <alice@example.test>" in \
        ok(inst.ctl("queue", "list")).splitlines()
    fails(inst.ctl("queue", "hold", ID_A), f"{ID_A} is already held")
    fails(inst.ctl("queue", "flush", ID_A), f"{ID_A} is held")
    assert queue.mtime("hold", ID_A) == LATER  # a held entry keeps its time until released

    assert ok(inst.ctl("queue", "release", ID_A)) == f"{ID_A} released\n"
    assert not queue.path("hold", ID_A).exists()
    if not inst.online:  # online the runner may have rewritten it already
        assert queue.path("active", ID_A).read_text() == text
    made_due(inst, queue, ID_A)  # due at once
    fails(inst.ctl("queue", "release", ID_A), f"{ID_A} is not held")

    # Never over an entry of the same id in the other directory.
    text = queue.path("active", ID_A).read_text()
    queue.add(ID_A, where="hold", text=envelope(ID_A, sender="other@example.test"))
    fails(inst.ctl("queue", "release", ID_A), f"{ID_A} is both in hold/ and in active/")
    assert queue.path("active", ID_A).read_text() == text


def test_flush(inst, queue):
    queue.add(ID_A, arrival=RECENT, rcpts=REMOTE)
    queue.add(ID_B, arrival=RECENT, rcpts=REMOTE)
    queue.add(ID_C, where="hold")
    assert ok(inst.ctl("queue", "flush")) == "2 messages flushed\n"
    made_due(inst, queue, ID_A)
    made_due(inst, queue, ID_B)
    assert queue.mtime("hold", ID_C) == LATER
    attempts = queue.attempts(ID_B)
    os.utime(queue.path("active", ID_B), (LATER, LATER))
    assert ok(inst.ctl("queue", "flush", ID_B)) == "1 message flushed\n"
    made_due(inst, queue, ID_B, attempts)
    if not inst.online:
        # The envelope is not rewritten: only its time changes.
        assert queue.path("active", ID_B).read_text() == envelope(ID_B, arrival=RECENT,
                                                                  rcpts=REMOTE)


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
    queue.write(canary, envelope(ID_A))
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
    queue.write(target, envelope(ID_A))
    os.utime(target, (LATER, LATER))
    queue.path("active", ID_A).symlink_to(target)
    queue.write(queue.path("data", ID_A), MESSAGE)
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
        queue.write(queue.path("tmp", ID_A), new)
        # Not due, as after an attempt: a running runner leaves it alone.
        os.utime(queue.path("tmp", ID_A), (LATER, LATER))
        os.rename(queue.path("tmp", ID_A), queue.path("active", ID_A))
        time.sleep(0.3)
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=CMD_TIMEOUT)
    assert proc.returncode == 0 and not sanitizer_findings(err), out + err
    assert queue.path("hold", ID_A).read_text() == new


def set_queue_dir(inst, queue_dir):
    """A new queue_dir; it takes a restart (FIXED), so a running daemon is
    restarted."""
    if inst.online:
        inst.stop()
    inst.set_module_settings("processing", queue_dir=queue_dir)
    if inst.online:
        inst.start()


def test_queue_dir_setting(inst):
    """queue_dir of the processing module's conf.d file: relative to
    data_dir, or absolute."""
    spool = Queue(inst.dir / "data" / "spool", inst.env)
    spool.add(ID_A)
    set_queue_dir(inst, "spool")
    assert ok(inst.ctl("queue", "list")).splitlines()[-1] == "1 message in the queue"
    elsewhere = Queue(inst.dir / "elsewhere", inst.env)
    elsewhere.add(ID_B)
    elsewhere.add(ID_C)
    set_queue_dir(inst, str(elsewhere.root))
    assert ok(inst.ctl("queue", "list")).splitlines()[-1] == "2 messages in the queue"
    assert ok(inst.ctl("queue", "delete", ID_C)) == f"{ID_C} deleted\n"
    assert not elsewhere.path("active", ID_C).exists()
    # The daemon refuses '..' (it does not start); so does petrelctl.
    if inst.online:
        inst.stop()
    inst.set_module_settings("processing", queue_dir="../elsewhere")
    fails(inst.ctl("queue", "list"), "queue_dir must be a path without '..'")
    # Not enabled: no queue commands (the module is not loaded).
    path = next(inst.confd.glob("*-processing.conf"))
    path.write_text(path.read_text().replace("enabled = true;", "enabled = false;"))
    # (Found in server.module_path, petrelctl would name the module; these
    # instances load it by its file name from the install, so it is only
    # an unknown command here.)
    r = inst.ctl("queue", "list")
    assert r.returncode in (1, 2) and r.stdout == "", r.stdout + r.stderr
    assert "petrelctl: 'queue' is a command of the module processing, which is not enabled" \
        in r.stderr or "petrelctl: unknown command 'queue'" in r.stderr, r.stderr
    assert not sanitizer_findings(r.stderr), r.stderr


def test_runs_in_the_daemon_when_online(inst, queue):
    """Online petreld runs the command, as its own user; offline petrelctl
    does, as the caller: a data file only the caller may read tells."""
    queue.add(ID_A)
    os.chown(queue.path("data", ID_A), os.geteuid(), os.getegid())
    os.chmod(queue.path("data", ID_A), 0o600)
    r = inst.ctl("queue", "show", ID_A)
    if inst.online and inst.env.run_uid != os.geteuid():
        fails(r, f"data/{ID_A}: Permission denied")
    else:
        assert "Subject: hello" in ok(r)


# --- --json -------------------------------------------------------------------

LIST_KEYS = {"id", "queue", "size", "arrival", "sender", "attempts", "next_attempt",
             "recipient", "original", "state", "reason", "next_hop", "error"}
SHOW_KEYS = LIST_KEYS | {"helo", "client", "protocol", "auth", "tls", "cipher", "envid", "body",
                         "ret", "submission", "smtputf8", "requiretls", "route", "notify", "orcpt",
                         "header"}


def test_list_json(inst, queue):
    """One object per message and recipient; an unreadable entry is one
    object with its error and no recipient."""
    queue.add(ID_A, attempts=1, size=1234, sender="alice\x1b[2J@example.test", rcpts=[
        ("T", "L", 0, "bob@example.test", "team@example.test", "", "452 4.2.2 mailbox full"),
        ("P", "R", 6, "dave@far.test", "", "rfc822;dave@far.test", ""),
    ])
    queue.add(ID_B, where="hold", sender="", size=99, rcpts=[
        ("F", "R", 0, "x@far.test", "", "", "550 5.1.1 no such user"),
        ("S", "L", 2, "z@example.test", "", "", ""),
        ("E", "-", 0, "w@example.test", "", "", ""),
        ("B", "R", 0, "y@far.test", "", "", "550 5.7.1 refused"),
        ("D", "L", 0, "v@example.test", "", "", ""),
    ])
    queue.add(ID_C, text=envelope(ID_C, end=False))  # torn
    r = inst.ctl("--json", "queue", "list")
    out = ok(r)
    assert "\x1b" not in out and "messages in the queue" not in out
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(set(row) == LIST_KEYS for row in rows), rows
    assert [(row["id"], row["recipient"]) for row in rows] == [
        (ID_A, "bob@example.test"), (ID_A, "dave@far.test"),
        (ID_B, "x@far.test"), (ID_B, "z@example.test"), (ID_B, "w@example.test"),
        (ID_B, "y@far.test"), (ID_B, "v@example.test"), (ID_C, None)]
    common_a = {"id": ID_A, "queue": "active", "size": 1234, "arrival": "2024-05-01T12:00:00Z",
                "sender": "alice\x1b[2J@example.test", "attempts": 1,
                "next_attempt": "2033-05-18T03:33:20Z", "error": None}
    assert rows[0] == dict(common_a, recipient="bob@example.test", original="team@example.test",
                           state="deferred", reason="452 4.2.2 mailbox full", next_hop=None)
    # Remote, not tried yet: its domain is where it goes next.
    assert rows[1] == dict(common_a, recipient="dave@far.test", original=None, state="pending",
                           reason=None, next_hop="far.test")
    common_b = {"id": ID_B, "queue": "hold", "size": 99, "arrival": "2024-05-01T12:00:00Z",
                "sender": "", "attempts": 0, "next_attempt": None, "original": None,
                "error": None}
    assert rows[2] == dict(common_b, recipient="x@far.test", state="failed",
                           reason="550 5.1.1 no such user", next_hop="far.test")
    assert [row["state"] for row in rows[3:7]] == [
        "delivered (report owed)", "to expand", "bounced", "delivered"]
    assert all(row.items() >= common_b.items() for row in rows[3:7])
    assert rows[7] == dict({k: None for k in LIST_KEYS}, id=ID_C, queue="active",
                           error="malformed queue envelope")
    # An empty queue: no rows.
    for ident, where in ((ID_A, "active"), (ID_B, "hold"), (ID_C, "active")):
        queue.path(where, ident).unlink()
    assert ok(inst.ctl("--json", "queue", "list")) == ""


def test_show_json(inst, queue):
    """One object per recipient with the envelope's fields and the header."""
    queue.add(ID_A, attempts=3, flags="1 1 1 2 0 1", extra=(
        "auth alice@example.test", "tls TLS_AES_256_GCM_SHA384", "tlsversion TLSv1.3",
        "envid env\x1b1"), rcpts=[
        ("T", "R", 6, "bob@far.test", "team@example.test", "rfc822;team@example.test",
         "451 4.4.1 no answer"),
        ("P", "L", 0, "carol@example.test", "", "", ""),
    ])
    r = inst.ctl("--json", "queue", "show", ID_A)
    out = ok(r)
    assert "\x1b" not in out and "header:" not in out
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and all(set(row) == SHOW_KEYS for row in rows), rows
    header = ("Received: from client.example (client.example [192.0.2.1])\n"
              f"\tby mx.example.test (Petrel) with ESMTP id {ID_A}\n"
              "Subject: hello\x1b[2J there \u00e9t\u00e9\n"
              "From: <alice@example.test>\n")
    envelope_fields = {
        "id": ID_A, "queue": "active", "size": len(MESSAGE), "arrival": "2024-05-01T12:00:00Z",
        "sender": "alice@example.test", "attempts": 3, "next_attempt": "2033-05-18T03:33:20Z",
        "error": None, "helo": "client.example", "client": "192.0.2.1", "protocol": "ESMTP",
        "auth": "alice@example.test", "tls": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384",
        "envid": "env\x1b1", "body": "8BITMIME", "ret": "HDRS", "submission": True,
        "smtputf8": True, "requiretls": True, "header": header}
    assert rows[0] == dict(envelope_fields, recipient="bob@far.test",
                           original="team@example.test", state="deferred",
                           reason="451 4.4.1 no answer", route="remote",
                           notify=["SUCCESS", "FAILURE"], orcpt="rfc822;team@example.test",
                           next_hop="far.test")
    assert rows[1] == dict(envelope_fields, recipient="carol@example.test", original=None,
                           state="pending", reason=None, route="local", notify=[], orcpt=None,
                           next_hop=None)

    # Held, the defaults, and a header cut at 64 KiB as the text is.
    long_header = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"x" * 60) for i in range(2000))
    queue.add(ID_B, where="hold", data=long_header)
    [row] = ctl_json(inst, "queue", "show", ID_B)
    assert row.items() >= {"queue": "hold", "next_attempt": None, "auth": None, "tls": None,
                           "cipher": None, "envid": None, "body": "7BIT", "ret": "default",
                           "submission": False, "smtputf8": False, "requiretls": False,
                           "route": "local",
                           "notify": [], "orcpt": None, "original": None}.items(), row
    lines = row["header"].split("\n")
    assert lines[-1] == "" and all(len(line) == 76 for line in lines[:-1])
    assert 60 * 1024 < len(row["header"]) <= 64 * 1024

    # Without its data file: the envelope, no header, and the error.
    queue.path("data", ID_B).unlink()
    r = inst.ctl("--json", "queue", "show", ID_B)
    fails(r, f"data/{ID_B}: No such file or directory")
    [row] = [json.loads(line) for line in r.stdout.splitlines()]
    assert row["id"] == ID_B and row["header"] is None


def test_actions_print_nothing_in_json(inst, queue):
    queue.add(ID_A, arrival=RECENT, rcpts=REMOTE)
    queue.add(ID_B, arrival=RECENT, rcpts=REMOTE)
    for args in (("hold", ID_A), ("release", ID_A), ("hold", ID_A), ("flush", ID_B),
                 ("delete", ID_B), ("delete", ID_A)):
        assert ok(inst.ctl("--json", "queue", *args)) == ""
    assert not queue.path("hold", ID_A).exists() and not queue.path("active", ID_B).exists()


# --- online ---------------------------------------------------------------------


def test_online_flush_delivers(make_instance, env):
    """With petreld running, a message deferred far into the future is
    delivered soon after `queue flush` (the command wakes the runner; the
    wait is generous, not a measure of how soon)."""
    inst = make_instance(stock_modules=True)
    for name in ("smtp_in", "auth"):
        inst.remove_confd(next(inst.confd.glob(f"*-{name}.conf")).name)
    inst.start()
    queue = Queue(inst.dir / "data" / "queue", env)
    # demo@example.test is the account init made.
    queue.add(ID_A, arrival=int(time.time()), rcpts=[
        ("T", "L", 0, "demo@example.test", "", "", "452 4.2.2 mailbox full")])
    inbox = inst.dir / "data" / "mail" / "example.test" / "demo" / "new"
    time.sleep(1.5)  # a few runner ticks: the entry is not due, nothing happens
    assert queue.path("active", ID_A).exists()
    assert not inbox.exists() or not any(inbox.iterdir())
    assert ok(inst.ctl("queue", "flush")) == "1 message flushed\n"
    wait_for(lambda: not queue.path("active", ID_A).exists(), timeout=RUNNER_WAIT,
             what="the delivery of the flushed message")
    [stored] = list(inbox.iterdir())
    assert b"SECRET BODY" in stored.read_bytes()
    assert not queue.path("data", ID_A).exists()
    inst.wait_log(rf"processing: {ID_A}: to=<demo@example\.test> delivered")
