/* The store as a whole, below the module: its shared state (settings as
 * resolved, counters, the tests' fault hook), setting it up, and the
 * service table made of its layers' functions. module.c only maps the
 * module's settings onto storage_configure and registers storage_ops;
 * the unit tests and the delivery benchmark use the store without it. */
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/stats.h>
#include <petrel/storage.h>

#include "storage_private.h"

struct storage_env storage_env = {.root = "mail",
                                  .fsync = true,
                                  .index_sync = STORAGE_SYNC_FULL,
                                  .index_mmap = 256LL << 20,
                                  .max_folders = 10000,
                                  .fts = true,
                                  .fts_catchup_ms = 30000,
                                  .expunged_days = 30,
                                  .expunged_max = 100000};
struct storage_counters storage_counters;
bool (*storage_test_fault)(const char *point);

void storage_count(struct petrel_counter *c, int64_t n)
{
    if (c != NULL)
        petrel_counter_add(c, n);
}

/* The host name is part of every file name: keep it free of the
 * characters Maildir gives a meaning to. */
static void file_host(char *out, size_t size)
{
    char host[sizeof(storage_env.host)];
    if (gethostname(host, sizeof(host)) < 0)
        petrel_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p != '\0'; p++)
        if (*p == '/' || *p == ':' || *p == ',' || *p == '.')
            *p = '_';
    petrel_strlcpy(out, host, size);
}

void storage_configure(const char *root, const char *domain, bool do_fsync,
                       enum storage_sync_mode index_sync)
{
    petrel_strlcpy(storage_env.root, root, sizeof(storage_env.root));
    petrel_strlcpy(storage_env.domain, domain != NULL ? domain : "", sizeof(storage_env.domain));
    storage_env.fsync = do_fsync;
    storage_env.index_sync = index_sync;
    file_host(storage_env.host, sizeof(storage_env.host));
    /* Once here (init runs before any thread), not lazily in each call. */
    storage_counters.delivered = petrel_counter("storage.deliveries");
    storage_counters.delivery_failures = petrel_counter("storage.delivery_failures");
    storage_counters.appends = petrel_counter("storage.appends");
    storage_counters.expunged = petrel_counter("storage.expunged");
    storage_counters.accounts_created = petrel_counter("storage.accounts_created");
}

void storage_configure_cache(size_t accounts) { storage_env.cache_accounts = accounts; }

void storage_configure_expunged(unsigned days, size_t max_rows)
{
    storage_env.expunged_days = days;
    storage_env.expunged_max = max_rows;
}

const char *storage_strerror(int error)
{
    static const char *const names[] = {
        "ok",          "not found",    "already exists",
        "over quota",  "invalid name", "invalid argument",
        "not allowed", "too large",    "temporary failure",
        "unsupported",
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
    .cache_scan = storage_message_cache_scan,
    .fts_search = storage_fts_search,
};
