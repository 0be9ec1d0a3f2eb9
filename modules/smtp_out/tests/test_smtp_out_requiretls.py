"""smtp_out and REQUIRETLS (RFC 8689): a message submitted with the
REQUIRETLS parameter goes only over TLS, to a server whose certificate is
verified for its MX host name (found with DNSSEC here: the AD bit from the
scripted name server) and which offers REQUIRETLS, with REQUIRETLS on its
MAIL command. Anything less fails the message for good: a 5.7.x report
returning the header only, and nothing sent. A message without the
parameter is unaffected. The instance, sinks and zone come from
test_smtp_out.py.

Every wait is a bounded poll; nothing asserts how long a step took."""

import hashlib
import subprocess

import pytest

from dns_helpers import mail_dns  # noqa: F401 (fixture)
from smtp_sink import DEFAULT_EXTENSIONS, make_cert, smtp_sink  # noqa: F401 (fixture)
from test_smtp_out import (ALICE, MX1, OUT, outbound, parse_dsn, rcpt_block,  # noqa: F401
                           wait_messages)

BOB = f"bob@{OUT}"
WITH_RT = (*DEFAULT_EXTENSIONS, "REQUIRETLS")


@pytest.fixture
def peer(outbound, smtp_sink, mail_dns, base_dir):
    """peer(requiretls=True, tls=True, trusted=True, mx_ad=True, **smtp_out):
    an instance and a sink on mx1.out.test. The sink has a certificate for
    mx1.out.test (STARTTLS when tls), trusted by the instance's
    tls_ca_file when trusted (else another one is); it offers REQUIRETLS
    when told; the MX answer carries the AD bit when mx_ad."""
    cert, key = make_cert(base_dir / "certs-rt", f"mx1.{OUT}")
    other, _ = make_cert(base_dir / "certs-rt-other", f"mx1.{OUT}")

    def make(requiretls=True, tls=True, trusted=True, mx_ad=True, **settings):
        mail_dns.clear(OUT)
        mail_dns.mx(OUT, (10, f"mx1.{OUT}"), ad=mx_ad)
        srv = outbound(tls_ca_file=str(cert if trusted else other), **settings).start()
        sink = smtp_sink(MX1, srv.port, extensions=WITH_RT if requiretls else DEFAULT_EXTENSIONS,
                         tls_cert=cert if tls else None, tls_key=key if tls else None)
        return srv, sink
    return make


def send(srv, subject, options=("REQUIRETLS",)):
    msg = (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '.')}@example.test>\r\n\r\nsecret body\r\n")
    s = srv.submission(ALICE)
    try:
        assert s.sendmail(ALICE, [BOB], msg.encode(), mail_options=list(options)) == {}
    finally:
        s.quit()


def no_mail_command(sink):
    return not any(c.verb == "MAIL" for s in sink.sessions for c in s.commands)


def bounced(srv, status):
    """The one report alice got: failed with status (a prefix), the
    message's header only, no body."""
    [raw] = srv.bounces(1)
    msg, _, blocks = parse_dsn(raw)
    b = rcpt_block(blocks, BOB)
    assert b["Action"] == "failed" and b["Status"].startswith(status), str(b)
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in raw
    srv.wait_empty()
    return b


def test_delivered_with_requiretls_to_a_verified_peer(peer):
    srv, sink = peer()
    send(srv, "rt")
    [m] = wait_messages(sink, 1, srv)
    assert m.tls and "REQUIRETLS" in m.params and m.params["REQUIRETLS"] is None
    srv.wait_empty()
    assert "verified (ca, dnssec mx)" in srv.log()
    # A message without the parameter to the same peer: as ever, no
    # REQUIRETLS on its MAIL.
    send(srv, "plain", options=())
    msgs = wait_messages(sink, 2, srv)
    assert "REQUIRETLS" not in msgs[1].params
    srv.wait_empty()


def test_dane_is_enough_without_a_ca(peer, mail_dns, base_dir):
    """The TLSA record authenticates a certificate no CA file holds."""
    srv, sink = peer(trusted=False, tls_policies=[{"domain": OUT, "policy": "dane"}])
    cert = base_dir / "certs-rt" / f"mx1.{OUT}.crt"
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True, timeout=30).stdout
    mail_dns.tlsa(f"mx1.{OUT}", 3, 1, 1, hashlib.sha256(der).hexdigest(), port=srv.port)
    send(srv, "rt dane")
    [m] = wait_messages(sink, 1, srv)
    assert m.tls and "REQUIRETLS" in m.params
    srv.wait_empty()


def test_failed_when_the_peer_lacks_requiretls(peer):
    srv, sink = peer(requiretls=False)
    send(srv, "rt no ext", options=("REQUIRETLS", "RET=FULL"))
    b = bounced(srv, "5.7.30")
    assert "REQUIRETLS" in b["Diagnostic-Code"]
    assert sink.messages == [] and no_mail_command(sink)
    # The TLS session itself was fine.
    assert all(s.tls for s in sink.sessions)


def test_failed_when_the_peer_lacks_starttls(peer):
    srv, sink = peer(tls=False)
    send(srv, "rt no tls")
    bounced(srv, "5.7.10")
    assert sink.messages == [] and no_mail_command(sink)
    # Unaffected: a message without the parameter goes in plaintext (tls=may).
    send(srv, "plain", options=())
    [m] = wait_messages(sink, 1, srv)
    assert not m.tls and "REQUIRETLS" not in m.params


def test_failed_when_the_certificate_does_not_verify(peer):
    srv, sink = peer(trusted=False)
    send(srv, "rt bad cert")
    b = bounced(srv, "5.7.10")
    assert "not verified" in b["Diagnostic-Code"]
    assert sink.messages == [] and no_mail_command(sink)
    send(srv, "plain", options=())
    [m] = wait_messages(sink, 1, srv)
    assert m.tls and "REQUIRETLS" not in m.params


def test_failed_when_the_mx_name_is_not_authenticated(peer):
    """A CA-verified certificate for a name from an unsigned MX answer:
    an attacker who forged the answer could hold such a certificate."""
    srv, sink = peer(mx_ad=False)
    send(srv, "rt no dnssec")
    b = bounced(srv, "5.7.10")
    assert "not authenticated" in b["Diagnostic-Code"]
    assert sink.messages == [] and no_mail_command(sink)


def test_tls_policy_none_does_not_lower_it(peer):
    srv, sink = peer(tls_policies=[{"domain": OUT, "policy": "none"}])
    send(srv, "rt policy none")
    [m] = wait_messages(sink, 1, srv)
    assert m.tls and "REQUIRETLS" in m.params
    srv.wait_empty()

