/* The module ABI. Every module exports exactly one descriptor, written with
 * PETREL_MODULE(...), so the version fields are always filled the same way.
 * The core refuses a module whose ABI major, descriptor size or signature
 * differ from its own, naming the module in one log line. */
#ifndef PETREL_MODULE_H
#define PETREL_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/admin.h>
#include <petrel/conn.h>
#include <petrel/setting.h>

/* Major: incompatible change. Minor: fields appended; older modules load. */
#define PETREL_ABI_MAJOR 1u
#define PETREL_ABI_MINOR 10u

#define PETREL_STR_(x) #x
#define PETREL_STR(x) PETREL_STR_(x)
/* What must match between core and module beyond the version numbers. */
#define PETREL_ABI_SIGNATURE                                                                       \
    "petrel-abi:" PETREL_STR(PETREL_ABI_MAJOR) ":ptr" PETREL_STR(                                  \
        __SIZEOF_POINTER__) ":long" PETREL_STR(__SIZEOF_LONG__)

#define PETREL_MODULE_SYMBOL "petrel_module_descriptor"

/* The core's handle for one loaded module. */
struct petrel_ctx;

struct petrel_module {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t size;         /* sizeof(struct petrel_module) at build time */
    const char *signature; /* PETREL_ABI_SIGNATURE at build time */
    const char *name;      /* "imap": also the module's file name, imap.so */
    const char *version;
    const char *const *needs; /* services that must exist before init, NULL-terminated */
    const struct petrel_setting *settings; /* the `settings` group of its conf.d file */
    size_t config_size;                    /* size of the struct the settings fill */
    /* Cross-field validation of a filled config (start-up and reload). */
    int (*check)(const void *config, const char **error_r);
    /* Before privileges drop and threads start: register protocols, services
     * and hooks; open what needs root. */
    int (*init)(struct petrel_ctx *ctx, const void *config, const char **error_r);
    /* After every init, with threads running. */
    int (*start)(struct petrel_ctx *ctx, const char **error_r);
    /* New config on SIGHUP. Returning non-zero refuses the whole reload and
     * the old configuration keeps running. */
    int (*reload)(struct petrel_ctx *ctx, const void *config, const char **error_r);
    /* Shutdown, after listeners close; connections are already gone. */
    void (*stop)(struct petrel_ctx *ctx);
    /* Since ABI minor 6 (read only from modules built for it): state built
     * once per configuration generation from its settings (a parsed list,
     * a compiled map), so nothing is re-parsed per connection or job.
     * Called on the main thread after check, at start-up and on each
     * reload (also by petreld --check-config); non-zero refuses the start
     * or the reload as check does. What it leaves in *derived_r is what
     * petrel_config_derived() and petrel_conn_derived() return for that
     * generation: shared by every thread holding it, so read-only or
     * guarded by the module. */
    int (*derive)(const void *config, void **derived_r, const char **error_r);
    /* The generation is freed: release what derive built. Runs on whichever
     * thread drops the last reference (main, I/O or worker): no blocking. */
    void (*free_derived)(void *derived);
    /* Since ABI minor 7: the module's administration commands, ended by an
     * entry whose name is NULL (petrel/admin.h). A table, not a
     * registration in init, so petrelctl finds and runs them without
     * initialising the module. */
    const struct petrel_admin_command *admin;
    void *reserved[5];
};

#define PETREL_EXPORT __attribute__((visibility("default")))

#define PETREL_MODULE(...)                                                                         \
    PETREL_EXPORT extern const struct petrel_module petrel_module_descriptor;                      \
    PETREL_EXPORT const struct petrel_module petrel_module_descriptor = {                          \
        .abi_major = PETREL_ABI_MAJOR,                                                             \
        .abi_minor = PETREL_ABI_MINOR,                                                             \
        .size = sizeof(struct petrel_module),                                                      \
        .signature = PETREL_ABI_SIGNATURE,                                                         \
        __VA_ARGS__}

/* Registration, from init only (the main thread): the registries take no
 * lock because they never change after start-up, and a later call is
 * refused (-1) with a log line. */
int petrel_protocol_register(struct petrel_ctx *ctx, const struct petrel_protocol *proto);

/* Services: a versioned table of functions other modules look up by name
 * ("storage", "userdb", "auth"). Register in init; look up from any
 * thread. */
int petrel_service_register(struct petrel_ctx *ctx, const char *name, uint32_t version,
                            const void *ops);
/* NULL if absent or older than min_version. */
const void *petrel_service_lookup(const char *name, uint32_t min_version);

/* Hooks: named points where handlers, in priority order (lower first), may
 * give a verdict. The first verdict other than CONTINUE ends the run. */
enum petrel_verdict {
    PETREL_CONTINUE = 0, /* no opinion: ask the next handler */
    PETREL_OK,           /* accept; skip the remaining handlers */
    PETREL_DENY,         /* permanent refusal */
    PETREL_DENY_SOFT,    /* temporary refusal */
    PETREL_DISCONNECT,   /* refuse and drop the client */
};
typedef enum petrel_verdict petrel_hook_fn(void *hook_data, void *event, const char **reason_r);
int petrel_hook_register(struct petrel_ctx *ctx, const char *point, int priority,
                         petrel_hook_fn *fn, void *hook_data);
/* Run a hook point (any thread). reason_r receives the deciding handler's
 * text, if any. */
enum petrel_verdict petrel_hook_run(const char *point, void *event, const char **reason_r);
/* Whether any handler is registered at point, so a caller can skip
 * building an event (or a trip to a worker) nobody looks at. Since ABI
 * minor 2. Any thread. */
bool petrel_hook_active(const char *point);

/* The module's current settings (main thread only: init, start, reload,
 * stop; the main thread replaces them at a reload). In reload they are
 * still the running ones: the new ones are reload's config argument.
 * Other threads use petrel_ctx_config_ref below. */
const void *petrel_ctx_config(const struct petrel_ctx *ctx);

/* Settings from any thread (since ABI minor 6). A reload builds a new,
 * immutable configuration generation and swaps it in; the old one lives
 * on, reference-counted, while anyone holds it. A worker job, a hook or a
 * background thread takes a reference once, reads every setting it needs
 * from that one generation however long it runs, and releases it:
 *
 *     struct petrel_config *gen = petrel_ctx_config_ref(ctx);
 *     const struct my_config *c = petrel_config_settings(gen, ctx);
 *     ...
 *     petrel_config_unref(gen);
 *
 * so no piece of work ever sees old and new values mixed, and no module
 * keeps a private copy. A connection holds the generation it was accepted
 * under (petrel_conn_config, petrel_conn_derived). Holding a reference
 * keeps the whole generation in memory: release it when the work is done,
 * never keep one for the module's life. All four calls are thread-safe and do not block (a
 * read-lock held for a pointer copy). */
struct petrel_config;
/* A new reference to the current generation; never NULL once the module
 * is loaded. */
struct petrel_config *petrel_ctx_config_ref(const struct petrel_ctx *ctx);
/* The module's settings struct of that generation (what petrel_ctx_config
 * returned while it was current), valid until the reference is released. */
const void *petrel_config_settings(const struct petrel_config *gen, const struct petrel_ctx *ctx);
/* What the module's derive built for that generation, or NULL. */
void *petrel_config_derived(const struct petrel_config *gen, const struct petrel_ctx *ctx);
/* Release a reference; NULL is ignored. The last one frees the generation
 * (and calls free_derived). */
void petrel_config_unref(struct petrel_config *gen);

/* Any thread: the name never changes. */
const char *petrel_ctx_name(const struct petrel_ctx *ctx);
/* Server-wide values from petrel.conf, for init, start, reload and stop
 * (main thread only: they read the current generation without holding
 * it; in reload they still answer for the running configuration). Copy
 * what other threads need in init. data_dir never changes without a
 * restart. */
const char *petrel_primary_domain(void);
const char *petrel_data_dir(void);
/* The name this server gives itself in greetings and trace headers
 * (server.hostname, else the system's host name), main thread only like
 * the two above. Since ABI minor 2. */
const char *petrel_hostname(void);

/* Blocking work not tied to a connection (timers, background jobs): work
 * runs on a worker thread; nothing is posted back. Any thread. False when
 * the queue is full, and before start (the pool starts after init). */
bool petrel_worker_submit(petrel_work_fn *work, void *arg);

#endif
