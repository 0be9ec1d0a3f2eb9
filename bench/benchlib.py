"""What the protocol benchmarks share (pop3_bench.py, imap_bench.py): the
baseline peer of ../shared/bench, a Petrel instance written by `petrelctl
init`, mailboxes filled with the same files for both, and server CPU and
memory read from /proc. Loopback only."""

import json
import os
import pathlib
import pwd
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"  # loopback only, on purpose
TOP = pathlib.Path(__file__).resolve().parents[1]
SHARED = TOP.parent / "shared" / "bench"
DOMAIN = "bench.test"
DOVECOT_PID = pathlib.Path("/tmp/peer/dovecot/run/master.pid")


def raise_nofile(most=65536):
    """The descriptor limit raised to most (or the hard limit), for
    benchmarks that hold thousands of connections."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = most if hard == resource.RLIM_INFINITY else min(most, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def listening(port, greeting):
    """Whether a server on port answers with a line starting with greeting."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(100).startswith(greeting)
    except OSError:
        return False


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            sys.exit(f"bench: {what} within {timeout}s")
        time.sleep(0.2)


def message(user, i, size):
    head = (f"From: <sender@client.test>\r\nTo: <{user}@{DOMAIN}>\r\nSubject: bench {i}\r\n"
            f"Message-ID: <{user}.{i}@client.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n")
    line = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:-_+=()[]{}!?\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)] + "\r\n"
    return (head + body).encode()


def fill(maildir, user, msgs, size, uid, gid):
    """msgs files into maildir/new, as a delivery agent leaves them."""
    fill_blobs(maildir, (message(user, i, size) for i in range(msgs)), uid, gid)


def fill_blobs(maildir, blobs, uid, gid):
    """Each message (bytes) of blobs as a file in maildir/new."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
        os.chown(maildir / sub, uid, gid)
    os.chown(maildir, uid, gid)
    t = int(time.time())
    for i, blob in enumerate(blobs):
        f = maildir / "new" / f"{t}.M{i:07d}P{os.getpid()}.bench"
        f.write_bytes(blob)
        os.chown(f, uid, gid)


def start_dovecot(users, port, greeting):
    """The baseline peer (Postfix and Dovecot), started when port does not
    answer, with its mailboxes emptied. Returns Dovecot's master pid."""
    if not listening(port, greeting):
        subprocess.run([str(SHARED / "peer" / "setup_peer.sh"), str(users)], check=True)
        wait(lambda: listening(port, greeting), 30, f"dovecot did not answer on {port}")
    subprocess.run([str(SHARED / "peer" / "reset_mail.sh")], check=True)
    return int(DOVECOT_PID.read_text())


def dovecot_fill(users, msgs, size):
    for i in range(1, users + 1):
        fill(pathlib.Path(f"/tmp/peer/mail/{DOMAIN}/user{i}"), f"user{i}", msgs, size, 5000, 5000)


def run_user():
    return "petrel" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def edit_conf(inst, name, old, new):
    """Replace old by new in conf.d/*-NAME.conf; the text must be there."""
    f = next((inst / "conf.d").glob(f"*-{name}.conf"))
    text = f.read_text()
    if old not in text:
        sys.exit(f"bench: {f} has no {old!r}")
    f.write_text(text.replace(old, new))


def start_petrel(prefix, inst, users, port_base, modules, port, greeting, edits=()):
    """A fresh instance from `petrelctl init` with only the given modules
    (None: all it enables),
    plaintext logins allowed (the load clients have no TLS), every mailbox
    kept open between its sessions (as each Dovecot session's indexes stay
    in the page cache), the users user1..N with password "pw" as
    SHA-512-crypt (Petrel refuses Dovecot's {PLAIN}; its default, yescrypt,
    costs tens of ms a login), and edits (conf name, old, new) applied."""
    ctl = prefix / "bin" / "petrelctl"
    if inst.exists():
        shutil.rmtree(inst)
    subprocess.run([str(ctl), "init", str(inst), "--domain", DOMAIN, "--port-base",
                    str(port_base)], check=True, capture_output=True, text=True)
    for f in (inst / "conf.d").glob("*.conf"):
        if modules and not re.search(rf'module = "({"|".join(modules)})";', f.read_text()):
            f.unlink()
    edit_conf(inst, "storage", "cache_accounts = 256;", f"cache_accounts = {max(256, users)};")
    edit_conf(inst, "auth", "plaintext_without_tls = false;", "plaintext_without_tls = true;")
    for name, old, new in edits:
        edit_conf(inst, name, old, new)
    import crypt  # deprecated in 3.11, still there; only to write the users file
    lines = [f"domain {DOMAIN}"]
    for i in range(1, users + 1):
        lines.append(f"account user{i}@{DOMAIN} " + crypt.crypt("pw", f"$6${os.urandom(6).hex()}$"))
    (inst / "data" / "users").write_text("\n".join(lines) + "\n")
    return run_petreld(prefix, inst, port, greeting)


def run_petreld(prefix, inst, port, greeting):
    """petreld on inst's configuration, in the foreground, once it answers."""
    proc = subprocess.Popen([str(prefix / "sbin" / "petreld"), "--config",
                             str(inst / "petrel.conf"), "--foreground"],
                            stdout=open(inst / "petreld.log", "ab"), stderr=subprocess.STDOUT)
    wait(lambda: listening(port, greeting), 30, "petreld did not answer")
    return proc


def petrel_fill(inst, user_index, msgs, size):
    """Fill one Petrel mailbox (made by a login before, the store's layout)."""
    pw = pwd.getpwnam(run_user())
    fill(inst / "data" / "mail" / DOMAIN / f"user{user_index}", f"user{user_index}", msgs, size,
         pw.pw_uid, pw.pw_gid)


def tree_pids(pid):
    """pid and its descendants."""
    children = {}
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(f[1]), []).append(int(d.name))
            except (OSError, IndexError):
                pass
    out, pending = [], [pid]
    while pending:
        p = pending.pop()
        out.append(p)
        pending += children.get(p, [])
    return out


def tree_cpu(pid):
    """Seconds of CPU of pid and its descendants, and of the children they
    have reaped."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in tree_pids(pid):
        try:
            f = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
    return total


def rss_kib(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pids_named(comm):
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == comm:
                    out.append(int(d.name))
            except OSError:
                pass
    return out


class Sampler(threading.Thread):
    """Samples of fn() every 0.2 s while a run goes (None is skipped)."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.samples, self.stop = fn, [], threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            v = self.fn()
            if v is not None:
                self.samples.append(v)


def run_load(script, args, label, timeout):
    """Run a ../shared/bench load script; its RESULT line as a dict."""
    r = subprocess.run([sys.executable, str(SHARED / script), "--host", HOST, *args,
                        "--label", label], capture_output=True, text=True, timeout=timeout)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        sys.exit(f"bench: {label} failed:\n{r.stdout}\n{r.stderr[-3000:]}")
    return json.loads(m.group(1))
