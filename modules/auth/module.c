/* auth: the login policy behind the "auth" service. Needs a "userdb". */
#include <stdatomic.h>
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
    long long max_failures_per_ip;
    long long max_failures_per_account;
    long long failure_window;
    long long lockout;
    long long track_max;
    bool plaintext_without_tls;
};

/* clang-format off */
static const struct petrel_setting settings[] = {
    {"failure_delay", PETREL_SETTING_DURATION, offsetof(struct auth_config, failure_delay), "2s", 0, 60, 0, NULL},
    {"max_failures_per_ip", PETREL_SETTING_INT, offsetof(struct auth_config, max_failures_per_ip), "20", 0, 1000000, 0, NULL},
    {"max_failures_per_account", PETREL_SETTING_INT, offsetof(struct auth_config, max_failures_per_account), "10", 0, 1000000, 0, NULL},
    {"failure_window", PETREL_SETTING_DURATION, offsetof(struct auth_config, failure_window), "15m", 1, 86400, 0, NULL},
    {"lockout", PETREL_SETTING_DURATION, offsetof(struct auth_config, lockout), "15m", 1, 86400, 0, NULL},
    {"track_max", PETREL_SETTING_INT, offsetof(struct auth_config, track_max), "16384", 16, 4194304, PETREL_SETTING_FIXED, NULL},
    {"plaintext_without_tls", PETREL_SETTING_BOOL, offsetof(struct auth_config, plaintext_without_tls), "false", 0, 0, 0, NULL},
    PETREL_SETTINGS_END,
};
/* clang-format on */

static bool auth_plaintext_allowed(bool tls)
{
    return tls || atomic_load(&auth_state.plaintext_without_tls);
}

static const struct petrel_auth_ops auth_ops = {
    .size = sizeof(struct petrel_auth_ops),
    .authenticate = auth_authenticate,
    .plaintext_allowed = auth_plaintext_allowed,
};

/* Settings that may change on reload, applied where workers read them. */
static void apply(const struct auth_config *c)
{
    atomic_store(&auth_state.failure_delay_ms, c->failure_delay * 1000);
    atomic_store(&auth_state.plaintext_without_tls, c->plaintext_without_tls);
    auth_limits_set(&auth_state.per_ip, (unsigned)c->max_failures_per_ip, c->failure_window * 1000,
                    c->lockout * 1000);
    auth_limits_set(&auth_state.per_account, (unsigned)c->max_failures_per_account,
                    c->failure_window * 1000, c->lockout * 1000);
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
    auth_limits_init(&auth_state.per_ip, (size_t)c->track_max, 0, 1, 1);
    auth_limits_init(&auth_state.per_account, (size_t)c->track_max, 0, 1, 1);
    apply(c);
    return petrel_service_register(ctx, PETREL_AUTH_SERVICE, PETREL_AUTH_VERSION, &auth_ops);
}

static int auth_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    apply(config);
    return 0;
}

static void auth_stop(struct petrel_ctx *ctx)
{
    auth_limits_free(&auth_state.per_ip);
    auth_limits_free(&auth_state.per_account);
    free(auth_state.dummy_hash);
    auth_state.dummy_hash = NULL;
}

static const char *const needs[] = {PETREL_USERDB_SERVICE, NULL};

PETREL_MODULE(.name = "auth", .version = "1.0", .needs = needs, .settings = settings,
              .config_size = sizeof(struct auth_config), .init = auth_init, .reload = auth_reload,
              .stop = auth_stop);
