"""The crash test of issue 4: SMTP load, kill -9 of petreld in the middle,
restart, then every message that got 250 is in a mailbox (or still in the
queue) and no message is in a mailbox twice. Run with direct delivery (the
default: local mail synced into the mailbox before 250) and through the
queue (synced queue files before 250, delivered by the runner, which must
not deliver twice what it had delivered just before the crash)."""

import email
import pathlib
import re
import signal
import smtplib
import threading
import time

import pytest

from harness import ctl_input, free_port, listener, cfg_value

PASSWORD = "crash-test-password\n"
USERS = 4
THREADS = 6
KILL_AFTER = 600      # acknowledged messages before the kill
LOAD_TIMEOUT = 60.0   # seconds for the load to reach KILL_AFTER
DRAIN_TIMEOUT = 60.0  # seconds for the queue to empty after the restart


def smtp_instance(make_instance, name, **processing):
    inst = make_instance(name, stock_modules=True)
    port = free_port()
    path = next(inst.confd.glob("*-smtp_in.conf"))
    text = path.read_text()
    start = text.index("listeners = (")
    end = text.index(");", start) + 2
    path.write_text(text[:start] + "listeners = " +
                    cfg_value([listener(port, protocol="smtp", tls="none")]) + ";" + text[end:])
    inst.set_module_settings("processing", **processing)
    for i in range(USERS):
        r = ctl_input(inst, "account", "add", f"u{i}@{inst.domain}", stdin=PASSWORD)
        assert r.returncode == 0, r.stdout + r.stderr
    return inst, port


def load(port, domain, acked, stop):
    """Threads sending until stop is set; acked gets each Message-ID whose
    DATA got 250."""
    lock = threading.Lock()

    def worker(w):
        n = 0
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                    while not stop.is_set():
                        mid = f"<crash-{w}-{n}@client.test>"
                        n += 1
                        msg = (f"From: <load@client.test>\r\nTo: <u{n % USERS}@{domain}>\r\n"
                               f"Message-ID: {mid}\r\nSubject: crash {w} {n}\r\n\r\n"
                               + "body line\r\n" * 200)
                        s.sendmail("load@client.test", [f"u{n % USERS}@{domain}"], msg)
                        with lock:
                            acked.append(mid)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the server is gone: try until told to stop

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(THREADS)]
    for t in threads:
        t.start()
    return threads


def mailbox_ids(inst):
    """Message-ID -> number of copies over every account's folders."""
    counts = {}
    root = inst.dir / "data" / "mail" / inst.domain
    for f in root.glob("*/**/*"):
        if f.is_file() and f.parent.name in ("new", "cur"):
            msg = email.message_from_bytes(f.read_bytes())
            mid = msg["Message-ID"]
            if mid:
                counts[mid] = counts.get(mid, 0) + 1
    return counts


def queued_ids(inst):
    ids = set()
    q = inst.dir / "data" / "queue"
    for env_file in list((q / "active").glob("*")) + list((q / "hold").glob("*")):
        data = q / "data" / env_file.name
        if data.exists():
            m = re.search(rb"^Message-ID: (<[^>]+>)", data.read_bytes(), re.M | re.I)
            if m:
                ids.add(m.group(1).decode())
    return ids


def crash_and_check(inst, port):
    inst.start()
    acked, stop = [], threading.Event()
    threads = load(port, inst.domain, acked, stop)
    deadline = time.monotonic() + LOAD_TIMEOUT
    while len(acked) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(acked) >= KILL_AFTER, f"only {len(acked)} messages acknowledged"
    inst.signal(signal.SIGKILL)
    inst.proc.wait(timeout=10)
    inst.proc = None
    stop.set()
    for t in threads:
        t.join(timeout=15)
    acked_at_kill = list(acked)

    inst.start()
    deadline = time.monotonic() + DRAIN_TIMEOUT
    active = inst.dir / "data" / "queue" / "active"
    while any(active.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    inst.stop()

    stored = mailbox_ids(inst)
    queued = queued_ids(inst)
    lost = [m for m in acked_at_kill if stored.get(m, 0) == 0 and m not in queued]
    doubled = {m: n for m, n in stored.items() if n > 1}
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    assert not doubled, f"messages stored twice: {list(doubled.items())[:5]}"
    assert len(set(acked_at_kill)) == len(acked_at_kill)
    print(f"acknowledged {len(acked_at_kill)}, stored {len(stored)}, queued {len(queued)}")
    return len(acked_at_kill), len(stored), len(queued)


def test_crash_direct_delivery(make_instance):
    inst, port = smtp_instance(make_instance, "crash-direct")
    acked, stored, queued = crash_and_check(inst, port)
    assert stored >= acked


def test_crash_through_the_queue(make_instance):
    inst, port = smtp_instance(make_instance, "crash-queue", direct_delivery=False,
                               retry_min="1s", runner_jobs=4)
    acked, stored, queued = crash_and_check(inst, port)
    assert queued == 0, "the runner left messages in the queue"
    assert stored >= acked
