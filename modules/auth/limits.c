/* Failure counting for the rate limits, per client IP and per account.
 * One mutex per table: the critical sections are a few compares, far
 * cheaper than the password hash every login pays anyway. */
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "auth_private.h"

#define PROBES 8 /* slots looked at per key: bounds the work per call */

void auth_limits_init(struct auth_limits *l, size_t size, unsigned max_failures,
                      long long window_ms, long long lockout_ms)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    l->nslots = 16;
    while (l->nslots < size)
        l->nslots *= 2;
    l->slots = petrel_calloc(l->nslots, sizeof(*l->slots));
    auth_limits_set(l, max_failures, window_ms, lockout_ms);
}

void auth_limits_set(struct auth_limits *l, unsigned max_failures, long long window_ms,
                     long long lockout_ms)
{
    pthread_mutex_lock(&l->lock);
    l->max_failures = max_failures;
    l->window_ms = window_ms;
    l->lockout_ms = lockout_ms;
    pthread_mutex_unlock(&l->lock);
}

void auth_limits_free(struct auth_limits *l)
{
    free(l->slots);
    pthread_mutex_destroy(&l->lock);
    memset(l, 0, sizeof(*l));
}

static size_t hash_key(const char *key)
{
    size_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static long long expiry(const struct auth_limit_slot *s)
{
    return s->locked_until_ms > s->window_end_ms ? s->locked_until_ms : s->window_end_ms;
}

/* The slot holding key, or NULL; with create, a free, expired or the
 * soonest-expiring slot among the probes, reset for key. */
static struct auth_limit_slot *slot_for(struct auth_limits *l, const char *key, long long now,
                                        bool create)
{
    size_t h = hash_key(key);
    struct auth_limit_slot *victim = NULL;
    for (size_t i = 0; i < PROBES; i++) {
        struct auth_limit_slot *s = &l->slots[(h + i) & (l->nslots - 1)];
        if (s->key[0] != '\0' && strcmp(s->key, key) == 0)
            return s;
        if (s->key[0] == '\0') {
            if (victim == NULL || victim->key[0] != '\0')
                victim = s; /* a free slot beats any used one */
        } else if (victim == NULL || (victim->key[0] != '\0' && expiry(s) < expiry(victim))) {
            victim = s;
        }
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    petrel_strlcpy(victim->key, key, sizeof(victim->key));
    victim->window_end_ms = now + l->window_ms;
    return victim;
}

bool auth_limits_locked(struct auth_limits *l, const char *key, long long now)
{
    pthread_mutex_lock(&l->lock);
    struct auth_limit_slot *s = l->max_failures ? slot_for(l, key, now, false) : NULL;
    bool locked = s != NULL && s->locked_until_ms > now;
    pthread_mutex_unlock(&l->lock);
    return locked;
}

bool auth_limits_fail(struct auth_limits *l, const char *key, long long now)
{
    pthread_mutex_lock(&l->lock);
    bool locks = false;
    if (l->max_failures != 0) {
        struct auth_limit_slot *s = slot_for(l, key, now, true);
        if (now >= s->window_end_ms && s->locked_until_ms <= now) {
            s->failures = 0; /* a new window */
            s->window_end_ms = now + l->window_ms;
        }
        if (++s->failures >= l->max_failures && s->locked_until_ms <= now) {
            s->locked_until_ms = now + l->lockout_ms;
            s->failures = 0;
            s->window_end_ms = s->locked_until_ms;
            locks = true;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return locks;
}

void auth_limits_clear(struct auth_limits *l, const char *key)
{
    pthread_mutex_lock(&l->lock);
    struct auth_limit_slot *s = slot_for(l, key, 0, false);
    if (s != NULL)
        memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&l->lock);
}
