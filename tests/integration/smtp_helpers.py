"""Helpers for the SMTP tests (smtp_in + processing + storage): an instance
with the stock modules whose three smtp_in listeners (MX, submission with
STARTTLS, submission with implicit TLS) are moved to free ports, accounts,
aliases and forwards made with petrelctl, a raw SMTP client with a
timeout on every read, and readers for what was delivered
(<data>/mail/<domain>/<local>/{new,cur}/) and queued (<data>/queue/)."""

import base64
import re
import smtplib
import socket
import ssl

from harness import (SOCK_TIMEOUT, Client, add_account, cfg_value, client_tls_context,
                     ctl_input, free_port, listener, service_conf)

PASSWORD = "smtp-test-pw-42"
HELO = "client.test"
REMOTE = "remote.test"  # never a local domain
HOSTNAME = "mx.example.test"  # server.hostname: greeting, Received, Message-ID

QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)$")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_token(user, password, authzid=""):
    return b64(f"{authzid}\0{user}\0{password}")


def unverified_context():
    return client_tls_context()


class SmtpServer:
    """A stock-module instance with its smtp_in listeners on free ports.

    smtp: the smtp_in settings group (replaces it: unnamed settings take
    the module defaults); service: top-level keys of the smtp_in file
    (max_errors, max_auth_errors); mx, sub, smtps: extra listener keys
    (idle_timeout, max_line) for that listener; auth, processing: their
    settings groups (auth gets failure_delay "0s" unless told);
    echo: the echo module's settings (hooks), loaded from echo_module;
    smtp_out: its settings group, which enables it (None: disabled, so
    remote recipients stay queued whatever this host's DNS says)."""

    def __init__(self, make_instance, env, name="smtp", *, smtp=None, service=None, mx=None,
                 sub=None, smtps=None, auth=None, processing=None, storage=None, echo=None,
                 echo_module=None, smtp_out=None, accounts=("alice", "bob", "carol")):
        self.inst = make_instance(name, stock_modules=True)
        self.env = env
        self.domain = self.inst.domain
        self.hostname = HOSTNAME
        self.inst.edit(f'primary_domain = "{self.domain}";',
                       f'primary_domain = "{self.domain}";\n  hostname = "{HOSTNAME}";')
        self.mx_port, self.sub_port, self.smtps_port = free_port(), free_port(), free_port()
        listeners = [
            listener(self.mx_port, protocol="smtp", tls="starttls", **(mx or {})),
            listener(self.sub_port, protocol="submission", tls="starttls", **(sub or {})),
            listener(self.smtps_port, protocol="submission", tls="implicit", **(smtps or {})),
        ]
        path = next(self.inst.confd.glob("*-smtp_in.conf"))
        text = path.read_text()
        start = text.index("listeners = (")
        end = text.index("\n);", start) + 3
        text = text[:start] + "listeners = " + cfg_value(listeners) + ";" + text[end:]
        for key, value in (service or {}).items():
            text, n = re.subn(rf"^{key} = .*;$", f"{key} = {cfg_value(value)};", text,
                              flags=re.M)
            if n == 0:
                text = text.replace("enabled = true;\n",
                                    f"enabled = true;\n{key} = {cfg_value(value)};\n", 1)
        path.write_text(text)
        if smtp is not None:
            self.inst.set_module_settings("smtp_in", **smtp)
        auth_settings = dict(failure_delay="0s")
        auth_settings.update(auth or {})
        self.inst.set_module_settings("auth", **auth_settings)
        if processing is not None:
            self.inst.set_module_settings("processing", **processing)
        if storage is not None:
            self.inst.set_module_settings("storage", **storage)
        if smtp_out is not None:  # the harness leaves it disabled
            out_conf = next(self.inst.confd.glob("*-smtp_out.conf"))
            out_conf.write_text(out_conf.read_text().replace("enabled = false;", "enabled = true;"))
            self.inst.set_module_settings("smtp_out", **smtp_out)
        if echo is not None:
            assert echo_module is not None
            self.inst.write_confd("70-echo.conf", service_conf(
                "echo", file=str(echo_module / "echo.so"), settings=echo))
        for local in accounts:
            self.add_account(f"{local}@{self.domain}")

    # --- accounts ---

    def add_account(self, address, *options, password=PASSWORD):
        add_account(self.inst, address, password, *options)
        return address

    def ctl(self, *args, stdin=""):
        r = ctl_input(self.inst, *args, stdin=stdin)
        assert r.returncode == 0, f"petrelctl {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout

    def alias(self, address, *targets):
        return self.ctl("alias", "add", address, *targets)

    def forward(self, account, target, keep=False):
        return self.ctl("forward", "set", account, target, *(["--keep"] if keep else []))

    def addr(self, local):
        return f"{local}@{self.domain}"

    # --- running ---

    def start(self, preexec_fn=None):
        self.inst.start(preexec_fn=preexec_fn)
        return self

    def stop(self):
        return self.inst.stop()

    def log(self):
        return self.inst.log()

    # --- clients ---

    def smtp(self, port=None, **kw):
        """smtplib on the MX port (or port), EHLO not yet sent."""
        s = smtplib.SMTP("127.0.0.1", port or self.mx_port, local_hostname=HELO,
                         timeout=SOCK_TIMEOUT, **kw)
        return s

    def submission(self, user=None, password=PASSWORD, mech="PLAIN"):
        """smtplib on the submission port after EHLO, STARTTLS, EHLO and
        (given a user) AUTH."""
        s = self.smtp(self.sub_port)
        s.ehlo()
        code, _ = s.starttls(context=unverified_context())
        assert code == 220
        s.ehlo()
        if user is not None:
            login(s, user, password, mech)
        return s

    def smtps(self, user=None, password=PASSWORD, mech="PLAIN"):
        s = smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, local_hostname=HELO,
                             timeout=SOCK_TIMEOUT, context=unverified_context())
        s.ehlo()
        if user is not None:
            login(s, user, password, mech)
        return s

    def raw(self, port=None, **kw):
        return Smtp(port or self.mx_port, **kw)

    def raw_login(self, user, password=PASSWORD):
        """A raw client on submission after EHLO, STARTTLS, EHLO and AUTH."""
        c = self.raw(self.sub_port)
        c.greet()
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert c.auth_plain(user, password).startswith("235 ")
        return c

    # --- what was delivered and queued ---

    def maildir(self, address):
        local, domain = address.rsplit("@", 1)
        return self.inst.dir / "data" / "mail" / domain / local

    def messages(self, address):
        """The INBOX messages of an account, oldest first (by file name,
        which starts with the delivery time)."""
        root = self.maildir(address)
        files = [f for sub in ("new", "cur") if (root / sub).is_dir()
                 for f in (root / sub).iterdir() if f.is_file()]
        return [f.read_bytes() for f in sorted(files, key=lambda f: f.name)]

    def all_delivered(self):
        """Every message file in every mailbox and folder."""
        root = self.inst.dir / "data" / "mail"
        if not root.exists():
            return []
        return sorted(str(f) for f in root.rglob("*")
                      if f.is_file() and f.parent.name in ("new", "cur"))

    def queue_dir(self, sub="active"):
        return self.inst.dir / "data" / "queue" / sub

    def queued(self, sub="active"):
        d = self.queue_dir(sub)
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def envelope(self, qid):
        return (self.queue_dir("active") / qid).read_text(errors="replace")


def login(s, user, password=PASSWORD, mech="PLAIN"):
    """AUTH through smtplib with the mechanism forced; returns the reply."""
    s.user, s.password = user, password
    if mech == "PLAIN":
        return s.auth("PLAIN", s.auth_plain)
    if mech == "LOGIN":  # no initial response: both prompts are answered
        return s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    raise ValueError(mech)


def queue_id(reply):
    """The queue id of a "250 2.0.0 Ok: queued as ID" reply line."""
    m = QUEUED_RE.match(reply)
    assert m, f"not a queued reply: {reply!r}"
    return m.group(1)


def smtplib_queue_id(resp):
    """smtplib's (code, text) of DATA as the queue id."""
    code, text = resp
    return queue_id(f"{code} {text.decode()}")


def message(subject="test", frm="sender@client.test", to="alice@example.test", body="hello\r\n",
            extra=""):
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@client.test>\r\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n{extra}\r\n{body}")


def split_message(raw):
    """(header bytes, body bytes) of a stored message."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of header in {raw[:200]!r}"
    return head + b"\r\n", body


def header_fields(raw, name):
    """The unfolded values of every field called name in a stored message."""
    head, _ = split_message(raw)
    unfolded = re.sub(rb"\r\n[ \t]", b" ", head)
    out = []
    for line in unfolded.split(b"\r\n"):
        k, sep, v = line.partition(b":")
        if sep and k.decode(errors="replace").lower() == name.lower():
            out.append(v.strip().decode(errors="replace"))
    return out


class Smtp(Client):
    """A raw SMTP client (harness.Client) that reads whole replies."""

    def __init__(self, port, **kw):
        super().__init__(port, greeting=False, **kw)

    def reply(self):
        """(code, [text lines]) of one (multi-line) reply."""
        lines = []
        while True:
            line = self.line()
            assert re.match(r"^\d{3}[ -]", line) or re.match(r"^\d{3}$", line), \
                f"not a reply line: {line!r}"
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                code = int(line[:3])
                assert all(int(x[:3]) == code for x in lines), lines
                return code, [x[4:] for x in lines]

    def reply_line(self):
        """One single-line reply as its text: "250 2.1.0 Ok"."""
        code, lines = self.reply()
        assert len(lines) == 1, lines
        return f"{code} {lines[0]}"

    def greet(self):
        code, lines = self.reply()
        assert code == 220, lines
        return lines

    def command(self, text):
        self.send(text + "\r\n")
        return self.reply_line()

    def ehlo(self, name=HELO):
        self.send(f"EHLO {name}\r\n")
        code, lines = self.reply()
        assert code == 250, lines
        return [x.upper() for x in lines[1:]]

    def transaction(self, frm, *rcpts):
        """MAIL FROM and RCPT TO, each one accepted."""
        assert self.command(f"MAIL FROM:<{frm}>") == "250 2.1.0 Ok"
        for rcpt in rcpts:
            assert self.command(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"

    def starttls(self):
        assert self.command("STARTTLS") == "220 2.0.0 Ready to start TLS"
        super().starttls()

    def auth_plain(self, user, password=PASSWORD):
        return self.command("AUTH PLAIN " + plain_token(user, password))

    def data(self, payload):
        """DATA, then payload as is (it must end in CRLF.CRLF)."""
        r = self.command("DATA")
        assert r.startswith("354 "), r
        self.send(payload)
        return self.reply_line()

    def data_body(self, payload):
        """After a 354: the message as is, then its reply."""
        self.send(payload)
        return self.reply_line()

    def is_closed(self, timeout=SOCK_TIMEOUT):
        """True when the server has closed (EOF or reset) with nothing more
        to read."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
        if data:
            self.buf += data
            return False
        return True


def stuff(body):
    """Dot-stuff a CRLF text for DATA (RFC 5321 section 4.5.2)."""
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)
