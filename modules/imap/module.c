/* The imap module: settings and the "imap" protocol (143 with STARTTLS,
 * 993 with implicit TLS). */
#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

#include <petrel/mem.h>
#include <petrel/module.h>

#include "imap.h"
#include "imap_registry.h"
#include "metadata_store.h"

static const struct petrel_setting imap_settings[] = {
    PETREL_SETTING_INT(struct imap_config, max_connections_per_user, "20", 1, 100000),
    PETREL_SETTING_SIZE(struct imap_config, max_command, "64k", 4096, 16777216),
    PETREL_SETTING_SIZE(struct imap_config, max_literal, "50M", 1024, 1LL << 32),
    PETREL_SETTING_SIZE(struct imap_config, max_answer, "16M", 4096, IMAP_OUT_MAX),
    PETREL_SETTINGS_END,
};

const struct petrel_storage_ops *imap_storage;
char imap_hostname[256];
char imap_spool_dir[4096];
struct imap_counters imap_counters;

extern const struct petrel_protocol imap_protocol;

static int imap_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)config;
    imap_storage = petrel_service_lookup(PETREL_STORAGE_SERVICE, 1);
    if (imap_storage == NULL) {
        *error_r = "needs the storage service (storage module)";
        return -1;
    }
    petrel_strlcpy(imap_hostname, petrel_hostname(), sizeof(imap_hostname));
    imap_counters = (struct imap_counters){
        .logins = petrel_counter("imap.logins"),
        .per_user_refused = petrel_counter("imap.per_user_refused"),
        .fetched_bytes = petrel_counter("imap.fetched_bytes"),
        .appended = petrel_counter("imap.appended"),
    };
    if (petrel_protocol_register(ctx, &imap_protocol) < 0) {
        *error_r = "cannot register the imap protocol";
        return -1;
    }
    return 0;
}

/* APPEND's spool: the instance's own directory, not $TMPDIR; made here,
 * after privileges drop (so it is the service's) and on the main thread
 * (so that no I/O thread creates it). */
static int imap_start(struct petrel_ctx *ctx, const char **error_r)
{
    (void)ctx;
    if (!petrel_snprintf(imap_spool_dir, sizeof(imap_spool_dir), "%s/imap-spool",
                         petrel_data_dir())) {
        *error_r = "the data directory's name is too long";
        return -1;
    }
    if (mkdir(imap_spool_dir, 0700) != 0 && errno != EEXIST) {
        *error_r = "cannot create the APPEND spool directory (data_dir/imap-spool)";
        return -1;
    }
    return imap_metadata_start(petrel_data_dir(), error_r);
}

static int imap_reload(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    (void)ctx, (void)config, (void)error_r;
    return 0; /* new connections get the new settings (petrel_conn_config) */
}

static void imap_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    imap_registry_free();
}

static const char *const imap_needs[] = {PETREL_STORAGE_SERVICE, NULL};

PETREL_MODULE(.name = "imap", .version = "1.0", .needs = imap_needs, .settings = imap_settings,
              .config_size = sizeof(struct imap_config), .init = imap_init, .start = imap_start,
              .reload = imap_reload, .stop = imap_stop);
