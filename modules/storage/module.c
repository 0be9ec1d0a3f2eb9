/* The storage module: its settings, mapped onto the Maildir++ store
 * (storage.c and the layers below it), which it registers as the
 * "storage" service. No state of its own. */
#include <stddef.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/storage.h>

#include "storage_private.h"

struct storage_config {
    char *root;
    bool fsync;
    char *index_sync;
    long long index_mmap;
    long long cache_accounts;
    bool fts;
    long long fts_catchup;
    long long expunged_days, expunged_max;
};

static const char *const sync_choices[] = {"full", "normal", "off", NULL};

static const struct petrel_setting storage_settings[] = {
    PETREL_SETTING_STRING_F(struct storage_config, root, "mail", PETREL_SETTING_FIXED),
    PETREL_SETTING_BOOL_F(struct storage_config, fsync, "true", PETREL_SETTING_FIXED),
    PETREL_SETTING_CHOICE_F(struct storage_config, index_sync, "full", sync_choices,
                            PETREL_SETTING_FIXED),
    PETREL_SETTING_SIZE_F(struct storage_config, index_mmap, "256M", 0, 1LL << 30,
                          PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct storage_config, cache_accounts, "256", 0, 1000000,
                         PETREL_SETTING_FIXED),
    PETREL_SETTING_BOOL_F(struct storage_config, fts, "true", PETREL_SETTING_FIXED),
    PETREL_SETTING_DURATION_F(struct storage_config, fts_catchup, "30s", 1, 3600,
                              PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct storage_config, expunged_days, "30", 1, 3650, PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct storage_config, expunged_max, "100000", 1, 100000000,
                         PETREL_SETTING_FIXED),
    PETREL_SETTINGS_END,
};

static enum storage_sync_mode sync_mode(const char *s)
{
    if (strcmp(s, "off") == 0)
        return STORAGE_SYNC_OFF;
    return strcmp(s, "normal") == 0 ? STORAGE_SYNC_NORMAL : STORAGE_SYNC_FULL;
}

static int storage_check(const void *config, const char **error_r)
{
    const struct storage_config *cfg = config;
    if (cfg->root[0] == '\0') {
        *error_r = "root must not be empty";
        return -1;
    }
    return 0;
}

static int storage_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    const struct storage_config *cfg = config;
    char root[PATH_MAX];
    /* petrel_data_dir() is for the main thread: resolve the root here. */
    if (cfg->root[0] == '/'
            ? !petrel_strlcpy(root, cfg->root, sizeof(root))
            : !petrel_snprintf(root, sizeof(root), "%s/%s", petrel_data_dir(), cfg->root)) {
        *error_r = "root: path too long";
        return -1;
    }
    storage_configure(root, petrel_primary_domain(), cfg->fsync, sync_mode(cfg->index_sync));
    storage_configure_index_mmap(cfg->index_mmap);
    storage_configure_cache((size_t)cfg->cache_accounts);
    storage_configure_fts(cfg->fts);
    storage_configure_fts_catchup((unsigned)cfg->fts_catchup * 1000u);
    storage_configure_expunged((unsigned)cfg->expunged_days, (size_t)cfg->expunged_max);
    if (!cfg->fsync)
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG,
                   "fsync = false: acknowledged mail can be lost on a crash (tests only)");
    if (petrel_service_register(ctx, PETREL_STORAGE_SERVICE, PETREL_STORAGE_VERSION,
                                &storage_ops) != 0) {
        *error_r = "cannot register the storage service";
        return -1;
    }
    storage_fts_background_start();
    petrel_log(PETREL_LOG_INFO, STORAGE_LOG, "maildir store at %s (index sync %s)", root,
               cfg->index_sync);
    return 0;
}

static void storage_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    storage_fts_background_stop(); /* it holds accounts */
    storage_mailbox_flush_cache();
}

PETREL_MODULE(.name = "storage", .version = "1.0", .settings = storage_settings,
              .config_size = sizeof(struct storage_config), .check = storage_check,
              .init = storage_init, .stop = storage_stop);
