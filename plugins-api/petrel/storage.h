/* The storage service: the mail store behind IMAP, POP3, webmail and local
 * delivery. A backend module registers a struct petrel_storage_ops with
 *
 *     petrel_service_register(ctx, PETREL_STORAGE_SERVICE, PETREL_STORAGE_VERSION, &ops);
 *
 * and users find it with petrel_service_lookup(PETREL_STORAGE_SERVICE, 1).
 * The in-tree backend is Maildir++ with a SQLite index per folder
 * (docs/storage.md); another backend must be a drop-in replacement.
 *
 * Threads: every function may block (file and index I/O, fsync) and must be
 * called from a worker thread (petrel_conn_submit), never from an I/O thread.
 * Every function is thread-safe; handles may be used by one thread at a
 * time, and several handles of the same account may be open at once, in
 * this process and others.
 *
 * Errors: functions return 0 (PETREL_STORAGE_OK) or an enum
 * petrel_storage_error; ops->strerror() names it.
 *
 * Callbacks (msg, uid, range, folder, data) are called on the calling
 * thread, without any storage lock held, before the function returns; the
 * pointers they receive are valid only during the call. They may call other
 * storage functions, except watchers (see watch). */
#ifndef PETREL_STORAGE_H
#define PETREL_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

#define PETREL_STORAGE_SERVICE "storage"
/* Bumped when functions are appended to the ops table (ops->size grows). */
#define PETREL_STORAGE_VERSION 2u

enum petrel_storage_error {
    PETREL_STORAGE_OK = 0,
    PETREL_STORAGE_NOT_FOUND,    /* account, folder or message does not exist */
    PETREL_STORAGE_EXISTS,       /* the folder already exists */
    PETREL_STORAGE_OVER_QUOTA,   /* the caller's limits would be exceeded */
    PETREL_STORAGE_INVALID_NAME, /* folder name or user name not acceptable */
    PETREL_STORAGE_INVALID_ARG,  /* bad flags, keywords, sizes or UID set */
    PETREL_STORAGE_NOT_ALLOWED,  /* e.g. deleting INBOX or a folder with children */
    PETREL_STORAGE_TOO_LARGE,    /* a message, cache value or folder over a hard limit */
    PETREL_STORAGE_TEMPFAIL,     /* I/O error, index busy: try again later */
    PETREL_STORAGE_UNSUPPORTED,  /* the backend cannot answer this (fts_search): do it yourself */
};

/* Where fts_search looks (the texts of petrel/mimetext.h). */
enum petrel_storage_fts_where {
    PETREL_STORAGE_FTS_FIELD, /* the header fields of a name: a superset, see fts_search */
    PETREL_STORAGE_FTS_BODY,  /* the body texts */
    PETREL_STORAGE_FTS_TEXT,  /* both */
};

/* Hard limits every backend accepts at least. */
/* Bytes of a folder name, UTF-8. Every valid name up to this length is
 * accepted; longer ones are refused (INVALID_NAME). Maildir++ keeps a whole
 * name in one directory name of at most 255 bytes, and escapes '.', '~'
 * and a few other bytes as three ("~2E"): 1 + 3 * 84 = 253. */
#define PETREL_STORAGE_MAX_NAME 84
#define PETREL_STORAGE_MAX_DEPTH 16      /* levels of a folder name */
#define PETREL_STORAGE_MAX_KEYWORD 64    /* bytes of one keyword */
#define PETREL_STORAGE_MAX_KEYWORDS 64   /* keywords on one message */
#define PETREL_STORAGE_MAX_HEADER 65536  /* bytes of the cached header block */
#define PETREL_STORAGE_MAX_CACHE 1048576 /* bytes of one cache value */
#define PETREL_STORAGE_MAX_CACHE_KEY 64  /* bytes of one cache key */
#define PETREL_STORAGE_SEPARATOR '/'     /* hierarchy separator of folder names */

/* System flags (RFC 9051 section 2.3.2). \Recent is not a stored flag:
 * see struct petrel_storage_msg. */
enum petrel_storage_flag {
    PETREL_STORAGE_SEEN = 1u << 0,
    PETREL_STORAGE_ANSWERED = 1u << 1,
    PETREL_STORAGE_FLAGGED = 1u << 2,
    PETREL_STORAGE_DELETED = 1u << 3,
    PETREL_STORAGE_DRAFT = 1u << 4,
};
#define PETREL_STORAGE_FLAGS_ALL 0x1fu

/* Folder attributes: special use (RFC 6154) and what LIST reports. */
enum petrel_storage_folder_attr {
    PETREL_STORAGE_FOLDER_ALL = 1u << 0,
    PETREL_STORAGE_FOLDER_ARCHIVE = 1u << 1,
    PETREL_STORAGE_FOLDER_DRAFTS = 1u << 2,
    PETREL_STORAGE_FOLDER_FLAGGED = 1u << 3,
    PETREL_STORAGE_FOLDER_JUNK = 1u << 4,
    PETREL_STORAGE_FOLDER_SENT = 1u << 5,
    PETREL_STORAGE_FOLDER_TRASH = 1u << 6,
    PETREL_STORAGE_FOLDER_SUBSCRIBED = 1u << 8,
    PETREL_STORAGE_FOLDER_HAS_CHILDREN = 1u << 9,
    PETREL_STORAGE_FOLDER_NONEXISTENT = 1u << 10, /* subscribed, but no such folder */
};
#define PETREL_STORAGE_SPECIAL_USE_MASK 0x7fu

/* An account's store (opaque). */
struct petrel_mailbox;
/* One open folder of a mailbox (opaque). */
struct petrel_folder;
/* A registered watcher (opaque). */
struct petrel_storage_watch;

/* A set of UIDs: ranges lo..hi inclusive. A NULL set pointer means "every
 * message of the folder". */
struct petrel_storage_uid_range {
    uint32_t lo, hi;
};
struct petrel_storage_uid_set {
    const struct petrel_storage_uid_range *ranges;
    size_t count;
};

/* A message to store: either data/len in memory (fd = -1), or exactly
 * fd_len bytes read from fd at its current offset (the fd stays the
 * caller's). The message is written as given (CRLF or LF). */
struct petrel_storage_source {
    const void *data;
    size_t len;
    int fd;
    uint64_t fd_len;
};

/* Quota limits the caller enforces on the whole account; 0 = no limit. */
struct petrel_storage_quota {
    uint64_t bytes;
    uint64_t messages;
};

struct petrel_storage_append {
    uint32_t flags;        /* PETREL_STORAGE_SEEN | ... */
    const char *keywords;  /* space-separated IMAP atoms, or NULL */
    int64_t internal_date; /* seconds since the epoch; 0 = now */
    struct petrel_storage_quota quota;
};

/* One message's metadata, as messages(), changes_since() report it. */
struct petrel_storage_msg {
    uint32_t uid;
    uint32_t flags;
    const char *keywords; /* space-separated, "" when none */
    uint64_t modseq;
    int64_t internal_date;
    uint64_t size; /* bytes, exactly what fetch gives */
    bool recent;   /* not yet seen by any session (Maildir new/) */
};

struct petrel_storage_status {
    uint32_t messages;
    uint32_t recent;
    uint32_t unseen;
    uint32_t uidnext;
    uint32_t uidvalidity;
    uint64_t highestmodseq;
    uint64_t size; /* bytes of all messages */
};

struct petrel_storage_folder_info {
    const char *name; /* UTF-8, '/'-separated; "INBOX" for the inbox */
    unsigned attrs;   /* enum petrel_storage_folder_attr */
};

enum petrel_storage_store_mode {
    PETREL_STORAGE_FLAGS_ADD,
    PETREL_STORAGE_FLAGS_REMOVE,
    PETREL_STORAGE_FLAGS_REPLACE,
};

struct petrel_storage_store {
    enum petrel_storage_store_mode mode;
    uint32_t flags;
    const char *keywords;    /* space-separated, or NULL */
    uint64_t unchangedsince; /* RFC 7162; 0 = no condition */
};

/* What search() looks at. Matching is a case-insensitive (ASCII) substring
 * test on the raw bytes; header values are unfolded; bodies are streamed
 * from the file, not decoded (no base64/quoted-printable, no charset). */
enum petrel_storage_search_key {
    PETREL_STORAGE_SEARCH_HEADER, /* the value of the header field `field` */
    PETREL_STORAGE_SEARCH_BODY,   /* the body (after the header block) */
    PETREL_STORAGE_SEARCH_TEXT,   /* header block and body */
};

struct petrel_storage_search {
    enum petrel_storage_search_key key;
    const char *field;  /* for SEARCH_HEADER: field name, case-insensitive */
    const char *needle; /* "" matches every message (that has the field) */
};

/* Callbacks. A non-zero return from msg_fn or data_fn stops the iteration
 * and is returned by the function that called it. */
typedef int petrel_storage_msg_fn(void *arg, const struct petrel_storage_msg *msg);
typedef void petrel_storage_uid_fn(void *arg, uint32_t uid);
typedef void petrel_storage_range_fn(void *arg, uint32_t lo, uint32_t hi);
typedef void petrel_storage_uidmap_fn(void *arg, uint32_t src_uid, uint32_t dst_uid);
typedef int petrel_storage_data_fn(void *arg, const void *data, size_t len);
typedef void petrel_storage_folder_fn(void *arg, const struct petrel_storage_folder_info *info);
typedef void petrel_storage_watch_fn(void *arg);
/* One message's cached value (cache_scan). */
typedef int petrel_storage_cache_fn(void *arg, uint32_t uid, const void *data, size_t len);

struct petrel_storage_ops {
    size_t size;      /* sizeof(struct petrel_storage_ops) of the backend: check
                       * it covers a function before calling one added later */
    const char *name; /* backend, e.g. "maildir" */

    /* --- accounts --- */
    /* Open the store of user "local@domain" (or "local" in the primary
     * domain), creating it on first use with INBOX and the special-use
     * folders Drafts, Sent, Trash, Junk, Archive, all subscribed. Free with
     * mailbox_close. */
    int (*mailbox_open)(const char *user, struct petrel_mailbox **mbox_r);
    void (*mailbox_close)(struct petrel_mailbox *mbox);
    /* Bytes and messages stored in the whole account. */
    int (*quota_usage)(struct petrel_mailbox *mbox, uint64_t *bytes_r, uint64_t *messages_r);

    /* --- storing messages --- */
    /* Local delivery into folder (NULL = INBOX). Returns success only once
     * the message is durable (file and directory synced). When the final
     * directory sync fails the message, already visible, is removed again
     * (row and file) and TEMPFAIL returned, so a retry cannot duplicate it.
     * quota may be NULL. A missing folder gives NOT_FOUND: the caller may
     * retry INBOX. */
    int (*deliver)(struct petrel_mailbox *mbox, const char *folder,
                   const struct petrel_storage_source *src,
                   const struct petrel_storage_quota *quota, uint32_t *uid_r,
                   uint32_t *uidvalidity_r);
    /* IMAP APPEND: as deliver, with flags, keywords and internal date. */
    int (*append)(struct petrel_mailbox *mbox, const char *folder,
                  const struct petrel_storage_source *src,
                  const struct petrel_storage_append *attrs, uint32_t *uid_r,
                  uint32_t *uidvalidity_r);

    /* --- folders (names are UTF-8, '/'-separated; "INBOX" is case-insensitive) --- */
    /* special_use: PETREL_STORAGE_FOLDER_* bits within SPECIAL_USE_MASK, or 0.
     * Missing parents are created. TOO_LARGE when the account would have
     * more folders than the backend's limit. */
    int (*folder_create)(struct petrel_mailbox *mbox, const char *name, unsigned special_use);
    /* Refused for INBOX and for a folder with children (NOT_ALLOWED). */
    int (*folder_delete)(struct petrel_mailbox *mbox, const char *name);
    /* Renames children too. Renaming INBOX moves its messages into a new
     * folder and leaves INBOX empty (RFC 9051 section 6.3.6). Folder
     * handles open on a renamed folder get NOT_FOUND: open it again under
     * its new name. */
    int (*folder_rename)(struct petrel_mailbox *mbox, const char *from, const char *to);
    /* Every folder, plus subscribed names that no longer exist (with
     * FOLDER_NONEXISTENT), in name order. The caller applies LIST patterns. */
    int (*folder_list)(struct petrel_mailbox *mbox, petrel_storage_folder_fn *fn, void *arg);
    /* Subscribing a name that does not exist is allowed (RFC 9051). */
    int (*folder_subscribe)(struct petrel_mailbox *mbox, const char *name, bool subscribe);
    /* STATUS without opening the folder. */
    int (*folder_status)(struct petrel_mailbox *mbox, const char *name,
                         struct petrel_storage_status *status_r);

    /* --- an open folder --- */
    /* Open a folder; picks up changes made by other programs to its files. */
    int (*folder_open)(struct petrel_mailbox *mbox, const char *name,
                       struct petrel_folder **folder_r);
    void (*folder_close)(struct petrel_folder *folder);
    /* Look at the folder's files again (messages added, removed or
     * re-flagged by other programs). Petrel's own changes need no sync. */
    int (*sync)(struct petrel_folder *folder);
    int (*status)(struct petrel_folder *folder, struct petrel_storage_status *status_r);
    /* Metadata of the messages in uids (NULL = all), in UID order. */
    int (*messages)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                    petrel_storage_msg_fn *fn, void *arg);
    /* An open, read-only fd on the message and its size; the caller closes
     * it. The fd stays valid across later flag changes and expunges. */
    int (*fetch_fd)(struct petrel_folder *folder, uint32_t uid, int *fd_r, uint64_t *size_r);
    /* The message in pieces of at most 64 KiB, never all in memory. */
    int (*fetch_stream)(struct petrel_folder *folder, uint32_t uid, petrel_storage_data_fn *fn,
                        void *arg);
    /* The cached header block (up to and with the empty line, at most
     * PETREL_STORAGE_MAX_HEADER bytes), appended to out. */
    int (*fetch_header)(struct petrel_folder *folder, uint32_t uid, struct petrel_buf *out);
    /* A per-message cache the protocol modules fill (e.g. "bodystructure").
     * cache_get appends the value to out; NOT_FOUND when absent. Values go
     * with the message on copy and move. */
    int (*cache_get)(struct petrel_folder *folder, uint32_t uid, const char *key,
                     struct petrel_buf *out);
    int (*cache_set)(struct petrel_folder *folder, uint32_t uid, const char *key, const void *data,
                     size_t len);
    /* Change flags and keywords of uids (NULL = all). Each changed message
     * gets a new MODSEQ. With unchangedsince, messages whose MODSEQ is
     * greater are left alone and reported to modified (may be NULL). A
     * message would end up with more than PETREL_STORAGE_MAX_KEYWORDS:
     * INVALID_ARG and nothing changed. */
    int (*store)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                 const struct petrel_storage_store *req, petrel_storage_uid_fn *modified,
                 void *arg);
    /* Copy uids to folder dest; map (may be NULL) receives each source and
     * new UID, in source UID order (COPYUID). UIDs that are not (or no
     * longer) in the folder are skipped. All or nothing: on an error no
     * copy is left in dest. Copies count against quota only once made. */
    int (*copy)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                uint32_t *dest_uidvalidity_r);
    /* Copy, then expunge the copied source messages. Done in batches: on
     * an error some messages may have been moved (map is not called), but
     * none is ever left in both folders, so a retry does not duplicate. */
    int (*move)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                uint32_t *dest_uidvalidity_r);
    /* Remove the \Deleted messages, only those in uids when not NULL;
     * expunged (may be NULL) receives each removed UID in order. */
    int (*expunge)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                   petrel_storage_uid_fn *expunged, void *arg);
    /* What changed after modseq: messages with a greater MODSEQ (changed),
     * and UIDs expunged since (vanished, as ranges). When the folder cannot
     * tell (index rebuilt after that modseq) every UID below UIDNEXT that
     * is not present is reported vanished. Either callback may be NULL. */
    int (*changes_since)(struct petrel_folder *folder, uint64_t modseq,
                         petrel_storage_msg_fn *changed, petrel_storage_range_fn *vanished,
                         void *arg);
    /* The messages of uids (NULL = all) that match q, in UID order. */
    int (*search)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                  const struct petrel_storage_search *q, petrel_storage_uid_fn *match, void *arg);

    /* --- change notifications --- */
    /* Call fn(arg) after every committed change to folder (NULL = any
     * folder of the account), by any thread of this process. fn runs on
     * the changing thread with a storage lock held: it must be quick and
     * must not call storage functions (wake a connection, set a flag).
     * After unwatch returns, fn is not running and is never called again. */
    int (*watch)(struct petrel_mailbox *mbox, const char *folder, petrel_storage_watch_fn *fn,
                 void *arg, struct petrel_storage_watch **watch_r);
    void (*unwatch)(struct petrel_storage_watch *watch);

    const char *(*strerror)(int error);

    /* --- since version 2 (check ops->size) --- */
    /* The cached values of key for uids (NULL = all), in UID order, read in
     * a few queries instead of one cache_get each (SORT and THREAD read a
     * key of every message); a message without the key is skipped. fn runs
     * with no storage lock held. */
    int (*cache_scan)(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                      const char *key, petrel_storage_cache_fn *fn, void *arg);
    /* The UIDs, ascending, of the messages that have a text of where
     * containing needle (needle_len bytes, folded with petrel_fold, the
     * texts as petrel_mimetext gives them): exactly the messages a scan
     * would find for BODY and TEXT; for FIELD (field names a header
     * field, any case) the messages whose "Field: value" text contains it,
     * which may also match in "Field: " itself, so the caller checks those.
     * UNSUPPORTED when the backend cannot answer (no index, index off or
     * unusable, needle under 3 characters or not UTF-8): the caller scans.
     * The index is brought up to date first, so results never lag. */
    int (*fts_search)(struct petrel_folder *folder, enum petrel_storage_fts_where where,
                      const char *field, const char *needle, size_t needle_len,
                      petrel_storage_uid_fn *match, void *arg);
};

#endif
