"""smtp_out end to end: a message relayed through smtp_in goes to the
queue, which hands it to smtp_out; smtp_out finds the MX through a
scripted name server (dns_helpers.FakeDNS) and delivers to a small SMTP
sink on a free port of 127.0.0.1 (the `port` setting). What the sink
received, the queue's state and smtp_out's log lines are checked."""

import socket
import ssl
import struct
import threading
import time

import pytest

from dns_helpers import MX, A, AAAA, Answer, FakeDNS, a_rdata, encode_name, set_dnr
from harness import free_port, wait_for
from smtp_helpers import HOSTNAME, SmtpServer, message
from test_echo_tls import make_cert

REMOTE = "remote.test"


class Sink:
    """A scripted SMTP server: EHLO offers `caps`; rcpt(address) gives the
    reply to RCPT (default 250); `final` the reply to the end of data;
    `greeting` the banner. Every transaction is kept in self.messages as
    (mail_line, [rcpt lines], data bytes)."""

    def __init__(self, caps=("PIPELINING", "SIZE 100000", "8BITMIME", "DSN", "SMTPUTF8"),
                 rcpt=None, final="250 2.0.0 Ok: queued as SINK1",
                 greeting="220 sink.remote.test ESMTP", tls=None):
        self.caps, self.rcpt, self.final, self.greeting = caps, rcpt, final, greeting
        self.tls = tls  # an ssl.SSLContext: STARTTLS offered
        self.tls_sessions = 0
        self.messages, self.commands = [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        f = conn.makefile("rb")
        conn.settimeout(10)

        def say(text):
            conn.sendall(text.encode() + b"\r\n")

        try:
            say(self.greeting)
            mail, rcpts = None, []
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
                self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "STARTTLS" and self.tls is not None:
                    say("220 2.0.0 go ahead")
                    conn = self.tls.wrap_socket(conn, server_side=True)
                    f = conn.makefile("rb")
                    self.tls_sessions += 1
                    continue
                if verb == "EHLO":
                    tls_cap = ["STARTTLS"] if self.tls is not None and self.tls_sessions == 0 else []
                    lines = ["sink.remote.test hello"] + list(self.caps) + tls_cap
                    for i, text in enumerate(lines):
                        say(("250 " if i == len(lines) - 1 else "250-") + text)
                elif verb == "HELO":
                    say("250 sink.remote.test")
                elif verb == "MAIL":
                    mail, rcpts = cmd, []
                    say("250 2.1.0 Ok")
                elif verb == "RCPT":
                    reply = self.rcpt(cmd) if self.rcpt else "250 2.1.5 Ok"
                    if reply.startswith("2"):
                        rcpts.append(cmd)
                    say(reply)
                elif verb == "DATA":
                    if not rcpts:
                        say("554 5.5.1 no valid recipients")
                        continue
                    say("354 go ahead")
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = f.readline()
                        if not chunk:
                            return
                        data += chunk
                    self.messages.append((mail, rcpts, data))
                    say(self.final)
                elif verb == "RSET":
                    say("250 2.0.0 Ok")
                elif verb == "QUIT":
                    say("221 2.0.0 Bye")
                    return
                else:
                    say("502 5.5.2 unknown")
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=2)
        self.sock.close()


def mx_rdata(pref, host):
    return struct.pack("!H", pref) + encode_name(host)


@pytest.fixture
def fake():
    dns = FakeDNS()
    yield dns
    dns.stop()


def server(make_instance, env, fake, sink, **out):
    settings = dict(port=sink.port, address_family="ipv4", tls="may",
                    connect_timeout="5s", command_timeout="10s")
    settings.update(out)
    srv = SmtpServer(make_instance, env, "out", smtp=dict(relay_networks=["127.0.0.1"]),
                     smtp_out=settings)
    set_dnr(srv.inst, [fake.address])
    return srv.start()


def zone(fake, domain=REMOTE, mx=((10, "mx1.remote.test"),), hosts=None):
    fake.zone[(domain, MX)] = Answer(answers=[(MX, 60, mx_rdata(p, h)) for p, h in mx])
    for _, host in mx:
        ip = (hosts or {}).get(host, "127.0.0.1")
        fake.zone[(host, A)] = Answer(answers=[(A, 60, a_rdata(ip))])


def relay(srv, *rcpts, body="hello\r\n.dot line\r\n", frm="sender@client.test"):
    with srv.smtp() as s:
        s.ehlo()
        s.sendmail(frm, list(rcpts), message(to=rcpts[0], body=body, frm=frm))


def test_delivered_with_dot_stuffing_and_logged(make_instance, env, fake):
    sink = Sink()
    zone(fake)
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, f"bob@{REMOTE}", f"carol@{REMOTE}")
        wait_for(lambda: sink.messages, timeout=15, what="a delivery at the sink")
        mail, rcpts, data = sink.messages[0]
        assert mail.startswith("MAIL FROM:<sender@client.test> SIZE=")
        assert rcpts == [f"RCPT TO:<bob@{REMOTE}>", f"RCPT TO:<carol@{REMOTE}>"]
        assert b"\r\n..dot line\r\n.\r\n" in data  # stuffed on the wire
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, relay=mx1\.remote\.test\[127\.0\.0\.1\]:"
                          rf"{sink.port}, delay=[0-9.]+, tls=none, status=sent \(250 2\.0\.0 Ok: "
                          r"queued as SINK1", timeout=10)
        wait_for(lambda: srv.inst.stats().get("smtp_out.sent", 0) >= 2, timeout=10,
                 what="smtp_out.sent")
        # DATA goes only after both RCPTs (pipelined: their replies read in order).
        assert sink.commands.index("DATA") > sink.commands.index(f"RCPT TO:<carol@{REMOTE}>")
    finally:
        srv.stop()
        sink.stop()


def test_rcpt_replies_decide_each_recipient(make_instance, env, fake):
    def rcpt(cmd):
        if "nobody@" in cmd:
            return "550-5.1.1 no such\r\n550 5.1.1 user here"
        if "later@" in cmd:
            return "451 4.7.1 greylisted"
        return "250 2.1.5 Ok"

    sink = Sink(rcpt=rcpt)
    zone(fake)
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, f"bob@{REMOTE}", f"nobody@{REMOTE}", f"later@{REMOTE}")
        srv.inst.wait_log(rf"to=<nobody@{REMOTE}>, .*status=bounced \(550 5\.1\.1 no such user "
                          r"here \(in reply to RCPT TO, from mx1\.remote\.test\[127\.0\.0\.1\]\)\)",
                          timeout=15)
        srv.inst.wait_log(rf"to=<later@{REMOTE}>, .*status=deferred \(451 4\.7\.1 greylisted",
                          timeout=5)
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*status=sent", timeout=5)
        assert len(sink.messages) == 1 and sink.messages[0][1] == [f"RCPT TO:<bob@{REMOTE}>"]
    finally:
        srv.stop()
        sink.stop()


def test_dns_answers(make_instance, env, fake):
    sink = Sink()
    zone(fake)
    fake.zone[("gone.test", MX)] = Answer(rcode=3, soa=(60, 60))
    fake.zone[("nullmx.test", MX)] = Answer(answers=[(MX, 60, struct.pack("!H", 0) + b"\0")])
    fake.zone[("implicit.test", MX)] = Answer(soa=(60, 60))  # NODATA: the domain is its MX
    fake.zone[("implicit.test", A)] = Answer(answers=[(A, 60, a_rdata("127.0.0.1"))])
    fake.zone[("broken.test", MX)] = Answer(rcode=2)
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, "a@gone.test")
        relay(srv, "b@nullmx.test")
        relay(srv, "c@implicit.test")
        relay(srv, "d@broken.test")
        srv.inst.wait_log(r"to=<a@gone\.test>, relay=none, .*status=bounced \(550 5\.1\.2 domain "
                          r"gone\.test not found", timeout=15)
        srv.inst.wait_log(r"to=<b@nullmx\.test>, .*status=bounced \(556 5\.1\.10 nullmx\.test "
                          r"does not accept mail \(null MX", timeout=10)
        srv.inst.wait_log(r"to=<c@implicit\.test>, relay=implicit\.test\[127\.0\.0\.1\]:\d+, "
                          r".*status=sent", timeout=10)
        srv.inst.wait_log(r"to=<d@broken\.test>, .*status=deferred \(451 4\.4\.3 cannot look up "
                          r"the MX hosts of broken\.test", timeout=10)
    finally:
        srv.stop()
        sink.stop()


def test_next_mx_when_the_first_refuses_connections(make_instance, env, fake):
    sink = Sink()
    # mx0 (preferred) is 127.0.0.2, where nothing listens on the sink's port.
    zone(fake, mx=((5, "mx0.remote.test"), (10, "mx1.remote.test")),
         hosts={"mx0.remote.test": "127.0.0.2"})
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, relay=mx1\.remote\.test\[127\.0\.0\.1\]:\d+, "
                          r".*status=sent", timeout=15)
    finally:
        srv.stop()
        sink.stop()


def test_loop_back_to_myself(make_instance, env, fake):
    sink = Sink(greeting=f"220 {HOSTNAME} ESMTP")
    zone(fake)
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*status=bounced \(554 5\.4\.6 mail for "
                          rf"{REMOTE} loops back to myself", timeout=15)
        assert not sink.messages
    finally:
        srv.stop()
        sink.stop()


def test_smtputf8_and_size_refused_without_sending(make_instance, env, fake):
    sink = Sink(caps=("PIPELINING", "SIZE 200"))
    zone(fake)
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, f"bob@{REMOTE}", body="x" * 500 + "\r\n")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*status=bounced \(552 5\.3\.4 message size "
                          r"\d+ exceeds the size limit 200", timeout=15)
        assert not any(c.startswith("MAIL") for c in sink.commands)
    finally:
        srv.stop()
        sink.stop()


def test_tls_encrypt_without_starttls_defers(make_instance, env, fake):
    sink = Sink()
    zone(fake)
    srv = server(make_instance, env, fake, sink, tls="encrypt")
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*status=deferred \(451 4\.7\.4 TLS is required "
                          r"but not offered by mx1\.remote\.test\[127\.0\.0\.1\]", timeout=15)
        assert not sink.messages
    finally:
        srv.stop()
        sink.stop()


def test_final_reply_timeout_defers(make_instance, env, fake):
    """No reply to the end of data: never counted as delivered, deferred
    once data_timeout has run out."""
    zone(fake)
    stall = StallSink()
    srv = server(make_instance, env, fake, stall, data_timeout="2s")
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*status=deferred \(451 4\.4\.2 timeout with "
                          r"mx1\.remote\.test\[127\.0\.0\.1\] while waiting for the reply to the "
                          r"end of the message", timeout=20)
        assert "status=sent" not in srv.log()
    finally:
        srv.stop()
        stall.stop()


class StallSink(Sink):
    """Takes the message, then never answers the end of data."""

    def __init__(self):
        super().__init__(final="")

    def _session(self, conn):
        f = conn.makefile("rb")
        conn.settimeout(30)
        try:
            conn.sendall(b"220 stall.remote.test ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250 stall.remote.test\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    time.sleep(25)
                    return
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            conn.close()


@pytest.fixture
def mx_cert(base_dir, env):
    """A self-signed certificate for mx1.remote.test (its own CA), where
    petreld's run user can read it."""
    directory = base_dir / "mx-cert"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    cert, key = make_cert(directory, "mx1.remote.test", env.run_gid)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


def test_starttls_may_not_verified(make_instance, env, fake, mx_cert):
    sink = Sink(tls=mx_cert[0])
    zone(fake)
    srv = server(make_instance, env, fake, sink)
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*tls=TLSv1\.[23] \S+, not verified \(.+\), "
                          r"status=sent", timeout=15)
        assert sink.tls_sessions == 1
        # EHLO again after STARTTLS, and the transaction only inside TLS.
        assert sink.commands.count("EHLO " + sink.commands[0].split(" ", 1)[1]) == 2
    finally:
        srv.stop()
        sink.stop()


def test_starttls_verify(make_instance, env, fake, mx_cert):
    sink = Sink(tls=mx_cert[0])
    zone(fake)
    srv = server(make_instance, env, fake, sink, tls="verify", tls_ca_file=str(mx_cert[1]))
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*tls=TLSv1\.[23] \S+, verified, status=sent",
                          timeout=15)
    finally:
        srv.stop()
        sink.stop()


def test_starttls_verify_fails_without_the_ca(make_instance, env, fake, mx_cert):
    sink = Sink(tls=mx_cert[0])
    zone(fake)
    srv = server(make_instance, env, fake, sink, tls="verify")
    try:
        relay(srv, f"bob@{REMOTE}")
        srv.inst.wait_log(rf"to=<bob@{REMOTE}>, .*status=deferred \(451 4\.7\.5 TLS certificate "
                          r"of mx1\.remote\.test\[127\.0\.0\.1\] not verified", timeout=15)
        assert not sink.messages
    finally:
        srv.stop()
        sink.stop()
