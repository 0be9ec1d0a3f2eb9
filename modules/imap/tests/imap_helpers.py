"""Helpers for the IMAP tests (imap + storage + auth, smtp_in to deliver):
an ImapServer whose imap listeners (STARTTLS and implicit TLS) are moved
to free ports, imaplib clients with a timeout, and a raw client that reads
tagged answers with their untagged lines and literals."""

import imaplib
import re
import smtplib

from harness import (SOCK_TIMEOUT, Client, cfg_value, client_tls_context, free_port,
                     listener)
from smtp_helpers import HELO, PASSWORD, SmtpServer


class ImapServer(SmtpServer):
    """imap: extra keys for both imap listeners (idle_timeout, max_line);
    imap_service: top-level keys of the imap file (max_errors);
    imap_settings: its settings group; fast: the store without fsync."""

    def __init__(self, make_instance, env, name="imap", *, imap=None, imap_service=None,
                 imap_settings=None, fast=True, **kw):
        if fast:
            kw.setdefault("storage", dict(fsync=False, index_sync="off"))
        super().__init__(make_instance, env, name, **kw)
        self.imap_port, self.imaps_port = free_port(), free_port()
        listeners = [
            listener(self.imap_port, protocol="imap", tls="starttls", **(imap or {})),
            listener(self.imaps_port, protocol="imap", tls="implicit", **(imap or {})),
        ]
        path = next(self.inst.confd.glob("*-imap.conf"))
        text = path.read_text()
        start = text.index("listeners = (")
        end = text.index("\n);", start) + 3
        text = text[:start] + "listeners = " + cfg_value(listeners) + ";" + text[end:]
        for key, value in (imap_service or {}).items():
            text, n = re.subn(rf"^{key} = .*;$", f"{key} = {cfg_value(value)};", text, flags=re.M)
            assert n == 1, key
        path.write_text(text)
        if imap_settings is not None:
            self.inst.set_module_settings("imap", **imap_settings)

    def deliver(self, address, *raws):
        """Each raw message (bytes, CRLF) into address's INBOX over SMTP."""
        with smtplib.SMTP("127.0.0.1", self.mx_port, local_hostname=HELO,
                          timeout=SOCK_TIMEOUT) as s:
            for raw in raws:
                s.sendmail("sender@client.test", [address], raw)

    def imap(self, user=None, password=PASSWORD, tls="starttls"):
        """imaplib on the STARTTLS port after STARTTLS ("starttls"),
        without it (None), or on the implicit TLS port ("implicit");
        logged in when a user is given."""
        if tls == "implicit":
            c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=client_tls_context(),
                                  timeout=SOCK_TIMEOUT)
        else:
            c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=SOCK_TIMEOUT)
            if tls == "starttls":
                c.starttls(ssl_context=client_tls_context())
        if user is not None:
            c.login(user, password)
        return c


class Imap(Client):
    """A raw IMAP client (harness.Client). run() sends a tagged command
    and returns (untagged lines, tagged line); literals in answers are read
    whole and kept inline as bytes in the untagged list's entries."""

    def __init__(self, port, **kw):
        super().__init__(port, **kw)
        self.n = 0

    def raw_line(self):
        """One answer line with its literals: bytes, CRLF removed."""
        out = b""
        while True:
            while b"\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\n", 1)
            assert line.endswith(b"\r"), f"reply without CRLF: {line!r}"
            line = line[:-1]
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill()
            out += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def tag(self):
        self.n += 1
        return f"a{self.n:03d}"

    def wait(self, tag):
        untagged = []
        while True:
            line = self.raw_line()
            if line.startswith(tag.encode() + b" "):
                return untagged, line[len(tag) + 1:].decode(errors="replace")
            untagged.append(line)

    def run(self, text):
        if isinstance(text, str):
            text = text.encode()
        tag = self.tag()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.wait(tag)

    def ok(self, text):
        untagged, done = self.run(text)
        assert done.startswith("OK"), (text, done, untagged)
        return untagged

    def login(self, user, password=PASSWORD, starttls=True):
        if starttls:
            self.ok("STARTTLS")
            self.starttls()
        return self.ok(f'LOGIN "{user}" "{password}"')
