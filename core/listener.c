/* Listening sockets. Each I/O thread gets its own socket per address, bound
 * with SO_REUSEPORT, so the kernel spreads accepts without a shared lock. A
 * reload keeps the sockets of addresses that stay, binds new ones before it
 * commits, and closes the ones that went away. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "cfg_error.h"
#include "iothread.h"
#include "rules.h"
#include "server.h"

#define LISTEN_BACKLOG 1024

/* Listeners of the generation being prepared, until commit or abort. */
struct pending {
    struct petrel_listener *l;
    bool is_new;
    const struct petrel_listener_cfg *cfg;
    const struct petrel_service_cfg *svc;
    const struct petrel_protocol *proto;
    struct petrel_ctx *module;
};

static struct pending *pending;
static size_t npending;

void petrel_listener_unref(struct petrel_listener *l)
{
    if (atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    petrel_flow_state_unref(l->flow);
    free(l->fds);
    free(l);
}

static int bind_one(const struct petrel_listener_cfg *cfg, const char **error_r)
{
    int fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    /* "[::]:25" means IPv6 only; IPv4 has its own listener line. */
    if (cfg->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&cfg->addr, cfg->addrlen) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    *error_r =
        petrel_cfg_error("%s: cannot listen on %s: %s", cfg->where, cfg->address, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static struct petrel_listener *find_listener(const struct petrel_listener_cfg *cfg)
{
    for (struct petrel_listener *l = petrel_server.listeners; l != NULL; l = l->next) {
        if (l->addrlen == cfg->addrlen && memcmp(&l->addr, &cfg->addr, cfg->addrlen) == 0)
            return l;
    }
    return NULL;
}

static struct petrel_listener *listener_new(const struct petrel_listener_cfg *cfg,
                                            const char **error_r)
{
    struct petrel_listener *l = petrel_calloc(1, sizeof(*l));
    petrel_strlcpy(l->address, cfg->address, sizeof(l->address));
    l->addr = cfg->addr;
    l->addrlen = cfg->addrlen;
    l->flow = petrel_flow_state_new();
    atomic_init(&l->refs, 1);
    l->fds = petrel_calloc(petrel_server.nthreads, sizeof(int));
    for (; l->nfds < petrel_server.nthreads; l->nfds++) {
        l->fds[l->nfds] = bind_one(cfg, error_r);
        if (l->fds[l->nfds] < 0) {
            for (unsigned i = 0; i < l->nfds; i++)
                close(l->fds[i]);
            petrel_listener_unref(l);
            return NULL;
        }
    }
    return l;
}

static const struct petrel_protocol *find_protocol(const struct petrel_ctx *m,
                                                   const struct petrel_listener_cfg *cfg,
                                                   const char **error_r)
{
    for (size_t i = 0; i < m->nprotocols; i++) {
        if (cfg->protocol == NULL ? m->nprotocols == 1
                                  : strcmp(m->protocols[i]->name, cfg->protocol) == 0)
            return m->protocols[i];
    }
    if (m->nprotocols == 0)
        *error_r = petrel_cfg_error("%s: module '%s' offers no protocol to listen with", cfg->where,
                                    m->name);
    else if (cfg->protocol == NULL)
        *error_r = petrel_cfg_error("%s: module '%s' offers several protocols: set 'protocol'",
                                    cfg->where, m->name);
    else
        *error_r = petrel_cfg_error("%s: module '%s' has no protocol '%s'", cfg->where, m->name,
                                    cfg->protocol);
    return NULL;
}

static int prepare_one(const struct petrel_service_cfg *svc, const struct petrel_listener_cfg *cfg,
                       const char **error_r)
{
    struct petrel_ctx *m = petrel_module_find(svc->module);
    const struct petrel_protocol *proto = find_protocol(m, cfg, error_r);
    if (proto == NULL)
        return -1;
    for (size_t i = 0; i < npending; i++) {
        if (pending[i].cfg->addrlen == cfg->addrlen &&
            memcmp(&pending[i].cfg->addr, &cfg->addr, cfg->addrlen) == 0) {
            *error_r = petrel_cfg_error("%s: address %s is already used at %s", cfg->where,
                                        cfg->address, pending[i].cfg->where);
            return -1;
        }
    }
    struct petrel_listener *l = find_listener(cfg);
    bool is_new = l == NULL;
    if (is_new && (l = listener_new(cfg, error_r)) == NULL)
        return -1;
    pending[npending++] = (struct pending){l, is_new, cfg, svc, proto, m};
    return 0;
}

int petrel_listeners_prepare(struct petrel_config *cfg, const char **error_r)
{
    size_t total = 0;
    for (size_t i = 0; i < cfg->nservices; i++)
        total += cfg->services[i].nlisteners;
    pending = petrel_calloc(total, sizeof(*pending));
    npending = 0;
    for (size_t i = 0; i < cfg->nservices; i++) {
        for (size_t j = 0; j < cfg->services[i].nlisteners; j++) {
            if (prepare_one(&cfg->services[i], &cfg->services[i].listeners[j], error_r) < 0) {
                petrel_listeners_abort();
                return -1;
            }
        }
    }
    return 0;
}

void petrel_listeners_abort(void)
{
    for (size_t i = 0; i < npending; i++) {
        if (pending[i].is_new) {
            for (unsigned j = 0; j < pending[i].l->nfds; j++)
                close(pending[i].l->fds[j]);
            petrel_listener_unref(pending[i].l);
        }
    }
    free(pending);
    pending = NULL;
    npending = 0;
}

static void add_slot_task(struct petrel_loop *t, void *arg) { petrel_iothread_add_slot(t, arg); }

static void remove_listener_task(struct petrel_loop *t, void *arg)
{
    petrel_iothread_remove_listener(t, arg);
}

/* Called with gen_lock held for writing, after the new generation is in. */
void petrel_listeners_commit(void)
{
    /* Listeners not in the new generation stop accepting. */
    for (struct petrel_listener **p = &petrel_server.listeners; *p != NULL;) {
        struct petrel_listener *l = *p;
        bool kept = false;
        for (size_t i = 0; i < npending && !kept; i++)
            kept = pending[i].l == l;
        if (kept) {
            p = &l->next;
            continue;
        }
        petrel_log(PETREL_LOG_INFO, "core", "closing listener %s", l->address);
        *p = l->next;
        for (unsigned i = 0; i < petrel_server.nthreads; i++)
            petrel_iothread_post(&petrel_server.threads[i], remove_listener_task, l);
        petrel_listener_unref(l);
    }
    for (size_t i = 0; i < npending; i++) {
        struct pending *pd = &pending[i];
        struct petrel_listener *l = pd->l;
        l->cfg = pd->cfg;
        l->svc = pd->svc;
        l->proto = pd->proto;
        l->module = pd->module;
        if (!pd->is_new)
            continue;
        petrel_log(PETREL_LOG_INFO, "core", "listening on %s for %s (%s)", l->address,
                   l->module->name, l->cfg->tls);
        l->next = petrel_server.listeners;
        petrel_server.listeners = l;
        for (unsigned j = 0; j < l->nfds; j++) {
            struct petrel_listen_slot *s = petrel_calloc(1, sizeof(*s));
            s->fd = l->fds[j];
            s->listener = l;
            atomic_fetch_add(&l->refs, 1);
            petrel_iothread_post(&petrel_server.threads[j], add_slot_task, s);
        }
    }
    free(pending);
    pending = NULL;
    npending = 0;
}

void petrel_listeners_close_all(void)
{
    while (petrel_server.listeners != NULL) {
        struct petrel_listener *l = petrel_server.listeners;
        petrel_server.listeners = l->next;
        petrel_listener_unref(l);
    }
}
