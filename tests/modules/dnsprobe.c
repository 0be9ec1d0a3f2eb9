/* dnsprobe: a line protocol for the resolver's tests and benchmark.
 *
 *   RESOLVE type name     a lookup on the connection's loop
 *   RESOLVEW type name    the same started from a worker thread, which
 *                         waits (bounded) for the answer
 *   PTR address           reverse lookup
 *   CANCEL type name      start a lookup and cancel it at once
 *   BENCH type name n k   n lookups, k at a time: "+OK n ms"
 *   FLUSH                 empty the cache
 *   QUIT
 *
 * An answer is a status line, one line per record, then ".":
 *
 *   +OK MX rcode=0 ttl=300 ad=0 cache=0 nullmx=0 canonical=example.test count=2
 *   10 mx1.example.test
 *   20 mx2.example.test
 *   .
 *
 * (the word after +OK is the status: OK, NODATA, NXDOMAIN, SERVFAIL,
 * TIMEOUT or ERROR, with "error=..." for all but OK). One lookup at a time
 * per connection; closing the connection cancels it. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/dns.h>
#include <petrel/loop.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#define BENCH_MAX_INFLIGHT 256
#define WORKER_WAIT_S 60 /* longest a worker waits: > timeout x attempts */

struct bench;

/* A lookup's callback runs on the connection's loop but outside the
 * connection's own callbacks, where output would wait for the next client
 * event: it leaves the reply in the session and wakes the connection,
 * whose wakeup callback sends it. */
struct probe_session {
    struct petrel_conn *conn;
    struct petrel_conn_waker *waker;
    struct petrel_buf reply;
    struct petrel_dns_lookup *pending; /* RESOLVE / PTR in flight */
    struct bench *bench;
};

struct bench_slot {
    struct bench *bn;
    struct petrel_dns_lookup *lookup;
};

struct bench {
    struct probe_session *s;
    enum petrel_dns_type type;
    char name[256];
    long total, started, done, failed;
    int64_t t0;
    struct bench_slot slot[BENCH_MAX_INFLIGHT];
};

/* --- formatting an answer --- */

static void put_bytes(struct petrel_buf *b, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            petrel_buf_printf(b, "%c", p[i]);
        else
            petrel_buf_printf(b, "\\x%02x", p[i]);
    }
}

static void put_record(struct petrel_buf *b, enum petrel_dns_type type,
                       const struct petrel_dns_record *r)
{
    char ip[INET6_ADDRSTRLEN];
    switch (type) {
    case PETREL_DNS_A:
    case PETREL_DNS_AAAA:
        inet_ntop(r->a.family, &r->a.u, ip, sizeof(ip));
        petrel_buf_printf(b, "%s", ip);
        break;
    case PETREL_DNS_MX:
        petrel_buf_printf(b, "%u %s", r->mx.preference, r->mx.exchange);
        break;
    case PETREL_DNS_PTR:
        petrel_buf_printf(b, "%s", r->ptr);
        break;
    case PETREL_DNS_TXT:
        put_bytes(b, r->txt.data, r->txt.len);
        break;
    case PETREL_DNS_TLSA:
        petrel_buf_printf(b, "%u %u %u ", r->tlsa.usage, r->tlsa.selector, r->tlsa.matching);
        for (size_t i = 0; i < r->tlsa.len; i++)
            petrel_buf_printf(b, "%02x", r->tlsa.data[i]);
        break;
    }
    petrel_buf_printf(b, "\r\n");
}

static void format(struct petrel_buf *b, const struct petrel_dns_result *r)
{
    petrel_buf_printf(b, "+OK %s rcode=%d ttl=%u ad=%d cache=%d nullmx=%d canonical=%s count=%zu",
                      petrel_dns_status_name(r->status), r->rcode, r->ttl, r->ad, r->from_cache,
                      r->null_mx, r->canonical, r->count);
    if (r->status != PETREL_DNS_OK)
        petrel_buf_printf(b, " error=%s", r->error);
    petrel_buf_printf(b, "\r\n");
    for (size_t i = 0; i < r->count; i++)
        put_record(b, r->type, &r->records[i]);
    petrel_buf_printf(b, ".\r\n");
}

/* --- lookups on the loop --- */

static void answered(const struct petrel_dns_result *r, void *ctx)
{
    struct probe_session *s = ctx;
    s->pending = NULL;
    format(&s->reply, r);
    petrel_conn_wake(s->waker);
}

static bool parse_type(struct petrel_conn *conn, char *arg, enum petrel_dns_type *type, char **name)
{
    *name = strchr(arg, ' ');
    if (*name == NULL) {
        petrel_conn_printf(conn, "-ERR usage: type name\r\n");
        return false;
    }
    *(*name)++ = '\0';
    if (!petrel_dns_type_parse(arg, type)) {
        petrel_conn_printf(conn, "-ERR unknown type\r\n");
        return false;
    }
    return true;
}

static void cmd_resolve(struct probe_session *s, char *arg, bool cancel)
{
    enum petrel_dns_type type;
    char *name;
    if (!parse_type(s->conn, arg, &type, &name))
        return;
    s->pending = petrel_dns_lookup(type, name, answered, s);
    if (cancel) {
        petrel_dns_cancel(s->pending);
        s->pending = NULL;
        petrel_conn_printf(s->conn, "+OK cancelled\r\n");
    }
}

/* --- from a worker: the lookup's callback runs on a loop, the worker
 * waits for it on a condition variable, bounded --- */

struct worker_job {
    enum petrel_dns_type type;
    char name[256];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    struct petrel_buf reply;
};

static void worker_answered(const struct petrel_dns_result *r, void *ctx)
{
    struct worker_job *job = ctx;
    pthread_mutex_lock(&job->lock);
    format(&job->reply, r);
    job->done = true;
    pthread_cond_signal(&job->cond);
    pthread_mutex_unlock(&job->lock);
}

static void worker_lookup(void *arg)
{
    struct worker_job *job = arg;
    if (petrel_dns_lookup(job->type, job->name, worker_answered, job) != NULL)
        abort(); /* off the loops there is no handle */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WORKER_WAIT_S;
    pthread_mutex_lock(&job->lock);
    int r = 0;
    while (!job->done && r == 0)
        r = pthread_cond_timedwait(&job->cond, &job->lock, &until);
    if (!job->done)
        abort(); /* the resolver never answered: a bug the test must see */
    pthread_mutex_unlock(&job->lock);
}

static void worker_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct worker_job *job = arg;
    if (!closing)
        petrel_conn_write(conn, petrel_buf_head(&job->reply), job->reply.len);
    petrel_buf_free(&job->reply);
    pthread_cond_destroy(&job->cond);
    pthread_mutex_destroy(&job->lock);
    free(job);
}

static void cmd_resolve_worker(struct probe_session *s, char *arg)
{
    enum petrel_dns_type type;
    char *name;
    if (!parse_type(s->conn, arg, &type, &name))
        return;
    struct worker_job *job = petrel_calloc(1, sizeof(*job));
    job->type = type;
    petrel_strlcpy(job->name, name, sizeof(job->name));
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->cond, NULL);
    petrel_buf_init(&job->reply, 1 << 20);
    if (!petrel_conn_submit(s->conn, worker_lookup, worker_done, job)) {
        worker_done(s->conn, job, true);
        petrel_conn_printf(s->conn, "-ERR server busy\r\n");
    }
}

/* --- the benchmark: lookups kept k at a time on this loop --- */

static void bench_next(struct bench_slot *slot);

static void bench_answered(const struct petrel_dns_result *r, void *ctx)
{
    struct bench_slot *slot = ctx;
    slot->lookup = NULL;
    slot->bn->done++;
    slot->bn->failed += r->status != PETREL_DNS_OK;
    bench_next(slot);
}

static void bench_next(struct bench_slot *slot)
{
    struct bench *bn = slot->bn;
    if (bn->started < bn->total) {
        bn->started++;
        slot->lookup = petrel_dns_lookup(bn->type, bn->name, bench_answered, slot);
        return;
    }
    if (bn->done < bn->total)
        return;
    int64_t ms = petrel_loop_now_ms(petrel_loop_current()) - bn->t0;
    petrel_buf_printf(&bn->s->reply, "+OK %ld %lld failed=%ld\r\n", bn->total, (long long)ms,
                      bn->failed);
    petrel_conn_wake(bn->s->waker);
    bn->s->bench = NULL;
    free(bn);
}

static void cmd_bench(struct probe_session *s, char *arg)
{
    enum petrel_dns_type type;
    char *name;
    if (!parse_type(s->conn, arg, &type, &name))
        return;
    char *rest = strchr(name, ' ');
    long n = 0, k = 0;
    if (rest != NULL) {
        *rest++ = '\0';
        n = strtol(rest, &rest, 10);
        k = strtol(rest, NULL, 10);
    }
    if (n < 1 || k < 1 || k > BENCH_MAX_INFLIGHT) {
        petrel_conn_printf(s->conn, "-ERR usage: BENCH type name count 1..%d\r\n",
                           BENCH_MAX_INFLIGHT);
        return;
    }
    struct bench *bn = petrel_calloc(1, sizeof(*bn));
    bn->s = s;
    bn->type = type;
    petrel_strlcpy(bn->name, name, sizeof(bn->name));
    bn->total = n;
    bn->t0 = petrel_loop_now_ms(petrel_loop_current());
    s->bench = bn;
    for (long i = 0; i < k && i < n; i++) {
        bn->slot[i].bn = bn;
        bench_next(&bn->slot[i]);
    }
}

/* --- the protocol --- */

static void probe_connect(struct petrel_conn *conn)
{
    struct probe_session *s = petrel_conn_session(conn);
    s->conn = conn;
    s->waker = petrel_conn_waker_get(conn);
    petrel_buf_init(&s->reply, 1 << 20);
    petrel_conn_printf(conn, "+OK dnsprobe ready\r\n");
}

static void probe_wakeup(struct petrel_conn *conn)
{
    struct probe_session *s = petrel_conn_session(conn);
    if (s->reply.len == 0)
        return;
    petrel_conn_write(conn, petrel_buf_head(&s->reply), s->reply.len);
    petrel_buf_reset(&s->reply);
}

static void probe_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct probe_session *s = petrel_conn_session(conn);
    if (strlen(line) != len) {
        petrel_conn_printf(conn, "-ERR NUL byte in command\r\n");
        return;
    }
    if (s->pending != NULL || s->bench != NULL) {
        petrel_conn_printf(conn, "-ERR busy\r\n");
        return;
    }
    char *arg = strchr(line, ' ');
    if (arg != NULL)
        *arg++ = '\0';
    else
        arg = line + len;
    if (strcasecmp(line, "RESOLVE") == 0)
        cmd_resolve(s, arg, false);
    else if (strcasecmp(line, "CANCEL") == 0)
        cmd_resolve(s, arg, true);
    else if (strcasecmp(line, "RESOLVEW") == 0)
        cmd_resolve_worker(s, arg);
    else if (strcasecmp(line, "PTR") == 0)
        s->pending = petrel_dns_lookup_ptr(arg, answered, s);
    else if (strcasecmp(line, "BENCH") == 0)
        cmd_bench(s, arg);
    else if (strcasecmp(line, "FLUSH") == 0) {
        petrel_dns_cache_flush();
        petrel_conn_printf(conn, "+OK flushed\r\n");
    } else if (strcasecmp(line, "QUIT") == 0) {
        petrel_conn_printf(conn, "+OK bye\r\n");
        petrel_conn_close(conn);
    } else
        petrel_conn_printf(conn, "-ERR unknown command\r\n");
}

static void probe_close(struct petrel_conn *conn)
{
    struct probe_session *s = petrel_conn_session(conn);
    petrel_dns_cancel(s->pending);
    s->pending = NULL;
    if (s->bench != NULL) {
        for (int i = 0; i < BENCH_MAX_INFLIGHT; i++)
            petrel_dns_cancel(s->bench->slot[i].lookup);
        free(s->bench);
        s->bench = NULL;
    }
    petrel_conn_waker_release(s->waker);
    petrel_buf_free(&s->reply);
}

static void probe_shutdown(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "-ERR server shutting down\r\n");
}

static const struct petrel_protocol probe_protocol = {
    .name = "dnsprobe",
    .session_size = sizeof(struct probe_session),
    .connect = probe_connect,
    .line = probe_line,
    .close = probe_close,
    .shutdown = probe_shutdown,
    .wakeup = probe_wakeup,
};

static int probe_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)config;
    (void)error_r;
    return petrel_protocol_register(ctx, &probe_protocol);
}

PETREL_MODULE(.name = "dnsprobe", .version = "1.0", .init = probe_init);
