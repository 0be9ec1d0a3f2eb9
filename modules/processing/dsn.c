/* Delivery status notifications (RFC 3464, RFC 3461): a multipart/report
 * to the sender for recipients that failed after the message was
 * accepted, for successes a client asked to hear about, and once per
 * message for recipients still being retried after delay_warning. Nothing goes
 * to the null sender (no bounce of a bounce) or against NOTIFY. A message
 * that came with SMTPUTF8 gets the internationalized form (RFC 6533):
 * its addresses and header may be UTF-8, which the plain types forbid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "processing.h"

#define FULL_MAX (1u << 20) /* RET=FULL returns at most this much; headers beyond */

/* The three reports: for which recipients (those in state want, or for
 * a delay those still being retried), and what they say. */
struct kind {
    char want, after; /* state reported, and the state after (0: kept) */
    unsigned bit;     /* the NOTIFY condition */
    const char *name, *subject, *intro, *action, *described;
};

static const struct kind failed = {
    RCPT_FAILED,
    RCPT_REPORTED,
    PETREL_DSN_FAILURE,
    "failure",
    "Undelivered Mail Returned to Sender",
    "Your message could not be delivered to the following recipients.",
    "failed",
    "Undelivered Message",
};
static const struct kind delivered = {
    RCPT_SUCCESS,
    RCPT_DELIVERED,
    PETREL_DSN_SUCCESS,
    "delivery",
    "Successful Mail Delivery Report",
    "Your message was delivered to the following recipients.",
    "delivered",
    "Delivered Message",
};
static const struct kind delayed = {
    0,
    0,
    PETREL_DSN_DELAY,
    "delay",
    "Delayed Mail (still being retried)",
    "Your message could not be delivered yet to the following recipients. "
    "It is being retried; you will hear again only if it fails in the end.",
    "delayed",
    "Undelivered Message",
};

/* Whether r is one the report k is about. */
static bool is_of(const struct kind *k, const struct queue_rcpt *r)
{
    if (k->want != 0)
        return r->state == k->want;
    return r->state == RCPT_DEFERRED || (r->state == RCPT_PENDING && r->route == ROUTE_REMOTE);
}

static bool wants(const struct queue_envelope *env, const struct queue_rcpt *r, unsigned bit)
{
    if (env->from[0] == '\0' || (r->notify & PETREL_DSN_NEVER))
        return false;
    /* Without NOTIFY: failures, and delays (RFC 3461 section 4.1 leaves
     * delays to the MTA; a warning helps more than it annoys). */
    return r->notify == 0 ? bit == PETREL_DSN_FAILURE || bit == PETREL_DSN_DELAY
                          : (r->notify & bit) != 0;
}

static void status_of(const char *reason, char *status, size_t size)
{
    int code;
    char enh[12];
    if (reason != NULL && sscanf(reason, "%3d %11s", &code, enh) == 2 && enh[1] == '.')
        petrel_strlcpy(status, enh, size);
    else
        petrel_strlcpy(status, "5.0.0", size);
}

static bool is_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

static void append_original(const struct proc_content *c, const struct queue_envelope *env,
                            const struct kind *k, struct petrel_buf *b)
{
    /* A message from anyone but a trusted submitter (logged in, or in
     * smtp_in's relay_networks: the clients whose RET=FULL smtp_in keeps)
     * returns its header only, whatever RET says: its sender may be a
     * victim's address named by anyone. Envelopes from before the flag
     * have auth only. A REQUIRETLS message (RFC 8689 section 5) never
     * comes back whole: its header only, and the report goes with
     * REQUIRETLS itself (report_kind). */
    bool trusted = env->trusted || env->auth_user != NULL;
    bool full =
        env->ret == PETREL_DSN_RET_FULL && c->len <= FULL_MAX && trusted && !env->requiretls;
    static const char *const types[2][2] = {{"text/rfc822-headers", "message/rfc822"},
                                            {"message/global-headers", "message/global"}};
    petrel_buf_printf(b, "Content-Type: %s\r\nContent-Description: %s%s\r\n\r\n",
                      types[env->smtputf8][full], k->described, full ? "" : " Headers");
    if (!full) {
        proc_read_header(c, b);
        return;
    }
    if (c->data != NULL) {
        petrel_buf_append(b, c->data, c->len);
        return;
    }
    char buf[65536];
    for (off_t off = 0; off < (off_t)c->len;) {
        ssize_t n = pread(c->fd, buf, sizeof(buf), off);
        if (n <= 0)
            break;
        petrel_buf_append(b, buf, (size_t)n);
        off += n;
    }
}

static void report(const struct proc_content *c, const struct queue_envelope *env,
                   const struct kind *k, const struct proc_settings *set, struct petrel_buf *b)
{
    char date[64], arrival[64], status[12];
    time_t now = time(NULL), arr = (time_t)env->arrival;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    gmtime_r(&arr, &tm);
    strftime(arrival, sizeof(arrival), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    const char *host = proc_env.hostname;
    char dsn_id[QUEUE_ID_LEN + 1];
    queue_id_new(dsn_id);
    const char *global = env->smtputf8 ? "global-" : "";
    petrel_buf_printf(b,
                      "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
                      "To: <%s>\r\n"
                      "Subject: %s\r\n"
                      "Date: %s\r\n"
                      "Message-ID: <%s@%s>\r\n"
                      "Auto-Submitted: auto-replied\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: multipart/report; report-type=%sdelivery-status;\r\n"
                      "\tboundary=\"%s/%s\"\r\n"
                      "\r\n"
                      "This is a MIME-encapsulated message.\r\n"
                      "\r\n--%s/%s\r\n"
                      "Content-Type: text/plain; charset=%s\r\n"
                      "Content-Description: Notification\r\n\r\n"
                      "This is the mail system at %s.\r\n\r\n%s\r\n\r\n",
                      host, env->from, k->subject, date, dsn_id, host, global, c->id, host, c->id,
                      host, env->smtputf8 ? "utf-8" : "us-ascii", host, k->intro);
    bool success = k == &delivered;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        if (is_of(k, r) && wants(env, r, k->bit))
            petrel_buf_printf(b, "<%s>: %s\r\n", r->address,
                              !success                   ? (r->reason ? r->reason : k->action)
                              : r->route == ROUTE_REMOTE ? "relayed to a server that sends no "
                                                           "further notices"
                                                         : "delivered");
    }
    petrel_buf_printf(b,
                      "\r\n--%s/%s\r\nContent-Type: message/%sdelivery-status\r\n"
                      "Content-Description: Delivery report\r\n\r\n"
                      "Reporting-MTA: dns; %s\r\n",
                      c->id, host, global, host);
    if (env->envid != NULL)
        petrel_buf_printf(b, "Original-Envelope-Id: %s\r\n", env->envid);
    /* Extension fields after the standard ones (RFC 3464 section 2.2). */
    petrel_buf_printf(b, "Arrival-Date: %s\r\nX-Petrel-Queue-ID: %s\r\n", arrival, c->id);
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        if (!is_of(k, r) || !wants(env, r, k->bit))
            continue;
        status_of(success ? "250 2.0.0" : r->reason, status, sizeof(status));
        if (k == &delayed && status[0] != '4') /* not tried yet, or no code */
            petrel_strlcpy(status, "4.0.0", sizeof(status));
        petrel_buf_printf(b, "\r\nFinal-Recipient: %s; %s\r\n",
                          is_ascii(r->address) ? "rfc822" : "utf-8", r->address);
        if (r->dsn_orcpt != NULL)
            petrel_buf_printf(b, "Original-Recipient: %s\r\n", r->dsn_orcpt);
        /* A success owed for a remote recipient: it left through a next
         * hop that could not take NOTIFY with it. */
        const char *action = success && r->route == ROUTE_REMOTE ? "relayed" : k->action;
        petrel_buf_printf(b, "Action: %s\r\nStatus: %s\r\n", action, status);
        if (!success && r->reason != NULL)
            petrel_buf_printf(b, "Diagnostic-Code: smtp; %s\r\n", r->reason);
        if (k == &delayed && set != NULL) {
            char until[64];
            time_t end = (time_t)(env->arrival + set->lifetime);
            gmtime_r(&end, &tm);
            strftime(until, sizeof(until), "%a, %d %b %Y %H:%M:%S +0000", &tm);
            petrel_buf_printf(b, "Will-Retry-Until: %s\r\n", until);
        }
    }
    petrel_buf_printf(b, "\r\n--%s/%s\r\n", c->id, host);
    append_original(c, env, k, b);
    petrel_buf_printf(b, "\r\n--%s/%s--\r\n", c->id, host);
}

/* One report of kind k if anybody is owed one. False if it could not be
 * queued (the recipients stay as they were, to be reported later). */
static bool report_kind(const struct proc_content *c, struct queue_envelope *env,
                        const struct kind *k)
{
    size_t owed = 0;
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct queue_rcpt *r = &env->rcpts[i];
        if (!is_of(k, r))
            continue;
        if (wants(env, r, k->bit))
            owed++;
        else if (k->after != 0) {
            if (k == &failed)
                petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: to=<%s> failed, no report (%s): %s",
                           c->id, r->address, env->from[0] ? "NOTIFY" : "null sender",
                           r->reason ? r->reason : "");
            r->state = k->after;
        }
    }
    if (owed == 0)
        return true;
    struct petrel_buf b;
    petrel_buf_init(&b, FULL_MAX + 2 * PROC_HEADER_MAX + 65536 + owed * 4096);
    report(c, env, k, c->set, &b);
    struct petrel_envelope_rcpt to = {env->from, NULL, PETREL_DSN_NEVER};
    struct petrel_envelope e = {.mail_from = "",
                                .rcpts = &to,
                                .nrcpts = 1,
                                .protocol = "local",
                                /* Only a UTF-8 address needs SMTPUTF8; the
                                 * global parts travel as 8BITMIME. */
                                .smtputf8 = !is_ascii(env->from),
                                .body = env->smtputf8 || env->body != PETREL_BODY_7BIT
                                            ? PETREL_BODY_8BITMIME
                                            : PETREL_BODY_7BIT,
                                /* Its header fields are no less private. */
                                .requiretls = env->requiretls};
    struct petrel_queue_reply reply;
    bool ok = proc_inject(&e, petrel_buf_head(&b), b.len, &reply);
    petrel_buf_free(&b);
    if (!ok) {
        petrel_log(PETREL_LOG_WARNING, PROC_LOG, "%s: cannot queue the %s report to <%s>: %d %s",
                   c->id, k->name, env->from, reply.code, reply.text);
        return false;
    }
    petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: %s report to <%s>: %s", c->id, k->name, env->from,
               reply.text);
    for (size_t i = 0; i < env->nrcpts && k->after != 0; i++)
        if (env->rcpts[i].state == k->want)
            env->rcpts[i].state = k->after;
    return true;
}

bool proc_dsn(const struct proc_content *c, struct queue_envelope *env)
{
    bool a = report_kind(c, env, &failed);
    bool b = report_kind(c, env, &delivered);
    return a && b;
}

void proc_dsn_delay(const struct proc_content *c, struct queue_envelope *env, time_t now)
{
    const struct proc_settings *set = c->set;
    if (env->delay_warned || set == NULL || set->delay_warning <= 0 ||
        now - env->arrival < set->delay_warning)
        return;
    /* Whether or not anyone wanted one, it is decided once. */
    if (report_kind(c, env, &delayed))
        env->delay_warned = true;
}
