/* auth: the login policy behind the "auth" service. Needs a "userdb". */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/password.h>

#include "auth_private.h"

struct auth_config {
    long long failure_delay;
    long long max_failure_delay;
    long long max_failures_per_ip;
    long long max_failures_per_account;
    long long max_failures_per_network;
    long long account_slowdown_after;
    long long failure_window;
    long long lockout;
    long long remember_logins;
    long long track_max;
    bool plaintext_without_tls;
};

static const struct petrel_setting settings[] = {
    PETREL_SETTING_DURATION(struct auth_config, failure_delay, "2s", 0, 60),
    PETREL_SETTING_DURATION(struct auth_config, max_failure_delay, "15s", 0, 300),
    PETREL_SETTING_INT(struct auth_config, max_failures_per_ip, "20", 0, 1000000),
    PETREL_SETTING_INT(struct auth_config, max_failures_per_account, "10", 0, 1000000),
    PETREL_SETTING_INT(struct auth_config, max_failures_per_network, "100", 0, 1000000),
    PETREL_SETTING_INT(struct auth_config, account_slowdown_after, "20", 0, 1000000),
    PETREL_SETTING_DURATION(struct auth_config, failure_window, "15m", 1, 86400),
    PETREL_SETTING_DURATION(struct auth_config, lockout, "15m", 1, 86400),
    PETREL_SETTING_DURATION(struct auth_config, remember_logins, "30d", 0, 7776000),
    PETREL_SETTING_INT_F(struct auth_config, track_max, "16384", 16, 4194304, PETREL_SETTING_FIXED),
    PETREL_SETTING_BOOL(struct auth_config, plaintext_without_tls, "false"),
    PETREL_SETTINGS_END,
};

static bool auth_plaintext_allowed(bool tls)
{
    if (tls)
        return true;
    struct petrel_config *gen = petrel_ctx_config_ref(auth_state.ctx);
    const struct auth_config *c = petrel_config_settings(gen, auth_state.ctx);
    bool allowed = c->plaintext_without_tls;
    petrel_config_unref(gen);
    return allowed;
}

static const struct petrel_auth_ops auth_ops = {
    .size = sizeof(struct petrel_auth_ops),
    .authenticate = auth_authenticate,
    .plaintext_allowed = auth_plaintext_allowed,
};

/* The guard's limits in milliseconds, built once per generation and
 * read by each login from the generation it holds. */
static int auth_derive(const void *config, void **derived_r, const char **error_r)
{
    const struct auth_config *c = config;
    /* max_failure_delay used to go up to 300 s: such a config still loads,
     * but no connection is held longer than 60 s (the guard caps it). */
    if (c->max_failure_delay * 1000 > AUTH_DELAY_MAX_MS)
        petrel_log(PETREL_LOG_WARNING, "auth",
                   "max_failure_delay %llds is longer than a login can be delayed: using %ds",
                   c->max_failure_delay, AUTH_DELAY_MAX_MS / 1000);
    struct auth_guard_config *g = petrel_malloc(sizeof(*g));
    *g = (struct auth_guard_config){
        .max_per_ip = (unsigned)c->max_failures_per_ip,
        .max_per_pair = (unsigned)c->max_failures_per_account,
        .max_per_net = (unsigned)c->max_failures_per_network,
        .account_slow_after = (unsigned)c->account_slowdown_after,
        .window_ms = c->failure_window * 1000,
        .lockout_ms = c->lockout * 1000,
        .remember_ms = c->remember_logins * 1000,
        .failure_delay_ms = c->failure_delay * 1000,
        .max_failure_delay_ms = c->max_failure_delay * 1000,
    };
    *derived_r = g;
    return 0;
}

static int auth_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    const struct auth_config *c = config;
    auth_state.userdb = petrel_service_lookup(PETREL_USERDB_SERVICE, PETREL_USERDB_VERSION);
    if (auth_state.userdb == NULL ||
        auth_state.userdb->size < offsetof(struct petrel_userdb_ops, entry_free) + sizeof(void *)) {
        *error_r = "no usable userdb service";
        return -1;
    }
    petrel_strlcpy(auth_state.primary, petrel_primary_domain(), sizeof(auth_state.primary));
    /* A hash of the same scheme real accounts use, so that checking an
     * unknown user costs what checking a real one does. */
    auth_state.dummy_hash =
        petrel_password_hash("petrel-dummy-password", PETREL_PASSWORD_YESCRYPT, error_r);
    if (auth_state.dummy_hash == NULL)
        return -1;
    auth_guard_init(&auth_state.guard, (size_t)c->track_max);
    auth_state.ctx = ctx;
    return petrel_service_register(ctx, PETREL_AUTH_SERVICE, PETREL_AUTH_VERSION, &auth_ops);
}

static void auth_stop(struct petrel_ctx *ctx)
{
    auth_guard_free(&auth_state.guard);
    free(auth_state.dummy_hash);
    auth_state.dummy_hash = NULL;
}

static const char *const needs[] = {PETREL_USERDB_SERVICE, NULL};

PETREL_MODULE(.name = "auth", .version = "1.0", .needs = needs, .settings = settings,
              .config_size = sizeof(struct auth_config), .derive = auth_derive,
              .free_derived = free, .init = auth_init, .stop = auth_stop);
