/* A module for the configuration snapshot tests (petrel_ctx_config_ref,
 * derive/free_derived, PETREL_SETTING_IPSET). Its line protocol:
 *
 *   HOLD ms   a worker takes the current generation, reads alpha, sleeps
 *             ms (a reload may happen meanwhile), reads beta and the
 *             derived state, and answers +OK alpha=A beta=B derived=A/B
 *   NOW       the same without sleeping: the generation current now
 *   CONN      alpha and the derived state of the connection's generation
 *   PEER      +OK in or +OK out: the client against the `nets` setting
 *   LIVE      +OK N: derived states not freed yet (one per live generation)
 *
 * alpha and beta are meant to be changed together: a reader that mixed
 * two generations would answer with one old and one new. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <petrel/ipset.h>
#include <petrel/mem.h>
#include <petrel/module.h>

struct snap_config {
    char *alpha;
    char *beta;
    const struct petrel_ipset *nets;
    bool fail_derive;
};

static const struct petrel_setting settings[] = {
    PETREL_SETTING_STRING(struct snap_config, alpha, "a0"),
    PETREL_SETTING_STRING(struct snap_config, beta, "b0"),
    PETREL_SETTING_IPSET(struct snap_config, nets, NULL),
    PETREL_SETTING_BOOL(struct snap_config, fail_derive, "false"),
    PETREL_SETTINGS_END,
};

struct snap_derived {
    char both[160]; /* "alpha/beta", built once per generation */
};

static struct petrel_ctx *snap_ctx;
static atomic_int live_derived;

static int snap_derive(const void *config, void **derived_r, const char **error_r)
{
    const struct snap_config *c = config;
    if (c->fail_derive) {
        *error_r = "asked to fail by fail_derive";
        return -1;
    }
    struct snap_derived *d = petrel_calloc(1, sizeof(*d));
    petrel_snprintf(d->both, sizeof(d->both), "%s/%s", c->alpha, c->beta);
    atomic_fetch_add(&live_derived, 1);
    *derived_r = d;
    return 0;
}

static void snap_free_derived(void *derived)
{
    atomic_fetch_sub(&live_derived, 1);
    free(derived);
}

struct hold_job {
    long ms;
    char answer[400];
};

/* On a worker: everything read from the one generation it holds. */
static void hold_work(void *arg)
{
    struct hold_job *job = arg;
    struct petrel_config *gen = petrel_ctx_config_ref(snap_ctx);
    const struct snap_config *c = petrel_config_settings(gen, snap_ctx);
    char alpha[64];
    petrel_strlcpy(alpha, c->alpha, sizeof(alpha));
    if (job->ms > 0) {
        petrel_log(PETREL_LOG_INFO, "snapmod", "holding alpha=%s for %ld ms", alpha, job->ms);
        struct timespec ts = {job->ms / 1000, (job->ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    const struct snap_derived *d = petrel_config_derived(gen, snap_ctx);
    petrel_snprintf(job->answer, sizeof(job->answer), "+OK alpha=%s beta=%s derived=%s", alpha,
                    c->beta, d->both);
    petrel_config_unref(gen);
}

static void hold_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct hold_job *job = arg;
    if (!closing)
        petrel_conn_printf(conn, "%s\r\n", job->answer);
    free(job);
}

static void cmd_hold(struct petrel_conn *conn, long ms)
{
    struct hold_job *job = petrel_calloc(1, sizeof(*job));
    job->ms = ms;
    if (!petrel_conn_submit(conn, hold_work, hold_done, job)) {
        free(job);
        petrel_conn_printf(conn, "-ERR busy\r\n");
    }
}

static void snap_connect(struct petrel_conn *conn) { petrel_conn_printf(conn, "+OK snap\r\n"); }

static void snap_line(struct petrel_conn *conn, char *line, size_t len)
{
    (void)len;
    const struct snap_config *c = petrel_conn_config(conn);
    if (strncasecmp(line, "HOLD ", 5) == 0) {
        long ms = strtol(line + 5, NULL, 10);
        cmd_hold(conn, ms > 0 && ms <= 10000 ? ms : 0);
    } else if (strcasecmp(line, "NOW") == 0) {
        cmd_hold(conn, 0);
    } else if (strcasecmp(line, "CONN") == 0) {
        const struct snap_derived *d = petrel_conn_derived(conn);
        petrel_conn_printf(conn, "+OK alpha=%s beta=%s derived=%s\r\n", c->alpha, c->beta, d->both);
    } else if (strcasecmp(line, "PEER") == 0) {
        bool in = petrel_ipset_contains_text(c->nets, petrel_conn_peer(conn));
        petrel_conn_printf(conn, "+OK %s\r\n", in ? "in" : "out");
    } else if (strcasecmp(line, "LIVE") == 0) {
        petrel_conn_printf(conn, "+OK %d\r\n", atomic_load(&live_derived));
    } else {
        petrel_conn_printf(conn, "-ERR unknown command\r\n");
    }
}

static const struct petrel_protocol snap_protocol = {
    .name = "snap",
    .connect = snap_connect,
    .line = snap_line,
};

static int snap_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)config;
    snap_ctx = ctx;
    if (petrel_protocol_register(ctx, &snap_protocol) < 0) {
        *error_r = "cannot register the snap protocol";
        return -1;
    }
    return 0;
}

PETREL_MODULE(.name = "snapmod", .version = "1.0", .settings = settings,
              .config_size = sizeof(struct snap_config), .derive = snap_derive,
              .free_derived = snap_free_derived, .init = snap_init);
