/* Reads petrel.conf and the conf.d files into a configuration generation. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "cfg.h"
#include "cfg_error.h"
#include "dns_private.h"
#include "rules.h"
#include "tls.h"

#define MAX_SERVICES 256
#define MAX_LISTENERS 64
#define MAX_RULES 1024
#define MAX_SNI 1024

static const char *const tls_modes[] = {"none", "implicit", "starttls", NULL};
static const char *const rule_actions[] = {"allow", "deny", NULL};
static const char *const log_targets[] = {"stderr", "file", "syslog", NULL};
static const char *const log_levels[] = {"error", "warning", "info", "debug", NULL};
static const char *const tls_versions[] = {"TLSv1.2", "TLSv1.3", NULL};

/* The flow limits sit in a nested struct but are named as plain settings. */
#define FLOW_SETTING(st, field, t, def, lo, hi)                                                    \
    {                                                                                              \
        .name = #field, .type = (t), .offset = offsetof(st, flow.field), .default_value = (def),   \
        .min = (lo), .max = (hi)                                                                   \
    }
#define FLOW_SETTINGS(st, peer_max, peer_rate)                                                     \
    FLOW_SETTING(st, max_connections, PETREL_SETTING_INT, "0", 0, 10000000),                       \
        FLOW_SETTING(st, max_interval_connections, PETREL_SETTING_INT, "0", 0, 10000000),          \
        FLOW_SETTING(st, time_interval, PETREL_SETTING_DURATION, "60s", 1, 86400),                 \
        FLOW_SETTING(st, peer_max_connections, PETREL_SETTING_INT, peer_max, 0, 10000000),         \
        FLOW_SETTING(st, peer_max_interval_connections, PETREL_SETTING_INT, peer_rate, 0,          \
                     10000000),                                                                    \
        FLOW_SETTING(st, peer_time_interval, PETREL_SETTING_DURATION, "60s", 1, 86400)

static const struct petrel_setting server_settings[] = {
    PETREL_SETTING_STRING(struct petrel_server_cfg, primary_domain, "localhost"),
    PETREL_SETTING_STRING(struct petrel_server_cfg, hostname, ""),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, user, "petrel", PETREL_SETTING_FIXED),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, group, NULL, PETREL_SETTING_FIXED),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, data_dir, PETREL_LOCALSTATEDIR "/lib/petrel",
                            PETREL_SETTING_FIXED),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, run_dir, PETREL_RUNSTATEDIR "/petrel",
                            PETREL_SETTING_FIXED),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, module_path, PETREL_MODULEDIR,
                            PETREL_SETTING_FIXED),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, pid_file, NULL, PETREL_SETTING_FIXED),
    PETREL_SETTING_STRING_F(struct petrel_server_cfg, control_socket, NULL, PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct petrel_server_cfg, io_threads, "0", 0, 256, PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct petrel_server_cfg, workers, "16", 1, 1024, PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct petrel_server_cfg, worker_queue, "10000", 1, 10000000,
                         PETREL_SETTING_FIXED),
    PETREL_SETTING_DURATION(struct petrel_server_cfg, shutdown_timeout, "10s", 0, 3600),
    PETREL_SETTING_INT(struct petrel_server_cfg, max_connections, "0", 0, 10000000),
    PETREL_SETTING_STRLIST(struct petrel_server_cfg, exempt_networks, NULL),
    PETREL_SETTING_SIZE(struct petrel_server_cfg, message_memory, "64M", 1048576, 68719476736LL),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting log_settings[] = {
    PETREL_SETTING_CHOICE(struct petrel_log_cfg, target, "stderr", log_targets),
    PETREL_SETTING_STRING(struct petrel_log_cfg, file, NULL),
    PETREL_SETTING_CHOICE(struct petrel_log_cfg, level, "info", log_levels),
    PETREL_SETTING_STRLIST(struct petrel_log_cfg, modules, NULL),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting tls_settings[] = {
    PETREL_SETTING_STRING(struct petrel_tls_cfg, certificate, NULL),
    PETREL_SETTING_STRING_F(struct petrel_tls_cfg, key, NULL, PETREL_SETTING_SECRET),
    PETREL_SETTING_CHOICE(struct petrel_tls_cfg, min_protocol, "TLSv1.2", tls_versions),
    /* Mozilla "intermediate" list: forward secrecy and AEAD only. */
    PETREL_SETTING_STRING(
        struct petrel_tls_cfg, ciphers,
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"),
    PETREL_SETTING_STRING(
        struct petrel_tls_cfg, ciphersuites,
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"),
    PETREL_SETTING_STRING(struct petrel_tls_cfg, random_file, NULL),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting sni_settings[] = {
    PETREL_SETTING_STRING_F(struct petrel_sni_cfg, name, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_STRING_F(struct petrel_sni_cfg, certificate, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_STRING_F(struct petrel_sni_cfg, key, NULL,
                            PETREL_SETTING_REQUIRED | PETREL_SETTING_SECRET),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting dnr_settings[] = {
    PETREL_SETTING_STRLIST(struct petrel_dnr_cfg, servers, NULL),
    PETREL_SETTING_DURATION(struct petrel_dnr_cfg, timeout, "5s", 1, 300),
    PETREL_SETTING_INT(struct petrel_dnr_cfg, attempts, "3", 1, 20),
    PETREL_SETTING_INT(struct petrel_dnr_cfg, cache_size, "10000", 0, 10000000),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting rule_settings[] = {
    PETREL_SETTING_CHOICE_F(struct petrel_rule, action, NULL, rule_actions,
                            PETREL_SETTING_REQUIRED),
    PETREL_SETTING_BOOL(struct petrel_rule, enable, "true"),
    PETREL_SETTING_INT(struct petrel_rule, priority, "100", 0, 1000000),
    PETREL_SETTING_STRLIST_F(struct petrel_rule, ips, NULL, PETREL_SETTING_REQUIRED),
    FLOW_SETTINGS(struct petrel_rule, "0", "0"),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting listener_settings[] = {
    PETREL_SETTING_STRING_F(struct petrel_listener_cfg, address, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_STRING(struct petrel_listener_cfg, protocol, NULL),
    PETREL_SETTING_CHOICE(struct petrel_listener_cfg, tls, "none", tls_modes),
    PETREL_SETTING_STRING(struct petrel_listener_cfg, certificate, NULL),
    PETREL_SETTING_STRING_F(struct petrel_listener_cfg, key, NULL, PETREL_SETTING_SECRET),
    PETREL_SETTING_SIZE(struct petrel_listener_cfg, max_line, "8k", 64, 1048576),
    PETREL_SETTING_SIZE(struct petrel_listener_cfg, max_output, "256k", 4096, 67108864),
    PETREL_SETTING_DURATION(struct petrel_listener_cfg, idle_timeout, "5m", 1, 86400),
    PETREL_SETTING_SIZE(struct petrel_listener_cfg, min_data_rate, "500", 0, 1073741824LL),
    PETREL_SETTING_BOOL(struct petrel_listener_cfg, proxy_protocol, "false"),
    PETREL_SETTING_STRLIST(struct petrel_listener_cfg, proxy_from, NULL),
    /* Safe by default (docs/limits.md): Postfix's 50 connections per
     * client, and a rate no client needs. */
    FLOW_SETTINGS(struct petrel_listener_cfg, "50", "300"),
    PETREL_SETTINGS_END,
};

static const struct petrel_setting service_settings[] = {
    PETREL_SETTING_STRING_F(struct petrel_service_cfg, module, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_STRING(struct petrel_service_cfg, file, NULL),
    PETREL_SETTING_BOOL(struct petrel_service_cfg, enabled, "true"),
    PETREL_SETTING_INT(struct petrel_service_cfg, workers, "0", 0, 1024),
    PETREL_SETTING_INT(struct petrel_service_cfg, max_connections, "0", 0, 10000000),
    PETREL_SETTING_INT(struct petrel_service_cfg, max_errors, "10", 0, 1000000),
    PETREL_SETTING_INT(struct petrel_service_cfg, max_auth_errors, "3", 0, 1000000),
    PETREL_SETTINGS_END,
};

static const char *const top_groups[] = {"server", "log", "tls", "dnr", "rules", NULL};
static const char *const service_extra[] = {"rules", "listeners", "settings", NULL};
static const char *const listener_extra[] = {"rules", NULL};
static const char *const tls_extra[] = {"domains", NULL};

static const struct petrel_setting empty_settings[] = {PETREL_SETTINGS_END};

bool petrel_parse_listen_address(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(host))
        return false;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port < 0 || port > 65535)
        return false;
    memset(ss, 0, sizeof(*ss));
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return false;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return true;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    if (strcmp(host, "*") == 0)
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return false;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return true;
}

/* "conf.d/echo.conf:12" or "petrel.conf:3": short enough for every log line
 * that cites a rule, and never ambiguous between petrel.conf and conf.d. */
static void where(char *buf, size_t size, const char *file, const config_setting_t *s)
{
    const char *base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    size_t dir = (size_t)(base - file);
    if (dir >= 7 && memcmp(base - 7, "conf.d/", 7) == 0 && (dir == 7 || base[-8] == '/'))
        base -= 7;
    petrel_snprintf(buf, size, "%s:%d", base, config_setting_source_line(s));
}

static bool is_list(const config_setting_t *s)
{
    return s != NULL && (config_setting_type(s) == CONFIG_TYPE_LIST ||
                         config_setting_type(s) == CONFIG_TYPE_ARRAY);
}

static int parse_rules(const config_setting_t *list, struct petrel_rules *r, const char *file,
                       const char **error_r)
{
    if (list == NULL)
        return 0;
    int n = config_setting_length(list);
    if (!is_list(list) || n > MAX_RULES) {
        *error_r =
            petrel_cfg_error("%s:%d: 'rules' must be a list ( { ... }, ... ) of at most %d rules",
                             file, config_setting_source_line(list), MAX_RULES);
        return -1;
    }
    r->v = petrel_calloc((size_t)n, sizeof(*r->v));
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, i);
        struct petrel_rule *rule = &r->v[r->n++];
        if (!config_setting_is_group(g)) {
            *error_r = petrel_cfg_error("%s:%d: each rule must be a group { ... }", file,
                                        config_setting_source_line(g));
            return -1;
        }
        if (petrel_settings_apply(g, rule_settings, rule, file, NULL, error_r) < 0)
            return -1;
        rule->allow = strcmp(rule->action, "allow") == 0;
        where(rule->where, sizeof(rule->where), file, g);
        for (char **ip = rule->ips; *ip != NULL; ip++) {
            const char *why;
            if (!petrel_ipset_add(&rule->set, *ip, &why)) {
                *error_r = petrel_cfg_error("%s: setting 'ips': '%s': %s", rule->where, *ip, why);
                return -1;
            }
        }
    }
    return 0;
}

static void free_rules(struct petrel_rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        petrel_settings_free(rule_settings, &r->v[i]);
        petrel_ipset_free(&r->v[i].set);
        petrel_flow_state_unref(r->v[i].state);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

static int parse_listener(const config_setting_t *g, struct petrel_listener_cfg *l,
                          const char *file, const char **error_r)
{
    where(l->where, sizeof(l->where), file, g);
    if (!config_setting_is_group(g)) {
        *error_r = petrel_cfg_error("%s: each listener must be a group { ... }", l->where);
        return -1;
    }
    if (petrel_settings_apply(g, listener_settings, l, file, listener_extra, error_r) < 0)
        return -1;
    if (!petrel_parse_listen_address(l->address, &l->addr, &l->addrlen)) {
        *error_r = petrel_cfg_error("%s: setting 'address': '%s' is not ADDRESS:PORT "
                                    "(\"127.0.0.1:25\", \"[::1]:25\", \"*:25\")",
                                    l->where, l->address);
        return -1;
    }
    l->tls_mode = strcmp(l->tls, "implicit") == 0   ? PETREL_TLS_IMPLICIT
                  : strcmp(l->tls, "starttls") == 0 ? PETREL_TLS_STARTTLS
                                                    : PETREL_TLS_NONE;
    if ((l->certificate == NULL) != (l->key == NULL)) {
        *error_r = petrel_cfg_error("%s: 'certificate' and 'key' go together", l->where);
        return -1;
    }
    for (char **ip = l->proxy_from; ip != NULL && *ip != NULL; ip++) {
        const char *why;
        if (!petrel_ipset_add(&l->proxy_set, *ip, &why)) {
            *error_r = petrel_cfg_error("%s: setting 'proxy_from': '%s': %s", l->where, *ip, why);
            return -1;
        }
    }
    if (l->proxy_protocol && l->proxy_set.count == 0) {
        *error_r = petrel_cfg_error("%s: 'proxy_protocol' needs 'proxy_from', the addresses "
                                    "of the proxies to trust",
                                    l->where);
        return -1;
    }
    return parse_rules(config_setting_get_member(g, "rules"), &l->rules, file, error_r);
}

static void free_listener(struct petrel_listener_cfg *l)
{
    petrel_settings_free(listener_settings, l);
    petrel_ipset_free(&l->proxy_set);
    petrel_tls_ctx_free(l->ssl_ctx);
    free_rules(&l->rules);
}

static const char *read_error(config_t *lc, const char *path)
{
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
        return petrel_cfg_error("%s: cannot read: %s", path, strerror(errno));
    return petrel_cfg_error("%s:%d: %s", config_error_file(lc) ? config_error_file(lc) : path,
                            config_error_line(lc), config_error_text(lc));
}

static int parse_service(struct petrel_service_cfg *svc, const char **error_r)
{
    svc->lc = petrel_calloc(1, sizeof(*svc->lc));
    config_init(svc->lc);
    if (config_read_file(svc->lc, svc->path) != CONFIG_TRUE) {
        *error_r = read_error(svc->lc, svc->path);
        return -1;
    }
    const config_setting_t *root = config_root_setting(svc->lc);
    if (petrel_settings_apply(root, service_settings, svc, svc->path, service_extra, error_r) < 0)
        return -1;
    if (strchr(svc->module, '/') != NULL || svc->module[0] == '.' || svc->module[0] == '\0') {
        *error_r = petrel_cfg_error("%s: setting 'module': '%s' is not a module name", svc->path,
                                    svc->module);
        return -1;
    }
    const config_setting_t *ls = config_setting_get_member(root, "listeners");
    if (ls != NULL) {
        int n = config_setting_length(ls);
        if (!is_list(ls) || n > MAX_LISTENERS) {
            *error_r = petrel_cfg_error("%s:%d: 'listeners' must be a list ( { ... }, ... ) of at "
                                        "most %d",
                                        svc->path, config_setting_source_line(ls), MAX_LISTENERS);
            return -1;
        }
        svc->listeners = petrel_calloc((size_t)n, sizeof(*svc->listeners));
        for (int i = 0; i < n; i++) {
            svc->nlisteners++;
            if (parse_listener(config_setting_get_elem(ls, i), &svc->listeners[i], svc->path,
                               error_r) < 0)
                return -1;
        }
    }
    const config_setting_t *st = config_setting_get_member(root, "settings");
    if (st != NULL && !config_setting_is_group(st)) {
        *error_r = petrel_cfg_error("%s:%d: 'settings' must be a group { ... }", svc->path,
                                    config_setting_source_line(st));
        return -1;
    }
    return parse_rules(config_setting_get_member(root, "rules"), &svc->rules, svc->path, error_r);
}

static int conf_file_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

static int parse_confd(struct petrel_config *cfg, const char **error_r)
{
    struct dirent **names;
    int n = scandir(cfg->confd, &names, conf_file_filter, alphasort);
    if (n < 0) {
        if (errno == ENOENT)
            return 0;
        *error_r = petrel_cfg_error("%s: cannot list: %s", cfg->confd, strerror(errno));
        return -1;
    }
    int ret = 0;
    if (n > MAX_SERVICES) {
        *error_r = petrel_cfg_error("%s: more than %d files", cfg->confd, MAX_SERVICES);
        ret = -1;
    }
    cfg->services = petrel_calloc((size_t)n, sizeof(*cfg->services));
    for (int i = 0; i < n; i++) {
        if (ret == 0) {
            struct petrel_service_cfg *svc = &cfg->services[cfg->nservices++];
            cfg->nall = cfg->nservices;
            petrel_snprintf(svc->path, sizeof(svc->path), "%s/%s", cfg->confd, names[i]->d_name);
            ret = parse_service(svc, error_r);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

static void free_service(struct petrel_service_cfg *svc);

static int check_services(struct petrel_config *cfg, const char **error_r)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        const struct petrel_service_cfg *a = &cfg->services[i];
        for (size_t j = 0; j < i && a->enabled; j++) {
            const struct petrel_service_cfg *b = &cfg->services[j];
            if (b->enabled && strcmp(a->module, b->module) == 0) {
                *error_r = petrel_cfg_error("%s: module '%s' is already enabled by %s", a->path,
                                            a->module, b->path);
                return -1;
            }
        }
    }
    /* Enabled first, in order; the disabled ones stay after them, so
     * petrelctl can name the module of a command that is switched off. */
    struct petrel_service_cfg *all = petrel_calloc(cfg->nservices + 1, sizeof(*all));
    size_t kept = 0, next = 0;
    for (size_t i = 0; i < cfg->nservices; i++)
        kept += cfg->services[i].enabled;
    for (size_t i = 0; i < cfg->nservices; i++)
        all[cfg->services[i].enabled ? next++ : kept + i - next] = cfg->services[i];
    free(cfg->services);
    cfg->services = all;
    cfg->nall = cfg->nservices;
    cfg->nservices = kept;
    return 0;
}

static int parse_tls(const config_setting_t *g, struct petrel_config *cfg, const char **error_r)
{
    if (petrel_settings_apply(g, tls_settings, &cfg->tls, cfg->path, tls_extra, error_r) < 0)
        return -1;
    if ((cfg->tls.certificate == NULL) != (cfg->tls.key == NULL)) {
        *error_r = petrel_cfg_error("%s: tls: 'certificate' and 'key' go together", cfg->path);
        return -1;
    }
    const config_setting_t *d = g != NULL ? config_setting_get_member(g, "domains") : NULL;
    if (d == NULL)
        return 0;
    int n = config_setting_length(d);
    if (!is_list(d) || n > MAX_SNI) {
        *error_r = petrel_cfg_error("%s:%d: tls.domains must be a list ( { name = ...; "
                                    "certificate = ...; key = ...; }, ... )",
                                    cfg->path, config_setting_source_line(d));
        return -1;
    }
    cfg->tls.domains = petrel_calloc((size_t)n, sizeof(*cfg->tls.domains));
    for (int i = 0; i < n; i++) {
        cfg->tls.ndomains++;
        if (petrel_settings_apply(config_setting_get_elem(d, i), sni_settings, &cfg->tls.domains[i],
                                  cfg->path, NULL, error_r) < 0)
            return -1;
    }
    return 0;
}

static const config_setting_t *group_of(const config_setting_t *root, const char *name,
                                        const char *file, const char **error_r)
{
    const config_setting_t *g = config_setting_get_member(root, name);
    if (g != NULL && !config_setting_is_group(g)) {
        *error_r = petrel_cfg_error("%s:%d: '%s' must be a group { ... }", file,
                                    config_setting_source_line(g), name);
        return (const config_setting_t *)-1;
    }
    return g;
}

/* server.exempt_networks; left out, it means this host's own addresses
 * (local webmail, fetchmail, monitoring), which an empty list takes away. */
static int parse_exempt(struct petrel_server_cfg *srv, const char *path, const char **error_r)
{
    static char *const host[] = {"127.0.0.1", "::1", NULL};
    char *const *list = srv->exempt_networks != NULL ? srv->exempt_networks : host;
    for (; *list != NULL; list++) {
        const char *why;
        if (!petrel_ipset_add(&srv->exempt_set, *list, &why)) {
            *error_r = petrel_cfg_error("%s: server: setting 'exempt_networks': '%s': %s", path,
                                        *list, why);
            return -1;
        }
    }
    return 0;
}

static int check_dnr(const struct petrel_config *cfg, const char **error_r)
{
    char csv[4096];
    const char *why;
    if (petrel_dns_servers_csv(cfg->dnr.servers, csv, sizeof(csv), &why))
        return 0;
    *error_r = petrel_cfg_error("%s: dnr: setting 'servers': %s", cfg->path, why);
    return -1;
}

static int parse_main(struct petrel_config *cfg, config_t *lc, const char **error_r)
{
    const config_setting_t *root = config_root_setting(lc);
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, i);
        bool known = false;
        for (const char *const *t = top_groups; *t != NULL; t++)
            known |= strcmp(*t, config_setting_name(s)) == 0;
        if (!known) {
            *error_r =
                petrel_cfg_error("%s:%d: unknown setting '%s' (expected one of server, "
                                 "log, tls, dnr, rules)",
                                 cfg->path, config_setting_source_line(s), config_setting_name(s));
            return -1;
        }
    }
    static const struct {
        const char *name;
        const struct petrel_setting *table;
        size_t offset;
    } groups[] = {
        {"server", server_settings, offsetof(struct petrel_config, server)},
        {"log", log_settings, offsetof(struct petrel_config, log)},
        {"dnr", dnr_settings, offsetof(struct petrel_config, dnr)},
    };
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        const config_setting_t *g = group_of(root, groups[i].name, cfg->path, error_r);
        if (g == (const config_setting_t *)-1 ||
            petrel_settings_apply(g, groups[i].table, (char *)cfg + groups[i].offset, cfg->path,
                                  NULL, error_r) < 0)
            return -1;
    }
    if (parse_exempt(&cfg->server, cfg->path, error_r) < 0 || check_dnr(cfg, error_r) < 0)
        return -1;
    const config_setting_t *tls = group_of(root, "tls", cfg->path, error_r);
    if (tls == (const config_setting_t *)-1 || parse_tls(tls, cfg, error_r) < 0)
        return -1;
    if (strcmp(cfg->log.target, "file") == 0 && cfg->log.file == NULL) {
        *error_r = petrel_cfg_error("%s: log: target \"file\" needs 'file'", cfg->path);
        return -1;
    }
    return parse_rules(config_setting_get_member(root, "rules"), &cfg->rules, cfg->path, error_r);
}

/* Paths the administrator left unset follow from run_dir. */
static void derive_paths(struct petrel_config *cfg)
{
    char buf[4096];
    if (cfg->server.pid_file == NULL) {
        petrel_snprintf(buf, sizeof(buf), "%s/petreld.pid", cfg->server.run_dir);
        cfg->server.pid_file = petrel_strdup(buf);
    }
    if (cfg->server.control_socket == NULL) {
        petrel_snprintf(buf, sizeof(buf), "%s/control.sock", cfg->server.run_dir);
        cfg->server.control_socket = petrel_strdup(buf);
    }
}

struct petrel_config *petrel_config_load(const char *path, const char **error_r)
{
    struct petrel_config *cfg = petrel_calloc(1, sizeof(*cfg));
    atomic_init(&cfg->refs, 1);
    if (!petrel_strlcpy(cfg->path, path, sizeof(cfg->path))) {
        *error_r = petrel_cfg_error("%s: path too long", path);
        petrel_config_unref(cfg);
        return NULL;
    }
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        petrel_strlcpy(cfg->confd, "conf.d", sizeof(cfg->confd));
    else
        petrel_snprintf(cfg->confd, sizeof(cfg->confd), "%.*s/conf.d", (int)(slash - path), path);

    config_t lc;
    config_init(&lc);
    int ret = -1;
    if (config_read_file(&lc, path) != CONFIG_TRUE)
        *error_r = read_error(&lc, path);
    else if (parse_main(cfg, &lc, error_r) == 0 && parse_confd(cfg, error_r) == 0)
        ret = check_services(cfg, error_r);
    config_destroy(&lc);
    if (ret < 0) {
        petrel_config_unref(cfg);
        return NULL;
    }
    derive_paths(cfg);
    return cfg;
}

int petrel_config_apply_module(struct petrel_service_cfg *svc, const struct petrel_setting *table,
                               size_t config_size, const char **error_r)
{
    if (table == NULL)
        table = empty_settings;
    const config_setting_t *g = config_lookup(svc->lc, "settings");
    svc->settings = petrel_calloc(1, config_size ? config_size : 1);
    svc->settings_table = table;
    return petrel_settings_apply(g, table, svc->settings, svc->path, NULL, error_r);
}

void petrel_config_done_parsing(struct petrel_config *cfg)
{
    for (size_t i = 0; i < cfg->nall; i++) {
        if (cfg->services[i].lc != NULL) {
            config_destroy(cfg->services[i].lc);
            free(cfg->services[i].lc);
            cfg->services[i].lc = NULL;
        }
    }
}

struct petrel_config *petrel_config_ref(struct petrel_config *cfg)
{
    atomic_fetch_add(&cfg->refs, 1);
    return cfg;
}

static void free_service(struct petrel_service_cfg *svc)
{
    if (svc->lc != NULL) {
        config_destroy(svc->lc);
        free(svc->lc);
        svc->lc = NULL;
    }
    if (svc->derived != NULL && svc->free_derived != NULL)
        svc->free_derived(svc->derived);
    if (svc->settings != NULL) {
        petrel_settings_free(svc->settings_table, svc->settings);
        free(svc->settings);
    }
    for (size_t j = 0; j < svc->nlisteners; j++)
        free_listener(&svc->listeners[j]);
    free(svc->listeners);
    free_rules(&svc->rules);
    petrel_settings_free(service_settings, svc);
}

void petrel_config_unref(struct petrel_config *cfg)
{
    if (cfg == NULL || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    petrel_config_done_parsing(cfg);
    petrel_tls_state_free(cfg->tls_state);
    for (size_t i = 0; i < cfg->nall; i++)
        free_service(&cfg->services[i]);
    free(cfg->services);
    for (size_t i = 0; i < cfg->tls.ndomains; i++)
        petrel_settings_free(sni_settings, &cfg->tls.domains[i]);
    free(cfg->tls.domains);
    petrel_settings_free(server_settings, &cfg->server);
    petrel_ipset_free(&cfg->server.exempt_set);
    petrel_settings_free(log_settings, &cfg->log);
    petrel_settings_free(tls_settings, &cfg->tls);
    petrel_settings_free(dnr_settings, &cfg->dnr);
    free_rules(&cfg->rules);
    free(cfg);
}

const char *petrel_config_fixed_changed(const struct petrel_config *a,
                                        const struct petrel_config *b)
{
    return petrel_settings_fixed_changed(server_settings, &a->server, &b->server);
}
