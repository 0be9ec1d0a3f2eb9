"""petrel_conn_delay() and connection wakers, through the echo module's
DELAY and WAKE commands."""

import time

import pytest

from harness import Client, free_port, listener, service_conf


@pytest.fixture(scope="module")
def srv(module_instance):
    inst = module_instance("delaywake")
    inst.ports = {"main": free_port(), "idle": free_port()}
    inst.write_confd("50-echo.conf", service_conf(
        "echo", workers=2,
        listeners=[listener(inst.ports["main"]), listener(inst.ports["idle"], idle_timeout=1)]))
    return inst.start()


def test_delay_holds_input_then_answers_in_order(srv):
    with Client(srv.ports["main"]) as c:
        t0 = time.monotonic()
        c.send("DELAY 700\r\nECHO after\r\n")
        assert c.line() == "+OK delayed 700"
        assert time.monotonic() - t0 >= 0.69
        assert c.line() == "+OK after"


def test_delays_take_no_worker(srv):
    """More delayed connections than workers (2): all end together."""
    clients = [Client(srv.ports["main"]) for _ in range(8)]
    try:
        t0 = time.monotonic()
        for c in clients:
            c.send("DELAY 800\r\n")
        for c in clients:
            assert c.line() == "+OK delayed 800"
        # Serialised on 2 workers this would take 3.2 s.
        assert time.monotonic() - t0 < 3.0
        assert srv.status()["jobs_running"] == "0"
    finally:
        for c in clients:
            c.close()


def test_delay_longer_than_idle_timeout_is_not_idle(srv):
    with Client(srv.ports["idle"]) as c:
        assert c.cmd("DELAY 1800") == "+OK delayed 1800"
        assert c.cmd("ECHO alive") == "+OK alive"


def test_delay_bad_argument(srv):
    with Client(srv.ports["main"]) as c:
        assert c.cmd("DELAY 99999") == "-ERR DELAY takes milliseconds from 0 to 10000"


def test_client_gone_during_delay(srv):
    c = Client(srv.ports["main"])
    c.send("DELAY 300\r\n")
    c.close()
    srv.wait_idle()
    with Client(srv.ports["main"]) as c2:
        assert c2.cmd("ECHO ok") == "+OK ok"


def test_wake_from_another_thread(srv):
    with Client(srv.ports["main"]) as c:
        assert c.cmd("WAKE 300") == "+OK waking in 300"
        assert c.line() == "* woken"
        assert c.cmd("ECHO next") == "+OK next"


def test_wakes_coalesce_and_wait_for_a_running_job(srv):
    """Wakes that arrive during a job are delivered once, after it."""
    with Client(srv.ports["main"]) as c:
        assert c.cmd("WAKE 100") == "+OK waking in 100"
        assert c.cmd("WAKE 150") == "+OK waking in 150"
        c.send("SLOW 600\r\n")
        assert c.line() == "+OK slept 600"
        assert c.line() == "* woken"
        assert c.cmd("ECHO quiet") == "+OK quiet"


def test_wake_after_close_is_harmless(srv):
    c = Client(srv.ports["main"])
    assert c.cmd("WAKE 400") == "+OK waking in 400"
    c.close()
    time.sleep(0.8)
    with Client(srv.ports["main"]) as c2:
        assert c2.cmd("ECHO fine") == "+OK fine"
    assert "ERROR" not in srv.log()
