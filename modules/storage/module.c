/* The storage module: its settings, and the Maildir++ backend registered
 * as the "storage" service. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/stats.h>
#include <petrel/storage.h>

#include "storage_private.h"

struct storage_config {
    char *root;
    bool fsync;
    char *index_sync;
    long long cache_accounts;
};

static const char *const sync_choices[] = {"full", "normal", "off", NULL};

static const struct petrel_setting storage_settings[] = {
    PETREL_SETTING_STRING_F(struct storage_config, root, "mail", PETREL_SETTING_FIXED),
    PETREL_SETTING_BOOL_F(struct storage_config, fsync, "true", PETREL_SETTING_FIXED),
    PETREL_SETTING_CHOICE_F(struct storage_config, index_sync, "full", sync_choices,
                            PETREL_SETTING_FIXED),
    PETREL_SETTING_INT_F(struct storage_config, cache_accounts, "256", 0, 1000000,
                         PETREL_SETTING_FIXED),
    PETREL_SETTINGS_END,
};

struct storage_env storage_env = {
    .root = "mail", .fsync = true, .index_sync = STORAGE_SYNC_FULL, .max_folders = 10000};
struct storage_counters storage_counters;
bool (*storage_test_fault)(const char *point);

void storage_count(struct petrel_counter *c, int64_t n)
{
    if (c != NULL)
        petrel_counter_add(c, n);
}

static enum storage_sync_mode sync_mode(const char *s)
{
    if (strcmp(s, "off") == 0)
        return STORAGE_SYNC_OFF;
    return strcmp(s, "normal") == 0 ? STORAGE_SYNC_NORMAL : STORAGE_SYNC_FULL;
}

void storage_configure(const char *root, const char *domain, bool do_fsync,
                       enum storage_sync_mode index_sync)
{
    char host[sizeof(storage_env.host)];
    petrel_strlcpy(storage_env.root, root, sizeof(storage_env.root));
    petrel_strlcpy(storage_env.domain, domain != NULL ? domain : "", sizeof(storage_env.domain));
    storage_env.fsync = do_fsync;
    storage_env.index_sync = index_sync;
    if (gethostname(host, sizeof(host)) < 0)
        petrel_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    /* The host name is part of every file name: keep it free of the
     * characters Maildir gives a meaning to. */
    for (char *p = host; *p != '\0'; p++)
        if (*p == '/' || *p == ':' || *p == ',' || *p == '.')
            *p = '_';
    petrel_strlcpy(storage_env.host, host, sizeof(storage_env.host));
    /* Once here (init runs before any thread), not lazily in each call. */
    storage_counters.delivered = petrel_counter("storage.deliveries");
    storage_counters.delivery_failures = petrel_counter("storage.delivery_failures");
    storage_counters.appends = petrel_counter("storage.appends");
    storage_counters.expunged = petrel_counter("storage.expunged");
    storage_counters.accounts_created = petrel_counter("storage.accounts_created");
}

const char *storage_strerror(int error)
{
    static const char *const names[] = {
        "ok",          "not found",    "already exists",
        "over quota",  "invalid name", "invalid argument",
        "not allowed", "too large",    "temporary failure",
    };
    if (error < 0 || (size_t)error >= sizeof(names) / sizeof(names[0]))
        return "unknown error";
    return names[error];
}

const struct petrel_storage_ops storage_ops = {
    .size = sizeof(struct petrel_storage_ops),
    .name = "maildir",
    .mailbox_open = storage_mailbox_open,
    .mailbox_close = storage_mailbox_close,
    .quota_usage = storage_quota_usage,
    .deliver = storage_deliver,
    .append = storage_deliver_append,
    .folder_create = storage_folder_create,
    .folder_delete = storage_folder_delete,
    .folder_rename = storage_folder_rename,
    .folder_list = storage_folder_list,
    .folder_subscribe = storage_folder_subscribe,
    .folder_status = storage_folder_status,
    .folder_open = storage_folder_open,
    .folder_close = storage_folder_close,
    .sync = storage_folder_sync,
    .status = storage_folder_fstatus,
    .messages = storage_message_list,
    .fetch_fd = storage_message_fetch_fd,
    .fetch_stream = storage_message_fetch_stream,
    .fetch_header = storage_message_fetch_header,
    .cache_get = storage_message_cache_get,
    .cache_set = storage_message_cache_set,
    .store = storage_message_store,
    .copy = storage_deliver_copy,
    .move = storage_deliver_move,
    .expunge = storage_message_expunge,
    .changes_since = storage_message_changes,
    .search = storage_search,
    .watch = storage_notify_watch,
    .unwatch = storage_notify_unwatch,
    .strerror = storage_strerror,
};

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
    storage_env.cache_accounts = (size_t)cfg->cache_accounts;
    if (!cfg->fsync)
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG,
                   "fsync = false: acknowledged mail can be lost on a crash (tests only)");
    if (petrel_service_register(ctx, PETREL_STORAGE_SERVICE, PETREL_STORAGE_VERSION,
                                &storage_ops) != 0) {
        *error_r = "cannot register the storage service";
        return -1;
    }
    petrel_log(PETREL_LOG_INFO, STORAGE_LOG, "maildir store at %s (index sync %s)", root,
               cfg->index_sync);
    return 0;
}

static void storage_stop(struct petrel_ctx *ctx)
{
    (void)ctx;
    storage_mailbox_flush_cache();
}

PETREL_MODULE(.name = "storage", .version = "1.0", .settings = storage_settings,
              .config_size = sizeof(struct storage_config), .check = storage_check,
              .init = storage_init, .stop = storage_stop);
