#!/usr/bin/env python3
"""Idle-connection benchmark for petreld (issue 2).

Builds the contrib echo module against an installed Petrel, writes an
instance with `petrelctl init`, starts petreld, then opens N idle
connections (plain TCP, and a smaller number over implicit TLS), each
reading its greeting. Reports the accept rate, petreld's RSS per idle
connection (from /proc/PID/status, before and after) and its thread count.

Loopback only; every loop is bounded by count and time.

  bench/idle_connections.py --prefix _build/gcc/inst [--conns 10000] [--tls-conns 2000]
"""
import argparse
import json
import os
import resource
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return {"rss_kb": int(out["VmRSS"].split()[0]), "threads": int(out["Threads"])}


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"petreld did not listen on {port}")


def start_echo_instance(prefix, work, listener_opts, io_threads=0):
    """Build contrib/echo against the install, write an instance with only
    it (a plain and an implicit-TLS listener, each with listener_opts) and
    start petreld; returns (process, instance dir, plain port, TLS port)."""
    mod = os.path.join(work, "echo")
    shutil.copytree(os.path.join(ROOT, "contrib", "echo"), mod)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    subprocess.run(["make", "-s", "-C", mod], env=env, check=True)
    inst = os.path.join(work, "inst")
    subprocess.run([os.path.join(prefix, "bin", "petrelctl"), "init", inst, "--domain",
                    "bench.test", "--module-path", mod], check=True, stdout=subprocess.DEVNULL)
    # Only the echo module: the stock ones init enables load from the
    # install's module directory, not from module_path.
    for name in os.listdir(os.path.join(inst, "conf.d")):
        os.unlink(os.path.join(inst, "conf.d", name))
    plain, tls = free_port(), free_port()
    with open(os.path.join(inst, "conf.d", "50-echo.conf"), "w") as f:
        f.write('module = "echo";\nlisteners = (\n'
                f'  {{ address = "127.0.0.1:{plain}"; {listener_opts} }},\n'
                f'  {{ address = "127.0.0.1:{tls}"; tls = "implicit"; {listener_opts} }}\n);\n')
    if io_threads:
        conf = os.path.join(inst, "petrel.conf")
        text = open(conf).read().replace("server: {", f"server: {{\n  io_threads = {io_threads};", 1)
        open(conf, "w").write(text)
    log = open(os.path.join(work, "petreld.log"), "w")
    proc = subprocess.Popen([os.path.join(prefix, "sbin", "petreld"), "--config",
                             os.path.join(inst, "petrel.conf"), "--foreground"],
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, inst, plain, tls


def stop_instance(proc, work):
    """SIGTERM (then SIGKILL after 30 s) and remove the work directory."""
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(work, ignore_errors=True)


def open_idle(port, count, tls_ctx, deadline, batch=500):
    """Open count connections in batches; each must deliver its greeting."""
    conns = []
    start = time.monotonic()
    while len(conns) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(conns)} of {count} connections within the time limit")
        sel = selectors.DefaultSelector()
        pending = {}
        for _ in range(min(batch, count - len(conns))):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            if tls_ctx is not None:
                s = tls_ctx.wrap_socket(s, server_hostname="bench.test",
                                        do_handshake_on_connect=False)
            pending[s] = b""
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                try:
                    if tls_ctx is not None and not getattr(s, "_done_hs", False):
                        s.do_handshake()
                        s._done_hs = True
                    data = s.recv(512)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    continue
                if not data:
                    raise SystemExit("server closed a connection while opening")
                pending[s] += data
                if pending[s].endswith(b"\r\n"):
                    if not pending[s].startswith(b"+OK"):
                        raise SystemExit(f"unexpected greeting {pending[s]!r}")
                    sel.unregister(s)
                    del pending[s]
                    conns.append(s)
                else:
                    sel.modify(s, selectors.EVENT_READ)
        sel.close()
        if pending:
            raise SystemExit("greetings did not arrive within the time limit")
    return conns, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True, help="Petrel install prefix")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--tls-conns", type=int, default=2000)
    ap.add_argument("--io-threads", type=int, default=0, help="0: one per CPU")
    ap.add_argument("--max-seconds", type=int, default=300)
    args = ap.parse_args()
    prefix = os.path.abspath(args.prefix)
    deadline = time.monotonic() + args.max_seconds

    # petreld takes connections up to about half its descriptor limit (the
    # rest is its reserve for files, docs/limits.md), which it inherits.
    need = 2 * (args.conns + args.tls_conns) + 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < need:
        raise SystemExit(f"{need} descriptors are needed, the hard limit is {hard}: "
                         "raise it, or ask for fewer connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    work = tempfile.mkdtemp(prefix="petrel-bench-")
    os.chmod(work, 0o755)
    proc = None
    try:
        listener_opts = 'idle_timeout = "1h";'
        proc, inst, plain, tls = start_echo_instance(prefix, work, listener_opts,
                                                     io_threads=args.io_threads)
        wait_port(plain, deadline)
        wait_port(tls, deadline)
        time.sleep(0.5)
        base = proc_status(proc.pid)

        conns, secs = open_idle(plain, args.conns, None, deadline)
        time.sleep(1)
        after = proc_status(proc.pid)
        # The server still answers on a held connection.
        probe = conns[len(conns) // 2]
        probe.setblocking(True)
        probe.settimeout(10)
        probe.sendall(b"ECHO still here\r\n")
        if not probe.recv(100).startswith(b"+OK still here"):
            raise SystemExit("held connection did not answer")

        tls_ctx = ssl.create_default_context()
        tls_ctx.check_hostname = False
        tls_ctx.verify_mode = ssl.CERT_NONE
        tconns, tsecs = open_idle(tls, args.tls_conns, tls_ctx, deadline, batch=100)
        time.sleep(1)
        after_tls = proc_status(proc.pid)

        result = {
            "conns": args.conns,
            "accept_per_s": round(args.conns / secs),
            "rss_base_kb": base["rss_kb"],
            "rss_after_kb": after["rss_kb"],
            "rss_per_conn_kb": round((after["rss_kb"] - base["rss_kb"]) / args.conns, 2),
            "threads_before": base["threads"],
            "threads_after": after["threads"],
            "tls_conns": args.tls_conns,
            "tls_handshakes_per_s": round(args.tls_conns / tsecs),
            "rss_per_tls_conn_kb": round((after_tls["rss_kb"] - after["rss_kb"]) / args.tls_conns, 2),
            "threads_after_tls": after_tls["threads"],
        }
        print(f"{args.conns} idle connections: accepted at {result['accept_per_s']}/s, "
              f"RSS {base['rss_kb']} -> {after['rss_kb']} kB "
              f"({result['rss_per_conn_kb']} kB per connection), "
              f"threads {base['threads']} -> {after['threads']}")
        print(f"{args.tls_conns} idle TLS connections: {result['tls_handshakes_per_s']} handshakes/s, "
              f"{result['rss_per_tls_conn_kb']} kB per connection, threads {after_tls['threads']}")
        print("RESULT " + json.dumps(result))
        for s in conns + tconns:
            s.close()
    finally:
        stop_instance(proc, work)


if __name__ == "__main__":
    sys.exit(main())
