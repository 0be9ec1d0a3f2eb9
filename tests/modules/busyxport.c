/* A transport (petrel/transport.h) for the queue's tests: it refuses the
 * first busy_times messages for busy_domain as busy (submit false) and
 * delivers everything else at once. */
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/setting.h>
#include <petrel/transport.h>

struct busy_config {
    const char *busy_domain;
    long long busy_times;
};

static const struct petrel_setting settings[] = {
    PETREL_SETTING_STRING(struct busy_config, busy_domain, ""),
    PETREL_SETTING_INT(struct busy_config, busy_times, "3", 0, 1000),
    PETREL_SETTINGS_END,
};

static char busy_domain[256];
static atomic_llong refusals_left;

static bool busy_submit(struct petrel_transport_msg *msg)
{
    if (strcasecmp(msg->domain, busy_domain) == 0 && atomic_fetch_sub(&refusals_left, 1) > 0) {
        petrel_log(PETREL_LOG_INFO, "busyxport", "%s: %s refused as busy", msg->queue_id,
                   msg->domain);
        return false;
    }
    petrel_log(PETREL_LOG_INFO, "busyxport", "%s: %s taken", msg->queue_id, msg->domain);
    for (size_t i = 0; i < msg->nrcpts; i++) {
        msg->rcpts[i].status = PETREL_TRANSPORT_DELIVERED;
        petrel_strlcpy(msg->rcpts[i].reason, "250 2.0.0 taken by the test transport",
                       sizeof(msg->rcpts[i].reason));
    }
    petrel_strlcpy(msg->relay, "test[127.0.0.1]:25", sizeof(msg->relay));
    msg->done(msg);
    return true;
}

static const struct petrel_transport_ops ops = {.submit = busy_submit};

static int busy_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)error_r;
    const struct busy_config *c = config;
    petrel_strlcpy(busy_domain, c->busy_domain, sizeof(busy_domain));
    atomic_store(&refusals_left, c->busy_times);
    return petrel_service_register(ctx, PETREL_TRANSPORT_SERVICE, PETREL_TRANSPORT_VERSION, &ops);
}

PETREL_MODULE(.name = "busyxport", .version = "1.0", .settings = settings,
              .config_size = sizeof(struct busy_config), .init = busy_init);
