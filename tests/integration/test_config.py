"""`petrelctl init` and configuration errors."""

import re
import signal
import stat
import subprocess

import pytest

from harness import CMD_TIMEOUT, SRC_ROOT, Instance, free_port, listener, service_conf


def test_init_writes_a_ready_instance(env, base_dir, echo_module):
    inst = Instance(env, base_dir, echo_module, name="init")
    d = inst.dir
    assert (d / "petrel.conf").is_file()
    assert (d / "conf.d").is_dir()
    assert (d / "tls" / "cert.pem").is_file()
    assert (d / "tls" / "key.pem").is_file()
    assert (d / "data").is_dir()
    assert (d / "run").is_dir()
    text = (d / "petrel.conf").read_text()
    assert 'primary_domain = "example.test";' in text
    assert f'user = "{env.run_user}";' in text
    assert f'module_path = "{echo_module}";' in text
    # The private key is not world-readable.
    assert stat.S_IMODE((d / "tls" / "key.pem").stat().st_mode) & 0o007 == 0
    r = subprocess.run(["openssl", "x509", "-in", str(d / "tls" / "cert.pem"), "-noout",
                        "-subject"], capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0 and "mail.example.test" in r.stdout, r.stdout + r.stderr

    rc, out = inst.check_config()
    assert rc == 0, out
    assert f"configuration {inst.conf} OK (0 modules)" in out

    # With a module enabled the check loads it too.
    inst.write_confd("50-echo.conf", service_conf("echo", listeners=[listener(free_port())]))
    rc, out = inst.check_config()
    assert rc == 0, out
    assert "OK (1 modules)" in out


def test_example_module_builds_out_of_tree_and_loads(env, base_dir, echo_module):
    """contrib/echo, copied out of the tree, built with nothing but
    pkg-config and the installed headers (the echo_module fixture), loads."""
    assert SRC_ROOT not in echo_module.parents
    assert (echo_module / "echo.so").is_file()
    inst = Instance(env, base_dir, echo_module, name="oot")
    port = free_port()
    inst.write_confd("50-echo.conf", service_conf("echo", listeners=[listener(port)]))
    inst.start()
    try:
        inst.wait_log(rf"info: core: module 'echo' 1\.0 loaded from {re.escape(str(echo_module))}"
                      r"/echo\n")
        r = inst.ctl("modules")
        assert r.stdout.startswith(f"module echo 1.0 {echo_module}/echo ")
    finally:
        inst.stop()


def test_init_refuses_to_overwrite(env, base_dir, echo_module):
    inst = Instance(env, base_dir, echo_module, name="noclobber")
    before = inst.conf.read_text()
    r = subprocess.run([str(env.petrelctl), "init", str(inst.dir), "--domain", "other.test"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode != 0
    assert f"{inst.conf} already exists: not overwriting an instance" in r.stderr
    assert inst.conf.read_text() == before


def test_init_rejects_bad_arguments(env, base_dir):
    r = subprocess.run([str(env.petrelctl), "init", str(base_dir / "bad"), "--domain",
                        "not a domain"], capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 2
    assert "is not a domain name" in r.stderr
    assert not (base_dir / "bad").exists()


# Each case: conf.d file content (or None), petrel.conf edit (or None), and
# the regex the error must match: file, line and setting.
BAD_CONFIGS = {
    "syntax": (
        'module = "echo";\nlisteners = (\n  { address = "127.0.0.1:1"; }\n  oops\n);\n',
        None,
        r"conf\.d/50-echo\.conf:4: syntax error"),
    "unknown-setting": (
        'module = "echo";\n\ncolour = "blue";\n',
        None,
        r"conf\.d/50-echo\.conf:3: unknown setting 'colour'"),
    "unknown-listener-setting": (
        'module = "echo";\nlisteners = (\n  { address = "127.0.0.1:1";\n    idle = 5; }\n);\n',
        None,
        r"conf\.d/50-echo\.conf:4: unknown setting 'idle'"),
    "bad-listener-address": (
        'module = "echo";\nlisteners = (\n  { address = "127.0.0.1"; }\n);\n',
        None,
        r"conf\.d/50-echo\.conf:3: setting 'address': '127\.0\.0\.1' is not ADDRESS:PORT"),
    "bad-listener-port": (
        'module = "echo";\nlisteners = (\n  { address = "127.0.0.1:99999"; }\n);\n',
        None,
        r"conf\.d/50-echo\.conf:3: setting 'address': '127\.0\.0\.1:99999' is not ADDRESS:PORT"),
    "bad-rule-ip": (
        'module = "echo";\nrules = (\n  { action = "deny"; ips = [ "127.0.0.300" ]; }\n);\n',
        None,
        r"conf\.d/50-echo\.conf:3: setting 'ips': '127\.0\.0\.300'"),
    "bad-rule-action": (
        'module = "echo";\nrules = (\n  { action = "maybe"; ips = [ "any" ]; }\n);\n',
        None,
        r"conf\.d/50-echo\.conf:3: setting 'action' has a value that is not one of"),
    "out-of-range": (
        'module = "echo";\nlisteners = (\n  { address = "127.0.0.1:1";\n'
        '    max_line = 10; }\n);\n',
        None,
        r"conf\.d/50-echo\.conf:4: setting 'max_line' is out of range"),
    "module-setting": (
        'module = "echo";\nsettings: {\n  greeting = "hi";\n  volume = 11;\n};\n',
        None,
        r"conf\.d/50-echo\.conf:4: unknown setting 'volume'"),
    "main-syntax": (
        None,
        ('level = "info";', 'level = "info"\n  broken = ;'),
        r"petrel\.conf:\d+: syntax error"),
    "main-unknown": (
        None,
        ('level = "info";', 'level = "info";\n  colour = "blue";'),
        r"petrel\.conf:\d+: unknown setting 'colour'"),
    "main-bad-global-rule-ip": (
        None,
        ('ips = ["127.0.0.0/8", "::1"]', 'ips = ["127.0.0.0/33"]'),
        r"petrel\.conf:\d+: setting 'ips': '127\.0\.0\.0/33'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_with_file_line_setting(case, env, base_dir, echo_module):
    confd, edit, expected = BAD_CONFIGS[case]
    inst = Instance(env, base_dir, echo_module, name=f"bad-{case}")
    if confd is not None:
        inst.write_confd("50-echo.conf", confd)
    if edit is not None:
        inst.edit(*edit)
    # Rule and listener errors cite "conf.d/NAME:LINE" (as their refusals
    # do in the log), the others the full path.
    rx = re.compile(expected)

    rc, out = inst.check_config()
    assert rc != 0, out
    assert rx.search(out), out

    rc, log = inst.run_fail()
    assert rc != 0, log
    assert rx.search(log), log
    assert "started" not in log
    assert not inst.pid_file.exists()


NO_QUEUE = "module 'smtp_in': needs service 'queue', which no enabled module provides"


def test_check_config_sees_a_needed_service_missing(make_instance):
    """smtp_in without the processing module: the check fails as start-up
    does, naming the module and the service (it said OK (7 modules): the
    harness leaves smtp_out off)."""
    inst = make_instance("noqueue", stock_modules=True)
    rc, out = inst.check_config()
    assert rc == 0, out
    assert "OK (7 modules)" in out, out
    next(inst.confd.glob("*-processing.conf")).unlink()
    rc, out = inst.check_config()
    assert rc == 1, out
    assert re.search(rf"^petreld: {re.escape(NO_QUEUE)}$", out, re.M), out
    assert "OK" not in out
    rc, log = inst.run_fail()
    assert rc != 0, log
    assert f"cannot start: {NO_QUEUE}" in log, log


def test_reload_refuses_to_drop_a_needed_service(make_instance):
    """Disabling processing under a running smtp_in: the reload is refused
    naming smtp_in's need, and the old configuration keeps running."""
    inst = make_instance("noqueue-reload", stock_modules=True).start()
    path = next(inst.confd.glob("*-processing.conf"))
    path.write_text(path.read_text().replace("enabled = true;", "enabled = false;"))
    since = inst.log_size()
    r = inst.ctl("reload")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("ERR reload refused: "), r.stdout
    want = f"{NO_QUEUE} (module 'processing' provides it and is not enabled in {inst.confd})"
    assert want in r.stdout, r.stdout
    m = inst.wait_log(r"error: core: reload refused, the old configuration keeps running: "
                      r"(.*)", since=since)
    assert want in m.group(1), m.group(0)
    # The same by SIGHUP; the daemon still answers with all its modules.
    since = inst.log_size()
    inst.signal(signal.SIGHUP)
    inst.wait_log(r"reload refused.*needs service 'queue'", since=since)
    r = inst.ctl("modules")
    assert re.search(r"^module processing 1\.0 ", r.stdout, re.M), r.stdout
    assert inst.status()["pid"] == str(inst.pid)
