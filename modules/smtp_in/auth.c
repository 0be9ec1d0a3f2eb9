/* AUTH (RFC 4954) with PLAIN and LOGIN: the SASL exchange on the I/O
 * thread, the password check on a worker, and a failure answered only
 * after the delay the auth service asks for (brute force gets slow). */
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_in.h"

struct auth_job {
    struct petrel_auth_request req;
    struct petrel_auth_result result;
    char ip[64];
    struct petrel_sasl *sasl; /* owns the credentials the request points to */
};

bool smtp_auth_offered(struct petrel_conn *conn, const struct smtp_session *s)
{
    if (smtp_auth == NULL || (!s->submission && !s->cfg->auth_on_mx))
        return false;
    return smtp_auth->plaintext_allowed(petrel_conn_is_tls(conn));
}

static void auth_work(void *arg)
{
    struct auth_job *j = arg;
    smtp_auth->authenticate(&j->req, &j->result);
}

static void free_job(struct auth_job *j)
{
    petrel_sasl_free(j->sasl);
    free(j);
}

static void answer(struct petrel_conn *conn, const struct petrel_auth_result *r)
{
    struct smtp_session *s = petrel_conn_session(conn);
    s->state = SMTP_ST_CMD;
    switch (r->status) {
    case PETREL_AUTH_OK:
        petrel_strlcpy(s->auth_user, r->user, sizeof(s->auth_user));
        petrel_conn_log(conn, PETREL_LOG_INFO, "authenticated as %s", r->user);
        smtp_reply(conn, 235, "2.7.0", "Authentication successful");
        return;
    case PETREL_AUTH_FAILED:
        smtp_reply(conn, 535, "5.7.8", "authentication credentials invalid");
        break;
    case PETREL_AUTH_TEMPFAIL:
        smtp_reply(conn, 454, "4.7.0", "temporary authentication failure");
        break;
    case PETREL_AUTH_RATELIMITED:
        smtp_reply(conn, 454, "4.7.0", "too many failed logins, try again later");
        break;
    }
    struct petrel_error_limits lim;
    petrel_conn_error_limits(conn, &lim);
    if (lim.max_auth_errors > 0 && ++s->auth_errors >= lim.max_auth_errors) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "too many failed logins (%u): closing",
                        s->auth_errors);
        petrel_conn_printf(conn, "421 4.7.0 %s Error: too many failed logins\r\n", smtp_hostname);
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
    }
}

static void delay_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct auth_job *j = arg;
    if (!closing)
        answer(conn, &j->result);
    free_job(j);
}

static void auth_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct auth_job *j = arg;
    if (closing) {
        free_job(j);
        return;
    }
    if (j->result.status != PETREL_AUTH_OK)
        petrel_conn_log(conn, PETREL_LOG_INFO, "authentication failed: %s", j->result.reason);
    if (j->result.delay_ms > 0 && petrel_conn_delay(conn, j->result.delay_ms, delay_done, j))
        return;
    if (j->result.delay_ms > 0) {
        /* Answered at once, a failure would let the client guess as fast
         * as the hash allows: drop it instead (the auth service keeps the
         * delay within what the core holds, so this is not expected). */
        struct smtp_session *s = petrel_conn_session(conn);
        petrel_conn_log(conn, PETREL_LOG_WARNING, "cannot delay the failed login by %u ms: closing",
                        j->result.delay_ms);
        petrel_conn_printf(conn, "421 4.7.0 %s Error: authentication failed\r\n", smtp_hostname);
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        free_job(j);
        return;
    }
    answer(conn, &j->result);
    free_job(j);
}

static void run_auth(struct petrel_conn *conn, struct smtp_session *s)
{
    struct auth_job *j = petrel_calloc(1, sizeof(*j));
    struct petrel_sasl_credentials cred;
    petrel_sasl_credentials(s->sasl, &cred);
    j->sasl = s->sasl;
    s->sasl = NULL;
    petrel_strlcpy(j->ip, petrel_conn_peer(conn), sizeof(j->ip));
    j->req = (struct petrel_auth_request){
        .service = "smtp",
        .client_ip = j->ip,
        .tls = petrel_conn_is_tls(conn),
        .mechanism = petrel_sasl_mech_name(s->mech),
        .authzid = cred.authzid,
        .authcid = cred.authcid,
        .password = cred.password,
    };
    if (!petrel_conn_submit(conn, auth_work, auth_done, j)) {
        free_job(j);
        s->state = SMTP_ST_CMD;
        smtp_reply(conn, 454, "4.7.0", "server busy, try again later");
    }
}

static void sasl_result(struct petrel_conn *conn, struct smtp_session *s,
                        enum petrel_sasl_status st, const char *challenge, const char *error)
{
    switch (st) {
    case PETREL_SASL_CONTINUE:
        s->state = SMTP_ST_AUTH;
        petrel_conn_printf(conn, "334 %s\r\n", challenge);
        return;
    case PETREL_SASL_DONE:
        run_auth(conn, s);
        return;
    case PETREL_SASL_CANCELLED:
        s->state = SMTP_ST_CMD;
        smtp_error(conn, 501, "5.0.0", "authentication cancelled");
        break;
    case PETREL_SASL_ERROR:
        s->state = SMTP_ST_CMD;
        petrel_conn_log(conn, PETREL_LOG_INFO, "bad SASL exchange: %s", error);
        smtp_error(conn, 501, "5.5.2", "%s", error);
        break;
    }
    petrel_sasl_free(s->sasl);
    s->sasl = NULL;
}

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
    enum petrel_sasl_mech mech;
    if (!petrel_sasl_mech_parse(args, &mech)) {
        smtp_error(conn, 504, "5.5.4", "unrecognized authentication mechanism");
        return;
    }
    if (!smtp_auth->plaintext_allowed(petrel_conn_is_tls(conn))) {
        smtp_error(conn, 538, "5.7.11",
                   "encryption required for requested authentication mechanism");
        return;
    }
    s->sasl = petrel_sasl_new(mech);
    s->mech = mech;
    const char *challenge = NULL, *error = NULL;
    enum petrel_sasl_status st = petrel_sasl_start(s->sasl, initial, &challenge, &error);
    sasl_result(conn, s, st, challenge, error);
}

void smtp_auth_line(struct petrel_conn *conn, struct smtp_session *s, char *line, size_t len)
{
    const char *challenge = NULL, *error = NULL;
    enum petrel_sasl_status st = petrel_sasl_step(s->sasl, line, len, &challenge, &error);
    sasl_result(conn, s, st, challenge, error);
}
