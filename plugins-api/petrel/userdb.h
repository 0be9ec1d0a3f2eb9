/* The "userdb" service: the account database behind delivery and login.
 * userdb_file provides it from a text file; another module (LDAP, SQL) can
 * register the same table instead. Every call is blocking and thread-safe:
 * call it from a worker thread (petrel_conn_submit), never an I/O thread.
 * Results belong to the caller and are freed with entry_free. */
#ifndef PETREL_USERDB_H
#define PETREL_USERDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PETREL_USERDB_SERVICE "userdb"
#define PETREL_USERDB_VERSION 1u

/* Longest address, RFC 5321 path limit less the brackets. */
#define PETREL_USERDB_ADDRESS_MAX 254

enum petrel_userdb_kind {
    PETREL_USERDB_ACCOUNT = 1, /* a mailbox */
    PETREL_USERDB_ALIAS,       /* an address that only delivers elsewhere */
};

/* Lookup outcomes; errors are temporary (a back-end that is down), never
 * "not found". */
#define PETREL_USERDB_FOUND 1
#define PETREL_USERDB_NOT_FOUND 0
#define PETREL_USERDB_TEMPFAIL (-1)

struct petrel_userdb_entry {
    enum petrel_userdb_kind kind;
    char *address;            /* canonical, lower case: the account or the alias */
    long long quota_bytes;    /* account: 0 = no limit */
    long long quota_messages; /* account: 0 = no limit */
    bool disabled;            /* account: may not log in */
    bool keep;                /* account with forwarding: also deliver a copy */
    bool catchall;            /* alias made up from the domain's catch-all */
    char **targets;           /* alias targets, or the account's forwarding; NULL-terminated */
    size_t ntargets;
    char *hash; /* password(): the crypt(3) hash; NULL from lookup() */
    void *reserved[4];
};

struct petrel_userdb_ops {
    size_t size; /* sizeof(struct petrel_userdb_ops) of the provider: fields grow at the end */
    /* Whether mail for this domain is ours. */
    bool (*domain_is_local)(const char *domain);
    /* Delivery view of an address ("user" alone means user@primary domain):
     * an account (with its forwarding) or an alias; an unknown local part
     * of a local domain with a catch-all gives an alias entry with
     * catchall set. PETREL_USERDB_FOUND with *entry_r, NOT_FOUND, or
     * TEMPFAIL with error_r (a static string). */
    int (*lookup)(const char *address, struct petrel_userdb_entry **entry_r, const char **error_r);
    /* Login view: accounts only (no aliases, no catch-all), with hash set. */
    int (*password)(const char *user, struct petrel_userdb_entry **entry_r, const char **error_r);
    void (*entry_free)(struct petrel_userdb_entry *entry);
};

#endif
