/* One login flow for every protocol (SMTP AUTH, IMAP AUTHENTICATE and
 * LOGIN, POP3 AUTH and USER/PASS, WebMail): the SASL exchange, the check by
 * the "auth" service on a worker, the failure delay without a thread, and
 * the count of failed logins against the service's max_auth_errors. The
 * protocol supplies only its framing: how a challenge is sent and how the
 * outcome is answered. All calls and callbacks on the connection's I/O
 * thread. Since ABI minor 6. */
#ifndef PETREL_LOGIN_H
#define PETREL_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/conn.h>

enum petrel_login_status {
    PETREL_LOGIN_OK = 0,
    PETREL_LOGIN_FAILED,       /* wrong credentials (answered after the delay) */
    PETREL_LOGIN_TEMPFAIL,     /* the check could not be made: try again later */
    PETREL_LOGIN_RATELIMITED,  /* the client is locked out: refused unchecked */
    PETREL_LOGIN_CANCELLED,    /* the client sent "*" */
    PETREL_LOGIN_MALFORMED,    /* a bad exchange: reason says what, safe to show */
    PETREL_LOGIN_NO_MECHANISM, /* not a mechanism Petrel offers */
    PETREL_LOGIN_NEEDS_TLS,    /* plaintext mechanisms need TLS here */
    PETREL_LOGIN_BUSY,         /* no worker free: try again later */
    PETREL_LOGIN_DROPPED,      /* a failure that could not be delayed: say goodbye */
};

struct petrel_login_result {
    enum petrel_login_status status;
    const char *user;   /* OK: the canonical user */
    const char *reason; /* for the log; for MALFORMED also fit for the client */
    /* The last failure allowed (max_auth_errors) or DROPPED: answer, add
     * the protocol's goodbye; the core closes the connection after. */
    bool closing;
    unsigned errors; /* failed logins on this connection so far */
};

struct petrel_login_frame {
    /* Send a challenge (base64, maybe "") in the protocol's framing: "334 "
     * in SMTP, "+ " in IMAP and POP3. */
    void (*challenge)(struct petrel_conn *conn, const char *challenge);
    /* The outcome, exactly once per petrel_login_start(), unless the
     * connection goes away first. */
    void (*done)(struct petrel_conn *conn, const struct petrel_login_result *r);
};

/* Begin a login with mechanism ("PLAIN", "LOGIN") and the initial response
 * as sent ("=" for empty; NULL for none). service names the protocol for
 * the auth service and its logs ("smtp", "imap"). done may be called
 * before this returns (an unknown mechanism, a refused initial response).
 * False, calling nothing, if a login is already running on conn. */
bool petrel_login_start(struct petrel_conn *conn, const char *service, const char *mechanism,
                        const char *initial, const struct petrel_login_frame *frame);
/* Whether a login is running on conn: its client lines go to
 * petrel_login_line() until done. */
bool petrel_login_active(struct petrel_conn *conn);
/* One client line of the exchange (without its line end). */
void petrel_login_line(struct petrel_conn *conn, const char *line, size_t len);
/* End a login waiting for the client's next line, without calling done
 * (the protocol refused the line itself: too long). */
void petrel_login_cancel(struct petrel_conn *conn);
/* Whether the auth service lets a plaintext mechanism be used on conn
 * (for capability lists); false without an auth service. */
bool petrel_login_offered(struct petrel_conn *conn);

#endif
