/* One SMTP client session (RFC 5321) to one address of the next hop:
 * greeting, EHLO (HELO when EHLO is refused), STARTTLS by the tls policy,
 * then MAIL, the RCPTs (pipelined when offered, RFC 2920) and DATA or BDAT.
 * Callbacks run on the job's loop; the job outlives the connection, which
 * forgets it (sess->job = NULL) as soon as the session is over for the
 * job, so a late callback does nothing. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "smtp_out.h"

#define SMTP_OUT_BUF_MAX (4 * SMTP_OUT_CHUNK) /* commands of a session, a stuffed chunk */

struct smtp_sess {
    struct smtp_job *job;
    struct smtp_cached *cached; /* idle in the connection cache */
};

static struct smtp_sess *sess_of(struct petrel_conn *conn) { return petrel_conn_session(conn); }

void smtp_session_attach(struct petrel_conn *conn, struct smtp_job *job, struct smtp_cached *c)
{
    sess_of(conn)->job = job;
    sess_of(conn)->cached = c;
}

static struct smtp_job *job_of(struct petrel_conn *conn)
{
    return ((struct smtp_sess *)petrel_conn_session(conn))->job;
}

void smtp_session_write(struct smtp_job *job, const char *fmt, ...)
{
    va_list ap;
    petrel_buf_reset(&job->out);
    va_start(ap, fmt);
    bool ok = petrel_buf_vprintf(&job->out, fmt, ap);
    va_end(ap);
    if (ok && job->conn != NULL)
        petrel_conn_write(job->conn, petrel_buf_head(&job->out), job->out.len);
}

/* The job lets go of its connection (the connection may live on). */
static void forget_conn(struct smtp_job *job)
{
    job->conn = NULL;
    job->state = SMTP_S_QUIT;
    free(job->chunk);
    job->chunk = NULL;
}

static void detach(struct smtp_job *job)
{
    if (job->conn == NULL)
        return;
    ((struct smtp_sess *)petrel_conn_session(job->conn))->job = NULL;
    forget_conn(job);
}

void smtp_session_end(struct smtp_job *job, bool quit)
{
    struct petrel_conn *conn = job->conn;
    if (conn != NULL) {
        if (quit)
            petrel_conn_write(conn, "QUIT\r\n", 6);
        detach(job);
        petrel_conn_close(conn);
    }
    smtp_nexthop_post_next(job);
}

void smtp_session_done(struct smtp_job *job, bool rset)
{
    if (job->conn != NULL && smtp_cache_put(job, rset)) {
        forget_conn(job); /* the cache has it now */
        smtp_nexthop_post_next(job);
        return;
    }
    smtp_session_end(job, true);
}

/* The session failed under the job (lost, timed out, garbled): after the
 * dot the message may have arrived, so those recipients are deferred here
 * rather than offered to another server (a duplicate at worst later, by
 * the queue's retry, never a loss). */
static void session_fail(struct smtp_job *job, const char *reason, bool close_conn)
{
    for (size_t k = 0; job->dot_sent && k < job->nsent; k++) {
        if (job->rs[job->sent[k]].accepted)
            smtp_result_decide(job, job->sent[k], PETREL_TRANSPORT_DEFERRED, reason);
    }
    smtp_result_soft_all(job, "%s", reason);
    struct petrel_conn *conn = job->conn;
    detach(job);
    if (close_conn && conn != NULL)
        petrel_conn_close(conn);
    smtp_nexthop_post_next(job);
}

/* A refusal that ends the session without deciding anything: another
 * server may do better. A 5xx here (a greeting, HELO) is made temporary
 * as Postfix's smtp_skip_5xx_greeting does: the recipients are deferred,
 * not bounced, when no server takes them. */
static void soft_reply(struct smtp_job *job, const struct smtp_reply *r, const char *command)
{
    char reason[PETREL_TRANSPORT_REASON_MAX];
    smtp_reply_reason(reason, sizeof(reason), r, command, job->peer);
    if (r->code >= 500)
        smtp_result_soft_all(job, "451 4.3.0 %.*s", (int)sizeof(reason) - 16, reason);
    else
        smtp_result_soft_all(job, "%s", reason);
    smtp_session_end(job, true);
}

static const char *phase(enum smtp_state s)
{
    switch (s) {
    case SMTP_S_CONNECTING:
    case SMTP_S_GREETING:
        return "receiving the initial server greeting";
    case SMTP_S_EHLO:
    case SMTP_S_EHLO_TLS:
        return "performing the EHLO handshake";
    case SMTP_S_HELO:
        return "performing the HELO handshake";
    case SMTP_S_STARTTLS:
    case SMTP_S_HANDSHAKE:
        return "starting TLS";
    case SMTP_S_AUTH:
    case SMTP_S_AUTH_USER:
    case SMTP_S_AUTH_PASS:
        return "authenticating";
    case SMTP_S_RSET:
        return "resetting a cached connection";
    case SMTP_S_MAIL:
        return "sending MAIL FROM and RCPT TO";
    case SMTP_S_DATA:
        return "sending DATA";
    case SMTP_S_BODY:
        return "sending the message";
    case SMTP_S_DOT:
        return "waiting for the reply to the end of the message";
    case SMTP_S_QUIT:
        break;
    }
    return "ending the session";
}

static bool loops_back(struct smtp_job *job, const struct smtp_reply *r)
{
    if (!smtp_is_myself(r->domain, smtp_out_hostname, job->cfg->helo_name))
        return false;
    smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                           "554 5.4.6 mail for %.250s loops back to myself (%.250s)",
                           job->msg->domain, job->peer);
    smtp_session_end(job, true);
    return true;
}

static const char *helo_name(const struct smtp_job *job)
{
    return job->cfg->helo_name != NULL ? job->cfg->helo_name : smtp_out_hostname;
}

static void start_mail(struct smtp_job *job);
static void ready(struct smtp_job *job);

static void after_hello(struct smtp_job *job)
{
    enum smtp_tls_level level = smtp_tlspolicy_level(job); /* TLS policy (tlspolicy.c) */
    bool tls = petrel_conn_is_tls(job->conn);
    const char *required = NULL;
    if (!tls && level != SMTP_TLS_NONE && job->ehlo.starttls && !job->no_tls) {
        job->state = SMTP_S_STARTTLS;
        smtp_session_write(job, "STARTTLS\r\n");
    } else if (!tls && job->msg->requiretls) {
        /* RFC 8689 section 4.2.1: never in plaintext. A 5xx is tentative
         * here, final when no other server takes it (result.c). */
        smtp_result_soft_all(job, "550 5.7.10 REQUIRETLS: TLS is required but not offered by %s",
                             job->peer);
        smtp_session_end(job, true);
    } else if (!tls && (required = smtp_tlspolicy_required(job)) != NULL) {
        smtp_result_soft_all(job, "451 4.7.4 %s but not offered by %s", required, job->peer);
        smtp_session_end(job, true);
    } else {
        ready(job);
    }
}

/* What makes the message undeliverable to this server whatever the
 * recipients: said at once, without a transaction. */
static bool cannot_send(struct smtp_job *job)
{
    const struct petrel_transport_msg *msg = job->msg;
    const struct smtp_ehlo *e = &job->ehlo;
    if (msg->smtputf8 && !e->smtputf8)
        smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                               "550 5.6.7 SMTPUTF8 is required but not supported by %s", job->peer);
    else if (e->size && e->size_limit > 0 && msg->size > e->size_limit)
        smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                               "552 5.3.4 message size %llu exceeds the size limit %llu of %s",
                               (unsigned long long)msg->size, (unsigned long long)e->size_limit,
                               job->peer);
    else if (msg->body == PETREL_BODY_BINARYMIME && !(e->binarymime && e->chunking))
        smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                               "554 5.6.3 a BINARYMIME message cannot be sent to %s: it offers "
                               "no BINARYMIME and CHUNKING",
                               job->peer);
    else
        return false;
    smtp_session_done(job, false);
    return true;
}

static void send_rcpt(struct smtp_job *job, size_t k)
{
    petrel_buf_reset(&job->out);
    smtp_cmd_rcpt(&job->out, &job->msg->rcpts[job->sent[k]], &job->ehlo);
    petrel_conn_write(job->conn, petrel_buf_head(&job->out), job->out.len);
}

/* RFC 8689 section 4.2.1: a REQUIRETLS message goes only to a server
 * that promises to keep the requirement (and over TLS, which the policy
 * has checked). Another server may still offer it: tentative. */
static bool requiretls_refused(struct smtp_job *job)
{
    if (!job->msg->requiretls || (job->ehlo.requiretls && petrel_conn_is_tls(job->conn)))
        return false;
    if (!petrel_conn_is_tls(job->conn))
        smtp_result_soft_all(job, "550 5.7.10 REQUIRETLS: TLS is required but not used with %s",
                             job->peer);
    else
        smtp_result_soft_all(job, "550 5.7.30 REQUIRETLS support required but not offered by %s",
                             job->peer);
    smtp_session_done(job, false);
    return true;
}

static void start_mail(struct smtp_job *job)
{
    struct petrel_transport_msg *msg = job->msg;
    if (requiretls_refused(job) || cannot_send(job))
        return;
    petrel_buf_reset(&job->out);
    if (!smtp_cmd_mail(&job->out, msg, &job->ehlo)) {
        smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                               "553 5.1.7 the sender address cannot be sent in SMTP");
        smtp_session_end(job, true);
        return;
    }
    bool pipe = job->ehlo.pipelining;
    job->nsent = job->nreplied = job->naccepted = 0;
    job->replied_mail = job->mail_refused = false;
    for (size_t i = 0; i < msg->nrcpts && job->nsent < SMTP_OUT_RCPTS_MAX; i++) {
        job->rs[i].sent = job->rs[i].accepted = false;
        if (job->rs[i].decided)
            continue;
        if (!smtp_addr_sendable(msg->rcpts[i].address)) {
            smtp_result_decide(job, i, PETREL_TRANSPORT_FAILED,
                               "553 5.1.3 the recipient address cannot be sent in SMTP");
            continue;
        }
        /* Pipelined, all go in the MAIL write; the rest one at a time.
         * A full buffer leaves the rest for the next session. */
        if (pipe && !smtp_cmd_rcpt(&job->out, &msg->rcpts[i], &job->ehlo))
            break;
        job->rs[i].sent = true;
        job->sent[job->nsent++] = i;
    }
    for (size_t i = 0; i < msg->nrcpts; i++) {
        if (!job->rs[i].decided && !job->rs[i].sent)
            petrel_strlcpy(msg->rcpts[i].reason,
                           "452 4.5.3 more recipients than one session takes: the next "
                           "attempt sends them",
                           sizeof(msg->rcpts[i].reason));
    }
    if (job->nsent == 0) {
        smtp_session_done(job, false);
        return;
    }
    job->state = SMTP_S_MAIL;
    petrel_conn_write(job->conn, petrel_buf_head(&job->out), job->out.len);
}

static void after_rcpts(struct smtp_job *job)
{
    if (job->mail_refused || job->naccepted == 0) {
        smtp_session_done(job, true); /* the server may hold a transaction: RSET first */
        return;
    }
    if (job->msg->body == PETREL_BODY_BINARYMIME) {
        smtp_body_start(job, true);
        return;
    }
    job->state = SMTP_S_DATA;
    smtp_session_write(job, "DATA\r\n");
}

static void mail_reply(struct smtp_job *job, const struct smtp_reply *r)
{
    bool pipe = job->ehlo.pipelining;
    if (!job->replied_mail) {
        job->replied_mail = true;
        if (r->code / 100 != 2) {
            job->mail_refused = true;
            for (size_t k = 0; k < job->nsent; k++)
                smtp_result_reply(job, job->sent[k], r, "MAIL FROM");
            if (!pipe)
                smtp_session_done(job, true);
        } else if (!pipe) {
            send_rcpt(job, 0);
        }
        return; /* pipelined: the RCPT replies follow, refused or not */
    }
    size_t i = job->sent[job->nreplied++];
    if (!job->mail_refused && r->code / 100 == 2) {
        job->rs[i].accepted = true;
        job->naccepted++;
    } else if (!job->mail_refused) {
        smtp_result_reply(job, i, r, "RCPT TO");
    }
    if (job->nreplied < job->nsent) {
        if (!pipe)
            send_rcpt(job, job->nreplied);
        return;
    }
    after_rcpts(job);
}

/* The reply to the message: the dot, BDAT LAST, or one the server sent
 * early, in the middle of it. */
static void final_reply(struct smtp_job *job, const struct smtp_reply *r, const char *command)
{
    char reason[PETREL_TRANSPORT_REASON_MAX];
    smtp_reply_reason(reason, sizeof(reason), r, command, job->peer);
    bool early = job->state == SMTP_S_BODY;
    for (size_t k = 0; k < job->nsent; k++) {
        size_t i = job->sent[k];
        if (!job->rs[i].accepted)
            continue;
        if (r->code / 100 == 2 && !early) {
            smtp_result_decide(job, i, PETREL_TRANSPORT_DELIVERED, reason);
            /* NOTIFY went only to a server that offered DSN. */
            job->msg->rcpts[i].notify_not_passed = !job->ehlo.dsn;
        } else if (r->code >= 400)
            smtp_result_reply(job, i, r, command);
    }
    if (early && r->code < 400)
        session_fail(job, "451 4.5.0 the server replied in the middle of the message", true);
    else if (early)
        smtp_session_end(job, false);
    else
        smtp_session_done(job, r->code / 100 != 2);
}

/* --- AUTH on a relay host (RFC 4954): PLAIN, else LOGIN; never over
 * plaintext, and the credentials never go into a reason or a log. --- */

static void send_auth(struct smtp_job *job, const char *verb, const char *data, size_t len)
{
    char b64[2 * SMTP_OUT_CRED_MAX * 4 / 3 + 16];
    smtp_base64(b64, sizeof(b64), (const unsigned char *)data, len);
    smtp_session_write(job, "%s%s\r\n", verb, b64);
    explicit_bzero(b64, sizeof(b64));
    if (job->out.data != NULL) /* the core has its copy */
        explicit_bzero(job->out.data, job->out.cap);
}

static void auth_plain(struct smtp_job *job)
{
    const struct smtp_credentials *c = &smtp_out_creds;
    char msg[2 * SMTP_OUT_CRED_MAX + 2];
    size_t u = strlen(c->user), p = strlen(c->pass);
    msg[0] = '\0'; /* no authorization identity */
    memcpy(msg + 1, c->user, u);
    msg[1 + u] = '\0';
    memcpy(msg + 2 + u, c->pass, p);
    job->state = SMTP_S_AUTH;
    send_auth(job, "AUTH PLAIN ", msg, 2 + u + p);
    explicit_bzero(msg, sizeof(msg));
}

static void ready(struct smtp_job *job)
{
    if (!job->route.auth) {
        start_mail(job);
        return;
    }
    if (!petrel_conn_is_tls(job->conn)) {
        smtp_result_soft_all(
            job, "451 4.7.4 TLS is required to authenticate to %s, and it offers none", job->peer);
        smtp_session_end(job, true);
    } else if (job->ehlo.auth_plain) {
        auth_plain(job);
    } else if (job->ehlo.auth_login) {
        job->state = SMTP_S_AUTH_USER;
        smtp_session_write(job, "AUTH LOGIN\r\n");
    } else {
        smtp_result_soft_all(job,
                             "451 4.7.0 %s offers no AUTH PLAIN or LOGIN, and relay_auth_file "
                             "sets credentials for it",
                             job->peer);
        smtp_session_end(job, true);
    }
}

/* A refused AUTH defers: a wrong password must not bounce mail. */
static void auth_failed(struct smtp_job *job, const struct smtp_reply *r)
{
    char reason[PETREL_TRANSPORT_REASON_MAX];
    smtp_reply_reason(reason, sizeof(reason), r, "AUTH", job->peer);
    if (r->code >= 500)
        smtp_result_soft_all(job, "451 4.7.0 authentication failed: %.*s", (int)sizeof(reason) - 40,
                             reason);
    else
        smtp_result_soft_all(job, "%s", reason);
    smtp_session_end(job, true);
}

static void auth_reply(struct smtp_job *job, const struct smtp_reply *r)
{
    const struct smtp_credentials *c = &smtp_out_creds;
    if (job->state == SMTP_S_AUTH && r->code == 235) {
        start_mail(job);
    } else if (job->state == SMTP_S_AUTH_USER && r->code == 334) {
        job->state = SMTP_S_AUTH_PASS;
        send_auth(job, "", c->user, strlen(c->user));
    } else if (job->state == SMTP_S_AUTH_PASS && r->code == 334) {
        job->state = SMTP_S_AUTH;
        send_auth(job, "", c->pass, strlen(c->pass));
    } else if (r->code == 334) { /* a challenge we did not ask for: give up politely */
        job->state = SMTP_S_AUTH;
        smtp_session_write(job, "*\r\n");
    } else {
        auth_failed(job, r);
    }
}

static void handle_reply(struct smtp_job *job, const struct smtp_reply *r)
{
    bool ok = r->code / 100 == 2;
    switch (job->state) {
    case SMTP_S_GREETING:
        if (!ok)
            soft_reply(job, r, "the initial greeting");
        else if (!loops_back(job, r)) {
            job->state = SMTP_S_EHLO;
            smtp_session_write(job, "EHLO %s\r\n", helo_name(job));
        }
        return;
    case SMTP_S_EHLO:
        if (r->code >= 500) { /* an SMTP-only server */
            memset(&job->ehlo, 0, sizeof(job->ehlo));
            job->state = SMTP_S_HELO;
            smtp_session_write(job, "HELO %s\r\n", helo_name(job));
        } else if (!ok)
            soft_reply(job, r, "EHLO");
        else if (!loops_back(job, r))
            after_hello(job);
        return;
    case SMTP_S_HELO:
        if (!ok)
            soft_reply(job, r, "HELO");
        else if (!loops_back(job, r))
            after_hello(job);
        return;
    case SMTP_S_STARTTLS:
        if (ok && petrel_conn_starttls(job->conn))
            job->state = SMTP_S_HANDSHAKE;
        else if (!ok && smtp_tlspolicy_level(job) == SMTP_TLS_MAY)
            ready(job); /* opportunistic: plaintext it is (but no AUTH) */
        else if (!ok)
            soft_reply(job, r, "STARTTLS");
        else
            session_fail(job, "451 4.7.5 cannot start TLS", true);
        return;
    case SMTP_S_EHLO_TLS:
        if (ok)
            ready(job);
        else
            soft_reply(job, r, "EHLO");
        return;
    case SMTP_S_AUTH:
    case SMTP_S_AUTH_USER:
    case SMTP_S_AUTH_PASS:
        auth_reply(job, r);
        return;
    case SMTP_S_RSET:
        if (ok)
            start_mail(job);
        else
            session_fail(job, "451 4.4.2 a cached connection refused RSET", true);
        return;
    case SMTP_S_MAIL:
        mail_reply(job, r);
        return;
    case SMTP_S_DATA:
        if (r->code == 354)
            smtp_body_start(job, false);
        else if (r->code >= 400)
            final_reply(job, r, "DATA");
        else
            session_fail(job, "451 4.5.0 DATA was answered without 354", true);
        return;
    case SMTP_S_BODY:
    case SMTP_S_DOT:
        final_reply(job, r, job->msg->body == PETREL_BODY_BINARYMIME ? "BDAT" : "end of DATA");
        return;
    case SMTP_S_CONNECTING:
    case SMTP_S_HANDSHAKE:
    case SMTP_S_QUIT:
        break;
    }
    session_fail(job, "451 4.5.0 unexpected reply from the server", true);
}

/* An idle cached connection that the server spoke on, timed out or that
 * must go: out of the cache at once, so no job takes it. */
static bool idle_drop(struct petrel_conn *conn, bool quit)
{
    struct smtp_cached *c = sess_of(conn)->cached;
    if (c == NULL)
        return false;
    smtp_session_attach(conn, NULL, NULL);
    smtp_cache_closed(c);
    if (quit)
        petrel_conn_write(conn, "QUIT\r\n", 6);
    petrel_conn_close(conn);
    return true;
}

static bool record_tls(struct smtp_job *job);

static void on_connect(struct petrel_conn *conn)
{
    struct smtp_job *job = job_of(conn);
    if (job == NULL)
        return;
    job->state = SMTP_S_GREETING;
    if (petrel_conn_is_tls(conn) && !record_tls(job)) /* implicit TLS */
        smtp_session_end(job, false);
}

static void on_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct smtp_job *job = job_of(conn);
    if (job == NULL) {
        idle_drop(conn, false); /* a 421 or garbage while idle: it is going away */
        return;
    }
    const char *text = NULL;
    enum smtp_reply_step step = smtp_reply_feed(&job->reply, line, len, &text);
    if (step == SMTP_REPLY_BAD) {
        char reason[PETREL_TRANSPORT_REASON_MAX];
        snprintf(reason, sizeof(reason), "451 4.5.0 malformed reply from %s while %s", job->peer,
                 phase(job->state));
        session_fail(job, reason, true);
        return;
    }
    bool ehlo = job->state == SMTP_S_EHLO || job->state == SMTP_S_EHLO_TLS;
    if (ehlo && job->reply.lines > 1 && job->reply.code / 100 == 2)
        smtp_ehlo_keyword(&job->ehlo, text, len - (size_t)(text - line));
    if (step == SMTP_REPLY_MORE)
        return;
    struct smtp_reply r = job->reply; /* handling may start the next reply */
    smtp_reply_init(&job->reply);
    job->saw_421 |= r.code == 421;
    handle_reply(job, &r);
}

static void on_line_too_long(struct petrel_conn *conn)
{
    struct smtp_job *job = job_of(conn);
    if (job == NULL) {
        idle_drop(conn, false);
        return;
    }
    char reason[PETREL_TRANSPORT_REASON_MAX];
    snprintf(reason, sizeof(reason), "451 4.5.0 reply line over %d bytes from %s while %s",
             SMTP_REPLY_LINE_MAX, job->peer, phase(job->state));
    session_fail(job, reason, true);
}

static void on_tls_ready(struct petrel_conn *conn, bool ok)
{
    struct smtp_job *job = job_of(conn);
    if (job == NULL)
        return;
    const char *why = NULL;
    petrel_conn_tls_verified(conn, &why);
    enum smtp_tls_level level = smtp_tlspolicy_level(job);
    if (!ok) {                       /* the core closes the connection after this */
        if (level == SMTP_TLS_MAY) { /* Postfix too: once more without TLS */
            job->plain_retry = true;
            job->iaddr--;
        }
        char reason[PETREL_TRANSPORT_REASON_MAX];
        snprintf(reason, sizeof(reason), "451 4.7.5 TLS handshake with %s failed: %s", job->peer,
                 why != NULL ? why : "handshake failed");
        session_fail(job, reason, false);
        return;
    }
    if (!record_tls(job))
        return;
    memset(&job->ehlo, 0, sizeof(job->ehlo)); /* RFC 3207 4.2: forget what was said before */
    job->state = SMTP_S_EHLO_TLS;
    smtp_session_write(job, "EHLO %s\r\n", helo_name(job));
}

/* Whether the TLS policy (verify, DANE, MTA-STS: tlspolicy.c, which also
 * writes how it went for the queue's log) takes this peer; else the
 * session is ended. */
static bool record_tls(struct smtp_job *job)
{
    if (!smtp_tlspolicy_peer_ok(job, job->conn)) { /* TLS policy */
        smtp_session_end(job, true);
        return false;
    }
    return true;
}

static void on_connect_failed(struct petrel_conn *conn, const char *reason)
{
    struct smtp_job *job = job_of(conn);
    if (job != NULL)
        snprintf(job->last_reason, sizeof(job->last_reason), "451 4.4.1 cannot connect to %s: %s",
                 job->peer, reason);
}

static void on_timeout(struct petrel_conn *conn)
{
    struct smtp_job *job = job_of(conn);
    if (job != NULL)
        job->timed_out = true;
    else
        idle_drop(conn, true); /* connection_reuse_time is over */
}

static void on_drained(struct petrel_conn *conn)
{
    struct smtp_job *job = job_of(conn);
    if (job != NULL && job->state == SMTP_S_BODY)
        smtp_body_drained(job);
}

static void on_shutdown(struct petrel_conn *conn)
{
    struct smtp_job *job = job_of(conn);
    atomic_store(&smtp_out_stopping, true);
    if (job != NULL)
        session_fail(job, "451 4.3.2 the mail system is shutting down", true);
    else
        idle_drop(conn, true);
}

static void on_close(struct petrel_conn *conn)
{
    struct smtp_job *job = job_of(conn);
    struct smtp_cached *c = sess_of(conn)->cached;
    if (c != NULL) { /* closed by the server while idle */
        smtp_session_attach(conn, NULL, NULL);
        smtp_cache_closed(c);
    }
    if (job == NULL)
        return;
    char reason[PETREL_TRANSPORT_REASON_MAX];
    if (job->state == SMTP_S_HANDSHAKE && smtp_tlspolicy_level(job) == SMTP_TLS_MAY) {
        job->plain_retry = true; /* TLS could not even start: as a failed handshake */
        job->iaddr--;
    }
    if (job->state == SMTP_S_CONNECTING)
        snprintf(reason, sizeof(reason), "%s",
                 job->last_reason[0] != '\0' ? job->last_reason : "451 4.4.1 cannot connect");
    else
        snprintf(reason, sizeof(reason), "451 4.4.2 %s %s while %s",
                 job->timed_out ? "timeout with" : "lost connection with", job->peer,
                 phase(job->state));
    session_fail(job, reason, false);
}

static const struct petrel_protocol smtp_out_protocol = {
    .name = "smtp_out",
    .session_size = sizeof(struct smtp_sess),
    .connect = on_connect,
    .line = on_line,
    .line_too_long = on_line_too_long,
    .timeout = on_timeout,
    .tls_ready = on_tls_ready,
    .close = on_close,
    .shutdown = on_shutdown,
    .connect_failed = on_connect_failed,
    .output_drained = on_drained,
};

/* The per-session state, fresh for a new connection or a reused one. */
static void session_reset(struct smtp_job *job, struct petrel_conn *conn)
{
    smtp_session_attach(conn, job, NULL);
    job->conn = conn;
    job->last_reason[0] = '\0';
    job->timed_out = job->dot_sent = job->saw_421 = false;
    job->nsent = job->nreplied = job->naccepted = 0;
    smtp_reply_init(&job->reply);
    if (job->out.max == 0)
        petrel_buf_init(&job->out, SMTP_OUT_BUF_MAX);
}

/* Who the peer is, for reasons and the queue's log: "host[addr]". */
static void name_peer(struct smtp_job *job, const char *host, const char *addr)
{
    snprintf(job->peer, sizeof(job->peer), "%s[%s]", host[0] == '[' ? addr : host, addr);
    snprintf(job->msg->relay, sizeof(job->msg->relay), "%.280s:%d", job->peer,
             job->route.addr.port);
}

/* The connection job would make to job->addrs[job->iaddr]. */
static void conn_info(const struct smtp_job *job, struct smtp_conn_info *info)
{
    const struct smtp_out_config *cfg = job->cfg;
    const struct petrel_dns_addr *a = &job->addrs[job->iaddr];
    const char *bind = a->family == AF_INET6 ? cfg->bind_address6 : cfg->bind_address;
    memset(info, 0, sizeof(*info));
    info->addr = *a;
    info->port = job->route.addr.port;
    info->implicit_tls = job->route.implicit_tls;
    info->auth = job->route.auth;
    petrel_strlcpy(info->helo, helo_name(job), sizeof(info->helo));
    petrel_strlcpy(info->bind, bind != NULL ? bind : "", sizeof(info->bind));
    petrel_strlcpy(info->host, job->mx[job->imx].host, sizeof(info->host));
    info->level = smtp_tlspolicy_level(job);
}

static void addr_text(const struct petrel_dns_addr *a, char *out, size_t size)
{
    out[0] = '\0';
    inet_ntop(a->family, a->family == AF_INET6 ? (const void *)&a->u.v6 : (const void *)&a->u.v4,
              out, (socklen_t)size);
}

bool smtp_session_open(struct smtp_job *job, const char *host)
{
    const struct smtp_out_config *cfg = job->cfg;
    conn_info(job, &job->info);
    const struct petrel_dns_addr *a = &job->addrs[job->iaddr++];
    char addr[INET6_ADDRSTRLEN];
    addr_text(a, addr, sizeof(addr));
    bool literal = host[0] == '[';
    unsigned char bin[16];
    bool ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
    name_peer(job, host, addr);
    job->msg->tls[0] = '\0';
    job->no_tls = job->plain_retry;
    job->plain_retry = false;
    struct petrel_connect how = {
        .host = addr,
        .port = job->info.port,
        .bind_address = job->info.bind[0] != '\0' ? job->info.bind : NULL,
        .family = a->family,
        .connect_timeout = (unsigned)cfg->connect_timeout,
        .idle_timeout = (unsigned)cfg->command_timeout,
        .max_line = SMTP_REPLY_LINE_MAX,
        .tls = job->route.implicit_tls,
        .tls_name = literal || ip ? NULL : host,
        .tls_ca_file = cfg->tls_ca_file,
        .tls_verify = false, /* checked here, by the tls setting */
    };
    const char *error = "unknown error";
    job->attempts++;
    /* An idle connection claimed while waiting (dispatch.c) and not used. */
    smtp_dispatch_lock();
    smtp_cache_unreserve_locked(job);
    smtp_dispatch_unlock();
    struct petrel_conn *conn = petrel_conn_connect(smtp_out_ctx, &smtp_out_protocol, &how, &error);
    if (conn == NULL) {
        snprintf(job->last_reason, sizeof(job->last_reason), "451 4.4.1 cannot connect to %s: %s",
                 job->peer, error);
        return false;
    }
    petrel_counter_add(smtp_out_connections, 1);
    session_reset(job, conn);
    job->state = SMTP_S_CONNECTING;
    job->reused = false;
    job->conn_msgs = 0;
    memset(&job->ehlo, 0, sizeof(job->ehlo));
    return true;
}

/* Go on with the transaction on a cached connection: one to the same
 * next hop, or (by_addr) to the server at job->addrs[job->iaddr], where
 * the job's own host names the peer. */
static void continue_on(struct smtp_job *job, struct smtp_cached *c, bool by_addr)
{
    const struct smtp_cached_session *s = smtp_cache_session(c);
    bool rset = s->rset;
    session_reset(job, s->conn);
    job->ehlo = s->ehlo;
    job->info = s->info;
    job->conn_msgs = s->messages;
    job->reused = !by_addr; /* by address, what it leaves goes on with the addresses */
    job->addr_reused = by_addr;
    if (by_addr) {
        char addr[INET6_ADDRSTRLEN];
        addr_text(&job->addrs[job->iaddr], addr, sizeof(addr));
        name_peer(job, job->mx[job->imx].host, addr);
    } else {
        petrel_strlcpy(job->peer, s->peer, sizeof(job->peer));
        petrel_strlcpy(job->msg->relay, s->relay, sizeof(job->msg->relay));
    }
    petrel_strlcpy(job->msg->tls, s->tls, sizeof(job->msg->tls));
    smtp_cache_free(c);
    petrel_counter_add(smtp_out_reused, 1);
    petrel_conn_set_timeout(job->conn, (unsigned)job->cfg->command_timeout);
    if (rset) {
        job->state = SMTP_S_RSET;
        smtp_session_write(job, "RSET\r\n");
    } else {
        start_mail(job);
    }
}

bool smtp_session_resume(struct smtp_job *job)
{
    /* A cached connection was checked by another message's policy: a
     * REQUIRETLS message has its own connection, checked for it. */
    if (job->msg->requiretls)
        return false;
    struct smtp_cached *c = smtp_cache_take(job);
    if (c == NULL)
        return false;
    continue_on(job, c, false);
    return true;
}

static void reuse_posted(void *arg)
{
    struct smtp_job *job = arg;
    if (smtp_dispatch_stopped())
        return;
    struct smtp_cached *c = smtp_cache_take_reserved(job);
    if (c != NULL)
        continue_on(job, c, true);
    else /* gone meanwhile: another one, or a new connection */
        smtp_nexthop_next(job);
}

bool smtp_session_reuse_addr(struct smtp_job *job)
{
    if (job->msg->requiretls || job->cfg->connection_reuse_time == 0)
        return false;
    struct smtp_conn_info want;
    conn_info(job, &want);
    struct petrel_loop *there;
    struct smtp_cached *c = smtp_cache_take_addr(job, &want, &there);
    if (c == NULL && there == NULL)
        return false;
    job->attempts++; /* bounds the tries of cached connections that fail */
    if (c != NULL)
        continue_on(job, c, true);
    else
        petrel_loop_post(there, reuse_posted, job);
    return true;
}

bool smtp_session_fits(const struct smtp_ehlo *e, const struct petrel_transport_msg *msg)
{
    return !(msg->smtputf8 && !e->smtputf8) &&
           !(e->size && e->size_limit > 0 && msg->size > e->size_limit) &&
           !(msg->body == PETREL_BODY_BINARYMIME && !(e->binarymime && e->chunking));
}
