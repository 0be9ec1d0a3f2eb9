#!/usr/bin/env python3
"""IMAP (issue 14): Petrel's imap module against Dovecot, on this machine,
over loopback only, the same messages, the same client, in one run.

    python3 bench/imap_bench.py --prefix _build/gcc/inst [--out DIR]

as root, from the project root. Dovecot is the baseline instance of
../shared/bench/peer (started with setup_peer.sh when 127.0.0.1:1143 does
not answer; plaintext LOGIN, passwords in a passwd-file as {PLAIN}).
Petrel is an instance `petrelctl init` writes, set up as benchlib.py says
(plaintext logins, SHA-512-crypt passwords, every mailbox kept open).

The same USERS x MSGS messages of SIZE bytes are written as files into both
stores' Maildirs; a first pass of ../shared/bench/imap_load.py over every
user (SELECT and FETCH of every message's ENVELOPE) lets both servers index
them, untimed. Then, for each mix (the default session, and
--ops-per-session 10) and REPEATS times, imap_load.py runs 20 clients for
DURATION seconds against each server in turn: LOGIN, SELECT, FETCH 1:*
(FLAGS RFC822.SIZE ENVELOPE), 3x FETCH BODY.PEEK[], 3x STORE, APPEND, SEARCH
UNSEEN, LOGOUT. Server CPU is read from /proc (every process of the
server's tree and the children it reaped). Last, --mode idle holds 1,000
and 10,000 connections in IDLE and reads the server's RSS and PSS before
and after (Dovecot at 1,000 only: its baseline instance allows 2,000
processes, two per session). Results: a JSON line per run in
OUT/results.jsonl and Markdown tables on stdout.
"""

import argparse
import imaplib
import json
import pathlib

from benchlib import (DOMAIN, HOST, dovecot_fill, petrel_fill, raise_nofile, run_load,
                      start_dovecot, start_petrel, tree_cpu)

GREETING = b"* OK"


def imap_args(port, users, extra):
    return ["--port", str(port), "--users", str(users), "--login-domain", DOMAIN,
            "--password", "pw", *extra]


def imap_login(port, i):
    """A login and SELECT make the mailbox (the store's layout) before it is
    filled."""
    m = imaplib.IMAP4(HOST, port, timeout=30)
    try:
        m.login(f"user{i}@{DOMAIN}", "pw")
        m.select("INBOX")
    finally:
        m.logout()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--out", default="_build/bench-imap")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--msgs", type=int, default=20, help="messages per user")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--idle", default="1000,10000", help="IDLE connection counts ('' for none)")
    ap.add_argument("--port-base", type=int, default=35000)
    a = ap.parse_args()
    prefix = pathlib.Path(a.prefix).resolve()
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # 10,000 IDLE connections: the client's and petreld's descriptors.
    raise_nofile()

    dovecot_pid = start_dovecot(a.users, 1143, GREETING)
    dovecot_fill(a.users, a.msgs, a.size)
    inst = out / "petrel"
    port = a.port_base + 143
    most = max([int(x) for x in a.idle.split(",") if x] + [100])
    proc = start_petrel(prefix, inst, a.users, a.port_base,
                        ("userdb_file", "auth", "storage", "imap"), port, GREETING,
                        edits=(("imap", "peer_max_connections = 50;",
                                f"peer_max_connections = {most + 100};"),
                               ("imap", "max_connections_per_user = 20;",
                                f"max_connections_per_user = {most // a.users + 20};")))
    rows = []

    def record(r, name, pid, cpu0):
        r["server"] = name
        if cpu0 is not None:
            r["server_cpu_s"] = round(tree_cpu(pid) - cpu0, 2)
            r["server_cpu_ms_per_1000"] = round(r["server_cpu_s"] * 1e6 /
                                                max(1, r["imap_cmds"]), 1)
        rows.append(r)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")

    try:
        for i in range(1, a.users + 1):
            imap_login(port, i)
            petrel_fill(inst, i, a.msgs, a.size)
        sides = {"dovecot": (1143, dovecot_pid), "petrel": (port, proc.pid)}
        for name, (p, _) in sides.items():  # both index every mailbox, untimed
            run_load("imap_load.py", imap_args(p, a.users, [
                "-c", "10", "--pick", "seq", "--max-sessions", str(a.users), "--body-fetches",
                "0", "--append-size", "0", "--duration", "600"]), f"{name}-warmup", 900)
        mixes = {"default": [], "ops10": ["--ops-per-session", "10"]}
        for mix, extra in mixes.items():
            for rep in range(a.repeats):
                for name, (p, pid) in sides.items():
                    cpu0 = tree_cpu(pid)
                    r = run_load("imap_load.py", imap_args(p, a.users, [
                        "-c", str(a.clients), "--duration", str(a.duration), *extra]),
                        f"{name}-{mix}", a.duration + 300)
                    r["mix"] = mix
                    record(r, name, pid, cpu0)
                    lat = r["latency"]
                    print(f"{name} {mix}: {r['imap_cmds_per_s']} cmds/s, server CPU "
                          f"{r['server_cpu_ms_per_1000']} ms/1000 cmds, errors {r['errors']}, "
                          + ", ".join(f"{k} {v['p50_ms']}/{v['p99_ms']} ms"
                                      for k, v in lat.items()), flush=True)
        for n in [int(x) for x in a.idle.split(",") if x]:
            for name, (p, pid) in sides.items():
                if name == "dovecot" and n > 1000:
                    continue
                r = run_load("imap_load.py", imap_args(p, a.users, [
                    "--mode", "idle", "--idle-conns", str(n), "--duration", "300",
                    "--settle", "5", "--idle-hold", "15", "--server-pid-tree", str(pid)]),
                    f"{name}-idle{n}", 900)
                record(r, name, pid, None)
                print(f"{name} idle {n}: {r['established']}/{n} established, "
                      f"RSS {r['rss_kb_per_conn']} kB/conn, PSS {r['pss_kb_per_conn']} kB/conn",
                      flush=True)
        print("\n| server | mix | clients | commands/s | server CPU per 1,000 commands | "
              "p50 / p99 FETCH BODY (ms) | p50 / p99 SEARCH (ms) | errors |\n"
              "|---|---|---|---|---|---|---|---|")
        for r in rows:
            if r["mode"] != "load":
                continue
            fb, se = r["latency"].get("fetch_body", {}), r["latency"].get("search", {})
            print(f"| {r['server']} | {r['mix']} | {r['concurrency']} | {r['imap_cmds_per_s']} | "
                  f"{r['server_cpu_ms_per_1000']} ms | {fb.get('p50_ms')} / {fb.get('p99_ms')} | "
                  f"{se.get('p50_ms')} / {se.get('p99_ms')} | {r['errors']} |")
        print("\n| server | IDLE connections | established | RSS per connection | "
              "PSS per connection |\n|---|---|---|---|---|")
        for r in rows:
            if r["mode"] == "idle":
                print(f"| {r['server']} | {r['requested']} | {r['established']} | "
                      f"{r['rss_kb_per_conn']} kB | {r['pss_kb_per_conn']} kB |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
