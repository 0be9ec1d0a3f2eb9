"""The daemon's life: privileges, petrelctl, stopping with clients
connected, running detached, log reopening, one daemon per configuration."""

import os
import re
import select
import signal
import stat
import subprocess
import time

import pytest

from conftest import (START_TIMEOUT, STOP_TIMEOUT, Client, admitted, free_port, listener,
                      proc_status, sanitizer_findings, service_conf, wait_for)


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
    for d in ("data", "run"):
        st = (inst.dir / d).stat()
        assert (st.st_uid, st.st_gid) == (env.run_uid, env.run_gid), d
    assert int(inst.pid_file.read_text()) == inst.pid
    # Still serving, and the administrator still reaches it as root.
    admitted(inst.port)
    assert inst.status()["pid"] == str(inst.pid)


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
        mid = inst.stats()
        assert mid["core.connections.current"] == before["core.connections.current"] + 1
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
