#!/usr/bin/env python3
"""IMAP IDLE wake-up latency (issue 14: "a delivery reaches every IDLE-ing
session of that mailbox, across I/O threads, within 100 ms").

    python3 bench/imap_idle_latency.py --prefix _build/gcc/inst [--sessions 50]

A Petrel instance from `petrelctl init` (every module it enables; plaintext
logins allowed), SESSIONS connections logged in as one user, INBOX selected
and in IDLE (spread over the server's I/O threads by the kernel's accept
order). Then MESSAGES messages are sent over SMTP one at a time; for each,
the time from the SMTP server's 250 after DATA (the message is queued and
synced, not yet in the store) to the untagged EXISTS on every session.
Reports p50, p99 and the worst over all sessions and messages, and how
many EXISTS never came (within 5 s each). Loopback only.
"""

import argparse
import asyncio
import pathlib
import smtplib
import statistics
import time

from benchlib import DOMAIN, HOST, start_petrel

GREETING = b"* OK"
USER = f"user1@{DOMAIN}"


class Session:
    def __init__(self):
        self.exists = asyncio.Queue()

    async def open(self, port):
        self.r, self.w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        await self.expect(None, b"* OK")
        for tag, cmd in ((b"a1", f'LOGIN "{USER}" "pw"'), (b"a2", "SELECT INBOX")):
            self.w.write(tag + b" " + cmd.encode() + b"\r\n")
            await self.expect(tag, tag + b" OK")
        self.w.write(b"a3 IDLE\r\n")
        await self.expect(None, b"+")

    async def expect(self, tag, prefix):
        while True:
            line = await asyncio.wait_for(self.r.readline(), 10)
            if not line:
                raise EOFError("connection closed")
            if tag is None or line.startswith(tag + b" "):
                if not line.startswith(prefix):
                    raise RuntimeError(line)
                return

    async def listen(self):
        while True:
            line = await self.r.readline()
            if not line:
                return
            if line.startswith(b"* ") and line.rstrip().endswith(b" EXISTS"):
                self.exists.put_nowait(time.monotonic())

    async def close(self):
        self.w.write(b"DONE\r\na4 LOGOUT\r\n")
        self.w.close()


def send(port, i):
    with smtplib.SMTP(HOST, port, timeout=30) as s:
        s.sendmail("sender@client.test", [USER],
                   f"From: <sender@client.test>\r\nTo: <{USER}>\r\nSubject: idle {i}\r\n\r\n"
                   f"body {i}\r\n".encode())
    return time.monotonic()


async def run(a, port, smtp_port):
    sessions = [Session() for _ in range(a.sessions)]
    await asyncio.gather(*(s.open(port) for s in sessions))
    listeners = [asyncio.create_task(s.listen()) for s in sessions]
    lat, missed = [], 0
    loop = asyncio.get_running_loop()
    for i in range(a.messages):
        t250 = await loop.run_in_executor(None, send, smtp_port, i)
        for s in sessions:
            try:
                t = await asyncio.wait_for(s.exists.get(), 5)
                lat.append(max(0.0, t - t250) * 1000)
            except asyncio.TimeoutError:
                missed += 1
        await asyncio.sleep(0.05)
    for s in sessions:
        await s.close()
    for t in listeners:
        t.cancel()
    return lat, missed


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--out", default="_build/bench-imap-idle")
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--port-base", type=int, default=36000)
    a = ap.parse_args()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = a.port_base + 143
    proc = start_petrel(pathlib.Path(a.prefix).resolve(), out / "petrel", 1, a.port_base, None,
                        port, GREETING,
                        edits=(("imap", "max_connections_per_user = 20;",
                                f"max_connections_per_user = {a.sessions + 5};"),))
    try:
        lat, missed = asyncio.run(run(a, port, a.port_base + 25))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    print(f"IDLE wake-up, {a.sessions} sessions x {a.messages} deliveries: "
          f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, worst {lat[-1] if lat else 0:.1f} ms, "
          f"mean {statistics.mean(lat) if lat else 0:.1f} ms, missed {missed}")


if __name__ == "__main__":
    main()
