/* The resolver's cache, one for the process and shared by every loop: a
 * hash table of (type, name) with a least-recently-used list, bounded by
 * dnr.cache_size entries, behind one mutex (a lookup holds it for a hash
 * probe and a reference count, never across I/O). Entries expire with the
 * answer's TTL, negative answers with their RFC 2308 TTL, both capped. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "dns_private.h"

#define BUCKETS_MAX (1u << 20)

struct entry {
    struct entry *hnext;       /* in its bucket */
    struct entry *prev, *next; /* recency: head is the latest used */
    uint64_t hash;
    int64_t expires_ms;
    struct dns_answer *answer;
    uint16_t type;
    char name[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;
static size_t nbuckets, count, max_entries = 10000;
static struct entry *head, *tail;

static uint64_t hash_of(uint16_t type, const char *name)
{
    uint64_t h = 14695981039346656037ull ^ type; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static void lru_unlink(struct entry *e)
{
    *(e->prev != NULL ? &e->prev->next : &head) = e->next;
    *(e->next != NULL ? &e->next->prev : &tail) = e->prev;
}

static void lru_push(struct entry *e)
{
    e->prev = NULL;
    e->next = head;
    *(head != NULL ? &head->prev : &tail) = e;
    head = e;
}

static struct entry **slot_of(uint64_t hash, uint16_t type, const char *name)
{
    struct entry **pp = &buckets[hash & (nbuckets - 1)];
    while (*pp != NULL &&
           ((*pp)->hash != hash || (*pp)->type != type || strcmp((*pp)->name, name) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void drop(struct entry *e)
{
    struct entry **pp = slot_of(e->hash, e->type, e->name);
    *pp = e->hnext;
    lru_unlink(e);
    petrel_dns_answer_unref(e->answer);
    free(e);
    count--;
}

/* Rebuild the table for the current bound. */
static void resize(void)
{
    size_t n = 16;
    while (n < max_entries && n < BUCKETS_MAX)
        n *= 2;
    if (n == nbuckets)
        return;
    struct entry **old = buckets;
    size_t oldn = nbuckets;
    buckets = petrel_calloc(n, sizeof(*buckets));
    nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (struct entry *e = old[i], *next; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
        }
    }
    free(old);
}

void petrel_dns_cache_configure(size_t max)
{
    pthread_mutex_lock(&lock);
    max_entries = max;
    while (count > max_entries)
        drop(tail);
    if (buckets != NULL)
        resize();
    pthread_mutex_unlock(&lock);
}

uint32_t petrel_dns_cache_ttl(const struct dns_answer *a)
{
    switch (petrel_dns_answer_status(a)) {
    case PETREL_DNS_OK:
        return a->ttl < DNS_CACHE_MAX_TTL ? a->ttl : DNS_CACHE_MAX_TTL;
    case PETREL_DNS_NODATA:
    case PETREL_DNS_NXDOMAIN:
        /* RFC 2308 s.5: without an SOA there is no negative TTL. */
        if (!a->has_soa)
            return 0;
        return a->ttl < DNS_CACHE_MAX_NEG_TTL ? a->ttl : DNS_CACHE_MAX_NEG_TTL;
    default:
        return 0;
    }
}

struct dns_answer *petrel_dns_cache_get(uint16_t type, const char *name, int64_t now_ms,
                                        uint32_t *ttl_left_r)
{
    struct dns_answer *a = NULL;
    pthread_mutex_lock(&lock);
    if (buckets != NULL) {
        struct entry *e = *slot_of(hash_of(type, name), type, name);
        if (e != NULL && e->expires_ms <= now_ms) {
            drop(e);
        } else if (e != NULL) {
            lru_unlink(e);
            lru_push(e);
            a = petrel_dns_answer_ref(e->answer);
            /* Rounded up: an entry still served has at least a second. */
            *ttl_left_r = (uint32_t)((e->expires_ms - now_ms + 999) / 1000);
        }
    }
    pthread_mutex_unlock(&lock);
    return a;
}

void petrel_dns_cache_put(uint16_t type, const char *name, struct dns_answer *a, int64_t now_ms)
{
    uint32_t ttl = petrel_dns_cache_ttl(a);
    if (ttl == 0)
        return;
    uint64_t hash = hash_of(type, name);
    pthread_mutex_lock(&lock);
    if (max_entries == 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    if (buckets == NULL)
        resize();
    struct entry **pp = slot_of(hash, type, name);
    if (*pp != NULL)
        drop(*pp);
    while (count >= max_entries)
        drop(tail);
    size_t n = strlen(name) + 1;
    struct entry *e = petrel_malloc(sizeof(*e) + n);
    memcpy(e->name, name, n);
    e->hash = hash;
    e->type = type;
    e->expires_ms = now_ms + (int64_t)ttl * 1000;
    e->answer = petrel_dns_answer_ref(a);
    pp = &buckets[hash & (nbuckets - 1)];
    e->hnext = *pp;
    *pp = e;
    lru_push(e);
    count++;
    pthread_mutex_unlock(&lock);
}

size_t petrel_dns_cache_count(void)
{
    pthread_mutex_lock(&lock);
    size_t n = count;
    pthread_mutex_unlock(&lock);
    return n;
}

void petrel_dns_cache_flush(void)
{
    pthread_mutex_lock(&lock);
    while (tail != NULL)
        drop(tail);
    pthread_mutex_unlock(&lock);
}

void petrel_dns_cache_free(void)
{
    petrel_dns_cache_flush();
    pthread_mutex_lock(&lock);
    free(buckets);
    buckets = NULL;
    nbuckets = 0;
    pthread_mutex_unlock(&lock);
}
