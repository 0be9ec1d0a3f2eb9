/* The login flow (petrel/login.h): SASL on the I/O thread, the auth
 * service on a worker, a failure answered only after the delay it asks
 * for (a guesser waits, the server's threads do not), failures counted per
 * connection against max_auth_errors. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/auth.h>
#include <petrel/log.h>
#include <petrel/login.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/sasl.h>

#include "login_slot.h"

struct petrel_login {
    const struct petrel_login_frame *frame;
    const struct petrel_auth_ops *auth;
    struct petrel_sasl *sasl; /* owns the credentials the request points to */
    enum petrel_sasl_mech mech;
    struct petrel_auth_request req;
    struct petrel_auth_result result;
    char service[16];
    char ip[64];
};

static const struct petrel_auth_ops *auth_service(void)
{
    return petrel_service_lookup(PETREL_AUTH_SERVICE, PETREL_AUTH_VERSION);
}

bool petrel_login_offered(struct petrel_conn *c)
{
    const struct petrel_auth_ops *auth = auth_service();
    return auth != NULL && auth->plaintext_allowed(petrel_conn_is_tls(c));
}

bool petrel_login_active(struct petrel_conn *c) { return *petrel_conn_login_slot(c) != NULL; }

static void login_free(struct petrel_login *l)
{
    petrel_sasl_free(l->sasl);
    free(l);
}

/* While the check or the delay runs, the slot is empty and the job owns
 * the login: only one waiting for lines is left here. */
void petrel_login_cancel(struct petrel_conn *c) { petrel_login_drop(c); }

void petrel_login_drop(struct petrel_conn *c)
{
    struct petrel_login **slot = petrel_conn_login_slot(c);
    if (*slot != NULL)
        login_free(*slot);
    *slot = NULL;
}

/* Report and end. Failures that count are counted; the last one allowed
 * closes the connection once the protocol has answered. */
static void finish(struct petrel_conn *c, enum petrel_login_status status, const char *reason)
{
    struct petrel_login **slot = petrel_conn_login_slot(c);
    struct petrel_login *l = *slot;
    uint16_t *errors = petrel_conn_login_errors(c);
    *slot = NULL;
    struct petrel_login_result r = {.status = status, .reason = reason};
    switch (status) {
    case PETREL_LOGIN_OK:
        r.user = l->result.user;
        petrel_conn_log(c, PETREL_LOG_INFO, "authenticated as %s", r.user);
        break;
    case PETREL_LOGIN_FAILED:
    case PETREL_LOGIN_TEMPFAIL:
    case PETREL_LOGIN_RATELIMITED:
    case PETREL_LOGIN_DROPPED: {
        struct petrel_error_limits lim;
        petrel_conn_error_limits(c, &lim);
        if (*errors < UINT16_MAX)
            (*errors)++;
        r.closing = status == PETREL_LOGIN_DROPPED ||
                    (lim.max_auth_errors > 0 && *errors >= lim.max_auth_errors);
        if (r.closing && status != PETREL_LOGIN_DROPPED)
            petrel_conn_log(c, PETREL_LOG_INFO, "too many failed logins (%u): closing",
                            (unsigned)*errors);
        break;
    }
    default:
        break;
    }
    r.errors = *errors;
    l->frame->done(c, &r);
    if (r.closing)
        petrel_conn_close(c);
    login_free(l);
}

static void work(void *arg)
{
    struct petrel_login *l = arg;
    l->auth->authenticate(&l->req, &l->result);
}

static enum petrel_login_status status_of(enum petrel_auth_status s)
{
    switch (s) {
    case PETREL_AUTH_OK:
        return PETREL_LOGIN_OK;
    case PETREL_AUTH_FAILED:
        return PETREL_LOGIN_FAILED;
    case PETREL_AUTH_RATELIMITED:
        return PETREL_LOGIN_RATELIMITED;
    case PETREL_AUTH_TEMPFAIL:
    default:
        return PETREL_LOGIN_TEMPFAIL;
    }
}

static void delayed(struct petrel_conn *c, void *arg, bool closing)
{
    struct petrel_login *l = arg;
    if (closing) {
        login_free(l);
        return;
    }
    *petrel_conn_login_slot(c) = l;
    finish(c, PETREL_LOGIN_FAILED, l->result.reason);
}

static void checked(struct petrel_conn *c, void *arg, bool closing)
{
    struct petrel_login *l = arg;
    if (closing) {
        login_free(l);
        return;
    }
    if (l->result.status != PETREL_AUTH_OK)
        petrel_conn_log(c, PETREL_LOG_INFO, "authentication failed: %s", l->result.reason);
    struct petrel_login **slot = petrel_conn_login_slot(c);
    if (l->result.delay_ms > 0) {
        if (petrel_conn_delay(c, l->result.delay_ms, delayed, l))
            return; /* the delay owns it, until it ends */
        /* Answered at once, a failure would let the client guess as fast
         * as the hash allows: drop it instead (the auth service keeps the
         * delay within what the core holds, so this is not expected). */
        petrel_conn_log(c, PETREL_LOG_WARNING, "cannot delay the failed login by %u ms: closing",
                        l->result.delay_ms);
        *slot = l;
        finish(c, PETREL_LOGIN_DROPPED, l->result.reason);
        return;
    }
    *slot = l;
    finish(c, status_of(l->result.status), l->result.reason);
}

/* The exchange is complete: the check goes to a worker. */
static void check(struct petrel_conn *c)
{
    struct petrel_login **slot = petrel_conn_login_slot(c);
    struct petrel_login *l = *slot;
    struct petrel_sasl_credentials cred;
    petrel_sasl_credentials(l->sasl, &cred);
    petrel_strlcpy(l->ip, petrel_conn_peer(c), sizeof(l->ip));
    l->req = (struct petrel_auth_request){
        .service = l->service,
        .client_ip = l->ip,
        .tls = petrel_conn_is_tls(c),
        .mechanism = petrel_sasl_mech_name(l->mech),
        .authzid = cred.authzid,
        .authcid = cred.authcid,
        .password = cred.password,
    };
    *slot = NULL; /* the job's, until it returns */
    if (!petrel_conn_submit(c, work, checked, l)) {
        *slot = l;
        finish(c, PETREL_LOGIN_BUSY, "no worker free");
    }
}

static void step(struct petrel_conn *c, enum petrel_sasl_status st, const char *challenge,
                 const char *error)
{
    switch (st) {
    case PETREL_SASL_CONTINUE:
        (*petrel_conn_login_slot(c))->frame->challenge(c, challenge);
        return;
    case PETREL_SASL_DONE:
        check(c);
        return;
    case PETREL_SASL_CANCELLED:
        finish(c, PETREL_LOGIN_CANCELLED, "authentication cancelled");
        return;
    case PETREL_SASL_ERROR:
        petrel_conn_log(c, PETREL_LOG_INFO, "bad SASL exchange: %s", error);
        finish(c, PETREL_LOGIN_MALFORMED, error);
        return;
    }
}

bool petrel_login_start(struct petrel_conn *c, const char *service, const char *mechanism,
                        const char *initial, const struct petrel_login_frame *frame)
{
    struct petrel_login **slot = petrel_conn_login_slot(c);
    if (*slot != NULL)
        return false;
    struct petrel_login *l = petrel_calloc(1, sizeof(*l));
    l->frame = frame;
    petrel_strlcpy(l->service, service, sizeof(l->service));
    *slot = l;
    l->auth = auth_service();
    if (l->auth == NULL) {
        finish(c, PETREL_LOGIN_TEMPFAIL, "no auth service");
        return true;
    }
    if (!petrel_sasl_mech_parse(mechanism, &l->mech)) {
        finish(c, PETREL_LOGIN_NO_MECHANISM, "unrecognized authentication mechanism");
        return true;
    }
    if (!l->auth->plaintext_allowed(petrel_conn_is_tls(c))) {
        finish(c, PETREL_LOGIN_NEEDS_TLS, "plaintext authentication needs TLS");
        return true;
    }
    l->sasl = petrel_sasl_new(l->mech);
    const char *challenge = NULL, *error = NULL;
    enum petrel_sasl_status st = petrel_sasl_start(l->sasl, initial, &challenge, &error);
    step(c, st, challenge, error);
    return true;
}

void petrel_login_line(struct petrel_conn *c, const char *line, size_t len)
{
    struct petrel_login *l = *petrel_conn_login_slot(c);
    if (l == NULL)
        return;
    const char *challenge = NULL, *error = NULL;
    enum petrel_sasl_status st = petrel_sasl_step(l->sasl, line, len, &challenge, &error);
    step(c, st, challenge, error);
}
