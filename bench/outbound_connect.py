#!/usr/bin/env python3
"""Outbound connection rate of petreld (issue 10).

Builds the contrib echo module against an installed Petrel, starts an
instance with an echo listener in plain TCP and one in implicit TLS, then
has C client sessions each ask ECHO-FETCH in a loop for a fixed time: every
fetch is one outbound connection opened by petreld (petrel_conn_connect),
its greeting read (after the TLS handshake and certificate check, for
TLS), and closed. Reports completed fetches per second. petreld is both the
connecting and the accepting side, all on the same two cores.

Loopback only; every loop is bounded by count and time.

  bench/outbound_connect.py --prefix _build/gcc/inst [--clients 20] [--seconds 10]
"""
import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idle_connections import start_echo_instance, stop_instance, wait_port  # noqa: E402


def run_fetches(port, command, clients, seconds):
    """C sessions each looping on command; the completed fetch count."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.recv(512)  # greeting
        s.setblocking(False)
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
        s.sendall(command)
    done = failed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise SystemExit("the server closed a client session")
            bufs[s] += data
            while b"\r\n" in bufs[s]:
                line, bufs[s] = bufs[s].split(b"\r\n", 1)
                if line.startswith(b"* fetched"):
                    done += 1
                elif line.startswith(b"* fetch failed"):
                    failed += 1
                    if failed == 1:
                        print("first failure:", line.decode(errors="replace"), file=sys.stderr)
                elif line.startswith(b"+OK fetching"):
                    continue
                else:
                    raise SystemExit(f"unexpected answer {line!r}")
                if time.monotonic() < end:
                    s.sendall(command)
    for s in bufs:
        s.close()
    if failed:
        raise SystemExit(f"{failed} fetches failed")
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    prefix = os.path.abspath(args.prefix)
    work = tempfile.mkdtemp(prefix="petrel-bench-")
    os.chmod(work, 0o755)
    proc = None
    try:
        # Many connections a minute from one address: the per-address
        # defaults are for strangers, this is ourselves.
        proc, inst, plain, tls = start_echo_instance(prefix, work,
                                                     "peer_max_interval_connections = 0;")
        deadline = time.monotonic() + 60
        wait_port(plain, deadline)
        wait_port(tls, deadline)
        cert = os.path.join(inst, "tls", "cert.pem")
        name = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject",
                               "-nameopt", "multiline"], capture_output=True, text=True,
                              check=True).stdout.split("commonName", 1)[1].split("=", 1)[1].splitlines()[0].strip()
        result = {"clients": args.clients, "seconds": args.seconds}
        for label, cmd in (("plain", f"ECHO-FETCH 127.0.0.1 {plain}\r\n"),
                           ("tls", f"ECHO-FETCH 127.0.0.1 {tls} tls ca={cert} name={name}\r\n")):
            n = run_fetches(plain, cmd.encode(), args.clients, args.seconds)
            result[f"{label}_per_s"] = round(n / args.seconds)
            print(f"{label}: {n} outbound connections in {args.seconds} s, "
                  f"{result[f'{label}_per_s']}/s")
        print("RESULT " + json.dumps(result))
    except SystemExit:
        print(open(os.path.join(work, "petreld.log")).read()[-2000:], file=sys.stderr)
        raise
    finally:
        stop_instance(proc, work)


if __name__ == "__main__":
    sys.exit(main())
