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

static const struct petrel_setting settings[] = {
    PETREL_SETTING_BOOL(struct testmod_config, fail_init, "false"),
    PETREL_SETTING_BOOL(struct testmod_config, refuse_reload, "false"),
    PETREL_SETTING_STRING_F(struct testmod_config, label, "test", PETREL_SETTING_FIXED),
    PETREL_SETTINGS_END,
};

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
