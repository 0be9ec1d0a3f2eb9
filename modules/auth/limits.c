/* The bounded tables behind the login policy (guard.c): failure counting
 * with lock-outs, a plain failure counter and a set of recent keys. One
 * mutex per table: the critical sections are a few compares, far cheaper
 * than the password hash every login pays anyway. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <petrel/mem.h>

#include "auth_private.h"

#define PROBES 8 /* slots looked at per key: bounds the work per call */

void auth_limits_init(struct auth_limits *l, size_t size)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    l->nslots = 16;
    while (l->nslots < size)
        l->nslots *= 2;
    l->slots = petrel_calloc(l->nslots, sizeof(*l->slots));
    /* A secret seed: a client cannot pick keys that land on the slots
     * another key probes, to pin them and make that key fail closed. */
    if (getrandom(&l->seed, sizeof(l->seed), GRND_NONBLOCK) != (ssize_t)sizeof(l->seed))
        l->seed = (size_t)time(NULL) ^ (size_t)(uintptr_t)l;
}

void auth_limits_free(struct auth_limits *l)
{
    free(l->slots);
    pthread_mutex_destroy(&l->lock);
    memset(l, 0, sizeof(*l));
}

static size_t hash_key(const struct auth_limits *l, const char *key)
{
    size_t h = 1469598103934665603ULL ^ l->seed;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static long long expiry(const struct auth_limit_slot *s)
{
    return s->locked_until_ms > s->window_end_ms ? s->locked_until_ms : s->window_end_ms;
}

/* A slot that must stay: its key is locked out, or has attempts in flight.
 * Replacing it would undo a lock-out (an attacker filling the table with
 * other keys) or lose a reservation. */
static bool pinned(const struct auth_limit_slot *s, long long now)
{
    return s->key[0] != '\0' && (s->locked_until_ms > now || s->pending > 0);
}

/* The slot holding key, or NULL; with create, a free slot, else the
 * soonest-expiring one among the probes that is not pinned, reset for
 * key. NULL also when every probed slot is pinned: the caller fails
 * closed. */
static struct auth_limit_slot *slot_for(struct auth_limits *l, const struct auth_limit_params *p,
                                        const char *key, long long now, bool create)
{
    size_t h = hash_key(l, key);
    struct auth_limit_slot *victim = NULL;
    for (size_t i = 0; i < PROBES; i++) {
        struct auth_limit_slot *s = &l->slots[(h + i) & (l->nslots - 1)];
        if (s->key[0] != '\0' && strcmp(s->key, key) == 0)
            return s;
        if (s->key[0] == '\0') {
            if (victim == NULL || victim->key[0] != '\0')
                victim = s; /* a free slot beats any used one */
        } else if (!pinned(s, now) &&
                   (victim == NULL || (victim->key[0] != '\0' && expiry(s) < expiry(victim)))) {
            victim = s;
        }
    }
    if (!create || victim == NULL)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    petrel_strlcpy(victim->key, key, sizeof(victim->key));
    victim->window_end_ms = now + p->window_ms;
    return victim;
}

bool auth_limits_locked(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                        long long now)
{
    pthread_mutex_lock(&l->lock);
    struct auth_limit_slot *s = p->max_failures ? slot_for(l, p, key, now, false) : NULL;
    bool locked = s != NULL && s->locked_until_ms > now;
    pthread_mutex_unlock(&l->lock);
    return locked;
}

/* Start a new window if the old one has passed (and no lock-out runs). */
static void roll_window(struct auth_limits *l, const struct auth_limit_params *p,
                        struct auth_limit_slot *s, long long now)
{
    if (now >= s->window_end_ms && s->locked_until_ms <= now) {
        s->failures = 0;
        s->window_end_ms = now + p->window_ms;
    }
}

/* One failure on s; true when it starts a lock-out. */
static bool count_failure(struct auth_limits *l, const struct auth_limit_params *p,
                          struct auth_limit_slot *s, long long now)
{
    roll_window(l, p, s, now);
    if (++s->failures >= p->max_failures && s->locked_until_ms <= now) {
        s->locked_until_ms = now + p->lockout_ms;
        s->failures = 0;
        s->window_end_ms = s->locked_until_ms;
        return true;
    }
    return false;
}

bool auth_limits_fail(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                      long long now)
{
    pthread_mutex_lock(&l->lock);
    bool locks = false;
    if (p->max_failures != 0) {
        struct auth_limit_slot *s = slot_for(l, p, key, now, true);
        locks = s != NULL && count_failure(l, p, s, now);
    }
    pthread_mutex_unlock(&l->lock);
    return locks;
}

bool auth_limits_reserve(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                         long long now)
{
    pthread_mutex_lock(&l->lock);
    bool ok = true;
    if (p->max_failures != 0) {
        struct auth_limit_slot *s = slot_for(l, p, key, now, true);
        if (s != NULL)
            roll_window(l, p, s, now);
        /* Attempts in flight count as failures until they are settled:
         * concurrent attempts cannot add up to more than the limit. */
        ok = s != NULL && s->locked_until_ms <= now && s->failures + s->pending < p->max_failures;
        if (ok)
            s->pending++;
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool auth_limits_settle(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                        long long now, bool failed)
{
    pthread_mutex_lock(&l->lock);
    bool locks = false;
    /* The limit may have been switched on or off by a reload since the
     * reservation: look the slot up whatever max_failures is now. */
    struct auth_limit_slot *s = slot_for(l, p, key, now, false);
    if (s != NULL && s->pending > 0)
        s->pending--;
    if (failed && p->max_failures != 0) {
        if (s == NULL)
            s = slot_for(l, p, key, now, true);
        locks = s != NULL && count_failure(l, p, s, now);
    }
    pthread_mutex_unlock(&l->lock);
    return locks;
}

unsigned auth_limits_count(struct auth_limits *l, const struct auth_limit_params *p,
                           const char *key, long long now)
{
    pthread_mutex_lock(&l->lock);
    unsigned n = 0;
    struct auth_limit_slot *s = p->max_failures ? slot_for(l, p, key, now, true) : NULL;
    if (s != NULL) {
        roll_window(l, p, s, now);
        if (s->failures < UINT_MAX)
            s->failures++;
        n = s->failures;
    }
    pthread_mutex_unlock(&l->lock);
    return n;
}

void auth_limits_remember(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                          long long now)
{
    pthread_mutex_lock(&l->lock);
    struct auth_limit_slot *s = p->max_failures ? slot_for(l, p, key, now, true) : NULL;
    if (s != NULL)
        s->window_end_ms = now + p->window_ms;
    pthread_mutex_unlock(&l->lock);
}

bool auth_limits_known(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                       long long now)
{
    pthread_mutex_lock(&l->lock);
    struct auth_limit_slot *s = p->max_failures ? slot_for(l, p, key, now, false) : NULL;
    bool known = s != NULL && s->window_end_ms > now;
    pthread_mutex_unlock(&l->lock);
    return known;
}

void auth_limits_clear(struct auth_limits *l, const char *key)
{
    pthread_mutex_lock(&l->lock);
    struct auth_limit_slot *s = slot_for(l, NULL, key, 0, false); /* no create: no params */
    if (s != NULL) {
        unsigned pending = s->pending; /* other attempts still in flight */
        if (pending > 0) {
            s->failures = 0;
            s->locked_until_ms = 0;
        } else {
            memset(s, 0, sizeof(*s));
        }
    }
    pthread_mutex_unlock(&l->lock);
}

/* The address of ip or of an ip key ("2001:db8::/64"), IPv4-mapped as
 * IPv4: a[0..3] (AF_INET) or a[0..15]; 0 if it is neither. */
static int parse_source(const char *ip, unsigned char a[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];
    const char *slash = strchr(ip, '/');
    size_t n = slash != NULL ? (size_t)(slash - ip) : strlen(ip);
    if (n >= sizeof(text))
        return 0;
    memcpy(text, ip, n);
    text[n] = '\0';
    if (strchr(text, ':') == NULL)
        return inet_pton(AF_INET, text, a) == 1 ? AF_INET : 0;
    if (inet_pton(AF_INET6, text, a) != 1)
        return 0;
    if (memcmp(a, mapped, sizeof(mapped)) != 0)
        return AF_INET6;
    memmove(a, a + 12, 4);
    return AF_INET;
}

void auth_limits_net_key(const char *ip, char *out, size_t size)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    int af = parse_source(ip, a);
    if (af == 0) {
        petrel_strlcpy(out, ip, size);
        return;
    }
    /* An IPv4 /24 or an IPv6 /48: what one holder commonly gets. */
    if (af == AF_INET)
        a[3] = 0;
    else
        memset(a + 6, 0, 10);
    if (inet_ntop(af, a, text, sizeof(text)) == NULL ||
        !petrel_snprintf(out, size, "%s/%d", text, af == AF_INET ? 24 : 48))
        petrel_strlcpy(out, ip, size);
}

void auth_limits_ip_key(const char *ip, char *out, size_t size)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    if (strchr(ip, ':') == NULL || inet_pton(AF_INET6, ip, a) != 1) {
        petrel_strlcpy(out, ip, size); /* IPv4: per address */
        return;
    }
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, sizeof(mapped)) == 0) {
        if (inet_ntop(AF_INET, a + 12, text, sizeof(text)) != NULL)
            petrel_strlcpy(out, text, size);
        else
            petrel_strlcpy(out, ip, size);
        return;
    }
    /* One client usually holds a whole /64: count it as one. */
    memset(a + 8, 0, 8);
    if (inet_ntop(AF_INET6, a, text, sizeof(text)) == NULL ||
        !petrel_snprintf(out, size, "%s/64", text))
        petrel_strlcpy(out, ip, size);
}
