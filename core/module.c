/* Loading modules with libltdl, checking their ABI, and the registry of the
 * protocols, services and hooks they register. Modules are loaded once and
 * never unloaded while the daemon runs (as Postfix does with its maps). */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "admin_private.h"
#include "cfg_error.h"
#include "server.h"

#define NAME_MAX_LEN 63

struct service_entry {
    struct service_entry *next;
    char name[NAME_MAX_LEN + 1];
    uint32_t version;
    const void *ops;
    struct petrel_ctx *owner;
};

struct hook_entry {
    struct hook_entry *next;
    char point[NAME_MAX_LEN + 1];
    int priority;
    petrel_hook_fn *fn;
    void *data;
};

static struct service_entry *services;
static struct hook_entry *hooks;
static bool registry_open = true; /* registration only before start */
static bool ltdl_ready;

static int refuse_late(const struct petrel_ctx *ctx, const char *what)
{
    petrel_log(PETREL_LOG_ERROR, "core", "module '%s' tried to register %s after start-up",
               ctx->name, what);
    return -1;
}

int petrel_protocol_register(struct petrel_ctx *ctx, const struct petrel_protocol *proto)
{
    if (!registry_open)
        return refuse_late(ctx, "a protocol");
    if (ctx->nprotocols == PETREL_MAX_PROTOCOLS || proto->name == NULL || proto->line == NULL) {
        petrel_log(PETREL_LOG_ERROR, "core", "module '%s': invalid or too many protocols",
                   ctx->name);
        return -1;
    }
    ctx->protocols[ctx->nprotocols++] = proto;
    return 0;
}

int petrel_service_register(struct petrel_ctx *ctx, const char *name, uint32_t version,
                            const void *ops)
{
    if (!registry_open)
        return refuse_late(ctx, "a service");
    if (strlen(name) > NAME_MAX_LEN || petrel_service_lookup(name, 0) != NULL) {
        petrel_log(PETREL_LOG_ERROR, "core",
                   "module '%s': service '%s' is already registered "
                   "or its name is too long",
                   ctx->name, name);
        return -1;
    }
    struct service_entry *e = petrel_calloc(1, sizeof(*e));
    petrel_strlcpy(e->name, name, sizeof(e->name));
    e->version = version;
    e->ops = ops;
    e->owner = ctx;
    e->next = services;
    services = e;
    return 0;
}

static const struct service_entry *find_service(const char *name)
{
    for (const struct service_entry *e = services; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

const void *petrel_service_lookup(const char *name, uint32_t min_version)
{
    const struct service_entry *e = find_service(name);
    return e != NULL && e->version >= min_version ? e->ops : NULL;
}

int petrel_hook_register(struct petrel_ctx *ctx, const char *point, int priority,
                         petrel_hook_fn *fn, void *hook_data)
{
    if (!registry_open)
        return refuse_late(ctx, "a hook");
    if (strlen(point) > NAME_MAX_LEN || fn == NULL)
        return -1;
    struct hook_entry *h = petrel_calloc(1, sizeof(*h));
    petrel_strlcpy(h->point, point, sizeof(h->point));
    h->priority = priority;
    h->fn = fn;
    h->data = hook_data;
    /* Stable: equal priorities run in registration order. */
    struct hook_entry **p = &hooks;
    while (*p != NULL && (*p)->priority <= priority)
        p = &(*p)->next;
    h->next = *p;
    *p = h;
    return 0;
}

enum petrel_verdict petrel_hook_run(const char *point, void *event, const char **reason_r)
{
    const char *reason = NULL;
    if (reason_r != NULL)
        *reason_r = NULL;
    for (struct hook_entry *h = hooks; h != NULL; h = h->next) {
        if (strcmp(h->point, point) != 0)
            continue;
        enum petrel_verdict v = h->fn(h->data, event, &reason);
        if (v != PETREL_CONTINUE) {
            if (reason_r != NULL)
                *reason_r = reason;
            return v;
        }
    }
    return PETREL_CONTINUE;
}

const void *petrel_ctx_config(const struct petrel_ctx *ctx) { return ctx->config; }

struct petrel_config *petrel_ctx_config_ref(const struct petrel_ctx *ctx)
{
    (void)ctx; /* one generation holds every module's settings */
    pthread_rwlock_rdlock(&petrel_server.gen_lock);
    struct petrel_config *cfg = petrel_server.cfg;
    struct petrel_config *gen = cfg != NULL ? petrel_config_ref(cfg) : NULL;
    pthread_rwlock_unlock(&petrel_server.gen_lock);
    return gen;
}

/* The module's part of a generation. Every generation enables every loaded
 * module (a reload that drops one is refused), so it is always found. */
static const struct petrel_service_cfg *gen_service(const struct petrel_config *gen,
                                                    const struct petrel_ctx *ctx)
{
    return gen != NULL && ctx != NULL ? petrel_config_service(gen, ctx->name) : NULL;
}

const void *petrel_config_settings(const struct petrel_config *gen, const struct petrel_ctx *ctx)
{
    const struct petrel_service_cfg *svc = gen_service(gen, ctx);
    return svc != NULL ? svc->settings : NULL;
}

void *petrel_config_derived(const struct petrel_config *gen, const struct petrel_ctx *ctx)
{
    const struct petrel_service_cfg *svc = gen_service(gen, ctx);
    return svc != NULL ? svc->derived : NULL;
}

const char *petrel_ctx_name(const struct petrel_ctx *ctx) { return ctx->name; }

const char *petrel_primary_domain(void) { return petrel_server.cfg->server.primary_domain; }

const char *petrel_data_dir(void) { return petrel_server.cfg->server.data_dir; }

const char *petrel_hostname(void)
{
    static char system_name[256];
    const char *h = petrel_server.cfg->server.hostname;
    if (h != NULL && h[0] != '\0')
        return h;
    if (system_name[0] == '\0' && gethostname(system_name, sizeof(system_name) - 1) < 0)
        petrel_strlcpy(system_name, "localhost", sizeof(system_name));
    return system_name;
}

bool petrel_hook_active(const char *point)
{
    for (struct hook_entry *h = hooks; h != NULL; h = h->next)
        if (strcmp(h->point, point) == 0)
            return true;
    return false;
}

struct petrel_ctx *petrel_module_find(const char *name)
{
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

const struct petrel_service_cfg *petrel_config_service(const struct petrel_config *cfg,
                                                       const char *module)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        if (strcmp(cfg->services[i].module, module) == 0)
            return &cfg->services[i];
    }
    return NULL;
}

static const char *check_abi(const struct petrel_module *d, const char *name)
{
    if (d->abi_major != PETREL_ABI_MAJOR)
        return petrel_cfg_error("module '%s': built for Petrel ABI %u.%u, this petreld has "
                                "%u.%u: rebuild the module",
                                name, d->abi_major, d->abi_minor, PETREL_ABI_MAJOR,
                                PETREL_ABI_MINOR);
    if (d->abi_minor > PETREL_ABI_MINOR)
        return petrel_cfg_error("module '%s': built for a newer petreld (ABI %u.%u > %u.%u)", name,
                                d->abi_major, d->abi_minor, PETREL_ABI_MAJOR, PETREL_ABI_MINOR);
    if (d->size != sizeof(struct petrel_module) || d->signature == NULL ||
        strcmp(d->signature, PETREL_ABI_SIGNATURE) != 0)
        return petrel_cfg_error("module '%s': build signature '%s' (descriptor %u bytes) does "
                                "not match this petreld's '%s' (%zu bytes): rebuild the module",
                                name, d->signature ? d->signature : "(none)", d->size,
                                PETREL_ABI_SIGNATURE, sizeof(struct petrel_module));
    if (d->name == NULL || strcmp(d->name, name) != 0)
        return petrel_cfg_error("module '%s': its descriptor names it '%s'", name,
                                d->name ? d->name : "(none)");
    return NULL;
}

static struct petrel_ctx *load_one(const struct petrel_config *cfg,
                                   const struct petrel_service_cfg *svc, const char **error_r)
{
    struct petrel_ctx *ctx = petrel_calloc(1, sizeof(*ctx));
    petrel_strlcpy(ctx->name, svc->module, sizeof(ctx->name));
    if (svc->file != NULL)
        petrel_strlcpy(ctx->path, svc->file, sizeof(ctx->path));
    else
        petrel_snprintf(ctx->path, sizeof(ctx->path), "%s/%s", cfg->server.module_path,
                        svc->module);
    lt_dladvise advise;
    lt_dladvise_init(&advise);
    lt_dladvise_ext(&advise);
    lt_dladvise_local(&advise);
    ctx->handle = lt_dlopenadvise(ctx->path, advise);
    lt_dladvise_destroy(&advise);
    if (ctx->handle == NULL) {
        const char *why = lt_dlerror();
        *error_r = petrel_cfg_error("module '%s' (%s): cannot load %s.so: %s", svc->module,
                                    svc->path, ctx->path, why ? why : "unknown error");
        free(ctx);
        return NULL;
    }
    ctx->mod = lt_dlsym(ctx->handle, PETREL_MODULE_SYMBOL);
    const char *why = ctx->mod == NULL
                          ? petrel_cfg_error("module '%s': %s has no %s: not a Petrel module",
                                             svc->module, ctx->path, PETREL_MODULE_SYMBOL)
                          : check_abi(ctx->mod, svc->module);
    if (why != NULL) {
        *error_r = why;
        lt_dlclose(ctx->handle);
        free(ctx);
        return NULL;
    }
    return ctx;
}

static int apply_settings(struct petrel_ctx *ctx, struct petrel_service_cfg *svc,
                          const char **error_r)
{
    const struct petrel_module *m = ctx->mod;
    if (petrel_config_apply_module(svc, m->settings, m->config_size, error_r) < 0)
        return -1;
    const char *why = NULL;
    if (m->check != NULL && m->check(svc->settings, &why) != 0) {
        *error_r = petrel_cfg_error("%s: module '%s': %s", svc->path, ctx->name,
                                    why ? why : "invalid settings");
        return -1;
    }
    /* Older modules may hold anything in what were reserved slots. */
    if (m->abi_minor < 6 || m->derive == NULL)
        return 0;
    svc->free_derived = m->free_derived;
    if (m->derive(svc->settings, &svc->derived, &why) != 0) {
        /* Whatever derive left behind is freed with the refused generation. */
        *error_r = petrel_cfg_error("%s: module '%s': %s", svc->path, ctx->name,
                                    why ? why : "cannot prepare the settings");
        return -1;
    }
    return 0;
}

int petrel_modules_load(struct petrel_config *cfg, bool verbose, const char **error_r)
{
    if (!ltdl_ready) {
        if (lt_dlinit() != 0) {
            *error_r = petrel_cfg_error("libltdl: %s", lt_dlerror());
            return -1;
        }
        ltdl_ready = true;
    }
    struct petrel_ctx **tail = &petrel_server.modules;
    for (size_t i = 0; i < cfg->nservices; i++) {
        struct petrel_service_cfg *svc = &cfg->services[i];
        struct petrel_ctx *ctx = load_one(cfg, svc, error_r);
        if (ctx == NULL)
            return -1;
        *tail = ctx;
        tail = &ctx->next;
        if (apply_settings(ctx, svc, error_r) < 0)
            return -1;
        ctx->config = svc->settings;
        ctx->job_limit.max = (unsigned)svc->workers;
        if (verbose)
            petrel_log(PETREL_LOG_INFO, "core", "module '%s' %s loaded from %s", ctx->name,
                       ctx->mod->version ? ctx->mod->version : "", ctx->path);
    }
    return 0;
}

static const char *missing_need(const struct petrel_ctx *ctx)
{
    for (const char *const *n = ctx->mod->needs; n != NULL && *n != NULL; n++) {
        if (petrel_service_lookup(*n, 0) == NULL)
            return *n;
    }
    return NULL;
}

/* Modules init in conf.d order, except that one waits until the services it
 * needs are registered by another. */
int petrel_modules_init(struct petrel_config *cfg, const char **error_r)
{
    bool progress = true;
    while (progress) {
        progress = false;
        for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
            if (m->initialised || missing_need(m) != NULL)
                continue;
            const char *why = NULL;
            if (m->mod->init != NULL && m->mod->init(m, m->config, &why) != 0) {
                *error_r = petrel_cfg_error("module '%s': init failed: %s", m->name,
                                            why ? why : "no reason given");
                return -1;
            }
            m->initialised = true;
            progress = true;
        }
    }
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        if (!m->initialised) {
            *error_r = petrel_cfg_error("module '%s': needs service '%s', which no enabled "
                                        "module provides",
                                        m->name, missing_need(m));
            return -1;
        }
    }
    (void)cfg;
    return 0;
}

/* Services are registered once, at init, and stay for the daemon's life:
 * a new generation must keep enabling the module behind every service an
 * enabled module needs. Checked before anything else at reload, so the
 * refusal names the need rather than only the module that went away. */
int petrel_modules_check_needs(const struct petrel_config *cfg, const char **error_r)
{
    for (const struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        if (petrel_config_service(cfg, m->name) == NULL)
            continue;
        for (const char *const *n = m->mod->needs; n != NULL && *n != NULL; n++) {
            const struct service_entry *e = find_service(*n);
            if (e != NULL && petrel_config_service(cfg, e->owner->name) == NULL) {
                *error_r = petrel_cfg_error("module '%s': needs service '%s', which no enabled "
                                            "module provides (module '%s' provides it and is "
                                            "not enabled in %s)",
                                            m->name, *n, e->owner->name, cfg->confd);
                return -1;
            }
        }
    }
    return 0;
}

int petrel_modules_start(const char **error_r)
{
    registry_open = false;
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        const char *why = NULL;
        if (m->mod->start != NULL && m->mod->start(m, &why) != 0) {
            *error_r = petrel_cfg_error("module '%s': start failed: %s", m->name,
                                        why ? why : "no reason given");
            return -1;
        }
    }
    return 0;
}

int petrel_modules_apply_settings(struct petrel_config *cfg, const char **error_r)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        if (petrel_module_find(cfg->services[i].module) == NULL) {
            *error_r = petrel_cfg_error("%s: module '%s' is not loaded: restart petreld to load "
                                        "a new module",
                                        cfg->services[i].path, cfg->services[i].module);
            return -1;
        }
    }
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        struct petrel_service_cfg *svc =
            (struct petrel_service_cfg *)petrel_config_service(cfg, m->name);
        if (svc == NULL) {
            *error_r = petrel_cfg_error("module '%s' is no longer enabled in %s: restart "
                                        "petreld to unload it",
                                        m->name, cfg->confd);
            return -1;
        }
        if (apply_settings(m, svc, error_r) < 0)
            return -1;
        const char *fixed =
            petrel_settings_fixed_changed(svc->settings_table, m->config, svc->settings);
        if (fixed != NULL) {
            *error_r = petrel_cfg_error("%s: module '%s': changing '%s' needs a restart", svc->path,
                                        m->name, fixed);
            return -1;
        }
    }
    return 0;
}

/* Give every module the new settings; if one refuses, hand the old ones
 * back to those already switched so the old generation runs on intact. */
int petrel_modules_reload(struct petrel_config *cfg, const char **error_r)
{
    struct petrel_ctx *m;
    for (m = petrel_server.modules; m != NULL; m = m->next) {
        const void *next = petrel_config_service(cfg, m->name)->settings;
        const char *why = NULL;
        if (m->mod->reload != NULL && m->mod->reload(m, next, &why) != 0) {
            *error_r = petrel_cfg_error("module '%s' refused the new configuration: %s", m->name,
                                        why ? why : "no reason given");
            break;
        }
    }
    if (m == NULL) {
        for (m = petrel_server.modules; m != NULL; m = m->next) {
            const struct petrel_service_cfg *svc = petrel_config_service(cfg, m->name);
            m->config = svc->settings;
            m->job_limit.max = (unsigned)svc->workers;
        }
        return 0;
    }
    for (struct petrel_ctx *r = petrel_server.modules; r != m; r = r->next) {
        const char *ignored;
        if (r->mod->reload != NULL)
            r->mod->reload(r, r->config, &ignored);
    }
    return -1;
}

void petrel_modules_stop(void)
{
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        if (m->initialised && m->mod->stop != NULL)
            m->mod->stop(m);
    }
}

void petrel_registry_free(void)
{
    while (services != NULL) {
        struct service_entry *e = services;
        services = e->next;
        free(e);
    }
    while (hooks != NULL) {
        struct hook_entry *h = hooks;
        hooks = h->next;
        free(h);
    }
}

void petrel_modules_unload(void)
{
    petrel_registry_free();
    while (petrel_server.modules != NULL) {
        struct petrel_ctx *m = petrel_server.modules;
        petrel_server.modules = m->next;
        free(m);
    }
    /* Every thread has stopped by now, so no module code can still run. */
    if (ltdl_ready) {
        lt_dlexit();
        ltdl_ready = false;
    }
}

/* Whether the module at path (without ".so") has the command argv names. */
static bool probe_one(const char *name, const char *path, int argc, char **argv)
{
    lt_dladvise advise;
    lt_dladvise_init(&advise);
    lt_dladvise_ext(&advise);
    lt_dladvise_local(&advise);
    lt_dlhandle h = lt_dlopenadvise(path, advise);
    lt_dladvise_destroy(&advise);
    const struct petrel_module *d = h ? lt_dlsym(h, PETREL_MODULE_SYMBOL) : NULL;
    bool has = d != NULL && check_abi(d, name) == NULL &&
               petrel_admin_table_has(petrel_admin_table(d), argc, argv);
    if (h != NULL)
        lt_dlclose(h);
    return has;
}

/* For petrelctl: which module, not enabled in cfg, has the command argv
 * names, so the administrator is told to enable it rather than that no
 * such command exists. The modules of disabled conf.d files first, then
 * every other one in module_path. */
int petrel_module_probe_admin(const struct petrel_config *cfg, int argc, char **argv, char *out,
                              size_t size)
{
    if (!ltdl_ready) {
        if (lt_dlinit() != 0)
            return -1;
        ltdl_ready = true;
    }
    char path[4096];
    for (size_t i = cfg->nservices; i < cfg->nall; i++) {
        const struct petrel_service_cfg *svc = &cfg->services[i];
        bool fits = svc->file != NULL ? petrel_strlcpy(path, svc->file, sizeof(path))
                                      : petrel_snprintf(path, sizeof(path), "%s/%s",
                                                        cfg->server.module_path, svc->module);
        if (fits && probe_one(svc->module, path, argc, argv))
            return petrel_strlcpy(out, svc->module, size) ? 0 : -1;
    }
    struct dirent **names;
    int n = scandir(cfg->server.module_path, &names, NULL, alphasort);
    int found = -1;
    for (int i = 0; i < n; i++) {
        char name[NAME_MAX_LEN + 1];
        size_t len = strlen(names[i]->d_name);
        if (found < 0 && len > 3 && len - 3 <= NAME_MAX_LEN && names[i]->d_name[0] != '.' &&
            strcmp(names[i]->d_name + len - 3, ".so") == 0) {
            memcpy(name, names[i]->d_name, len - 3);
            name[len - 3] = '\0';
            if (petrel_config_service(cfg, name) == NULL &&
                petrel_snprintf(path, sizeof(path), "%s/%s", cfg->server.module_path, name) &&
                probe_one(name, path, argc, argv) && petrel_strlcpy(out, name, size))
                found = 0;
        }
        free(names[i]);
    }
    if (n >= 0)
        free(names);
    return found;
}
