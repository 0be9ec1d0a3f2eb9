"""The module loader: ABI checks, missing files, services a module needs,
init failures; each refusal stops start-up with one clear line."""

import re
import subprocess

import pytest

from harness import CMD_TIMEOUT, SRC_ROOT, admitted, free_port, listener, service_conf


def refusal(log, pattern):
    """Exactly one error line, naming the module."""
    errors = [l for l in log.splitlines() if ": error: " in l]
    assert len(errors) == 1, log
    assert re.search(pattern, errors[0]), errors[0]
    assert "started" not in log
    return errors[0]


CASES = {
    "badabi": (
        {"10-badabi.conf": ("badabi", {})},
        r"cannot start: module 'badabi': built for Petrel ABI 99\.0, this petreld has "
        r"1\.\d+: rebuild the module"),
    "missing": (
        {"10-ghost.conf": ("ghost", {"file": "/nonexistent/petrel/ghost"})},
        r"cannot start: module 'ghost' \(\S+/conf\.d/10-ghost\.conf\): cannot load "
        r"/nonexistent/petrel/ghost\.so"),
    "needy-alone": (
        {"10-needy.conf": ("needy", {})},
        r"cannot start: module 'needy': needs service 'testsvc', which no enabled module "
        r"provides"),
    "fail-init": (
        {"10-testmod.conf": ("testmod", {"settings": {"fail_init": True}})},
        r"cannot start: module 'testmod': init failed: asked to fail by fail_init"),
    "module-check": (
        {"10-testmod.conf": ("testmod", {"settings": {"label": "x" * 40}})},
        r"conf\.d/10-testmod\.conf: module 'testmod': label must be at most 32 characters"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loader_refuses(case, make_instance, env):
    files, pattern = CASES[case]
    inst = make_instance(f"mod-{case}")
    for name, (module, kw) in files.items():
        kw = dict(kw)
        kw.setdefault("file", env.test_module(module))
        inst.write_confd(name, service_conf(module, **kw))
    rc, log = inst.run_fail()
    assert rc != 0, log
    refusal(log, pattern)
    assert not inst.pid_file.exists()
    # --check-config loads and inits the modules too, and says the same.
    rc, out = inst.check_config()
    assert rc != 0, out
    assert re.search(pattern.replace("cannot start: ", ""), out), out


def test_needy_with_testmod_starts(make_instance, env):
    """needy comes first in conf.d order but waits for testmod's service."""
    inst = make_instance("mod-needy-ok")
    inst.write_confd("10-needy.conf", service_conf("needy", file=env.test_module("needy")))
    inst.write_confd("20-testmod.conf", service_conf("testmod", file=env.test_module("testmod")))
    port = free_port()
    inst.write_confd("50-echo.conf", service_conf("echo", listeners=[listener(port)]))
    inst.start()
    log = inst.log()
    assert log.index("testmod: initialised, label test") < log.index("needy: found service testsvc")
    admitted(port)
    r = inst.ctl("modules")
    for name in ("needy", "testmod", "echo"):
        assert re.search(rf"^module {name} 1\.0 ", r.stdout, re.M), r.stdout


def test_disabled_module_is_not_loaded(make_instance, env):
    inst = make_instance("mod-disabled")
    inst.write_confd("10-badabi.conf", service_conf("badabi", enabled=False,
                                                    file=env.test_module("badabi")))
    inst.start()
    assert "badabi" not in inst.log()
    assert inst.ctl("modules").stdout == "OK\n"


def test_module_enabled_twice_is_refused(make_instance, env):
    inst = make_instance("mod-twice")
    for name in ("10-a.conf", "20-b.conf"):
        inst.write_confd(name, service_conf("testmod", file=env.test_module("testmod")))
    rc, log = inst.run_fail()
    assert rc != 0
    assert re.search(r"conf\.d/20-b\.conf: module 'testmod' is already enabled by \S+/10-a\.conf",
                     log), log


def _abi_minor():
    text = (SRC_ROOT / "plugins-api" / "petrel" / "module.h").read_text()
    return int(re.search(r"#define PETREL_ABI_MINOR (\d+)u", text).group(1))


def test_installed_library_follows_the_abi(env):
    """libpetrel's version is the ABI's (libtool current:revision:age =
    minor:0:minor, so a module built against an older minor still finds
    libpetrel.so.0), and it exports the platform calls modules build on."""
    minor = _abi_minor()
    lib = env.prefix / "lib" / f"libpetrel.so.0.{minor}.0"
    assert lib.exists(), sorted(p.name for p in (env.prefix / "lib").glob("libpetrel.so*"))
    r = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    names = {line.split()[-1] for line in r.stdout.splitlines() if line.strip()}
    for name in ("petrel_conn_connect", "petrel_conn_relay", "petrel_conn_set_timeout",
                 "petrel_io_add", "petrel_timer_add", "petrel_loop_post",
                 "petrel_schedule_every", "petrel_stats_foreach", "petrel_dns_lookup",
                 "petrel_dns_lookup_ptr", "petrel_dns_cancel", "petrel_ctx_config_ref",
                 "petrel_config_unref", "petrel_conn_derived", "petrel_ipset_contains_text"):
        assert name in names, name
    for header in ("loop.h", "schedule.h", "conn.h", "dns.h", "ipset.h"):
        assert (env.prefix / "include" / "petrel" / header).exists(), header
