/* Local delivery: the deliver hook, then the store, with the account's
 * quota. Each recipient ends delivered (D), deferred (T) or failed (F)
 * with the reason a bounce or the client will see. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "processing.h"

struct petrel_envelope_rcpt *proc_public_env(const struct queue_envelope *env,
                                             struct petrel_envelope *out)
{
    struct petrel_envelope_rcpt *r = petrel_calloc(env->nrcpts + 1, sizeof(*r));
    for (size_t i = 0; i < env->nrcpts; i++)
        r[i] = (struct petrel_envelope_rcpt){env->rcpts[i].address, env->rcpts[i].dsn_orcpt,
                                             env->rcpts[i].notify};
    *out = (struct petrel_envelope){
        .mail_from = env->from,
        .rcpts = r,
        .nrcpts = env->nrcpts,
        .client_ip = env->client_ip != NULL ? env->client_ip : "",
        .helo = env->helo != NULL ? env->helo : "",
        .protocol = env->protocol != NULL ? env->protocol : "",
        .auth_user = env->auth_user,
        .tls_cipher = env->tls_cipher,
        .tls_version = env->tls_version,
        .submission = env->submission,
        .body = (enum petrel_body)env->body,
        .smtputf8 = env->smtputf8,
        .ret = (enum petrel_dsn_ret)env->ret,
        .envid = env->envid,
    };
    return r;
}

static void set_state(struct queue_rcpt *r, char state, const char *reason)
{
    r->state = state;
    queue_rcpt_set_reason(r, reason);
}

/* The deliver hook: false when it decided the recipient's fate. */
static bool deliver_hook(const struct proc_content *c, struct queue_envelope *env,
                         struct queue_rcpt *r, char *folder, size_t folder_size)
{
    if (!petrel_hook_active(PETREL_HOOK_DELIVER))
        return true;
    struct petrel_envelope pub;
    struct petrel_envelope_rcpt *rcpts = proc_public_env(env, &pub);
    struct petrel_deliver_event ev = {.env = &pub,
                                      .queue_id = c->id,
                                      .rcpt = r->address,
                                      .header = c->header,
                                      .header_len = c->header_len};
    const char *why = NULL;
    enum petrel_verdict v = petrel_hook_run(PETREL_HOOK_DELIVER, &ev, &why);
    free(rcpts);
    char reason[200];
    if (v == PETREL_DENY || v == PETREL_DISCONNECT) {
        snprintf(reason, sizeof(reason), "550 5.7.1 %s", why != NULL ? why : "delivery refused");
        set_state(r, RCPT_FAILED, reason);
        return false;
    }
    if (v == PETREL_DENY_SOFT) {
        snprintf(reason, sizeof(reason), "451 4.7.1 %s", why != NULL ? why : "delivery deferred");
        set_state(r, RCPT_DEFERRED, reason);
        return false;
    }
    ev.folder[sizeof(ev.folder) - 1] = '\0';
    petrel_strlcpy(folder, ev.folder, folder_size);
    return true;
}

static void found_uid(void *arg, uint32_t uid)
{
    (void)uid;
    *(bool *)arg = true;
}

/* Whether a message of this queue id is already in the folder: a delivery
 * that was durable before a crash kept its envelope from saying so. The
 * id is in our Received field. */
static bool already_there(struct petrel_mailbox *mbox, const char *folder, const char *id)
{
    const struct petrel_storage_ops *st = proc_env.storage;
    struct petrel_folder *f;
    if (st->folder_open(mbox, folder[0] ? folder : "INBOX", &f) != PETREL_STORAGE_OK)
        return false;
    char needle[QUEUE_ID_LEN + 8];
    snprintf(needle, sizeof(needle), " id %s", id);
    struct petrel_storage_search q = {PETREL_STORAGE_SEARCH_HEADER, "Received", needle};
    bool hit = false;
    st->search(f, NULL, &q, found_uid, &hit);
    st->folder_close(f);
    /* A delivery that fell back to INBOX (folder missing then). */
    return hit || (folder[0] != '\0' && already_there(mbox, "", id));
}

static void deliver_one(const struct proc_content *c, struct queue_envelope *env,
                        struct queue_rcpt *r, bool dedupe)
{
    const struct petrel_storage_ops *st = proc_env.storage;
    char folder[256] = "";
    if (!deliver_hook(c, env, r, folder, sizeof(folder)))
        return;
    struct petrel_userdb_entry *e = NULL;
    const char *error = NULL;
    int found = proc_env.userdb->lookup(r->address, &e, &error);
    if (found == PETREL_USERDB_TEMPFAIL) {
        set_state(r, RCPT_DEFERRED, "451 4.3.0 account database unavailable");
        return;
    }
    if (found != PETREL_USERDB_FOUND || e->kind != PETREL_USERDB_ACCOUNT) {
        if (e != NULL)
            proc_env.userdb->entry_free(e);
        set_state(r, RCPT_FAILED, "550 5.1.1 no such user here");
        return;
    }
    struct petrel_storage_quota quota = {(uint64_t)e->quota_bytes, (uint64_t)e->quota_messages};
    proc_env.userdb->entry_free(e);
    struct petrel_mailbox *mbox;
    int ret = st->mailbox_open(r->address, &mbox);
    if (ret == PETREL_STORAGE_OK) {
        if (dedupe && already_there(mbox, folder, c->id)) {
            petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: to=<%s> already delivered before a restart",
                       c->id, r->address);
            st->mailbox_close(mbox);
            set_state(r, RCPT_DELIVERED, NULL);
            return;
        }
        struct petrel_storage_source src = {c->data, c->data != NULL ? c->len : 0, -1, 0};
        if (c->data == NULL) {
            src.fd = c->fd;
            src.fd_len = c->len;
            if (lseek(c->fd, 0, SEEK_SET) != 0)
                ret = PETREL_STORAGE_TEMPFAIL;
        }
        uint32_t uid = 0, uidv = 0;
        if (ret == PETREL_STORAGE_OK) {
            ret = st->deliver(mbox, folder[0] ? folder : NULL, &src, &quota, &uid, &uidv);
            if (ret == PETREL_STORAGE_NOT_FOUND && folder[0]) {
                if (c->data == NULL && lseek(c->fd, 0, SEEK_SET) != 0)
                    ret = PETREL_STORAGE_TEMPFAIL;
                else
                    ret = st->deliver(mbox, NULL, &src, &quota, &uid, &uidv);
            }
        }
        st->mailbox_close(mbox);
        if (ret == PETREL_STORAGE_OK) {
            petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: to=<%s> delivered uid=%u folder=%s", c->id,
                       r->address, uid, folder[0] ? folder : "INBOX");
            set_state(r, (r->notify & PETREL_DSN_SUCCESS) ? RCPT_SUCCESS : RCPT_DELIVERED, NULL);
            return;
        }
    }
    char reason[200];
    switch (ret) {
    case PETREL_STORAGE_OVER_QUOTA:
        if (proc_env.quota_permanent)
            set_state(r, RCPT_FAILED, "552 5.2.2 mailbox full");
        else
            set_state(r, RCPT_DEFERRED, "452 4.2.2 mailbox full");
        break;
    case PETREL_STORAGE_TOO_LARGE:
        set_state(r, RCPT_FAILED, "552 5.3.4 message too big for the mailbox");
        break;
    case PETREL_STORAGE_INVALID_NAME:
    case PETREL_STORAGE_INVALID_ARG:
        set_state(r, RCPT_FAILED, "550 5.1.1 mailbox unavailable");
        break;
    default:
        snprintf(reason, sizeof(reason), "451 4.3.0 mail store: %s", st->strerror(ret));
        set_state(r, RCPT_DEFERRED, reason);
        break;
    }
    petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: to=<%s> not delivered: %s", c->id, r->address,
               r->reason);
}

void proc_deliver_local(const struct proc_content *c, struct queue_envelope *env, bool dedupe)
{
    for (size_t i = 0; i < env->nrcpts; i++) {
        struct queue_rcpt *r = &env->rcpts[i];
        if (r->route == ROUTE_LOCAL && (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED))
            deliver_one(c, env, r, dedupe);
    }
}
