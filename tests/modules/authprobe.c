/* authprobe: a small line protocol for the tests that drives the SASL
 * parser and the auth and userdb services over real sockets, as IMAP, POP3
 * and SMTP will:
 *
 *   AUTH PLAIN|LOGIN [initial]  "+ challenge" lines until +OK user / -ERR
 *   LOOKUP address              +OK account|alias ... / -ERR not found
 *   LOCAL domain                +OK yes|no
 *   QUIT
 *
 * Authentication runs on a worker (petrel_conn_submit); a failure is
 * answered after the delay the auth service asks for (petrel_conn_delay).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/auth.h>
#include <petrel/buf.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/sasl.h>
#include <petrel/userdb.h>

struct probe_session {
    struct petrel_sasl *sasl; /* during an AUTH exchange */
    enum petrel_sasl_mech mech;
};

struct auth_job {
    struct petrel_auth_request req;
    struct petrel_auth_result result;
    char ip[64];
    struct petrel_sasl *sasl; /* owns the credentials the request points to */
};

struct lookup_job {
    char address[300];
    int found;
    struct petrel_buf reply;
};

static const struct petrel_auth_ops *auth;
static const struct petrel_userdb_ops *userdb;

static void probe_connect(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "+OK authprobe ready\r\n");
}

static void auth_work(void *arg)
{
    struct auth_job *job = arg;
    auth->authenticate(&job->req, &job->result);
}

static void answer(struct petrel_conn *conn, const struct petrel_auth_result *r)
{
    switch (r->status) {
    case PETREL_AUTH_OK:
        petrel_conn_printf(conn, "+OK %s\r\n", r->user);
        break;
    case PETREL_AUTH_FAILED:
        petrel_conn_printf(conn, "-ERR authentication failed\r\n");
        break;
    case PETREL_AUTH_TEMPFAIL:
        petrel_conn_printf(conn, "-ERR temporary failure, try again later\r\n");
        break;
    case PETREL_AUTH_RATELIMITED:
        petrel_conn_printf(conn, "-ERR too many failures, try again later\r\n");
        break;
    }
}

static void free_job(struct auth_job *job)
{
    petrel_sasl_free(job->sasl);
    free(job);
}

static void delay_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct auth_job *job = arg;
    if (!closing)
        answer(conn, &job->result);
    free_job(job);
}

static void auth_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct auth_job *job = arg;
    if (closing) {
        free_job(job);
        return;
    }
    petrel_conn_log(conn, PETREL_LOG_DEBUG, "auth: %s", job->result.reason);
    if (job->result.delay_ms > 0 && petrel_conn_delay(conn, job->result.delay_ms, delay_done, job))
        return;
    if (job->result.delay_ms > 0) {
        /* Never answer a failure before its delay: drop the client. */
        petrel_conn_log(conn, PETREL_LOG_WARNING, "cannot delay the failed login: closing");
        petrel_conn_close(conn);
        free_job(job);
        return;
    }
    answer(conn, &job->result);
    free_job(job);
}

/* The exchange is complete: hand the credentials to a worker. */
static void run_auth(struct petrel_conn *conn, struct probe_session *s)
{
    struct auth_job *job = petrel_calloc(1, sizeof(*job));
    struct petrel_sasl_credentials cred;
    petrel_sasl_credentials(s->sasl, &cred);
    job->sasl = s->sasl;
    s->sasl = NULL;
    petrel_strlcpy(job->ip, petrel_conn_peer(conn), sizeof(job->ip));
    job->req = (struct petrel_auth_request){
        .service = "authprobe",
        .client_ip = job->ip,
        .tls = petrel_conn_is_tls(conn),
        .mechanism = petrel_sasl_mech_name(s->mech),
        .authzid = cred.authzid,
        .authcid = cred.authcid,
        .password = cred.password,
    };
    if (!petrel_conn_submit(conn, auth_work, auth_done, job)) {
        free_job(job);
        petrel_conn_printf(conn, "-ERR server busy, try again later\r\n");
    }
}

static void sasl_result(struct petrel_conn *conn, struct probe_session *s,
                        enum petrel_sasl_status st, const char *challenge, const char *error)
{
    switch (st) {
    case PETREL_SASL_CONTINUE:
        petrel_conn_printf(conn, "+ %s\r\n", challenge);
        return;
    case PETREL_SASL_DONE:
        run_auth(conn, s);
        return;
    case PETREL_SASL_CANCELLED:
        petrel_conn_printf(conn, "-ERR authentication cancelled\r\n");
        break;
    case PETREL_SASL_ERROR:
        petrel_conn_log(conn, PETREL_LOG_INFO, "bad SASL exchange: %s", error);
        petrel_conn_printf(conn, "-ERR %s\r\n", error);
        break;
    }
    petrel_sasl_free(s->sasl);
    s->sasl = NULL;
}

static void cmd_auth(struct petrel_conn *conn, struct probe_session *s, char *arg)
{
    char *initial = strchr(arg, ' ');
    if (initial != NULL)
        *initial++ = '\0';
    enum petrel_sasl_mech mech;
    if (!petrel_sasl_mech_parse(arg, &mech)) {
        petrel_conn_printf(conn, "-ERR unknown mechanism\r\n");
        return;
    }
    if (!auth->plaintext_allowed(petrel_conn_is_tls(conn))) {
        petrel_conn_printf(conn, "-ERR plaintext authentication needs TLS\r\n");
        return;
    }
    s->sasl = petrel_sasl_new(mech);
    s->mech = mech;
    const char *challenge, *error = NULL;
    enum petrel_sasl_status st = petrel_sasl_start(s->sasl, initial, &challenge, &error);
    sasl_result(conn, s, st, challenge, error);
}

static void lookup_work(void *arg)
{
    struct lookup_job *job = arg;
    struct petrel_userdb_entry *e = NULL;
    const char *error = "?";
    job->found = userdb->lookup(job->address, &e, &error);
    if (job->found != PETREL_USERDB_FOUND) {
        petrel_buf_printf(&job->reply, "-ERR %s\r\n",
                          job->found == PETREL_USERDB_NOT_FOUND ? "not found" : error);
        return;
    }
    if (e->kind == PETREL_USERDB_ACCOUNT)
        petrel_buf_printf(&job->reply,
                          "+OK account %s quota=%lld messages=%lld disabled=%d keep=%d", e->address,
                          e->quota_bytes, e->quota_messages, e->disabled, e->keep);
    else
        petrel_buf_printf(&job->reply, "+OK alias %s catchall=%d", e->address, e->catchall);
    for (size_t i = 0; i < e->ntargets; i++)
        petrel_buf_printf(&job->reply, "%s%s", i == 0 ? " targets=" : ",", e->targets[i]);
    petrel_buf_printf(&job->reply, "\r\n");
    userdb->entry_free(e);
}

static void lookup_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct lookup_job *job = arg;
    if (!closing)
        petrel_conn_write(conn, petrel_buf_head(&job->reply), job->reply.len);
    petrel_buf_free(&job->reply);
    free(job);
}

static void cmd_lookup(struct petrel_conn *conn, const char *arg)
{
    struct lookup_job *job = petrel_calloc(1, sizeof(*job));
    petrel_strlcpy(job->address, arg, sizeof(job->address));
    petrel_buf_init(&job->reply, 65536);
    if (!petrel_conn_submit(conn, lookup_work, lookup_done, job)) {
        petrel_buf_free(&job->reply);
        free(job);
        petrel_conn_printf(conn, "-ERR server busy\r\n");
    }
}

/* domain_is_local blocks too (it may stat the file): a worker as well. */
static void local_work(void *arg)
{
    struct lookup_job *job = arg;
    petrel_buf_printf(&job->reply, "+OK %s\r\n",
                      userdb->domain_is_local(job->address) ? "yes" : "no");
}

static void cmd_local(struct petrel_conn *conn, const char *arg)
{
    struct lookup_job *job = petrel_calloc(1, sizeof(*job));
    petrel_strlcpy(job->address, arg, sizeof(job->address));
    petrel_buf_init(&job->reply, 1024);
    if (!petrel_conn_submit(conn, local_work, lookup_done, job)) {
        petrel_buf_free(&job->reply);
        free(job);
        petrel_conn_printf(conn, "-ERR server busy\r\n");
    }
}

static void probe_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct probe_session *s = petrel_conn_session(conn);
    if (s->sasl != NULL) {
        const char *challenge, *error = NULL;
        enum petrel_sasl_status st = petrel_sasl_step(s->sasl, line, len, &challenge, &error);
        sasl_result(conn, s, st, challenge, error);
        return;
    }
    if (strlen(line) != len) {
        petrel_conn_printf(conn, "-ERR NUL byte in command\r\n");
        return;
    }
    char *arg = strchr(line, ' ');
    if (arg != NULL)
        *arg++ = '\0';
    else
        arg = line + len;
    if (strcasecmp(line, "AUTH") == 0)
        cmd_auth(conn, s, arg);
    else if (strcasecmp(line, "LOOKUP") == 0)
        cmd_lookup(conn, arg);
    else if (strcasecmp(line, "LOCAL") == 0)
        cmd_local(conn, arg);
    else if (strcasecmp(line, "QUIT") == 0) {
        petrel_conn_printf(conn, "+OK bye\r\n");
        petrel_conn_close(conn);
    } else
        petrel_conn_printf(conn, "-ERR unknown command\r\n");
}

static void probe_close(struct petrel_conn *conn)
{
    struct probe_session *s = petrel_conn_session(conn);
    petrel_sasl_free(s->sasl);
    s->sasl = NULL;
}

static void probe_shutdown(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "-ERR server shutting down\r\n");
}

static const struct petrel_protocol probe_protocol = {
    .name = "authprobe",
    .session_size = sizeof(struct probe_session),
    .connect = probe_connect,
    .line = probe_line,
    .close = probe_close,
    .shutdown = probe_shutdown,
};

static int probe_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    auth = petrel_service_lookup(PETREL_AUTH_SERVICE, PETREL_AUTH_VERSION);
    userdb = petrel_service_lookup(PETREL_USERDB_SERVICE, PETREL_USERDB_VERSION);
    if (auth == NULL || userdb == NULL) {
        *error_r = "auth or userdb service missing";
        return -1;
    }
    return petrel_protocol_register(ctx, &probe_protocol);
}

static const char *const needs[] = {PETREL_AUTH_SERVICE, PETREL_USERDB_SERVICE, NULL};

PETREL_MODULE(.name = "authprobe", .version = "1.0", .needs = needs, .init = probe_init);
