"""imap with real clients, against an instance as `petrelctl init` writes
it (every stock module, the demo domain): mbsync syncing both ways with a
local Maildir, mutt driven in tmux, curl over imaps:// and imap:// with
STARTTLS, fetchmail over IMAP, and the README's curl and mbsync lines.
The server's state is checked with imaplib after each client."""

import imaplib
import os
import re
import shlex
import shutil
import smtplib
import subprocess
import time

import pytest

from harness import CMD_TIMEOUT, SOCK_TIMEOUT, SRC_ROOT
from smtp_helpers import message, unverified_context

USER = "demo@demo.test"


class Demo:
    """A started stock instance for demo.test, its ports and password."""

    def __init__(self, make_instance, name):
        self.inst = make_instance(name, domain="demo.test", stock_modules=True)
        self.password = re.search(r"demo account:\s+demo@demo.test\s+password: (\S+)",
                                  self.inst.init_output).group(1)
        self.ports = {}
        for mod in ("smtp_in", "imap"):
            text = next(self.inst.confd.glob(f"*-{mod}.conf")).read_text()
            self.ports[mod] = [int(p) for p in re.findall(r'"127\.0\.0\.1:(\d+)"', text)]
        self.imap_port, self.imaps_port = self.ports["imap"]  # STARTTLS, implicit TLS
        self.cert = self.inst.dir / "tls" / "cert.pem"
        self.inst.start()

    def deliver(self, *subjects):
        with smtplib.SMTP("127.0.0.1", self.ports["smtp_in"][0], timeout=SOCK_TIMEOUT) as s:
            for subject in subjects:
                s.sendmail("you@example.org", [USER],
                           message(subject, frm="you@example.org", to=USER,
                                   body=f"The body of {subject}.\r\n"))

    def imap(self):
        c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=unverified_context(),
                              timeout=SOCK_TIMEOUT)
        c.login(USER, self.password)
        return c

    def state(self):
        """{folder: {subject: flags}} of every folder, as imaplib sees it."""
        out = {}
        with self.imap() as c:
            typ, lines = c.list()
            assert typ == "OK"
            for line in lines:
                name = line.decode().rsplit(' "/" ', 1)[1].strip('"')
                typ, _ = c.select(f'"{name}"', readonly=True)
                assert typ == "OK", name
                typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                msgs = {}
                for item in data:
                    if isinstance(item, tuple):
                        flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode()
                        subject = item[1].decode().split(":", 1)[1].strip()
                        msgs[subject] = set(flags.split())
                out[name] = msgs
        return out


@pytest.fixture
def demo(make_instance, request):
    return Demo(make_instance, request.node.name[5:29])


def wait_for(pred, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- mbsync ---

def mbsyncrc(demo, tmp, local):
    """The README's mbsyncrc with this instance's port, certificate and a
    local Maildir under tmp."""
    text = (SRC_ROOT / "docs" / "mbsyncrc.demo").read_text()
    text = text.replace("Port 10993", f"Port {demo.imaps_port}")
    text = text.replace("_demo/tls/cert.pem", str(demo.cert))
    text = text.replace("_demo/mbsync/", f"{local}/")
    path = tmp / "mbsyncrc"
    path.write_text(text)
    return path


def mbsync(demo, rc):
    env = dict(os.environ, DEMO_PASSWORD=demo.password, HOME=str(rc.parent))
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True,
                       env=env, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def maildir_files(folder):
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).iterdir())


def test_mbsync_syncs_both_ways(demo, tmp_path):
    demo.deliver("one", "two", "three")
    local = tmp_path / "Mail"
    local.mkdir()
    rc = mbsyncrc(demo, tmp_path, local)
    mbsync(demo, rc)
    files = maildir_files(local / "INBOX")
    assert len(files) == 3
    assert (local / "Sent").is_dir() and (local / "Trash").is_dir()  # every folder
    by_subject = {re.search(rb"Subject: (\w+)", f.read_bytes()).group(1).decode(): f
                  for f in files}
    # Locally: flag "one" (seen and flagged), delete "two", file a new
    # message in a new folder.
    one = by_subject["one"]
    one.rename(local / "INBOX" / "cur" / (one.name.split(":2,")[0] + ":2,FS"))
    by_subject["two"].unlink()
    newdir = local / "Projects"
    for sub in ("cur", "new", "tmp"):
        (newdir / sub).mkdir(parents=True)
    (newdir / "cur" / "1.local.host:2,S").write_bytes(
        message("four", frm="me@demo.test", to=USER).encode())
    mbsync(demo, rc)
    state = demo.state()
    assert state["INBOX"].keys() == {"one", "three"}
    assert {"\\Flagged", "\\Seen"} <= state["INBOX"]["one"]
    assert "\\Seen" not in state["INBOX"]["three"]
    assert state["Projects"] == {"four": {"\\Seen"}}
    # Remotely: a new message and a flag change come down.
    demo.deliver("five")
    with demo.imap() as c:
        c.select("INBOX")
        typ, data = c.search(None, "SUBJECT", "three")
        c.store(data[0].decode(), "+FLAGS", "\\Answered")
    mbsync(demo, rc)
    names = {re.search(rb"Subject: (\w+)", f.read_bytes()).group(1).decode(): f.name
             for f in maildir_files(local / "INBOX")}
    assert names.keys() == {"one", "three", "five"}
    assert names["three"].endswith(":2,R")
    # A run with nothing to do changes nothing on either side.
    before_local = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()
                          and not p.name.startswith(".mbsync"))
    before_remote = demo.state()
    mbsync(demo, rc)
    after_local = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()
                         and not p.name.startswith(".mbsync"))
    assert after_local == before_local
    assert demo.state() == before_remote


# --- mutt in tmux ---

class Tmux:
    def __init__(self, name, command, env):
        self.name = name
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "40",
                        "env", *[f"{k}={v}" for k, v in env.items()], *command],
                       check=True, timeout=CMD_TIMEOUT)

    def screen(self):
        r = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                           capture_output=True, text=True, timeout=CMD_TIMEOUT)
        return r.stdout

    def keys(self, *keys):
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True,
                       timeout=CMD_TIMEOUT)

    def expect(self, pattern, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not on the screen:\n{self.screen()}")

    def close(self):
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_mutt_reads_flags_deletes_and_files(demo, tmp_path):
    demo.deliver("alpha", "bravo", "charlie")
    rc = tmp_path / "muttrc"
    rc.write_text(
        f'set folder="imaps://{USER.replace("@", "%40")}@127.0.0.1:{demo.imaps_port}/"\n'
        'set spoolfile="+INBOX"\n'
        f'set imap_pass="{demo.password}"\n'
        f'set ssl_ca_certificates_file="{demo.cert}"\n'
        'set ssl_verify_host=no\n'        # the certificate names mail.demo.test
        'set ssl_starttls=no\n'
        'set header_cache="" message_cachedir=""\n'
        'set sort=date-sent\n'
        'set delete=yes quit=yes move=no confirmappend=no mark_old=no\n'
        'set wait_key=no timeout=1 mail_check=1 resolve=no\n'
        'set index_format="%4C %Z %s"\n')
    log = tmp_path / "screens.txt"
    t = Tmux("petrel-mutt", ["mutt", "-n", "-F", str(rc)],
             {"HOME": str(tmp_path), "TERM": "xterm"})
    screens = []
    try:
        screens.append(t.expect(r"alpha[\s\S]*bravo[\s\S]*charlie"))
        t.keys("Enter")                             # read alpha
        screens.append(t.expect(r"The body of alpha\."))
        t.keys("i")                                 # back to the index
        screens.append(t.expect(r"charlie"))
        t.keys("F")                                 # flag alpha
        screens.append(t.expect(r"! .*alpha|!.*alpha"))
        t.keys("j", "d")                            # delete bravo
        screens.append(t.expect(r"D.*bravo"))
        t.keys("j", "s")                            # file charlie into Archive
        screens.append(t.expect(r"Save to mailbox"))
        t.keys("C-u", "=Archive", "Enter")
        screens.append(t.expect(r"D.*charlie"))
        t.keys("$")                                 # sync: expunge the deleted
        wait_for(lambda: "bravo" not in t.screen() and "charlie" not in t.screen(),
                 "the expunge to show")
        screens.append(t.screen())
        t.keys("q")
        wait_for(lambda: "petrel-mutt" not in subprocess.run(
            ["tmux", "ls"], capture_output=True, text=True).stdout, "mutt to quit")
    finally:
        log.write_text("\n----\n".join(screens))
        t.close()
    state = demo.state()
    assert state["INBOX"].keys() == {"alpha"}
    assert {"\\Seen", "\\Flagged"} <= state["INBOX"]["alpha"]
    assert state["Archive"].keys() == {"charlie"}


# --- curl ---

def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", "-k", *args], capture_output=True,
                          timeout=CMD_TIMEOUT)


def test_curl_imaps_and_starttls(demo):
    demo.deliver("first", "second")
    user = ["--user", f"{USER}:{demo.password}"]
    url = f"imaps://127.0.0.1:{demo.imaps_port}"
    r = curl(*user, f"{url}/")
    assert r.returncode == 0, r.stderr
    listed = r.stdout.decode()
    for folder in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert re.search(rf'^\* LIST \([^)]*\) "/" "?{folder}"?\r$', listed, re.M), listed
    assert re.search(r'\\Sent\b.*"?Sent"?', listed)
    r = curl(*user, f"{url}/INBOX;UID=2")
    assert r.returncode == 0, r.stderr
    assert b"Subject: second\r\n" in r.stdout and r.stdout.endswith(b"The body of second.\r\n")
    r = curl(*user, f"{url}/INBOX?SUBJECT%20first")
    assert r.returncode == 0 and r.stdout.strip() == b"* SEARCH 1", r
    r = curl(*user, "--ssl-reqd", f"imap://127.0.0.1:{demo.imap_port}/INBOX;UID=1")
    assert r.returncode == 0, r.stderr
    assert b"Subject: first\r\n" in r.stdout
    r = curl("--user", f"{USER}:wrong", f"{url}/")
    assert r.returncode == 67, r  # CURLE_LOGIN_DENIED
    r = curl(*user, f"imap://127.0.0.1:{demo.imap_port}/")  # no TLS: LOGINDISABLED
    assert r.returncode != 0 and b"INBOX" not in r.stdout


# --- fetchmail ---

def fetchmail(demo, tmp, keep):
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    mda = tmp / "mda.sh"
    mda.write_text('#!/bin/sh\ncat > "$(mktemp -p "$1")"\n')
    mda.chmod(0o755)
    rc = tmp / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 proto imap port {demo.imap_port}\n"
        f'  user "{USER}" there with password "{demo.password}" is "root" here\n'
        "  sslproto 'TLS1.2+' no sslcertck\n"  # STARTTLS, required
        f'  {"keep" if keep else "nokeep fetchall"}\n'
        f'  mda "{mda} {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp), FETCHMAILHOME=str(tmp))
    r = subprocess.run(["fetchmail", "-f", str(rc), "-v", "--nosyslog", "--nodetach"],
                       capture_output=True, text=True, env=env, timeout=CMD_TIMEOUT)
    return r, [f.read_bytes() for f in sorted(out.iterdir())]


def test_fetchmail_imap_keep_then_delete(demo, tmp_path):
    demo.deliver("uno", "dos")
    r, got = fetchmail(demo, tmp_path, keep=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "STARTTLS" in r.stdout + r.stderr
    assert len(got) == 2 and any(b"Subject: uno" in g for g in got)
    assert all("\\Seen" in f for f in demo.state()["INBOX"].values())
    r, got = fetchmail(demo, tmp_path, keep=True)  # fetched ones are \Seen: nothing new
    assert r.returncode == 1, r.stdout + r.stderr
    demo.deliver("tres")
    r, got = fetchmail(demo, tmp_path, keep=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(got) == 5
    assert demo.state()["INBOX"] == {}


# --- the README ---

def readme_lines(pred):
    return [l for l in (SRC_ROOT / "README.md").read_text().splitlines() if pred(l)]


def test_readme_curl_and_mbsync_lines_work_against_the_demo(demo, tmp_path):
    demo.deliver("readme")
    line = readme_lines(lambda l: l.startswith("curl ") and "imaps://" in l)[0]
    cmd = [a.replace("PASSWORD", demo.password).replace("127.0.0.1:10993",
                                                        f"127.0.0.1:{demo.imaps_port}")
           for a in shlex.split(line.split("#")[0])]
    r = subprocess.run(cmd + ["-sS", "--max-time", "20"], capture_output=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert b"Subject: readme\r\n" in r.stdout
    # The mbsync line, run where the README runs it (the top of the tree)
    # with _demo/ standing for this instance.
    line = readme_lines(lambda l: "mbsync -c docs/mbsyncrc.demo" in l)[0]
    top = tmp_path / "top"
    (top / "docs").mkdir(parents=True)
    (top / "_demo" / "tls").mkdir(parents=True)
    shutil.copy(demo.cert, top / "_demo" / "tls" / "cert.pem")
    (top / "docs" / "mbsyncrc.demo").write_text(
        (SRC_ROOT / "docs" / "mbsyncrc.demo").read_text().replace(
            "Port 10993", f"Port {demo.imaps_port}"))
    script = line.split("#")[0].replace("'PASSWORD'", f"'{demo.password}'")
    r = subprocess.run(["sh", "-c", script], cwd=top, capture_output=True, text=True,
                       env=dict(os.environ, HOME=str(tmp_path)), timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    got = maildir_files(top / "_demo" / "mbsync" / "INBOX")
    assert len(got) == 1 and b"Subject: readme\n" in got[0].read_bytes()  # Maildir: LF
