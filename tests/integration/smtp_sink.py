"""A controllable SMTP receiving server for the outbound tests: the remote
MX host that smtp_out delivers to, on a loopback address and a free port.

    sink = smtp_sink(host="127.0.0.2", extensions=["PIPELINING", "SIZE 1000"],
                     rcpt_replies={"bad@x.test": "550 5.1.1 no such user"})
    ... deliver ...
    [msg] = sink.wait_messages(1)
    assert msg.rcpts == ["good@x.test"] and msg.data == b"..."

Everything is configurable per sink and may be changed while it runs (a
session reads the settings when it starts, the reply tables when it uses
them):

  ehlo_name      the name in the default greeting and the EHLO reply (make
                 it the sender's own host name for a loop test)
  greeting       the greeting reply (see "replies" below); a 421 greeting
                 is followed by a close, any other non-2xx one by 503 to
                 everything but QUIT (RFC 5321 section 3.1)
  extensions     the EHLO keywords offered, in order ("PIPELINING",
                 "SIZE 1000", "8BITMIME", "SMTPUTF8", "DSN", "CHUNKING",
                 ...); STARTTLS is added when tls_cert is given (starttls
                 False: not offered, though the command still works).
                 "SIZE n" is enforced (552 at MAIL SIZE= and after the data)
  tls_cert, tls_key   PEM files for STARTTLS (make_cert() makes a pair)
  implicit_tls   TLS from the first byte (port 465 style), with tls_cert
  replies        {verb: reply} for any command ("EHLO", "HELO", "MAIL",
                 "RCPT", "DATA" (the 354), "BDAT", "RSET", "NOOP", "QUIT",
                 "STARTTLS", "VRFY", ...)
  mail_reply     the reply to MAIL
  rcpt_replies   {address: reply} (address compared without case);
                 rcpt_reply the reply to the others
  data_reply     the reply after the message (DATA's final, BDAT LAST)
  drop_after     a verb, or "DATA_END": answer it, then close (for
                 "DATA" that is right after the 354; "DATA_END" closes when
                 the whole message is in, without answering it)
  drop_at        a verb: close instead of answering it
  stall_after    like drop_after, but keep the connection open and answer
                 nothing more; stall_at: never answer that command
  close_after_greeting   close right after the greeting
  faults_for     the faults (drop_*, stall_*, close_after_greeting) apply
                 to this many sessions only (None: all)
  timeout        seconds every socket read waits (a silent client is
                 dropped after it)
  auth           AUTH mechanisms offered ("PLAIN", "LOGIN"; None: no AUTH);
                 offered only after STARTTLS unless auth_plaintext
  auth_plaintext offer AUTH before TLS too
  auth_users     {user: password} accepted (others get 535); auth_reply
                 overrides the final reply ("535 5.7.8 ...", "454 ...")

A reply is "250 2.0.0 text", "250 line one\\nline two" (a multi-line
reply with one code), a list of full lines sent as they are, or a list of
such replies used one per use, the last repeated: ["451 4.3.0 later",
"250 2.1.5 Ok"] refuses the first time and accepts after.

Recorded: sessions (peer, the AUTH credentials received (session.auth:
(mechanism, user, password)), every command in order with the recv() chunk
it came in and whether it was already waiting when the previous reply
went out, the TLS version, how it ended), every transaction, and the
accepted messages (MAIL FROM with its parameters, the accepted RCPT TOs
with theirs, the data dot-unstuffed, and the bytes as sent). Standard
library only; every socket read has a timeout and every loop a bound."""

import base64
import binascii
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest


def shared_port(hosts, v6=False):
    """A port free on every one of the loopback addresses hosts (and ::1
    with v6): smtp_out has one `port` for every MX host, so each host's
    sink listens on it."""
    from harness import free_port
    for _ in range(100):
        port = free_port()
        try:
            for host in hosts:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, port))
            if v6:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                    s.bind(("::1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every loopback address")

MAX_LINE = 4096               # a command line longer than this: 500
MAX_DATA = 64 * 1024 * 1024   # a message longer than this: 552 and close
MAX_COMMANDS = 10000          # per session
STALL_MAX = 300.0             # a stall ends after this at the latest
DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")

_ADDR_RE = re.compile(r"^(?:FROM|TO):\s*<([^>]*)>\s*(.*)$", re.I)


def make_cert(directory, cn="mx.sink.test", names=()):
    """A self-signed certificate and key (PEM) made with openssl in
    directory, for cn and names; both readable by everyone (petreld reads
    a CA file as its run user). Returns (cert, key) paths."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, f"{cn}.crt")
    key = os.path.join(directory, f"{cn}.key")
    san = ",".join(f"DNS:{n}" for n in (cn, *names))
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}",
         "-keyout", key, "-out", cert],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for path in (cert, key):
        os.chmod(path, 0o644)
    return cert, key


def reply_lines(reply):
    """The lines (without CRLF) of a reply as the sink sends it."""
    if isinstance(reply, (list, tuple)):
        return list(reply)
    text = str(reply)
    code, _, rest = text.partition(" ")
    parts = rest.split("\n")
    if len(parts) == 1:
        return [text]
    return [f"{code}-{p}" for p in parts[:-1]] + [f"{code} {parts[-1]}"]


class Command:
    """One command line as received."""

    def __init__(self, line, chunk, pipelined, tls):
        self.line = line            # as received, without CRLF (str, latin-1 if not UTF-8)
        self.verb = line.split(" ", 1)[0].upper()
        self.chunk = chunk          # the number of the recv() it completed in
        self.pipelined = pipelined  # in the buffer before the previous reply went out
        self.tls = tls
        self.reply = None           # the first line of what the sink answered (None: nothing)

    def __repr__(self):
        return f"<{self.line!r} chunk={self.chunk}{' pipelined' if self.pipelined else ''}>"


class Transaction:
    """MAIL to the end of the data (or RSET, or the end of the session)."""

    def __init__(self, session, mail_from, mail_params):
        self.session = session
        self.mail_from = mail_from      # the address inside <>, "" for the null sender
        self.mail_params = mail_params  # ["SIZE=123", "BODY=8BITMIME", ...] as sent
        self.rcpts = []                 # accepted addresses, in order
        self.rcpt_params = {}           # accepted address -> [params]
        self.refused = []               # (address, reply line) of the refused ones
        self.data = None                # the message, dot-unstuffed (bytes)
        self.raw_data = None            # as sent (dot-stuffed, with ".\r\n"; BDAT: the chunks)
        self.via = None                 # "DATA" or "BDAT"
        self.chunks = []                # BDAT chunk sizes
        self.data_reply = None          # what the sink answered after the data
        self.accepted = False
        self.accepted_at = None         # time.monotonic() when the sink took it
        self.tls = session.tls is not None

    @property
    def params(self):
        """The MAIL parameters as a dict, keys upper case (value None if none)."""
        return _params_dict(self.mail_params)

    def rcpt_param(self, rcpt, key):
        return _params_dict(self.rcpt_params.get(rcpt, [])).get(key.upper())

    def __repr__(self):
        return (f"<Transaction from={self.mail_from!r} rcpts={self.rcpts} "
                f"refused={self.refused} accepted={self.accepted}>")


def _params_dict(params):
    out = {}
    for p in params:
        k, sep, v = p.partition("=")
        out[k.upper()] = v if sep else None
    return out


class Session:
    """One connection."""

    def __init__(self, number, peer, local):
        self.number = number
        self.peer = peer            # (ip, port) of the client
        self.local = local          # (ip, port) it connected to
        self.commands = []
        self.transactions = []
        self.helo = None            # the EHLO/HELO argument (the last one)
        self.tls = None             # the TLS version once STARTTLS succeeded
        self.tls_error = None       # why a STARTTLS handshake failed
        self.starttls_injection = False  # plaintext after STARTTLS, discarded
        self.auth = None            # (mechanism, user, password) of an AUTH, accepted or not
        self.authenticated = False
        self.ended = None           # "quit", "client closed", "dropped", "timeout", "stalled", ...
        self.started = time.time()  # when it was accepted (for logs, never for assertions)
        self.done = threading.Event()

    def verbs(self):
        return [c.verb for c in self.commands]

    def __repr__(self):
        return f"<Session {self.number} {self.peer} tls={self.tls} {self.verbs()} {self.ended}>"


class _Closed(Exception):
    pass


class SmtpSink:
    SETTINGS = dict(ehlo_name="mx.sink.test", greeting=None, extensions=DEFAULT_EXTENSIONS,
                    tls_cert=None, tls_key=None, starttls=True, replies=None, mail_reply=None,
                    rcpt_replies=None, rcpt_reply=None, data_reply=None, drop_after=None,
                    drop_at=None, stall_after=None, stall_at=None, close_after_greeting=False,
                    faults_for=None, timeout=30.0, auth=None, auth_plaintext=False,
                    auth_users=None, auth_reply=None, implicit_tls=False)

    def __init__(self, host="127.0.0.1", port=0, **settings):
        unknown = set(settings) - set(self.SETTINGS)
        if unknown:
            raise TypeError(f"unknown sink settings: {sorted(unknown)}")
        for k, v in self.SETTINGS.items():
            setattr(self, k, settings.get(k, v))
        self.replies = dict(self.replies or {})
        self.rcpt_replies = {k.lower(): v for k, v in (self.rcpt_replies or {}).items()}
        self.host = host
        self.lock = threading.Lock()
        self.sessions = []
        self.messages = []  # accepted transactions, in order
        self._uses = {}     # id of a reply list -> uses so far
        self._stopping = threading.Event()
        self._threads = []
        self._conns = set()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"sink-{host}:{self.port}")
        self._accepter.start()

    # --- control ---

    def configure(self, **settings):
        """Change settings for the sessions that start from now on."""
        for k, v in settings.items():
            if k not in self.SETTINGS:
                raise TypeError(f"unknown sink setting {k!r}")
            if k == "rcpt_replies":
                v = {a.lower(): r for a, r in (v or {}).items()}
            if k == "replies":
                v = dict(v or {})
            setattr(self, k, v)

    @property
    def address(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def connections(self):
        with self.lock:
            return len(self.sessions)

    def close_connections(self):
        """Drop every open connection now (an idle client sees EOF); the
        sink keeps accepting."""
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self._stopping.set()
        self._accepter.join(timeout=5)
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)

    def wait(self, predicate, timeout=30.0, what="the sink"):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"sessions: {self.sessions}")
            time.sleep(0.05)

    def wait_messages(self, n=1, timeout=30.0):
        """At least n accepted messages; returns the list of all of them."""
        self.wait(lambda: len(self.messages) >= n, timeout, f"{n} accepted message(s)")
        with self.lock:
            return list(self.messages)

    def wait_sessions(self, n=1, timeout=30.0, ended=True):
        """At least n sessions (ended, unless told): the list of all."""
        def check():
            done = [s for s in self.sessions if s.done.is_set() or not ended]
            return len(done) >= n
        self.wait(check, timeout, f"{n} session(s){' to end' if ended else ''}")
        with self.lock:
            return list(self.sessions)

    def transactions(self):
        with self.lock:
            return [t for s in self.sessions for t in s.transactions]

    # --- serving ---

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                session = Session(len(self.sessions) + 1, peer[:2], conn.getsockname()[:2])
                self.sessions.append(session)
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, session), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn, session):
        s = _SessionRunner(self, conn, session)
        try:
            s.run()
        except _Closed as e:
            session.ended = session.ended or str(e) or "client closed"
        except socket.timeout:
            session.ended = "timeout"
        except (OSError, ssl.SSLError) as e:
            session.ended = session.ended or f"error: {e}"
        finally:
            try:
                s.sock.close()
            except OSError:
                pass
            with self.lock:
                self._conns.discard(conn)
            session.done.set()

    def _pick(self, reply):
        """A reply setting: a list gives one element per use, the last repeated."""
        if _is_sequence(reply):
            with self.lock:
                n = self._uses.get(id(reply), 0)
                self._uses[id(reply)] = n + 1
            return reply[min(n, len(reply) - 1)]
        return reply


def _is_sequence(reply):
    """A list of replies (used in turn), not the lines of one reply: a list
    of full lines has every line but the last with a hyphen after the code."""
    if not isinstance(reply, list) or not reply:
        return False
    if len(reply) == 1:
        return False
    return not all(isinstance(x, str) and len(x) > 3 and x[3] == "-" for x in reply[:-1])


class _SessionRunner:
    def __init__(self, sink, conn, session):
        self.sink = sink
        self.sock = conn
        self.session = session
        self.buf = b""
        self.chunks = 0
        self.faulty = sink.faults_for is None or session.number <= sink.faults_for
        self.timeout = sink.timeout
        conn.settimeout(min(self.timeout, 0.5))
        self.ehlo_done = False
        self.tx = None
        self.bdat_failed = False
        self.quit_only = False

    # --- io ---

    def fault(self, name):
        return self.faulty and getattr(self.sink, name)

    def _recv(self):
        """More bytes into the buffer; _Closed at EOF, socket.timeout after
        self.timeout seconds of silence."""
        deadline = time.monotonic() + self.timeout
        while True:
            if self.sink._stopping.is_set():
                raise _Closed("sink stopped")
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if time.monotonic() > deadline:
                    raise
                continue
            except ssl.SSLWantReadError:
                continue
            if not data:
                raise _Closed("client closed")
            self.chunks += 1
            self.buf += data
            return

    def read_line(self):
        """A command line: (text, chunk, pipelined)."""
        pipelined = b"\n" in self.buf
        for _ in range(MAX_LINE):
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                if line.endswith(b"\r"):
                    line = line[:-1]
                try:
                    text = line.decode()
                except UnicodeDecodeError:
                    text = line.decode("latin-1")
                return text, self.chunks, pipelined
            if len(self.buf) > MAX_LINE:
                self.send("500 5.5.2 line too long")
                raise _Closed("line too long")
            self._recv()
        raise _Closed("no line")

    def send(self, reply):
        lines = reply_lines(reply)
        self.sock.sendall(b"".join(l.encode() + b"\r\n" for l in lines))
        return lines[0]

    def close(self, why):
        self.session.ended = why
        raise _Closed(why)

    def stall(self):
        """Answer nothing more: read and drop until the client leaves."""
        self.session.ended = "stalled"
        deadline = time.monotonic() + STALL_MAX
        self.buf = b""
        while time.monotonic() < deadline and not self.sink._stopping.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
        self.session.ended = "stalled, then closed"
        raise _Closed(self.session.ended)

    # --- the session ---

    def extensions(self):
        exts = list(self.sink.extensions or ())
        if self.sink.tls_cert and self.sink.starttls and self.session.tls is None:
            exts.append("STARTTLS")
        if self.sink.auth and (self.session.tls is not None or self.sink.auth_plaintext):
            exts.append("AUTH " + " ".join(self.sink.auth))
        return exts

    def size_limit(self):
        for e in self.sink.extensions or ():
            p = e.split()
            if p[0].upper() == "SIZE" and len(p) > 1 and p[1].isdigit() and int(p[1]) > 0:
                return int(p[1])
        return None

    def offered(self, keyword):
        return any(e.split()[0].upper() == keyword for e in self.extensions())

    def scripted(self, verb, default):
        r = self.sink._pick(self.sink.replies.get(verb))
        return default if r is None else r

    def wrap_tls(self):
        """The TLS handshake as the server (STARTTLS, implicit TLS)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.sink.tls_cert, self.sink.tls_key)
        self.sock.settimeout(self.timeout)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.session.tls_error = str(e)
            self.close(f"TLS handshake failed: {e}")
        self.sock.settimeout(min(self.timeout, 0.5))
        self.session.tls = self.sock.version()
        self.session.tls_cipher = self.sock.cipher()

    def run(self):
        sink = self.sink
        if sink.implicit_tls:
            self.wrap_tls()
        greeting = sink._pick(sink.greeting) or f"220 {sink.ehlo_name} ESMTP petrel test sink"
        first = self.send(greeting)
        if self.fault("close_after_greeting"):
            self.close("closed after the greeting")
        if first.startswith("421"):
            self.close("421 greeting")
        if not first.startswith("2"):
            self.quit_only = True
        for _ in range(MAX_COMMANDS):
            line, chunk, pipelined = self.read_line()
            cmd = Command(line, chunk, pipelined, self.session.tls is not None)
            with sink.lock:
                self.session.commands.append(cmd)
            if self.fault("drop_at") == cmd.verb:
                self.close(f"dropped at {cmd.verb}")
            if self.fault("stall_at") == cmd.verb:
                self.stall()
            reply = self.handle(cmd)
            if reply is not None:
                cmd.reply = self.send(reply)
            if cmd.verb == "QUIT":
                self.close("quit")
            if cmd.reply is not None and cmd.reply.startswith("421"):
                self.close("421")
            if cmd.verb == "DATA" and cmd.reply is not None and cmd.reply.startswith("354"):
                if self.fault("drop_after") == "DATA":
                    self.close("dropped after the 354")
                if self.fault("stall_after") == "DATA":
                    self.stall()
                self.send(self.receive_data())
                continue
            if self.fault("drop_after") == cmd.verb:
                self.close(f"dropped after {cmd.verb}")
            if self.fault("stall_after") == cmd.verb:
                self.stall()
        self.send("421 4.7.0 too many commands")
        self.close("too many commands")

    def handle(self, cmd):
        verb = cmd.verb
        arg = cmd.line[len(verb):].strip()
        if self.quit_only:
            return "221 2.0.0 bye" if verb == "QUIT" else "503 5.5.1 no service here"
        if verb in ("EHLO", "HELO"):
            self.session.helo = arg
            self.reset()
            self.ehlo_done = True
            if verb == "HELO":
                return self.scripted("HELO", f"250 {self.sink.ehlo_name}")
            default = [f"250{'-' if self.extensions() else ' '}{self.sink.ehlo_name} hello {arg}"]
            exts = self.extensions()
            default += [f"250{'-' if i < len(exts) - 1 else ' '}{e}" for i, e in enumerate(exts)]
            return self.scripted("EHLO", default)
        if verb == "QUIT":
            return self.scripted("QUIT", "221 2.0.0 bye")
        if verb == "NOOP":
            return self.scripted("NOOP", "250 2.0.0 Ok")
        if verb == "RSET":
            self.reset()
            return self.scripted("RSET", "250 2.0.0 Ok")
        if verb == "STARTTLS":
            return self.starttls(arg)
        if verb == "AUTH" and self.sink.auth:
            return self.authenticate(arg)
        if verb == "MAIL":
            return self.mail(arg)
        if verb == "RCPT":
            return self.rcpt(arg)
        if verb == "DATA":
            return self.data_command(arg)
        if verb == "BDAT":
            return self.bdat(arg)
        if verb in self.sink.replies:
            return self.scripted(verb, None)
        return "502 5.5.2 command not implemented"

    def reset(self):
        self.tx = None
        self.bdat_failed = False

    def _b64line(self):
        """A client's base64 line after a 334; None for "*" or garbage."""
        line, _, _ = self.read_line()
        with self.sink.lock:
            self.session.commands.append(Command("(auth data)", self.chunks, False,
                                                 self.session.tls is not None))
        if line == "*":
            return None
        try:
            return base64.b64decode(line, validate=True).decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            return None

    def authenticate(self, arg):
        """AUTH PLAIN [initial] or AUTH LOGIN (RFC 4954), one per session."""
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        if self.session.authenticated or mech not in self.sink.auth \
                or not self.offered("AUTH"):
            return "503 5.5.1 AUTH not possible now"
        if mech == "PLAIN":
            if len(parts) > 1:
                try:
                    raw = base64.b64decode(parts[1], validate=True).decode("utf-8", "replace")
                except (ValueError, binascii.Error):
                    return "501 5.5.2 bad base64"
            else:
                self.send("334 ")
                raw = self._b64line()
                if raw is None:
                    return "501 5.7.0 cancelled"
            fields = raw.split("\0")
            if len(fields) != 3:
                return "501 5.5.2 bad PLAIN message"
            user, password = fields[1], fields[2]
        else:
            self.send("334 VXNlcm5hbWU6")
            user = self._b64line()
            if user is None:
                return "501 5.7.0 cancelled"
            self.send("334 UGFzc3dvcmQ6")
            password = self._b64line()
            if password is None:
                return "501 5.7.0 cancelled"
        with self.sink.lock:
            self.session.auth = (mech, user, password)
        r = self.sink._pick(self.sink.auth_reply)
        if r is None:
            ok = (self.sink.auth_users or {}).get(user) == password
            r = "235 2.7.0 Authentication successful" if ok else \
                "535 5.7.8 Authentication credentials invalid"
        self.session.authenticated = reply_lines(r)[0].startswith("235")
        return r

    def starttls(self, arg):
        if not self.sink.tls_cert or self.session.tls is not None:
            return self.scripted("STARTTLS", "502 5.5.1 STARTTLS not available")
        r = self.scripted("STARTTLS", "220 2.0.0 Ready to start TLS")
        if not reply_lines(r)[0].startswith("220"):
            return r
        self.send(r)
        if self.buf:
            self.session.starttls_injection = True
            self.buf = b""
        self.wrap_tls()
        self.ehlo_done = False
        self.reset()
        self.session.commands[-1].reply = reply_lines(r)[0]
        return None

    def mail(self, arg):
        if not self.ehlo_done:
            return "503 5.5.1 EHLO first"
        if self.tx is not None:
            return "503 5.5.1 nested MAIL"
        m = _ADDR_RE.match(arg)
        if not m or not arg.upper().startswith("FROM:"):
            return "501 5.5.4 syntax: MAIL FROM:<address>"
        params = m.group(2).split()
        r = self.sink._pick(self.sink.mail_reply) or self.sink._pick(self.sink.replies.get("MAIL"))
        limit = self.size_limit()
        declared = _params_dict(params).get("SIZE")
        if r is None and limit is not None and declared and declared.isdigit() \
                and int(declared) > limit:
            r = "552 5.3.4 message size exceeds fixed maximum message size"
        r = r or "250 2.1.0 Ok"
        if reply_lines(r)[0].startswith("2"):
            self.tx = Transaction(self.session, m.group(1), params)
            with self.sink.lock:
                self.session.transactions.append(self.tx)
        return r

    def rcpt(self, arg):
        if self.tx is None:
            return "503 5.5.1 need MAIL first"
        m = _ADDR_RE.match(arg)
        if not m or not arg.upper().startswith("TO:"):
            return "501 5.5.4 syntax: RCPT TO:<address>"
        addr, params = m.group(1), m.group(2).split()
        r = self.sink._pick(self.sink.rcpt_replies.get(addr.lower()))
        if r is None:
            r = self.sink._pick(self.sink.rcpt_reply)
        if r is None:
            r = self.sink._pick(self.sink.replies.get("RCPT"))
        r = r or "250 2.1.5 Ok"
        first = reply_lines(r)[0]
        with self.sink.lock:
            if first.startswith("2"):
                self.tx.rcpts.append(addr)
                self.tx.rcpt_params[addr] = params
            else:
                self.tx.refused.append((addr, first))
        return r

    def data_command(self, arg):
        if self.tx is None:
            return "503 5.5.1 need MAIL first"
        if not self.tx.rcpts:
            return "554 5.5.1 no valid recipients"
        if self.tx.via == "BDAT":
            return "503 5.5.1 DATA after BDAT"
        return self.scripted("DATA", "354 End data with <CR><LF>.<CR><LF>")

    def receive_data(self):
        """The message after a 354, to CRLF.CRLF (RFC 5321 section 4.5.2):
        the terminator is a line holding a single dot; any other line's
        leading dot is removed."""
        tx = self.tx
        start = 0
        for _ in range(MAX_DATA // 512 + 10):
            if self.buf.startswith(b".\r\n"):
                end, cut = 0, 3
                break
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                end, cut = i + 2, i + 5
                break
            if len(self.buf) > MAX_DATA:
                self.send("552 5.3.4 message too big for the sink")
                self.close("message too big")
            start = max(0, len(self.buf) - 4)
            self._recv()
        else:
            self.close("no end of data")
        raw, self.buf = self.buf[:end], self.buf[cut:]
        tx.raw_data = raw + b".\r\n"
        lines = raw.split(b"\r\n")
        tx.data = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)
        tx.via = "DATA"
        if self.fault("drop_after") == "DATA_END":
            self.close("dropped at the end of the data")
        if self.fault("stall_after") == "DATA_END":
            self.stall()
        return self.finish(tx)

    def finish(self, tx):
        """The reply to a whole message (sent by the caller)."""
        limit = self.size_limit()
        r = self.sink._pick(self.sink.data_reply)
        if r is None and limit is not None and len(tx.data) > limit:
            r = "552 5.3.4 message size exceeds fixed maximum message size"
        r = r or f"250 2.0.0 Ok: queued as S{self.session.number}T{len(self.session.transactions)}"
        tx.data_reply = reply_lines(r)[0]
        with self.sink.lock:
            if tx.data_reply.startswith("2"):
                tx.accepted = True
                tx.accepted_at = time.monotonic()
                self.sink.messages.append(tx)
        self.tx = None
        return r

    def bdat(self, arg):
        parts = arg.split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or \
                (len(parts) == 2 and parts[1].upper() != "LAST"):
            return "501 5.5.4 syntax: BDAT size [LAST]"
        size, last = int(parts[0]), len(parts) == 2
        if size > MAX_DATA:
            self.send("552 5.3.4 chunk too big for the sink")
            self.close("chunk too big")
        # The chunk is read whatever the reply (RFC 3030 section 2).
        for _ in range(size // 512 + 10):
            if len(self.buf) >= size:
                break
            self._recv()
        else:
            self.close("short BDAT chunk")
        chunk, self.buf = self.buf[:size], self.buf[size:]
        if not self.offered("CHUNKING"):
            return "502 5.5.1 CHUNKING not offered"
        tx = self.tx
        if tx is None or self.bdat_failed:
            return "503 5.5.1 need MAIL first"
        if not tx.rcpts:
            self.bdat_failed = True
            return "554 5.5.1 no valid recipients"
        if tx.via == "DATA":
            return "503 5.5.1 BDAT after DATA"
        tx.via = "BDAT"
        tx.chunks.append(size)
        tx.raw_data = (tx.raw_data or b"") + chunk
        tx.data = tx.raw_data
        r = self.sink._pick(self.sink.replies.get("BDAT"))
        if r is not None and not reply_lines(r)[0].startswith("2"):
            self.bdat_failed = True
            return r
        if not last:
            return r or f"250 2.0.0 {size} octets received"
        if self.fault("drop_after") == "DATA_END":
            self.close("dropped at the end of the data")
        if self.fault("stall_after") == "DATA_END":
            self.stall()
        return self.finish(tx)


@pytest.fixture
def smtp_sink():
    """A factory of sinks: smtp_sink(host="127.0.0.2", port=0, **settings);
    every sink made is stopped at teardown."""
    made = []

    def factory(host="127.0.0.1", port=0, **settings):
        s = SmtpSink(host, port, **settings)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()
