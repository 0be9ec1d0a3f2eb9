/* The pop3 module's private interfaces: settings, the session, and the
 * parts of the protocol in their own files (login, the maildrop, message
 * output). */
#ifndef PETREL_POP3_H
#define PETREL_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/stats.h>
#include <petrel/storage.h>

#include "pop3_body.h"
#include "pop3_parse.h"

#define POP3_LOG "pop3"
/* Message bytes read per worker job while sending RETR or TOP, and the
 * session's output buffer for them (each byte may become two); lines of a
 * LIST or UIDL answer queued at once. The session fuzzer makes them small,
 * so that answers span many turns. */
#ifndef POP3_READ_BYTES
#define POP3_READ_BYTES (64u * 1024u)
#endif
#define POP3_OUT_BYTES (2u * POP3_READ_BYTES + 8u)
#ifndef POP3_LIST_BATCH
#define POP3_LIST_BATCH 512u
#endif
/* Commands a pipelining client may send while an answer is still going
 * out: they wait here, in order (RFC 2449 section 6.6). */
#define POP3_PENDING_MAX (64u * 1024u)

struct pop3_config {
    long long max_messages; /* shown of a maildrop: the oldest ones */
    char *expire;           /* CAPA EXPIRE: "" (not sent), "NEVER" or days; 0 enforced */
    long long login_delay;  /* LOGIN-DELAY seconds, enforced; 0: none */
};

extern const struct petrel_storage_ops *pop3_storage;
extern char pop3_hostname[256];

/* petrelctl stats: pop3.logins (sessions that reached TRANSACTION),
 * pop3.in_use (logins refused by the lock), pop3.login_delayed (by
 * LOGIN-DELAY), pop3.login_delay_forgotten (logins the full registry
 * forgot), pop3.retrieved (RETR and TOP answers sent whole),
 * pop3.retrieved_bytes (their octets), pop3.deleted (messages expunged at
 * QUIT). */
struct pop3_counters {
    struct petrel_counter *logins, *in_use, *login_delayed, *login_delay_forgotten, *retrieved,
        *retrieved_bytes, *deleted;
};
extern struct pop3_counters pop3_counters;

enum pop3_state {
    POP3_ST_AUTH,  /* AUTHORIZATION */
    POP3_ST_SASL,  /* an AUTH exchange, or a login being checked */
    POP3_ST_TRANS, /* TRANSACTION */
    POP3_ST_QUIT,  /* said goodbye */
};

/* What is being sent over several turns. */
enum pop3_stream_kind {
    POP3_STREAM_NONE,
    POP3_STREAM_LIST,
    POP3_STREAM_UIDL,
    POP3_STREAM_BODY,
};

/* One message of the maildrop, as taken at login. */
struct pop3_msg {
    uint32_t uid;
    bool deleted;
    bool retrieved; /* sent whole by RETR: with EXPIRE 0, expunged at QUIT */
    uint64_t size;
};

struct pop3_body_job;

struct pop3_session {
    const struct pop3_config *cfg;
    enum pop3_state state;
    unsigned errors;
    char user[POP3_USER_MAX + 1]; /* USER's name, then the logged-in user */
    bool locked;                  /* holds the maildrop (maildrop.c) */

    /* The maildrop: a snapshot taken at login. */
    struct petrel_mailbox *mbox;
    struct petrel_folder *folder;
    uint32_t uidvalidity;
    struct pop3_msg *msgs;
    uint32_t nmsgs;
    uint32_t live;       /* not deleted */
    uint64_t live_bytes; /* their size */

    /* An answer going out over several turns, and the commands that
     * arrived meanwhile. */
    enum pop3_stream_kind stream;
    uint32_t cursor; /* LIST, UIDL: the next message */
    struct pop3_body_job *body;
    struct petrel_buf pending;
    bool draining; /* running pending commands */
};

/* session.c */
void pop3_ok(struct petrel_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An -ERR that counts against the listener's max_errors (then closes). */
void pop3_error(struct petrel_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An answer that went out over several turns is complete: run the
 * commands that waited for it. */
void pop3_resume(struct petrel_conn *conn);

/* auth.c: USER, PASS and AUTH through the core's login flow. */
void pop3_cmd_user(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_pass(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_cmd_auth(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd);
bool pop3_plaintext_ok(struct petrel_conn *conn);

/* maildrop.c: the lock and LOGIN-DELAY (pop3_registry.h), the snapshot
 * and the TRANSACTION commands. */
void pop3_maildrop_open(struct petrel_conn *conn, struct pop3_session *s, const char *user);
void pop3_maildrop_close(struct pop3_session *s);
void pop3_transaction(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_list_more(struct petrel_conn *conn, struct pop3_session *s);
/* The message a command names, or NULL after an -ERR. */
struct pop3_msg *pop3_msg_get(struct petrel_conn *conn, struct pop3_session *s, uint32_t n);

/* retr.c: RETR and TOP. */
void pop3_cmd_retr(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd);
void pop3_body_more(struct petrel_conn *conn, struct pop3_session *s);
void pop3_body_free(struct pop3_session *s);

#endif
