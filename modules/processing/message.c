/* A message on its way in: trace headers, the header scan (hops,
 * Message-ID, Date), memory then spool file. At commit the message goes
 * through the pipeline (pipeline.c), which delivers or queues it before
 * the client hears 250. */
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
    env->requiretls = e->requiretls;
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

/* --- what the pipeline (pipeline.c) asks of the message --- */

/* Put header fields on top of the output: in memory a new buffer, in a
 * file a new file (a copy: only for big messages that a hook stamps). */
bool proc_message_prepend(struct petrel_queue_msg *m, struct petrel_buf *add)
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

bool proc_message_durable(struct petrel_queue_msg *m)
{
    if (m->fd < 0) {
        proc_space_used(m->mem.len); /* counted, never cut: it is being accepted */
        if (!spill(m))
            return false;
    }
    return !m->set->fsync || (fsync(m->fd) == 0 && queue_sync_dir(proc_env.queue, "data") == 0);
}

void proc_message_content(struct petrel_queue_msg *m, struct proc_content *c)
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

void proc_message_keep_data(struct petrel_queue_msg *m)
{
    if (m->fd >= 0) {
        close(m->fd);
        m->fd = -1; /* proc_abort then leaves the file alone */
    }
}

/* --- commit --- */

void proc_commit(struct petrel_queue_msg *m, struct petrel_queue_reply *reply)
{
    if (!m->header_done)
        header_flush(m); /* a message without a body */
    proc_header_filter_finish(&m->filter, emit_out, m);
    proc_pipeline_commit(m, reply);
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
