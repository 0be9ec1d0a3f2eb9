#!/usr/bin/env python3
"""IMAP on a large mailbox (issue 15): Petrel against Dovecot, on this
machine, over loopback only, the same mailbox, the same client, one run.

    python3 bench/imap_large_bench.py --prefix _build/dev/inst [--msgs 100000]

as root, from the project root. Dovecot is the baseline instance of
../shared/bench/peer (see imap_bench.py); Petrel an instance `petrelctl
init` writes (benchlib.start_petrel). bigbox.py writes the same MSGS
messages into user1's Maildir in both stores; a first SELECT and FETCH of
every message's FLAGS lets both index them (timed and reported, "index").

Then, each REPEATS times against each server, over one connection:
- SORT (DATE), (SUBJECT), (FROM), (REVERSE ARRIVAL) and THREAD REFERENCES
  and ORDEREDSUBJECT over ALL; the first run of each is reported apart
  ("cold": the servers build their sort data then);
- SEARCH BODY with a rare, a common and an absent word (Petrel with its
  full-text index, and at the end again after a restart with `fts =
  false`: the scan, reported as "petrel-scan");
- a resync after 1% of the mailbox changed: one session changes flags on
  0.6%, expunges 0.2% and appends 0.2%; then a client that knew the state
  before resyncs (a) without QRESYNC: SELECT and UID FETCH 1:* (FLAGS), as
  a CONDSTORE-less client must, and (b) with QRESYNC: SELECT ... (QRESYNC
  (uidvalidity modseq)). Bytes received and time.
A command a server does not advertise is reported as "not offered".
Results: a JSON line per measure in OUT/results.jsonl and a Markdown table.
"""

import argparse
import json
import pathlib
import pwd
import random
import re
import socket
import statistics
import sys
import time

import bigbox
from benchlib import (DOMAIN, HOST, edit_conf, fill_blobs, run_petreld, run_user, start_dovecot,
                      start_petrel)

GREETING = b"* OK"
TIMEOUT = 600


class Client:
    """A raw IMAP client that counts the bytes it receives."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.received = 0
        self.n = 0
        self.caps = set()
        self.line()  # greeting

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.received += len(data)
        self.buf += data

    def line(self):
        """One response line with its literals inline."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            head, self.buf = self.buf.split(b"\r\n", 1)
            out += head
            m = re.search(rb"\{(\d+)\}$", head)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def run(self, command):
        """(untagged lines, tagged line, seconds, bytes received)."""
        self.n += 1
        tag = f"b{self.n}".encode()
        before, t = self.received - len(self.buf), time.monotonic()
        self.sock.sendall(tag + b" " + command.encode() + b"\r\n")
        lines = []
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                dt = time.monotonic() - t
                return lines, ln, dt, self.received - len(self.buf) - before
            lines.append(ln)

    def ok(self, command):
        lines, tagged, dt, nbytes = self.run(command)
        if b" OK" not in tagged[:len(tagged.split(b" ")[0]) + 3]:
            sys.exit(f"bench: {command!r}: {tagged[:300]!r}")
        return lines, dt, nbytes

    def login(self):
        self.ok(f"LOGIN user1@{DOMAIN} pw")
        lines, _, _ = self.ok("CAPABILITY")
        self.caps = set(lines[0].decode().upper().split()[2:])

    def close(self):
        try:
            self.run("LOGOUT")
        except OSError:
            pass
        self.sock.close()


def offered(c, cap):
    return cap in c.caps


def measure(out, server, name, fn, repeats):
    """fn() -> (seconds, bytes); the first run as cold, the median of the
    rest as warm."""
    runs = [fn() for _ in range(repeats + 1)]
    r = {"server": server, "measure": name, "cold_ms": round(runs[0][0] * 1000, 1),
         "warm_ms": round(statistics.median(x[0] for x in runs[1:]) * 1000, 1),
         "bytes": runs[-1][1]}
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(r) + "\n")
    print(f"{server} {name}: cold {r['cold_ms']} ms, warm {r['warm_ms']} ms, "
          f"{r['bytes']} bytes", flush=True)
    return r


def queries(c, server, out, repeats, results):
    for crit in ("DATE", "SUBJECT", "FROM", "REVERSE ARRIVAL"):
        if offered(c, "SORT"):
            results.append(measure(out, server, f"SORT ({crit})", lambda crit=crit: c.ok(
                f"UID SORT ({crit}) UTF-8 ALL")[1:], repeats))
    for alg in ("REFERENCES", "ORDEREDSUBJECT"):
        if offered(c, f"THREAD={alg}"):
            results.append(measure(out, server, f"THREAD {alg}", lambda alg=alg: c.ok(
                f"UID THREAD {alg} UTF-8 ALL")[1:], repeats))
    body_searches(c, server, out, repeats, results)


def body_searches(c, server, out, repeats, results):
    for label, word in (("rare", bigbox.RARE_WORD), ("common", bigbox.COMMON_WORD),
                        ("absent", bigbox.ABSENT_WORD)):
        results.append(measure(out, server, f"SEARCH BODY {label}", lambda word=word: c.ok(
            f"UID SEARCH BODY {word}")[1:], repeats))


def change_one_percent(port, n, seed):
    """Flags on 0.6%, expunge 0.2%, append 0.2% of n, from another session."""
    rng = random.Random(seed)
    c = Client(port)
    c.login()
    c.ok("SELECT INBOX")
    uids = [int(x) for x in c.ok("UID SEARCH ALL")[0][0].split()[2:]]
    picks = rng.sample(uids, max(3, n // 100))
    k = len(picks) // 5
    for u in picks[:3 * k]:
        c.ok(f"UID STORE {u} +FLAGS.SILENT (\\Seen $Bench)")
    c.ok("UID STORE " + ",".join(map(str, picks[3 * k:4 * k])) + " +FLAGS.SILENT (\\Deleted)")
    c.ok("UID EXPUNGE " + ",".join(map(str, picks[3 * k:4 * k])))
    for i in range(len(picks) - 4 * k):
        blob = next(bigbox.messages(1, "user1", DOMAIN, seed=seed * 1000 + i))
        c.sock.sendall(f"a{i} APPEND INBOX {{{len(blob)}+}}\r\n".encode() + blob + b"\r\n")
        while not c.line().startswith(f"a{i} ".encode()):
            pass
    c.close()


def resync(port, server, out, n, results):
    """The state a client knew, 1% changed, then both resyncs."""
    c = Client(port)
    c.login()
    qresync = offered(c, "QRESYNC")
    if qresync:
        c.ok("ENABLE QRESYNC")
    lines, _, _ = c.ok("SELECT INBOX")
    text = b"\n".join(lines).decode(errors="replace")
    uidvalidity = re.search(r"UIDVALIDITY (\d+)", text).group(1)
    modseq = re.search(r"HIGHESTMODSEQ (\d+)", text)
    c.close()
    change_one_percent(port, n, 7)
    rows = []
    c = Client(port)
    c.login()
    _, t1, b1 = c.ok("SELECT INBOX")
    _, t2, b2 = c.ok("UID FETCH 1:* (FLAGS)")
    rows.append(("resync without QRESYNC", t1 + t2, b1 + b2))
    c.close()
    if qresync and modseq:
        c = Client(port)
        c.login()
        c.ok("ENABLE QRESYNC")
        _, t, b = c.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq.group(1)}))")
        rows.append(("resync with QRESYNC", t, b))
        c.close()
    for name, t, b in rows:
        r = {"server": server, "measure": name, "cold_ms": round(t * 1000, 1),
             "warm_ms": None, "bytes": b}
        results.append(r)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{server} {name}: {r['cold_ms']} ms, {b} bytes", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--out", default="_build/bench-imap-large")
    ap.add_argument("--msgs", type=int, default=100000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port-base", type=int, default=36000)
    ap.add_argument("--skip-dovecot", action="store_true")
    a = ap.parse_args()
    prefix = pathlib.Path(a.prefix).resolve()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    blobs = list(bigbox.messages(a.msgs, "user1", DOMAIN))
    print(f"mailbox: {len(blobs)} messages, {sum(map(len, blobs)) // len(blobs)} bytes on "
          "average", flush=True)
    sides = {}
    if not a.skip_dovecot:
        start_dovecot(1, 1143, GREETING)
        fill_blobs(pathlib.Path(f"/tmp/peer/mail/{DOMAIN}/user1"), blobs, 5000, 5000)
        sides["dovecot"] = 1143
    inst = out / "petrel"
    port = a.port_base + 143
    # The whole index built by the first search, to time it ("cold"); by
    # default a search indexes for 30 s at most, then scans.
    proc = start_petrel(prefix, inst, 1, a.port_base, ("userdb_file", "auth", "storage", "imap"),
                        port, GREETING, edits=[("storage", 'fts_catchup = "30s";',
                                                'fts_catchup = "1h";')])
    results = []
    try:
        c = Client(port)
        c.login()
        c.ok("SELECT INBOX")  # makes the mailbox (the store's layout)
        c.close()
        pw = pwd.getpwnam(run_user())
        fill_blobs(inst / "data" / "mail" / DOMAIN / "user1", blobs, pw.pw_uid, pw.pw_gid)
        del blobs
        sides["petrel"] = port
        for server, p in sides.items():
            c = Client(p)
            c.login()
            t = time.monotonic()
            c.ok("SELECT INBOX")
            c.ok("FETCH 1:* (FLAGS)")
            print(f"{server} index: {time.monotonic() - t:.1f} s", flush=True)
            queries(c, server, out, a.repeats, results)
            c.close()
        for server, p in sides.items():
            resync(p, server, out, a.msgs, results)
        # The same searches without the index: Petrel's scan.
        proc.terminate()
        proc.wait(timeout=60)
        edit_conf(inst, "storage", "fts = true;", "fts = false;")
        proc = run_petreld(prefix, inst, port, GREETING)
        c = Client(port)
        c.login()
        c.ok("SELECT INBOX")
        body_searches(c, "petrel-scan", out, a.repeats, results)
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print("\n| measure | Dovecot cold / warm (ms) | Petrel cold / warm (ms) | Petrel / Dovecot "
          "(warm) | bytes Dovecot / Petrel | Petrel without index (ms) |\n"
          "|---|---|---|---|---|---|")
    by = {(r["server"], r["measure"]): r for r in results}
    for m in dict.fromkeys(r["measure"] for r in results if r["server"] != "petrel-scan"):
        d, p, s = by.get(("dovecot", m)), by.get(("petrel", m)), by.get(("petrel-scan", m))

        def cell(r):
            if r is None:
                return "not offered"
            return f"{r['cold_ms']}" + (f" / {r['warm_ms']}" if r["warm_ms"] is not None else "")

        ratio = "–"
        if d and p:
            dv = d["warm_ms"] if d["warm_ms"] is not None else d["cold_ms"]
            pv = p["warm_ms"] if p["warm_ms"] is not None else p["cold_ms"]
            ratio = f"{pv / dv:.2f}×" if dv else "–"
        print(f"| {m} | {cell(d)} | {cell(p)} | {ratio} | "
              f"{d['bytes'] if d else '–'} / {p['bytes'] if p else '–'} | "
              f"{cell(s) if s else '–'} |")


if __name__ == "__main__":
    main()
