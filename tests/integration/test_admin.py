"""Admin commands that modules declare (petrel/admin.h), run by petrelctl in
the running server or, with it stopped, in petrelctl itself; and the
control socket they travel over."""

import json
import socket
import struct
import subprocess
import time

from harness import (CMD_TIMEOUT, Client, ctl_fails as fails, ctl_ok as ok, free_port, listener,
                     service_conf, wait_for)


def echo_instance(make_instance, **settings):
    inst = make_instance("admin")
    inst.port = free_port()
    inst.write_confd("50-echo.conf", service_conf(
        "echo", listeners=[listener(inst.port)], settings=settings))
    return inst


def json_rows(text):
    return [json.loads(line) for line in text.splitlines()]


def test_echo_stats_online_and_offline(make_instance):
    """The out-of-tree example module's command, through petrelctl: online
    it runs in the daemon and sees its counters; offline petrelctl loads the
    module with the same settings and runs the same function."""
    inst = echo_instance(make_instance, greeting="hi there", fortunes=["a", "b", "c"])
    offline = ok(inst.ctl("echo", "stats")).splitlines()
    assert offline == ["server   greeting  fortunes  sessions  echoed",
                       "stopped  hi there  3         -         -"], offline
    assert json_rows(ok(inst.ctl("--json", "echo", "stats"))) == [
        {"server": "stopped", "greeting": "hi there", "fortunes": 3, "sessions": None,
         "echoed": None}]
    inst.start()
    with Client(inst.port) as c:
        for i in range(3):
            assert c.cmd(f"ECHO {i}") == f"+OK {i}"
    rows = json_rows(ok(inst.ctl("echo", "stats", "--json")))  # --json last works too
    assert rows == [{"server": "running", "greeting": "hi there", "fortunes": 3, "sessions": 1,
                     "echoed": 3}], rows
    text = ok(inst.ctl("echo", "stats")).splitlines()
    assert text[0].split() == ["server", "greeting", "fortunes", "sessions", "echoed"]
    assert text[1].split() == ["running", "hi", "there", "3", "1", "3"]
    # The columns line up under their headers.
    assert text[1].index("3") == text[0].index("fortunes")
    assert "control: echo stats" in inst.log()
    inst.stop()


def test_usage_help_and_commands_of_modules_not_enabled(make_instance):
    inst = echo_instance(make_instance)
    fails(inst.ctl("echo"), "usage: petrelctl [--config FILE] echo stats", 2)
    fails(inst.ctl("echo", "stats", "extra"), "usage: petrelctl [--config FILE] echo stats", 2)
    fails(inst.ctl("frobnicate"), "unknown command 'frobnicate'", 2)
    help_text = ok(inst.ctl("help"))
    assert "echo stats" in help_text and "(echo)" in help_text, help_text
    assert ok(inst.ctl("--help")) == help_text
    for core in ("status", "reload", "stop", "modules", "stats", "init DIR"):
        assert f"\n  {core}" in help_text, core
    # The module is installed (in module_path) but no conf.d file enables it.
    inst.remove_confd("50-echo.conf")
    fails(inst.ctl("echo", "stats"),
          f"'echo' is a command of the module echo, which is not enabled in {inst.conf}")
    assert "echo stats" not in ok(inst.ctl("help"))


def test_commands_of_a_disabled_module_are_named(make_instance):
    """A stock module switched off in its conf.d file (loaded from its own
    path, not from module_path): its commands are refused by its name."""
    inst = make_instance("disabled", stock_modules=True)
    path = next(inst.confd.glob("*-processing.conf"))
    text = path.read_text()
    assert text.count("enabled = true;") == 1, text
    path.write_text(text.replace("enabled = true;", "enabled = false;"))
    fails(inst.ctl("queue", "list"),
          "'queue' is a command of the module processing, which is not enabled")
    assert "queue list" not in ok(inst.ctl("help"))
    assert "account list" in ok(inst.ctl("help"))


def test_core_listings_in_json(make_instance):
    inst = echo_instance(make_instance).start()
    status = json_rows(ok(inst.ctl("--json", "status")))
    assert len(status) == 1 and set(status[0]) == {
        "version", "pid", "uptime", "config", "io_threads", "workers", "jobs_queued",
        "jobs_running", "listeners", "connections"}
    assert status[0]["pid"] == inst.proc.pid and status[0]["listeners"] == 1
    modules = json_rows(ok(inst.ctl("--json", "modules")))
    assert [m["module"] for m in modules] == ["echo"]
    assert modules[0]["listeners"] == [f"127.0.0.1:{inst.port}"]
    stats = {r["name"]: r["value"] for r in json_rows(ok(inst.ctl("stats", "--json")))}
    assert stats["core.connections.accepted"] >= 0
    # The text forms are unchanged, OK last.
    assert ok(inst.ctl("status")).endswith("\nOK\n")
    assert ok(inst.ctl("modules")).startswith("module echo 1.0 ")
    fails(inst.ctl("status", "now"), "usage: petrelctl [--config FILE] [--json] status", 2)
    inst.stop()


def test_no_module_source_in_petrelctl(env):
    """petrelctl knows no module: none of their functions is linked in."""
    r = subprocess.run(["nm", "--defined-only", str(env.petrelctl)], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    symbols = {line.split()[-1] for line in r.stdout.splitlines() if line.strip()}
    assert "main" in symbols
    for prefix in ("queue_envelope", "userdb_edit", "userdb_parse", "ctl_queue", "ctl_accounts"):
        assert not any(s.startswith(prefix) for s in symbols), prefix


# --- the control socket ---------------------------------------------------------


def frame(kind, payload=b""):
    return struct.pack(">I", len(payload) + 1) + kind + payload


def reply(sock, timeout=10.0):
    """(stdout, stderr, exit status) of one reply; None as status if the
    server closed without one."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our request unread
            break
        if not chunk:
            break
        data += chunk
    out, err, status = b"", b"", None
    while len(data) >= 5:
        n = struct.unpack(">I", data[:4])[0]
        kind, payload, data = data[4:5], data[5:4 + n], data[4 + n:]
        if kind == b"O":
            out += payload
        elif kind == b"R":
            err += payload
        elif kind == b"X":
            status = payload[0]
    return out.decode(), err.decode(), status


def connect(inst):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(inst.control_socket))  # blocking: waits while the backlog is full
    s.settimeout(10)
    return s


def test_control_socket_frames(make_instance):
    inst = echo_instance(make_instance).start()
    with connect(inst) as s:  # a request by hand, with a word longer than any old line
        s.sendall(frame(b"W", b"echo") + frame(b"W", b"stats") + frame(b"J") + frame(b"E"))
        out, err, status = reply(s)
    assert status == 0 and json.loads(out)["server"] == "running", (out, err)
    with connect(inst) as s:
        s.sendall(frame(b"W", b"x" * 5000) + frame(b"E"))
        out, err, status = reply(s)
    assert status == 1 and "has no command 'xxxx" in err, (out, err)
    with connect(inst) as s:
        s.sendall(frame(b"W", b"status") + frame(b"W", b"now") + frame(b"E"))
        out, err, status = reply(s)
    assert status == 2 and "take no arguments" in err and out == "", (out, err)
    # The old line protocol, a frame too long, an unknown frame, NUL in a word.
    for bad, why in ((b"status\n", "malformed frame"),
                     (struct.pack(">I", 1 << 20) + b"W", "malformed frame"),
                     (frame(b"Q", b"x"), "unknown frame type"),
                     (frame(b"W", b"st\0atus") + frame(b"E"), "NUL in a request"),
                     (frame(b"E"), "no command")):
        with connect(inst) as s:
            s.sendall(bad)
            out, err, status = reply(s)
        assert status == 1 and why in err, (bad, out, err)
        inst.wait_log(f"control: {why}: dropped")
    # More than a request may hold.
    with connect(inst) as s:
        try:
            s.sendall(b"".join(frame(b"W", b"y" * 4000) for _ in range(20)))
        except (BrokenPipeError, ConnectionResetError):
            pass
        out, err, status = reply(s)
    assert status in (1, None), (out, err)
    inst.wait_log("control: (too many words|request too long): dropped")
    assert ok(inst.ctl("status")).endswith("OK\n")
    inst.stop()


def test_slow_and_idle_clients_do_not_hold_the_server(make_instance):
    """A trickle and a crowd of idle connections: each is dropped after the
    request timeout; meanwhile the server answers (nothing waits on the
    main thread)."""
    inst = echo_instance(make_instance).start()
    trickle = connect(inst)
    crowd = [connect(inst) for _ in range(20)]
    request = frame(b"W", b"status") + frame(b"E")
    t0 = time.monotonic()
    for i in range(3):  # a byte at a time
        trickle.sendall(request[i:i + 1])
        time.sleep(0.3)
    assert ok(inst.ctl("status")).endswith("OK\n")
    with Client(inst.port) as c:
        assert c.cmd("ECHO still") == "+OK still"
    inst.wait_log("control: no complete request within 5 s: dropped", timeout=15)
    assert time.monotonic() - t0 >= 4
    trickle.settimeout(10)
    assert trickle.recv(100) == b""  # closed on us
    for s in crowd:
        s.settimeout(10)
        assert s.recv(100) == b""
        s.close()
    trickle.close()
    wait_for(lambda: inst.log().count("no complete request within") >= 21, timeout=15,
             what="every idle client dropped")
    assert ok(inst.ctl("status")).endswith("OK\n")
    inst.stop()
