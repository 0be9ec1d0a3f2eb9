/* The processing module: its settings, the "queue" service and the
 * queue commands (admin.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "processing.h"

static const char *const quota_choices[] = {"temporary", "permanent", NULL};

static const struct petrel_setting proc_settings[] = {
    PETREL_SETTING_STRING_F(struct proc_config, queue_dir, "queue", PETREL_SETTING_FIXED),
    PETREL_SETTING_SIZE(struct proc_config, memory_limit, "1M", 4096, 1073741824LL),
    PETREL_SETTING_INT(struct proc_config, max_hops, "50", 1, 1000),
    PETREL_SETTING_INT(struct proc_config, max_expansion, "1000", 1, 10000),
    PETREL_SETTING_CHOICE(struct proc_config, quota_failure, "temporary", quota_choices),
    PETREL_SETTING_BOOL(struct proc_config, direct_delivery, "true"),
    PETREL_SETTING_BOOL(struct proc_config, fsync, "true"),
    PETREL_SETTING_DURATION(struct proc_config, retry_min, "5m", 1, 86400),
    PETREL_SETTING_DURATION(struct proc_config, retry_max, "1h", 1, 604800),
    PETREL_SETTING_DURATION(struct proc_config, lifetime, "5d", 60, 31536000),
    PETREL_SETTING_DURATION(struct proc_config, delay_warning, "4h", 0, 31536000),
    PETREL_SETTING_INT(struct proc_config, runner_jobs, "4", 1, 64),
    PETREL_SETTING_SIZE(struct proc_config, min_free_space, "100M", 0, 1LL << 50),
    PETREL_SETTING_BOOL(struct proc_config, srs, "true"),
    PETREL_SETTING_STRING(struct proc_config, srs_domain, ""),
    PETREL_SETTING_STRING_F(struct proc_config, srs_secret_file, "", PETREL_SETTING_FIXED),
    /* Less than the 1024 days after which the timestamp wraps. */
    PETREL_SETTING_DURATION(struct proc_config, srs_max_age, "21d", SRS_DAY, 1000LL * SRS_DAY),
    PETREL_SETTINGS_END,
};

struct proc_env proc_env;

static const struct petrel_queue_ops queue_ops = {
    .size = sizeof(struct petrel_queue_ops),
    .begin = proc_begin,
    .write = proc_write,
    .commit = proc_commit,
    .abort = proc_abort,
    .has_room = proc_has_room,
    .local_address = proc_local_address,
};

static int proc_check(const void *config, const char **error_r)
{
    const struct proc_config *c = config;
    if (c->retry_min > c->retry_max) {
        *error_r = "retry_min is longer than retry_max";
        return -1;
    }
    if (c->queue_dir[0] == '\0' || strstr(c->queue_dir, "..") != NULL) {
        *error_r = "queue_dir must be a path without '..'";
        return -1;
    }
    if (strlen(c->srs_domain) > 253 || strchr(c->srs_domain, '@') != NULL) {
        *error_r = "srs_domain must be a domain name";
        return -1;
    }
    return 0;
}

/* The settings in the form the pipeline uses, once per generation. */
static int proc_derive(const void *config, void **derived_r, const char **error_r)
{
    (void)error_r;
    const struct proc_config *c = config;
    struct proc_settings *s = petrel_malloc(sizeof(*s));
    *s = (struct proc_settings){
        .memory_limit = (size_t)c->memory_limit,
        .max_hops = (unsigned)c->max_hops,
        .max_expansion = (unsigned)c->max_expansion,
        .runner_jobs = (unsigned)c->runner_jobs,
        .quota_permanent = strcmp(c->quota_failure, "permanent") == 0,
        .direct_delivery = c->direct_delivery,
        .fsync = c->fsync,
        .retry_min = c->retry_min,
        .retry_max = c->retry_max,
        .lifetime = c->lifetime,
        .delay_warning = c->delay_warning,
        .min_free_space = c->min_free_space,
        .srs = c->srs,
        .srs_max_days = (unsigned)(c->srs_max_age / SRS_DAY),
    };
    petrel_strlcpy(s->srs_domain, c->srs_domain, sizeof(s->srs_domain));
    *derived_r = s;
    return 0;
}

const struct proc_settings *proc_settings_ref(struct petrel_config **gen_r)
{
    if (proc_env.unit_settings != NULL) {
        *gen_r = NULL;
        return proc_env.unit_settings;
    }
    *gen_r = petrel_ctx_config_ref(proc_env.ctx);
    return petrel_config_derived(*gen_r, proc_env.ctx);
}

bool proc_queue_root(const struct proc_config *c, char *out, size_t size)
{
    return c->queue_dir[0] == '/'
               ? petrel_strlcpy(out, c->queue_dir, size)
               : petrel_snprintf(out, size, "%s/%s", petrel_data_dir(), c->queue_dir);
}

static int proc_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    const struct proc_config *c = config;
    proc_env.storage = petrel_service_lookup(PETREL_STORAGE_SERVICE, 1);
    proc_env.userdb = petrel_service_lookup(PETREL_USERDB_SERVICE, 1);
    if (proc_env.storage == NULL || proc_env.userdb == NULL) {
        *error_r = "needs the storage and userdb services";
        return -1;
    }
    if (!proc_queue_root(c, proc_env.queue, sizeof(proc_env.queue))) {
        *error_r = "queue_dir is too long";
        return -1;
    }
    petrel_strlcpy(proc_env.hostname, petrel_hostname(), sizeof(proc_env.hostname));
    proc_env.ctx = ctx;
    if (proc_srs_init(c, error_r) < 0)
        return -1;
    proc_runner_prepare();
    return petrel_service_register(ctx, PETREL_QUEUE_SERVICE, PETREL_QUEUE_VERSION, &queue_ops);
}

static int proc_start(struct petrel_ctx *ctx, const char **error_r)
{
    (void)ctx;
    proc_env.transport = petrel_service_lookup(PETREL_TRANSPORT_SERVICE, PETREL_TRANSPORT_VERSION);
    /* The SRS keys first: the runner's workers read them once it starts. */
    int ret = proc_srs_start(error_r);
    if (ret == 0)
        ret = proc_runner_start(error_r);
    proc_space_prime(); /* the queue directory exists now */
    return ret;
}

static int proc_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)ctx, (void)config, (void)error_r;
    proc_runner_kick(); /* retry_min or runner_jobs may have changed */
    return 0;
}

static void proc_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    proc_runner_stop();
}

static const char *const proc_needs[] = {PETREL_STORAGE_SERVICE, PETREL_USERDB_SERVICE, NULL};

PETREL_MODULE(.name = "processing", .version = "1.0", .needs = proc_needs,
              .settings = proc_settings, .config_size = sizeof(struct proc_config),
              .check = proc_check, .derive = proc_derive, .free_derived = free, .init = proc_init,
              .start = proc_start, .reload = proc_reload, .stop = proc_stop,
              .admin = proc_admin_commands);
