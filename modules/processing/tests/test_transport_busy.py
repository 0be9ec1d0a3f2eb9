"""The queue and a busy transport (tests/modules/busyxport.so): a
recipient whose domain the transport refuses as busy is tried again a
second later, not after the retry back-off, also when the transport took
and delivered the message's other recipients in the same pass."""

import pytest

from harness import service_conf, wait_for
from smtp_helpers import SmtpServer

WAIT = 30


@pytest.fixture
def busy(make_instance, env):
    srv = SmtpServer(make_instance, env, "busy")
    srv.inst.write_confd("55-busyxport.conf", service_conf(
        "busyxport", file=env.test_module("busyxport"),
        settings={"busy_domain": "busy.test", "busy_times": 3}))
    srv.start()
    yield srv
    srv.stop()


def send(srv, rcpts):
    alice = srv.addr("alice")
    msg = f"From: <{alice}>\r\nTo: <{rcpts[0]}>\r\nSubject: busy\r\n\r\nhello\r\n"
    s = srv.submission(alice)
    try:
        assert s.sendmail(alice, rcpts, msg.encode()) == {}
    finally:
        s.quit()


def queue_empty(srv):
    return srv.ctl("queue", "list").strip() in ("", "queue is empty")


@pytest.mark.parametrize("rcpts", [["y@busy.test"], ["x@ok.test", "y@busy.test"]],
                         ids=["busy-only", "busy-and-taken"])
def test_busy_domain_tried_again_in_a_second(busy, rcpts):
    send(busy, rcpts)
    # retry_min is 5 minutes: only the busy path can end this within WAIT.
    wait_for(lambda: "busy.test taken" in busy.log(), WAIT, "busy.test taken")
    log = busy.log()
    assert log.count("busy.test refused as busy") == 3, log[-3000:]
    assert ("ok.test taken" in log) == (len(rcpts) == 2)
    wait_for(lambda: queue_empty(busy), WAIT, "the queue empty")
