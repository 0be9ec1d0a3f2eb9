#!/usr/bin/env python3
"""IMAP resynchronisation (issue 15): the bytes and time a client needs to
bring its copy of a large mailbox up to date after a small part of it
changed, with and without QRESYNC (RFC 7162), on Petrel, over loopback.

    python3 bench/imap_resync_bench.py --prefix _build/gcc/inst \
        [--msgs 100000] [--changed 0.01] [--out DIR]

as root, from the project root (the instance is the one benchlib.py
writes). One mailbox of MSGS messages of SIZE bytes is filled and indexed
by a first SELECT; a client records UIDVALIDITY and HIGHESTMODSEQ. Then
another session changes CHANGED of the messages, spread over the mailbox:
half get a flag, half are expunged. The first client comes back twice:

- full: SELECT INBOX, then UID FETCH 1:* (FLAGS), which is how a client
  without CONDSTORE/QRESYNC learns flags and expunges;
- qresync: ENABLE QRESYNC, SELECT INBOX (QRESYNC (uidvalidity modseq
  1:last-uid)), which answers VANISHED (EARLIER) and the changed FETCHes.

Measured from the SELECT to the last tagged answer (login excluded): bytes
the server sent and wall time, the median of REPEATS. Results: a JSON line
in OUT/results.jsonl and a Markdown table on stdout.
"""

import argparse
import json
import pathlib
import socket
import statistics
import time

from benchlib import DOMAIN, HOST, petrel_fill, start_petrel

GREETING = b"* OK"
TIMEOUT = 600


class Raw:
    """A plaintext IMAP client that counts the bytes it receives. Answers
    here carry no literals (SELECT, FETCH FLAGS, STORE, EXPUNGE)."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.buf = b""
        self.received = 0
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("server closed the connection")
            self.received += len(data)
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def run(self, text):
        self.n += 1
        tag = f"r{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError(f"{text}: {line!r}")
                return untagged
            untagged.append(line)

    def close(self):
        try:
            self.run("LOGOUT")
        except (OSError, EOFError, RuntimeError):
            pass
        self.sock.close()


def code(untagged, name):
    for line in untagged:
        if line.startswith(b"* OK [" + name + b" "):
            return int(line.split()[3].rstrip(b"]"))
    raise RuntimeError(f"no {name!r} in the SELECT answer")


def login(port):
    c = Raw(port)
    c.run(f'LOGIN "user1@{DOMAIN}" "pw"')
    return c


def change(port, uids, fraction):
    """fraction of uids, evenly spread: every other one flagged, the rest
    expunged (in batches, as a client's delete does)."""
    c = login(port)
    c.run("SELECT INBOX")
    step = max(1, int(round(1 / fraction)))
    picked = uids[::step]
    flagged, expunged = picked[0::2], picked[1::2]
    for i in range(0, len(flagged), 500):
        c.run("UID STORE " + ",".join(map(str, flagged[i:i + 500])) + " +FLAGS.SILENT (\\Flagged)")
    for i in range(0, len(expunged), 500):
        part = ",".join(map(str, expunged[i:i + 500]))
        c.run(f"UID STORE {part} +FLAGS.SILENT (\\Deleted)")
        c.run(f"UID EXPUNGE {part}")
    c.close()
    return len(flagged), len(expunged)


def measure(port, mode, uidvalidity, modseq, last_uid):
    c = login(port)
    if mode == "qresync":
        c.run("ENABLE QRESYNC")
    before, t0 = c.received, time.monotonic()
    if mode == "full":
        c.run("SELECT INBOX")
        lines = len(c.run("UID FETCH 1:* (FLAGS)"))
    else:
        lines = len(c.run(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:{last_uid}))"))
    took = time.monotonic() - t0
    got = c.received - before
    c.close()
    return got, took, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--out", default="_build/bench-resync")
    ap.add_argument("--msgs", type=int, default=100000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--changed", type=float, default=0.01, help="fraction of messages changed")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port-base", type=int, default=36000)
    a = ap.parse_args()
    prefix = pathlib.Path(a.prefix).resolve()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = a.port_base + 143
    proc = start_petrel(prefix, out / "petrel", 1, a.port_base,
                        ("userdb_file", "auth", "storage", "imap"), port, GREETING)
    try:
        login(port).close()  # the mailbox's layout, before it is filled
        petrel_fill(out / "petrel", 1, a.msgs, a.size)
        c = login(port)
        untagged = c.run("SELECT INBOX")  # indexes every file, untimed
        uidvalidity, modseq = code(untagged, b"UIDVALIDITY"), code(untagged, b"HIGHESTMODSEQ")
        uids = [int(l.split(b"UID ")[1].split()[0].rstrip(b")"))
                for l in c.run("UID FETCH 1:* (UID)") if b" FETCH " in l]
        c.close()
        flagged, expunged = change(port, uids, a.changed)
        row = {"msgs": a.msgs, "size": a.size, "flagged": flagged, "expunged": expunged}
        for mode in ("full", "qresync"):
            runs = [measure(port, mode, uidvalidity, modseq, uids[-1]) for _ in range(a.repeats)]
            row[mode] = {"bytes": int(statistics.median(r[0] for r in runs)),
                         "ms": round(statistics.median(r[1] for r in runs) * 1000, 1),
                         "lines": runs[0][2]}
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"\n{a.msgs} messages, {flagged} flagged and {expunged} expunged since the "
              "client's last sync\n\n| resync | bytes from the server | time (ms) | lines |\n"
              "|---|---|---|---|")
        for mode in ("full", "qresync"):
            r = row[mode]
            print(f"| {mode} | {r['bytes']} | {r['ms']} | {r['lines']} |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
