/* The one server state shared by the core's parts. */
#include "config.h"

#include <petrel/log.h>
#include <petrel/mem.h>

#include "server.h"

struct petrel_server petrel_server = {.gen_lock = PTHREAD_RWLOCK_INITIALIZER};

void petrel_server_apply_limits(const struct petrel_config *cfg)
{
    long limit = petrel_server.fd_conn_cap, want = (long)cfg->server.max_connections;
    if (want > 0 && (limit == 0 || want <= limit))
        limit = want;
    else if (want > 0)
        petrel_log(PETREL_LOG_WARNING, "core",
                   "server.max_connections %ld is more than the open-file limit allows: "
                   "accepting at most %ld",
                   want, limit);
    atomic_store(&petrel_server.conn_limit, limit);
    petrel_membudget_set((size_t)cfg->server.message_memory);
}

static atomic_bool full;

bool petrel_server_may_accept(void)
{
    long limit = atomic_load(&petrel_server.conn_limit);
    bool ok = limit == 0 || atomic_load(&petrel_server.nconns) < limit;
    bool was_full = atomic_load(&full);
    if (ok == was_full && atomic_compare_exchange_strong(&full, &was_full, !ok)) {
        if (!ok)
            petrel_log(PETREL_LOG_WARNING, "core",
                       "%ld connections open, the most allowed (server.max_connections, or "
                       "the open-file limit): not accepting until some close",
                       limit);
        else
            petrel_log(PETREL_LOG_INFO, "core", "accepting connections again");
    }
    return ok;
}
