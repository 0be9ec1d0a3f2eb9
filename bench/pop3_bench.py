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
import pathlib
import socket
import statistics

from benchlib import (DOMAIN, HOST, Sampler, dovecot_fill, petrel_fill, pids_named, rss_kib,
                      run_load, start_dovecot, start_petrel, tree_cpu)

GREETING = b"+OK"


def load(port, users, conc, label, max_seconds):
    return run_load("pop3_load.py", ["--port", str(port), "--users", str(users),
                                     "--login-domain", DOMAIN, "--password", "pw",
                                     "-c", str(conc), "--max-seconds", str(max_seconds)],
                    label, max_seconds + 300)


def pop3_login(port, i):
    """A login makes the mailbox (the store's layout) before it is filled."""
    with socket.create_connection((HOST, port), timeout=30) as s:
        f = s.makefile("rwb")
        f.readline()
        for cmd in (f"USER user{i}@{DOMAIN}", "PASS pw", "QUIT"):
            f.write(cmd.encode() + b"\r\n")
            f.flush()
            assert f.readline().startswith(b"+OK")


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

    dovecot_pid = start_dovecot(a.users, 1110, GREETING)
    dovecot_fill(a.users, a.msgs, a.size)

    inst = out / "petrel"
    port = a.port_base + 110
    proc = start_petrel(prefix, inst, a.users, a.port_base,
                        ("userdb_file", "auth", "storage", "pop3"), port, GREETING)
    try:
        for i in range(1, a.users + 1):
            pop3_login(port, i)
            petrel_fill(inst, i, a.msgs, a.size)
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
                            [rss_kib(x) for x in pids_named("pop3")] or [0]) or None)
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
