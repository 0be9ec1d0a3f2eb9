#!/usr/bin/env python3
"""POP3 retrieval (issue 13): Petrel's pop3 module against Dovecot, on this
machine, over loopback only, the same messages, the same client, in one run.

    python3 bench/pop3_bench.py --prefix _build/gcc/inst [--out DIR]

as root, from the project root. Dovecot is the baseline instance of
../shared/bench/peer (started with setup_peer.sh when 127.0.0.1:1110 does
not answer; POP3 without TLS, passwords in a passwd-file as {PLAIN}).
Petrel is an instance `petrelctl init` writes (domain bench.test), with
plaintext logins allowed (the load client has no TLS), the store's
cache_accounts raised to the number of users, and the same users
with the password "pw" as SHA-512-crypt at its default 5000 rounds (about
2 ms a login; Petrel's hash check refuses a "rounds=" field): Petrel
refuses {PLAIN}, and its default, yescrypt, costs tens of ms a login
where Dovecot's {PLAIN} costs nothing.

The same USERS x MSGS messages of SIZE bytes are written as files into
both stores' Maildirs (new/, owned by each server's user); a first pass of
the load client over every user lets both servers index them, untimed.
Then ../shared/bench/pop3_load.py runs, for each client count, once per
server and REPEATS times: connect, USER/PASS, STAT, LIST, RETR every
message, QUIT (nothing deleted). Server CPU is read from /proc (user +
system of every process of the server's tree, with the children it has
reaped: Dovecot forks pop3 and pop3-login processes that exit); RSS per
session is sampled during the runs: Petrel's growth over its idle RSS per
concurrent session, Dovecot's RSS of its pop3 processes (each is one
session). Results: a JSON line per run and a Markdown table on stdout.
"""

import argparse
import json
import os
import pathlib
import pwd
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"  # loopback only, on purpose
TOP = pathlib.Path(__file__).resolve().parents[1]
SHARED = TOP.parent / "shared" / "bench"
DOMAIN = "bench.test"


def listening(port):
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(100).startswith(b"+OK")
    except OSError:
        return False


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            sys.exit(f"pop3_bench: {what} within {timeout}s")
        time.sleep(0.2)


def message(user, i, size):
    head = (f"From: <sender@client.test>\r\nTo: <{user}@{DOMAIN}>\r\nSubject: bench {i}\r\n"
            f"Message-ID: <{user}.{i}@client.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n")
    line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:-_+=()[]{}!?\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)] + "\r\n"
    return (head + body).encode()


def fill(maildir, user, msgs, size, uid, gid):
    """msgs files into maildir/new, as a delivery agent leaves them."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
        os.chown(maildir / sub, uid, gid)
    os.chown(maildir, uid, gid)
    t = int(time.time())
    for i in range(msgs):
        f = maildir / "new" / f"{t}.M{i:06d}P{os.getpid()}.bench"
        f.write_bytes(message(user, i, size))
        os.chown(f, uid, gid)


def tree_cpu(pid):
    """Seconds of CPU of pid and its descendants, and of the children they
    have reaped."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    children = {}
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(f[1]), []).append(int(d.name))
            except (OSError, IndexError):
                pass
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            f = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
        pending += children.get(p, [])
    return total


def rss_kib(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def dovecot_pop3_pids():
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "pop3":
                    out.append(int(d.name))
            except OSError:
                pass
    return out


class Sampler(threading.Thread):
    """RSS samples every 0.2 s while a run goes."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.samples, self.stop = fn, [], threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            v = self.fn()
            if v is not None:
                self.samples.append(v)


def load(port, users, conc, label, max_seconds):
    r = subprocess.run([sys.executable, str(SHARED / "pop3_load.py"), "--host", HOST, "--port",
                        str(port), "--users", str(users), "--login-domain", DOMAIN,
                        "--password", "pw", "-c", str(conc), "--max-seconds", str(max_seconds),
                        "--label", label], capture_output=True, text=True,
                       timeout=max_seconds + 300)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        sys.exit(f"pop3_bench: {label} failed:\n{r.stdout}\n{r.stderr[-3000:]}")
    return json.loads(m.group(1))


def start_petrel(prefix, inst, users, port_base):
    ctl = prefix / "bin" / "petrelctl"
    if inst.exists():
        shutil.rmtree(inst)
    subprocess.run([str(ctl), "init", str(inst), "--domain", DOMAIN, "--port-base",
                    str(port_base)], check=True, capture_output=True, text=True)
    # Only what the benchmark needs: accounts, logins, the store, POP3.
    for f in (inst / "conf.d").glob("*.conf"):
        if not re.search(r'module = "(userdb_file|auth|storage|pop3)";', f.read_text()):
            f.unlink()
    # Every mailbox stays open between its sessions, as each Dovecot
    # session's indexes stay in the page cache (the store keeps 256 by
    # default; the run visits USERS of them in turn).
    storage = next((inst / "conf.d").glob("*-storage.conf"))
    storage.write_text(storage.read_text().replace("cache_accounts = 256;",
                                                   f"cache_accounts = {max(256, users)};"))
    auth = next((inst / "conf.d").glob("*-auth.conf"))
    auth.write_text(auth.read_text().replace("plaintext_without_tls = false;",
                                             "plaintext_without_tls = true;"))
    import crypt  # deprecated in 3.11, still there; only to write the users file
    lines = [f"domain {DOMAIN}"]
    for i in range(1, users + 1):
        lines.append(f"account user{i}@{DOMAIN} "
                     + crypt.crypt("pw", f"$6${os.urandom(6).hex()}$"))
    users_file = inst / "data" / "users"
    users_file.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([str(prefix / "sbin" / "petreld"), "--config",
                             str(inst / "petrel.conf"), "--foreground"],
                            stdout=open(inst / "petreld.log", "ab"), stderr=subprocess.STDOUT)
    wait(lambda: listening(port_base + 110), 30, "petreld did not answer")
    return proc


def petrel_fill(inst, port, users, msgs, size, run_user):
    """Each mailbox is made by a login (the store's layout), then filled."""
    pw = pwd.getpwnam(run_user)
    for i in range(1, users + 1):
        with socket.create_connection((HOST, port), timeout=30) as s:
            f = s.makefile("rwb")
            f.readline()
            for cmd in (f"USER user{i}@{DOMAIN}", "PASS pw", "QUIT"):
                f.write(cmd.encode() + b"\r\n")
                f.flush()
                assert f.readline().startswith(b"+OK")
        fill(inst / "data" / "mail" / DOMAIN / f"user{i}", f"user{i}", msgs, size,
             pw.pw_uid, pw.pw_gid)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--out", default="_build/bench-pop3")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--msgs", type=int, default=20, help="messages per user")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--concurrency", default="1,20")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--port-base", type=int, default=34000)
    ap.add_argument("--max-seconds", type=float, default=300)
    a = ap.parse_args()
    prefix = pathlib.Path(a.prefix).resolve()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    if not listening(1110):
        subprocess.run([str(SHARED / "peer" / "setup_peer.sh"), str(a.users)], check=True)
        wait(lambda: listening(1110), 30, "dovecot did not answer on 1110")
    dovecot_pid = int(pathlib.Path("/tmp/peer/dovecot/run/master.pid").read_text())
    subprocess.run([str(SHARED / "peer" / "reset_mail.sh")], check=True)
    for i in range(1, a.users + 1):
        fill(pathlib.Path(f"/tmp/peer/mail/{DOMAIN}/user{i}"), f"user{i}", a.msgs, a.size,
             5000, 5000)

    inst = out / "petrel"
    port = a.port_base + 110
    run_user = "petrel" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    proc = start_petrel(prefix, inst, a.users, a.port_base)
    try:
        petrel_fill(inst, port, a.users, a.msgs, a.size, run_user)
        sides = {"dovecot": (1110, dovecot_pid), "petrel": (port, proc.pid)}
        for name, (p, _) in sides.items():  # both index every mailbox, untimed
            load(p, a.users, 4, f"{name}-warmup", a.max_seconds)
        idle = rss_kib(proc.pid)
        rows = []
        for conc in [int(x) for x in a.concurrency.split(",")]:
            for rep in range(a.repeats):
                for name, (p, pid) in sides.items():
                    if name == "petrel":
                        sampler = Sampler(lambda: (rss_kib(pid) - idle) / conc)
                    else:
                        sampler = Sampler(lambda: statistics.median(
                            [rss_kib(x) for x in dovecot_pop3_pids()] or [0]) or None)
                    cpu0 = tree_cpu(pid)
                    sampler.start()
                    r = load(p, a.users, conc, f"{name}-c{conc}", a.max_seconds)
                    sampler.stop.set()
                    sampler.join()
                    r["server"] = name
                    r["server_cpu_s"] = round(tree_cpu(pid) - cpu0, 2)
                    r["server_cpu_ms_per_1000"] = round(r["server_cpu_s"] * 1e6 /
                                                        max(1, r["messages"]), 1)
                    r["rss_kib_per_session"] = round(statistics.median(sampler.samples), 1) \
                        if sampler.samples else None
                    rows.append(r)
                    with open(out / "results.jsonl", "a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(f"{name} c={conc}: {r['msgs_per_s']} msg/s, {r['MB_per_s']} MB/s, "
                          f"server CPU {r['server_cpu_ms_per_1000']} ms/1000 RETR, "
                          f"RSS/session {r['rss_kib_per_session']} KiB, errors {r['errors']}",
                          flush=True)
        print("\n| server | clients | retrievals/s | MB/s | server CPU per 1,000 RETR | "
              "RSS per session |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['server']} | {r['concurrency']} | {r['msgs_per_s']} | {r['MB_per_s']} | "
                  f"{r['server_cpu_ms_per_1000']} ms | {r['rss_kib_per_session']} KiB |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
