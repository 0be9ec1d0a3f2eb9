"""The daemon's life: privileges, petrelctl, stopping with clients
connected, running detached, log reopening, one daemon per configuration."""

import grp
import json
import os
import pwd
import re
import select
import signal
import stat
import subprocess
import sys
import time

import pytest

from harness import (CMD_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, Client, admitted, free_port,
                     listener, proc_status, sanitizer_findings, service_conf, wait_for)


def echo_instance(make_instance, name, **listener_kw):
    inst = make_instance(name)
    inst.port = free_port()
    inst.write_confd("50-echo.conf", service_conf(
        "echo", listeners=[listener(inst.port, **listener_kw)]))
    return inst


def test_privileges_are_dropped(make_instance, env):
    if os.geteuid() != 0:
        pytest.skip("needs root: petreld drops privileges only when started as root")
    inst = echo_instance(make_instance, "privdrop").start()
    inst.wait_log(rf"info: core: running as {env.run_user} \(uid {env.run_uid}, "
                  rf"gid {env.run_gid}\)")
    ids = f"{env.run_uid}\t{env.run_uid}\t{env.run_uid}\t{env.run_uid}"
    gids = f"{env.run_gid}\t{env.run_gid}\t{env.run_gid}\t{env.run_gid}"
    tasks = os.listdir(f"/proc/{inst.pid}/task")
    assert len(tasks) > 1  # I/O threads and workers run too
    for tid in tasks:
        st = proc_status(f"{inst.pid}/task/{tid}")
        assert st["Uid"] == ids, (tid, st["Uid"])
        assert st["Gid"] == gids, (tid, st["Gid"])
        assert st["Groups"].split() == [str(env.run_gid)], (tid, st["Groups"])
    sock = inst.control_socket.stat()
    assert stat.S_ISSOCK(sock.st_mode)
    assert stat.S_IMODE(sock.st_mode) == 0o600
    assert sock.st_uid == env.run_uid
    st = (inst.dir / "run").stat()
    assert (st.st_uid, st.st_gid) == (env.run_uid, env.run_gid)
    # data_dir is root's, writable by the group with the sticky bit.
    st = (inst.dir / "data").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, env.run_gid, 0o1770)
    assert int(inst.pid_file.read_text()) == inst.pid
    # Still serving, and the administrator still reaches it as root.
    admitted(inst.port)
    assert inst.status()["pid"] == str(inst.pid)


def _needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: init makes the daemon's account and petreld drops to it "
                    "only as root")


def _owner_mode(path):
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_init_as_root_uses_an_account_of_its_own(make_instance, env):
    """init as root: the daemon runs as the system user petrel (made when
    missing, as a package's postinst does), never as the shared nobody;
    secrets are root's, readable by petrel's group only."""
    _needs_root()
    inst = make_instance("account", stock_modules=True)  # the account commands are userdb_file's
    pw = pwd.getpwnam("petrel")
    assert pw.pw_uid not in (0, 65534) and pw.pw_gid not in (0, 65534)
    assert grp.getgrgid(pw.pw_gid).gr_name == "petrel"
    assert pw.pw_shell.endswith(("/nologin", "/false")), pw.pw_shell
    assert not os.path.exists(pw.pw_dir), pw.pw_dir  # no home made
    assert 'user = "petrel";' in inst.conf.read_text()
    gid = pw.pw_gid
    assert _owner_mode(inst.dir) == (0, gid, 0o750)
    for name in ("petrel.conf", "tls/key.pem", "tls/cert.pem", "data/users"):
        assert _owner_mode(inst.dir / name) == (0, gid, 0o640), name
    assert _owner_mode(inst.dir / "data") == (0, gid, 0o1770)
    # petrelctl's rename-over keeps them so.
    r = inst.ctl("domain", "add", "kept.test")
    assert r.returncode == 0, r.stderr
    assert "domain kept.test" in inst.users.read_text()
    assert _owner_mode(inst.users) == (0, gid, 0o640)
    # An account petreld would refuse is refused by init too.
    for user in ("nobody", "root"):
        r = subprocess.run([str(env.petrelctl), "init", str(inst.dir.parent / f"as-{user}"),
                            "--user", user], capture_output=True, text=True, timeout=CMD_TIMEOUT)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"petrelctl: init: user {user} " in r.stderr, r.stderr
        assert not (inst.dir.parent / f"as-{user}" / "petrel.conf").exists()


# Run as another account: try to change the account file three ways and
# print how each went.
TAMPER = r"""
import errno, json, os, sys
users = sys.argv[1]
planted = os.path.join(os.path.dirname(users), "planted.%d" % os.getpid())
result = {}
def attempt(name, action):
    try:
        action()
        result[name] = "done"
    except OSError as e:
        result[name] = errno.errorcode[e.errno]
def replace():
    with open(planted, "w") as f:
        f.write("domain example.test\n")
    try:
        os.rename(planted, users)
    finally:
        if os.path.exists(planted):
            os.unlink(planted)
attempt("write", lambda: open(users, "a").close())
attempt("replace", replace)
attempt("unlink", lambda: os.unlink(users))
print(json.dumps(result))
"""


def _tamper_as(uid, gid, users):
    def become():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    r = subprocess.run([sys.executable, "-c", TAMPER, str(users)], preexec_fn=become,
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_other_accounts_cannot_replace_the_account_file(make_instance, env):
    """With the daemon running (it sets data_dir up): a process running as
    nobody cannot touch the account file; one running as petrel can read
    it and write its store and queue beside it, but cannot replace it."""
    _needs_root()
    inst = make_instance("tamper", stock_modules=True).start()
    before = inst.users.read_text()
    gid = env.run_gid
    # The queue, made by the daemon after dropping root, is petrel's.
    assert _owner_mode(inst.dir / "data" / "queue")[:2] == (env.run_uid, gid)
    assert _owner_mode(inst.dir / "data") == (0, gid, 0o1770)
    nobody = pwd.getpwnam("nobody")
    got = _tamper_as(nobody.pw_uid, nobody.pw_gid, inst.users)
    assert got == {"write": "EACCES", "replace": "EACCES", "unlink": "EACCES"}, got
    got = _tamper_as(env.run_uid, gid, inst.users)
    assert got == {"write": "EACCES", "replace": "EPERM", "unlink": "EPERM"}, got
    assert inst.users.read_text() == before
    assert _owner_mode(inst.users) == (0, gid, 0o640)
    assert inst.status()["pid"] == str(inst.pid)


def test_links_planted_by_the_daemon_user_are_not_followed(make_instance, env):
    """The run directory belongs to the daemon's account, so whoever holds
    that account (a compromised daemon) can plant links there, and in a
    log directory it writes. Root, starting petreld, must then neither
    write through them nor hand their targets to that account."""
    _needs_root()
    inst = echo_instance(make_instance, "links")
    victim = inst.dir / "victim"
    victim.write_text("root's secret\n")
    os.chmod(victim, 0o600)
    run = inst.dir / "run"
    run.mkdir(exist_ok=True)
    os.chown(run, env.run_uid, env.run_gid)
    for name in ("petreld.pid.tmp", "petreld.pid"):
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(victim)
    inst.start()
    assert victim.read_text() == "root's secret\n"
    assert _owner_mode(victim) == (0, 0, 0o600)
    assert not inst.pid_file.is_symlink()
    assert int(inst.pid_file.read_text()) == inst.pid
    assert not (run / "petreld.pid.tmp").exists()
    inst.stop()

    # A log file that is a link, or a second name of a file, is refused.
    logs = inst.dir / "logs"
    logs.mkdir()
    os.chown(logs, env.run_uid, env.run_gid)
    log_file = logs / "petreld.log"
    inst.edit('target = "stderr";', f'target = "file";\n  file = "{log_file}";')
    for plant, says in ((log_file.symlink_to, "Too many levels of symbolic links"),
                        (log_file.hardlink_to, "Operation not permitted")):
        log_file.unlink(missing_ok=True)
        plant(victim)
        rc, out = inst.run_fail()
        assert rc != 0, out
        assert says in out, out
        assert victim.read_text() == "root's secret\n"
        assert _owner_mode(victim) == (0, 0, 0o600)


@pytest.mark.parametrize("edit, says", [
    ('user = "nobody";', r"server\.user 'nobody' \(uid 65534, gid 65534\) is shared by other "
                          r"services \(nobody\)"),
    ('user = "root";', r"server\.user 'root' \(uid 0, gid 0\) is root"),
    ('user = "petrel";\n  group = "nogroup";',
     r"server\.user 'petrel' \(uid \d+, gid 65534\) would run in a group shared by other "
     r"services \(nogroup\)"),
])
def test_petreld_refuses_root_and_shared_accounts(make_instance, edit, says):
    _needs_root()
    inst = echo_instance(make_instance, "shared")
    inst.edit('user = "petrel";', edit)
    rc, out = inst.check_config()
    assert rc == 1, out
    assert re.search(rf"^petreld: {re.escape(str(inst.conf))}: {says}", out, re.M), out
    rc, log = inst.run_fail()
    assert rc != 0, log
    assert re.search(rf"error: core: cannot start: {re.escape(str(inst.conf))}: {says}", log), log
    assert "listening on" not in log  # refused before binding anything
    assert not inst.pid_file.exists()


def test_petrelctl_status_modules_stats(make_instance, env, echo_module):
    inst = echo_instance(make_instance, "ctl", tls="starttls").start()
    st = inst.status()
    assert st["pid"] == str(inst.pid)
    assert st["config"] == str(inst.conf)
    assert re.fullmatch(r"\d+\.\d+\.\d+", st["version"])
    assert int(st["uptime"]) >= 0
    assert st["listeners"] == "1"
    assert st["connections"] == "0"
    assert st["workers"] == "16"
    assert int(st["io_threads"]) >= 1
    r = inst.ctl("status")
    assert r.stdout.endswith("\nOK\n")

    r = inst.ctl("modules")
    assert r.returncode == 0
    assert r.stdout == (f"module echo 1.0 {echo_module}/echo connections=0\n"
                        f"  listener 127.0.0.1:{inst.port} protocol=echo tls=starttls\n"
                        "OK\n")

    before = inst.stats()
    for name in ("core.connections.accepted", "core.connections.current",
                 "core.connections.refused", "core.bytes.in", "core.bytes.out"):
        assert name in before, name
    with Client(inst.port) as a:
        assert a.cmd("ECHO one") == "+OK one"
        assert inst.status()["connections"] == "1"
        r = inst.ctl("modules")
        assert "module echo 1.0" in r.stdout and "connections=1\n" in r.stdout
        admitted(inst.port)
        # The server sees admitted()'s close a moment later (a loaded
        # machine: a moment more).
        wait_for(lambda: inst.stats()["core.connections.current"] ==
                 before["core.connections.current"] + 1, what="one connection left")
    inst.wait_idle()
    after = inst.stats()
    assert after["core.connections.accepted"] == before["core.connections.accepted"] + 2
    assert after["core.connections.current"] == before["core.connections.current"]
    assert after["core.bytes.in"] > before["core.bytes.in"]
    assert after["core.bytes.out"] > before["core.bytes.out"]


def test_petrelctl_errors(make_instance):
    inst = echo_instance(make_instance, "ctl-errors")
    r = inst.ctl("status")
    assert r.returncode == 1
    assert f"cannot reach petreld at {inst.control_socket}" in r.stderr
    inst.start()
    r = inst.ctl("frobnicate")
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr


def test_sigterm_with_open_connections(make_instance):
    """An idle client gets the protocol's goodbye; a client in the middle
    of a job gets its answer, then the goodbye; the daemon exits 0."""
    inst = echo_instance(make_instance, "sigterm").start()
    idle = Client(inst.port)
    busy = Client(inst.port)
    try:
        busy.send("SLOW 1500\r\n")
        wait_for(lambda: inst.status()["jobs_running"] == "1", what="the SLOW job to run")
        t0 = time.monotonic()
        inst.signal(signal.SIGTERM)
        assert idle.line() == "-ERR server shutting down"
        idle.expect_eof()
        assert busy.line() == "+OK slept 1500"
        assert busy.line() == "-ERR server shutting down"
        busy.expect_eof()
        inst.stop()
        assert time.monotonic() - t0 < 3 + 5  # shutdown_timeout + margin
    finally:
        idle.close()
        busy.close()
    log = inst.log()
    assert "signal 15: stopping" in log
    assert "closing connections still open" not in log
    assert not inst.pid_file.exists()
    assert not inst.control_socket.exists()


def test_sigterm_forces_out_a_client_that_does_not_read(make_instance):
    """A client that never reads its answers cannot hold the daemon past
    shutdown_timeout."""
    inst = echo_instance(make_instance, "sigterm-stuck", max_output="4k").start()
    c = Client(inst.port, rcvbuf=4096, sndbuf=4096, timeout=10)
    try:
        # Far more than loopback socket buffers can take (they autotune up
        # to 4 MB each way), so the writes must block.
        payload = b"".join(b"ECHO %06d %s\r\n" % (i, b"q" * 200) for i in range(80000))
        # Write until the daemon stops reading: its output is then stuck.
        sent = 0
        deadline = time.monotonic() + 20
        while sent < len(payload) and time.monotonic() < deadline:
            if not select.select([], [c.sock], [], 0.5)[1]:
                break
            sent += c.sock.send(payload[sent:sent + 65536])
        assert sent < len(payload), "the daemon read everything"
        took = inst.stop()
        assert 2.5 <= took < 3 + 5  # shutdown_timeout + margin
        assert "closing connections still open after 3s" in inst.log()
    finally:
        c.close()
    assert not inst.pid_file.exists()


def test_second_daemon_on_the_same_config_refuses(make_instance):
    inst = echo_instance(make_instance, "twice").start()
    first_pid = inst.pid
    for foreground in (True, False):
        rc, log = inst.run_fail(foreground=foreground)
        assert rc != 0, log
        assert re.search(rf"cannot start: {re.escape(str(inst.control_socket))}: another "
                         r"petreld is already running with this configuration", log), log
        assert "listening on" not in log  # refused before binding anything
    assert int(inst.pid_file.read_text()) == first_pid
    assert inst.status()["pid"] == str(first_pid)
    admitted(inst.port)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_daemon_mode_and_log_reopen(make_instance, env):
    inst = echo_instance(make_instance, "daemon")
    logs = inst.dir / "logs"
    logs.mkdir()
    os.chown(logs, env.run_uid, env.run_gid)  # the daemon reopens its log as the run user
    log_file = logs / "petreld.log"
    inst.edit('target = "stderr";', f'target = "file";\n  file = "{log_file}";')
    # Sanitizer reports go to files: a detached daemon has no stderr.
    san = f"log_path={logs}/sanitizer"
    run_env = dict(os.environ)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        run_env[var] = ":".join(x for x in (os.environ.get(var), san) if x)
    out = inst.dir / "petreld-daemon.out"
    with open(out, "wb") as f:
        r = subprocess.run([str(env.petreld), "--config", str(inst.conf)], stdin=subprocess.DEVNULL,
                           stdout=f, stderr=f, env=run_env, timeout=START_TIMEOUT)
    # The command returns once the daemon is ready, with its status.
    assert r.returncode == 0, out.read_text()
    assert out.read_text() == ""
    pid = int(inst.pid_file.read_text())
    try:
        assert _alive(pid)
        assert b"petreld" in open(f"/proc/{pid}/cmdline", "rb").read()
        assert os.getsid(pid) != os.getsid(0)  # detached from our session
        assert int(proc_status(pid)["PPid"]) != os.getpid()
        assert re.search(r"petreld \S+ started", log_file.read_text())
        admitted(inst.port)
        assert inst.status()["pid"] == str(pid)

        # logrotate: rename, then SIGHUP; new lines go to a new file.
        rotated = logs / "petreld.log.1"
        log_file.rename(rotated)
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: log_file.exists() and "configuration reloaded" in log_file.read_text(),
                 what="a new log file")
        assert "reloading" in log_file.read_text()
        assert "petreld" in rotated.read_text()
        assert "reloading" not in rotated.read_text()
        admitted(inst.port)

        r = inst.ctl("stop")
        assert r.returncode == 0 and r.stdout == "OK\n", r.stdout + r.stderr
        wait_for(lambda: not _alive(pid), timeout=STOP_TIMEOUT, what="the daemon to exit")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    text = log_file.read_text()
    assert "petreld stopped" in text
    assert not inst.pid_file.exists()
    assert not inst.control_socket.exists()
    for f in logs.iterdir():
        if f.name.startswith("sanitizer"):
            pytest.fail(f"{f}:\n{f.read_text()}")
    assert not sanitizer_findings(text)


def test_log_reopen_even_when_the_reload_is_refused(make_instance, env):
    """logrotate renames the file and sends SIGHUP: the daemon must move to
    a new file even if the configuration it re-reads is broken."""
    inst = echo_instance(make_instance, "logreopen")
    logs = inst.dir / "logs"
    logs.mkdir()
    os.chown(logs, env.run_uid, env.run_gid)
    log_file = logs / "petreld.log"
    inst.edit('target = "stderr";', f'target = "file";\n  file = "{log_file}";')
    inst.log_path = log_file  # stderr (sanitizer reports) is appended to it too
    inst.start()
    rotated = logs / "petreld.log.1"
    log_file.rename(rotated)
    inst.write_confd("50-echo.conf", "broken = ;\n")
    inst.signal(signal.SIGHUP)
    wait_for(lambda: log_file.exists() and "reload refused" in log_file.read_text(),
             what="the refusal in a new log file")
    assert "petreld" in rotated.read_text()
    admitted(inst.port)
    inst.stop()
    assert not sanitizer_findings(rotated.read_text())


def test_daemon_mode_start_failure_is_reported(make_instance, env):
    """A detached start that fails exits non-zero and says why on stderr."""
    inst = make_instance("daemon-fail")
    inst.write_confd("50-needy.conf", service_conf("needy", file=env.test_module("needy")))
    r = subprocess.run([str(env.petreld), "--config", str(inst.conf)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=START_TIMEOUT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "module 'needy': needs service 'testsvc'" in r.stderr
    assert not sanitizer_findings(r.stderr), r.stderr
    assert not inst.pid_file.exists()
