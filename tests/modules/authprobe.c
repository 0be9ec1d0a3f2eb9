/* authprobe: a small line protocol for the tests that drives the SASL
 * parser and the auth and userdb services over real sockets, as IMAP, POP3
 * and SMTP will:
 *
 *   AUTH PLAIN|LOGIN [initial]  "+ challenge" lines until +OK user / -ERR
 *   LOOKUP address              +OK account|alias ... / -ERR not found
 *   LOCAL domain                +OK yes|no
 *   QUIT
 *
 * AUTH goes through the core's login flow (petrel/login.h), as every
 * protocol's does: the check on a worker, a failure answered after the
 * delay the auth service asks for.
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
#include <petrel/login.h>
#include <petrel/userdb.h>

struct lookup_job {
    char address[300];
    int found;
    struct petrel_buf reply;
};

static const struct petrel_userdb_ops *userdb;

static void probe_connect(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "+OK authprobe ready\r\n");
}

/* The core's login flow does the exchange, the check on a worker and the
 * failure delay; the probe only frames it. */
static void challenge(struct petrel_conn *conn, const char *text)
{
    petrel_conn_printf(conn, "+ %s\r\n", text);
}

static void done(struct petrel_conn *conn, const struct petrel_login_result *r)
{
    petrel_conn_log(conn, PETREL_LOG_DEBUG, "auth: %s", r->reason ? r->reason : "ok");
    switch (r->status) {
    case PETREL_LOGIN_OK:
        petrel_conn_printf(conn, "+OK %s\r\n", r->user);
        break;
    case PETREL_LOGIN_FAILED:
        petrel_conn_printf(conn, "-ERR authentication failed\r\n");
        break;
    case PETREL_LOGIN_TEMPFAIL:
        petrel_conn_printf(conn, "-ERR temporary failure, try again later\r\n");
        break;
    case PETREL_LOGIN_BUSY:
        petrel_conn_printf(conn, "-ERR server busy, try again later\r\n");
        break;
    case PETREL_LOGIN_RATELIMITED:
        petrel_conn_printf(conn, "-ERR too many failures, try again later\r\n");
        break;
    case PETREL_LOGIN_CANCELLED:
        petrel_conn_printf(conn, "-ERR authentication cancelled\r\n");
        break;
    case PETREL_LOGIN_MALFORMED:
        petrel_conn_printf(conn, "-ERR %s\r\n", r->reason);
        break;
    case PETREL_LOGIN_NO_MECHANISM:
        petrel_conn_printf(conn, "-ERR unknown mechanism\r\n");
        break;
    case PETREL_LOGIN_NEEDS_TLS:
        petrel_conn_printf(conn, "-ERR plaintext authentication needs TLS\r\n");
        break;
    case PETREL_LOGIN_DROPPED:
        break; /* closed without an answer */
    }
}

static const struct petrel_login_frame frame = {.challenge = challenge, .done = done};

static void cmd_auth(struct petrel_conn *conn, char *arg)
{
    char *initial = strchr(arg, ' ');
    if (initial != NULL)
        *initial++ = '\0';
    petrel_login_start(conn, "authprobe", arg, initial, &frame);
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
    if (petrel_login_active(conn)) {
        petrel_login_line(conn, line, len);
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
        cmd_auth(conn, arg);
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

static void probe_shutdown(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "-ERR server shutting down\r\n");
}

static const struct petrel_protocol probe_protocol = {
    .name = "authprobe",
    .connect = probe_connect,
    .line = probe_line,
    .shutdown = probe_shutdown,
};

static int probe_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    userdb = petrel_service_lookup(PETREL_USERDB_SERVICE, PETREL_USERDB_VERSION);
    if (petrel_service_lookup(PETREL_AUTH_SERVICE, PETREL_AUTH_VERSION) == NULL || userdb == NULL) {
        *error_r = "auth or userdb service missing";
        return -1;
    }
    return petrel_protocol_register(ctx, &probe_protocol);
}

static const char *const needs[] = {PETREL_AUTH_SERVICE, PETREL_USERDB_SERVICE, NULL};

PETREL_MODULE(.name = "authprobe", .version = "1.0", .needs = needs, .init = probe_init);
