"""Reloading the configuration: petrelctl reload and SIGHUP, refusals that
keep the old generation running, listeners that come and go."""

import re
import signal
import socket

import pytest

from harness import Client, admitted, free_port, listener, service_conf, wait_for


class ReloadServer:
    def __init__(self, inst, env):
        self.inst = inst
        self.env = env
        self.keep_port = free_port()
        self.extra_port = free_port()

    def write(self, greeting="first", fortunes=("old",), extra=True, echo_extra="",
              **testmod):
        listeners = [listener(self.keep_port)]
        if extra:
            listeners.append(listener(self.extra_port))
        self.inst.write_confd("50-echo.conf", service_conf(
            "echo", listeners=listeners,
            settings={"greeting": greeting, "fortunes": list(fortunes)}) + echo_extra)
        settings = {"label": "one"}
        settings.update(testmod)
        self.inst.write_confd("60-testmod.conf", service_conf(
            "testmod", file=self.env.test_module("testmod"), settings=settings))

    def reload_ok(self):
        since = self.inst.log_size()
        r = self.inst.ctl("reload")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout == "OK\n"
        self.inst.wait_log(r"info: core: configuration reloaded", since=since)

    def reload_refused(self, expected):
        since = self.inst.log_size()
        r = self.inst.ctl("reload")
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stdout.startswith("ERR reload refused: "), r.stdout
        assert re.search(expected, r.stdout), r.stdout
        m = self.inst.wait_log(r"error: core: reload refused, the old configuration keeps "
                               r"running: (.*)", since=since)
        assert re.search(expected, m.group(1)), m.group(0)


@pytest.fixture(scope="module")
def srv(module_instance, env):
    inst = module_instance("reload")
    s = ReloadServer(inst, env)
    s.write()
    inst.start()
    inst.wait_log(r"testmod: initialised, label one")
    return s


@pytest.fixture(autouse=True)
def restore(srv):
    """Each test starts from, and leaves, the first configuration."""
    yield
    srv.write()
    srv.reload_ok()
    admitted(srv.keep_port, greeting="+OK first")


def test_good_reload(srv):
    old = Client(srv.keep_port)
    try:
        assert old.greeting == "+OK first"
        assert old.cmd("FORTUNE") == "+OK old"
        srv.write(greeting="second", fortunes=["new"])
        srv.reload_ok()
        with Client(srv.keep_port) as new:
            assert new.greeting == "+OK second"
            assert new.cmd("FORTUNE") == "+OK new"
        # The old connection keeps the generation it was accepted under.
        assert old.cmd("ECHO still") == "+OK still"
        assert old.cmd("FORTUNE") == "+OK old"
    finally:
        old.close()


def test_good_reload_by_sighup(srv):
    srv.write(greeting="by signal")
    since = srv.inst.log_size()
    srv.inst.signal(signal.SIGHUP)
    srv.inst.wait_log(r"info: core: configuration reloaded", since=since)
    admitted(srv.keep_port, greeting="+OK by signal")


def test_broken_reload_is_refused(srv):
    srv.write(greeting="never")
    srv.inst.write_confd("50-echo.conf",
                         (srv.inst.confd / "50-echo.conf").read_text() + "broken = ;\n")
    with Client(srv.keep_port) as old:
        srv.reload_refused(r"conf\.d/50-echo\.conf:\d+: syntax error")
        assert old.cmd("ECHO alive") == "+OK alive"
    admitted(srv.keep_port, greeting="+OK first")
    admitted(srv.extra_port, greeting="+OK first")


def test_broken_reload_by_sighup_is_refused(srv):
    srv.write(greeting="never", echo_extra="colour = 1;\n")
    since = srv.inst.log_size()
    srv.inst.signal(signal.SIGHUP)
    m = srv.inst.wait_log(r"error: core: reload refused, the old configuration keeps running: "
                          r"(.*)", since=since)
    assert re.search(r"conf\.d/50-echo\.conf:\d+: unknown setting 'colour'", m.group(1))
    assert srv.inst.proc.poll() is None
    admitted(srv.keep_port, greeting="+OK first")


def test_module_refuses_reload(srv):
    srv.write(greeting="never", refuse_reload=True)
    srv.reload_refused(r"module 'testmod' refused the new configuration: "
                       r"asked to refuse by refuse_reload")
    admitted(srv.keep_port, greeting="+OK first")


def test_fixed_module_setting_needs_restart(srv):
    srv.write(greeting="never", label="two")
    srv.reload_refused(r"60-testmod\.conf: module 'testmod': changing 'label' needs a restart")
    admitted(srv.keep_port, greeting="+OK first")


def test_fixed_server_setting_needs_restart(srv):
    srv.inst.edit('shutdown_timeout = "3s";', 'shutdown_timeout = "3s";\n  workers = 3;')
    try:
        srv.reload_refused(r"changing server\.workers needs a restart")
    finally:
        srv.inst.edit('shutdown_timeout = "3s";\n  workers = 3;', 'shutdown_timeout = "3s";')


def test_reload_adds_a_listener(srv):
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    srv.inst.write_confd("50-echo.conf", service_conf(
        "echo", listeners=[listener(srv.keep_port), listener(srv.extra_port),
                           listener(port, tls="starttls")],
        settings={"greeting": "first", "fortunes": ["old"]}))
    since = srv.inst.log_size()
    srv.reload_ok()
    srv.inst.wait_log(rf"info: core: listening on 127\.0\.0\.1:{port} for echo \(starttls\)",
                      since=since)
    with Client(port) as c:
        assert c.greeting == "+OK first"
        assert c.cmd("STARTTLS") == "+OK begin TLS"
        c.starttls()
        assert c.cmd("ECHO new listener") == "+OK new listener"
    r = srv.inst.ctl("modules")
    assert f"  listener 127.0.0.1:{port} protocol=echo tls=starttls\n" in r.stdout


def test_reload_removes_a_listener(srv):
    kept = Client(srv.extra_port)
    try:
        srv.write(extra=False)
        since = srv.inst.log_size()
        srv.reload_ok()
        srv.inst.wait_log(rf"info: core: closing listener 127\.0\.0\.1:{srv.extra_port}",
                          since=since)

        def gone():
            try:
                socket.create_connection(("127.0.0.1", srv.extra_port), timeout=5).close()
                return False
            except ConnectionRefusedError:
                return True

        wait_for(gone, what=f"port {srv.extra_port} to stop accepting")
        admitted(srv.keep_port, greeting="+OK first")
        # A connection accepted before keeps working.
        assert kept.cmd("ECHO on a closed listener") == "+OK on a closed listener"
        r = srv.inst.ctl("modules")
        assert f"127.0.0.1:{srv.extra_port}" not in r.stdout
    finally:
        kept.close()


def test_reload_with_a_busy_port_is_refused(srv):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        srv.inst.write_confd("50-echo.conf", service_conf(
            "echo", listeners=[listener(srv.keep_port), listener(port)],
            settings={"greeting": "never"}))
        srv.reload_refused(rf"cannot listen on 127\.0\.0\.1:{port}: Address already in use")
    finally:
        busy.close()
    admitted(srv.keep_port, greeting="+OK first")
    admitted(srv.extra_port, greeting="+OK first")


def test_reload_cannot_add_a_module(srv):
    srv.inst.write_confd("70-needy.conf", service_conf("needy",
                                                       file=srv.env.test_module("needy")))
    try:
        srv.reload_refused(r"70-needy\.conf: module 'needy' is not loaded: restart petreld")
    finally:
        srv.inst.remove_confd("70-needy.conf")


def test_broken_petrel_conf_by_sighup_is_refused(srv):
    srv.inst.edit('level = "info";', 'level = ;')
    try:
        since = srv.inst.log_size()
        srv.inst.signal(signal.SIGHUP)
        m = srv.inst.wait_log(r"reload refused, the old configuration keeps running: (.*)",
                              since=since)
        assert re.search(rf"{re.escape(str(srv.inst.conf))}:\d+: syntax error", m.group(1))
        admitted(srv.keep_port, greeting="+OK first")
    finally:
        srv.inst.edit('level = ;', 'level = "info";')


def test_reload_changes_rules_and_tls(srv):
    """New rules and TLS modes apply to new connections; a connection
    accepted before keeps what it had."""
    old = Client(srv.extra_port)
    try:
        srv.inst.write_confd("50-echo.conf", service_conf(
            "echo", listeners=[
                listener(srv.keep_port, rules=[dict(action="deny", ips=["127.0.0.1"])]),
                listener(srv.extra_port, tls="implicit")],
            settings={"greeting": "first", "fortunes": ["old"]}))
        srv.reload_ok()
        c = Client(srv.keep_port, greeting=False)
        try:
            assert c.line() == "-ERR access denied: denied by rule"
        finally:
            c.close()
        admitted(srv.keep_port, source="127.0.0.2", greeting="+OK first")
        with Client(srv.extra_port, tls=True) as t:
            assert t.greeting == "+OK first"
            assert t.cmd("INFO") == "+OK tls=yes peer=127.0.0.1 sni=-"
        assert old.cmd("INFO") == "+OK tls=no peer=127.0.0.1 sni=-"
    finally:
        old.close()
