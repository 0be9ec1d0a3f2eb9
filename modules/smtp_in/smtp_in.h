/* smtp_in's private interfaces: settings, the session, and the parts of
 * the protocol in their own files (commands, the message, AUTH). */
#ifndef PETREL_SMTP_IN_H
#define PETREL_SMTP_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/auth.h>
#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/ipset.h>
#include <petrel/queue.h>
#include <petrel/sasl.h>
#include <petrel/smtp.h>
#include <petrel/userdb.h>

#include "smtp_parse.h"

#define SMTP_LOG "smtp_in"
/* Message bytes gathered on the I/O thread before a worker writes them,
 * and the session buffer's cap: room for one more input unit (a line of
 * up to the largest listener max_line, 1 MiB, or a chunk part no longer
 * than that) while a write is still running, twice over because every
 * bare CR or LF in it may become CRLF. */
#define SMTP_FLUSH_BYTES (256u * 1024u)
/* Message bytes a session may gather without the server's message memory
 * budget (petrel_membudget); beyond them it takes from the budget, and
 * when the budget is spent it hands what it has to the queue at once
 * instead of gathering more. */
#define SMTP_FREE_BYTES 8192u
#define SMTP_BUFFER_MAX (SMTP_FLUSH_BYTES + 2u * ((1u << 20) + 2u) + 65536u)

struct smtp_config {
    long long max_message_size, max_recipients;
    long long submission_max_message_size, submission_max_recipients;
    /* Clients that may relay without logging in: parsed once per
     * generation by the core (PETREL_SETTING_IPSET). */
    const struct petrel_ipset *relay_networks;
    bool auth_on_mx;
    bool sender_login_match; /* authenticated: MAIL FROM must be the user's */
    char *bare_lf;           /* "normalize" | "reject" */
    long long greeting_delay;
    bool smtputf8, dsn, chunking;
    bool requiretls;       /* RFC 8689, offered on TLS sessions only */
    bool dsn_trusted_only; /* NOTIFY=SUCCESS/DELAY, RET=FULL: logged-in and relay_networks */
};

/* Services, looked up at init. */
extern const struct petrel_queue_ops *smtp_queue;
extern const struct petrel_userdb_ops *smtp_userdb;
extern const struct petrel_auth_ops *smtp_auth;
extern char smtp_hostname[256];
extern char smtp_primary_domain[256];

enum smtp_state {
    SMTP_ST_CMD,  /* commands */
    SMTP_ST_DATA, /* between DATA's 354 and the final dot */
    SMTP_ST_AUTH, /* an AUTH exchange */
    SMTP_ST_QUIT, /* said goodbye */
    /* After a refused DATA with more input already behind it: the lines up
     * to the end of data are a message, thrown away unanswered. */
    SMTP_ST_DISCARD,
};

struct smtp_rcpt_entry {
    char *address;
    char *orcpt; /* "type;address" or NULL */
    unsigned notify;
};

struct smtp_session {
    const struct smtp_config *cfg;
    bool submission; /* the submission protocol (587, 465) */
    enum smtp_state state;
    char helo[256];
    bool ehlo, greeted;
    bool relay_net;   /* client in relay_networks */
    bool dsn_limited; /* said once in the log: DSN requests cut (dsn_trusted_only) */
    char auth_user[PETREL_AUTH_USER_MAX + 1];
    unsigned errors;
    /* The connection id and the hook handlers' slot (petrel/smtp.h). */
    struct petrel_smtp_origin origin;
    uint64_t max_size;
    unsigned max_rcpts;

    /* The transaction. */
    bool in_mail;
    struct smtp_mail mail;
    struct smtp_rcpt_entry *rcpts;
    size_t nrcpts;
    struct petrel_envelope_rcpt *env_rcpts; /* built for events and begin() */
    struct petrel_envelope env;
    char protocol[16];

    /* The message. */
    struct petrel_queue_msg *msg;
    struct petrel_buf data;
    size_t budget; /* of the message memory, held for data */
    uint64_t size;
    bool prev_crlf;                        /* DATA: the last line ended in CRLF */
    bool too_big, bad_eol, nul, long_line; /* refuse at the end */
    bool write_failed;                     /* the queue could not take it */
    bool no_space;                         /* ...for want of spool space */
    bool bdat, bdat_failed;                /* a BDAT transfer is going on / was refused */
    bool bdat_last;
    bool bdat_cr;      /* BDAT: the content so far ends in a CR not yet written */
    bool flushing;     /* a write job is running */
    bool bdat_end_due; /* a chunk ended while it ran: finished in its done */
    uint64_t chunk_left;
};

/* session.c */
void smtp_reply(struct petrel_conn *conn, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A command error: the reply, then the error count (421 and close past
 * the listener's max_errors). */
void smtp_error(struct petrel_conn *conn, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void smtp_reset(struct petrel_conn *conn, struct smtp_session *s);
/* The envelope as the queue and hooks see it. */
void smtp_build_env(struct petrel_conn *conn, struct smtp_session *s);
/* Refuse a DATA command (static strings). The reply waits until the input
 * behind the command can be seen: a message sent without waiting for it is
 * then thrown away up to its end of data (SMTP_ST_DISCARD). */
void smtp_data_refused(struct petrel_conn *conn, struct smtp_session *s, int code,
                       const char *enhanced, const char *text);

/* data.c */
void smtp_cmd_data(struct petrel_conn *conn, struct smtp_session *s, const char *args);
void smtp_cmd_bdat(struct petrel_conn *conn, struct smtp_session *s, const char *args);
void smtp_data_line(struct petrel_conn *conn, struct smtp_session *s, char *line, size_t len);
void smtp_data_long_line(struct petrel_conn *conn, struct smtp_session *s);
void smtp_chunk(struct petrel_conn *conn, const char *data, size_t len, bool last);
void smtp_message_drop(struct petrel_conn *conn, struct smtp_session *s);

/* auth.c */
void smtp_cmd_auth(struct petrel_conn *conn, struct smtp_session *s, char *args);
void smtp_auth_line(struct petrel_conn *conn, struct smtp_session *s, char *line, size_t len);
bool smtp_auth_offered(struct petrel_conn *conn, const struct smtp_session *s);

/* rcpt.c: MAIL and RCPT, which go through a worker (lookups, hooks). */
void smtp_cmd_mail(struct petrel_conn *conn, struct smtp_session *s, const char *args);
void smtp_cmd_rcpt(struct petrel_conn *conn, struct smtp_session *s, const char *args);

#endif
