/* userdb_file: the embedded account database. Loads the file named by the
 * `file` setting, registers the "userdb" service, and re-reads the file
 * when it changes (checked every check_interval on a worker, or at every
 * lookup when it is 0), on SIGHUP, or at once on `petrelctl userdb_file
 * reload`, which petrelctl's account commands (admin.c) send after a
 * change. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/schedule.h>
#include <petrel/userdb.h>

#include "userdb_file.h"

#define MODULE_NAME "userdb_file"

static const struct petrel_setting settings[] = {
    PETREL_SETTING_STRING_F(struct userdb_file_config, file, "users", PETREL_SETTING_FIXED),
    PETREL_SETTING_DURATION(struct userdb_file_config, check_interval, "1s", 0, 3600),
    PETREL_SETTINGS_END,
};

/* One database per process; set in init, read by worker threads after. */
static struct userdb_source source;
static const struct petrel_ctx *module_ctx;
/* petrel_primary_domain() is for the main thread: copied in init. */
static char primary[256];

/* Whether the file changed is a schedule's question (below), except with
 * check_interval 0, where every lookup asks (small sites, tests). */
static struct userdb_snapshot *current(void)
{
    struct petrel_config *gen = petrel_ctx_config_ref(module_ctx);
    const struct userdb_file_config *c = petrel_config_settings(gen, module_ctx);
    struct userdb_snapshot *s = userdb_source_get(&source, c->check_interval == 0 ? 0 : LLONG_MAX);
    petrel_config_unref(gen);
    return s;
}

/* The check every check_interval; set from the main thread (start,
 * reload, stop). */
static struct petrel_schedule *checker;
static long long checker_s = -1;

static void check_work(void *arg)
{
    (void)arg;
    userdb_source_reload(&source, false);
}

static void schedule_checks(long long interval_s)
{
    if (interval_s == checker_s)
        return;
    petrel_schedule_cancel(checker);
    checker = interval_s > 0
                  ? petrel_schedule_every((unsigned)(interval_s * 1000), check_work, NULL)
                  : NULL;
    checker_s = interval_s;
}

static bool ud_domain_is_local(const char *domain)
{
    char lower[256];
    size_t n = strlen(domain);
    if (n == 0 || n >= sizeof(lower))
        return false;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
    struct userdb_snapshot *s = current();
    bool local = userdb_find(&s->db, USERDB_DOMAIN, lower) != NULL;
    userdb_snapshot_unref(s);
    return local;
}

static int find(const char *address, bool login, struct petrel_userdb_entry **entry_r)
{
    char key[USERDB_ADDRESS_MAX + 1];
    *entry_r = NULL;
    if (!userdb_canonical(address, primary, key, sizeof(key)))
        return PETREL_USERDB_NOT_FOUND; /* not an address we could hold */
    struct userdb_snapshot *s = current();
    int r = userdb_lookup_entry(&s->db, key, login, entry_r);
    userdb_snapshot_unref(s);
    return r;
}

static int ud_lookup(const char *address, struct petrel_userdb_entry **entry_r,
                     const char **error_r)
{
    return find(address, false, entry_r);
}

static int ud_password(const char *user, struct petrel_userdb_entry **entry_r, const char **error_r)
{
    return find(user, true, entry_r);
}

static const struct petrel_userdb_ops userdb_ops = {
    .size = sizeof(struct petrel_userdb_ops),
    .domain_is_local = ud_domain_is_local,
    .lookup = ud_lookup,
    .password = ud_password,
    .entry_free = userdb_entry_free,
};

bool userdb_file_path(const struct userdb_file_config *c, char *out, size_t size)
{
    if (c->file[0] == '/')
        return petrel_strlcpy(out, c->file, size);
    return petrel_snprintf(out, size, "%s/%s", petrel_data_dir(), c->file);
}

int userdb_file_reload_now(char *why, size_t why_size, size_t *entries_r, size_t *bad_r)
{
    if (userdb_source_reload_now(&source, why, why_size) < 0)
        return -1;
    struct userdb_snapshot *s = userdb_source_get(&source, LLONG_MAX);
    *entries_r = s->db.count;
    *bad_r = s->db.nerrors;
    userdb_snapshot_unref(s);
    return 1;
}

static int userdb_file_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    static char path[PATH_MAX];
    if (!userdb_file_path(config, path, sizeof(path))) {
        *error_r = "file: path too long";
        return -1;
    }
    petrel_strlcpy(primary, petrel_primary_domain(), sizeof(primary));
    module_ctx = ctx;
    if (userdb_source_open(&source, path, MODULE_NAME, error_r) < 0)
        return -1;
    return petrel_service_register(ctx, PETREL_USERDB_SERVICE, PETREL_USERDB_VERSION, &userdb_ops);
}

/* SIGHUP: re-read even if the file looks the same (an edit within the
 * same second and size is otherwise invisible on coarse file systems). */
static int userdb_file_start(struct petrel_ctx *ctx, const char **error_r)
{
    (void)error_r;
    schedule_checks(((const struct userdb_file_config *)petrel_ctx_config(ctx))->check_interval);
    return 0;
}

static int userdb_file_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    schedule_checks(((const struct userdb_file_config *)config)->check_interval);
    /* A failure is logged by the reload and the old data stays: the rest
     * of the configuration still applies, so this is not an error. */
    int r = userdb_source_reload(&source, true);
    if (r < 0)
        petrel_log(PETREL_LOG_WARNING, MODULE_NAME, "%s not re-read on reload: old data kept",
                   source.path);
    else if (r == 0)
        petrel_log(PETREL_LOG_INFO, MODULE_NAME,
                   "%s: reload already running, it will re-read the file once more", source.path);
    return 0;
}

static void userdb_file_stop(struct petrel_ctx *ctx)
{
    schedule_checks(-1);
    userdb_source_close(&source);
}

PETREL_MODULE(.name = MODULE_NAME, .version = "1.0", .settings = settings,
              .config_size = sizeof(struct userdb_file_config), .init = userdb_file_init,
              .start = userdb_file_start, .reload = userdb_file_reload, .stop = userdb_file_stop,
              .admin = userdb_file_admin);
