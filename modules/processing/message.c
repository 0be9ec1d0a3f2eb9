/* A message on its way in: trace headers, the header scan (hops,
 * Message-ID, Date), memory then spool file, and the commit that delivers
 * or queues it before the client hears 250. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "processing.h"

static char *dup_opt(const char *s) { return s != NULL && s[0] != '\0' ? petrel_strdup(s) : NULL; }

struct petrel_queue_msg *proc_begin(const struct petrel_envelope *e)
{
    struct petrel_queue_msg *m = petrel_calloc(1, sizeof(*m));
    queue_id_new(m->id);
    m->fd = -1;
    m->arrival = time(NULL);
    struct queue_envelope *env = &m->env;
    memcpy(env->id, m->id, sizeof(env->id));
    env->arrival = m->arrival;
    env->from = petrel_strdup(e->mail_from != NULL ? e->mail_from : "");
    env->helo = dup_opt(e->helo);
    env->client_ip = dup_opt(e->client_ip);
    env->protocol = dup_opt(e->protocol);
    env->auth_user = dup_opt(e->auth_user);
    env->tls_cipher = dup_opt(e->tls_cipher);
    env->tls_version = dup_opt(e->tls_version);
    env->envid = dup_opt(e->envid);
    env->submission = e->submission;
    env->trusted = e->trusted || env->auth_user != NULL; /* a module from before the flag */
    env->smtputf8 = e->smtputf8;
    env->body = (int)e->body;
    env->ret = (int)e->ret;
    m->origin = e->smtp_origin; /* the session's, valid until commit or abort */
    for (size_t i = 0; i < e->nrcpts; i++)
        queue_envelope_add(env, RCPT_EXPAND, ROUTE_NONE, e->rcpts[i].notify, e->rcpts[i].address,
                           e->rcpts[i].address, e->rcpts[i].orcpt);
    petrel_buf_init(&m->header, PROC_HEADER_MAX);
    m->hstate = PROC_HEADER_START;
    proc_header_filter_init(&m->filter);
    m->set = proc_settings_ref(&m->gen);
    m->memory_limit = m->set->memory_limit;
    petrel_buf_init(&m->mem, m->memory_limit + 16384);
    return m;
}

/* --- output: memory, then the data file --- */

static bool write_fd(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO; /* no progress and no reason given */
        if (n <= 0)
            return false;
        p += n, len -= (size_t)n;
    }
    return true;
}

/* The header and mem buffers hold n bytes of the server-wide message
 * memory (petrel_membudget); the first BUDGET_FREE bytes of a message are
 * free, so a usual header is always scanned whole. False when the budget
 * is spent: the caller writes to the data file at once instead. */
#define BUDGET_FREE 8192u
static bool budget_hold(struct petrel_queue_msg *m, size_t n)
{
    return petrel_membudget_hold(&m->budget, n, BUDGET_FREE);
}

/* Move the message from memory to its data file (counted by the caller
 * against the spool floor). */
static bool spill(struct petrel_queue_msg *m)
{
    char path[PATH_MAX];
    if (!queue_path(path, sizeof(path), proc_env.queue, "data", m->id)) {
        errno = ENAMETOOLONG;
        return false;
    }
    m->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (m->fd < 0) {
        petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = write_fd(m->fd, petrel_buf_head(&m->mem), m->mem.len);
    petrel_buf_free(&m->mem);
    petrel_membudget_drop(&m->budget, m->header.len);
    return ok;
}

/* Every failure below sets errno itself: no_space (452 rather than 451)
 * must not come from a stale value. */
static void out_append(struct petrel_queue_msg *m, const void *data, size_t len)
{
    if (m->io_error || len == 0)
        return;
    bool ok;
    if (m->fd < 0 && m->out_len + len <= m->memory_limit &&
        budget_hold(m, m->header.len + m->mem.len + len)) {
        ok = petrel_buf_append(&m->mem, data, len);
        if (!ok)
            errno = EFBIG;
    } else {
        /* Every byte bound for the spool is counted against its floor
         * before it is written, those moving from memory too. */
        ok = proc_write_room(m->set, (uint64_t)len + (m->fd < 0 ? m->mem.len : 0)) &&
             (m->fd >= 0 || spill(m)) && write_fd(m->fd, data, len);
    }
    if (!ok) {
        m->io_error = true;
        m->no_space = errno == ENOSPC;
        petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: cannot spool the message: %s", m->id,
                   m->no_space ? "the spool is short of free space (min_free_space)"
                               : strerror(errno));
    }
    m->out_len += len;
}

/* --- the header --- */

static void rfc5322_date(char *out, size_t size, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static void emit_out(void *arg, const char *p, size_t len) { out_append(arg, p, len); }

/* The header ended (or filled up): write the trace header and what a
 * submission lacks on top of it, then the header itself. */
static void header_flush(struct petrel_queue_msg *m)
{
    const char *h = petrel_buf_head(&m->header);
    size_t len = m->header.len;
    struct proc_header_facts facts; /* of the header kept: the fields ours would duplicate */
    proc_header_facts(h, len, &facts);
    const struct queue_envelope *env = &m->env;
    char date[64];
    rfc5322_date(date, sizeof(date), m->arrival);
    struct petrel_buf t;
    petrel_buf_init(&t, 8192);
    /* RFC 5321 section 4.4; "with" keywords from RFC 3848. */
    if (env->client_ip != NULL)
        petrel_buf_printf(&t, "Received: from %s ([%s])\r\n\tby %s (Petrel) with %s id %s",
                          env->helo != NULL ? env->helo : "unknown", env->client_ip,
                          proc_env.hostname, env->protocol != NULL ? env->protocol : "ESMTP",
                          m->id);
    else
        petrel_buf_printf(&t, "Received: by %s (Petrel) id %s", proc_env.hostname, m->id);
    if (env->tls_cipher != NULL)
        petrel_buf_printf(&t, "\r\n\t(using %s with cipher %s)",
                          env->tls_version != NULL ? env->tls_version : "TLS", env->tls_cipher);
    if (env->nrcpts == 1) /* more would tell each recipient about the others */
        petrel_buf_printf(&t, "\r\n\tfor <%s>", env->rcpts[0].address);
    petrel_buf_printf(&t, "; %s\r\n", date);
    if (env->submission && !facts.has_id)
        petrel_buf_printf(&t, "Message-ID: <%s@%s>\r\n", m->id, proc_env.hostname);
    if (env->submission && !facts.has_date)
        petrel_buf_printf(&t, "Date: %s\r\n", date);
    out_append(m, petrel_buf_head(&t), t.len);
    petrel_buf_free(&t);
    proc_header_filter(&m->filter, h, len, emit_out, m);
    m->header_done = true;
}

bool proc_write(struct petrel_queue_msg *m, const void *data, size_t len)
{
    const char *p = data;
    m->size += len;
    if (!m->header_done) {
        bool ended;
        size_t cut = proc_header_end(&m->hstate, p, len, &ended);
        size_t room = PROC_HEADER_MAX - m->header.len;
        /* A header over 64 KiB, or one that the server's message memory
         * has no room for (a crowd parked in DATA): the copy for hooks
         * stops here; the filter goes on to the header's end. */
        if (!budget_hold(m, m->header.len + (cut < room ? cut : room)))
            room = 0;
        if (cut > room) {
            cut = room;
            ended = false;
        }
        petrel_buf_append(&m->header, p, cut);
        if (ended || room == 0 || m->header.len == PROC_HEADER_MAX) {
            m->header_ended = ended;
            header_flush(m);
        }
        p += cut, len -= cut;
    }
    if (m->header_done) /* the rest of a long header too */
        proc_header_filter(&m->filter, p, len, emit_out, m);
    if (!m->io_error)
        return true;
    /* The queue service's word for 452 4.3.1, and nothing else is. */
    errno = m->no_space ? ENOSPC : EIO;
    return false;
}

void proc_abort(struct petrel_queue_msg *m)
{
    if (m == NULL)
        return;
    if (m->fd >= 0) {
        char path[PATH_MAX];
        struct stat st; /* what the file takes on disk, a cut-off write excluded */
        uint64_t used = fstat(m->fd, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
        close(m->fd);
        if (queue_path(path, sizeof(path), proc_env.queue, "data", m->id) && unlink(path) == 0)
            proc_space_changed(used);
    }
    petrel_buf_free(&m->header);
    petrel_buf_free(&m->mem);
    petrel_membudget_drop(&m->budget, 0);
    queue_envelope_free(&m->env);
    petrel_config_unref(m->gen);
    free(m);
}

/* --- commit --- */

static void reply_set(struct petrel_queue_reply *r, int code, const char *enhanced,
                      const char *text)
{
    r->code = code;
    petrel_strlcpy(r->enhanced, enhanced, sizeof(r->enhanced));
    petrel_strlcpy(r->text, text, sizeof(r->text));
}

/* "452 4.2.2 text" back into a reply. */
static void reply_from_reason(struct petrel_queue_reply *r, const char *reason, int fallback)
{
    int code = 0;
    char enh[12] = "";
    int used = 0;
    if (reason == NULL || sscanf(reason, "%3d %11s %n", &code, enh, &used) < 2 || code < 400 ||
        code > 599) {
        reply_set(r, fallback, fallback < 500 ? "4.3.0" : "5.3.0",
                  fallback < 500 ? "temporary failure" : "delivery failed");
        return;
    }
    reply_set(r, code, enh, reason + used);
}

/* The smtp.data hook: verdict, and header fields to put on top. */
static bool data_hook(struct petrel_queue_msg *m, struct petrel_buf *add,
                      struct petrel_queue_reply *reply)
{
    if (!petrel_hook_active(PETREL_HOOK_SMTP_DATA))
        return true;
    struct petrel_envelope pub;
    struct petrel_envelope_rcpt *rcpts = proc_public_env(&m->env, &pub);
    struct petrel_smtp_data_event ev = {
        .env = &pub,
        .queue_id = m->id,
        .header = petrel_buf_head(&m->header),
        .header_len = m->header.len,
        .size = m->size,
        .add_header = add,
        .conn_id = m->origin != NULL ? m->origin->conn_id : 0,
        .session_slot = m->origin != NULL ? &m->origin->slot : NULL,
    };
    const char *reason = NULL;
    enum petrel_verdict v = petrel_hook_run(PETREL_HOOK_SMTP_DATA, &ev, &reason);
    free(rcpts);
    switch (v) {
    case PETREL_DENY:
        reply_set(reply, 550, "5.7.1", reason != NULL ? reason : "message refused");
        return false;
    case PETREL_DENY_SOFT:
        reply_set(reply, 451, "4.7.1",
                  reason != NULL ? reason : "message deferred, try again later");
        return false;
    case PETREL_DISCONNECT:
        reply_set(reply, 421, "4.7.0", reason != NULL ? reason : "closing connection");
        return false;
    default:
        return true;
    }
}

/* Put header fields on top of the output: in memory a new buffer, in a
 * file a new file (a copy: only for big messages that a hook stamps). */
static bool prepend(struct petrel_queue_msg *m, struct petrel_buf *add)
{
    if (add->len == 0)
        return true;
    /* A hook's last field must not swallow the message's first line. */
    if (add->len < 2 || memcmp(petrel_buf_head(add) + add->len - 2, "\r\n", 2) != 0)
        petrel_buf_append(add, "\r\n", 2);
    if (m->fd < 0) {
        struct petrel_buf b;
        petrel_buf_init(&b, add->len + m->mem.len + 1);
        petrel_buf_append(&b, petrel_buf_head(add), add->len);
        petrel_buf_append(&b, petrel_buf_head(&m->mem), m->mem.len);
        petrel_buf_free(&m->mem);
        m->mem = b;
        m->out_len += add->len;
        return true;
    }
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!queue_path(path, sizeof(path), proc_env.queue, "data", m->id) ||
        !queue_path(tmp, sizeof(tmp), proc_env.queue, "tmp", m->id))
        return false;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok =
        fd >= 0 && write_fd(fd, petrel_buf_head(add), add->len) && lseek(m->fd, 0, SEEK_SET) == 0;
    char buf[65536];
    for (uint64_t left = m->out_len; ok && left > 0;) {
        ssize_t n = read(m->fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));
        ok = n > 0 && write_fd(fd, buf, (size_t)n);
        left -= n > 0 ? (uint64_t)n : 0;
    }
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return false;
    }
    close(m->fd);
    m->fd = fd;
    m->out_len += add->len;
    return true;
}

/* Make the message durable as a queue data file. */
static bool data_durable(struct petrel_queue_msg *m)
{
    if (m->fd < 0) {
        proc_space_used(m->mem.len); /* counted, never cut: it is being accepted */
        if (!spill(m))
            return false;
    }
    return !m->set->fsync || (fsync(m->fd) == 0 && queue_sync_dir(proc_env.queue, "data") == 0);
}

static void content_of(struct petrel_queue_msg *m, struct proc_content *c)
{
    *c = (struct proc_content){
        .set = m->set,
        .id = m->id,
        .env = &m->env,
        .data = m->fd < 0 ? petrel_buf_head(&m->mem) : NULL,
        .fd = m->fd,
        .len = m->out_len,
        .header = petrel_buf_head(&m->header),
        .header_len = m->header.len,
    };
}

void proc_commit(struct petrel_queue_msg *m, struct petrel_queue_reply *reply)
{
    if (!m->header_done)
        header_flush(m); /* a message without a body */
    proc_header_filter_finish(&m->filter, emit_out, m);
    struct queue_envelope *env = &m->env;
    struct petrel_buf add;
    petrel_buf_init(&add, PROC_HEADER_MAX);
    bool queued = false;
    if (m->io_error) {
        if (m->no_space)
            reply_set(reply, 452, "4.3.1", "insufficient system storage, try again later");
        else
            reply_set(reply, 451, "4.3.0", "local error writing the message, try again later");
        goto out;
    }
    if (m->filter.hops > m->set->max_hops) {
        petrel_log(PETREL_LOG_WARNING, PROC_LOG, "%s: refused: %u Received fields, a mail loop?",
                   m->id, m->filter.hops);
        reply_set(reply, 554, "5.4.6", "too many hops, a mail loop?");
        goto out;
    }
    if (!data_hook(m, &add, reply))
        goto out;
    if (!prepend(m, &add)) {
        reply_set(reply, 451, "4.3.0", "local error writing the message, try again later");
        goto out;
    }
    env->size = m->out_len;
    struct proc_content c;
    content_of(m, &c);
    proc_expand(m->set, env);
    if (m->set->direct_delivery)
        proc_deliver_local(&c, env, false);

    size_t done = 0, failed = 0, temp = 0, open = 0;
    const struct queue_rcpt *first_fail = NULL, *first_temp = NULL;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        if (r->state == RCPT_DELIVERED || r->state == RCPT_SUCCESS)
            done++;
        else if (r->state == RCPT_FAILED) {
            failed++;
            first_fail = first_fail ? first_fail : r;
        } else if (r->state == RCPT_DEFERRED || r->state == RCPT_EXPAND) {
            temp++;
            first_temp = first_temp ? first_temp : r;
        } else
            open++;
    }
    /* Nothing delivered and nothing left to try: the client hears why,
     * and no bounce is needed. */
    if (done == 0 && open == 0 && temp == 0) {
        reply_from_reason(reply, first_fail != NULL ? first_fail->reason : NULL, 550);
        goto out;
    }
    if (done == 0 && open == 0 && failed == 0) {
        reply_from_reason(reply, first_temp != NULL ? first_temp->reason : NULL, 451);
        goto out;
    }
    if (failed > 0 || open > 0 || temp > 0 || queue_envelope_open_count(env) > 0) {
        /* Something remains: the data must be durable first (a bounce and
         * the envelope refer to it). */
        if (!data_durable(m)) {
            petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: cannot sync the data file: %s", m->id,
                       strerror(errno));
            reply_set(reply, 451, "4.3.0", "local error writing the message, try again later");
            goto out;
        }
        content_of(m, &c);
        proc_dsn(&c, env);
    }
    if (queue_envelope_open_count(env) > 0) {
        env->next_attempt = m->arrival + (temp > 0 ? m->set->retry_min : 0);
        if (queue_envelope_write(proc_env.queue, "active", env, m->set->fsync) < 0) {
            petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: cannot write the envelope: %s", m->id,
                       strerror(errno));
            reply_set(reply, 451, "4.3.0", "local error queueing the message, try again later");
            goto out;
        }
        queued = true;
        proc_runner_kick();
    }
    char text[80];
    snprintf(text, sizeof(text), "Ok: queued as %s", m->id);
    reply_set(reply, 250, "2.0.0", text);
    petrel_log(PETREL_LOG_INFO, PROC_LOG,
               "%s: from=<%s> size=%llu nrcpt=%zu delivered=%zu failed=%zu queued=%zu", m->id,
               env->from, (unsigned long long)m->out_len, env->nrcpts, done, failed,
               queued ? queue_envelope_open_count(env) : 0);
out:
    petrel_buf_free(&add);
    if (queued && m->fd >= 0) {
        close(m->fd);
        m->fd = -1; /* the data file stays: it belongs to the queue now */
    }
    if (reply->code >= 400)
        petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: from=<%s> refused: %d %s %s", m->id, env->from,
                   reply->code, reply->enhanced, reply->text);
    proc_abort(m);
}

bool proc_inject(const struct petrel_envelope *env, const void *data, size_t len,
                 struct petrel_queue_reply *reply)
{
    struct petrel_queue_msg *m = proc_begin(env);
    proc_write(m, data, len);
    proc_commit(m, reply);
    return reply->code / 100 == 2;
}

bool proc_read_header(const struct proc_content *c, struct petrel_buf *out)
{
    if (c->data != NULL) {
        const char *end = memmem(c->data, c->len, "\r\n\r\n", 4);
        size_t n = end != NULL ? (size_t)(end - (const char *)c->data) + 4 : c->len;
        return petrel_buf_append(out, c->data, n < PROC_HEADER_MAX ? n : PROC_HEADER_MAX);
    }
    char buf[PROC_HEADER_MAX];
    ssize_t n = pread(c->fd, buf, sizeof(buf), 0);
    if (n < 0)
        return false;
    const char *end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
    return petrel_buf_append(out, buf, end != NULL ? (size_t)(end - buf) + 4 : (size_t)n);
}
