"""The resolver (petrel/dns.h) against real name servers on the loopback:
dnsmasq with the test zone (MX, A, AAAA, TXT, TLSA, null MX, CNAMEs,
NXDOMAIN, SERVFAIL through a dead forwarder, an answer too big for UDP),
and a scripted server of our own for what dnsmasq cannot be made to do on
demand (TC=1 over UDP with the full answer over TCP, exact TTLs, SOA
minimums, the AD bit) and for counting queries. Lookups are driven through
the dnsprobe test module. No packet leaves 127.0.0.0/8."""

import signal
import time

import pytest

from dns_helpers import (A, AAAA, MX, SOA, TLSA_HASH, TXT, ZONE, Answer, BlackHole, Dnsmasq,
                         FakeDNS, Probe, a_rdata, dns_instance, set_dnr)


@pytest.fixture(scope="module")
def dnsmasq(base_dir):
    upstream = FakeDNS()  # SERVFAIL for host.broken.test
    upstream.zone[("host.broken.test", A)] = Answer(rcode=2)
    d = Dnsmasq(base_dir, upstream.address)
    yield d
    d.stop()
    upstream.stop()


@pytest.fixture
def fake():
    f = FakeDNS()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def zone_instance(module_instance, env, dnsmasq):
    """One daemon resolving through dnsmasq for the read-only tests."""
    inst, port = dns_instance(module_instance, env, [dnsmasq.address], timeout="2s", attempts=2)
    inst.start()
    return inst, port


# --- every type from dnsmasq --------------------------------------------------


def test_mx_sorted_by_preference(zone_instance):
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("MX", ZONE)
    assert f["status"] == "OK" and f["rcode"] == 0 and not f["nullmx"]
    assert recs[0] == f"10 mx1.{ZONE}"
    assert sorted(recs[1:]) == [f"20 mx0.{ZONE}", f"20 mx2.{ZONE}"]
    assert 0 < f["ttl"] <= 300


def test_a_aaaa_and_ptr(zone_instance):
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("A", f"MX1.{ZONE}.")  # case and final dot do not matter
        assert (f["status"], recs) == ("OK", ["127.0.0.11"])
        assert f["canonical"] == f"mx1.{ZONE}"
        f, recs = p.resolve("AAAA", f"mx1.{ZONE}")
        assert (f["status"], recs) == ("OK", ["::11"])
        f, recs = p.ask("PTR 127.0.0.11")
        assert (f["status"], recs) == ("OK", [f"mx1.{ZONE}"])
        assert f["canonical"] == "11.0.0.127.in-addr.arpa"


def test_txt_and_tlsa(zone_instance):
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("TXT", ZONE)
        assert (f["status"], recs) == ("OK", ["v=spf1 ip4:127.0.0.0/8 -all"])
        f, recs = p.resolve("TLSA", f"_25._tcp.mx1.{ZONE}")
        assert (f["status"], recs) == ("OK", [f"3 1 1 {TLSA_HASH}"])
        assert not f["ad"]  # dnsmasq does not validate here


def test_null_mx(zone_instance):
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("MX", f"nullmx.{ZONE}")
    assert f["status"] == "OK" and f["nullmx"]
    assert recs == ["0 "] or recs == ["0"]


def test_cname_chain(zone_instance):
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("A", f"alias.{ZONE}")
    assert (f["status"], recs) == ("OK", ["127.0.0.11"])
    assert f["canonical"] == f"mx1.{ZONE}"


def test_nxdomain_and_nodata(zone_instance):
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("MX", f"nosuchhost.{ZONE}")
        assert (f["status"], f["rcode"], recs) == ("NXDOMAIN", 3, [])
        f, recs = p.resolve("TLSA", f"_25._tcp.mx2.{ZONE}")
        assert f["status"] in ("NODATA", "NXDOMAIN"), f
        f, _ = p.resolve("AAAA", f"mx2.{ZONE}")
        assert (f["status"], f["rcode"]) == ("NODATA", 0)


def test_servfail_through_dnsmasq(zone_instance):
    _, port = zone_instance
    with Probe(port, timeout=15) as p:
        f, recs = p.resolve("A", "host.broken.test")
    assert f["status"] == "SERVFAIL", f
    assert recs == []


def test_truncated_answer_retried_over_tcp(zone_instance, dnsmasq):
    """1,600 bytes of TXT do not fit the 1,232-byte EDNS payload: dnsmasq
    sets TC and the full answer comes over TCP."""
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.resolve("TXT", f"big.{ZONE}")
    assert f["status"] == "OK", f
    assert recs == ["x" * 1600]
    assert dnsmasq.queries("TXT", f"big.{ZONE}") >= 2  # UDP, then TCP


def test_bad_names_refused_without_a_query(zone_instance, dnsmasq):
    _, port = zone_instance
    with Probe(port) as p:
        for name in ("a..b", "a b", "x" * 64 + ".test", "a\\065.test"):
            f, _ = p.resolve("A", name)
            assert (f["status"], f["error"]) == ("ERROR", "invalid name"), name
        f, _ = p.ask("PTR not-an-address")
        assert f["status"] == "ERROR"
        assert p.c.cmd("RESOLVE SRV x.test") == "-ERR unknown type"
    assert "a..b" not in dnsmasq.log()


def test_lookup_from_a_worker(zone_instance):
    """Started on a worker thread: posted to a loop, answered there, the
    worker waits for it."""
    _, port = zone_instance
    with Probe(port) as p:
        f, recs = p.ask(f"RESOLVEW A mx2.{ZONE}")
    assert (f["status"], recs) == ("OK", ["127.0.0.12"])


def test_cache_shared_and_counted(zone_instance, dnsmasq):
    """A second lookup, on another connection (maybe another loop), comes
    from the cache: dnsmasq sees one query."""
    inst, port = zone_instance
    name = f"mx2.{ZONE}"
    with Probe(port) as p:
        assert p.c.cmd("FLUSH") == "+OK flushed"
        before = {t: dnsmasq.queries(t, name) for t in ("A", "MX")}
        f, _ = p.resolve("MX", name)  # NODATA: no SOA from dnsmasq, so not kept
        assert f["status"] == "NODATA"
        f, _ = p.resolve("A", name)
        assert not f["cache"]
    for _ in range(4):
        with Probe(port) as p:
            f, recs = p.resolve("A", name)
            assert f["cache"] and recs == ["127.0.0.12"], f
            assert 0 < f["ttl"] <= 300
    assert dnsmasq.queries("A", name) == before["A"] + 1
    assert dnsmasq.queries("MX", name) == before["MX"] + 1
    stats = inst.stats()
    assert stats["dns.cache_hits"] >= 4
    assert stats["dns.queries"] >= 2


# --- our own server: TC + TCP, TTLs, negative caching, AD, EDNS -------------------


def test_tc_bit_then_tcp(make_instance, env, fake):
    many = [(A, 60, a_rdata(f"127.0.1.{i}")) for i in range(1, 41)]
    fake.zone[("many.test", A)] = Answer(answers=many, tc_udp=True)
    inst, port = dns_instance(make_instance, env, [fake.address])
    inst.start()
    with Probe(port) as p:
        f, recs = p.resolve("A", "many.test")
    assert f["status"] == "OK" and f["count"] == 40
    assert recs[0] == "127.0.1.1" and recs[-1] == "127.0.1.40"
    assert fake.count("many.test", A, "udp") == 1
    assert fake.count("many.test", A, "tcp") == 1


def test_query_asks_for_edns_and_ad_and_passes_ad_on(make_instance, env, fake):
    fake.zone[("signed.test", A)] = Answer(answers=[(A, 60, a_rdata("127.0.0.5"))], ad=True)
    fake.zone[("unsigned.test", A)] = Answer(answers=[(A, 60, a_rdata("127.0.0.6"))])
    inst, port = dns_instance(make_instance, env, [fake.address])
    inst.start()
    with Probe(port) as p:
        f, _ = p.resolve("A", "signed.test")
        assert f["ad"]
        f, _ = p.resolve("A", "unsigned.test")
        assert not f["ad"]
        f, _ = p.resolve("A", "signed.test")  # the cache keeps the AD bit
        assert f["cache"] and f["ad"]
    q = fake.queries[0]
    assert q.ad and q.edns and q.flags & 0x0100  # AD, EDNS0, RD


def test_ttl_expiry(make_instance, env, fake):
    fake.zone[("short.test", A)] = Answer(answers=[(A, 2, a_rdata("127.0.0.7"))])
    inst, port = dns_instance(make_instance, env, [fake.address])
    inst.start()
    with Probe(port) as p:
        f, _ = p.resolve("A", "short.test")
        assert not f["cache"] and f["ttl"] == 2
        f, _ = p.resolve("A", "short.test")
        assert f["cache"] and 1 <= f["ttl"] <= 2
        assert fake.count("short.test", A) == 1
        time.sleep(2.3)
        f, _ = p.resolve("A", "short.test")
        assert not f["cache"]
        assert fake.count("short.test", A) == 2


def test_negative_caching_rfc2308(make_instance, env, fake):
    # NXDOMAIN with an SOA: kept for min(SOA TTL, MINIMUM) = 2 s.
    fake.zone[("gone.test", MX)] = Answer(rcode=3, soa=(600, 2))
    # NODATA with an SOA.
    fake.zone[("nodata.test", MX)] = Answer(rcode=0, soa=(2, 600))
    # NXDOMAIN without an SOA: no negative TTL, never kept.
    fake.zone[("bare.test", MX)] = Answer(rcode=3)
    inst, port = dns_instance(make_instance, env, [fake.address])
    inst.start()
    with Probe(port) as p:
        for name, status in (("gone.test", "NXDOMAIN"), ("nodata.test", "NODATA")):
            f, _ = p.resolve("MX", name)
            assert (f["status"], f["cache"], f["ttl"]) == (status, False, 2), f
            f, _ = p.resolve("MX", name)
            assert (f["status"], f["cache"]) == (status, True), f
            assert fake.count(name, MX) == 1
        for _ in range(3):
            f, _ = p.resolve("MX", "bare.test")
            assert (f["status"], f["cache"], f["ttl"]) == ("NXDOMAIN", False, 0)
        assert fake.count("bare.test", MX) == 3
        time.sleep(2.3)
        f, _ = p.resolve("MX", "gone.test")
        assert not f["cache"]
        assert fake.count("gone.test", MX) == 2


def test_servfail_and_refused_not_cached(make_instance, env, fake):
    fake.zone[("sf.test", A)] = Answer(rcode=2)
    inst, port = dns_instance(make_instance, env, [fake.address], attempts=2)
    inst.start()
    with Probe(port) as p:
        f, _ = p.resolve("A", "sf.test")
        # c-ares 1.18 tries every server and attempt, then reports that all
        # failed, without the rcode.
        assert f["status"] == "SERVFAIL" and f["rcode"] in (-1, 2), f
        f, _ = p.resolve("A", "refused.test")  # not in the zone: REFUSED
        assert f["status"] == "SERVFAIL"
        f, _ = p.resolve("A", "sf.test")
        assert not f["cache"]
    assert fake.count("sf.test", A) == 4  # 2 attempts each, nothing kept


def test_timeout_does_not_block_the_loop(make_instance, env):
    """A server that never answers: TIMEOUT after dnr.timeout; meanwhile
    the daemon answers other clients at once (one I/O thread, so the same
    loop)."""
    hole = BlackHole()
    try:
        inst, port = dns_instance(make_instance, env, [hole.address], timeout="1s", attempts=1)
        inst.edit('server: {', 'server: {\n  io_threads = 1;')
        inst.start()
        with Probe(port, timeout=15) as slow, Probe(port) as quick:
            t0 = time.monotonic()
            slow.c.send("RESOLVE MX silent.test\r\n")
            time.sleep(0.2)
            f, _ = quick.resolve("A", "bad..name")  # no query: answered at once
            assert f["status"] == "ERROR"
            assert time.monotonic() - t0 < 0.9
            head = slow.c.line()
            took = time.monotonic() - t0
            assert head.startswith("+OK TIMEOUT rcode=-1"), head
            assert slow.c.line() == "."
            assert 0.9 <= took < 5, took
    finally:
        hole.close()


def test_close_and_cancel_while_pending(make_instance, env):
    """Closing a connection cancels its lookup: the callback never runs on
    freed state (ASan watches), and a stop with lookups in flight is clean."""
    hole = BlackHole()
    try:
        inst, port = dns_instance(make_instance, env, [hole.address], timeout="3s")
        inst.start()
        for i in range(5):
            p = Probe(port)
            p.c.send(f"RESOLVE A pending{i}.test\r\n")
            p.close()
        with Probe(port) as p:
            assert p.c.cmd("CANCEL A other.test") == "+OK cancelled"
            p.c.send("RESOLVE A last.test\r\n")
            time.sleep(0.3)
        inst.wait_idle()
        with Probe(port) as p:
            p.c.send("RESOLVE A inflight.test\r\n")
            time.sleep(0.2)
            took = inst.stop()  # asserts exit 0 and no sanitizer finding
        assert took < 10
    finally:
        hole.close()


def test_reload_switches_servers(make_instance, env, fake):
    first = FakeDNS()
    try:
        first.zone[("which.test", A)] = Answer(answers=[(A, 1, a_rdata("127.0.0.1"))])
        fake.zone[("which.test", A)] = Answer(answers=[(A, 1, a_rdata("127.0.0.2"))])
        inst, port = dns_instance(make_instance, env, [first.address])
        inst.start()
        with Probe(port) as p:
            assert p.resolve("A", "which.test")[1] == ["127.0.0.1"]
        set_dnr(inst, [fake.address])
        mark = inst.log_size()
        inst.signal(signal.SIGHUP)
        inst.wait_log("configuration reloaded", since=mark)
        time.sleep(1.1)  # the 1 s TTL runs out
        with Probe(port) as p:
            assert p.resolve("A", "which.test")[1] == ["127.0.0.2"]
    finally:
        first.stop()


def test_bad_server_setting_refused(make_instance, env):
    inst, _ = dns_instance(make_instance, env, ["localhost:53"])
    rc, out = inst.check_config()
    assert rc != 0
    assert "dnr: setting 'servers': 'localhost:53' is not IP, IP:port or [IPv6]:port" in out
