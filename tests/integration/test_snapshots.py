"""Configuration snapshots (petrel_ctx_config_ref): a worker holding a
generation across a reload reads it whole, never old and new mixed;
derived state follows its generation (derive at reload, free_derived when
the last holder lets go); a failing derive refuses the reload; IPSET
settings are parsed by the core. The snapmod test module serves the
commands (tests/modules/snapmod.c)."""

import re
import signal

import pytest

from harness import Client, free_port, listener, service_conf, wait_for


class SnapServer:
    def __init__(self, inst, env):
        self.inst = inst
        self.env = env
        self.port = free_port()

    def write(self, alpha="a1", beta="b1", nets=("127.0.0.1",), **extra):
        settings = {"alpha": alpha, "beta": beta, "nets": list(nets)}
        settings.update(extra)
        self.inst.write_confd("60-snapmod.conf", service_conf(
            "snapmod", file=self.env.test_module("snapmod"), listeners=[listener(self.port)],
            settings=settings))

    def sighup(self):
        """Reload by signal; the log line that ends it, good or refused."""
        since = self.inst.log_size()
        self.inst.signal(signal.SIGHUP)
        return self.inst.wait_log(r"(info: core: configuration reloaded|error: core: reload "
                                  r"refused, the old configuration keeps running: .*)",
                                  since=since).group(1)

    def client(self):
        c = Client(self.port)
        assert c.greeting == "+OK snap"
        return c


@pytest.fixture(scope="module")
def srv(module_instance, env):
    inst = module_instance("snapshots")
    s = SnapServer(inst, env)
    s.write()
    inst.start()
    return s


@pytest.fixture(autouse=True)
def restore(srv):
    yield
    srv.write()
    assert srv.sighup() == "info: core: configuration reloaded"


def test_worker_holds_one_generation_across_reload(srv):
    with srv.client() as c:
        since = srv.inst.log_size()
        c.send("HOLD 1500\r\n")
        # The worker has its generation and has read alpha: now reload with
        # both settings changed together.
        srv.inst.wait_log(r"snapmod: holding alpha=a1", since=since)
        srv.write(alpha="a2", beta="b2")
        assert srv.sighup() == "info: core: configuration reloaded"
        with srv.client() as fresh:
            assert fresh.cmd("NOW") == "+OK alpha=a2 beta=b2 derived=a2/b2"
        # beta and the derived state, read after the reload, are still
        # those of the generation the worker took.
        assert c.line() == "+OK alpha=a1 beta=b1 derived=a1/b1"
        # A new job takes the generation current now; the connection keeps
        # the one it was accepted under.
        assert c.cmd("NOW") == "+OK alpha=a2 beta=b2 derived=a2/b2"
        assert c.cmd("CONN") == "+OK alpha=a1 beta=b1 derived=a1/b1"


def test_old_generation_freed_after_its_last_holder(srv):
    with srv.client() as probe:
        wait_for(lambda: probe.cmd("LIVE") == "+OK 1", what="one live generation")
    with srv.client() as old:
        srv.write(alpha="a3", beta="b3")
        assert srv.sighup() == "info: core: configuration reloaded"
        with srv.client() as probe:
            # The old connection holds the old generation, derived state too.
            assert probe.cmd("LIVE") == "+OK 2"
        assert old.cmd("CONN") == "+OK alpha=a1 beta=b1 derived=a1/b1"
    with srv.client() as probe:
        wait_for(lambda: probe.cmd("LIVE") == "+OK 1", what="the old generation freed")


def test_failing_derive_refuses_the_reload(srv):
    srv.write(alpha="never", beta="never", fail_derive=True)
    line = srv.sighup()
    assert re.search(r"reload refused, the old configuration keeps running: \S*conf\.d/"
                     r"60-snapmod\.conf: module 'snapmod': asked to fail by fail_derive", line)
    assert srv.inst.proc.poll() is None
    with srv.client() as c:
        assert c.cmd("NOW") == "+OK alpha=a1 beta=b1 derived=a1/b1"
        assert c.cmd("LIVE") == "+OK 1"  # what the refused generation derived is gone


def test_ipset_setting(srv):
    with srv.client() as c:
        assert c.cmd("PEER") == "+OK in"
    srv.write(nets=["10.0.0.0/8", "2001:db8::/32"])
    assert srv.sighup() == "info: core: configuration reloaded"
    with srv.client() as c:
        assert c.cmd("PEER") == "+OK out"
    srv.write(nets=["127.0.0.0-127.0.0.9"])
    assert srv.sighup() == "info: core: configuration reloaded"
    with srv.client() as c:
        assert c.cmd("PEER") == "+OK in"
    # Refused with the message the core gives for its own networks settings.
    srv.write(nets=["127.0.0.1", "10.0.0.0/33"])
    line = srv.sighup()
    assert re.search(r"60-snapmod\.conf:\d+: setting 'nets': '10\.0\.0\.0/33': invalid prefix "
                     r"length", line), line
    with srv.client() as c:
        assert c.cmd("PEER") == "+OK in"


def test_failing_derive_stops_start_up(make_instance, env):
    inst = make_instance("snap-derive-fail")
    inst.write_confd("60-snapmod.conf", service_conf(
        "snapmod", file=env.test_module("snapmod"), listeners=[listener(free_port())],
        settings={"fail_derive": True}))
    rc, log = inst.run_fail()
    assert rc != 0, log
    assert re.search(r"cannot start: \S*conf\.d/60-snapmod\.conf: module 'snapmod': asked to "
                     r"fail by fail_derive", log), log
    rc, out = inst.check_config()
    assert rc != 0, out
    assert "asked to fail by fail_derive" in out, out
