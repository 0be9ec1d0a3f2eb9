/* The resolver on the event loops (petrel/dns.h). c-ares carries the
 * queries; it is not thread-safe (1.18), so each loop has its own channel,
 * opened on that loop at its first lookup and used by no other thread. Its
 * sockets are watched with petrel_io_add and its timeouts driven by one
 * timer per channel: no thread ever waits for a name server. c-ares only
 * moves bytes: the query is built here (EDNS0, AD bit) and the answer
 * parsed by dns_parse.c. Results always reach the caller through a post to
 * its loop, never from inside c-ares, so a callback may start lookups or
 * cancel others freely. */
#include "config.h"

#include <ares.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/dns.h>
#include <petrel/log.h>
#include <petrel/loop.h>
#include <petrel/mem.h>
#include <petrel/stats.h>

#include "cfg.h"
#include "dns_private.h"
#include "iothread.h"

/* What a UDP answer may hold (RFC 9715's advice, DNS flag day 2020). */
#define EDNS_PAYLOAD 1232
#define SERVERS_CSV_MAX 4096

struct dns_chan;

/* A c-ares socket watched on the loop. */
struct dns_sock {
    struct dns_sock *next;
    struct dns_chan *chan;
    int fd;
    struct petrel_io *io;
};

/* One loop's channel. */
struct dns_chan {
    struct petrel_loop *loop;
    ares_channel ch; /* NULL until the loop's first lookup */
    unsigned gen;    /* settings generation it was opened with */
    struct petrel_timer *timer;
    struct dns_sock *socks;
    size_t pending; /* queries c-ares holds */
};

struct petrel_dns_lookup {
    enum petrel_dns_type type;
    petrel_dns_fn *fn;
    void *ctx;
    struct petrel_loop *loop;
    struct dns_answer *answer; /* when one came */
    enum petrel_dns_status status;
    const char *error;
    int rcode;
    uint32_t ttl;
    bool from_cache;
    bool cancelled;
    char name[PETREL_DNS_NAME_MAX]; /* normalised, or as given if invalid */
};

/* Settings, written by the main thread (start, reload), read by a loop
 * when it opens its channel. */
static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
static char conf_servers[SERVERS_CSV_MAX];
static int conf_timeout_ms = 5000, conf_tries = 3;
static atomic_uint conf_gen = 1;

static struct dns_chan *chans; /* one per loop, from petrel_dns_start() */
static unsigned nchans;
static atomic_uint next_loop;
static struct petrel_counter *c_queries, *c_hits, *c_failures;

/* --- settings --- */

/* resolv.conf's servers (c-ares reads the file: the main thread does it,
 * once per start or reload, so no loop ever opens a file). */
static void system_servers(char *out, size_t size)
{
    ares_channel tmp;
    struct ares_addr_port_node *list = NULL;
    out[0] = '\0';
    if (ares_init(&tmp) != ARES_SUCCESS)
        return;
    if (ares_get_servers_ports(tmp, &list) == ARES_SUCCESS) {
        size_t o = 0;
        for (struct ares_addr_port_node *n = list; n != NULL; n = n->next) {
            char ip[64];
            int port = n->udp_port ? n->udp_port : 53;
            if (ares_inet_ntop(n->family, &n->addr, ip, sizeof(ip)) == NULL)
                continue;
            if (!petrel_snprintf(out + o, size - o, n->family == AF_INET6 ? "%s[%s]:%d" : "%s%s:%d",
                                 o > 0 ? "," : "", ip, port))
                break;
            o += strlen(out + o);
        }
        ares_free_data(list);
    }
    ares_destroy(tmp);
}

void petrel_dns_configure(const struct petrel_dnr_cfg *dnr)
{
    char csv[SERVERS_CSV_MAX];
    const char *error;
    if (dnr->servers == NULL || dnr->servers[0] == NULL)
        system_servers(csv, sizeof(csv));
    else if (!petrel_dns_servers_csv(dnr->servers, csv, sizeof(csv), &error))
        csv[0] = '\0'; /* cfg.c refused it already: not reached */
    pthread_mutex_lock(&conf_lock);
    /* Answers of other servers are not this one's to give (their AD bit
     * least of all). */
    bool changed = strcmp(conf_servers, csv) != 0;
    memcpy(conf_servers, csv, sizeof(conf_servers));
    conf_timeout_ms = (int)dnr->timeout * 1000;
    conf_tries = (int)dnr->attempts;
    atomic_fetch_add(&conf_gen, 1);
    pthread_mutex_unlock(&conf_lock);
    petrel_dns_cache_configure((size_t)dnr->cache_size);
    if (changed)
        petrel_dns_cache_flush();
    petrel_log(PETREL_LOG_DEBUG, "dns", "servers %s, timeout %llds, %lld attempts, cache %lld",
               csv[0] ? csv : "(none)", dnr->timeout, dnr->attempts, dnr->cache_size);
}

int petrel_dns_start(const struct petrel_dnr_cfg *dnr, const char **error_r)
{
    int r = ares_library_init(ARES_LIB_INIT_ALL);
    if (r != ARES_SUCCESS) {
        *error_r = ares_strerror(r);
        return -1;
    }
    nchans = petrel_loop_count();
    chans = petrel_calloc(nchans ? nchans : 1, sizeof(*chans));
    for (unsigned i = 0; i < nchans; i++)
        chans[i].loop = petrel_loop_get(i);
    c_queries = petrel_counter("dns.queries");
    c_hits = petrel_counter("dns.cache_hits");
    c_failures = petrel_counter("dns.failures");
    petrel_dns_configure(dnr);
    return 0;
}

/* --- the channel's sockets and timer --- */

static void arm_timer(struct dns_chan *c);

static void sock_event(struct petrel_io *io, unsigned events, void *ctx)
{
    struct dns_sock *s = ctx; /* may be freed inside ares_process_fd */
    struct dns_chan *c = s->chan;
    ares_socket_t fd = s->fd;
    bool err = events & (PETREL_IO_ERR | PETREL_IO_HUP);
    ares_process_fd(c->ch, (events & PETREL_IO_IN) || err ? fd : ARES_SOCKET_BAD,
                    (events & PETREL_IO_OUT) || err ? fd : ARES_SOCKET_BAD);
    arm_timer(c);
}

/* c-ares opens, closes and changes interest in its sockets through this. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_chan *c = data;
    struct dns_sock **pp = &c->socks;
    while (*pp != NULL && (*pp)->fd != fd)
        pp = &(*pp)->next;
    struct dns_sock *s = *pp;
    if (!readable && !writable) {
        if (s != NULL) {
            petrel_io_remove(s->io);
            *pp = s->next;
            free(s);
        }
        return;
    }
    unsigned ev = (readable ? PETREL_IO_IN : 0) | (writable ? PETREL_IO_OUT : 0);
    if (s != NULL) {
        if (s->io != NULL && !petrel_io_modify(s->io, ev))
            petrel_log(PETREL_LOG_ERROR, "dns", "watching a resolver socket failed");
        return;
    }
    s = petrel_calloc(1, sizeof(*s));
    s->chan = c;
    s->fd = fd;
    s->io = petrel_io_add(fd, ev, sock_event, s);
    if (s->io == NULL) /* its queries end by timeout */
        petrel_log(PETREL_LOG_ERROR, "dns", "cannot watch a resolver socket");
    s->next = c->socks;
    c->socks = s;
}

static void on_timer(void *ctx)
{
    struct dns_chan *c = ctx;
    ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(c);
}

/* The next c-ares deadline, if it holds queries. */
static void arm_timer(struct dns_chan *c)
{
    struct timeval tv;
    if (c->pending == 0 || ares_timeout(c->ch, NULL, &tv) == NULL)
        return;
    unsigned ms = (unsigned)tv.tv_sec * 1000u + (unsigned)(tv.tv_usec + 999) / 1000u;
    if (c->timer == NULL)
        c->timer = petrel_timer_add(c->loop, ms, false, on_timer, c);
    else
        petrel_timer_reset(c->timer, ms);
}

static void chan_close(struct dns_chan *c)
{
    if (c->ch != NULL)
        ares_destroy(c->ch); /* closes its sockets through sock_state */
    c->ch = NULL;
    petrel_timer_remove(c->timer);
    c->timer = NULL;
}

/* The loop's channel, opened (or reopened after a reload, once idle) with
 * the current settings. Servers, search domains, sort list and lookups
 * are all given, so c-ares skips resolv.conf; opening reads only 32 bytes
 * of /dev/urandom (its query-ID key), once per loop and reload. */
static struct dns_chan *chan_get(struct petrel_loop *loop, const char **error_r)
{
    struct dns_chan *c = &chans[loop->index];
    unsigned gen = atomic_load(&conf_gen);
    if (c->ch != NULL && (c->gen == gen || c->pending > 0))
        return c;
    chan_close(c);
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_EDNS;
    o.tries = 1;
    o.ndots = 1;
    o.lookups = (char *)"b";
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = c;
    o.ednspsz = EDNS_PAYLOAD;
    char servers[SERVERS_CSV_MAX];
    pthread_mutex_lock(&conf_lock);
    o.timeout = conf_timeout_ms;
    o.tries = conf_tries;
    memcpy(servers, conf_servers, sizeof(servers));
    pthread_mutex_unlock(&conf_lock);
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
               ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS | ARES_OPT_SORTLIST | ARES_OPT_SERVERS |
               ARES_OPT_SOCK_STATE_CB | ARES_OPT_EDNSPSZ;
    if (servers[0] == '\0') {
        *error_r = "no name server (dnr.servers and resolv.conf are empty)";
        return NULL;
    }
    int r = ares_init_options(&c->ch, &o, mask);
    if (r == ARES_SUCCESS)
        r = ares_set_servers_ports_csv(c->ch, servers);
    if (r != ARES_SUCCESS) {
        *error_r = ares_strerror(r);
        chan_close(c);
        return NULL;
    }
    c->gen = gen;
    return c;
}

/* --- lookups --- */

static void lookup_free(struct petrel_dns_lookup *q)
{
    petrel_dns_answer_unref(q->answer);
    free(q);
}

/* On the lookup's loop, after everything c-ares was doing returned. */
static void deliver(void *arg)
{
    struct petrel_dns_lookup *q = arg;
    if (q->cancelled) {
        lookup_free(q);
        return;
    }
    const struct dns_answer *a = q->answer;
    struct petrel_dns_result r = {
        .type = q->type,
        .name = q->name,
        .status = q->status,
        .error = q->error,
        .rcode = q->rcode,
        .ttl = q->ttl,
        .from_cache = q->from_cache,
        .canonical = q->name,
    };
    if (a != NULL) {
        r.ad = a->ad;
        r.canonical = a->canonical[0] != '\0' ? a->canonical : q->name;
        r.count = a->count;
        r.records = a->records;
        r.null_mx = a->type == PETREL_DNS_MX && a->count == 1 && a->records[0].mx.exchange[0] == 0;
        r.internal = q->answer;
    }
    if (q->status != PETREL_DNS_OK && q->status != PETREL_DNS_NODATA &&
        q->status != PETREL_DNS_NXDOMAIN)
        petrel_counter_add(c_failures, 1);
    q->fn(&r, q->ctx);
    lookup_free(q);
}

static void finish(struct petrel_dns_lookup *q, enum petrel_dns_status st, int rcode,
                   const char *error)
{
    q->status = st;
    q->rcode = rcode;
    q->error = error;
    petrel_loop_post(q->loop, deliver, q);
}

static void answered(struct petrel_dns_lookup *q, const unsigned char *abuf, int alen)
{
    const char *error = NULL;
    struct dns_answer *a = petrel_dns_parse_answer(abuf, (size_t)alen, q->type, q->name, &error);
    if (a == NULL) {
        petrel_log(PETREL_LOG_WARNING, "dns", "%s %s: %s", petrel_dns_type_name(q->type), q->name,
                   error);
        finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, error);
        return;
    }
    q->answer = a;
    q->ttl = petrel_dns_cache_ttl(a);
    petrel_dns_cache_put(q->type, q->name, a, petrel_loop_now_ms(q->loop));
    enum petrel_dns_status st = petrel_dns_answer_status(a);
    static const char *const why[] = {
        [PETREL_DNS_NODATA] = "no record of that type",
        [PETREL_DNS_NXDOMAIN] = "no such domain",
        [PETREL_DNS_SERVFAIL] = "server failure",
    };
    finish(q, st, a->rcode, st == PETREL_DNS_OK ? NULL : why[st]);
}

/* c-ares's callback: the answer, or why there is none. */
static void on_reply(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct petrel_dns_lookup *q = arg;
    (void)timeouts;
    chans[q->loop->index].pending--;
    switch (status) {
    case ARES_SUCCESS:
        answered(q, abuf, alen);
        return;
    case ARES_EDESTRUCTION: /* the server is stopping: nobody waits */
    case ARES_ECANCELLED:
        lookup_free(q);
        return;
    case ARES_ETIMEOUT:
        finish(q, PETREL_DNS_TIMEOUT, PETREL_DNS_RCODE_NONE, "no answer from the name servers");
        return;
    case ARES_ESERVFAIL:
        finish(q, PETREL_DNS_SERVFAIL, PETREL_DNS_RCODE_SERVFAIL, "server failure");
        return;
    case ARES_EREFUSED:
        finish(q, PETREL_DNS_SERVFAIL, PETREL_DNS_RCODE_REFUSED, "query refused");
        return;
    case ARES_ENOTIMP:
        finish(q, PETREL_DNS_SERVFAIL, PETREL_DNS_RCODE_NOTIMP,
               "the server does not answer this kind of query (NOTIMP)");
        return;
    case ARES_EFORMERR:
        finish(q, PETREL_DNS_SERVFAIL, PETREL_DNS_RCODE_FORMERR, "server refused the query");
        return;
    case ARES_ECONNREFUSED:
        /* c-ares 1.18 ends here, rcode unknown, once every server and
         * attempt failed (SERVFAIL, REFUSED) or refused the connection. */
        finish(q, PETREL_DNS_SERVFAIL, PETREL_DNS_RCODE_NONE,
               "the name servers failed or refused the query");
        return;
    default:
        finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, ares_strerror(status));
        return;
    }
}

/* The query c-ares sends: recursion desired, EDNS0 with our payload size,
 * and the AD bit, which asks a validating resolver to say whether it
 * validated the answer (RFC 6840 s.5.7) without the RRSIG bulk of DO. */
static void send_query(struct petrel_dns_lookup *q, struct dns_chan *c)
{
    unsigned char *buf;
    int len;
    int r = ares_create_query(q->name, DNS_CLASS_IN, (int)q->type, 0, 1, &buf, &len, EDNS_PAYLOAD);
    if (r != ARES_SUCCESS) {
        finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, ares_strerror(r));
        return;
    }
    buf[3] |= 0x20;
    c->pending++;
    petrel_counter_add(c_queries, 1);
    ares_send(c->ch, buf, len, on_reply, q);
    ares_free_string(buf);
    arm_timer(c);
}

/* On the lookup's loop: from the cache, or a query. */
static void start(struct petrel_dns_lookup *q)
{
    char name[PETREL_DNS_NAME_MAX];
    if (!petrel_dns_name_normalise(q->name, name, sizeof(name))) {
        finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, "invalid name");
        return;
    }
    memcpy(q->name, name, strlen(name) + 1);
    q->answer = petrel_dns_cache_get(q->type, q->name, petrel_loop_now_ms(q->loop), &q->ttl);
    if (q->answer != NULL) {
        petrel_counter_add(c_hits, 1);
        q->from_cache = true;
        enum petrel_dns_status st = petrel_dns_answer_status(q->answer);
        finish(q, st, q->answer->rcode, st == PETREL_DNS_OK ? NULL : "cached negative answer");
        return;
    }
    const char *error;
    struct dns_chan *c = chan_get(q->loop, &error);
    if (c == NULL) {
        petrel_log(PETREL_LOG_ERROR, "dns", "cannot open the resolver: %s", error);
        finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, error);
        return;
    }
    send_query(q, c);
}

static void start_posted(void *arg) { start(arg); }

static bool type_known(enum petrel_dns_type t)
{
    return t == PETREL_DNS_A || t == PETREL_DNS_AAAA || t == PETREL_DNS_MX || t == PETREL_DNS_TXT ||
           t == PETREL_DNS_PTR || t == PETREL_DNS_TLSA;
}

struct petrel_dns_lookup *petrel_dns_lookup(enum petrel_dns_type type, const char *name,
                                            petrel_dns_fn *fn, void *ctx)
{
    struct petrel_dns_lookup *q = petrel_calloc(1, sizeof(*q));
    q->type = type;
    q->fn = fn;
    q->ctx = ctx;
    q->rcode = PETREL_DNS_RCODE_NONE;
    petrel_strlcpy(q->name, name != NULL ? name : "", sizeof(q->name));
    q->loop = petrel_loop_current();
    if (chans == NULL || nchans == 0) {
        /* No loop to run it (petrelctl, a unit test): answered now. */
        struct petrel_dns_result r = {.type = type,
                                      .name = q->name,
                                      .canonical = q->name,
                                      .status = PETREL_DNS_ERROR,
                                      .rcode = q->rcode,
                                      .error = "the resolver is not running"};
        fn(&r, ctx);
        free(q);
        return NULL;
    }
    if (q->loop == NULL) {
        q->loop = petrel_loop_get(atomic_fetch_add(&next_loop, 1));
        if (!type_known(type))
            finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, "unsupported record type");
        else
            petrel_loop_post(q->loop, start_posted, q);
        return NULL;
    }
    if (!type_known(type))
        finish(q, PETREL_DNS_ERROR, PETREL_DNS_RCODE_NONE, "unsupported record type");
    else
        start(q);
    return q;
}

struct petrel_dns_lookup *petrel_dns_lookup_ptr(const char *address, petrel_dns_fn *fn, void *ctx)
{
    char name[PETREL_DNS_NAME_MAX];
    if (address == NULL || !petrel_dns_reverse_name(address, name, sizeof(name)))
        name[0] = '\0'; /* reported as an invalid name */
    return petrel_dns_lookup(PETREL_DNS_PTR, name, fn, ctx);
}

void petrel_dns_cancel(struct petrel_dns_lookup *q)
{
    if (q != NULL)
        q->cancelled = true;
}

/* --- results kept past the callback --- */

struct petrel_dns_result *petrel_dns_result_dup(const struct petrel_dns_result *r)
{
    size_t nlen = strlen(r->name) + 1, clen = strlen(r->canonical) + 1;
    struct petrel_dns_result *d = petrel_malloc(sizeof(*d) + nlen + clen);
    *d = *r;
    char *names = (char *)(d + 1);
    memcpy(names, r->name, nlen);
    d->name = names;
    /* canonical may point into the shared answer or at the name. */
    memcpy(names + nlen, r->canonical, clen);
    d->canonical = names + nlen;
    if (d->internal != NULL)
        petrel_dns_answer_ref(d->internal);
    return d;
}

void petrel_dns_result_free(struct petrel_dns_result *r)
{
    if (r == NULL)
        return;
    petrel_dns_answer_unref(r->internal);
    free(r);
}

/* --- names for logs --- */

static const struct {
    enum petrel_dns_type type;
    const char *name;
} types[] = {
    {PETREL_DNS_A, "A"},     {PETREL_DNS_AAAA, "AAAA"}, {PETREL_DNS_MX, "MX"},
    {PETREL_DNS_TXT, "TXT"}, {PETREL_DNS_PTR, "PTR"},   {PETREL_DNS_TLSA, "TLSA"},
};

const char *petrel_dns_type_name(enum petrel_dns_type type)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].type == type)
            return types[i].name;
    return "?";
}

bool petrel_dns_type_parse(const char *text, enum petrel_dns_type *type_r)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcasecmp(types[i].name, text) == 0) {
            *type_r = types[i].type;
            return true;
        }
    }
    return false;
}

const char *petrel_dns_status_name(enum petrel_dns_status status)
{
    static const char *const names[] = {"OK", "NODATA", "NXDOMAIN", "SERVFAIL", "TIMEOUT", "ERROR"};
    return (unsigned)status < sizeof(names) / sizeof(names[0]) ? names[status] : "?";
}

/* --- stopping --- */

/* After the loops have stopped: lookups still in flight end without their
 * callback (their callers are gone), sockets and timers are released. */
void petrel_dns_stop(void)
{
    for (unsigned i = 0; i < nchans; i++)
        chan_close(&chans[i]);
    free(chans);
    chans = NULL;
    nchans = 0;
    petrel_dns_cache_free();
    ares_library_cleanup();
}
