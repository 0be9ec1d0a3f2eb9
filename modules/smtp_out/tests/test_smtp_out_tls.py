"""smtp_out's TLS policy (issue 12, item 3): per-domain policies
(tls_policies), DANE (RFC 7672) with TLSA records and the AD bit from the
scripted name server, and MTA-STS (RFC 8461) with a policy served by a
local HTTPS server on loopback (mta_sts_port, tls_ca_file as the trust
anchors). The instance, the sinks and the zone come from test_smtp_out.py.

Every wait is a bounded poll; nothing asserts how long a step took."""

import hashlib
import http.server
import ssl
import subprocess
import threading
import time

import pytest

from dns_helpers import mail_dns  # noqa: F401 (fixture)
from harness import free_port, wait_for
from smtp_sink import make_cert, smtp_sink  # noqa: F401 (fixture)
from test_smtp_out import ALICE, MX1, MX2, OUT, WAIT, outbound, wait_messages  # noqa: F401

OTHER = "other.test"
STS_HOST = "127.0.0.5"  # where mta-sts.out.test serves its policy


def spki_sha256(cert):
    """The SHA-256 of a PEM certificate's SubjectPublicKeyInfo, in hex:
    the data of a TLSA 3 1 1 record."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True, timeout=30).stdout
    return hashlib.sha256(der).hexdigest()


def wait_log(srv, text):
    try:
        wait_for(lambda: text in srv.log(), WAIT, f"{text!r} in the log")
    except AssertionError as e:
        raise AssertionError(f"{e}\nqueue: {srv.rows()}\nlog:\n{srv.log()[-4000:]}")


def no_mail_command(sink):
    return not any(c.verb == "MAIL" for s in sink.sessions for c in s.commands)


# --- per-domain policies --------------------------------------------------------------


def test_per_domain_policy_overrides_the_default(outbound, smtp_sink, mail_dns):
    """Default encrypt; out.test's entry says may: it goes in plaintext to
    a sink without STARTTLS, while other.test (no entry) is deferred."""
    mail_dns.mx(OTHER, (10, f"mx2.{OTHER}"))
    mail_dns.host(f"mx2.{OTHER}", MX2)
    srv = outbound(tls="encrypt",
                   tls_policies=[{"domain": OUT.upper(), "policy": "may"}]).start()
    sink1 = smtp_sink(MX1, srv.port)
    sink2 = smtp_sink(MX2, srv.port)
    srv.send([f"bob@{OUT}", f"carol@{OTHER}"])
    [m] = wait_messages(sink1, 1, srv)
    assert m.rcpts == [f"bob@{OUT}"] and not m.tls
    row = srv.wait_row(f"carol@{OTHER}", "deferred")
    assert row["reason"].startswith("451 4.7.4"), row
    assert sink2.messages == [] and no_mail_command(sink2)


def test_per_domain_policy_none_skips_starttls(outbound, smtp_sink, base_dir):
    cert, key = make_cert(base_dir / "certs-none", f"mx1.{OUT}")
    srv = outbound(tls="may", tls_policies=[{"domain": OUT, "policy": "none"}]).start()
    sink = smtp_sink(MX1, srv.port, tls_cert=cert, tls_key=key)
    srv.send([f"bob@{OUT}"])
    [m] = wait_messages(sink, 1, srv)
    assert not m.tls
    [sess] = sink.wait_sessions(1)
    assert "STARTTLS" not in sess.verbs()


def test_tls_policies_refused_when_malformed(outbound):
    srv = outbound(tls_policies=[{"domain": OUT, "policy": "maybe"}])
    rc, out = srv.inst.check_config()
    assert rc != 0 and "tls_policies[0].policy" in out, out
    srv.configure(tls_policies=[{"domain": OUT, "policy": "none"}, {"domain": OUT, "policy": "may"}])
    rc, out = srv.inst.check_config()
    assert rc != 0 and "listed twice" in out, out


# --- DANE -----------------------------------------------------------------------------------


@pytest.fixture
def dane(outbound, smtp_sink, mail_dns, base_dir):
    """dane(tlsa_hex=None, mx_ad=True, **smtp_out): an instance started
    with out.test's MX (AD as told), a sink on mx1 with a self-signed
    certificate, and a TLSA 3 1 1 record at _port._tcp.mx1.out.test (AD)
    with tlsa_hex, or the certificate's own SPKI hash."""
    cert, key = make_cert(base_dir / "certs-dane", f"mx1.{OUT}")

    def make(tlsa_hex=None, mx_ad=True, **settings):
        mail_dns.clear(OUT)
        mail_dns.mx(OUT, (10, f"mx1.{OUT}"), ad=mx_ad)
        srv = outbound(**settings)
        mail_dns.tlsa(f"mx1.{OUT}", 3, 1, 1, tlsa_hex or spki_sha256(cert), port=srv.port)
        srv.start()
        sink = smtp_sink(MX1, srv.port, tls_cert=cert, tls_key=key)
        return srv, sink
    return make


def test_dane_3_1_1_delivers_over_tls(dane, mail_dns):
    """The per-domain policy dane; the certificate is self-signed and not
    in any CA file: the TLSA record alone authenticates it."""
    srv, sink = dane(tls="may", tls_policies=[{"domain": OUT, "policy": "dane"}])
    srv.send([f"bob@{OUT}"], subject="dane")
    [m] = wait_messages(sink, 1, srv)
    assert m.tls and b"Subject: dane\r\n" in m.data
    srv.wait_empty()
    wait_log(srv, "verified (dane)")
    assert mail_dns.asked(f"_{srv.port}._tcp.mx1.{OUT}") >= 1


def test_dane_mismatch_deferred(dane):
    srv, sink = dane(tlsa_hex="00" * 32, tls="dane")
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert row["reason"].startswith("451 4.7.5") and "TLSA mismatch" in row["reason"], row
    assert sink.messages == [] and no_mail_command(sink)
    assert srv.messages(ALICE) == []


def test_dane_needs_the_ad_bit_on_the_mx(dane, mail_dns):
    """Without AD on the MX answer DANE does not apply: no TLSA lookup, and
    the mismatching record does not stop opportunistic TLS."""
    srv, sink = dane(tlsa_hex="00" * 32, mx_ad=False, tls="dane")
    srv.send([f"bob@{OUT}"])
    [m] = wait_messages(sink, 1, srv)
    assert m.tls
    srv.wait_empty()
    assert mail_dns.asked(f"_{srv.port}._tcp.mx1.{OUT}") == 0
    wait_log(srv, "not verified")


def test_dane_tlsa_servfail_deferred(dane, mail_dns):
    srv, sink = dane(tls="dane")
    mail_dns.servfail(f"_{srv.port}._tcp.mx1.{OUT}")
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert "TLSA lookup" in row["reason"], row
    assert sink.connections == 0


def test_dane_unusable_tlsa_means_mandatory_tls(outbound, smtp_sink, mail_dns):
    """Records present but none usable (PKIX-EE, usage 1): TLS is required
    without authentication; a sink without STARTTLS is deferred."""
    mail_dns.clear(OUT)
    mail_dns.mx(OUT, (10, f"mx1.{OUT}"), ad=True)
    srv = outbound(tls="dane")
    mail_dns.tlsa(f"mx1.{OUT}", 1, 1, 1, "11" * 32, port=srv.port)
    srv.start()
    sink = smtp_sink(MX1, srv.port)
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert row["reason"].startswith("451 4.7.4"), row
    assert sink.connections >= 1 and no_mail_command(sink)


# --- MTA-STS --------------------------------------------------------------------------------


class PolicyServer:
    """https://mta-sts.out.test/.well-known/mta-sts.txt on STS_HOST: serves
    self.policy as text/plain and counts the requests for it."""

    def __init__(self, cert, key, policy):
        self.policy = policy
        self.delay = 0.0  # seconds before answering: a slow policy host
        self.fetches = 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self):
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                with server.lock:
                    server.fetches += 1
                    body = server.policy.encode()
                time.sleep(server.delay)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port(STS_HOST)
        self.httpd = http.server.ThreadingHTTPServer((STS_HOST, self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def mta_sts(outbound, smtp_sink, mail_dns, base_dir):
    """mta_sts(mode, mx=[...]): the policy server, the TXT record and the
    address of mta-sts.out.test, one certificate (for mx1.out.test and
    mta-sts.out.test) for the sink and the server, and an instance that
    trusts it (tls_ca_file) and fetches from the server's port."""
    cert, key = make_cert(base_dir / "certs-sts", f"mx1.{OUT}", names=[f"mta-sts.{OUT}"])
    servers = []

    def make(mode, mx, sink_cert=True, max_age=86400, **settings):
        policy = f"version: STSv1\r\nmode: {mode}\r\n" + "".join(
            f"mx: {m}\r\n" for m in mx) + f"max_age: {max_age}\r\n"
        web = PolicyServer(cert, key, policy)
        servers.append(web)
        mail_dns.txt(f"_mta-sts.{OUT}", "v=STSv1; id=20240101T000000;")
        mail_dns.host(f"mta-sts.{OUT}", STS_HOST)
        srv = outbound(tls_ca_file=str(cert), mta_sts_port=web.port, **settings).start()
        if sink_cert:
            sink = smtp_sink(MX1, srv.port, tls_cert=cert, tls_key=key)
        else:
            other, other_key = make_cert(base_dir / "certs-sts-other", f"mx1.{OUT}")
            sink = smtp_sink(MX1, srv.port, tls_cert=other, tls_key=other_key)
        return srv, sink, web
    yield make
    for web in servers:
        web.stop()


def test_mta_sts_enforce_mx_not_in_policy_deferred(mta_sts):
    srv, sink, web = mta_sts("enforce", [f"mx2.{OUT}"])
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert row["reason"].startswith("451 4.7.5 MTA-STS"), row
    assert sink.connections == 0
    assert web.fetches == 1


def test_mta_sts_enforce_verified_and_cached(mta_sts):
    """mx1 is listed: delivered over TLS with the certificate verified
    against the test CA; a second message uses the cached policy."""
    srv, sink, web = mta_sts("enforce", [f"*.{OUT}"], tls="may")
    srv.send([f"bob@{OUT}"], subject="first")
    wait_messages(sink, 1, srv)
    srv.wait_empty()
    srv.send([f"bob@{OUT}"], subject="second")
    msgs = wait_messages(sink, 2, srv)
    assert all(m.tls for m in msgs)
    srv.wait_empty()
    wait_log(srv, "verified (mta-sts)")
    assert web.fetches == 1


def test_mta_sts_enforce_unverified_certificate_deferred(mta_sts):
    srv, sink, web = mta_sts("enforce", [f"mx1.{OUT}"], sink_cert=False)
    srv.send([f"bob@{OUT}"])
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert row["reason"].startswith("451 4.7.5 MTA-STS"), row
    assert sink.messages == [] and no_mail_command(sink)


def test_mta_sts_testing_delivers_and_logs(mta_sts):
    srv, sink, web = mta_sts("testing", [f"mx2.{OUT}"], sink_cert=False)
    srv.send([f"bob@{OUT}"])
    [m] = wait_messages(sink, 1, srv)
    assert m.tls
    srv.wait_empty()
    wait_log(srv, "MTA-STS testing")
    assert web.fetches == 1


def test_mta_sts_off_or_explicit_policy_not_fetched(mta_sts):
    srv, sink, web = mta_sts("enforce", [f"mx2.{OUT}"], mta_sts=False)
    srv.send([f"bob@{OUT}"])
    wait_messages(sink, 1, srv)
    srv.wait_empty()
    assert web.fetches == 0


def test_mta_sts_one_fetch_for_many_waiting_messages(mta_sts):
    """Messages to a domain whose policy is being fetched wait for that
    one fetch (the policy host answers slowly), rather than each fetching
    it, holding a worker thread apiece."""
    srv, sink, web = mta_sts("enforce", [f"*.{OUT}"])
    web.delay = 1.0
    for i in range(8):
        srv.send([f"bob@{OUT}"], subject=f"m{i}")
    msgs = wait_messages(sink, 8, srv)
    assert all(m.tls for m in msgs)
    srv.wait_empty()
    assert web.fetches == 1


def test_mta_sts_policy_refreshed_before_it_lapses(mta_sts):
    """With less than a quarter of max_age left, a message still goes
    under the cached policy and the policy is fetched again beside it, so
    a policy host that is down at expiry cannot remove the policy."""
    srv, sink, web = mta_sts("enforce", [f"*.{OUT}"], max_age=10)
    srv.send([f"bob@{OUT}"], subject="first")
    wait_messages(sink, 1, srv)
    srv.wait_empty()
    assert web.fetches == 1
    time.sleep(8)  # about 2 s of the 10 left: stale, not expired
    srv.send([f"bob@{OUT}"], subject="second")
    msgs = wait_messages(sink, 2, srv)
    assert all(m.tls for m in msgs)
    wait_for(lambda: web.fetches == 2, WAIT, "the policy fetched again")
    wait_log(srv, "fetched again before it lapses")


def test_tls_required_no_waives_mta_sts(mta_sts):
    """RFC 8689 section 5: a message with "TLS-Required: No" goes to an MX
    host that the domain's enforce policy does not list (and over an
    unverified certificate); the same message without it stays queued."""
    srv, sink, web = mta_sts("enforce", [f"mx2.{OUT}"], sink_cert=False)
    waived = (f"From: <{ALICE}>\r\nTo: <bob@{OUT}>\r\nSubject: waived\r\n"
              "TLS-Required:\r\n No\r\n\r\nhello\r\n")
    srv.send([f"bob@{OUT}"], msg=waived)
    [m] = wait_messages(sink, 1, srv)
    assert b"Subject: waived" in m.data and m.tls
    srv.wait_empty()
    wait_log(srv, "TLS-Required: No: MTA-STS and DANE are not applied")
    assert web.fetches == 0  # not even looked up
    srv.send([f"bob@{OUT}"], subject="kept")
    row = srv.wait_row(f"bob@{OUT}", "deferred")
    assert row["reason"].startswith("451 4.7.5 MTA-STS"), row
    assert len(sink.messages) == 1
