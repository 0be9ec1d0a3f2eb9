/* The smtp_in module: settings and its two protocols, "smtp" (MX, port
 * 25) and "submission" (587, and 465 with implicit TLS). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_in.h"

static const char *const eol_choices[] = {"normalize", "reject", NULL};

static const struct petrel_setting smtp_settings[] = {
    PETREL_SETTING_SIZE(struct smtp_config, max_message_size, "50M", 1024, 4294967296LL),
    PETREL_SETTING_INT(struct smtp_config, max_recipients, "100", 1, 10000),
    PETREL_SETTING_SIZE(struct smtp_config, submission_max_message_size, "0", 0, 4294967296LL),
    PETREL_SETTING_INT(struct smtp_config, submission_max_recipients, "0", 0, 10000),
    PETREL_SETTING_IPSET(struct smtp_config, relay_networks, NULL),
    PETREL_SETTING_BOOL(struct smtp_config, auth_on_mx, "true"),
    PETREL_SETTING_BOOL(struct smtp_config, sender_login_match, "true"),
    PETREL_SETTING_CHOICE(struct smtp_config, bare_lf, "normalize", eol_choices),
    PETREL_SETTING_DURATION(struct smtp_config, greeting_delay, "0", 0, 60),
    PETREL_SETTING_BOOL(struct smtp_config, smtputf8, "true"),
    PETREL_SETTING_BOOL(struct smtp_config, dsn, "true"),
    PETREL_SETTING_BOOL(struct smtp_config, dsn_trusted_only, "true"),
    PETREL_SETTING_BOOL(struct smtp_config, chunking, "true"),
    PETREL_SETTING_BOOL(struct smtp_config, requiretls, "true"),
    PETREL_SETTINGS_END,
};

const struct petrel_queue_ops *smtp_queue;
const struct petrel_userdb_ops *smtp_userdb;
const struct petrel_auth_ops *smtp_auth;
char smtp_hostname[256];
char smtp_primary_domain[256];

extern const struct petrel_protocol smtp_protocol_mx, smtp_protocol_submission;

static int smtp_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)config;
    smtp_queue = petrel_service_lookup(PETREL_QUEUE_SERVICE, 1);
    smtp_userdb = petrel_service_lookup(PETREL_USERDB_SERVICE, 1);
    smtp_auth = petrel_service_lookup(PETREL_AUTH_SERVICE, 1); /* optional: no AUTH without */
    if (smtp_queue == NULL || smtp_userdb == NULL) {
        *error_r = "needs the queue (processing module) and userdb services";
        return -1;
    }
    petrel_strlcpy(smtp_hostname, petrel_hostname(), sizeof(smtp_hostname));
    petrel_strlcpy(smtp_primary_domain, petrel_primary_domain(), sizeof(smtp_primary_domain));
    if (petrel_protocol_register(ctx, &smtp_protocol_mx) < 0 ||
        petrel_protocol_register(ctx, &smtp_protocol_submission) < 0) {
        *error_r = "cannot register the smtp protocols";
        return -1;
    }
    return 0;
}

static int smtp_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)ctx, (void)config, (void)error_r;
    return 0; /* new connections get the new settings (petrel_conn_config) */
}

static const char *const smtp_needs[] = {PETREL_QUEUE_SERVICE, PETREL_USERDB_SERVICE, NULL};

PETREL_MODULE(.name = "smtp_in", .version = "1.0", .needs = smtp_needs, .settings = smtp_settings,
              .config_size = sizeof(struct smtp_config), .init = smtp_init, .reload = smtp_reload);
