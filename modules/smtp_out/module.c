/* The smtp_out module: settings, and the "transport" service that carries
 * the queue's remote recipients to their MX hosts (docs/smtp_out.md). */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/setting.h>

#include "smtp_out.h"

static const char *const tls_choices[] = {"none", "may", "encrypt", "verify", "dane", NULL};

/* TLS policy: tls_policies = ({ domain = "example.org"; policy = "verify"; }, ...) */
static const struct petrel_setting tls_policy_settings[] = {
    PETREL_SETTING_STRING_F(struct smtp_tls_policy_conf, domain, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_CHOICE_F(struct smtp_tls_policy_conf, policy, NULL, tls_choices,
                            PETREL_SETTING_REQUIRED),
    PETREL_SETTINGS_END,
};
static const char *const family_choices[] = {"any", "ipv4", "ipv6", NULL};

static const struct petrel_setting smtp_out_settings[] = {
    PETREL_SETTING_INT(struct smtp_out_config, port, "25", 1, 65535),
    PETREL_SETTING_STRING(struct smtp_out_config, helo_name, NULL),
    PETREL_SETTING_CHOICE(struct smtp_out_config, tls, "may", tls_choices),
    PETREL_SETTING_STRING(struct smtp_out_config, tls_ca_file, NULL),
    PETREL_SETTING_CHOICE(struct smtp_out_config, address_family, "any", family_choices),
    PETREL_SETTING_CHOICE(struct smtp_out_config, address_preference, "any", family_choices),
    PETREL_SETTING_STRING(struct smtp_out_config, bind_address, NULL),
    PETREL_SETTING_STRING(struct smtp_out_config, bind_address6, NULL),
    PETREL_SETTING_DURATION(struct smtp_out_config, connect_timeout, "30s", 1, 300),
    PETREL_SETTING_DURATION(struct smtp_out_config, command_timeout, "5m", 1, 3600),
    PETREL_SETTING_DURATION(struct smtp_out_config, data_timeout, "10m", 1, 3600),
    PETREL_SETTING_INT(struct smtp_out_config, max_connections, "100", 1, 10000),
    PETREL_SETTING_INT(struct smtp_out_config, max_per_destination, "20", 1, 10000),
    PETREL_SETTING_INT(struct smtp_out_config, max_mx, "5", 1, SMTP_OUT_MX_MAX),
    /* TLS policy (tlspolicy.c) */
    PETREL_SETTING_GROUPS(struct smtp_out_config, tls_policies, struct smtp_tls_policy_conf,
                          tls_policy_settings, 0, 1000),
    PETREL_SETTING_BOOL(struct smtp_out_config, mta_sts, "true"),
    PETREL_SETTING_INT(struct smtp_out_config, mta_sts_port, "443", 1, 65535),
    PETREL_SETTINGS_END,
};

struct petrel_ctx *smtp_out_ctx;
char smtp_out_hostname[SMTP_OUT_HOST_MAX];
struct petrel_counter *smtp_out_sent, *smtp_out_deferred, *smtp_out_bounced, *smtp_out_connections;

enum smtp_tls_level smtp_out_tls_level(const struct smtp_out_config *cfg)
{
    return smtp_out_tls_parse(cfg->tls);
}

enum smtp_family smtp_out_family(const char *setting)
{
    if (strcmp(setting, "ipv4") == 0)
        return SMTP_FAMILY_IPV4;
    return strcmp(setting, "ipv6") == 0 ? SMTP_FAMILY_IPV6 : SMTP_FAMILY_ANY;
}

/* A host name as EHLO takes it: LDH labels, at most 255 octets. */
static bool valid_helo(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 255 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok || ++label > 63)
            return false;
    }
    return true;
}

/* TLS policy: each domain once, written as a domain (no address literal,
 * no wildcard: the entries are exact names). */
static int check_tls_policies(const struct smtp_out_config *cfg, const char **error_r)
{
    const struct smtp_tls_policy_conf *p = cfg->tls_policies.items;
    for (size_t i = 0; i < cfg->tls_policies.count; i++) {
        if (!valid_helo(p[i].domain)) {
            *error_r = "tls_policies: a domain must be a domain name";
            return -1;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcasecmp(p[k].domain, p[i].domain) == 0) {
                *error_r = "tls_policies: a domain is listed twice";
                return -1;
            }
        }
    }
    return 0;
}

static int smtp_out_check(const void *config, const char **error_r)
{
    const struct smtp_out_config *cfg = config;
    unsigned char a[16];
    if (cfg->bind_address != NULL && inet_pton(AF_INET, cfg->bind_address, a) != 1) {
        *error_r = "bind_address must be an IPv4 address";
        return -1;
    }
    if (cfg->bind_address6 != NULL && inet_pton(AF_INET6, cfg->bind_address6, a) != 1) {
        *error_r = "bind_address6 must be an IPv6 address";
        return -1;
    }
    if (cfg->helo_name != NULL && !valid_helo(cfg->helo_name)) {
        *error_r = "helo_name must be a host name";
        return -1;
    }
    if (cfg->max_per_destination > cfg->max_connections) {
        *error_r = "max_per_destination cannot exceed max_connections";
        return -1;
    }
    return check_tls_policies(cfg, error_r);
}

static const struct petrel_transport_ops transport_ops = {.submit = smtp_out_submit};

static int smtp_out_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)config;
    smtp_out_ctx = ctx;
    petrel_strlcpy(smtp_out_hostname, petrel_hostname(), sizeof(smtp_out_hostname));
    smtp_out_sent = petrel_counter("smtp_out.sent");
    smtp_out_deferred = petrel_counter("smtp_out.deferred");
    smtp_out_bounced = petrel_counter("smtp_out.bounced");
    smtp_out_connections = petrel_counter("smtp_out.connections");
    atomic_store(&smtp_out_stopping, false);
    /* TLS policy: MTA-STS fetches with libcurl, whose global set-up is
     * not thread-safe: here, before the threads start. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        *error_r = "cannot initialise libcurl";
        return -1;
    }
    return petrel_service_register(ctx, PETREL_TRANSPORT_SERVICE, PETREL_TRANSPORT_VERSION,
                                   &transport_ops);
}

static int smtp_out_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)ctx, (void)config, (void)error_r;
    return 0; /* each job reads the generation it was submitted under */
}

static void smtp_out_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    smtp_dispatch_stop();
    smtp_mtasts_free(); /* the workers are done: no fetch is running */
    curl_global_cleanup();
}

PETREL_MODULE(.name = "smtp_out", .version = "1.0", .settings = smtp_out_settings,
              .config_size = sizeof(struct smtp_out_config), .check = smtp_out_check,
              .init = smtp_out_init, .reload = smtp_out_reload, .stop = smtp_out_stop);
