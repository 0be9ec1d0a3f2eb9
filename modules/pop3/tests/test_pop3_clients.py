"""pop3 with real clients: fetchmail over STLS into a local MDA, keeping
or deleting as told (and, keeping, not fetching twice: UIDL), and curl
over pop3s:// (implicit TLS) and pop3:// with STLS, and the README's
curl line against a demo instance."""

import os
import re
import shlex
import smtplib
import subprocess

import pytest

from harness import CMD_TIMEOUT, SOCK_TIMEOUT, SRC_ROOT
from pop3_helpers import Pop3Server
from smtp_helpers import PASSWORD, message


@pytest.fixture
def srv(make_instance, env):
    return Pop3Server(make_instance, env, "pop3-clients").start()


def fill(srv, n):
    a = srv.addr("alice")
    srv.deliver(a, *(message(f"m{i}", to=a, body=f"body {i}\r\n.dot\r\n").encode()
                     for i in range(1, n + 1)))
    return a


def fetchmail(srv, tmp, keep):
    """One fetchmail run over STLS into an MDA that files each message in
    tmp/out; returns (exit status, the files)."""
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    mda = tmp / "mda.sh"
    mda.write_text('#!/bin/sh\ncat > "$(mktemp -p "$1")"\n')
    mda.chmod(0o755)
    rc = tmp / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 proto pop3 port {srv.pop3_port} uidl\n"
        f'  user "{srv.addr("alice")}" there with password "{PASSWORD}" is "root" here\n'
        "  sslproto 'TLS1.2+' no sslcertck\n"  # sslproto without ssl: STLS, required
        # Keeping, only what this client has not seen (by UIDL); not
        # keeping, everything, deleted once fetched.
        f'  {"keep" if keep else "nokeep fetchall"}\n'
        f'  mda "{mda} {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp), FETCHMAILHOME=str(tmp))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--idfile", str(tmp / "ids"), "-v",
                        "--nosyslog", "--nodetach"], capture_output=True, text=True, env=env,
                       timeout=CMD_TIMEOUT)
    files = sorted(out.iterdir())
    return r, [f.read_bytes() for f in files]


def test_fetchmail_keep_then_delete(srv, tmp_path):
    a = fill(srv, 3)
    stored = srv.messages(a)
    r, got = fetchmail(srv, tmp_path, keep=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "STLS" in r.stderr + r.stdout
    assert len(got) == 3 and len(srv.messages(a)) == 3
    for raw in stored:  # the MDA gets the message with LF line ends
        assert any(raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] in g for g in got)
    # Kept messages are not fetched again: their UIDLs are the same.
    r, got = fetchmail(srv, tmp_path, keep=True)
    assert r.returncode == 1, r.stdout + r.stderr  # 1: no new mail
    assert len(got) == 3
    fill(srv, 1)
    r, got = fetchmail(srv, tmp_path, keep=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(got) == 7  # nokeep fetches all (fetchall) and deletes them
    assert srv.messages(a) == []


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", "-k", *args], capture_output=True,
                          timeout=CMD_TIMEOUT)


def test_curl_pop3s(srv):
    a = fill(srv, 2)
    stored = srv.messages(a)
    user = ["--user", f"{a}:{PASSWORD}"]
    r = curl(*user, f"pop3s://127.0.0.1:{srv.pop3s_port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split("\r\n")[:2] == [f"1 {len(stored[0])}", f"2 {len(stored[1])}"]
    r = curl(*user, f"pop3s://127.0.0.1:{srv.pop3s_port}/2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == stored[1]
    r = curl(*user, "-X", "UIDL", f"pop3s://127.0.0.1:{srv.pop3s_port}/")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r
    r = curl(*user, "--ssl-reqd", f"pop3://127.0.0.1:{srv.pop3_port}/1")  # STLS
    assert r.returncode == 0, r.stderr
    assert r.stdout == stored[0]
    r = curl("--user", f"{a}:wrong", f"pop3s://127.0.0.1:{srv.pop3s_port}/")
    assert r.returncode == 67, r  # CURLE_LOGIN_DENIED


def test_curl_refused_without_tls(srv):
    a = fill(srv, 1)
    r = curl("--user", f"{a}:{PASSWORD}", f"pop3://127.0.0.1:{srv.pop3_port}/1")
    assert r.returncode != 0 and b"Subject" not in r.stdout


def test_readme_curl_line_works_against_the_demo_instance(make_instance):
    """The README's curl line, against an instance `petrelctl init` wrote
    for demo.test (as scripts/demo.sh does), at the ports the harness gave
    its listeners, with the password init printed."""
    readme = (SRC_ROOT / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith("curl ") and "pop3s://" in l)
    cmd = shlex.split(line.split("#")[0])
    inst = make_instance("demo", domain="demo.test", stock_modules=True)
    password = re.search(r"demo account:\s+demo@demo.test\s+password: (\S+)",
                         inst.init_output).group(1)
    ports = {}
    for name, proto in (("smtp_in", "smtp"), ("pop3", "pop3")):
        text = next(inst.confd.glob(f"*-{name}.conf")).read_text()
        ports[name] = [int(p) for p in re.findall(r'"127\.0\.0\.1:(\d+)"', text)]
    inst.start()
    with smtplib.SMTP("127.0.0.1", ports["smtp_in"][0], timeout=SOCK_TIMEOUT) as s:
        s.sendmail("you@example.org", ["demo@demo.test"], message("demo", to="demo@demo.test"))
    cmd = [a.replace("PASSWORD", password).replace("127.0.0.1:10995",
                                                   f"127.0.0.1:{ports['pop3'][1]}") for a in cmd]
    r = subprocess.run(cmd + ["-sS", "--max-time", "20"], capture_output=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert b"Subject: demo\r\n" in r.stdout
