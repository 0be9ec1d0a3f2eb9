"""The harness of the black-box integration tests for petreld, petrelctl and
the modules: fixtures and helpers shared by tests/integration and every
modules/<m>/tests (the top-level conftest.py loads it as a plugin; tests
import its helpers with `from harness import ...`).

The suite drives an *installed* Petrel. It reads:

  PETREL_PREFIX         install prefix: sbin/petreld, bin/petrelctl,
                        lib/pkgconfig/petrel.pc
  PETREL_TEST_MODULES   directory holding badabi.so, needy.so, testmod.so, snapmod.so
                        (after `make check`: <build>/tests/modules/.libs)
  PETREL_MODULE_CFLAGS  extra CFLAGS for building contrib/echo out of tree
                        (the sanitizer run: "-g -fsanitize=address,undefined")
  CC                    optional compiler for contrib/echo; by default the
                        compiler petreld was built with when it is clang
                        (a sanitized module must use the daemon's runtime)
  PETREL_TEST_KEEP      set to 1 to keep the instance directories

Every daemon runs in the foreground with stderr to a log file; stopping it
checks its exit status and that the log has no sanitizer finding. Every wait
is bounded and every socket has a timeout.
"""

import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

SRC_ROOT = pathlib.Path(__file__).resolve().parents[2]

START_TIMEOUT = 20.0  # seconds for petreld to log "started" (ASan is slow)
STOP_TIMEOUT = 15.0   # seconds for petreld to exit after SIGTERM
SOCK_TIMEOUT = 5.0    # every client socket
CMD_TIMEOUT = 60      # every helper command (make, petrelctl, openssl)

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "ERROR: LeakSanitizer",
)

STARTED_RE = re.compile(r"petreld \S+ started:")


# --- environment ---------------------------------------------------------


class Env:
    def __init__(self):
        prefix = os.environ.get("PETREL_PREFIX")
        if not prefix:
            raise pytest.UsageError(
                "PETREL_PREFIX is not set: point it at a Petrel install prefix "
                "(the one holding sbin/petreld, bin/petrelctl, lib/pkgconfig/petrel.pc)")
        self.prefix = pathlib.Path(prefix).resolve()
        self.petreld = self.prefix / "sbin" / "petreld"
        self.petrelctl = self.prefix / "bin" / "petrelctl"
        self.pkgconfig = self.prefix / "lib" / "pkgconfig"
        for path in (self.petreld, self.petrelctl, self.pkgconfig / "petrel.pc"):
            if not path.exists():
                raise pytest.UsageError(
                    f"PETREL_PREFIX={prefix}: {path} is missing (run `make install`)")
        modules = os.environ.get("PETREL_TEST_MODULES")
        if not modules:
            raise pytest.UsageError(
                "PETREL_TEST_MODULES is not set: point it at the directory holding "
                "badabi.so, needy.so, testmod.so and snapmod.so (<build>/tests/modules/.libs after "
                "`make check`)")
        self.test_modules = pathlib.Path(modules).resolve()
        for name in ("badabi", "needy", "testmod", "snapmod"):
            if not (self.test_modules / f"{name}.so").exists():
                raise pytest.UsageError(
                    f"PETREL_TEST_MODULES={modules}: {name}.so is missing (run `make check`)")
        self.module_cflags = os.environ.get("PETREL_MODULE_CFLAGS", "")
        self.keep = os.environ.get("PETREL_TEST_KEEP") == "1"
        self.cc = os.environ.get("CC") or self._daemon_compiler()
        # As root, `petrelctl init` makes the instances run as petrel (and
        # creates that account at the first init); otherwise as the caller.
        self.run_user = "petrel" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def run_uid(self):
        """Looked up when used: the first init may have created the account."""
        return pwd.getpwnam(self.run_user).pw_uid

    @property
    def run_gid(self):
        return pwd.getpwnam(self.run_user).pw_gid

    def _daemon_compiler(self):
        """A module built with sanitizers must use the same sanitizer runtime
        as petreld: clang links it into the executable, gcc uses libasan.so."""
        with open(self.petreld, "rb") as f:
            image = f.read()
        return "clang" if b"clang version" in image else "cc"

    def test_module(self, name):
        return str(self.test_modules / name)


_env = None


def pytest_configure(config):
    global _env
    _env = Env()


@pytest.fixture(scope="session")
def env():
    return _env


# --- processes we started, killed at the end if a test left one ---------

_live = {}


def _track(proc):
    _live[proc.pid] = proc


def _untrack(proc):
    _live.pop(proc.pid, None)


def _wait_or_kill(proc, timeout, what, log):
    """Wait for petreld to end; past timeout kill it and fail with its log."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)
        pytest.fail(f"petreld did not {what} within {timeout}s:\n{log()}")
    finally:
        _untrack(proc)


@pytest.fixture(scope="session", autouse=True)
def _kill_leftovers():
    yield
    for proc in list(_live.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


# --- directories ----------------------------------------------------------


@pytest.fixture(scope="session")
def base_dir(env):
    """A directory the run user can traverse: petreld re-reads its config
    after dropping root, and pytest's tmp_path is under a 0700 root dir."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="petrel-it-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    if not env.keep:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def echo_module(env, base_dir):
    """Acceptance test in itself: the example module builds OUT OF TREE
    against the installed Petrel through pkg-config. Returns its directory
    (the module_path of the instances)."""
    build = base_dir / "echo-build"
    shutil.copytree(SRC_ROOT / "contrib" / "echo", build)
    make_env = dict(os.environ, PKG_CONFIG_PATH=str(env.pkgconfig), CC=env.cc)
    args = ["make", "-C", str(build), f"CC={env.cc}"]
    if env.module_cflags:
        args.append(f"CFLAGS={env.module_cflags}")
    r = subprocess.run(args, env=make_env, capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, f"out-of-tree echo build failed:\n{r.stdout}\n{r.stderr}"
    # The flags came from the installed petrel.pc, not from the source tree.
    assert f"-I{env.prefix}/include" in r.stdout, r.stdout
    assert str(SRC_ROOT) not in r.stdout.replace(str(env.prefix), ""), r.stdout
    assert (build / "echo.so").exists()
    return build


# --- configuration text ---------------------------------------------------


def cfg_value(v):
    """A Python value as libconfig text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + " ".join(f"{k} = {cfg_value(x)};" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, dict) for x in v):
            return "(\n    " + ",\n    ".join(cfg_value(x) for x in v) + "\n  )"
        return "[ " + ", ".join(cfg_value(x) for x in v) + " ]"
    raise TypeError(f"no libconfig form for {v!r}")


def service_conf(module, **settings):
    """A conf.d file: top-level settings; a dict value named `settings` is
    written as the module's settings group."""
    lines = [f"module = {cfg_value(module)};"]
    for key, value in settings.items():
        if key == "settings":
            lines.append(f"settings: {cfg_value(value)};")
        else:
            lines.append(f"{key} = {cfg_value(value)};")
    return "\n".join(lines) + "\n"


def listener(port, host="127.0.0.1", **kw):
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return dict(address=addr, **kw)


_ISSUED_PORTS = set()


def free_port(host="127.0.0.1"):
    """A port nothing listens on now and that this run has not handed out
    before: the kernel may return a just-closed port again, and one
    instance asks for several ports before it binds any of them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(1000):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port
    raise RuntimeError("no unused port left in the ephemeral range")


# --- the daemon -----------------------------------------------------------


def sanitizer_findings(text):
    return [m for m in SANITIZER_MARKERS if m in text]


class Instance:
    """One petrel instance directory written by `petrelctl init`."""

    _count = 0

    def __init__(self, env, base_dir, module_path, name="inst", domain="example.test",
                 stock_modules=False):
        Instance._count += 1
        self.env = env
        # Short: the control socket path must fit in sun_path.
        self.dir = base_dir / f"{Instance._count:02d}-{name[:24]}"
        self.domain = domain
        r = subprocess.run(
            [str(env.petrelctl), "init", str(self.dir), "--domain", domain,
             "--port-base", "20000", "--module-path", str(module_path)],
            capture_output=True, text=True, timeout=CMD_TIMEOUT)
        assert r.returncode == 0, f"petrelctl init failed: {r.stdout}{r.stderr}"
        self.init_output = r.stdout
        self.conf = self.dir / "petrel.conf"
        self.confd = self.dir / "conf.d"
        self.users = self.dir / "data" / "users"
        self._stock_modules(env, stock_modules)
        self.log_path = self.dir / "petreld.log"
        self.pid_file = self.dir / "run" / "petreld.pid"
        self.control_socket = self.dir / "run" / "control.sock"
        self.proc = None
        self.runs = 0
        self.edit('shutdown_timeout = "10s";', 'shutdown_timeout = "3s";')

    # configuration

    def _stock_modules(self, env, keep):
        """init enables the in-tree modules (userdb_file, auth, ...) in
        conf.d. The instance's module_path is the echo build, so a kept file
        names its installed module; without stock_modules they are removed,
        and the instance runs only what the test enables."""
        for path in sorted(self.confd.glob("*.conf")):
            if not keep:
                path.unlink()
                continue
            text = path.read_text()
            m = re.search(r'^module = "([^"]+)";', text, re.M)
            assert m, f"{path}: no module line"
            so = env.prefix / "lib" / "petrel" / "modules" / m.group(1)
            # init's listeners sit at the fixed port base: each gets a
            # free port, so instances never compete for one.
            text = re.sub(r'"127\.0\.0\.1:\d+"', lambda _: f'"127.0.0.1:{free_port()}"', text)
            # smtp_out would ask the system's resolver, off this machine:
            # a test that sends out enables it with its own name server.
            if m.group(1) == "smtp_out":
                text = text.replace("enabled = true;", "enabled = false;", 1)
            path.write_text(text + f"file = {cfg_value(str(so))};\n")

    def set_module_settings(self, name, **settings):
        """Replace the settings group of an init-written conf.d file."""
        path = next(self.confd.glob(f"*-{name}.conf"))
        text = path.read_text()
        start = text.index("settings: {")
        end = text.index("};", start) + 2
        path.write_text(text[:start] + f"settings: {cfg_value(settings)};" + text[end:])

    def edit(self, old, new):
        text = self.conf.read_text()
        assert text.count(old) == 1, f"{old!r} not found once in {self.conf}"
        self.conf.write_text(text.replace(old, new))

    def set_global_rules(self, rules):
        text = self.conf.read_text()
        start = text.index("\nrules = (")
        end = text.index("\n);", start) + 3
        self.conf.write_text(text[:start] + f"\nrules = {cfg_value(rules)};" + text[end:])

    def write_confd(self, name, text):
        path = self.confd / name
        tmp = path.with_suffix(".tmp")  # not *.conf: never read half-written
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.rename(path)
        return path

    def remove_confd(self, name):
        (self.confd / name).unlink()

    # running

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _spawn(self, *args, log_path, foreground=True, env=None, preexec_fn=None):
        cmd = [str(self.env.petreld), "--config", str(self.conf)]
        if foreground:
            cmd.append("--foreground")
        cmd += list(args)
        # Appending: the daemon may open the same file for its log target.
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    env=env, preexec_fn=preexec_fn)
        _track(proc)
        return proc

    def start(self, preexec_fn=None):
        assert self.proc is None
        self.runs += 1
        if self.log_path.exists():  # keep the log of an earlier run
            self.log_path.rename(self.dir / f"petreld.log.{self.runs - 1}")
        self.proc = self._spawn(log_path=self.log_path, preexec_fn=preexec_fn)
        self.wait_log(STARTED_RE, timeout=START_TIMEOUT)
        return self

    def run_fail(self, *args, timeout=START_TIMEOUT, foreground=True):
        """Run petreld expecting it to exit on its own, with a log of its own
        (the instance may be running); returns (status, log)."""
        self.runs += 1
        log_path = self.dir / f"petreld-run{self.runs}.log"
        proc = self._spawn(*args, log_path=log_path, foreground=foreground)
        rc = _wait_or_kill(proc, timeout, "exit", log_path.read_text)
        text = log_path.read_text(errors="replace")
        assert not sanitizer_findings(text), text
        return rc, text

    def check_config(self):
        r = subprocess.run([str(self.env.petreld), "--config", str(self.conf), "--check-config"],
                           capture_output=True, text=True, timeout=START_TIMEOUT)
        out = r.stdout + r.stderr
        assert not sanitizer_findings(out), out
        return r.returncode, out

    def wait_log(self, pattern, timeout=10.0, since=0):
        """Wait for a regex in the log (from offset since); returns the match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            m = rx.search(text, since)
            if m:
                return m
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"petreld exited ({self.proc.returncode}) while waiting for "
                            f"{rx.pattern!r}:\n{text}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {rx.pattern!r} in the log within {timeout}s:\n{text}")
            time.sleep(0.05)

    def log_size(self):
        return len(self.log())

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; the daemon must exit 0 with a clean log. Returns the
        seconds it took."""
        proc = self.proc
        assert proc is not None
        t0 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = _wait_or_kill(proc, timeout, "stop", self.log)
        finally:
            self.proc = None
        took = time.monotonic() - t0
        text = self.log()
        assert rc == 0, f"petreld exited {rc}:\n{text}"
        assert not sanitizer_findings(text), text
        assert "petreld stopped" in text, text
        return took

    @property
    def pid(self):
        return self.proc.pid

    def ctl(self, *args, timeout=CMD_TIMEOUT):
        return subprocess.run([str(self.env.petrelctl), "--config", str(self.conf), *args],
                              capture_output=True, text=True, timeout=timeout)

    def status(self):
        r = self.ctl("status")
        assert r.returncode == 0, r.stdout + r.stderr
        return dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)

    def wait_idle(self, timeout=10.0):
        """Until the daemon has no connection left (closes are asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["connections"] == "0" and st["jobs_running"] == "0":
                return
            assert time.monotonic() < deadline, f"still busy after {timeout}s: {st}"
            time.sleep(0.05)

    def stats(self):
        r = self.ctl("stats")
        assert r.returncode == 0, r.stdout + r.stderr
        return {k: int(v) for k, v in (l.split() for l in r.stdout.splitlines() if l != "OK")}


def _instances(env, base_dir, echo_module, default_name):
    """A factory of instances, and stopping those still running after the
    tests (which asserts exit status 0 and a log free of sanitizer
    findings)."""
    made = []

    def factory(name=default_name, **kw):
        inst = Instance(env, base_dir, echo_module, name=name, **kw)
        made.append(inst)
        return inst

    yield factory
    for inst in made:
        if inst.proc is not None:
            inst.stop()


@pytest.fixture
def make_instance(env, base_dir, echo_module):
    yield from _instances(env, base_dir, echo_module, "inst")


@pytest.fixture(scope="module")
def module_instance(request, env, base_dir, echo_module):
    """make_instance for an instance shared by the tests of one file."""
    yield from _instances(env, base_dir, echo_module, "shared")


# --- clients --------------------------------------------------------------


def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    """A line client with a timeout on every operation."""

    def __init__(self, port, host="127.0.0.1", source=None, tls=False, server_hostname=None,
                 timeout=SOCK_TIMEOUT, greeting=True, rcvbuf=None, sndbuf=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.greeting = None
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock,
                                                         server_hostname=server_hostname)
        if greeting:
            self.greeting = self.line()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def line(self):
        while b"\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\n", 1)
        assert line.endswith(b"\r"), f"reply without CRLF: {line!r}"
        return line[:-1].decode()

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def expect_eof(self):
        """The server closes: nothing more than what is already read."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.buf += data
        except (ConnectionResetError, ssl.SSLError):
            pass
        assert self.buf == b"", f"unexpected data before EOF: {self.buf!r}"

    def starttls(self, server_hostname=None):
        assert self.buf == b"", f"plaintext left before the handshake: {self.buf!r}"
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BioTLS:
    """TLS over memory BIOs on a plain socket: the test decides what goes
    into each send (a PROXY header and the ClientHello together) and can
    drive reads and writes from one thread with select()."""

    def __init__(self, sock, prefix=b""):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_tls_context().wrap_bio(self.incoming, self.outgoing)
        self.prefix = prefix
        self.buf = b""
        self._run(self.obj.do_handshake)

    def _pump_out(self):
        data = self.prefix + self.outgoing.read()
        self.prefix = b""
        if data:
            self.sock.sendall(data)

    def _run(self, op, *args):
        for _ in range(100):
            try:
                result = op(*args)
                self._pump_out()
                return result
            except ssl.SSLWantReadError:
                self._pump_out()
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("connection closed in TLS")
                self.incoming.write(data)
        raise AssertionError("TLS made no progress")

    def line(self):
        while b"\n" not in self.buf:
            self.buf += self._run(self.obj.read, 65536)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode()

    def cmd(self, text):
        self._run(self.obj.write, (text + "\r\n").encode())
        return self.line()


def refused(port, reason, source=None, host="127.0.0.1"):
    """Assert the echo protocol's refusal, then EOF."""
    c = Client(port, host=host, source=source, greeting=False)
    try:
        assert c.line() == f"-ERR access denied: {reason}"
        c.expect_eof()
    finally:
        c.close()


def admitted(port, source=None, host="127.0.0.1", greeting="+OK petrel echo ready"):
    with Client(port, host=host, source=source) as c:
        assert c.greeting == greeting
        assert c.cmd("ECHO hello") == "+OK hello"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


# --- accounts: userdb_file, auth and the authprobe test module -------------


def b64(data):
    import base64
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def ctl_ok(r):
    """The stdout of a petrelctl run that must succeed cleanly."""
    assert r.returncode == 0, r.stdout + r.stderr
    assert not sanitizer_findings(r.stderr), r.stderr
    return r.stdout


def ctl_fails(r, message, status=1):
    """A petrelctl run refused with status and message on stderr."""
    assert r.returncode == status, f"status {r.returncode}: {r.stdout}{r.stderr}"
    assert not sanitizer_findings(r.stderr), r.stderr
    assert message in r.stderr, r.stderr
    return r.stderr


def ctl_input(inst, *args, stdin=""):
    """petrelctl with text on standard input (never a password argument)."""
    return subprocess.run([str(inst.env.petrelctl), "--config", str(inst.conf), *args],
                          input=stdin, capture_output=True, text=True, timeout=CMD_TIMEOUT)


def add_account(inst, address, password, *options):
    r = ctl_input(inst, "account", "add", address, *options, stdin=password + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    return r


class AuthProbe:
    """An instance running userdb_file, auth and authprobe on one port."""

    def __init__(self, make_instance, env, tls=False, **auth_settings):
        self.inst = make_instance(stock_modules=True)
        settings = dict(failure_delay="1s", plaintext_without_tls=True)
        settings.update(auth_settings)
        self.inst.set_module_settings("auth", **settings)
        self.port = free_port()
        self.inst.write_confd("50-authprobe.conf", service_conf(
            "authprobe", file=env.test_module("authprobe"),
            listeners=[listener(self.port, tls="implicit" if tls else "none")]))
        self.tls = tls

    def start(self):
        self.inst.start()
        return self

    def client(self, source=None):
        c = Client(self.port, source=source, tls=self.tls)
        assert c.greeting == "+OK authprobe ready"
        return c

    def plain(self, user, password, source=None, authzid=""):
        message = authzid + "\0" + user + "\0" + password
        with self.client(source) as c:
            return c.cmd("AUTH PLAIN " + b64(message))

    def login(self, user, password):
        with self.client() as c:
            assert c.cmd("AUTH LOGIN") == "+ VXNlcm5hbWU6"
            assert c.cmd(b64(user)) == "+ UGFzc3dvcmQ6"
            return c.cmd(b64(password))

    def lookup(self, address):
        with self.client() as c:
            return c.cmd(f"LOOKUP {address}")

    def wait_plain(self, user, password, want, timeout=10.0):
        """The daemon re-reads the account file within its check interval:
        poll (bounded) until a login gives the wanted answer."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.plain(user, password)
            if got.startswith(want):
                return got
            assert time.monotonic() < deadline, f"still {got!r} after {timeout}s, want {want!r}"
            time.sleep(0.2)
