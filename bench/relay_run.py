#!/usr/bin/python3
"""One measured run of bench/relay_bench.sh: outbound relaying through a
mail server, from the first injected message to the last one the sink got.

It starts Postfix's smtp-sink on SINK (the address every MX record of the
bench domains points at), reads its running counters (-c), then injects N
messages of SIZE payload bytes into the server on INJECT with smtp-source
(one message per connection, as smtp_bench.sh does): PROCS injecting
sessions at once, each working through its share of the DOMAINS domains
round-robin in chunks, so that all domains get mail from the start. The
run ends when the sink has counted N messages (or at --timeout).

Server CPU is read before the first message and after the last one:
from a cgroup v1 cpuacct directory (--cgroup: every process of the server
in it, exited children included) and, with --pid, from /proc/PID/stat
(utime + stime of that one process). The machine's busy share comes from
/proc/stat. Prints one human line and one `RESULT {json}` line.
"""

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def pid_cpu(pid):
    """utime + stime of one process, seconds (None when gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cgroup_cpu(path):
    """Seconds of CPU charged to a cgroup v1 cpuacct directory."""
    if not path:
        return None
    with open(os.path.join(path, "cpuacct.usage")) as f:
        return int(f.read()) / 1e9


class Sink:
    """smtp-sink with running counters on a pipe; `mesg` is the number of
    messages whose final "." it has answered."""

    def __init__(self, addr, target, log_path):
        cmd = [SMTP_SINK, "-c", "-4", "-t", "300"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]
        cmd += [addr, "4096"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(log_path, "ab"), bufsize=0)
        self.target = target
        self.mesg = 0
        self.sess = 0
        self.first_at = None
        self.done_at = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        buf = b""
        while True:
            # A second at a time, so a silent sink never holds the thread
            # past its process's end.
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if not ready:
                if self.proc.poll() is not None:
                    self.done.set()
                    return
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.done.set()
                return
            now = time.monotonic()
            buf += chunk
            *lines, buf = buf.replace(b"\n", b"\r").split(b"\r")
            for line in lines:
                kv = dict(p.split(b"=", 1) for p in line.split() if b"=" in p)
                try:
                    self.sess = int(kv.get(b"sess", self.sess))
                    m = int(kv.get(b"mesg", self.mesg))
                except ValueError:
                    continue
                if m > 0 and self.first_at is None:
                    self.first_at = now
                self.mesg = m
                if m >= self.target and self.done_at is None:
                    self.done_at = now
                    self.done.set()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_listening(host, port, proc, seconds=10):
    import socket
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.recv(512)
            return True
        except OSError:
            time.sleep(0.05)
    return False


def plan(n, domains, procs, chunk, fmt):
    """Per injecting session, a list of (recipient domain, messages)."""
    per_domain = [n // domains + (1 if d < n % domains else 0) for d in range(domains)]
    jobs = [[] for _ in range(procs)]
    left = list(per_domain)
    while any(left):
        for d in range(domains):
            if left[d]:
                k = min(chunk, left[d])
                left[d] -= k
                jobs[d % procs].append((fmt.format(d + 1), k))
    return jobs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sink", required=True, help="HOST:PORT for smtp-sink")
    ap.add_argument("--inject", required=True, help="HOST:PORT of the server's SMTP listener")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-s", "--size", type=int, default=4096)
    ap.add_argument("--domains", type=int, default=50)
    ap.add_argument("--domain-format", default="d{}.relay.test")
    ap.add_argument("--procs", type=int, default=10, help="injecting sessions at once")
    ap.add_argument("--chunk", type=int, default=20, help="messages to one domain per smtp-source")
    ap.add_argument("--sender", default="sender@src.relay.test")
    ap.add_argument("--cgroup", help="cgroup v1 cpuacct directory holding the server")
    ap.add_argument("--pid", type=int, help="the server's main process (/proc/PID/stat)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--label", default="relay")
    ap.add_argument("--log-dir", default=".")
    a = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    shost, sport = a.sink.rsplit(":", 1)
    sink = Sink(a.sink, a.n, os.path.join(a.log_dir, f"{a.label}-sink.log"))
    procs = []
    lock = threading.Lock()
    errors = []
    try:
        if not wait_listening(shost, int(sport), sink.proc):
            print(f"relay_run: smtp-sink does not answer on {a.sink}", file=sys.stderr)
            return 2
        # The probe connection above is one session, no message.
        jobs = plan(a.n, a.domains, a.procs, a.chunk, a.domain_format)
        stop = threading.Event()

        def inject(share):
            for domain, k in share:
                if stop.is_set():
                    return
                cmd = [SMTP_SOURCE, "-s", "1", "-m", str(k), "-l", str(a.size),
                       "-f", a.sender, "-t", f"rcpt@{domain}", a.inject]
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
                with lock:
                    procs.append(p)
                _, err = p.communicate()
                with lock:
                    procs.remove(p)
                if p.returncode != 0:
                    with lock:
                        errors.append(f"{domain} x{k}: rc {p.returncode}: "
                                      f"{err.decode(errors='replace').strip()[:300]}")

        cg0, pc0, m0 = cgroup_cpu(a.cgroup), pid_cpu(a.pid) if a.pid else None, machine_cpu()
        t0 = time.monotonic()
        threads = [threading.Thread(target=inject, args=(j,), daemon=True) for j in jobs]
        for t in threads:
            t.start()
        injected_at = None
        deadline = t0 + a.timeout
        while time.monotonic() < deadline:
            if injected_at is None and not any(t.is_alive() for t in threads):
                injected_at = time.monotonic()
            if sink.done.wait(0.05):
                break
        t1 = sink.done_at or time.monotonic()
        cg1, pc1, m1 = cgroup_cpu(a.cgroup), pid_cpu(a.pid) if a.pid else None, machine_cpu()
        if injected_at is None:
            stop.set()
            for t in threads:
                t.join(0.01)
            if not any(t.is_alive() for t in threads):
                injected_at = time.monotonic()
        wall = t1 - t0
        got = sink.mesg
        res = {
            "label": a.label, "messages": a.n, "received": got, "domains": a.domains,
            "size": a.size, "inject_sessions": a.procs,
            "all_received": got >= a.n,
            "wall_s": round(wall, 3),
            "msg_per_s": round(got / wall, 1) if wall > 0 else None,
            "injected_s": round(injected_at - t0, 3) if injected_at else None,
            "first_received_s": round(sink.first_at - t0, 3) if sink.first_at else None,
            "sink_sessions": sink.sess,
            "server_cpu_s": round(cg1 - cg0, 3) if cg0 is not None else None,
            "server_cpu_s_per_1000": round((cg1 - cg0) * 1000 / max(got, 1), 3)
            if cg0 is not None else None,
            "pid_cpu_s": round(pc1 - pc0, 3) if pc0 is not None and pc1 is not None else None,
            "machine_busy_pct": round(100 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1), 1),
            "inject_errors": len(errors),
        }
        print(f"RELAY {a.label}: {got}/{a.n} received in {wall:.2f}s = {res['msg_per_s']} msg/s; "
              f"injected in {res['injected_s']}s; server CPU {res['server_cpu_s']}s "
              f"({res['server_cpu_s_per_1000']} s/1000 msgs"
              + (f"; main process {res['pid_cpu_s']} s" if res['pid_cpu_s'] is not None else "")
              + "); "
              f"machine busy {res['machine_busy_pct']}%; {len(errors)} injection errors")
        for e in errors[:10]:
            print("  injection error: " + e)
        print("RESULT " + json.dumps(res), flush=True)
        return 0 if res["all_received"] and not errors else 1
    finally:
        with lock:
            for p in list(procs):
                if p.poll() is None:
                    p.kill()
        sink.stop()


if __name__ == "__main__":
    sys.exit(main())
