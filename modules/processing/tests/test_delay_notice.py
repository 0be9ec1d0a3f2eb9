"""Delay notices (RFC 3464 Action: delayed): a message still waiting in the
queue delay_warning after it arrived is reported to its sender once, for
the recipients still being retried, unless NOTIFY says otherwise."""

import email
import email.policy
import time

from harness import wait_for
from smtp_helpers import SmtpServer, message, smtplib_queue_id

REMOTE = "user@remote.test"


def server(make_instance, env, name, **processing):
    settings = dict(retry_min="1s", retry_max="1s", delay_warning="2s")
    settings.update(processing)
    srv = SmtpServer(make_instance, env, name, processing=settings)
    # No transport module: the remote recipient waits in the queue.
    for path in srv.inst.confd.glob("*-smtp_out.conf"):
        path.unlink()
    return srv.start()


def send(srv, rcpt_options=()):
    alice = srv.addr("alice")
    with srv.submission(alice) as s:
        assert s.mail(alice)[0] == 250
        assert s.rcpt(REMOTE, list(rcpt_options))[0] == 250
        return smtplib_queue_id(s.data(message("waiting", frm=alice, to=REMOTE)))


def notices(srv):
    return [m for m in srv.messages(srv.addr("alice")) if b"Delayed Mail" in m]


def test_one_delay_notice_per_message(make_instance, env):
    srv = server(make_instance, env, "delay")
    qid = send(srv)
    found = wait_for(lambda: notices(srv), timeout=30, what="a delay notice")
    assert len(found) == 1
    report = email.message_from_bytes(found[0], policy=email.policy.default)
    assert report["From"].addresses[0].username == "MAILER-DAEMON"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert f"Final-Recipient: rfc822; {REMOTE}" in text
    assert "Action: delayed" in text
    assert "Status: 4." in text
    assert "Will-Retry-Until: " in text
    assert f"X-Petrel-Queue-ID: {qid}" in text
    # Recorded in the envelope: more attempts, no second notice.
    assert "\nwarned 1\n" in srv.envelope(qid)
    attempts = int(srv.envelope(qid).split("\nattempts ")[1].split("\n")[0])
    wait_for(lambda: int(srv.envelope(qid).split("\nattempts ")[1].split("\n")[0]) >= attempts + 2,
             timeout=30, what="two more attempts")
    assert len(notices(srv)) == 1
    assert "delay report to <alice@example.test>" in srv.log()
    srv.stop()


def test_notify_without_delay_and_zero_mean_none(make_instance, env):
    srv = server(make_instance, env, "nodelay")
    qid = send(srv, rcpt_options=["NOTIFY=FAILURE"])
    wait_for(lambda: "\nwarned 1\n" in srv.envelope(qid), timeout=30,
             what="the notice decided")
    assert notices(srv) == []
    srv.stop()
    srv = server(make_instance, env, "never", delay_warning="0")
    qid = send(srv)
    attempts = lambda: int(srv.envelope(qid).split("\nattempts ")[1].split("\n")[0])
    wait_for(lambda: attempts() >= 3, timeout=30, what="three attempts")
    time.sleep(0.5)
    assert notices(srv) == [] and "\nwarned" not in srv.envelope(qid)
    srv.stop()
