/* MAIL and RCPT. Recipients are checked on a worker (the account
 * database may block): a local domain's recipient must exist, anything
 * else is relayed only for an authenticated client or a relay network.
 * Hooks get the last word on what Petrel itself accepted. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_in.h"

struct check_job {
    struct smtp_session *s; /* read only while the job runs: input is paused */
    bool is_rcpt;
    struct smtp_rcpt rcpt;
    struct smtp_mail mail;
    bool relay_ok;
    bool check_sender; /* MAIL: sender_login_match applies */
    /* result */
    int code;
    char enhanced[12];
    char text[300];
};

static void verdict_reply(struct check_job *j, enum petrel_verdict v, const char *reason)
{
    const char *why = reason != NULL ? reason : "refused";
    switch (v) {
    case PETREL_DENY:
        j->code = 550, petrel_strlcpy(j->enhanced, "5.7.1", sizeof(j->enhanced));
        break;
    case PETREL_DENY_SOFT:
        j->code = 451, petrel_strlcpy(j->enhanced, "4.7.1", sizeof(j->enhanced));
        why = reason != NULL ? reason : "try again later";
        break;
    case PETREL_DISCONNECT:
        j->code = 421, petrel_strlcpy(j->enhanced, "4.7.0", sizeof(j->enhanced));
        break;
    default:
        return;
    }
    petrel_strlcpy(j->text, why, sizeof(j->text));
}

/* text follows "<address>: " when address is given. */
static void set_result(struct check_job *j, int code, const char *enh, const char *text,
                       const char *address)
{
    j->code = code;
    petrel_strlcpy(j->enhanced, enh, sizeof(j->enhanced));
    if (address == NULL || !petrel_snprintf(j->text, sizeof(j->text), "<%s>: %s", address, text))
        petrel_strlcpy(j->text, text, sizeof(j->text));
}

/* A local address may be the queue's own (an SRS reply address): the
 * queue says (since ABI minor 8). When it refuses it, j is set to what
 * the client hears. */
static enum petrel_queue_address queue_says(struct check_job *j, const char *address)
{
    enum petrel_queue_address verdict = PETREL_QUEUE_ADDRESS_UNKNOWN;
    struct petrel_queue_reply reply = {0};
    if (smtp_queue->size > offsetof(struct petrel_queue_ops, local_address) &&
        smtp_queue->local_address != NULL)
        verdict = smtp_queue->local_address(address, &reply);
    if (verdict == PETREL_QUEUE_ADDRESS_REFUSED) {
        if (reply.code >= 400 && reply.code <= 599)
            set_result(j, reply.code, reply.enhanced, reply.text, address);
        else
            set_result(j, 550, "5.1.1", "no such user here", address);
    }
    return verdict;
}

static void rcpt_work(void *arg)
{
    struct check_job *j = arg;
    struct smtp_address *a = &j->rcpt.to;
    const char *domain = a->address + a->local_len + 1;
    bool local = false;
    if (a->postmaster) {
        local = true; /* RFC 5321 section 4.5.1: always accepted */
    } else if (!a->domain_literal) {
        local = smtp_userdb->domain_is_local(domain);
    }
    /* The queue's own addresses first, so that a catch-all does not
     * take them (a tampered SRS address is refused, not delivered). */
    enum petrel_queue_address q = local ? queue_says(j, a->address) : PETREL_QUEUE_ADDRESS_UNKNOWN;
    if (q == PETREL_QUEUE_ADDRESS_REFUSED)
        return;
    if (local && q == PETREL_QUEUE_ADDRESS_UNKNOWN) {
        struct petrel_userdb_entry *e = NULL;
        const char *error = NULL;
        int found = smtp_userdb->lookup(a->address, &e, &error);
        if (e != NULL)
            smtp_userdb->entry_free(e);
        if (found == PETREL_USERDB_TEMPFAIL) {
            set_result(j, 451, "4.3.0", "account database unavailable, try again later",
                       a->address);
            return;
        }
        if (found != PETREL_USERDB_FOUND) {
            set_result(j, 550, "5.1.1", "no such user here", a->address);
            return;
        }
    } else if (!local && !j->relay_ok) {
        set_result(j, 554, "5.7.1", "relay access denied", a->address);
        return;
    }
    set_result(j, 250, "2.1.5", "Ok", NULL);
    if (petrel_hook_active(PETREL_HOOK_SMTP_RCPT)) {
        struct petrel_smtp_rcpt_event ev = {
            .env = &j->s->env,
            .rcpt = a->address,
            .local = local,
            .conn_id = j->s->origin.conn_id,
            .session_slot = &j->s->origin.slot,
        };
        const char *reason = NULL;
        enum petrel_verdict v = petrel_hook_run(PETREL_HOOK_SMTP_RCPT, &ev, &reason);
        verdict_reply(j, v, reason);
    }
}

/* Whether the authenticated user may send as address: it is the user's
 * account, or an alias (not a catch-all) that delivers to the user. */
static int sender_owned(const char *user, const char *address)
{
    struct petrel_userdb_entry *e = NULL;
    const char *error = NULL;
    int found = smtp_userdb->lookup(address, &e, &error);
    if (found != PETREL_USERDB_FOUND)
        return found;
    bool owned = false;
    if (e->kind == PETREL_USERDB_ACCOUNT)
        owned = strcasecmp(e->address, user) == 0;
    else if (!e->catchall)
        for (size_t i = 0; i < e->ntargets && !owned; i++)
            owned = strcasecmp(e->targets[i], user) == 0;
    smtp_userdb->entry_free(e);
    return owned ? PETREL_USERDB_FOUND : PETREL_USERDB_NOT_FOUND;
}

static void mail_work(void *arg)
{
    struct check_job *j = arg;
    const char *from = j->mail.from.address, *user = j->s->auth_user;
    if (j->check_sender && from[0] != '\0') {
        int owned = sender_owned(user, from);
        if (owned == PETREL_USERDB_TEMPFAIL) {
            set_result(j, 451, "4.3.0", "account database unavailable, try again later", from);
            return;
        }
        if (owned != PETREL_USERDB_FOUND) {
            char text[PETREL_AUTH_USER_MAX + 40];
            petrel_snprintf(text, sizeof(text), "sender address not owned by %s", user);
            set_result(j, 553, "5.7.1", text, from);
            return;
        }
    }
    set_result(j, 250, "2.1.0", "Ok", NULL);
    if (!petrel_hook_active(PETREL_HOOK_SMTP_MAIL))
        return;
    struct petrel_smtp_mail_event ev = {
        .env = &j->s->env, .conn_id = j->s->origin.conn_id, .session_slot = &j->s->origin.slot};
    const char *reason = NULL;
    enum petrel_verdict v = petrel_hook_run(PETREL_HOOK_SMTP_MAIL, &ev, &reason);
    verdict_reply(j, v, reason);
}

static void finish(struct petrel_conn *conn, struct check_job *j)
{
    struct smtp_session *s = j->s;
    if (j->code == 421) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "disconnected by a hook: %s", j->text);
        smtp_reply(conn, 421, j->enhanced, "%s", j->text);
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    if (j->code >= 400) {
        if (!j->is_rcpt)
            smtp_reset(conn, s);
        petrel_conn_log(conn, PETREL_LOG_INFO, "%s refused: %d %s %s", j->is_rcpt ? "RCPT" : "MAIL",
                        j->code, j->enhanced, j->text);
        smtp_error(conn, j->code, j->enhanced, "%s", j->text);
        return;
    }
    if (j->is_rcpt) {
        s->rcpts = petrel_reallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
        struct smtp_rcpt_entry *e = &s->rcpts[s->nrcpts++];
        e->address = petrel_strdup(j->rcpt.to.address);
        e->notify = j->rcpt.notify;
        e->orcpt = NULL;
        if (j->rcpt.orcpt_type[0] != '\0') {
            size_t n = strlen(j->rcpt.orcpt_type) + strlen(j->rcpt.orcpt) + 2;
            e->orcpt = petrel_malloc(n);
            snprintf(e->orcpt, n, "%s;%s", j->rcpt.orcpt_type, j->rcpt.orcpt);
        }
        smtp_build_env(conn, s);
    }
    smtp_reply(conn, j->code, j->enhanced, "%s", j->text);
}

static void check_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct check_job *j = arg;
    if (!closing)
        finish(conn, j);
    free(j);
}

/* DSN backscatter: anyone can name a victim as the sender and ask for a
 * success report carrying the whole message. From a client that neither
 * logged in nor is in relay_networks, NOTIFY=SUCCESS and DELAY and
 * RET=FULL are dropped (a NOTIFY left empty becomes NEVER, not the
 * default), unless dsn_trusted_only is off. */
static void dsn_limit(struct petrel_conn *conn, struct smtp_session *s, enum smtp_dsn_ret *ret,
                      unsigned *notify)
{
    if (!s->cfg->dsn_trusted_only || s->auth_user[0] != '\0' || s->relay_net)
        return;
    const unsigned cut = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY;
    bool changed = false;
    if (ret != NULL && *ret == SMTP_RET_FULL)
        *ret = SMTP_RET_HDRS, changed = true;
    if (notify != NULL && (*notify & cut)) {
        *notify &= ~cut;
        if (*notify == 0)
            *notify = SMTP_NOTIFY_NEVER;
        changed = true;
    }
    if (changed && !s->dsn_limited) {
        s->dsn_limited = true;
        petrel_conn_log(conn, PETREL_LOG_INFO,
                        "DSN NOTIFY=SUCCESS/DELAY and RET=FULL ignored: client not logged in "
                        "(dsn_trusted_only)");
    }
}

static void submit(struct petrel_conn *conn, struct check_job *j, petrel_work_fn *work)
{
    if (petrel_conn_submit(conn, work, check_done, j))
        return;
    free(j);
    smtp_error(conn, 451, "4.3.2", "server busy, try again later");
}

void smtp_cmd_mail(struct petrel_conn *conn, struct smtp_session *s, const char *args)
{
    if (s->submission && s->auth_user[0] == '\0') {
        smtp_error(conn, 530, "5.7.0", "authentication required");
        return;
    }
    if (s->in_mail) {
        smtp_error(conn, 503, "5.5.1", "nested MAIL command");
        return;
    }
    struct smtp_parse_opts opts = {
        s->cfg->smtputf8, s->cfg->dsn, false, true, s->cfg->requiretls, petrel_conn_is_tls(conn)};
    struct check_job *j = petrel_calloc(1, sizeof(*j));
    struct smtp_reply err;
    if (!smtp_parse_mail(args, &opts, &j->mail, &err)) {
        free(j);
        smtp_error(conn, err.code, err.enhanced, "%s", err.text);
        return;
    }
    if (j->mail.size > s->max_size) {
        free(j);
        smtp_error(conn, 552, "5.3.4", "message size exceeds fixed limit");
        return;
    }
    /* RFC 1870 section 6.1: short of spool space for SIZE (or for any
     * message) is a temporary refusal. */
    if (smtp_queue->size > offsetof(struct petrel_queue_ops, has_room) &&
        !smtp_queue->has_room(j->mail.size)) {
        free(j);
        petrel_conn_log(conn, PETREL_LOG_WARNING, "MAIL refused: the spool is short of space");
        smtp_error(conn, 452, "4.3.1", "insufficient system storage");
        return;
    }
    dsn_limit(conn, s, &j->mail.ret, NULL);
    s->mail = j->mail;
    s->in_mail = true;
    smtp_build_env(conn, s);
    j->check_sender = s->cfg->sender_login_match && s->auth_user[0] != '\0';
    if (!j->check_sender && !petrel_hook_active(PETREL_HOOK_SMTP_MAIL)) {
        free(j);
        smtp_reply(conn, 250, "2.1.0", "Ok");
        return;
    }
    j->s = s;
    submit(conn, j, mail_work);
}

void smtp_cmd_rcpt(struct petrel_conn *conn, struct smtp_session *s, const char *args)
{
    if (!s->in_mail) {
        smtp_error(conn, 503, "5.5.1", "need MAIL command");
        return;
    }
    if (s->nrcpts >= s->max_rcpts) {
        /* Not an error (RFC 5321 section 4.5.3.1.10): the client sends the
         * rest in another transaction. */
        smtp_reply(conn, 452, "4.5.3", "too many recipients");
        return;
    }
    struct smtp_parse_opts opts = {
        s->cfg->smtputf8, s->cfg->dsn, false, true, s->cfg->requiretls, petrel_conn_is_tls(conn)};
    struct check_job *j = petrel_calloc(1, sizeof(*j));
    struct smtp_reply err;
    if (!smtp_parse_rcpt(args, &opts, s->mail.smtputf8, &j->rcpt, &err)) {
        free(j);
        smtp_error(conn, err.code, err.enhanced, "%s", err.text);
        return;
    }
    if (j->rcpt.to.postmaster) {
        /* RFC 5321 section 4.5.1: <postmaster> is the primary domain's. */
        petrel_snprintf(j->rcpt.to.address, sizeof(j->rcpt.to.address), "postmaster@%s",
                        smtp_primary_domain);
        j->rcpt.to.local_len = strlen("postmaster");
    }
    dsn_limit(conn, s, NULL, &j->rcpt.notify);
    j->s = s;
    j->is_rcpt = true;
    j->relay_ok = s->auth_user[0] != '\0' || s->relay_net;
    submit(conn, j, rcpt_work);
}
