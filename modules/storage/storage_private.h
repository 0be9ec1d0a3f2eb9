/* The Maildir++ store: shared state and the functions its files give each
 * other. Never installed; the contract is <petrel/storage.h>.
 *
 * Locking: a process-wide registry shares one struct storage_account per
 * account path and one struct storage_fstate per folder, so every handle of
 * a folder uses the same SQLite connection under the folder's mutex. Order:
 * registry -> account.lock -> fstate.lock -> account.quota_lock /
 * account.watch_lock (leaves). Other processes are kept out by SQLite's own
 * locking (BEGIN IMMEDIATE around every change). */
#ifndef STORAGE_PRIVATE_H
#define STORAGE_PRIVATE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <sqlite3.h>

#include <petrel/buf.h>
#include <petrel/stats.h>
#include <petrel/storage.h>

#define STORAGE_LOG "storage"
#define STORAGE_INDEX_FILE "petrel-index.sqlite"
#define STORAGE_UIDV_FILE "petrel-uidvalidity"
#define STORAGE_ACCOUNT_DB "petrel-account.sqlite"
/* UIDs reserved in the uidvalidity file at a time: the file is rewritten
 * (and synced) once per this many new UIDs. */
#define STORAGE_UID_RESERVE 1024u
#define STORAGE_MAX_FILENAME 255
#define STORAGE_MAX_USER 255
#define STORAGE_BUSY_MS 30000
/* The largest message accepted (a hard limit, below the 32-bit sizes some
 * clients assume). */
#define STORAGE_MAX_MESSAGE (2ull * 1024 * 1024 * 1024 - 1)

enum storage_sync_mode {
    STORAGE_SYNC_OFF,
    STORAGE_SYNC_NORMAL,
    STORAGE_SYNC_FULL,
};

/* Module settings as resolved by init (or by a test); storage.c. */
struct storage_env {
    char root[PATH_MAX];
    char domain[256];
    char host[64]; /* for file names: '/', ':' and ',' replaced */
    bool fsync;
    enum storage_sync_mode index_sync;
    size_t max_folders; /* per account, INBOX not counted */
    /* Accounts kept open after their last handle closes (their SQLite
     * connections and folder states), so a busy account is not opened
     * again for every delivery. 0 = free with the last handle. */
    size_t cache_accounts;
    /* Bytes of each folder index SQLite reads through mmap instead of a
     * pread per page (index.c); 0 = pread only. */
    long long index_mmap;
    bool fts; /* the full-text index (fts.c) is kept and used */
    /* The time one search may spend indexing what the index lacks; past
     * it, that search scans and the next goes on (fts.c). */
    unsigned fts_catchup_ms;
    /* The expunged window (expunged.c): expunged UIDs are remembered this
     * many days and at most this many rows per folder. */
    unsigned expunged_days;
    size_t expunged_max;
};
extern struct storage_env storage_env;
/* Close the accounts kept open by cache_accounts (module stop). */
void storage_mailbox_flush_cache(void);

/* Counters, looked up once by storage_configure (module init). */
struct storage_counters {
    struct petrel_counter *delivered, *delivery_failures, *appends, *expunged, *accounts_created;
};
extern struct storage_counters storage_counters;
void storage_count(struct petrel_counter *c, int64_t n);

/* Fault injection for tests: when set, called at named points; a true
 * return makes that step fail ("fsync_dir", "copy_rename"), or the test
 * changes files there ("copy_listed", "scan_listed"). NULL in production. */
extern bool (*storage_test_fault)(const char *point);

struct storage_account {
    struct storage_account *next; /* in the registry */
    char *path;                   /* <root>/<domain>/<local> */
    pid_t pid;                    /* the process that opened it (fork) */
    unsigned refs;                /* registry lock */
    uint64_t idle_seq;            /* registry lock: when refs last fell to 0 */
    pthread_mutex_t lock;         /* folders, account db, folder create/rename/delete */
    struct storage_fstate *folders;
    sqlite3 *db; /* subscriptions and special use */
    pthread_mutex_t quota_lock;
    bool quota_known;
    uint64_t quota_gen; /* bumped by every change: a sum across one is stale */
    uint64_t quota_bytes, quota_messages;
    pthread_mutex_t watch_lock;
    struct petrel_storage_watch *watches;
};

struct storage_fstate {
    struct storage_fstate *next; /* in account->folders */
    struct storage_account *acct;
    char *name; /* API name; "INBOX" for the inbox */
    char *dir;  /* the folder's Maildir */
    unsigned refs;
    pthread_mutex_t lock;
    sqlite3 *db;
    /* storage_index_get's statement, kept prepared while db is open:
     * every RETR or FETCH of a message looks its row up. */
    sqlite3_stmt *get_st;
    bool deleted;
    bool scanned; /* synced with the files since this process opened it */
    struct timespec new_mtime, cur_mtime;
    uint32_t uid_ceiling; /* from the uidvalidity file */
    /* When a full-text catch-up last ran out of time (CLOCK_MONOTONIC
     * ms, 0: never); the searches right after it scan (fts.c). */
    int64_t fts_cut_ms;
};

struct petrel_mailbox {
    struct storage_account *acct;
};

struct petrel_folder {
    struct storage_fstate *fs;
};

struct petrel_storage_watch {
    struct petrel_storage_watch *next;
    struct storage_account *acct;
    char *folder; /* NULL: every folder */
    petrel_storage_watch_fn *fn;
    void *arg;
};

/* One message row, loaded for an operation. */
struct storage_row {
    uint32_t uid;
    uint32_t flags;
    bool recent; /* file in new/ */
    uint64_t modseq, size;
    int64_t idate;
    char *name; /* file name in new/ or cur/ */
    char *keywords;
};

/* --- storage.c: the store's state, its set-up and its service table --- */
void storage_configure(const char *root, const char *domain, bool do_fsync,
                       enum storage_sync_mode index_sync);
/* Accounts kept open after their last handle (storage_env.cache_accounts). */
void storage_configure_cache(size_t accounts);
void storage_configure_expunged(unsigned days, size_t max_rows);
extern const struct petrel_storage_ops storage_ops;
const char *storage_strerror(int error);

/* --- foldername.c: API names <-> Maildir++ directory names (no I/O) --- */
/* Validate and canonicalise ("inbox" -> "INBOX"); false when unacceptable. */
bool storage_foldername_valid(const char *name, char *canon, size_t size);
/* The directory below the account root: "" for INBOX, ".A.B~2Ec" for "A/B.c". */
bool storage_foldername_to_dir(const char *canon, char *dir, size_t size);
/* The reverse, for a directory entry of the account root; false if it is
 * not a folder directory. */
bool storage_foldername_from_dir(const char *dir, char *name, size_t size);
/* "local@domain" -> "domain/local" below the root, with unsafe bytes escaped. */
bool storage_foldername_user_path(const char *user, const char *default_domain, char *path,
                                  size_t size);

/* --- maildir.c: file names, writing, flags --- */
struct storage_mdname {
    char base[STORAGE_MAX_FILENAME + 1]; /* up to ':' */
    uint32_t uid;                        /* U=, 0 when absent */
    uint64_t size;                       /* S=, UINT64_MAX when absent */
    uint32_t flags;                      /* from ":2,"; 0 otherwise */
    bool has_info;                       /* ":2," present */
};
bool storage_maildir_parse(const char *name, struct storage_mdname *r);
/* A new unique base name carrying size and uid. */
bool storage_maildir_new_base(uint64_t size, uint32_t uid, char *base, size_t size_b);
/* base with its U= replaced (or added). */
bool storage_maildir_set_uid(const char *base, uint32_t uid, char *out, size_t size);
/* The file name for base and flags: "base:2,FS" (cur) or base (new). */
bool storage_maildir_name(const char *base, uint32_t flags, bool in_new, char *out, size_t size);
void storage_maildir_flag_chars(uint32_t flags, char *out /* >= 8 */);
/* Write src to <dir>/tmp/<base>, fsync it; header_r gets a copy of the
 * header block (bounded). */
int storage_maildir_write_tmp(const char *dir, const char *base,
                              const struct petrel_storage_source *src, struct petrel_buf *header_r);
int storage_maildir_fsync_dir(const char *dir, const char *sub);
/* fsync the directory holding path (after a mkdir or rename of path). */
int storage_maildir_fsync_parent(const char *path);
bool storage_maildir_path(char *out, size_t size, const char *dir, bool in_new, const char *name);
int storage_maildir_mkdirs(const char *dir);
/* Read the header block of an existing file (bounded). */
void storage_maildir_read_header(int fd, struct petrel_buf *out);
/* Copy the header block out of a memory message. */
void storage_maildir_header_of(const char *data, size_t len, struct petrel_buf *out);

/* --- index.c: the per-folder SQLite index --- */
void storage_configure_index_mmap(long long bytes);
int storage_index_open(struct storage_fstate *fs);
void storage_index_close(struct storage_fstate *fs);
int storage_index_begin(sqlite3 *db);
int storage_index_commit(sqlite3 *db);
void storage_index_rollback(sqlite3 *db);
int storage_index_exec(sqlite3 *db, const char *sql);
/* Around a cache write: true relaxes the index's fsync at commit (the
 * value is a cache), false puts the configured index_sync back. */
void storage_index_cache_sync(sqlite3 *db, bool cache);
/* A meta value (dflt when absent); TEMPFAIL when it cannot be read. */
int storage_index_meta(sqlite3 *db, const char *key, int64_t dflt, int64_t *value_r);
int storage_index_set_meta(sqlite3 *db, const char *key, int64_t value);
/* Allocate the next modseq for a change transaction. */
int storage_index_next_modseq(sqlite3 *db, uint64_t *modseq_r);
/* sqlite3_exec, retried while SQLITE_BUSY for up to STORAGE_BUSY_MS: for
 * statements that SQLite runs without calling the busy handler. */
int storage_index_exec_retry(sqlite3 *db, const char *sql);
int storage_index_insert(sqlite3 *db, const struct storage_row *row, const void *header,
                         size_t header_len);
int storage_index_load(sqlite3 *db, const struct petrel_storage_uid_set *uids,
                       struct storage_row **rows_r, size_t *count_r);
/* Rows with a MODSEQ above modseq, in UID order. */
int storage_index_load_since(sqlite3 *db, uint64_t modseq, struct storage_row **rows_r,
                             size_t *count_r);
int storage_index_get(struct storage_fstate *fs, uint32_t uid, struct storage_row *row);
void storage_rows_free(struct storage_row *rows, size_t count);
void storage_row_clear(struct storage_row *row);
int storage_index_update(sqlite3 *db, const struct storage_row *row);
int storage_index_expunge(sqlite3 *db, uint32_t uid, uint64_t modseq);
/* expunged.c: the expunged window. record: an expunge step's MODSEQ
 * happened at now; prune: drop what is older than expunged_days or beyond
 * expunged_max rows, raising vanished_floor. Both inside a transaction. */
int storage_expunged_record(sqlite3 *db, uint64_t modseq, int64_t now);
int storage_expunged_prune(sqlite3 *db, int64_t now);
int storage_index_status(sqlite3 *db, struct petrel_storage_status *st);
/* Make sure uid < the durable ceiling in the uidvalidity file. */
int storage_index_reserve(struct storage_fstate *fs, uint32_t uid);
int storage_index_read_uidv(const char *dir, uint32_t *uidvalidity_r, uint32_t *ceiling_r);
int storage_index_write_uidv(const char *dir, uint32_t uidvalidity, uint32_t ceiling);

/* --- rebuild.c: index <-> files --- */
/* Bring the index in line with the files (fs locked, db open). rebuild is
 * true for a new, empty index. */
int storage_rebuild_scan(struct storage_fstate *fs, bool rebuild, bool *changed_r);

/* --- mailbox.c: registry of accounts --- */
int storage_mailbox_open(const char *user, struct petrel_mailbox **mbox_r);
void storage_mailbox_close(struct petrel_mailbox *mbox);
/* Keep the account alive for a folder handle or a watcher. */
void storage_mailbox_hold(struct storage_account *acct);
void storage_mailbox_release(struct storage_account *acct);
void storage_mailbox_path(const struct storage_account *acct, const char *name, char *out,
                          size_t size);

/* --- folder.c: folder states and folder operations --- */
/* Find or create the shared state of an existing folder (refs + 1). */
int storage_folder_get(struct storage_account *acct, const char *name, struct storage_fstate **r);
void storage_folder_put(struct storage_fstate *fs);
/* Lock the folder, opening its index if needed. */
int storage_folder_lock(struct storage_fstate *fs);
void storage_folder_unlock(struct storage_fstate *fs);
int storage_folder_create(struct petrel_mailbox *mbox, const char *name, unsigned special_use);
int storage_folder_delete(struct petrel_mailbox *mbox, const char *name);
int storage_folder_rename(struct petrel_mailbox *mbox, const char *from, const char *to);
int storage_folder_list(struct petrel_mailbox *mbox, petrel_storage_folder_fn *fn, void *arg);
int storage_folder_subscribe(struct petrel_mailbox *mbox, const char *name, bool subscribe);
int storage_folder_status(struct petrel_mailbox *mbox, const char *name,
                          struct petrel_storage_status *st);
int storage_folder_open(struct petrel_mailbox *mbox, const char *name, struct petrel_folder **r);
void storage_folder_close(struct petrel_folder *folder);
int storage_folder_sync(struct petrel_folder *folder);
int storage_folder_fstatus(struct petrel_folder *folder, struct petrel_storage_status *st);
/* Account database (subscriptions, special use); acct->lock held. */
int storage_folder_account_db(struct storage_account *acct);
int storage_folder_init_account(struct storage_account *acct);

/* --- deliver.c --- */
int storage_deliver(struct petrel_mailbox *mbox, const char *folder,
                    const struct petrel_storage_source *src,
                    const struct petrel_storage_quota *quota, uint32_t *uid_r,
                    uint32_t *uidvalidity_r);
int storage_deliver_append(struct petrel_mailbox *mbox, const char *folder,
                           const struct petrel_storage_source *src,
                           const struct petrel_storage_append *attrs, uint32_t *uid_r,
                           uint32_t *uidvalidity_r);
int storage_deliver_copy(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                         uint32_t *dest_uidvalidity_r);
int storage_deliver_move(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                         uint32_t *dest_uidvalidity_r);

/* --- message.c --- */
int storage_message_list(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         petrel_storage_msg_fn *fn, void *arg);
int storage_message_fetch_fd(struct petrel_folder *folder, uint32_t uid, int *fd_r,
                             uint64_t *size_r);
int storage_message_fetch_stream(struct petrel_folder *folder, uint32_t uid,
                                 petrel_storage_data_fn *fn, void *arg);
int storage_message_fetch_header(struct petrel_folder *folder, uint32_t uid,
                                 struct petrel_buf *out);
int storage_message_cache_get(struct petrel_folder *folder, uint32_t uid, const char *key,
                              struct petrel_buf *out);
int storage_message_cache_scan(struct petrel_folder *folder,
                               const struct petrel_storage_uid_set *uids, const char *key,
                               petrel_storage_cache_fn *fn, void *arg);
int storage_message_cache_set(struct petrel_folder *folder, uint32_t uid, const char *key,
                              const void *data, size_t len);
int storage_message_store(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                          const struct petrel_storage_store *req, petrel_storage_uid_fn *modified,
                          void *arg);
int storage_message_expunge(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                            petrel_storage_uid_fn *expunged, void *arg);
/* Expunge uids (NULL = all); only_deleted: just those flagged Deleted. */
int storage_message_remove(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                           bool only_deleted, petrel_storage_uid_fn *expunged, void *arg);
int storage_message_changes(struct petrel_folder *folder, uint64_t modseq,
                            petrel_storage_msg_fn *changed, petrel_storage_range_fn *vanished,
                            void *arg);
/* Keywords: validate and normalise a space-separated list (sorted, unique). */
bool storage_message_keywords(const char *in, char *out, size_t size);
/* Apply a store request to a row's flags/keywords: 1 when changed, 0 when
 * not, -1 when the result would have more than PETREL_STORAGE_MAX_KEYWORDS. */
int storage_message_apply(const struct petrel_storage_store *req, const char *req_kw,
                          uint32_t *flags, char **keywords);

/* --- search.c --- */
int storage_search(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                   const struct petrel_storage_search *q, petrel_storage_uid_fn *match, void *arg);
/* Case-insensitive substring search over a stream (exposed for tests). */
struct storage_matcher {
    const char *needle;
    size_t nlen;
    char tail[256]; /* last nlen-1 bytes of the previous piece */
    size_t tlen;
    bool found;
};
void storage_search_init(struct storage_matcher *m, const char *needle);
void storage_search_feed(struct storage_matcher *m, const char *data, size_t len);
bool storage_search_header_field(const char *header, size_t len, const char *field,
                                 const char *needle);

/* --- fts.c: the full-text index of a folder (docs/fts.md) --- */
void storage_configure_fts(bool on);
void storage_configure_fts_catchup(unsigned ms);
/* Index what the folder's index lacks until deadline (CLOCK_MONOTONIC
 * ms): 0 done, 1 stopped there (the rest left for later), -1 error. */
int storage_fts_update(struct petrel_folder *folder, int64_t deadline);
/* fts_background.c: folder name of acct was given messages; indexed by a
 * schedule a few seconds later while the background indexer runs. */
void storage_fts_note(struct storage_account *acct, const char *name);
void storage_fts_background_start(void);
void storage_fts_background_stop(void);
/* The UIDs of the texts containing needle; the index is first brought
 * up to date (what was stored since indexed, in batches; what was
 * expunged dropped). */
int storage_fts_search(struct petrel_folder *folder, enum petrel_storage_fts_where where,
                       const char *field, const char *needle, size_t len,
                       petrel_storage_uid_fn *match, void *arg);

/* --- quota.c --- */
int storage_quota_usage(struct petrel_mailbox *mbox, uint64_t *bytes_r, uint64_t *messages_r);
int storage_quota_check(struct storage_account *acct, const struct petrel_storage_quota *q,
                        uint64_t add_bytes, uint64_t add_messages);
void storage_quota_add(struct storage_account *acct, int64_t bytes, int64_t messages);
void storage_quota_forget(struct storage_account *acct);

/* --- notify.c --- */
int storage_notify_watch(struct petrel_mailbox *mbox, const char *folder,
                         petrel_storage_watch_fn *fn, void *arg, struct petrel_storage_watch **r);
void storage_notify_unwatch(struct petrel_storage_watch *w);
void storage_notify(struct storage_account *acct, const char *folder);

#endif
