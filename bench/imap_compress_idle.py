#!/usr/bin/env python3
"""COMPRESS=DEFLATE (RFC 4978, issue 15): what compression costs an idle
IMAP connection, and what it saves on a FETCH.

    python3 bench/imap_compress_idle.py --prefix _build/dev/inst [--conns 1000]

as root (or the instance's user), from the project root; loopback only.
For each mode (plain, then compressed), a fresh instance from `petrelctl
init` (benchlib.start_petrel: plaintext logins) takes N connections that
each log in, (COMPRESS DEFLATE,) SELECT INBOX and IDLE; petreld's RSS is
read from /proc before the first and after the last has its "+", once
the server has settled. A fresh instance per mode, so memory the first
mode freed into malloc's pools does not flatter the second. Then one
session FETCHes a typical text message (headers of a real client's
message, a quoted reply in the body) plain and compressed, counting the
bytes on the wire. Results: a JSON line per mode in OUT/results.jsonl and
a Markdown table on stdout.
"""

import argparse
import json
import pathlib
import shutil
import socket
import time
import zlib

from benchlib import DOMAIN, HOST, raise_nofile, rss_kib, start_petrel

GREETING = b"* OK"
TIMEOUT = 30


class Conn:
    """A blocking raw IMAP client, compressing after COMPRESS."""

    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""
        self.comp = self.decomp = None
        self.wire = 0
        self.n = 0
        self.line()

    def send(self, data):
        if self.comp is not None:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("closed by the server")
        self.wire += len(data)
        self.buf += self.decomp.decompress(data) if self.decomp is not None else data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_literal(self, size):
        while len(self.buf) < size:
            self.fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def run(self, text):
        self.n += 1
        tag = b"b%d" % self.n
        self.send(tag + b" " + text + b"\r\n")
        while True:
            line = self.line()
            if line.endswith(b"}") and b"{" in line:
                self.read_literal(int(line.rsplit(b"{", 1)[1][:-1]))
            elif line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text!r}: {line!r}")
                return

    def compress(self):
        self.run(b"COMPRESS DEFLATE")
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)

    def idle(self):
        self.send(b"i1 IDLE\r\n")
        line = self.line()
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE: {line!r}")

    def close(self):
        self.sock.close()


def typical_message(user):
    """About 6 KB: the headers a real client's message carries, a body of
    prose and a quoted reply."""
    head = (f"Return-Path: <carol@example.org>\r\nDelivered-To: {user}@{DOMAIN}\r\n"
            "Received: from mail.example.org (mail.example.org [192.0.2.25])\r\n"
            f"\tby mx.{DOMAIN} with ESMTPS id 4F2A1B3C\r\n\tfor <{user}@{DOMAIN}>; "
            "Thu, 01 Jan 2026 10:12:31 +0000\r\n"
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=mail;\r\n"
            "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
            "\tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\n"
            "From: Carol Example <carol@example.org>\r\n"
            f"To: User <{user}@{DOMAIN}>\r\nCc: Team <team@example.org>\r\n"
            "Subject: Re: minutes of Tuesday's meeting and the plan for the release\r\n"
            "Date: Thu, 01 Jan 2026 10:12:29 +0000\r\n"
            "Message-ID: <20260101101229.GA1234@mail.example.org>\r\n"
            "In-Reply-To: <20251231170000.GB999@mx.bench.test>\r\n"
            "References: <20251231170000.GB999@mx.bench.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n"
            "Content-Transfer-Encoding: 8bit\r\nUser-Agent: Mutt/2.2.9\r\n\r\n")
    para = ("Thanks for sending the minutes. I went through the list of open items and "
            "added my notes below; most of them are small, but the migration of the old "
            "mailboxes needs a date before we can announce the release to the users.\r\n")
    quoted = "".join(f"> {i}. The item number {i} of the plan, as agreed on Tuesday, with "
                     f"its owner and the week it is due.\r\n" for i in range(1, 30))
    body = para * 4 + "\r\nOn Wed, 31 Dec 2025, you wrote:\r\n" + quoted + "\r\n-- \r\nCarol\r\n"
    return (head + body).encode()


def hold_idle(prefix, out, conns, users, compressed, port_base):
    inst = out / ("petrel-z" if compressed else "petrel-plain")
    port = port_base + 143
    proc = start_petrel(prefix, inst, users, port_base, ("userdb_file", "auth", "storage", "imap"),
                        port, GREETING,
                        edits=(("imap", "peer_max_connections = 50;",
                                f"peer_max_connections = {conns + 100};"),
                               ("imap", "max_connections_per_user = 20;",
                                f"max_connections_per_user = {conns // users + 20};")))
    held = []
    try:
        # Every mailbox made and opened once, so the figures are of the
        # connections, not of the store's first look at each account.
        for i in range(1, users + 1):
            c = Conn(port)
            c.run(b"LOGIN user%d@%s pw" % (i, DOMAIN.encode()))
            c.run(b"SELECT INBOX")
            c.run(b"LOGOUT")
            c.close()
        time.sleep(1)
        before = rss_kib(proc.pid)
        t0 = time.monotonic()
        for k in range(conns):
            c = Conn(port)
            c.run(b"LOGIN user%d@%s pw" % (k % users + 1, DOMAIN.encode()))
            if compressed:
                c.compress()
            c.run(b"SELECT INBOX")
            c.idle()
            held.append(c)
        took = time.monotonic() - t0
        time.sleep(3)
        after = rss_kib(proc.pid)
        # Every held connection still answers.
        for c in held[:: max(1, conns // 20)]:
            c.send(b"DONE\r\n")
            line = c.line()
            if not line.startswith(b"i1 OK"):
                raise RuntimeError(f"DONE: {line!r}")
        fetch = None
        if compressed:
            fetch = fetch_saving(port, inst)
        return dict(mode="compressed" if compressed else "plain", conns=len(held),
                    seconds=round(took, 1), rss_before_kb=before, rss_after_kb=after,
                    rss_kb_per_conn=round((after - before) / max(1, len(held)), 2),
                    fetch=fetch)
    finally:
        for c in held:
            c.close()
        proc.terminate()
        proc.wait(timeout=30)


def fetch_saving(port, inst):
    """The wire bytes of one FETCH BODY[] of the typical message, plain
    and compressed."""
    raw = typical_message("user1")
    maildir = inst / "data" / "mail" / DOMAIN / "user1" / "new"
    f = maildir / f"{int(time.time())}.M999999P1.typical"
    f.write_bytes(raw)
    shutil.chown(f, *[maildir.owner(), maildir.group()])
    wire = {}
    for mode in ("plain", "compressed"):
        c = Conn(port)
        c.run(b"LOGIN user1@%s pw" % DOMAIN.encode())
        if mode == "compressed":
            c.compress()
        c.run(b"SELECT INBOX")
        c.run(b"FETCH 1 FLAGS")  # the session is warm: only the FETCH is counted
        start = c.wire
        c.run(b"FETCH * BODY.PEEK[]")
        wire[mode] = c.wire - start
        c.close()
    return dict(message_bytes=len(raw), plain_wire=wire["plain"],
                compressed_wire=wire["compressed"],
                saved_pct=round(100 * (1 - wire["compressed"] / wire["plain"]), 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--out", default="_build/bench-compress")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--port-base", type=int, default=36000)
    a = ap.parse_args()
    prefix = pathlib.Path(a.prefix).resolve()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    rows = []
    for compressed in (False, True):
        r = hold_idle(prefix, out, a.conns, a.users, compressed, a.port_base)
        rows.append(r)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
        print(json.dumps(r), flush=True)
    print("\n| IDLE connections | mode | RSS before → after | RSS per connection |\n"
          "|---|---|---|---|")
    for r in rows:
        print(f"| {r['conns']} | {r['mode']} | {r['rss_before_kb']} → {r['rss_after_kb']} kB | "
              f"{r['rss_kb_per_conn']} kB |")
    f = rows[-1]["fetch"]
    print(f"\nFETCH BODY[] of a {f['message_bytes']}-byte text message: {f['plain_wire']} bytes "
          f"plain, {f['compressed_wire']} compressed ({f['saved_pct']}% saved)")


if __name__ == "__main__":
    main()
