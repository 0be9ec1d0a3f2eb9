/* USER/PASS (RFC 1939 section 7) and AUTH (RFC 5034) with PLAIN and
 * LOGIN: POP3's framing around the core's login flow (petrel/login.h),
 * which runs the exchange, the check on a worker, the failure delay and the
 * count of failed logins. USER/PASS goes through the same flow as a PLAIN
 * exchange with an initial response, so it has the same delays, limits
 * and logs. */
#include <string.h>

#include <petrel/login.h>
#include <petrel/mem.h>
#include <petrel/sasl.h>

#include "pop3.h"

bool pop3_plaintext_ok(struct petrel_conn *conn) { return petrel_login_offered(conn); }

static void challenge(struct petrel_conn *conn, const char *text)
{
    petrel_conn_printf(conn, "+ %s\r\n", text);
}

static void done(struct petrel_conn *conn, const struct petrel_login_result *r)
{
    struct pop3_session *s = petrel_conn_session(conn);
    s->state = POP3_ST_AUTH;
    s->user[0] = '\0';
    switch (r->status) {
    case PETREL_LOGIN_OK:
        pop3_maildrop_open(conn, s, r->user);
        return;
    case PETREL_LOGIN_FAILED:
        petrel_conn_printf(conn, "-ERR [AUTH] Authentication failed\r\n");
        break;
    case PETREL_LOGIN_TEMPFAIL:
    case PETREL_LOGIN_BUSY:
        petrel_conn_printf(conn, "-ERR [SYS/TEMP] Temporary authentication failure, try again "
                                 "later\r\n");
        break;
    case PETREL_LOGIN_RATELIMITED:
        petrel_conn_printf(conn, "-ERR [SYS/TEMP] Too many failed logins, try again later\r\n");
        break;
    case PETREL_LOGIN_CANCELLED:
        pop3_error(conn, "Authentication cancelled");
        break;
    case PETREL_LOGIN_MALFORMED:
        pop3_error(conn, "%s", r->reason);
        break;
    case PETREL_LOGIN_NO_MECHANISM:
        pop3_error(conn, "Unrecognized authentication mechanism");
        break;
    case PETREL_LOGIN_NEEDS_TLS:
        pop3_error(conn, "[AUTH] Plaintext authentication is not allowed without TLS: use STLS "
                         "first");
        break;
    case PETREL_LOGIN_DROPPED:
        petrel_conn_printf(conn, "-ERR [AUTH] Authentication failed\r\n");
        break;
    }
    if (r->closing)
        s->state = POP3_ST_QUIT; /* the core closes after the answer */
}

static const struct petrel_login_frame frame = {.challenge = challenge, .done = done};

static bool refuse_plaintext(struct petrel_conn *conn)
{
    if (pop3_plaintext_ok(conn))
        return false;
    pop3_error(conn, "[AUTH] Plaintext authentication is not allowed without TLS: use STLS first");
    return true;
}

void pop3_cmd_user(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd)
{
    if (refuse_plaintext(conn))
        return;
    petrel_strlcpy(s->user, cmd->arg[0], sizeof(s->user));
    pop3_ok(conn, "Send the password");
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of len bytes into out (room for 4 * ((len + 2) / 3) + 1). */
static void base64(const unsigned char *in, size_t len, char *out)
{
    for (; len >= 3; in += 3, len -= 3) {
        *out++ = b64chars[in[0] >> 2];
        *out++ = b64chars[((in[0] & 3) << 4) | (in[1] >> 4)];
        *out++ = b64chars[((in[1] & 15) << 2) | (in[2] >> 6)];
        *out++ = b64chars[in[2] & 63];
    }
    if (len > 0) {
        *out++ = b64chars[in[0] >> 2];
        *out++ = b64chars[((in[0] & 3) << 4) | (len == 2 ? in[1] >> 4 : 0)];
        *out++ = len == 2 ? b64chars[(in[1] & 15) << 2] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

#define PLAIN_MAX (POP3_USER_MAX + PETREL_SASL_PASSWORD_MAX + 2)

void pop3_cmd_pass(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd)
{
    if (s->user[0] == '\0') {
        pop3_error(conn, "Send USER first");
        return;
    }
    size_t ulen = strlen(s->user), plen = strlen(cmd->arg[0]);
    if (plen > PETREL_SASL_PASSWORD_MAX) {
        s->user[0] = '\0';
        pop3_error(conn, "[AUTH] Password too long");
        return;
    }
    /* The PLAIN message "\0user\0password" (RFC 4616). */
    unsigned char plain[PLAIN_MAX];
    char initial[4 * ((PLAIN_MAX + 2) / 3) + 1];
    plain[0] = '\0';
    memcpy(plain + 1, s->user, ulen);
    plain[1 + ulen] = '\0';
    memcpy(plain + 2 + ulen, cmd->arg[0], plen);
    base64(plain, ulen + plen + 2, initial);
    explicit_bzero(plain, sizeof(plain));
    s->state = POP3_ST_SASL;
    petrel_login_start(conn, "pop3", "PLAIN", initial, &frame);
    explicit_bzero(initial, sizeof(initial));
}

void pop3_cmd_auth(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd)
{
    if (cmd->nargs == 0) { /* the mechanisms, as many clients ask (RFC 1734's form) */
        if (pop3_plaintext_ok(conn))
            petrel_conn_printf(conn, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
        else
            petrel_conn_printf(conn, "+OK\r\n.\r\n");
        return;
    }
    s->user[0] = '\0';
    s->state = POP3_ST_SASL;
    petrel_login_start(conn, "pop3", cmd->arg[0], cmd->nargs > 1 ? cmd->arg[1] : NULL, &frame);
}
