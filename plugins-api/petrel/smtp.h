/* The SMTP hook points and their events. smtp_in runs them; a plugin
 * registers handlers with petrel_hook_register() (petrel/module.h). They
 * run on worker threads and may block (a DNS list, a greylisting
 * database). Verdicts: PETREL_CONTINUE (no opinion), PETREL_OK (accept,
 * skip later handlers), PETREL_DENY (refuse: 550/554), PETREL_DENY_SOFT
 * (451: try later), PETREL_DISCONNECT (421 and close). The handler's
 * reason_r text, if any, goes to the client after the status code; keep it
 * short, ASCII, one line. Before ABI minor 6 these lived in petrel/queue.h,
 * which still includes this header.
 *
 * The session slot (since ABI minor 6). Every event names its connection
 * (conn_id, as in the log's "conn N") and carries session_slot: a pointer
 * to one void * per SMTP session, NULL when the session starts, that a
 * handler may set and read again at a later point of the same session.
 * A greylisting plugin keeps what it learnt at smtp.mail for smtp.rcpt:
 *
 *     struct grey *g = *ev->session_slot;
 *     if (g == NULL)
 *         *ev->session_slot = g = grey_new();
 *
 * The handlers of one session never run at the same time (one job at a
 * time per connection), so the slot needs no lock; different sessions
 * have different slots. The slot is shared by every plugin of the
 * session: one plugin owns it. When a session whose slot is set ends,
 * smtp_in runs PETREL_HOOK_SMTP_DISCONNECT once on a worker thread with
 * the last value; its handler frees it (the verdict is ignored). */
#ifndef PETREL_SMTP_H
#define PETREL_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/queue.h> /* struct petrel_envelope */

/* Hook points. */
#define PETREL_HOOK_SMTP_CONNECT "smtp.connect" /* struct petrel_smtp_connect_event */
#define PETREL_HOOK_SMTP_MAIL "smtp.mail"       /* struct petrel_smtp_mail_event */
#define PETREL_HOOK_SMTP_RCPT "smtp.rcpt"       /* struct petrel_smtp_rcpt_event */
#define PETREL_HOOK_SMTP_DATA "smtp.data"       /* struct petrel_smtp_data_event */
/* The session ended with its slot set: free it. Since ABI minor 6. */
#define PETREL_HOOK_SMTP_DISCONNECT "smtp.disconnect" /* struct petrel_smtp_disconnect_event */

/* The SMTP session a message comes from, as smtp_in hands it to the queue
 * in the envelope (petrel_envelope.smtp_origin), so the smtp.data event,
 * run by the queue, carries the same connection id and slot. Owned by the
 * session; valid until commit or abort returns. Since ABI minor 6. */
struct petrel_smtp_origin {
    uint64_t conn_id;
    void *slot;
};

struct petrel_smtp_connect_event {
    const char *client_ip;
    const char *local_ip;
    int local_port;
    const char *service; /* "smtp" or "submission" */
    uint64_t conn_id;    /* since ABI minor 6, as are the slots below */
    void **session_slot;
};

/* MAIL FROM: env has mail_from and no recipients yet. */
struct petrel_smtp_mail_event {
    const struct petrel_envelope *env;
    uint64_t conn_id;
    void **session_slot;
};

/* RCPT TO, after Petrel's own checks accepted the address. */
struct petrel_smtp_rcpt_event {
    const struct petrel_envelope *env; /* the recipients accepted so far */
    const char *rcpt;
    bool local; /* for a local domain; else relayed for env->auth_user or a trusted network */
    uint64_t conn_id;
    void **session_slot;
};

/* The whole message has arrived (before it is acknowledged). header is the
 * message's header block as received (up to and with the empty line, at
 * most 64 KiB). A handler may append complete header fields
 * ("X-Spam: no\r\n") to add_header; they go on top of the message.
 * conn_id is 0 and session_slot NULL for a message that did not come in
 * over SMTP (or from a protocol module built before ABI minor 6). */
struct petrel_smtp_data_event {
    const struct petrel_envelope *env;
    const char *queue_id;
    const char *header;
    size_t header_len;
    uint64_t size;
    struct petrel_buf *add_header;
    uint64_t conn_id;
    void **session_slot;
};

/* The end of a session whose slot a handler set. Since ABI minor 6. */
struct petrel_smtp_disconnect_event {
    uint64_t conn_id;
    void **session_slot; /* the last value; free it and set NULL */
};

#endif
