"""Helpers for the resolver tests: dnsmasq on a loopback address and a free
port with the test zone, a small scripted name server of our own (UDP and
TCP on one port, answers chosen per question, every query recorded), a
"black hole" UDP socket that never answers, and an instance running the
dnsprobe test module (tests/modules/dnsprobe.c). Nothing here sends a
packet outside 127.0.0.0/8."""

import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import SOCK_TIMEOUT, Client, _track, _untrack, listener, service_conf

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
TLSA_HASH = "8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"
ZONE = "example.test"

# RR types
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT, TLSA = 1, 2, 5, 6, 12, 15, 16, 28, 41, 52


def free_udp_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on host."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no port free for UDP and TCP")


# --- wire format -------------------------------------------------------------


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def read_name(msg, off):
    labels = []
    while msg[off] != 0:
        if msg[off] & 0xC0 == 0xC0:
            ptr = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            return ".".join(labels + [read_name(msg, ptr)[0]]).strip("."), off + 2
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    return ".".join(labels), off + 1


class Query:
    """A query as received: id, flags, name, type, raw question, EDNS."""

    def __init__(self, data, transport):
        self.transport = transport
        self.id, self.flags, qd, _an, _ns, self.arcount = struct.unpack("!6H", data[:12])
        self.name, off = read_name(data, 12)
        self.qtype, _qclass = struct.unpack("!HH", data[off:off + 4])
        self.question = data[12:off + 4]
        self.edns = self.arcount > 0 and OPT in self._additional_types(data, off + 4)

    def _additional_types(self, data, off):
        types = []
        try:
            for _ in range(self.arcount):
                _, off = read_name(data, off)
                t, _c, _ttl, n = struct.unpack("!HHIH", data[off:off + 10])
                types.append(t)
                off += 10 + n
        except (IndexError, struct.error):
            pass
        return types

    @property
    def ad(self):
        return bool(self.flags & 0x0020)


def rr(rtype, ttl, rdata, owner=b"\xc0\x0c"):
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a_rdata(ip):
    return socket.inet_pton(socket.AF_INET, ip)


def soa_rdata(minimum, zone=ZONE):
    return (encode_name("ns." + zone) + encode_name("hostmaster." + zone) +
            struct.pack("!5I", 1, 3600, 600, 86400, minimum))


class Answer:
    """What FakeDNS replies to one (name, type)."""

    def __init__(self, rcode=0, answers=(), soa=None, ad=False, tc_udp=False, zone=ZONE):
        self.rcode = rcode
        self.answers = list(answers)  # (type, ttl, rdata)
        self.soa = soa                # (ttl, minimum) for the authority section
        self.ad = ad
        self.tc_udp = tc_udp          # over UDP: TC set and no records
        self.zone = zone              # the owner of the SOA

    def build(self, q, udp):
        flags = 0x8000 | (q.flags & 0x0100) | 0x0080 | self.rcode
        if self.ad:
            flags |= 0x0020
        answers = [] if (udp and self.tc_udp) else self.answers
        if udp and self.tc_udp:
            flags |= 0x0200
        auth = []
        if self.soa is not None and not (udp and self.tc_udp):
            auth.append(rr(SOA, self.soa[0], soa_rdata(self.soa[1], self.zone),
                           owner=encode_name(self.zone)))
        head = struct.pack("!6H", q.id, flags, 1, len(answers), len(auth), 0)
        return head + q.question + b"".join(rr(t, ttl, d) for t, ttl, d in answers) + b"".join(auth)


class FakeDNS:
    """A scripted name server on 127.0.0.1: UDP and TCP on one free port.
    zone maps (name, type) to an Answer (None: never answer); anything else
    gets self.default (REFUSED unless changed; a callable is given the
    query and returns an Answer). Every query is recorded in self.queries."""

    def __init__(self):
        self.zone = {}
        self.default = Answer(rcode=5)
        self.queries = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        for _ in range(50):
            port = free_udp_tcp_port()
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.udp.bind(("127.0.0.1", port))
                self.tcp.bind(("127.0.0.1", port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.port = port
        self.tcp.listen(16)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def count(self, name, qtype=None, transport=None):
        with self.lock:
            return sum(1 for q in self.queries if q.name.lower() == name.lower()
                       and (qtype is None or q.qtype == qtype)
                       and (transport is None or q.transport == transport))

    def _reply(self, data, transport):
        try:
            q = Query(data, transport)
        except (IndexError, struct.error, UnicodeDecodeError):
            return None
        with self.lock:
            self.queries.append(q)
            ans = self.zone.get((q.name.lower(), q.qtype), self.default)
            if callable(ans):
                ans = ans(q)
        if ans is None:
            return None
        return ans.build(q, transport == "udp")

    def _serve_udp(self):
        while not self.stopping.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self._reply(data, "udp")
            if out is not None:
                self.udp.sendto(out, peer)

    def _serve_tcp(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:
                    while True:
                        head = conn.recv(2)
                        if len(head) < 2:
                            break
                        n = struct.unpack("!H", head)[0]
                        data = b""
                        while len(data) < n:
                            chunk = conn.recv(n - len(data))
                            if not chunk:
                                break
                            data += chunk
                        out = self._reply(data, "tcp")
                        if out is not None:
                            conn.sendall(struct.pack("!H", len(out)) + out)
                except (socket.timeout, OSError):
                    pass

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=2.0)
        self.udp.close()
        self.tcp.close()


class BlackHole:
    """A bound UDP socket nobody reads: queries to it are never answered."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


# --- a zone for the outbound tests ---------------------------------------------


def mx_rdata(preference, exchange):
    """An MX record's data; exchange "." with preference 0 is a null MX
    (RFC 7505)."""
    return struct.pack("!H", preference) + encode_name(exchange)


def aaaa_rdata(ip):
    return socket.inet_pton(socket.AF_INET6, ip)


def txt_rdata(*strings):
    out = b""
    for text in strings:
        data = text.encode() if isinstance(text, str) else text
        for i in range(0, max(len(data), 1), 255):
            part = data[i:i + 255]
            out += bytes([len(part)]) + part
    return out


def tlsa_rdata(usage, selector, mtype, data):
    return bytes([usage, selector, mtype]) + (bytes.fromhex(data) if isinstance(data, str)
                                              else data)


class MailDNS(FakeDNS):
    """FakeDNS as the name service of the outbound tests: publish what a
    sender looks up (MX with preferences, null MX, A/AAAA of the MX hosts
    at 127.0.0.x or ::1, TXT, TLSA with or without the AD bit) and make
    names fail (NXDOMAIN, SERVFAIL, no answer at all). A type not published
    for a name that has records is NODATA; a name never mentioned is
    NXDOMAIN (not REFUSED: a stray lookup such as a TLSA or an AAAA the
    test did not think of gets an ordinary negative answer). Both
    negative answers carry an SOA (TTL 60, minimum 60) of the name's
    parent, so they may be cached for a minute.

        dns = MailDNS()
        dns.mx("out.test", (10, "mx1.out.test"), (20, "mx2.out.test"))
        dns.host("mx1.out.test", "127.0.0.2")
        dns.host("mx2.out.test", "127.0.0.3", "::1")
        dns.null_mx("nomail.test")
        dns.nxdomain("gone.test")
        dns.servfail("broken.test")
        set_dnr(inst, [dns.address])
    """

    TTL = 300

    def __init__(self):
        super().__init__()
        self.names = set()     # names with something published (lower case)
        self.failing = {}      # name -> Answer for every type
        self.secure = set()    # names whose answers carry AD
        self.default = self._negative

    @staticmethod
    def _parent(name):
        parts = name.split(".")
        return ".".join(parts[1:]) if len(parts) > 2 else name

    def _negative(self, q):
        name = q.name.lower().rstrip(".")
        if name in self.failing:
            return self.failing[name]
        rcode = 0 if name in self.names else 3
        return Answer(rcode=rcode, soa=(60, 60), zone=self._parent(name),
                      ad=name in self.secure)

    def _add(self, name, rtype, rdata, ttl=None, ad=None):
        name = name.lower().rstrip(".")
        with self.lock:
            self.names.add(name)
            self.failing.pop(name, None)
            ans = self.zone.get((name, rtype))
            if ans is None or ans.rcode != 0:
                ans = Answer(ad=name in self.secure if ad is None else ad)
                self.zone[(name, rtype)] = ans
            elif ad is not None:
                ans.ad = ad
            ans.answers.append((rtype, self.TTL if ttl is None else ttl, rdata))
        return self

    def clear(self, name, rtype=None):
        """Forget what a name has (of one type, or all)."""
        name = name.lower().rstrip(".")
        with self.lock:
            for key in [k for k in self.zone if k[0] == name and rtype in (None, k[1])]:
                del self.zone[key]
            if rtype is None:
                self.names.discard(name)
            self.failing.pop(name, None)
        return self

    def mx(self, domain, *records, ad=None):
        """MX records: (preference, exchange) pairs."""
        for pref, exchange in records:
            self._add(domain, MX, mx_rdata(pref, exchange), ad=ad)
        return self

    def null_mx(self, domain):
        return self._add(domain, MX, mx_rdata(0, "."))

    def host(self, name, *addresses, ad=None):
        """A and AAAA records (by the form of each address)."""
        for ip in addresses:
            if ":" in ip:
                self._add(name, AAAA, aaaa_rdata(ip), ad=ad)
            else:
                self._add(name, A, a_rdata(ip), ad=ad)
        if not addresses:
            with self.lock:
                self.names.add(name.lower().rstrip("."))
        return self

    def txt(self, name, *strings):
        return self._add(name, TXT, txt_rdata(*strings))

    def tlsa(self, host, usage, selector, mtype, data, port=25, ad=True):
        """A TLSA record at _port._tcp.host, with the AD bit unless told."""
        return self._add(f"_{port}._tcp.{host}", TLSA, tlsa_rdata(usage, selector, mtype, data),
                         ad=ad)

    def set_secure(self, name, ad=True):
        """The AD bit on every answer for name, negative ones too."""
        name = name.lower().rstrip(".")
        with self.lock:
            (self.secure.add if ad else self.secure.discard)(name)
            for (n, _t), ans in self.zone.items():
                if n == name and ans is not None:
                    ans.ad = ad
        return self

    def nxdomain(self, name):
        name = name.lower().rstrip(".")
        self.clear(name)
        with self.lock:
            self.failing[name] = Answer(rcode=3, soa=(60, 60), zone=self._parent(name))
        return self

    def servfail(self, name):
        name = name.lower().rstrip(".")
        self.clear(name)
        with self.lock:
            self.failing[name] = Answer(rcode=2)
        return self

    def silent(self, name):
        """Never answer any question about name (the resolver times out)."""
        name = name.lower().rstrip(".")
        self.clear(name)
        with self.lock:
            self.failing[name] = None
        return self

    def asked(self, name, qtype=None):
        return self.count(name, qtype)


# --- dnsmasq -----------------------------------------------------------------


class Dnsmasq:
    """dnsmasq serving the test zone on 127.0.0.1 and a free port, every
    query logged to a file (to count them). broken.test goes to upstream
    ("127.0.0.1:port"), which the test makes fail."""

    def __init__(self, workdir, upstream):
        self.port = free_udp_tcp_port()
        self.log_path = workdir / f"dnsmasq-{self.port}.log"
        big = ",".join("x" * 200 for _ in range(8))  # > 1232 bytes: truncated over UDP
        args = [
            DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
            f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--user=root" if _is_root() else "--user=" + _me(), "--pid-file=",
            "--log-queries", f"--log-facility={self.log_path}",
            "--local-ttl=300", f"--local=/{ZONE}/",
            f"--mx-host={ZONE},mx1.{ZONE},10", f"--mx-host={ZONE},mx2.{ZONE},20",
            f"--mx-host={ZONE},mx0.{ZONE},20",
            f"--host-record=mx1.{ZONE},127.0.0.11,::11",
            f"--host-record=mx2.{ZONE},127.0.0.12",
            f"--cname=alias.{ZONE},www.{ZONE}", f"--cname=www.{ZONE},mx1.{ZONE}",
            f"--txt-record={ZONE},v=spf1 ip4:127.0.0.0/8 -all",
            f"--txt-record=big.{ZONE},{big}",
            f"--dns-rr=nullmx.{ZONE},15,000000",
            f"--dns-rr=_25._tcp.mx1.{ZONE},52,030101{TLSA_HASH}",
            # broken.test is forwarded to a server failing for it.
            f"--server=/broken.test/{upstream.replace(':', '#')}",
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        _track(self.proc)
        deadline = time.monotonic() + 10
        while "started, version" not in self.log():
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace")
                pytest.fail(f"dnsmasq exited {self.proc.returncode}: {out}")
            assert time.monotonic() < deadline, "dnsmasq did not start within 10s"
            time.sleep(0.05)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def queries(self, qtype, name):
        return len(re.findall(rf"query\[{qtype}\] {re.escape(name)} from", self.log()))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        _untrack(self.proc)


def _is_root():
    import os
    return os.geteuid() == 0


def _me():
    import os
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


# --- the daemon side -----------------------------------------------------------


def dns_instance(make_instance, env, servers, timeout="1s", attempts=1, cache_size=None,
                 name="dns"):
    """An instance with the dnsprobe module and the given dnr settings (not
    started). Returns (instance, port)."""
    inst = make_instance(name)
    port = free_udp_tcp_port()
    inst.write_confd("50-dnsprobe.conf", service_conf(
        "dnsprobe", file=env.test_module("dnsprobe"), listeners=[listener(port)]))
    set_dnr(inst, servers, timeout, attempts, cache_size)
    return inst, port


def set_dnr(inst, servers, timeout="1s", attempts=1, cache_size=None):
    text = inst.conf.read_text()
    text = re.sub(r"\ndnr: \{.*?\n\};\n", "\n", text, flags=re.S)
    body = [f"  servers = [ {', '.join(chr(34) + s + chr(34) for s in servers)} ];",
            f'  timeout = "{timeout}";', f"  attempts = {attempts};"]
    if cache_size is not None:
        body.append(f"  cache_size = {cache_size};")
    inst.conf.write_text(text + "\ndnr: {\n" + "\n".join(body) + "\n};\n")


class Probe:
    """A dnsprobe connection."""

    def __init__(self, port, timeout=SOCK_TIMEOUT):
        self.c = Client(port, timeout=timeout)
        assert self.c.greeting == "+OK dnsprobe ready"

    def ask(self, command):
        """Send a lookup command; returns (fields, records)."""
        head = self.c.cmd(command)
        assert head.startswith("+OK "), head
        m = re.match(r"\+OK (\S+) rcode=(-?\d+) ttl=(\d+) ad=(\d) cache=(\d) nullmx=(\d) "
                     r"canonical=(.*?) count=(\d+)(?: error=(.*))?$", head)
        assert m, head
        fields = dict(status=m[1], rcode=int(m[2]), ttl=int(m[3]), ad=m[4] == "1",
                      cache=m[5] == "1", nullmx=m[6] == "1", canonical=m[7], count=int(m[8]),
                      error=m[9])
        records = []
        while True:
            line = self.c.line()
            if line == ".":
                break
            records.append(line)
        assert len(records) == fields["count"], (head, records)
        return fields, records

    def resolve(self, rtype, name):
        return self.ask(f"RESOLVE {rtype} {name}")

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def mail_dns():
    """A MailDNS for one test, stopped after it."""
    d = MailDNS()
    yield d
    d.stop()
