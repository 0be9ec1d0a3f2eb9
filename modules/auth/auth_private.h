/* auth: private to the module. */
#ifndef PETREL_AUTH_PRIVATE_H
#define PETREL_AUTH_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <petrel/auth.h>
#include <petrel/module.h>
#include <petrel/userdb.h>

/* --- username.c --- */

/* "user" becomes user@primary, lower case (ASCII), into out (size bytes);
 * false if it is not an address: empty local part or domain, a control
 * or space, longer than PETREL_AUTH_USER_MAX. */
bool auth_username_canonical(const char *in, const char *primary, char *out, size_t size);

/* --- limits.c: bounded tables keyed by text --- */

/* The longest per-IP key (auth_limits_ip_key): an address or a /64. */
#define AUTH_IP_KEY_MAX 64
/* The longest key: "user ipkey" for an (account, source) pair. */
#define AUTH_LIMIT_KEY_MAX (PETREL_AUTH_USER_MAX + 1 + AUTH_IP_KEY_MAX)

/* A fixed-size table: memory is bounded whatever an attacker sends. A key
 * is remembered for its failure window (or lockout); when the table is
 * full the entry closest to expiry among the probed slots is replaced,
 * but never one that is locked out or has attempts in flight: when all
 * probed slots are such, a new key is refused (fail closed). */
struct auth_limit_slot {
    char key[AUTH_LIMIT_KEY_MAX + 1];
    unsigned failures;
    unsigned pending;        /* attempts reserved and not settled yet */
    long long window_end_ms; /* failures count within [.., window_end) */
    long long locked_until_ms;
};

struct auth_limits {
    pthread_mutex_t lock;
    struct auth_limit_slot *slots;
    size_t nslots; /* power of two */
    size_t seed;   /* of the hash: secret, so slots cannot be aimed at */
};

/* What a table enforces: settings, so every call gets them from the
 * caller's configuration generation; the table keeps only counts. */
struct auth_limit_params {
    unsigned max_failures; /* 0: no limit (the table is switched off) */
    long long window_ms, lockout_ms;
};

void auth_limits_init(struct auth_limits *l, size_t size);
void auth_limits_free(struct auth_limits *l);

/* As a lock-out table: */
/* Whether key is locked out at now. */
bool auth_limits_locked(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                        long long now_ms);
/* Count one failure; true when this failure locks the key out. */
bool auth_limits_fail(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                      long long now_ms);
/* Forget key's failures (after a successful login of that account). */
void auth_limits_clear(struct auth_limits *l, const char *key);
/* Before an attempt: false if key is locked out, if its failures and the
 * attempts in flight reach the limit, or if the table has no room for it
 * (then the attempt is refused as rate-limited). True reserves the
 * attempt, atomically with the check; settle it afterwards. */
bool auth_limits_reserve(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                         long long now_ms);
/* After a reserved attempt: release it, counting a failure if failed
 * (true when that starts a lock-out). A success is refunded. */
bool auth_limits_settle(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                        long long now_ms, bool failed);

/* As a counter that never locks (max_failures only switches it on): count
 * one failure of key and return the failures within the current window,
 * this one included; 0 when switched off. Its slots are never pinned, so
 * it always finds room (the entry closest to expiry is forgotten). */
unsigned auth_limits_count(struct auth_limits *l, const struct auth_limit_params *p,
                           const char *key, long long now_ms);

/* As a set of recent keys (max_failures only switches it on): a key is
 * known for window_ms after it was last remembered. When full, the key
 * remembered longest ago among the probed slots is forgotten. */
void auth_limits_remember(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                          long long now_ms);
bool auth_limits_known(struct auth_limits *l, const struct auth_limit_params *p, const char *key,
                       long long now_ms);

/* The per-IP key of a client address: an IPv4 address as it is (also when
 * IPv4-mapped), an IPv6 address as its /64 ("2001:db8::/64"). size is
 * AUTH_IP_KEY_MAX + 1. */
void auth_limits_ip_key(const char *ip, char *out, size_t size);
/* The network block of a client address or of a per-IP key: an IPv4 /24
 * ("192.0.2.0/24", also when IPv4-mapped) or an IPv6 /48
 * ("2001:db8:1::/48"); anything else as it is. size is AUTH_IP_KEY_MAX + 1. */
void auth_limits_net_key(const char *ip, char *out, size_t size);

/* --- guard.c: the lock-out model (docs/auth.md) --- */

/* The longest delay a failure is answered with: petrel_conn_delay() holds
 * a connection at most this long (petrel/conn.h) and refuses more, and a
 * refused delay must not turn into an answer at once. */
#define AUTH_DELAY_MAX_MS 60000

/* Lock-outs penalise the source of the failures, never the account as a
 * whole: a source is locked for every account after max_per_ip failures,
 * an (account, source) pair after max_per_pair, and a source's network
 * block (IPv4 /24, IPv6 /48) as a whole after max_per_net failures from
 * all of its sources: one holder of many sources can then pin only so
 * many slots of the bounded tables, never enough to make them fail
 * closed for everyone else. Failures of one
 * account from all sources are only counted: past account_slow_after, each
 * further failure from a source that has not logged in to that account
 * within remember_ms is answered with a growing delay (failure_delay
 * doubled per failure, capped at max_failure_delay and at
 * AUTH_DELAY_MAX_MS); nothing refuses an
 * account because of failures from other sources. */
struct auth_guard_config {
    unsigned max_per_ip, max_per_pair, max_per_net, account_slow_after; /* 0: off */
    long long window_ms, lockout_ms, remember_ms;
    long long failure_delay_ms, max_failure_delay_ms;
};

/* The tables only: their limits come with each call, from the
 * configuration generation the login holds (derived by module.c). */
struct auth_guard {
    struct auth_limits per_ip;      /* lock-outs per source */
    struct auth_limits per_pair;    /* lock-outs per (account, source) */
    struct auth_limits per_net;     /* lock-outs per network block of sources */
    struct auth_limits per_account; /* failures per account: only counted */
    struct auth_limits known;       /* (account, source) pairs that logged in */
};

enum auth_guard_lock {
    AUTH_GUARD_OPEN = 0,
    AUTH_GUARD_SOURCE_LOCKED, /* the source is locked out (or no room) */
    AUTH_GUARD_PAIR_LOCKED,   /* the source is locked out for this account (or no room) */
    AUTH_GUARD_NET_LOCKED,    /* the source's network block is locked out (or no room) */
};

/* What settling an attempt did: the delay to answer with, and the events
 * to log (each happens once per lock-out or window). */
struct auth_guard_outcome {
    unsigned delay_ms;
    bool source_locked;   /* this failure locked the source out */
    bool pair_locked;     /* this failure locked the source out for the account */
    bool net_locked;      /* this failure locked the source's network block out */
    bool account_slowing; /* this failure took the account past account_slow_after */
    bool slowed;          /* this failure's delay was grown */
};

void auth_guard_init(struct auth_guard *g, size_t size);
void auth_guard_free(struct auth_guard *g);
/* Before checking a password: refused (nothing reserved) or OPEN, with
 * the attempt reserved against the network, the source and the pair at
 * once. The network comes first: a locked-out block gets no new slot. */
enum auth_guard_lock auth_guard_reserve(struct auth_guard *g, const struct auth_guard_config *c,
                                        const char *user, const char *ipkey, long long now_ms);
/* After a reserved attempt that ended in st: a failure is counted
 * everywhere, a success refunded, clears the pair's failures and makes the
 * pair known-good, a temporary failure is refunded. */
void auth_guard_settle(struct auth_guard *g, const struct auth_guard_config *c, const char *user,
                       const char *ipkey, long long now_ms, enum petrel_auth_status st,
                       struct auth_guard_outcome *out);
/* A failure without an account (an invalid user name): the network and
 * the source (not the source once its network is locked out). */
void auth_guard_fail_source(struct auth_guard *g, const struct auth_guard_config *c,
                            const char *ipkey, long long now_ms, struct auth_guard_outcome *out);

/* --- authenticate.c: the decision --- */

struct auth_state {
    struct petrel_ctx *ctx; /* settings: petrel_ctx_config_ref, never a copy */
    const struct petrel_userdb_ops *userdb;
    char primary[256];
    char *dummy_hash; /* verified against for unknown users: same cost */
    struct auth_guard guard;
};

extern struct auth_state auth_state;

void auth_authenticate(const struct petrel_auth_request *req, struct petrel_auth_result *r);
long long auth_now_ms(void);

#endif
