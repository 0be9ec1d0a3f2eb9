/* The smtp_out module: settings, and the "transport" service that carries
 * the queue's remote recipients to their MX hosts (docs/smtp_out.md). */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
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
static const char *const relay_tls_choices[] = {"starttls", "implicit", NULL};

static const struct petrel_setting relay_domain_settings[] = {
    PETREL_SETTING_STRING_F(struct smtp_relay_domain, domain, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_STRING_F(struct smtp_relay_domain, host, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_CHOICE(struct smtp_relay_domain, tls, "starttls", relay_tls_choices),
    PETREL_SETTINGS_END,
};

/* destination_limits = ({ domain = "example.com"; max_connections = 5; rate_delay = "1s"; }, ...):
 * rate_delay is text so that unset (NULL: destination_rate_delay) differs
 * from "0" (no delay for this one). */
static const struct petrel_setting dest_limit_settings[] = {
    PETREL_SETTING_STRING_F(struct smtp_dest_limit_conf, domain, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_INT(struct smtp_dest_limit_conf, max_connections, NULL, 1, 10000),
    PETREL_SETTING_STRING(struct smtp_dest_limit_conf, rate_delay, NULL),
    PETREL_SETTINGS_END,
};

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
    PETREL_SETTING_DURATION(struct smtp_out_config, destination_rate_delay, "0", 0, 3600),
    PETREL_SETTING_GROUPS(struct smtp_out_config, destination_limits, struct smtp_dest_limit_conf,
                          dest_limit_settings, 0, 1000),
    PETREL_SETTING_DURATION(struct smtp_out_config, connection_reuse_time, "5s", 0, 300),
    PETREL_SETTING_INT(struct smtp_out_config, connection_reuse_limit, "100", 1, 10000),
    PETREL_SETTING_STRING(struct smtp_out_config, relay_host, ""),
    PETREL_SETTING_CHOICE(struct smtp_out_config, relay_tls, "starttls", relay_tls_choices),
    /* read once, as root, at start: a reload cannot read it again */
    PETREL_SETTING_STRING_F(struct smtp_out_config, relay_auth_file, NULL, PETREL_SETTING_FIXED),
    PETREL_SETTING_GROUPS(struct smtp_out_config, relay_domains, struct smtp_relay_domain,
                          relay_domain_settings, 0, 1000),
    /* TLS policy (tlspolicy.c) */
    PETREL_SETTING_GROUPS(struct smtp_out_config, tls_policies, struct smtp_tls_policy_conf,
                          tls_policy_settings, 0, 1000),
    PETREL_SETTING_BOOL(struct smtp_out_config, mta_sts, "true"),
    PETREL_SETTING_INT(struct smtp_out_config, mta_sts_port, "443", 1, 65535),
    PETREL_SETTINGS_END,
};

struct petrel_ctx *smtp_out_ctx;
char smtp_out_hostname[SMTP_OUT_HOST_MAX];
struct petrel_counter *smtp_out_sent, *smtp_out_deferred, *smtp_out_bounced, *smtp_out_connections,
    *smtp_out_reused;
struct smtp_credentials smtp_out_creds;
bool smtp_out_have_creds;

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

static int check_relays(const struct smtp_out_config *cfg, const char **error_r)
{
    struct smtp_relay_addr a;
    if (cfg->relay_host != NULL && cfg->relay_host[0] != '\0' &&
        !smtp_relay_parse(cfg->relay_host, &a)) {
        *error_r = "relay_host must be host, host:port, [host] or [host]:port";
        return -1;
    }
    const struct smtp_relay_domain *d = cfg->relay_domains.items;
    for (size_t i = 0; i < cfg->relay_domains.count; i++) {
        if (!smtp_relay_parse(d[i].host, &a)) {
            *error_r = "a relay_domains host must be host, host:port, [host] or [host]:port";
            return -1;
        }
        if (d[i].domain[0] == '\0') {
            *error_r = "a relay_domains domain is empty";
            return -1;
        }
    }
    return 0;
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
    if (check_relays(cfg, error_r) < 0 || check_tls_policies(cfg, error_r) < 0)
        return -1;
    static char error[300];
    if (smtp_limits_check(cfg, valid_helo, error, sizeof(error)) < 0) {
        *error_r = error;
        return -1;
    }
    return 0;
}

static const struct petrel_transport_ops transport_ops = {.submit = smtp_out_submit};

/* As root, before privileges drop: the file may be readable by root only. */
static int load_credentials(const struct smtp_out_config *cfg, const char **error_r)
{
    static char error[512];
    char why[256];
    smtp_out_have_creds = false;
    if (cfg->relay_auth_file == NULL || cfg->relay_auth_file[0] == '\0')
        return 0;
    if (!smtp_credentials_load(cfg->relay_auth_file, &smtp_out_creds, why, sizeof(why))) {
        snprintf(error, sizeof(error), "relay_auth_file %.200s refused: %s", cfg->relay_auth_file,
                 why);
        petrel_log(PETREL_LOG_ERROR, "smtp_out", "%s", error);
        *error_r = error;
        return -1;
    }
    smtp_out_have_creds = true;
    return 0;
}

static int smtp_out_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    if (load_credentials(config, error_r) != 0)
        return -1;
    smtp_out_ctx = ctx;
    petrel_strlcpy(smtp_out_hostname, petrel_hostname(), sizeof(smtp_out_hostname));
    smtp_out_sent = petrel_counter("smtp_out.sent");
    smtp_out_deferred = petrel_counter("smtp_out.deferred");
    smtp_out_bounced = petrel_counter("smtp_out.bounced");
    smtp_out_connections = petrel_counter("smtp_out.connections");
    smtp_out_reused = petrel_counter("smtp_out.reused");
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

static bool same_str(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* Whether a connection made under a could serve b: the way it was made
 * (TLS policy, names, addresses) and where to. The limits do not matter:
 * dispatch applies b's. */
static bool same_connections(const struct smtp_out_config *a, const struct smtp_out_config *b)
{
    if (a->port != b->port || a->relay_domains.count != b->relay_domains.count ||
        a->connection_reuse_time != b->connection_reuse_time)
        return false;
    const char *const sa[] = {a->helo_name,     a->tls,        a->tls_ca_file, a->bind_address,
                              a->bind_address6, a->relay_host, a->relay_tls};
    const char *const sb[] = {b->helo_name,     b->tls,        b->tls_ca_file, b->bind_address,
                              b->bind_address6, b->relay_host, b->relay_tls};
    for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++) {
        if (!same_str(sa[i], sb[i]))
            return false;
    }
    const struct smtp_relay_domain *da = a->relay_domains.items, *db = b->relay_domains.items;
    for (size_t i = 0; i < a->relay_domains.count; i++) {
        if (!same_str(da[i].domain, db[i].domain) || !same_str(da[i].host, db[i].host) ||
            !same_str(da[i].tls, db[i].tls))
            return false;
    }
    return true;
}

static int smtp_out_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)error_r;
    /* Each job reads the generation it was submitted under; idle
     * connections made under other settings are closed. */
    if (!same_connections(petrel_ctx_config(ctx), config))
        smtp_cache_flush();
    return 0;
}

static void smtp_out_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    smtp_cache_flush();
    smtp_dispatch_stop();
    smtp_mtasts_free(); /* the workers are done: no fetch is running */
    curl_global_cleanup();
}

PETREL_MODULE(.name = "smtp_out", .version = "1.0", .settings = smtp_out_settings,
              .config_size = sizeof(struct smtp_out_config), .check = smtp_out_check,
              .init = smtp_out_init, .reload = smtp_out_reload, .stop = smtp_out_stop);
