/* Core-private runtime state: loaded modules, listeners, I/O threads. */
#ifndef PETREL_CORE_SERVER_H
#define PETREL_CORE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <ltdl.h>

#include <petrel/module.h>

#include "cfg.h"
#include "worker.h"

#define PETREL_MAX_PROTOCOLS 8

/* One loaded module (the core's handle given to it as struct petrel_ctx). */
struct petrel_ctx {
    const struct petrel_module *mod;
    lt_dlhandle handle;
    char name[64];
    char path[4096];
    bool initialised;
    const struct petrel_protocol *protocols[PETREL_MAX_PROTOCOLS];
    size_t nprotocols;
    const void *config; /* settings of the current generation */
    /* Runtime state of the service this module provides. */
    atomic_long connections;
    struct petrel_job_limit job_limit;
    struct petrel_ctx *next;
};

/* A listening address, kept across reloads while the address stays. */
struct petrel_listener {
    char address[128];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int *fds; /* one per I/O thread, SO_REUSEPORT */
    unsigned nfds;
    struct petrel_ctx *module;
    /* Of the current generation; read under petrel_gen_lock. */
    const struct petrel_listener_cfg *cfg;
    const struct petrel_service_cfg *svc;
    const struct petrel_protocol *proto;
    void *ssl_ctx;
    /* Flow control state (listener level). */
    struct petrel_flow_state *flow;
    atomic_int refs;
    struct petrel_listener *next;
};

struct petrel_server {
    struct petrel_config *cfg; /* current generation */
    pthread_rwlock_t gen_lock; /* guards cfg and listeners' cfg pointers */
    struct petrel_ctx *modules;
    struct petrel_listener *listeners;
    struct petrel_loop *threads;
    unsigned nthreads;
    time_t started;
    atomic_bool stopping;
    /* Connection admission (docs/limits.md): open connections over every
     * thread, the most to accept, and what the open-file limit allows. */
    atomic_long nconns;
    atomic_long conn_limit;
    long fd_conn_cap;
};

extern struct petrel_server petrel_server;

/* server.c: the server-wide limits of a generation, at start and reload. */
void petrel_server_apply_limits(const struct petrel_config *cfg);
/* Whether a new connection may be accepted now; says once in the log when
 * the limit is reached and once when it is not any more. */
bool petrel_server_may_accept(void);

/* module.c */
int petrel_modules_load(struct petrel_config *cfg, bool verbose, const char **error_r);
int petrel_modules_init(struct petrel_config *cfg, const char **error_r);
int petrel_modules_start(const char **error_r);
/* Whether every service an enabled module of cfg needs still comes from a
 * module cfg enables (reload: the registry of the running generation). */
int petrel_modules_check_needs(const struct petrel_config *cfg, const char **error_r);
int petrel_modules_reload(struct petrel_config *cfg, const char **error_r);
void petrel_modules_stop(void);
void petrel_modules_unload(void);
struct petrel_ctx *petrel_module_find(const char *name);
const struct petrel_service_cfg *petrel_config_service(const struct petrel_config *cfg,
                                                       const char *module);
/* Apply each loaded module's settings table to a freshly read generation. */
int petrel_modules_apply_settings(struct petrel_config *cfg, const char **error_r);
void petrel_registry_free(void);
/* petrelctl: the name (into out) of an installed module that cfg does not
 * enable and that has the command argv names; 0, or -1 if none has. */
int petrel_module_probe_admin(const struct petrel_config *cfg, int argc, char **argv, char *out,
                              size_t size);

/* listener.c */
int petrel_listeners_prepare(struct petrel_config *cfg, const char **error_r);
void petrel_listeners_commit(void);
void petrel_listeners_abort(void);
void petrel_listeners_close_all(void);
void petrel_listener_unref(struct petrel_listener *l);

/* tls.c */
int petrel_tls_prepare(struct petrel_config *cfg, const char **error_r);
void *petrel_tls_listener_ctx(struct petrel_config *cfg, const struct petrel_listener_cfg *l);

/* runtime.c: state attached to a generation (TLS contexts, rule counters). */
int petrel_runtime_prepare(struct petrel_config *cfg, const char **error_r);

/* daemon.c */
/* server.user and server.group as ids; refused if missing, root or shared
 * (petrel_runas_refusal). */
int petrel_daemon_lookup_user(const struct petrel_config *cfg, uid_t *uid_r, gid_t *gid_r,
                              const char **error_r);
int petrel_daemon_drop(const struct petrel_config *cfg, const char **error_r);
int petrel_daemon_pidfile(const struct petrel_config *cfg, const char **error_r);
/* Fork into the background. The command the administrator ran waits: it
 * exits 0 at petrel_daemon_ready(), or 1 if the daemon exits first, so a
 * failed start is seen (and said on its stderr, kept until ready). */
int petrel_daemon_detach(const char **error_r);
void petrel_daemon_ready(void);

/* ctl.c */
/* Fails if a daemon already answers on the control socket: checked before
 * anything is bound, so a second petreld never takes a connection. */
int petrel_ctl_check(const struct petrel_config *cfg, const char **error_r);
int petrel_ctl_open(const struct petrel_config *cfg, const char **error_r);
/* Once the I/O threads run: the first one serves the socket. */
void petrel_ctl_serve(void);
/* The main thread's part: poll this descriptor and, when it is readable,
 * run the requests that must run there (reload and the like). */
int petrel_ctl_main_fd(void);
void petrel_ctl_main_run(void);
/* Stop serving; requests waiting for the main thread are told so. */
void petrel_ctl_close(void);

/* petreld.c: the actions the control socket and signals share. */
int petrel_server_reload(const char **error_r);
void petrel_server_request_stop(void);

#endif
