/* Queue entries on disk. A queued message is two files under the queue
 * directory: data/ID holds the message exactly as it will be delivered
 * (written once, synced), and active/ID (or hold/ID) its envelope, a small
 * text file replaced as a whole (tmp/ID, sync, rename) when recipients
 * change state. An envelope is what makes a message queued: a data file
 * without one is a message that was never acknowledged.
 *
 * Read by the module's queue commands too (admin.c: petrelctl queue
 * list/show/..., in petrelctl itself when no daemon runs). */
#ifndef PETREL_QUEUE_ENVELOPE_H
#define PETREL_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

#define QUEUE_ID_LEN 20
#define QUEUE_ENVELOPE_MAX (4u << 20) /* bytes of one envelope file */
#define QUEUE_MAX_RCPTS 10000

/* Recipient states. */
#define RCPT_EXPAND 'E'    /* as received: aliases and forwards not looked up yet */
#define RCPT_PENDING 'P'   /* final recipient, not tried yet */
#define RCPT_DEFERRED 'T'  /* a temporary failure: retried later */
#define RCPT_DELIVERED 'D' /* done */
#define RCPT_FAILED 'F'    /* permanent failure, the sender not told yet */
#define RCPT_REPORTED 'B'  /* permanent failure, reported (or nobody to report to) */
#define RCPT_SUCCESS 'S'   /* delivered, a success notification still owed */

#define ROUTE_NONE '-'
#define ROUTE_LOCAL 'L'
#define ROUTE_REMOTE 'R'

/* What expansion learned of a local account, for delivery in the same
 * pass (one userdb lookup per recipient, not one per step). In memory
 * only, never written: a later attempt looks the account up again. */
struct queue_account {
    bool known;
    long long quota_bytes, quota_messages; /* 0 = no limit */
};

struct queue_rcpt {
    char state, route;
    unsigned notify; /* enum petrel_dsn_notify */
    char *address;   /* final recipient (or, in state E, as received) */
    char *original;  /* the RCPT TO address it came from */
    char *dsn_orcpt; /* ORCPT parameter "type;address", or NULL */
    char *reason;    /* last status: "452 4.2.2 mailbox full", or NULL */
    /* Route R: where its last attempt went ("mx1.example.org[192.0.2.1]:25",
     * or the domain when it went nowhere), or NULL before any. */
    char *next_hop;
    /* Route R: reached through a local alias or forward (not given as
     * it is), so its copy may go out with an SRS sender. */
    bool forwarded;
    /* Route L, this pass only: see struct queue_account. */
    struct queue_account account;
};

struct queue_envelope {
    char id[QUEUE_ID_LEN + 1];
    int64_t arrival, next_attempt;
    unsigned attempts;
    uint64_t size; /* bytes of the data file */
    char *from;    /* "" = null sender */
    char *helo, *client_ip, *protocol, *auth_user, *tls_cipher, *tls_version, *envid;
    bool submission, smtputf8;
    bool trusted;      /* logged in or relay_networks; files before it: auth counts */
    bool delay_warned; /* the sender was told delivery is delayed */
    bool requiretls;   /* RFC 8689: relay only over verified TLS */
    int body, ret;     /* enum petrel_body, enum petrel_dsn_ret */
    struct queue_rcpt *rcpts;
    size_t nrcpts, cap;
};

void queue_envelope_init(struct queue_envelope *env);
void queue_envelope_free(struct queue_envelope *env);
/* Append a recipient (strings copied; NULL allowed for the optional ones).
 * Returns it. */
struct queue_rcpt *queue_envelope_add(struct queue_envelope *env, char state, char route,
                                      unsigned notify, const char *address, const char *original,
                                      const char *dsn_orcpt);
void queue_rcpt_set_reason(struct queue_rcpt *r, const char *reason);
void queue_rcpt_set_next_hop(struct queue_rcpt *r, const char *next_hop);
/* Recipients in a state that still needs work (E, P, T), and in F/S. */
size_t queue_envelope_open_count(const struct queue_envelope *env);

bool queue_envelope_format(const struct queue_envelope *env, struct petrel_buf *out);
/* False with *error_r (static) on anything malformed. */
bool queue_envelope_parse(const char *text, size_t len, struct queue_envelope *env,
                          const char **error_r);

/* A fresh queue id: 20 characters [0-9A-V], time ordered then random. */
void queue_id_new(char out[QUEUE_ID_LEN + 1]);
bool queue_id_valid(const char *id);

/* "<root>/<sub>/<id>" into out; false if it does not fit. */
bool queue_path(char *out, size_t size, const char *root, const char *sub, const char *id);
/* Read an envelope file. 0, or -1 with errno (ENOENT: gone) and
 * *error_r for a malformed file (errno EINVAL). */
int queue_envelope_read(const char *path, struct queue_envelope *env, const char **error_r);
/* Write env as <root>/<sub>/<id> atomically: tmp/<id>, fsync when
 * do_sync, rename, and the directory synced when do_sync. 0 or -1 with
 * errno. */
int queue_envelope_write(const char *root, const char *sub, const struct queue_envelope *env,
                         bool do_sync);
/* fsync a directory. 0 or -1. */
int queue_sync_dir(const char *root, const char *sub);

#endif
