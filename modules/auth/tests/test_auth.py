"""The auth service end to end: SASL PLAIN and LOGIN through the authprobe
test module, failure delays, lock-outs per client address and per
(account, address), the slow-down of an account under attack, logging
(with reasons, never passwords) and counters."""

import re
import time

import pytest

from harness import AuthProbe, Client, add_account, b64, ctl_input

PW = "correct horse 42"


@pytest.fixture
def probe(make_instance, env):
    def factory(**settings):
        p = AuthProbe(make_instance, env, **settings)
        add_account(p.inst, "alice@example.test", PW)
        add_account(p.inst, "bob@example.test", "bobs-secret")
        return p.start()
    return factory


def test_plain_and_login_succeed(probe):
    p = probe()
    assert p.plain("alice@example.test", PW) == "+OK alice@example.test"
    # A bare user name is in the primary domain; case does not matter.
    assert p.plain("Alice", PW) == "+OK alice@example.test"
    assert p.login("alice@example.test", PW) == "+OK alice@example.test"
    # PLAIN without an initial response: an empty challenge first.
    with p.client() as c:
        assert c.cmd("AUTH PLAIN") == "+ "
        assert c.cmd(b64("\0bob@example.test\0bobs-secret")) == "+OK bob@example.test"
    # "=" is an empty initial response: malformed for PLAIN.
    with p.client() as c:
        assert c.cmd("AUTH PLAIN =").startswith("-ERR PLAIN:")
    assert p.inst.stats()["auth.success"] == 4


def test_authzid_must_be_the_user(probe):
    p = probe(failure_delay="0s")
    assert p.plain("alice@example.test", PW, authzid="alice@example.test") == \
        "+OK alice@example.test"
    assert p.plain("alice@example.test", PW, authzid="bob@example.test") == \
        "-ERR authentication failed"
    assert "reason=authorization identity differs" in p.inst.log()


def test_failures_are_delayed_logged_and_counted(probe):
    p = probe(failure_delay="2s")
    for user, pw, reason in (("alice@example.test", "wrong", "bad password"),
                             ("nobody@example.test", PW, "unknown user")):
        t0 = time.monotonic()
        assert p.plain(user, pw) == "-ERR authentication failed"
        took = time.monotonic() - t0
        assert took >= 1.9, f"failure answered after {took:.2f}s"
        assert took < 15, took  # generous bound on the delay we asked for
        p.inst.wait_log(rf"login failed: service=authprobe ip=127\.0\.0\.1 user={user} "
                        rf"mech=PLAIN tls=no reason={reason}")
    t0 = time.monotonic()
    assert p.login("alice@example.test", "wrong") == "-ERR authentication failed"
    assert time.monotonic() - t0 >= 1.9
    stats = p.inst.stats()
    assert stats["auth.failure"] == 3
    assert "auth.success" not in stats or stats["auth.success"] == 0
    # The connection is free again after the delay: the next command works.
    with p.client() as c:
        assert c.cmd("AUTH PLAIN " + b64("\0alice\0nope")) == "-ERR authentication failed"
        assert c.cmd("LOCAL example.test") == "+OK yes"
    log = p.inst.log()
    for secret in ("wrong", "nope", PW):
        assert secret not in log


def test_disabled_account_fails(probe):
    p = probe(failure_delay="0s")
    assert p.plain("bob@example.test", "bobs-secret") == "+OK bob@example.test"
    r = ctl_input(p.inst, "account", "disable", "bob@example.test")
    assert r.returncode == 0, r.stderr
    p.wait_plain("bob@example.test", "bobs-secret", "-ERR authentication failed")
    p.inst.wait_log(r"user=bob@example\.test mech=PLAIN tls=no reason=account disabled")
    r = ctl_input(p.inst, "account", "enable", "bob@example.test")
    assert r.returncode == 0, r.stderr
    p.wait_plain("bob@example.test", "bobs-secret", "+OK bob@example.test")


def test_rate_limit_per_ip(probe):
    p = probe(failure_delay="0s", max_failures_per_ip=3, max_failures_per_account=0,
              lockout="1h")
    for i in range(3):
        assert p.plain(f"u{i}@example.test", "x") == "-ERR authentication failed"
    p.inst.wait_log(r"too many failed logins from 127\.0\.0\.1")
    # Now even the right password is refused, without being checked.
    assert p.plain("alice@example.test", PW) == "-ERR too many failures, try again later"
    p.inst.wait_log(r"login rate-limited: service=authprobe ip=127\.0\.0\.1 "
                    r"user=alice@example\.test .*reason=too many failed logins")
    # Another client address is not affected.
    assert p.plain("alice@example.test", PW, source="127.0.0.2") == "+OK alice@example.test"
    stats = p.inst.stats()
    assert stats["auth.ratelimited"] == 1
    assert stats["auth.failure"] == 3


def test_max_failure_delay_over_conn_limit_still_loads(probe):
    """max_failure_delay used to go up to 300s, but no connection is held
    longer than 60s (a longer delay was refused by the core and the failure
    answered at once): such a config still loads, is used as 60s with a
    warning, and failures are still answered late."""
    p = probe(failure_delay="1s", max_failure_delay="300s")
    p.inst.wait_log(r"max_failure_delay 300s is longer than a login can be delayed: using 60s")
    t0 = time.monotonic()
    assert p.plain("alice@example.test", "x") == "-ERR authentication failed"
    assert time.monotonic() - t0 >= 0.95


def test_network_block_locked_as_a_whole(probe):
    """Failures from many addresses of one /24, each under its own limits,
    add up: the whole block is refused, so that one holder of many
    addresses cannot fill the bounded tables and lock everyone out."""
    p = probe(failure_delay="0s", max_failures_per_ip=2, max_failures_per_account=0,
              max_failures_per_network=3, lockout="1h")
    for i in range(3):
        assert p.plain("alice@example.test", "x", source=f"127.0.0.{i + 2}") == \
            "-ERR authentication failed"
    p.inst.wait_log(r"too many failed logins from network 127\.0\.0\.0/24")
    assert p.plain("alice@example.test", PW, source="127.0.0.9") == \
        "-ERR too many failures, try again later"
    p.inst.wait_log(r"login rate-limited: service=authprobe ip=127\.0\.0\.9 "
                    r"user=alice@example\.test .*reason=too many failed logins from this network")
    # Another /24 is not affected.
    assert p.plain("alice@example.test", PW, source="127.0.1.2") == "+OK alice@example.test"
    assert p.inst.stats()["auth.ratelimited"] == 1


def test_lockout_is_per_account_and_source(probe):
    """Failures against an account lock out the address they come from for
    that account, answered at once; the owner elsewhere, and the attacker's
    address for other accounts, are not affected."""
    delay = 3.0
    p = probe(failure_delay=f"{int(delay)}s", max_failures_per_ip=0, max_failures_per_account=2)
    for pw in ("x", "y"):
        t0 = time.monotonic()
        assert p.plain("alice@example.test", pw, source="127.0.0.2") == \
            "-ERR authentication failed"
        assert time.monotonic() - t0 >= delay * 0.95
    p.inst.wait_log(r"too many failed logins for alice@example\.test from 127\.0\.0\.2")
    # Refused without the failure delay, the right password too.
    t0 = time.monotonic()
    assert p.plain("alice", PW, source="127.0.0.2") == "-ERR too many failures, try again later"
    took = time.monotonic() - t0
    assert took < delay / 2, f"the refusal took {took:.2f}s, the failure delay is {delay}s"
    p.inst.wait_log(r"login rate-limited: service=authprobe ip=127\.0\.0\.2 "
                    r"user=alice@example\.test .*reason=too many failed logins for this account "
                    r"from this address")
    # The owner, from an address that never logged in before.
    assert p.plain("alice@example.test", PW, source="127.0.0.3") == "+OK alice@example.test"
    # Another account from the attacker's address.
    assert p.plain("bob@example.test", "bobs-secret", source="127.0.0.2") == \
        "+OK bob@example.test"
    stats = p.inst.stats()
    assert stats["auth.ratelimited"] == 1
    assert stats["auth.failure"] == 2


def test_account_under_attack_is_slowed_not_locked(probe):
    """Failures for one account from many addresses make its failures
    slower and slower (capped), except from an address the owner has
    logged in from; nobody is refused for it."""
    p = probe(failure_delay="1s", max_failure_delay="8s", account_slowdown_after=1,
              max_failures_per_ip=0, max_failures_per_account=0)
    assert p.plain("alice", PW, source="127.0.0.1") == "+OK alice@example.test"
    for i, least in ((2, 0.95), (3, 1.9), (4, 3.8)):  # 1s, then doubled
        t0 = time.monotonic()
        assert p.plain("alice", "wrong", source=f"127.0.0.{i}") == "-ERR authentication failed"
        took = time.monotonic() - t0
        assert least <= took < 15, (i, took)
    p.inst.wait_log(r"many failed logins for alice@example\.test: failures from addresses it has "
                    r"not logged in from are slowed down")
    # The owner's address pays the plain delay for a typo (8s if slowed).
    t0 = time.monotonic()
    assert p.plain("alice", "typo", source="127.0.0.1") == "-ERR authentication failed"
    took = time.monotonic() - t0
    assert 0.95 <= took < 4, took
    # The right password gets in, from the owner's address or a new one.
    assert p.plain("alice", PW, source="127.0.0.1") == "+OK alice@example.test"
    assert p.plain("alice", PW, source="127.0.0.5") == "+OK alice@example.test"
    stats = p.inst.stats()
    assert stats["auth.slowed"] == 2
    assert stats["auth.success"] == 3
    assert "auth.ratelimited" not in stats or stats["auth.ratelimited"] == 0


def test_plaintext_needs_tls_by_default(make_instance, env):
    p = AuthProbe(make_instance, env, plaintext_without_tls=False)
    add_account(p.inst, "alice@example.test", PW)
    p.start()
    with p.client() as c:
        assert c.cmd("AUTH PLAIN " + b64("\0alice\0" + PW)) == \
            "-ERR plaintext authentication needs TLS"


def test_plaintext_over_tls(make_instance, env):
    p = AuthProbe(make_instance, env, tls=True, plaintext_without_tls=False)
    add_account(p.inst, "alice@example.test", PW)
    p.start()
    assert p.plain("alice", PW) == "+OK alice@example.test"
    p.inst.wait_log(r"login ok: service=authprobe ip=127\.0\.0\.1 user=alice@example\.test "
                    r"mech=PLAIN tls=yes")


def test_sasl_cancel_and_malformed(probe):
    p = probe(failure_delay="0s")
    with p.client() as c:
        assert c.cmd("AUTH LOGIN") == "+ VXNlcm5hbWU6"
        assert c.cmd("*") == "-ERR authentication cancelled"
        assert c.cmd("AUTH PLAIN not*base64") == "-ERR response is not valid base64"
        # A NUL inside the password is refused by the parser.
        assert c.cmd("AUTH PLAIN " + b64("\0alice\0a\0b")).startswith("-ERR PLAIN:")
        assert c.cmd("AUTH CRAM-MD5") == "-ERR unknown mechanism"
        # Control characters in a user name never reach the log.
        assert c.cmd("AUTH PLAIN " + b64("\0ali\nce\0x")).startswith("-ERR PLAIN:")
        assert c.cmd("AUTH PLAIN " + b64("\0alice\0" + PW)) == "+OK alice@example.test"


def test_lookups_alias_catchall_forward(probe):
    p = probe()
    inst = p.inst
    for args in (("domain", "catchall", "example.test", "bob@example.test"),
                 ("alias", "add", "sales@example.test", "alice@example.test", "x@far.test"),
                 ("forward", "set", "alice@example.test", "carol@far.test", "--keep"),
                 ("account", "quota", "alice@example.test", "2G", "5000")):
        r = ctl_input(inst, *args)
        assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while "keep=1" not in (got := p.lookup("alice@example.test")):
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
    assert p.lookup("alice@example.test") == (
        "+OK account alice@example.test quota=2147483648 messages=5000 disabled=0 keep=1 "
        "targets=carol@far.test")
    assert p.lookup("SALES@example.test") == \
        "+OK alias sales@example.test catchall=0 targets=alice@example.test,x@far.test"
    assert p.lookup("whoever@example.test") == \
        "+OK alias whoever@example.test catchall=1 targets=bob@example.test"
    assert p.lookup("alice@elsewhere.test") == "-ERR not found"
    assert p.lookup("bob") == (
        "+OK account bob@example.test quota=0 messages=0 disabled=0 keep=0")
    with p.client() as c:
        assert c.cmd("LOCAL Example.TEST") == "+OK yes"
        assert c.cmd("LOCAL elsewhere.test") == "+OK no"
    # An alias or a catch-all address cannot log in.
    assert p.plain("sales@example.test", PW) == "-ERR authentication failed"


def test_corrupt_line_reported_rest_loads(make_instance, env):
    p = AuthProbe(make_instance, env)
    add_account(p.inst, "alice@example.test", PW)
    lines = p.inst.users.read_text().splitlines()
    lines.insert(3, "account broken-no-hash@example.test")
    lines.append("alias nowhere@unknown.test alice@example.test")
    p.inst.users.write_text("\n".join(lines) + "\n")
    p.start()
    log = p.inst.log()
    assert re.search(r"data/users:4: account: expected 'account ADDRESS HASH", log), log
    n = len(lines)
    assert re.search(rf"data/users:{n}: nowhere@unknown\.test: domain unknown\.test is not "
                     r"declared", log), log
    assert p.plain("alice@example.test", PW) == "+OK alice@example.test"
    assert p.plain("demo@example.test", "x") == "-ERR authentication failed"


def test_file_replaced_by_hand_is_reloaded(probe):
    p = probe(failure_delay="0s")
    users = p.inst.users
    assert p.plain("bob@example.test", "bobs-secret") == "+OK bob@example.test"
    # Replacing the file by hand works like petrelctl does.
    text = users.read_text().replace("account bob@example.test", "#account bob@example.test")
    tmp = users.parent / "users.new"
    tmp.write_text(text)
    tmp.rename(users)
    p.wait_plain("bob@example.test", "bobs-secret", "-ERR authentication failed")
    p.inst.wait_log(r"userdb_file: reloaded \S+/data/users: ")
    assert p.plain("alice@example.test", PW) == "+OK alice@example.test"


def test_the_login_flow_counts_failures_for_every_protocol(make_instance, env):
    """authprobe frames its AUTH around the core's login flow as smtp_in
    does: failed logins on one connection count against the service's
    max_auth_errors, and the last one allowed closes the connection."""
    p = AuthProbe(make_instance, env, failure_delay="0s")
    text = (p.inst.confd / "50-authprobe.conf").read_text()
    p.inst.write_confd("50-authprobe.conf", text + "max_auth_errors = 2;\n")
    p.start()
    with p.client() as c:
        assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong")) == \
            "-ERR authentication failed"
        assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong")) == \
            "-ERR authentication failed"
        c.expect_eof()
    p.inst.wait_log(r"too many failed logins \(2\): closing")
    with p.client() as c:  # a new connection starts afresh
        assert c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong")) == \
            "-ERR authentication failed"
        assert c.cmd("QUIT") == "+OK bye"
