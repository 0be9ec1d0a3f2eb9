/* auth: private to the module. */
#ifndef PETREL_AUTH_PRIVATE_H
#define PETREL_AUTH_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <petrel/auth.h>
#include <petrel/userdb.h>

/* --- limits.c: failure counting per key (client IP or account) --- */

/* A fixed-size table: memory is bounded whatever an attacker sends. A key
 * is remembered for its failure window (or lockout); when the table is
 * full the entry closest to expiry among the probed slots is replaced,
 * but never one that is locked out or has attempts in flight: when all
 * probed slots are such, a new key is refused (fail closed). */
struct auth_limit_slot {
    char key[PETREL_AUTH_USER_MAX + 1];
    unsigned failures;
    unsigned pending;        /* attempts reserved and not settled yet */
    long long window_end_ms; /* failures count within [.., window_end) */
    long long locked_until_ms;
};

struct auth_limits {
    pthread_mutex_t lock;
    struct auth_limit_slot *slots;
    size_t nslots;         /* power of two */
    unsigned max_failures; /* 0: no limit */
    long long window_ms, lockout_ms;
};

void auth_limits_init(struct auth_limits *l, size_t size, unsigned max_failures,
                      long long window_ms, long long lockout_ms);
void auth_limits_set(struct auth_limits *l, unsigned max_failures, long long window_ms,
                     long long lockout_ms);
void auth_limits_free(struct auth_limits *l);
/* Whether key is locked out at now. */
bool auth_limits_locked(struct auth_limits *l, const char *key, long long now_ms);
/* Count one failure; true when this failure locks the key out. */
bool auth_limits_fail(struct auth_limits *l, const char *key, long long now_ms);
/* Forget key's failures (after a successful login of that account). */
void auth_limits_clear(struct auth_limits *l, const char *key);
/* Before an attempt: false if key is locked out, if its failures and the
 * attempts in flight reach the limit, or if the table has no room for it
 * (then the attempt is refused as rate-limited). True reserves the
 * attempt, atomically with the check; settle it afterwards. */
bool auth_limits_reserve(struct auth_limits *l, const char *key, long long now_ms);
/* After a reserved attempt: release it, counting a failure if failed
 * (true when that starts a lock-out). A success is refunded. */
bool auth_limits_settle(struct auth_limits *l, const char *key, long long now_ms, bool failed);
/* The per-IP key of a client address: an IPv4 address as it is (also when
 * IPv4-mapped), an IPv6 address as its /64 ("2001:db8::/64"). */
void auth_limits_ip_key(const char *ip, char *out, size_t size);

/* --- authenticate.c: the decision --- */

struct auth_policy {
    long long failure_delay_ms;
    bool plaintext_without_tls;
};

struct auth_state {
    const struct petrel_userdb_ops *userdb;
    char primary[256];
    char *dummy_hash; /* verified against for unknown users: same cost */
    struct auth_limits per_ip, per_account;
    _Atomic long long failure_delay_ms;
    _Atomic bool plaintext_without_tls;
};

extern struct auth_state auth_state;

void auth_authenticate(const struct petrel_auth_request *req, struct petrel_auth_result *r);
long long auth_now_ms(void);

#endif
