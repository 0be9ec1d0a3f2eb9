"""Helpers for the POP3 tests (pop3 + storage + auth, smtp_in to deliver):
an SmtpServer whose pop3 listeners (STLS and implicit TLS) are moved to
free ports, delivery of raw messages over SMTP, message files dropped into
a Maildir as another program would, and poplib clients with a timeout."""

import os
import poplib
import re
import smtplib

from harness import (SOCK_TIMEOUT, Client, cfg_value, client_tls_context, free_port,
                     listener)
from smtp_helpers import HELO, PASSWORD, SmtpServer


class Pop3Server(SmtpServer):
    """pop3: extra keys for both pop3 listeners (idle_timeout, max_line);
    pop3_service: top-level keys of the pop3 file (max_errors);
    pop3_settings: its settings group; fast: the store without fsync."""

    def __init__(self, make_instance, env, name="pop3", *, pop3=None, pop3_service=None,
                 pop3_settings=None, fast=True, **kw):
        if fast:
            kw.setdefault("storage", dict(fsync=False, index_sync="off"))
        super().__init__(make_instance, env, name, **kw)
        self.pop3_port, self.pop3s_port = free_port(), free_port()
        listeners = [
            listener(self.pop3_port, protocol="pop3", tls="starttls", **(pop3 or {})),
            listener(self.pop3s_port, protocol="pop3", tls="implicit", **(pop3 or {})),
        ]
        path = next(self.inst.confd.glob("*-pop3.conf"))
        text = path.read_text()
        start = text.index("listeners = (")
        end = text.index("\n);", start) + 3
        text = text[:start] + "listeners = " + cfg_value(listeners) + ";" + text[end:]
        for key, value in (pop3_service or {}).items():
            text, n = re.subn(rf"^{key} = .*;$", f"{key} = {cfg_value(value)};", text, flags=re.M)
            assert n == 1, key
        path.write_text(text)
        if pop3_settings is not None:
            self.inst.set_module_settings("pop3", **pop3_settings)

    # --- putting mail in ---

    def deliver(self, address, *raws):
        """Each raw message (bytes, CRLF) into address's INBOX over SMTP."""
        with smtplib.SMTP("127.0.0.1", self.mx_port, local_hostname=HELO,
                          timeout=SOCK_TIMEOUT) as s:
            for raw in raws:
                s.sendmail("sender@client.test", [address], raw)

    def drop(self, address, name, raw):
        """A message file put into new/ as another program would (the
        mailbox must exist: log in once first)."""
        new = self.maildir(address) / "new"
        tmp = self.maildir(address) / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.env.run_uid, self.env.run_gid)
        tmp.rename(new / name)

    # --- clients ---

    def pop(self, user=None, password=PASSWORD, tls="stls"):
        """poplib on the STLS port after STLS (tls "stls"), without it
        (None), or on the implicit TLS port ("implicit"); logged in with
        USER/PASS when a user is given."""
        if tls == "implicit":
            p = poplib.POP3_SSL("127.0.0.1", self.pop3s_port, timeout=SOCK_TIMEOUT,
                                context=client_tls_context())
        else:
            p = poplib.POP3("127.0.0.1", self.pop3_port, timeout=SOCK_TIMEOUT)
            if tls == "stls":
                p.stls(context=client_tls_context())
        if user is not None:
            p.user(user)
            p.pass_(password)
        return p


class Pop3(Client):
    """A raw POP3 client (harness.Client): single-line answers as text,
    multi-line ones as the raw bytes sent (stuffed, CRLF) and unstuffed."""

    def multi(self):
        """After a +OK line: the raw bytes up to and with "." CRLF."""
        raw = b""
        while not (raw == b".\r\n" or raw.endswith(b"\r\n.\r\n")):
            while b"\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\n", 1)
            raw += line + b"\n"
        return raw

    @staticmethod
    def unstuff(raw):
        """The lines of a multi-line answer less the end and the stuffing,
        joined with their CRLFs: what the client gets."""
        body = raw[:-3]
        lines = body.split(b"\r\n")[:-1] if body else []
        return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)

    def stls(self):
        assert self.cmd("STLS").startswith("+OK")
        self.starttls()

    def login(self, user, password=PASSWORD, stls=True):
        if stls:
            self.stls()
        assert self.cmd(f"USER {user}").startswith("+OK")
        r = self.cmd(f"PASS {password}")
        assert r.startswith("+OK"), r
        return r
