/* AUTH (RFC 4954) with PLAIN and LOGIN: SMTP's framing around the core's
 * login flow (petrel/login.h), which runs the exchange, the check on a
 * worker, the failure delay and the count of failed logins. */
#include <string.h>

#include <petrel/log.h>
#include <petrel/login.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_in.h"

bool smtp_auth_offered(struct petrel_conn *conn, const struct smtp_session *s)
{
    if (smtp_auth == NULL || (!s->submission && !s->cfg->auth_on_mx))
        return false;
    return petrel_login_offered(conn);
}

static void challenge(struct petrel_conn *conn, const char *text)
{
    struct smtp_session *s = petrel_conn_session(conn);
    s->state = SMTP_ST_AUTH;
    petrel_conn_printf(conn, "334 %s\r\n", text);
}

static void done(struct petrel_conn *conn, const struct petrel_login_result *r)
{
    struct smtp_session *s = petrel_conn_session(conn);
    s->state = SMTP_ST_CMD;
    switch (r->status) {
    case PETREL_LOGIN_OK:
        petrel_strlcpy(s->auth_user, r->user, sizeof(s->auth_user));
        smtp_reply(conn, 235, "2.7.0", "Authentication successful");
        return;
    case PETREL_LOGIN_FAILED:
        smtp_reply(conn, 535, "5.7.8", "authentication credentials invalid");
        break;
    case PETREL_LOGIN_TEMPFAIL:
        smtp_reply(conn, 454, "4.7.0", "temporary authentication failure");
        break;
    case PETREL_LOGIN_BUSY:
        smtp_reply(conn, 454, "4.7.0", "server busy, try again later");
        break;
    case PETREL_LOGIN_RATELIMITED:
        smtp_reply(conn, 454, "4.7.0", "too many failed logins, try again later");
        break;
    case PETREL_LOGIN_CANCELLED:
        smtp_error(conn, 501, "5.0.0", "authentication cancelled");
        break;
    case PETREL_LOGIN_MALFORMED:
        smtp_error(conn, 501, "5.5.2", "%s", r->reason);
        break;
    case PETREL_LOGIN_NO_MECHANISM:
        smtp_error(conn, 504, "5.5.4", "unrecognized authentication mechanism");
        break;
    case PETREL_LOGIN_NEEDS_TLS:
        smtp_error(conn, 538, "5.7.11",
                   "encryption required for requested authentication mechanism");
        break;
    case PETREL_LOGIN_DROPPED:
        petrel_conn_printf(conn, "421 4.7.0 %s Error: authentication failed\r\n", smtp_hostname);
        s->state = SMTP_ST_QUIT;
        return;
    }
    if (r->closing) {
        petrel_conn_printf(conn, "421 4.7.0 %s Error: too many failed logins\r\n", smtp_hostname);
        s->state = SMTP_ST_QUIT;
    }
}

static const struct petrel_login_frame frame = {.challenge = challenge, .done = done};

void smtp_cmd_auth(struct petrel_conn *conn, struct smtp_session *s, char *args)
{
    if (smtp_auth == NULL || (!s->submission && !s->cfg->auth_on_mx)) {
        smtp_error(conn, 502, "5.5.1", "AUTH not available");
        return;
    }
    if (s->auth_user[0] != '\0') {
        smtp_error(conn, 503, "5.5.1", "already authenticated");
        return;
    }
    if (s->in_mail) {
        smtp_error(conn, 503, "5.5.1", "AUTH not allowed during a mail transaction");
        return;
    }
    char *initial = strchr(args, ' ');
    if (initial != NULL)
        *initial++ = '\0';
    petrel_login_start(conn, "smtp", args, initial, &frame);
}

void smtp_auth_line(struct petrel_conn *conn, struct smtp_session *s, char *line, size_t len)
{
    (void)s;
    petrel_login_line(conn, line, len);
}
