/* The configuration: petrel.conf plus every the conf.d files, read into one
 * immutable generation. A reload builds a new generation; connections keep
 * the one they were accepted under until they close (refcounted). */
#ifndef PETREL_CORE_CFG_H
#define PETREL_CORE_CFG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <libconfig.h>

#include <petrel/setting.h>

#include "ipset.h"

struct petrel_flow_state;
struct petrel_tls_state;

/* Flow control (seed 3.3.2). 0 means no limit. */
struct petrel_flow {
    long long max_connections;
    long long max_interval_connections;
    long long time_interval;
    long long peer_max_connections;
    long long peer_max_interval_connections;
    long long peer_time_interval;
};

struct petrel_rule {
    char *action; /* "allow" or "deny" */
    bool enable;
    long long priority;
    char **ips;
    struct petrel_flow flow; /* allow rules only */
    /* derived */
    bool allow;
    struct petrel_ipset set;
    struct petrel_flow_state *state; /* counters, for allow rules with limits */
    char where[96];                  /* "conf.d/echo.conf:12", for logs */
};

struct petrel_rules {
    struct petrel_rule *v;
    size_t n;
};

enum petrel_tls_mode { PETREL_TLS_NONE, PETREL_TLS_IMPLICIT, PETREL_TLS_STARTTLS };

struct petrel_listener_cfg {
    char *address;
    char *protocol;
    char *tls;
    char *certificate;
    char *key;
    long long max_line;
    long long max_output;
    long long idle_timeout;
    long long min_data_rate; /* bytes/s a client must average; 0: no floor */
    bool proxy_protocol;
    char **proxy_from;
    struct petrel_flow flow;
    struct petrel_rules rules;
    /* derived */
    enum petrel_tls_mode tls_mode;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct petrel_ipset proxy_set;
    void *ssl_ctx; /* SSL_CTX for tls != none */
    char where[96];
};

struct petrel_service_cfg {
    char *module;
    char *file; /* explicit .so path; default module_path/<module>.so */
    bool enabled;
    long long workers;         /* concurrent worker-pool jobs; 0 = pool size */
    long long max_connections; /* over all its listeners; 0 = no limit */
    long long max_errors;
    long long max_auth_errors;
    struct petrel_rules rules;
    struct petrel_listener_cfg *listeners;
    size_t nlisteners;
    /* The module's own settings, filled once its table is known. */
    void *settings;
    const struct petrel_setting *settings_table;
    /* What the module's derive built from settings, and how to free it:
     * the generation may die after the reload that replaced it, on any
     * thread. */
    void *derived;
    void (*free_derived)(void *derived);
    config_t *lc; /* parsed file, kept until settings are applied */
    char path[4096];
};

struct petrel_sni_cfg {
    char *name;
    char *certificate;
    char *key;
};

struct petrel_server_cfg {
    char *primary_domain;
    char *hostname; /* "" = the system's */
    char *user;
    char *group;
    char *data_dir;
    char *run_dir;
    char *module_path;
    char *pid_file;
    char *control_socket;
    long long io_threads;
    long long workers;
    long long worker_queue;
    long long shutdown_timeout;
    long long max_connections; /* over every listener; 0: from the fd limit */
    char **exempt_networks;    /* free of the listeners' per-address limits */
    long long message_memory;  /* message data held in memory, server-wide */
    /* derived */
    struct petrel_ipset exempt_set;
};

struct petrel_log_cfg {
    char *target;
    char *file;
    char *level;
    char **modules; /* "name=level" */
};

struct petrel_tls_cfg {
    char *certificate;
    char *key;
    char *min_protocol;
    char *ciphers;
    char *ciphersuites;
    char *random_file;
    struct petrel_sni_cfg *domains;
    size_t ndomains;
};

struct petrel_dnr_cfg {
    char **servers;
    long long timeout;
    long long attempts;
    long long cache_size;
};

struct petrel_config {
    atomic_int refs;
    char path[4096];
    char confd[4096];
    struct petrel_server_cfg server;
    struct petrel_log_cfg log;
    struct petrel_tls_cfg tls;
    struct petrel_dnr_cfg dnr;
    struct petrel_rules rules;
    struct petrel_service_cfg *services;
    size_t nservices; /* enabled */
    size_t nall;      /* and the disabled ones after them */
    struct petrel_tls_state *tls_state;
};

/* Read petrel.conf and conf.d. Module settings are not applied yet: see
 * petrel_config_apply_module(). NULL on error, with error_r naming file,
 * line and setting. */
struct petrel_config *petrel_config_load(const char *path, const char **error_r);
/* Fill a service's module settings from its conf.d `settings` group using
 * the module's table. */
int petrel_config_apply_module(struct petrel_service_cfg *svc, const struct petrel_setting *table,
                               size_t config_size, const char **error_r);
/* Free parse state once every module's settings are applied. */
void petrel_config_done_parsing(struct petrel_config *cfg);

struct petrel_config *petrel_config_ref(struct petrel_config *cfg);
void petrel_config_unref(struct petrel_config *cfg);

/* Fill dst from a libconfig group using a table; reject unknown keys other
 * than those in extra (NULL-terminated). Exposed for unit tests. */
int petrel_settings_apply(const config_setting_t *group, const struct petrel_setting *table,
                          void *dst, const char *file, const char *const *extra,
                          const char **error_r);
/* Set table defaults without a file (a module without a `settings` group). */
int petrel_settings_defaults(const struct petrel_setting *table, void *dst, const char **error_r);
void petrel_settings_free(const struct petrel_setting *table, void *dst);
/* Compare two filled structs on FIXED settings: name of the first that
 * differs, or NULL. */
const char *petrel_settings_fixed_changed(const struct petrel_setting *table, const void *a,
                                          const void *b);
/* First server setting that needs a restart and differs, or NULL. */
const char *petrel_config_fixed_changed(const struct petrel_config *a,
                                        const struct petrel_config *b);
/* "30s" -> 30, "10M" -> 10485760. Exposed for unit tests. */
bool petrel_parse_duration(const char *text, long long *r);
bool petrel_parse_size(const char *text, long long *r);
/* "127.0.0.1:25", "[::1]:25", "*:25" (all IPv4), "[::]:25". */
bool petrel_parse_listen_address(const char *text, struct sockaddr_storage *ss, socklen_t *len);

#endif
