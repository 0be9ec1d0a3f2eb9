/* CAPABILITY, STARTTLS (RFC 2595), LOGIN and AUTHENTICATE with SASL-IR
 * (RFC 4959): IMAP's framing around the core's login flow (petrel/login.h),
 * which runs the exchange, the check on a worker, the failure delay and
 * the count of failed logins. LOGIN goes through the same flow as a
 * PLAIN exchange with an initial response, so it has the same delays,
 * limits and logs. After the check: the per-user connection limit
 * (imap_registry.h) and the mailbox opened on a worker. */
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/login.h>
#include <petrel/mem.h>
#include <petrel/sasl.h>

#include "imap.h"
#include "imap_registry.h"

/* IMAP4rev2 beside IMAP4rev1: a client turns rev2 on with ENABLE (RFC
 * 9051 section 6.3.1). LITERAL+ (non-synchronizing literals of any
 * size) covers rev2's LITERAL- (up to 4096 bytes, RFC 7888), so only it
 * is advertised. */
static const char base_caps[] =
    "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT "
    "CHILDREN SPECIAL-USE UIDPLUS MOVE "
    "LIST-EXTENDED LIST-STATUS STATUS=SIZE "
    "QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE METADATA "
    "ESEARCH SEARCHRES WITHIN "
    "SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES "
    "CONDSTORE QRESYNC UTF8=ACCEPT BINARY";

void imap_put_capabilities(struct petrel_conn *conn, const struct imap_session *s,
                           struct petrel_buf *out)
{
    petrel_buf_append(out, base_caps, strlen(base_caps));
    if (s->state != IMAP_ST_NOAUTH) {
        petrel_buf_printf(out, " COMPRESS=DEFLATE"); /* RFC 4978: after login */
        return;
    }
    if (!petrel_conn_is_tls(conn) && petrel_conn_can_starttls(conn))
        petrel_buf_printf(out, " STARTTLS");
    if (petrel_login_offered(conn))
        petrel_buf_printf(out, " AUTH=PLAIN AUTH=LOGIN");
    else
        petrel_buf_printf(out, " LOGINDISABLED");
}

void imap_cmd_capability(struct petrel_conn *conn, struct imap_session *s)
{
    struct petrel_buf caps;
    petrel_buf_init(&caps, 1024);
    imap_put_capabilities(conn, s, &caps);
    petrel_conn_printf(conn, "* CAPABILITY %.*s\r\n", (int)caps.len, petrel_buf_head(&caps));
    petrel_buf_free(&caps);
    imap_tagged(conn, s, "OK", "CAPABILITY completed");
}

void imap_cmd_starttls(struct petrel_conn *conn, struct imap_session *s)
{
    if (petrel_conn_is_tls(conn) || !petrel_conn_can_starttls(conn)) {
        imap_bad(conn, s, "STARTTLS not available");
        return;
    }
    imap_tagged(conn, s, "OK", "Begin TLS negotiation now");
    petrel_conn_starttls(conn);
}

/* --- after the check --- */

static void open_work(struct imap_job *j)
{
    struct imap_session *s = j->s;
    j->err = imap_storage->mailbox_open(s->user, &s->mbox);
}

static void open_after(struct petrel_conn *conn, struct imap_job *j)
{
    struct imap_session *s = j->s;
    if (j->err != 0) {
        petrel_conn_log(conn, PETREL_LOG_WARNING, "cannot open the mailbox of %s: %s", s->user,
                        imap_storage->strerror(j->err));
        petrel_conn_printf(conn, "%s NO [UNAVAILABLE] Cannot open the mailbox, try again later\r\n",
                           j->tag);
        imap_log_refusal(conn, s, "NO", "[UNAVAILABLE] cannot open the mailbox");
        imap_session_end_user(s);
        return;
    }
    s->state = IMAP_ST_AUTH;
    imap_set_timeout(conn, s);
    petrel_counter_add(imap_counters.logins, 1);
    struct petrel_buf caps;
    petrel_buf_init(&caps, 1024);
    imap_put_capabilities(conn, s, &caps);
    petrel_conn_printf(conn, "%s OK [CAPABILITY %.*s] Logged in\r\n", j->tag, (int)caps.len,
                       petrel_buf_head(&caps));
    petrel_buf_free(&caps);
}

static void logged_in(struct petrel_conn *conn, struct imap_session *s, const char *user)
{
    unsigned max = (unsigned)s->cfg->max_connections_per_user;
    if (!imap_registry_take(user, max)) {
        petrel_counter_add(imap_counters.per_user_refused, 1);
        petrel_conn_log(conn, PETREL_LOG_INFO, "%s has %u sessions already: login refused", user,
                        max);
        imap_no(conn, s, "[LIMIT] Too many connections for this user (at most %u)", max);
        return;
    }
    s->user = petrel_strdup(user);
    s->counted = true;
    struct imap_job *j = imap_job_new(s, open_work);
    j->after = open_after;
    imap_job_submit(conn, j);
}

void imap_session_end_user(struct imap_session *s)
{
    if (s->counted)
        imap_registry_release(s->user);
    s->counted = false;
    free(s->user);
    s->user = NULL;
}

static void challenge(struct petrel_conn *conn, const char *text)
{
    petrel_conn_printf(conn, "+ %s\r\n", text);
}

static void done(struct petrel_conn *conn, const struct petrel_login_result *r)
{
    struct imap_session *s = petrel_conn_session(conn);
    s->mode = IMAP_MODE_CMD;
    switch (r->status) {
    case PETREL_LOGIN_OK:
        logged_in(conn, s, r->user);
        return;
    case PETREL_LOGIN_FAILED:
    case PETREL_LOGIN_DROPPED:
        imap_no(conn, s, "[AUTHENTICATIONFAILED] Authentication failed");
        break;
    case PETREL_LOGIN_TEMPFAIL:
    case PETREL_LOGIN_BUSY:
        imap_no(conn, s, "[UNAVAILABLE] Temporary authentication failure, try again later");
        break;
    case PETREL_LOGIN_RATELIMITED:
        imap_no(conn, s, "[UNAVAILABLE] Too many failed logins, try again later");
        break;
    case PETREL_LOGIN_CANCELLED:
        imap_bad(conn, s, "Authentication cancelled");
        break;
    case PETREL_LOGIN_MALFORMED:
        imap_bad(conn, s, "%s", r->reason);
        break;
    case PETREL_LOGIN_NO_MECHANISM:
        imap_no(conn, s, "Unsupported authentication mechanism");
        break;
    case PETREL_LOGIN_NEEDS_TLS:
        imap_no(conn, s, "[PRIVACYREQUIRED] Plaintext authentication needs TLS: use STARTTLS");
        break;
    }
    if (r->closing) {
        petrel_conn_printf(conn, "* BYE Too many failed logins\r\n");
        s->state = IMAP_ST_LOGOUT; /* the core closes after the answer */
    }
}

static const struct petrel_login_frame frame = {.challenge = challenge, .done = done};

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

#define PLAIN_MAX (PETREL_SASL_ID_MAX + PETREL_SASL_PASSWORD_MAX + 2)

void imap_cmd_login(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd)
{
    const char *user = cmd->count == 2 ? imap_arg_astring(&cmd->args[0]) : NULL;
    const char *pass = cmd->count == 2 ? imap_arg_astring(&cmd->args[1]) : NULL;
    if (user == NULL || pass == NULL || cmd->args[0].spooled || cmd->args[1].spooled) {
        imap_bad(conn, s, "LOGIN takes a user name and a password");
        return;
    }
    if (!petrel_login_offered(conn)) {
        imap_no(conn, s, "[PRIVACYREQUIRED] LOGIN is disabled without TLS: use STARTTLS");
        return;
    }
    size_t ulen = cmd->args[0].len, plen = cmd->args[1].len;
    if (ulen > PETREL_SASL_ID_MAX || plen > PETREL_SASL_PASSWORD_MAX ||
        memchr(user, '\0', ulen) != NULL || memchr(pass, '\0', plen) != NULL) {
        imap_no(conn, s, "[AUTHENTICATIONFAILED] Authentication failed");
        return;
    }
    /* The PLAIN message "\0user\0password" (RFC 4616). */
    unsigned char plain[PLAIN_MAX];
    char initial[4 * ((PLAIN_MAX + 2) / 3) + 1];
    plain[0] = '\0';
    memcpy(plain + 1, user, ulen);
    plain[1 + ulen] = '\0';
    memcpy(plain + 2 + ulen, pass, plen);
    base64(plain, ulen + plen + 2, initial);
    explicit_bzero(plain, sizeof(plain));
    s->mode = IMAP_MODE_SASL;
    petrel_login_start(conn, IMAP_SERVICE, "PLAIN", initial, &frame);
    explicit_bzero(initial, sizeof(initial));
}

void imap_cmd_authenticate(struct petrel_conn *conn, struct imap_session *s,
                           const struct imap_command *cmd)
{
    const char *mech =
        cmd->count >= 1 && cmd->args[0].type == IMAP_ARG_ATOM ? cmd->args[0].str : NULL;
    const char *initial = cmd->count == 2 ? imap_arg_astring(&cmd->args[1]) : NULL;
    if (mech == NULL || cmd->count > 2 || (cmd->count == 2 && initial == NULL)) {
        imap_bad(conn, s, "AUTHENTICATE takes a mechanism and an optional initial response");
        return;
    }
    s->mode = IMAP_MODE_SASL;
    petrel_login_start(conn, IMAP_SERVICE, mech, initial, &frame);
}
