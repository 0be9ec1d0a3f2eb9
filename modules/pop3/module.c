/* The pop3 module: settings and the "pop3" protocol (110 with STLS, 995
 * with implicit TLS). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/module.h>

#include "pop3.h"
#include "pop3_registry.h"

static const struct petrel_setting pop3_settings[] = {
    PETREL_SETTING_INT(struct pop3_config, max_messages, "1000000", 1, 100000000),
    PETREL_SETTING_STRING(struct pop3_config, expire, ""),
    PETREL_SETTING_DURATION(struct pop3_config, login_delay, "0", 0, 86400),
    PETREL_SETTINGS_END,
};

const struct petrel_storage_ops *pop3_storage;
char pop3_hostname[256];
struct pop3_counters pop3_counters;

extern const struct petrel_protocol pop3_protocol;

/* RFC 2449 section 6.7: EXPIRE is "NEVER" or a number of days. */
static int pop3_check(const void *config, const char **error_r)
{
    const struct pop3_config *cfg = config;
    const char *e = cfg->expire;
    if (e[0] == '\0' || strcmp(e, "NEVER") == 0)
        return 0;
    if (strspn(e, "0123456789") == strlen(e) && strlen(e) <= 5)
        return 0;
    *error_r = "setting 'expire': \"NEVER\" or a number of days";
    return -1;
}

static int pop3_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)config;
    pop3_storage = petrel_service_lookup(PETREL_STORAGE_SERVICE, 1);
    if (pop3_storage == NULL) {
        *error_r = "needs the storage service (storage module)";
        return -1;
    }
    petrel_strlcpy(pop3_hostname, petrel_hostname(), sizeof(pop3_hostname));
    pop3_counters = (struct pop3_counters){
        .logins = petrel_counter("pop3.logins"),
        .in_use = petrel_counter("pop3.in_use"),
        .login_delayed = petrel_counter("pop3.login_delayed"),
        .login_delay_forgotten = petrel_counter("pop3.login_delay_forgotten"),
        .retrieved = petrel_counter("pop3.retrieved"),
        .retrieved_bytes = petrel_counter("pop3.retrieved_bytes"),
        .deleted = petrel_counter("pop3.deleted"),
    };
    if (petrel_protocol_register(ctx, &pop3_protocol) < 0) {
        *error_r = "cannot register the pop3 protocol";
        return -1;
    }
    return 0;
}

static int pop3_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)ctx, (void)config, (void)error_r;
    return 0; /* new connections get the new settings (petrel_conn_config) */
}

static void pop3_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    pop3_registry_free(); /* the sessions are gone: only login times are left */
}

static const char *const pop3_needs[] = {PETREL_STORAGE_SERVICE, NULL};

PETREL_MODULE(.name = "pop3", .version = "1.0", .needs = pop3_needs, .settings = pop3_settings,
              .config_size = sizeof(struct pop3_config), .check = pop3_check, .init = pop3_init,
              .reload = pop3_reload, .stop = pop3_stop);
