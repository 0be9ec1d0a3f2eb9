/* A module for the loader's tests: provides the "testsvc" service, can be
 * told to fail its init or refuse a reload, and registers a hook. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <petrel/module.h>

struct testmod_config {
    bool fail_init;
    bool refuse_reload;
    char *label;
};

/* clang-format off */
static const struct petrel_setting settings[] = {
    {"fail_init", PETREL_SETTING_BOOL, offsetof(struct testmod_config, fail_init), "false", 0, 0, 0, NULL},
    {"refuse_reload", PETREL_SETTING_BOOL, offsetof(struct testmod_config, refuse_reload), "false", 0, 0, 0, NULL},
    {"label", PETREL_SETTING_STRING, offsetof(struct testmod_config, label), "test", 0, 0, PETREL_SETTING_FIXED, NULL},
    PETREL_SETTINGS_END,
};
/* clang-format on */

static const int answer = 42;

static enum petrel_verdict deny_evil(void *data, void *event, const char **reason_r)
{
    if (strcmp(event, "evil") != 0)
        return PETREL_CONTINUE;
    *reason_r = "evil is denied";
    return PETREL_DENY;
}

static int testmod_check(const void *config, const char **error_r)
{
    const struct testmod_config *c = config;
    if (strlen(c->label) > 32) {
        *error_r = "label must be at most 32 characters";
        return -1;
    }
    return 0;
}

static int testmod_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    const struct testmod_config *c = config;
    if (c->fail_init) {
        *error_r = "asked to fail by fail_init";
        return -1;
    }
    if (petrel_service_register(ctx, "testsvc", 1, &answer) < 0 ||
        petrel_hook_register(ctx, "test.check", 10, deny_evil, NULL) < 0) {
        *error_r = "registration failed";
        return -1;
    }
    const char *reason;
    if (petrel_hook_run("test.check", "evil", &reason) != PETREL_DENY) {
        *error_r = "hook did not deny";
        return -1;
    }
    petrel_log(PETREL_LOG_INFO, "testmod", "initialised, label %s", c->label);
    return 0;
}

static int testmod_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    const struct testmod_config *c = config;
    if (c->refuse_reload) {
        *error_r = "asked to refuse by refuse_reload";
        return -1;
    }
    return 0;
}

PETREL_MODULE(.name = "testmod", .version = "1.0", .settings = settings,
              .config_size = sizeof(struct testmod_config), .check = testmod_check,
              .init = testmod_init, .reload = testmod_reload);
