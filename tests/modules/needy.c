/* A module that needs the "testsvc" service: start-up must fail with a
 * clear line unless a module providing it (testmod) is enabled too. */
#include <petrel/module.h>

static const char *const needs[] = {"testsvc", NULL};

static int needy_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    const int *value = petrel_service_lookup("testsvc", 1);
    if (value == NULL || *value != 42) {
        *error_r = "service testsvc is missing or wrong";
        return -1;
    }
    petrel_log(PETREL_LOG_INFO, "needy", "found service testsvc");
    return 0;
}

PETREL_MODULE(.name = "needy", .version = "1.0", .needs = needs, .init = needy_init);
