/* The "auth" service: one call that decides a login, with the server's
 * policy around it (failure delay, lock-outs of the failing client address
 * per account and for all accounts, a slow-down of an account under
 * attack, logging and counters: docs/auth.md). Protocol modules decode the
 * client's SASL exchange (petrel/sasl.h), call authenticate() from a worker
 * thread, then wait delay_ms with petrel_conn_delay() before answering a
 * failure; RATELIMITED comes with no delay and is answered at once.
 *
 * Other modules (LDAP, say) supply users through the hook point
 * PETREL_AUTH_HOOK: its event is a struct petrel_auth_verify_event. A
 * handler returns PETREL_OK with event->user set (authenticated),
 * PETREL_DENY (wrong credentials), PETREL_DENY_SOFT (back-end down) or
 * PETREL_CONTINUE (not mine: the userdb decides). Handlers run on worker
 * threads and may block. */
#ifndef PETREL_AUTH_H
#define PETREL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PETREL_AUTH_SERVICE "auth"
#define PETREL_AUTH_VERSION 1u
#define PETREL_AUTH_HOOK "auth.verify"

#define PETREL_AUTH_USER_MAX 254

enum petrel_auth_status {
    PETREL_AUTH_OK = 0,
    PETREL_AUTH_FAILED,      /* wrong credentials, unknown or disabled user */
    PETREL_AUTH_TEMPFAIL,    /* try again later (back-end down) */
    PETREL_AUTH_RATELIMITED, /* the client address is locked out: refused unchecked */
};

struct petrel_auth_request {
    const char *service;   /* "imap", "pop3", "smtp" */
    const char *client_ip; /* petrel_conn_peer() */
    bool tls;
    const char *mechanism; /* "PLAIN", "LOGIN" */
    const char *authzid;   /* "" or NULL: none; else must name the same user */
    const char *authcid;
    const char *password; /* never logged */
    void *reserved[4];
};

struct petrel_auth_result {
    enum petrel_auth_status status;
    char user[PETREL_AUTH_USER_MAX + 1]; /* OK: the canonical user */
    /* Wait this long before answering (FAILED only; 0 otherwise, so that a
     * lock-out is answered at once): petrel_conn_delay(). At most 60000,
     * the longest petrel_conn_delay() holds; should it still refuse, close
     * the connection rather than answer the failure at once. */
    unsigned delay_ms;
    char reason[160]; /* for the protocol's log, never for the client */
};

/* The PETREL_AUTH_HOOK event. */
struct petrel_auth_verify_event {
    const struct petrel_auth_request *request;
    const char *user; /* authcid normalised: "user@domain", lower case */
    /* A handler that returns PETREL_OK writes the canonical user here
     * (left empty: user above). */
    char user_r[PETREL_AUTH_USER_MAX + 1];
};

struct petrel_auth_ops {
    size_t size; /* sizeof(struct petrel_auth_ops) of the provider */
    /* Blocking (password hashing is slow on purpose): worker threads only. */
    void (*authenticate)(const struct petrel_auth_request *request,
                         struct petrel_auth_result *result);
    /* Whether a plaintext mechanism (PLAIN, LOGIN) may be used on a
     * connection without TLS (setting plaintext_without_tls, default no).
     * Cheap and non-blocking: fine on an I/O thread. */
    bool (*plaintext_allowed)(bool tls);
};

#endif
