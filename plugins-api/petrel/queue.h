/* The "queue" service and the mail hooks. The processing module provides
 * the service: protocol modules (smtp_in, later rpop) hand it a message
 * with its envelope; it adds the trace headers, expands aliases and
 * forwards, delivers local recipients into the store or keeps the message
 * in its durable queue, and answers with one reply for the client. A
 * reply that accepts the message is given only once the message is on
 * disk and synced, in every mailbox or in the queue.
 *
 *     const struct petrel_queue_ops *q = petrel_service_lookup(PETREL_QUEUE_SERVICE, 1);
 *     struct petrel_queue_msg *m = q->begin(&envelope);   any thread
 *     q->write(m, data, len) ...                           worker thread
 *     q->commit(m, &reply);                                worker thread; frees m
 *
 * Hooks: the deliver point below, run by the queue on worker threads, as
 * the SMTP points of petrel/smtp.h are (the verdicts are described there;
 * DISCONNECT means nothing here). The SMTP points lived in this header
 * before ABI minor 6; it still includes petrel/smtp.h for them. */
#ifndef PETREL_QUEUE_H
#define PETREL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

#define PETREL_QUEUE_SERVICE "queue"
#define PETREL_QUEUE_VERSION 1u

#define PETREL_HOOK_DELIVER "deliver" /* struct petrel_deliver_event */

struct petrel_smtp_origin;

/* DSN (RFC 3461) as received. */
enum petrel_dsn_notify {
    PETREL_DSN_NEVER = 1u << 0,
    PETREL_DSN_SUCCESS = 1u << 1,
    PETREL_DSN_FAILURE = 1u << 2,
    PETREL_DSN_DELAY = 1u << 3,
};
enum petrel_dsn_ret { PETREL_DSN_RET_DEFAULT = 0, PETREL_DSN_RET_FULL, PETREL_DSN_RET_HDRS };
enum petrel_body { PETREL_BODY_7BIT = 0, PETREL_BODY_8BITMIME, PETREL_BODY_BINARYMIME };

struct petrel_envelope_rcpt {
    const char *address; /* canonical "local@domain" */
    const char *orcpt;   /* DSN ORCPT as "type;address", or NULL */
    unsigned notify;     /* enum petrel_dsn_notify; 0 = not given */
};

struct petrel_envelope {
    const char *mail_from; /* "" for the null sender <> */
    const struct petrel_envelope_rcpt *rcpts;
    size_t nrcpts;
    const char *client_ip;  /* "192.0.2.1", or "" for mail made here */
    const char *helo;       /* what the client said in HELO/EHLO */
    const char *protocol;   /* RFC 3848 "with" keyword: ESMTP, ESMTPS, ESMTPSA, ... */
    const char *auth_user;  /* authenticated user, or NULL */
    const char *tls_cipher; /* "TLS_AES_256_GCM_SHA384", or NULL */
    bool submission;        /* from a mail client: add Message-ID and Date if missing */
    enum petrel_body body;
    bool smtputf8;
    enum petrel_dsn_ret ret;
    const char *envid;       /* DSN ENVID, or NULL */
    const char *tls_version; /* "TLSv1.3", or NULL. Since ABI minor 3 */
    /* A trusted submitter: logged in, or in smtp_in's relay_networks. A
     * failure report returns the whole message (RET=FULL) only to such a
     * sender. Since ABI minor 5 (a reserved slot: false from older
     * modules, where auth_user still counts). */
    bool trusted;
    /* The SMTP session it comes from (petrel/smtp.h), for the smtp.data
     * event; NULL for others. Since ABI minor 6 (a reserved slot: NULL
     * from older modules). */
    struct petrel_smtp_origin *smtp_origin;
    /* The sender asked for REQUIRETLS (RFC 8689): the message may only be
     * relayed over TLS to a verified server that offers REQUIRETLS too.
     * Since ABI minor 7 (a reserved slot: false from older modules). */
    bool requiretls;
};

/* The reply for the client, e.g. {250, "2.0.0", "Ok: queued as 1A2B..."}. */
struct petrel_queue_reply {
    int code;
    char enhanced[12];
    char text[200];
};

struct petrel_queue_msg;

/* What the queue says of a local address (local_address below). */
enum petrel_queue_address {
    PETREL_QUEUE_ADDRESS_UNKNOWN = 0,
    PETREL_QUEUE_ADDRESS_ACCEPTED,
    PETREL_QUEUE_ADDRESS_REFUSED,
};

struct petrel_queue_ops {
    size_t size; /* sizeof(struct petrel_queue_ops) of the provider */
    /* A new message; copies the envelope. Cheap, any thread. */
    struct petrel_queue_msg *(*begin)(const struct petrel_envelope *env);
    /* The message's bytes in order: CRLF line ends, dot-stuffing already
     * removed. Small messages stay in memory, larger ones go to a spool
     * file. Worker thread. False when the spool cannot be written (the
     * message must then be aborted with a 451). */
    bool (*write)(struct petrel_queue_msg *msg, const void *data, size_t len);
    /* The end of the message: run the smtp.data hook, expand, route,
     * deliver or queue, and fill reply. Frees msg. Worker thread. */
    void (*commit)(struct petrel_queue_msg *msg, struct petrel_queue_reply *reply);
    /* Drop an unfinished message. Frees msg. Worker thread (it may remove
     * a spool file). */
    void (*abort)(struct petrel_queue_msg *msg);
    /* Whether the spool has room for a message of size bytes (0: size
     * not declared); MAIL answers 452 4.3.1 when not. Any thread, and
     * cheap: it answers from a cached look. A failed write sets errno:
     * ENOSPC for want of space, another value for any other reason.
     * Present when size covers it (since ABI minor 4). */
    bool (*has_room)(uint64_t size);
    /* Whether address, of a local domain, is one the queue turns into
     * another itself (an SRS reply address of a forwarded message, say),
     * asked before the account database so that a catch-all does not
     * take it. UNKNOWN: not one of the queue's, ask the account
     * database; ACCEPTED: take it; REFUSED: refuse it with reply (code,
     * enhanced status, text to follow "<address>: "). Worker thread.
     * Cheap for an address that is not the queue's. Present when size
     * covers it (since ABI minor 8). */
    enum petrel_queue_address (*local_address)(const char *address,
                                               struct petrel_queue_reply *reply);
};

/* --- hook events --- */

/* Before a local delivery, once per final recipient (after alias and
 * forward expansion). DENY fails that recipient (a bounce), DENY_SOFT
 * defers it. folder may be changed (UTF-8, '/'-separated, e.g. "Junk");
 * a folder that does not exist falls back to INBOX. */
struct petrel_deliver_event {
    const struct petrel_envelope *env;
    const char *queue_id;
    const char *rcpt;   /* the account */
    const char *header; /* as in the smtp.data event */
    size_t header_len;
    char folder[256]; /* "" = INBOX */
};

/* Source compatibility: the SMTP hook points and events. */
#include <petrel/smtp.h>

#endif
