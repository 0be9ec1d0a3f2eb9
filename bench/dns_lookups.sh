#!/bin/sh
# Resolver lookups per second, cached and uncached, against a local
# dnsmasq (issue 10). Starts dnsmasq on 127.0.0.1 and a free port, then
# petreld with the dnsprobe test module, whose BENCH command runs N lookups
# of one name with K in flight on one I/O thread and reports the time:
#   - cached:   dnr.cache_size 10000, one lookup fills the cache first;
#   - uncached: dnr.cache_size 0, every lookup is a query to dnsmasq
#     (so this measures dnsmasq too: it answers from one thread).
# Run from the top of the tree after make install and make check:
#   sh bench/dns_lookups.sh [BUILD_DIR] [LOOKUPS] [IN_FLIGHT]
# BUILD_DIR defaults to _build/dev, configured with --prefix=$BUILD_DIR/inst.
set -eu
build=${1:-_build/dev}
export DNS_BENCH_N=${2:-100000} DNS_BENCH_K=${3:-64}
export DNS_BENCH_PREFIX=$build/inst DNS_BENCH_MODULES=$build/tests/modules/.libs
exec /usr/bin/python3 - <<'EOF'
import os, pathlib, re, shutil, socket, subprocess, sys, tempfile, time

prefix = pathlib.Path(os.environ["DNS_BENCH_PREFIX"]).resolve()
modules = pathlib.Path(os.environ["DNS_BENCH_MODULES"]).resolve()
n, k = int(os.environ["DNS_BENCH_N"]), int(os.environ["DNS_BENCH_K"])
work = pathlib.Path(tempfile.mkdtemp(prefix="petrel-dnsbench-", dir="/tmp"))
work.chmod(0o755)
procs = []


def port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, what, log, timeout=20):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            sys.exit(f"dns_lookups: {what} not ready within {timeout}s:\n{text}")
        time.sleep(0.05)


def start_dnsmasq():
    p = port()
    log = work / "dnsmasq.log"
    user = "--user=root" if os.geteuid() == 0 else "--user=" + os.getlogin()
    proc = subprocess.Popen([shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground",
                             "--no-resolv", "--no-hosts", "--conf-file=/dev/null", f"--port={p}",
                             "--listen-address=127.0.0.1", "--bind-interfaces", user, "--pid-file=",
                             f"--log-facility={log}", "--local-ttl=300", "--cache-size=10000",
                             "--host-record=mx1.example.test,127.0.0.11"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    procs.append(proc)
    wait(lambda: log.exists() and "started" in log.read_text(), "dnsmasq", log)
    return p


def start_petreld(name, dns_port, cache_size):
    d = work / name
    subprocess.run([str(prefix / "bin/petrelctl"), "init", str(d), "--domain", "example.test",
                    "--port-base", "20000", "--module-path", str(modules)],
                   check=True, capture_output=True, timeout=60)
    for f in (d / "conf.d").glob("*.conf"):
        f.unlink()
    lp = port()
    (d / "conf.d/50-dnsprobe.conf").write_text(
        f'module = "dnsprobe";\nfile = "{modules}/dnsprobe.so";\n'
        f'listeners = ( {{ address = "127.0.0.1:{lp}"; }} );\n')
    with open(d / "petrel.conf", "a") as f:
        f.write(f'\ndnr: {{ servers = [ "127.0.0.1:{dns_port}" ]; timeout = "2s"; '
                f'attempts = 2; cache_size = {cache_size}; }};\n')
    log = open(d / "petreld.log", "wb")
    proc = subprocess.Popen([str(prefix / "sbin/petreld"), "--config", str(d / "petrel.conf"),
                             "--foreground"], stdout=log, stderr=log)
    procs.append(proc)
    wait(lambda: b"started:" in (d / "petreld.log").read_bytes(), "petreld", d / "petreld.log")
    return lp


def bench(lp):
    s = socket.create_connection(("127.0.0.1", lp), timeout=120)
    f = s.makefile("rwb")
    f.readline()
    f.write(b"RESOLVE A mx1.example.test\r\n")  # warms the cache, opens the channel
    f.flush()
    while f.readline().strip() != b".":
        pass
    f.write(f"BENCH A mx1.example.test {n} {k}\r\n".encode())
    f.flush()
    line = f.readline().decode().strip()
    m = re.match(r"\+OK (\d+) (\d+) failed=(\d+)", line)
    if not m or m[3] != "0":
        sys.exit(f"dns_lookups: bad answer {line!r}")
    s.close()
    return int(m[2])


try:
    dp = start_dnsmasq()
    for name, cache in (("cached", 10000), ("uncached", 0)):
        ms = bench(start_petreld(name, dp, cache))
        print(f"{name:9} {n} lookups, {k} in flight: {ms} ms, "
              f"{n * 1000 / max(ms, 1):,.0f} lookups/s")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
EOF
