/* Local delivery: the deliver hook, then the store, with the account's
 * quota. Each recipient ends delivered (D), deferred (T) or failed (F)
 * with the reason a bounce or the client will see. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
        .trusted = env->trusted || env->auth_user != NULL,
        .protocol = env->protocol != NULL ? env->protocol : "",
        .auth_user = env->auth_user,
        .tls_cipher = env->tls_cipher,
        .tls_version = env->tls_version,
        .submission = env->submission,
        .body = (enum petrel_body)env->body,
        .smtputf8 = env->smtputf8,
        .ret = (enum petrel_dsn_ret)env->ret,
        .envid = env->envid,
        .requiretls = env->requiretls,
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

/* --- the recipient's copy: Return-Path and Delivered-To on top --- */

/* Whether the header already says it was delivered to rcpt: the message
 * came back here through a forward elsewhere (Postfix's "mail forwarding
 * loop"). */
static bool delivered_to(const struct proc_content *c, const char *rcpt)
{
    static const char name[] = "Delivered-To:";
    size_t n = strlen(rcpt);
    for (size_t i = 0; i < c->header_len;) {
        const char *line = c->header + i;
        const char *nl = memchr(line, '\n', c->header_len - i);
        size_t len = nl != NULL ? (size_t)(nl - line) : c->header_len - i;
        i += len + 1;
        if (len < sizeof(name) - 1 || strncasecmp(line, name, sizeof(name) - 1) != 0)
            continue;
        const char *v = line + sizeof(name) - 1, *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > v && *v == '<' && end[-1] == '>')
            v++, end--;
        if ((size_t)(end - v) == n && strncasecmp(v, rcpt, n) == 0)
            return true;
    }
    return false;
}

/* The final delivery adds the envelope sender (RFC 5321 section 4.4; the
 * client's own Return-Path fields were dropped when it was spooled) and
 * the recipient, so that a loop through another server shows. In memory
 * for a message in memory, else a private copy in the queue directory. */
struct rcpt_copy {
    struct petrel_buf mem;
    int fd;
};

static bool copy_fd(int from, int to, uint64_t len)
{
    loff_t off = 0;
    while ((uint64_t)off < len) {
        ssize_t n = copy_file_range(from, &off, to, NULL, (size_t)(len - (uint64_t)off), 0);
        if (n > 0)
            continue;
        if (n == 0 || (errno != EXDEV && errno != ENOSYS && errno != EINVAL))
            return false;
        char buf[65536]; /* a file system without copy_file_range */
        ssize_t r = pread(from, buf, sizeof(buf), off);
        if (r <= 0 || write(to, buf, (size_t)r) != r)
            return false;
        off += r;
    }
    return true;
}

/* An unnamed file in dir: O_TMPFILE, or where the file system lacks it
 * (EOPNOTSUPP; EISDIR or EINVAL from older kernels and some file systems)
 * a named file removed at once. */
static int unnamed_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    char path[PATH_MAX];
    if (!petrel_snprintf(path, sizeof(path), "%s/copy.XXXXXX", dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0 && unlink(path) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static bool rcpt_copy_make(const struct proc_content *c, const struct queue_envelope *env,
                           const char *rcpt, struct rcpt_copy *cp,
                           struct petrel_storage_source *src)
{
    char top[1200];
    int n =
        snprintf(top, sizeof(top), "Return-Path: <%s>\r\nDelivered-To: %s\r\n", env->from, rcpt);
    petrel_buf_init(&cp->mem, (size_t)(n > 0 ? n : 0) + (c->data != NULL ? c->len : 0) + 1);
    cp->fd = -1;
    if (n < 0 || (size_t)n >= sizeof(top))
        return false;
    petrel_buf_append(&cp->mem, top, (size_t)n);
    if (c->data != NULL) {
        petrel_buf_append(&cp->mem, c->data, c->len);
        *src = (struct petrel_storage_source){petrel_buf_head(&cp->mem), cp->mem.len, -1, 0};
        return true;
    }
    char dir[4096];
    if (!queue_path(dir, sizeof(dir), proc_env.queue, "tmp", NULL))
        return false;
    cp->fd = unnamed_file(dir);
    if (cp->fd < 0 || write(cp->fd, top, (size_t)n) != n || !copy_fd(c->fd, cp->fd, c->len) ||
        lseek(cp->fd, 0, SEEK_SET) != 0)
        return false;
    *src = (struct petrel_storage_source){NULL, 0, cp->fd, (uint64_t)n + c->len};
    return true;
}

static void rcpt_copy_free(struct rcpt_copy *cp)
{
    petrel_buf_free(&cp->mem);
    if (cp->fd >= 0)
        close(cp->fd);
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

/* The recipient's account: what expansion learned in this pass, or, for a
 * recipient expanded at an earlier attempt, one lookup now. False when
 * that decided the recipient's fate. */
static bool account_known(struct queue_rcpt *r)
{
    if (r->account.known)
        return true;
    struct petrel_userdb_entry *e = NULL;
    const char *error = NULL;
    int found = proc_env.userdb->lookup(r->address, &e, &error);
    if (found == PETREL_USERDB_TEMPFAIL) {
        set_state(r, RCPT_DEFERRED, "451 4.3.0 account database unavailable");
        return false;
    }
    bool account = found == PETREL_USERDB_FOUND && e->kind == PETREL_USERDB_ACCOUNT;
    if (account)
        proc_account_learn(r, e);
    else
        set_state(r, RCPT_FAILED, "550 5.1.1 no such user here");
    if (e != NULL)
        proc_env.userdb->entry_free(e);
    return account;
}

static void deliver_one(const struct proc_content *c, struct queue_envelope *env,
                        struct queue_rcpt *r, bool dedupe)
{
    const struct petrel_storage_ops *st = proc_env.storage;
    char folder[256] = "";
    if (delivered_to(c, r->address)) {
        set_state(r, RCPT_FAILED, "554 5.4.6 mail forwarding loop (Delivered-To)");
        petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: to=<%s> not delivered: %s", c->id, r->address,
                   r->reason);
        return;
    }
    if (!deliver_hook(c, env, r, folder, sizeof(folder)) || !account_known(r))
        return;
    struct petrel_storage_quota quota = {(uint64_t)r->account.quota_bytes,
                                         (uint64_t)r->account.quota_messages};
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
        struct petrel_storage_source src;
        struct rcpt_copy copy;
        if (!rcpt_copy_make(c, env, r->address, &copy, &src)) {
            petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: copy for <%s>: %s", c->id, r->address,
                       strerror(errno));
            ret = PETREL_STORAGE_TEMPFAIL;
        }
        uint32_t uid = 0, uidv = 0;
        if (ret == PETREL_STORAGE_OK) {
            ret = st->deliver(mbox, folder[0] ? folder : NULL, &src, &quota, &uid, &uidv);
            if (ret == PETREL_STORAGE_NOT_FOUND && folder[0]) {
                if (copy.fd >= 0 && lseek(copy.fd, 0, SEEK_SET) != 0)
                    ret = PETREL_STORAGE_TEMPFAIL;
                else
                    ret = st->deliver(mbox, NULL, &src, &quota, &uid, &uidv);
            }
        }
        rcpt_copy_free(&copy);
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
        if (c->set->quota_permanent)
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
