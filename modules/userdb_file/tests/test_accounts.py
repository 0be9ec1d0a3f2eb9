"""petrelctl's account commands (admin commands of userdb_file), with
the daemon stopped and running, their --json form, `userdb_file reload`,
and the demo account of `petrelctl init`."""

import json
import os
import re
import select
import signal
import smtplib
import subprocess
import time

import pytest

from harness import CMD_TIMEOUT, AuthProbe, add_account, ctl_input
from smtp_helpers import SmtpServer, login, message


@pytest.fixture(params=["stopped", "running"])
def inst(request, make_instance):
    """An instance with the stock modules; the commands run in petrelctl
    either way (the file is root's), and a running daemon follows."""
    i = make_instance(stock_modules=True)
    if request.param == "running":
        i.start()
    return i


def ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def fails(r, message):
    assert r.returncode != 0, r.stdout
    assert message in r.stderr, r.stderr
    return r.stderr


def test_init_writes_modules_and_demo_account(make_instance, env):
    p = AuthProbe(make_instance, env)
    inst = p.inst
    m = re.search(r"demo account:  demo@example\.test  password: (\S+)", inst.init_output)
    assert m, inst.init_output
    password = m.group(1)
    assert len(password) >= 12
    # Root gives it to the daemon's group (root-owned: test_lifecycle);
    # otherwise the daemon runs as its owner.
    assert inst.users.stat().st_mode & 0o777 == (0o640 if os.geteuid() == 0 else 0o600)
    text = inst.users.read_text()
    assert "domain example.test\n" in text
    assert re.search(r"^account demo@example\.test \$y\$\S+$", text, re.M), text
    assert password not in text
    assert ok(inst.ctl("domain", "list")) == "example.test\n"
    p.start()
    assert p.plain("demo@example.test", password) == "+OK demo@example.test"
    r = inst.ctl("modules")
    assert "module userdb_file 1.0" in r.stdout and "module auth 1.0" in r.stdout, r.stdout


def test_commands_keep_the_rest_of_the_file(inst):
    inst.users.write_text(inst.users.read_text() +
                          "\n# hand-written comment\nthis line is broken\n")
    ok(ctl_input(inst, "domain", "add", "Other.Test"))
    fails(ctl_input(inst, "domain", "add", "other.test"), "domain other.test already exists")
    out = ok(ctl_input(inst, "account", "add", "carol@other.test", "--quota", "1G",
                       "--messages", "100", stdin="pw-carol\n"))
    assert "account carol@other.test added" in out
    fails(ctl_input(inst, "account", "add", "carol@other.test", stdin="x\n"), "already exists")
    fails(ctl_input(inst, "account", "add", "dave@nowhere.test", stdin="x\n"),
          "unknown domain nowhere.test")
    fails(ctl_input(inst, "account", "add", "not-an-address@", stdin="x\n"),
          "not a valid address")
    fails(ctl_input(inst, "account", "add", "eve@other.test", stdin=""), "empty password")
    ok(ctl_input(inst, "account", "quota", "carol@other.test", "none", "50"))
    ok(ctl_input(inst, "account", "disable", "carol@other.test"))
    assert ok(inst.ctl("account", "list", "other.test")) == \
        "carol@other.test quota=none messages=50 disabled\n"
    ok(ctl_input(inst, "account", "enable", "carol@other.test"))
    ok(ctl_input(inst, "alias", "add", "team@other.test", "carol@other.test", "x@far.test"))
    fails(ctl_input(inst, "alias", "add", "team@other.test", "team@other.test"), "loop")
    fails(ctl_input(inst, "alias", "add", "carol@other.test", "x@far.test"), "is an account")
    assert ok(inst.ctl("alias", "list", "other.test")) == "team@other.test carol@other.test x@far.test\n"
    ok(ctl_input(inst, "alias", "del", "team@other.test", "x@far.test"))
    assert ok(inst.ctl("alias", "list", "other.test")) == "team@other.test carol@other.test\n"
    ok(ctl_input(inst, "forward", "set", "carol@other.test", "c@far.test", "--keep"))
    assert ok(inst.ctl("account", "list", "other.test")) == \
        "carol@other.test quota=none messages=50 forward=c@far.test keep\n"
    fails(ctl_input(inst, "domain", "del", "other.test"), "delete them first")
    ok(ctl_input(inst, "forward", "clear", "carol@other.test"))
    ok(ctl_input(inst, "alias", "del", "team@other.test"))
    out = ok(ctl_input(inst, "account", "del", "carol@other.test"))
    assert "mail stays on disk" in out
    ok(ctl_input(inst, "domain", "del", "other.test"))
    text = inst.users.read_text()
    assert "# hand-written comment\nthis line is broken\n" in text
    assert "other.test" not in text
    # No temporary file is left behind.
    assert sorted(p.name for p in inst.users.parent.iterdir()
                  if p.name.startswith("users")) == ["users", "users.lock"]
    if inst.proc is not None:  # every change was taken up at once
        assert len(re.findall(r"userdb_file: reloaded .*/users: ", inst.log())) >= 12


USAGES = {
    "domain": "domain add DOMAIN [--catchall ADDRESS] | del DOMAIN | list | "
              "catchall DOMAIN ADDRESS|none",
    "account": "account add ADDRESS [--quota SIZE] [--messages N] | del ADDRESS | "
               "list [DOMAIN] | passwd ADDRESS | quota ADDRESS SIZE|none [N|none] | "
               "disable ADDRESS | enable ADDRESS",
    "alias": "alias add ADDRESS TARGET... | del ADDRESS [TARGET...] | list [DOMAIN]",
    "forward": "forward set ADDRESS TARGET... [--keep] | clear ADDRESS",
}


@pytest.mark.parametrize("args", [
    ("domain",), ("domain", "frobnicate"), ("domain", "list", "x"), ("domain", "add"),
    ("domain", "add", "a.test", "--catchal", "x@a.test"), ("domain", "catchall", "a.test"),
    ("account",), ("account", "list", "a", "b"), ("account", "add"),
    ("account", "add", "x@example.test", "--quota"), ("account", "del"),
    ("account", "quota", "demo@example.test"), ("account", "enable"),
    ("alias", "add", "x@example.test"), ("alias", "del"), ("alias", "list", "a", "b"),
    ("forward", "set", "demo@example.test"), ("forward", "set", "demo@example.test", "--keep"),
    ("forward", "clear"),
])
def test_usage_errors(make_instance, args):
    """A usage error shows the group's usage line, as it always has."""
    inst = make_instance(stock_modules=True)
    before = inst.users.read_text()
    r = ctl_input(inst, *args, stdin="pw\n")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr == f"usage: petrelctl [--config FILE] {USAGES[args[0]]}\n"
    assert r.stdout == ""
    assert inst.users.read_text() == before


def json_rows(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_json_listings(inst):
    ok(ctl_input(inst, "domain", "add", "other.test", "--catchall", "demo@example.test"))
    ok(add_account(inst, "carol@other.test", "pw-carol", "--quota", "1G", "--messages", "100"))
    ok(add_account(inst, "dan@other.test", "pw-dan"))
    ok(ctl_input(inst, "forward", "set", "carol@other.test", "c@far.test", "d@far.test",
                 "--keep"))
    ok(ctl_input(inst, "account", "disable", "carol@other.test"))
    ok(ctl_input(inst, "alias", "add", "team@other.test", "carol@other.test", "x@far.test"))
    assert json_rows(inst.ctl("--json", "domain", "list")) == [
        {"domain": "example.test", "catchall": None},
        {"domain": "other.test", "catchall": "demo@example.test"},
    ]
    assert json_rows(inst.ctl("--json", "account", "list", "other.test")) == [
        {"address": "carol@other.test", "quota": 1024 ** 3, "messages": 100,
         "forward": ["c@far.test", "d@far.test"], "keep": True, "disabled": True},
        {"address": "dan@other.test", "quota": None, "messages": None, "forward": [],
         "keep": False, "disabled": False},
    ]
    assert [a["address"] for a in json_rows(inst.ctl("--json", "account", "list"))] == [
        "demo@example.test", "carol@other.test", "dan@other.test"]
    assert json_rows(inst.ctl("--json", "alias", "list")) == [
        {"address": "postmaster@example.test", "targets": ["demo@example.test"]},
        {"address": "team@other.test", "targets": ["carol@other.test", "x@far.test"]},
    ]
    assert json_rows(inst.ctl("--json", "alias", "list", "nowhere.test")) == []
    # The text form is unchanged by the rows.
    assert ok(inst.ctl("account", "list", "other.test")) == (
        "carol@other.test quota=1073741824 messages=100 forward=c@far.test,d@far.test keep "
        "disabled\n"
        "dan@other.test quota=none messages=none\n")
    assert ok(inst.ctl("domain", "list")) == "example.test\nother.test catchall=demo@example.test\n"


def test_password_is_never_an_argument(inst):
    before = inst.users.read_text()
    # An extra word where a password might go is a usage error.
    r = ctl_input(inst, "account", "add", "x@example.test", "secret-on-argv", stdin="pw\n")
    assert r.returncode == 2, r.stdout + r.stderr
    r = ctl_input(inst, "account", "passwd", "demo@example.test", "secret-on-argv",
                  stdin="pw\n")
    assert r.returncode == 2
    assert inst.users.read_text() == before
    assert "--password" not in ok(inst.ctl("--help"))


def _account_add_on_a_terminal(inst):
    """petrelctl account add with a pseudo-terminal as its terminal: (pid, master fd)."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        # A test run started in the background inherits SIGINT ignored;
        # the child must see ^C as a user would.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        os.execv(str(inst.env.petrelctl), [str(inst.env.petrelctl), "--config", str(inst.conf),
                                           "account", "add", "tty@example.test"])
    return pid, fd


def _wait_bounded(pid, deadline):
    """waitpid, but a child still running at the deadline is killed (and
    the test then fails on its status)."""
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def _read_until(fd, out, want, deadline):
    """Read fd (a pty master or a pipe) onto out until want(out) holds, EOF
    or the deadline: every read waits in select() for at most the time
    left, so a child that never writes cannot block the test."""
    while time.monotonic() < deadline:
        if want(out):
            return out
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data = os.read(fd, 1024)
        except OSError:  # EIO: the pty's other side is closed
            break
        if not data:
            break
        out += data
    return out


def _prompts(out):
    return out.count(b"New password: ") + out.count(b"Again: ")


def test_password_prompt_on_a_terminal(inst):
    """On a terminal the password is asked twice, without echo; the
    answer is typed as soon as each prompt shows."""
    pid, fd = _account_add_on_a_terminal(inst)
    deadline = time.monotonic() + CMD_TIMEOUT
    out = b""
    for sent in (1, 2):
        out = _read_until(fd, out, lambda o: _prompts(o) >= sent, deadline)
        assert _prompts(out) == sent, out
        os.write(fd, b"tty-password\n")
    out = _read_until(fd, out, lambda o: False, deadline)  # to EOF
    status = _wait_bounded(pid, deadline)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"tty-password" not in out  # not echoed
    assert "account tty@example.test " in inst.users.read_text()


def test_echo_is_off_before_the_prompt_shows(inst):
    """The prompt is written only once echo is off: petrelctl's stderr is
    a full pipe, so it blocks writing the prompt; by then the terminal
    (its standard input) must already be quiet. Typing right after the
    prompt was lost (and a test reading it hung) when echo went off
    after the prompt, with a flush of the input."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()
    rd, wr = os.pipe()
    os.set_blocking(wr, False)
    try:
        while True:
            os.write(wr, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(wr, True)
    proc = subprocess.Popen(
        [str(inst.env.petrelctl), "--config", str(inst.conf), "account", "add",
         "tty@example.test"], stdin=slave, stdout=slave, stderr=wr, start_new_session=True)
    os.close(slave)
    os.close(wr)
    deadline = time.monotonic() + CMD_TIMEOUT
    try:
        quiet_by = time.monotonic() + 20  # petrelctl (under ASan) has started by then
        while termios.tcgetattr(master)[3] & termios.ECHO and time.monotonic() < quiet_by:
            time.sleep(0.01)
        assert not termios.tcgetattr(master)[3] & termios.ECHO, "echo still on at the prompt"
        assert proc.poll() is None
        # Drain the filler: the prompt comes, and the answers are kept.
        fcntl.fcntl(rd, fcntl.F_SETFL, fcntl.fcntl(rd, fcntl.F_GETFL) | os.O_NONBLOCK)
        err = b""
        for sent in (1, 2):
            err = _read_until(rd, err, lambda o: _prompts(o) >= sent, deadline)
            assert _prompts(err) == sent, err[-200:]
            os.write(master, b"tty-password\n")
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        assert proc.returncode == 0, _read_until(rd, err, lambda o: False, deadline)[-500:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=CMD_TIMEOUT)
        os.close(master)
        os.close(rd)
    assert "account tty@example.test " in inst.users.read_text()


def _prompt_then_signal(inst, sig_bytes):
    """Run account add on a terminal, answer nothing, send a control
    character at the first prompt; the terminal settings after it ends."""
    import termios
    pid, fd = _account_add_on_a_terminal(inst)
    deadline = time.monotonic() + CMD_TIMEOUT
    out = _read_until(fd, b"", lambda o: b"New password: " in o, deadline)
    if b"New password: " not in out:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        pytest.fail(f"no prompt within {CMD_TIMEOUT}s: {out!r}")
    # Echo is off before the prompt is written.
    assert not termios.tcgetattr(fd)[3] & termios.ECHO
    os.write(fd, sig_bytes)
    status = _wait_bounded(pid, deadline)
    attrs = termios.tcgetattr(fd)  # the pty's settings, as the child left them
    os.close(fd)
    return status, attrs


def test_interrupted_prompt_restores_echo(inst):
    """Ctrl-C at the password prompt ends petrelctl with echo back on."""
    import signal
    import termios
    before = inst.users.read_text()
    status, attrs = _prompt_then_signal(inst, b"\x03")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT, status
    assert attrs[3] & termios.ECHO
    assert inst.users.read_text() == before


def test_planted_symlinks_are_not_followed(inst, tmp_path):
    """The daemon's user owns the data directory: links it plants where
    petrelctl (root) puts its temporary and lock files are not followed."""
    data = inst.users.parent
    target = tmp_path / "target"
    target.write_text("precious\n")
    tmp = data / "users.tmp"
    tmp.symlink_to(target)
    ok(ctl_input(inst, "domain", "add", "one.test"))
    assert target.read_text() == "precious\n"
    assert "domain one.test\n" in inst.users.read_text()
    assert tmp.is_symlink()
    tmp.unlink()
    lock = data / "users.lock"
    lock.unlink()
    lock.symlink_to(target)
    fails(ctl_input(inst, "domain", "add", "two.test"), "cannot lock")
    fails(inst.ctl("domain", "list"), "cannot lock")
    assert target.read_text() == "precious\n"
    assert "two.test" not in inst.users.read_text()
    lock.unlink()
    os.mkfifo(lock)
    fails(ctl_input(inst, "domain", "add", "two.test"), "not a regular file")
    lock.unlink()


def test_rewrite_keeps_owner_group_and_mode(inst):
    users = inst.users
    ok(ctl_input(inst, "domain", "list"))
    lock = users.parent / "users.lock"
    assert lock.stat().st_mode & 0o777 == 0o660
    if os.geteuid() == 0:
        os.chown(users, 4321, 4322)
    os.chmod(users, 0o604)
    ok(ctl_input(inst, "domain", "add", "kept.test"))
    st = users.stat()
    assert st.st_mode & 0o7777 == 0o604
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4321, 4322)
    # A lock file the caller cannot write still locks (read-only, shared or not).
    os.chmod(lock, 0o440)
    try:
        assert "kept.test" in ok(inst.ctl("domain", "list"))
    finally:
        os.chmod(lock, 0o660)


def test_quota_units(inst):
    ok(ctl_input(inst, "account", "quota", "demo@example.test", "2k", "7"))
    assert "demo@example.test quota=2048 messages=7" in ok(inst.ctl("account", "list"))
    ok(ctl_input(inst, "account", "quota", "demo@example.test", "3T"))
    assert f"quota={3 * 1024 ** 4} " in ok(inst.ctl("account", "list"))
    fails(ctl_input(inst, "account", "quota", "demo@example.test", "3x"), "usage")


def test_delete_removes_duplicate_lines(inst):
    """An older duplicate line must not come into force after a delete."""
    text = inst.users.read_text()
    line = next(x for x in text.splitlines() if x.startswith("account demo@example.test "))
    inst.users.write_text(text + line.replace("demo@", "Demo@") + " disabled\n")
    ok(ctl_input(inst, "account", "del", "demo@example.test"))
    assert "account demo@" not in inst.users.read_text().lower()
    assert ok(inst.ctl("account", "list")) == ""


def test_concurrent_petrelctl_runs_do_not_collide(inst):
    procs = [subprocess.Popen([str(inst.env.petrelctl), "--config", str(inst.conf), "alias",
                               "add", f"list{i}@example.test", "demo@example.test"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(12)]
    for proc in procs:
        out, err = proc.communicate(timeout=CMD_TIMEOUT)
        assert proc.returncode == 0, err
    listed = ok(inst.ctl("alias", "list")).splitlines()
    assert len(listed) == 13, listed  # and init's postmaster


def test_running_daemon_follows_petrelctl(make_instance, env):
    p = AuthProbe(make_instance, env, failure_delay="0s")
    p.start()
    inst = p.inst
    add_account(inst, "new@example.test", "first-pw")
    t0 = time.monotonic()
    p.wait_plain("new@example.test", "first-pw", "+OK new@example.test", timeout=10)
    assert time.monotonic() - t0 < 10
    ok(ctl_input(inst, "account", "passwd", "new@example.test", stdin="second-pw\n"))
    p.wait_plain("new@example.test", "second-pw", "+OK new@example.test")
    assert p.plain("new@example.test", "first-pw") == "-ERR authentication failed"
    ok(ctl_input(inst, "account", "del", "new@example.test"))
    p.wait_plain("new@example.test", "second-pw", "-ERR authentication failed")
    log = inst.log()
    assert "first-pw" not in log and "second-pw" not in log
    # Nor in the daemon's command line.
    with open(f"/proc/{inst.pid}/cmdline", "rb") as f:
        assert b"pw" not in f.read()


def test_change_check_follows_a_reload(make_instance, env):
    """The file check is a scheduled job: a reload that changes
    check_interval replaces it, and changes made after are still seen."""
    p = AuthProbe(make_instance, env, failure_delay="0s")
    p.start()
    inst = p.inst
    inst.set_module_settings("userdb_file", file="users", check_interval="2s")
    since = inst.log_size()
    r = inst.ctl("reload")
    assert r.returncode == 0 and r.stdout == "OK\n", r.stdout + r.stderr
    inst.wait_log(r"info: core: configuration reloaded", since=since)
    add_account(inst, "later@example.test", "later-pw")
    p.wait_plain("later@example.test", "later-pw", "+OK later@example.test", timeout=10)


def test_reload_command(make_instance, env):
    """`userdb_file reload` runs in the daemon only; a file it cannot read
    is refused, and the old data stays in force."""
    p = AuthProbe(make_instance, env, failure_delay="0s")
    inst = p.inst
    add_account(inst, "kept@example.test", "kept-pw")
    r = inst.ctl("userdb_file", "reload")
    assert r.returncode != 0, r.stdout  # no daemon: nothing to reload
    p.start()
    r = inst.ctl("userdb_file", "reload")
    assert r.returncode == 0, r.stdout + r.stderr
    saved = inst.users.with_name("users.saved")
    inst.users.rename(saved)
    inst.users.mkdir()
    try:
        r = inst.ctl("userdb_file", "reload")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "reload failed, the old data stays in force" in r.stderr
        assert "not a regular file" in r.stderr
        assert p.plain("kept@example.test", "kept-pw") == "+OK kept@example.test"
    finally:
        inst.users.rmdir()
        saved.rename(inst.users)
    assert inst.ctl("userdb_file", "reload").returncode == 0


@pytest.fixture
def slow_check_server(make_instance, env):
    """An SMTP server whose account file check runs once an hour: only the
    reload that petrelctl sends explains a change it sees at once."""
    srv = SmtpServer(make_instance, env, "slowcheck", accounts=("alice",))
    srv.inst.set_module_settings("userdb_file", file="users", check_interval="1h")
    return srv.start()


def test_a_change_is_in_force_when_petrelctl_returns(slow_check_server):
    srv = slow_check_server
    new = "new@example.test"
    srv.add_account(new, password="new-pw-1")
    with srv.smtp() as s:
        s.ehlo()
        assert s.mail("sender@client.test") == (250, b"2.1.0 Ok")
        assert s.rcpt(new) == (250, b"2.1.5 Ok")
        code, _ = s.data(message("at once", to=new).encode())
        assert code == 250
    assert len(srv.messages(new)) == 1  # stored before the 250
    with srv.submission(new, "new-pw-1") as s:
        assert s.noop()[0] == 250
    r = ctl_input(srv.inst, "account", "del", new)
    assert r.returncode == 0, r.stdout + r.stderr
    with srv.smtp() as s:
        s.ehlo()
        assert s.mail("sender@client.test") == (250, b"2.1.0 Ok")
        code, text = s.rcpt(new)
        assert code == 550, text
        assert text.startswith(b"5.1.1 ")
    with srv.submission() as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(s, new, "new-pw-1")
    assert len(re.findall(r"userdb_file: reloaded ", srv.log())) == 2
