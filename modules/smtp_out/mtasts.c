/* MTA-STS (RFC 8461) for a domain without an entry in tls_policies: the
 * TXT record of _mta-sts.<domain> says whether there is a policy and its
 * id; the policy itself comes from https://mta-sts.<domain>/.well-known/
 * mta-sts.txt, fetched with libcurl on a worker (never on an I/O thread)
 * and kept in a bounded in-memory cache for max_age, fetched again when
 * the id changes. The address of mta-sts.<domain> comes from the core's
 * resolver and is handed to libcurl (CURLOPT_RESOLVE), so libcurl never
 * resolves anything itself and tests stay on loopback. When anything
 * fails, a cached policy is used if there is one (RFC 8461 5.1), else the
 * domain has none. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <curl/curl.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "smtp_out.h"

#define STS_CACHE_MAX 256     /* domains whose policy is kept */
#define STS_CONNECT_TIMEOUT 5 /* seconds, for the fetch */
#define STS_FETCH_TIMEOUT 15  /* seconds in all: RFC 8461 3.3 says short */
#define STS_FETCH_MAX 4       /* fetches at once, all domains */
/* The longest a job waits for a fetch (its own, or one queued behind
 * others) before it goes on without a new policy, as after a failed
 * fetch (RFC 8461 5.1): a crowd of slow policy hosts must not hold every
 * outbound connection slot. */
#define STS_WAIT_MAX_MS ((STS_FETCH_TIMEOUT * 2) * 1000)

struct sts_entry {
    char domain[SMTP_STS_NAME_MAX];
    char id[SMTP_STS_ID_MAX];
    time_t expires; /* CLOCK_MONOTONIC seconds */
    struct smtp_sts_policy policy;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sts_entry *cache[STS_CACHE_MAX];

/* Jobs waiting for a fetch, each resumed on the loop its lookups ran on:
 * when the fetch ends, or after STS_WAIT_MAX_MS, whichever comes first
 * (the waiter belongs to its loop: only that loop frees it). */
struct sts_fetch;
struct sts_waiter {
    struct sts_waiter *next;
    struct smtp_job *job;
    struct petrel_loop *loop;
    struct petrel_timer *timer;
    struct sts_fetch *flight; /* under lock: the fetch waited for, NULL once let go */
};

/* One fetch per domain at a time, whoever asks (later jobs wait for it),
 * and at most STS_FETCH_MAX at once in all: each holds a worker for up to
 * STS_FETCH_TIMEOUT, and the workers also serve inbound mail. */
struct sts_fetch {
    struct sts_fetch *next; /* flights, or pending */
    struct sts_waiter *waiters;
    char domain[SMTP_STS_NAME_MAX];
    struct petrel_loop *loop; /* where the result is handled */
    char id[SMTP_STS_ID_MAX];
    char host[SMTP_STS_NAME_MAX + 8]; /* "mta-sts." + the domain */
    char address[INET6_ADDRSTRLEN];
    int family;
    long port;
    char *ca_file;
    char *body;
    size_t len;
    bool ok;
    struct smtp_sts_policy policy;
    char error[160];
};

static struct sts_fetch *flights;                            /* started or pending, under lock */
static struct sts_fetch *pending, **pending_tail = &pending; /* waiting for a slot */
static unsigned nrunning;

static time_t now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* A cached policy of domain (of this id unless id is NULL) into *p;
 * *stale_r (if not NULL) says whether less than a quarter of its max_age
 * is left, so that it is fetched again before it lapses (RFC 8461 5.1:
 * an expired policy cannot be trusted if the fetch fails then). */
static bool cache_get(const char *domain, const char *id, struct smtp_sts_policy *p, bool *stale_r)
{
    bool found = false;
    time_t t = now();
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < STS_CACHE_MAX && !found; i++) {
        const struct sts_entry *e = cache[i];
        if (e == NULL || e->expires <= t || strcasecmp(e->domain, domain) != 0)
            continue;
        if (id == NULL || strcmp(e->id, id) == 0) {
            *p = e->policy;
            found = true;
            if (stale_r != NULL)
                *stale_r = (e->expires - t) * 4 <= (time_t)e->policy.max_age;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* Keep a policy: its domain's old entry, else an empty or expired slot,
 * else the one that expires first. */
static void cache_put(const char *domain, const char *id, const struct smtp_sts_policy *p)
{
    time_t t = now();
    pthread_mutex_lock(&lock);
    size_t slot = STS_CACHE_MAX;
    for (size_t i = 0; i < STS_CACHE_MAX && slot == STS_CACHE_MAX; i++) {
        if (cache[i] != NULL && strcasecmp(cache[i]->domain, domain) == 0)
            slot = i;
    }
    for (size_t i = 0; i < STS_CACHE_MAX && slot == STS_CACHE_MAX; i++) {
        if (cache[i] == NULL || cache[i]->expires <= t)
            slot = i;
    }
    if (slot == STS_CACHE_MAX) { /* full of live policies */
        slot = 0;
        for (size_t k = 1; k < STS_CACHE_MAX; k++) {
            if (cache[k]->expires < cache[slot]->expires)
                slot = k;
        }
    }
    if (cache[slot] == NULL)
        cache[slot] = petrel_calloc(1, sizeof(*cache[slot]));
    struct sts_entry *e = cache[slot];
    petrel_strlcpy(e->domain, domain, sizeof(e->domain));
    petrel_strlcpy(e->id, id, sizeof(e->id));
    e->expires = t + (time_t)p->max_age;
    e->policy = *p;
    pthread_mutex_unlock(&lock);
}

/* f's waiters are let go (resumed or freed by their loops) first. */
static void fetch_free(struct sts_fetch *f)
{
    free(f->ca_file);
    free(f);
}

static void waiter_free(struct sts_waiter *w)
{
    petrel_timer_remove(w->timer);
    free(w);
}

/* After stop: the fetches that never started, and the cache. */
void smtp_mtasts_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < STS_CACHE_MAX; i++) {
        free(cache[i]);
        cache[i] = NULL;
    }
    while (pending != NULL) { /* the loops have stopped: no timer runs */
        struct sts_fetch *f = pending;
        pending = f->next;
        while (f->waiters != NULL) {
            struct sts_waiter *w = f->waiters;
            f->waiters = w->next;
            waiter_free(w);
        }
        fetch_free(f);
    }
    pending_tail = &pending;
    flights = NULL;
    pthread_mutex_unlock(&lock);
}

static void use(struct smtp_job *job, const struct smtp_sts_policy *p)
{
    job->tlsp->sts = true;
    job->tlsp->policy = *p;
}

/* The lookups are over: a cached policy when nothing better came, then
 * the MX lookup. */
static void proceed(struct smtp_job *job, bool try_cache)
{
    struct smtp_sts_policy p;
    if (try_cache && !job->tlsp->sts && cache_get(job->msg->domain, NULL, &p, NULL))
        use(job, &p);
    job->tlsp->cont(job);
}

/* --- the fetch, on a worker --- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sts_fetch *f = arg;
    size_t n = size * nmemb;
    if (n > SMTP_STS_BODY_MAX - f->len)
        return 0; /* over 64 KiB: libcurl stops with a write error */
    memcpy(f->body + f->len, data, n);
    f->len += n;
    return n;
}

static void fetch_done(void *arg);

static void fetch_work(void *arg)
{
    struct sts_fetch *f = arg;
    char url[sizeof(f->host) + 64], resolve[sizeof(f->host) + sizeof(f->address) + 16];
    snprintf(url, sizeof(url), "https://%s:%ld/.well-known/mta-sts.txt", f->host, f->port);
    snprintf(resolve, sizeof(resolve), f->family == AF_INET6 ? "%s:%ld:[%s]" : "%s:%ld:%s", f->host,
             f->port, f->address);
    struct curl_slist *pin = curl_slist_append(NULL, resolve);
    CURL *c = curl_easy_init();
    f->body = petrel_malloc(SMTP_STS_BODY_MAX);
    if (c == NULL || pin == NULL) {
        snprintf(f->error, sizeof(f->error), "cannot start libcurl");
    } else {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_RESOLVE, pin);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* RFC 8461 3.3: no redirects */
        curl_easy_setopt(c, CURLOPT_PROXY, "");          /* not through an environment proxy */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
        if (f->ca_file != NULL)
            curl_easy_setopt(c, CURLOPT_CAINFO, f->ca_file);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)STS_CONNECT_TIMEOUT);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)STS_FETCH_TIMEOUT);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SMTP_STS_BODY_MAX);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "petrel-smtp_out");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        char *type = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
        const char *error = NULL;
        if (rc != CURLE_OK)
            snprintf(f->error, sizeof(f->error), "%s", curl_easy_strerror(rc));
        else if (code != 200)
            snprintf(f->error, sizeof(f->error), "HTTP status %ld", code);
        else if (type == NULL || strncasecmp(type, "text/plain", 10) != 0)
            snprintf(f->error, sizeof(f->error), "media type is not text/plain");
        else if (smtp_sts_parse_policy(f->body, f->len, &f->policy, &error) < 0)
            snprintf(f->error, sizeof(f->error), "invalid policy: %s", error);
        else
            f->ok = true;
    }
    if (c != NULL)
        curl_easy_cleanup(c);
    curl_slist_free_all(pin);
    free(f->body);
    f->body = NULL;
    petrel_loop_post(f->loop, fetch_done, f);
}

static void start_fetch(struct sts_fetch *f);

/* On the waiter's loop, once fetch_end has let it go. */
static void waiter_go(void *arg)
{
    struct sts_waiter *w = arg;
    struct smtp_job *job = w->job;
    waiter_free(w);
    if (!smtp_dispatch_stopped())
        proceed(job, true);
}

/* On the waiter's loop: the fetch took too long. Unless fetch_end let it
 * go meanwhile (then waiter_go is on its way), the job goes on. */
static void waiter_timeout(void *arg)
{
    struct sts_waiter *w = arg, **p;
    pthread_mutex_lock(&lock);
    struct sts_fetch *f = w->flight;
    for (p = f != NULL ? &f->waiters : NULL; p != NULL && *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    w->flight = NULL;
    pthread_mutex_unlock(&lock);
    if (f == NULL)
        return;
    if (!smtp_dispatch_stopped())
        petrel_log(PETREL_LOG_WARNING, "smtp_out",
                   "MTA-STS policy of %.250s: no answer from its fetch in %d s, going on "
                   "without a new policy",
                   w->job->msg->domain, STS_WAIT_MAX_MS / 1000);
    waiter_go(w);
}

/* The fetch is over (f->ok or f->error): keep the policy, let the next
 * pending fetch start, and resume every job that waited, on its loop. */
static void fetch_end(struct sts_fetch *f)
{
    bool stopped = smtp_dispatch_stopped(); /* the queue is gone: only let go */
    if (!stopped && f->ok) {
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "MTA-STS policy of %.250s (id %s): mode %s, %zu mx, max_age %lld", f->domain,
                   f->id, smtp_sts_mode_name(f->policy.mode), f->policy.nmx, f->policy.max_age);
        cache_put(f->domain, f->id, &f->policy);
    } else if (!stopped) {
        petrel_log(PETREL_LOG_WARNING, "smtp_out", "MTA-STS policy of %.250s not fetched: %s",
                   f->domain, f->error);
    }
    pthread_mutex_lock(&lock);
    for (struct sts_fetch **p = &flights; *p != NULL; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    struct sts_fetch *next = stopped ? NULL : pending; /* stopped: smtp_mtasts_free's */
    if (next != NULL) {
        if ((pending = next->next) == NULL)
            pending_tail = &pending;
        next->next = flights;
        flights = next;
    } else {
        nrunning--;
    }
    struct sts_waiter *w = f->waiters;
    f->waiters = NULL;
    for (struct sts_waiter *k = w; k != NULL; k = k->next)
        k->flight = NULL;
    pthread_mutex_unlock(&lock);
    struct petrel_loop *here = petrel_loop_current();
    while (w != NULL) {
        struct sts_waiter *wn = w->next;
        if (!stopped && f->ok && !w->job->tlsp->sts)
            use(w->job, &f->policy);
        if (w->loop == here)
            waiter_go(w);
        else
            petrel_loop_post(w->loop, waiter_go, w);
        w = wn;
    }
    fetch_free(f);
    if (next != NULL)
        start_fetch(next);
}

static void fetch_done(void *arg) { fetch_end(arg); }

/* --- the lookups, on the job's loop --- */

static void addr_done(const struct petrel_dns_result *res, void *ctx)
{
    struct sts_fetch *f = ctx;
    if (smtp_dispatch_stopped()) {
        fetch_end(f);
        return;
    }
    if (res->status != PETREL_DNS_OK && res->type == PETREL_DNS_A) {
        petrel_dns_lookup(PETREL_DNS_AAAA, f->host, addr_done, f); /* IPv6 only, maybe */
        return;
    }
    if (res->status == PETREL_DNS_OK) {
        const struct petrel_dns_addr *a = &res->records[0].a;
        f->family = a->family;
        inet_ntop(a->family,
                  a->family == AF_INET6 ? (const void *)&a->u.v6 : (const void *)&a->u.v4,
                  f->address, sizeof(f->address));
        f->loop = petrel_loop_current();
        if (petrel_worker_submit(fetch_work, f))
            return;
        snprintf(f->error, sizeof(f->error), "the worker pool is busy");
    } else {
        snprintf(f->error, sizeof(f->error), "no address for %.140s", f->host);
    }
    fetch_end(f);
}

static void start_fetch(struct sts_fetch *f)
{
    petrel_dns_lookup(PETREL_DNS_A, f->host, addr_done, f);
}

/* Fetch the policy of job's domain with id, job waiting for it; or, job
 * NULL, in the background for a policy that is about to lapse. */
static void fetch(struct smtp_job *job, const struct smtp_job *from, const char *id)
{
    const char *domain = from->msg->domain;
    struct sts_waiter *w = NULL;
    if (job != NULL) {
        w = petrel_calloc(1, sizeof(*w));
        w->job = job;
        w->loop = petrel_loop_current();
        /* Cannot fire before this returns: it runs on this loop. */
        w->timer = petrel_timer_add(w->loop, STS_WAIT_MAX_MS, false, waiter_timeout, w);
    }
    pthread_mutex_lock(&lock);
    for (int list = 0; list < 2; list++) {
        for (struct sts_fetch *f = list == 0 ? flights : pending; f != NULL; f = f->next) {
            if (strcasecmp(f->domain, domain) != 0)
                continue;
            if (w != NULL) { /* one is under way or queued: wait for it */
                w->flight = f;
                w->next = f->waiters;
                f->waiters = w;
            }
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    struct sts_fetch *f = petrel_calloc(1, sizeof(*f));
    f->waiters = w;
    if (w != NULL)
        w->flight = f;
    petrel_strlcpy(f->domain, domain, sizeof(f->domain));
    petrel_strlcpy(f->id, id, sizeof(f->id));
    snprintf(f->host, sizeof(f->host), "mta-sts.%s", domain);
    f->port = (long)from->cfg->mta_sts_port;
    f->ca_file = from->cfg->tls_ca_file != NULL ? petrel_strdup(from->cfg->tls_ca_file) : NULL;
    bool now_ok = nrunning < STS_FETCH_MAX;
    if (now_ok) {
        nrunning++;
        f->next = flights;
        flights = f;
    } else {
        *pending_tail = f;
        pending_tail = &f->next;
    }
    pthread_mutex_unlock(&lock);
    if (now_ok)
        start_fetch(f);
}

static void txt_done(const struct petrel_dns_result *res, void *ctx)
{
    struct smtp_job *job = ctx;
    if (smtp_dispatch_stopped())
        return;
    char id[SMTP_STS_ID_MAX] = "", one[SMTP_STS_ID_MAX];
    size_t found = 0;
    for (size_t i = 0; res->status == PETREL_DNS_OK && i < res->count; i++) {
        const struct petrel_dns_txt *txt = &res->records[i].txt;
        int r = smtp_sts_parse_txt((const char *)txt->data, txt->len, one);
        if (r != 0)
            found++;
        if (r > 0)
            memcpy(id, one, sizeof(id));
    }
    /* No record, or more than one (RFC 8461 3.1): no new policy. */
    if (found != 1 || id[0] == '\0') {
        proceed(job, true);
        return;
    }
    struct smtp_sts_policy p;
    bool stale = false;
    if (cache_get(job->msg->domain, id, &p, &stale)) {
        if (stale) {
            petrel_log(PETREL_LOG_INFO, "smtp_out",
                       "MTA-STS policy of %.250s: fetched again before it lapses",
                       job->msg->domain);
            fetch(NULL, job, id);
        }
        use(job, &p);
        proceed(job, false);
        return;
    }
    fetch(job, job, id);
}

void smtp_mtasts_begin(struct smtp_job *job, void (*cont)(struct smtp_job *job))
{
    job->tlsp->cont = cont;
    job->tlsp->sts = false;
    if (job->tlsp->explicit_policy || job->tlsp->tls_optional || !job->cfg->mta_sts) {
        cont(job);
        return;
    }
    char name[PETREL_DNS_NAME_MAX];
    int n = snprintf(name, sizeof(name), "_mta-sts.%s", job->msg->domain);
    if (n < 0 || (size_t)n >= sizeof(name)) {
        cont(job);
        return;
    }
    petrel_dns_lookup(PETREL_DNS_TXT, name, txt_done, job);
}
