"""The echo protocol over plain TCP, implicit TLS and STARTTLS; SNI."""

import os
import ssl
import subprocess

import pytest

from harness import CMD_TIMEOUT, Client, free_port, listener, service_conf


def make_cert(directory, cn, gid):
    cert, key = directory / f"{cn}.pem", directory / f"{cn}.key"
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    for path in (cert, key):  # readable by the run user on reload, as init does
        os.chown(path, 0, gid)
        path.chmod(0o640)
    return cert, key


def subject_cn(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                        "-nameopt", "multiline"], input=der, capture_output=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    for line in r.stdout.decode().splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "commonName":
            return value.strip()
    raise AssertionError(r.stdout)


def pem_der(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


@pytest.fixture(scope="module")
def srv(module_instance, env):
    inst = module_instance("echo-tls")
    other_cert, other_key = make_cert(inst.dir / "tls", "other.test", env.run_gid)
    inst.edit('min_protocol = "TLSv1.2";',
              'min_protocol = "TLSv1.2";\n'
              f'  domains = ( {{ name = "other.test"; certificate = "{other_cert}"; '
              f'key = "{other_key}"; }} );')
    inst.ports = {"plain": free_port(), "implicit": free_port(), "starttls": free_port()}
    inst.other_cert = other_cert
    inst.write_confd("50-echo.conf", service_conf(
        "echo",
        listeners=[listener(inst.ports["plain"]),
                   listener(inst.ports["implicit"], tls="implicit"),
                   listener(inst.ports["starttls"], tls="starttls")],
        settings={"greeting": "petrel echo ready", "fortunes": ["one", "two"]}))
    return inst.start()


def test_echo_plain(srv):
    with Client(srv.ports["plain"]) as c:
        assert c.greeting == "+OK petrel echo ready"
        assert c.cmd("ECHO hello world") == "+OK hello world"
        assert c.cmd("echo lower case") == "+OK lower case"
        assert c.cmd("ECHO") == "+OK "
        assert c.cmd("FORTUNE") == "+OK one"
        assert c.cmd("FORTUNE") == "+OK two"
        assert c.cmd("FORTUNE") == "+OK one"
        assert c.cmd("INFO") == "+OK tls=no peer=127.0.0.1 sni=-"
        assert c.cmd("STARTTLS") == "-ERR STARTTLS not offered here"
        assert c.cmd("NOPE") == "-ERR unknown command"
        # A bare LF ends a line too.
        c.send("ECHO lf only\n")
        assert c.line() == "+OK lf only"
        # Pipelined commands are answered in order.
        c.send("ECHO a\r\nECHO b\r\nECHO c\r\n")
        assert [c.line(), c.line(), c.line()] == ["+OK a", "+OK b", "+OK c"]
        assert c.cmd("QUIT") == "+OK bye"
        c.expect_eof()


def test_echo_implicit_tls(srv):
    with Client(srv.ports["implicit"], tls=True) as c:
        assert c.greeting == "+OK petrel echo ready"
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert c.cmd("ECHO secret") == "+OK secret"
        assert c.cmd("INFO") == "+OK tls=yes peer=127.0.0.1 sni=-"
        assert c.cmd("STARTTLS") == "-ERR already using TLS"
        assert c.cmd("QUIT") == "+OK bye"
        c.expect_eof()


def test_implicit_tls_rejects_plaintext(srv):
    with Client(srv.ports["implicit"], greeting=False) as c:
        c.send("ECHO plain\r\n")
        c.expect_eof()
    srv.wait_log(r"TLS handshake failed")


def test_starttls(srv):
    with Client(srv.ports["starttls"]) as c:
        assert c.cmd("INFO") == "+OK tls=no peer=127.0.0.1 sni=-"
        assert c.cmd("STARTTLS") == "+OK begin TLS"
        c.starttls()
        assert c.cmd("INFO") == "+OK tls=yes peer=127.0.0.1 sni=-"
        assert c.cmd("STARTTLS") == "-ERR already using TLS"
        assert c.cmd("ECHO over tls") == "+OK over tls"


def test_starttls_discards_pipelined_plaintext(srv):
    """RFC 3207 4.2: what the client sent before the handshake must never
    be answered (the STARTTLS command injection attack)."""
    with Client(srv.ports["starttls"]) as c:
        c.send(b"STARTTLS\r\nECHO injected\r\n")
        assert c.line() == "+OK begin TLS"
        c.starttls()
        assert c.cmd("INFO") == "+OK tls=yes peer=127.0.0.1 sni=-"
        assert c.cmd("ECHO after") == "+OK after"
        assert c.cmd("QUIT") == "+OK bye"
        c.expect_eof()


def test_sni_selects_the_certificate(srv):
    default_der = pem_der(srv.dir / "tls" / "cert.pem")
    other_der = pem_der(srv.other_cert)
    seen = {}
    for name in (None, "other.test", "OTHER.test", "mail.example.test", "unknown.test"):
        with Client(srv.ports["implicit"], tls=True, server_hostname=name) as c:
            der = c.sock.getpeercert(binary_form=True)
            seen[name] = subject_cn(der)
            expected = other_der if name is not None and name.lower() == "other.test" \
                else default_der
            assert der == expected, name
            assert c.cmd("INFO") == f"+OK tls=yes peer=127.0.0.1 sni={name or '-'}"
    assert seen["other.test"] == "other.test"
    assert seen[None] == "mail.example.test"
    assert seen["unknown.test"] == "mail.example.test"
    assert seen["other.test"] != seen[None]


def test_sni_over_starttls(srv):
    with Client(srv.ports["starttls"]) as c:
        assert c.cmd("STARTTLS") == "+OK begin TLS"
        c.starttls(server_hostname="other.test")
        assert subject_cn(c.sock.getpeercert(binary_form=True)) == "other.test"
        assert c.cmd("INFO") == "+OK tls=yes peer=127.0.0.1 sni=other.test"


def test_starttls_with_a_failed_handshake_closes(srv):
    since = srv.log_size()
    with Client(srv.ports["starttls"]) as c:
        assert c.cmd("STARTTLS") == "+OK begin TLS"
        c.send(b"this is not a ClientHello\r\n")
        c.expect_eof()
    srv.wait_log(r"TLS handshake failed", since=since)
    with Client(srv.ports["starttls"]) as c:
        assert c.cmd("ECHO fine") == "+OK fine"
