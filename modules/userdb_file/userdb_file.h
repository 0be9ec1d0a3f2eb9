/* userdb_file: the account database file, its records and its index.
 * Private to the module. */
#ifndef PETREL_USERDB_FILE_H
#define PETREL_USERDB_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include <petrel/admin.h>

#define USERDB_ADDRESS_MAX 254 /* RFC 5321 path limit less the brackets */
#define USERDB_TARGETS_MAX 1000
#define USERDB_LINE_MAX 65536

/* The module's settings (module.c's table), also read by its admin
 * commands through petrel_admin_config(). */
struct userdb_file_config {
    char *file;
    long long check_interval;
};

/* The account file of those settings: file as it is when absolute, else
 * below petrel_data_dir(). False if it does not fit. */
bool userdb_file_path(const struct userdb_file_config *c, char *out, size_t size);

enum userdb_kind { USERDB_DOMAIN, USERDB_ACCOUNT, USERDB_ALIAS, USERDB_FORWARD };

struct userdb_record {
    enum userdb_kind kind;
    unsigned line;            /* 1-based line in the file */
    char *key;                /* domain name, or address; lower case */
    char *hash;               /* account: crypt(3) hash */
    long long quota_bytes;    /* account: 0 = no limit */
    long long quota_messages; /* account: 0 = no limit */
    bool disabled;            /* account */
    bool keep;                /* forward: keep a copy in the mailbox */
    char *catchall;           /* domain: address for unknown local parts */
    char **targets;           /* alias, forward: NULL-terminated */
    size_t ntargets;
};

/* One problem found while reading, reported with its line. */
struct userdb_error {
    unsigned line;
    char message[160];
};

struct userdb_file {
    struct userdb_record *records;
    size_t count, capacity;
    struct userdb_error *errors; /* lines that were skipped */
    size_t nerrors;
    /* index: open addressing over records, by kind and key */
    size_t *slots;
    size_t nslots;
};

/* Parse a whole file's text. Bad lines are skipped and listed in errors;
 * the rest loads. Never fails on content. */
void userdb_parse(const char *text, size_t len, struct userdb_file *db);
void userdb_free(struct userdb_file *db);
/* The record of that kind and key (already lower case), or NULL. */
const struct userdb_record *userdb_find(const struct userdb_file *db, enum userdb_kind kind,
                                        const char *key);
/* The file text for a record, one line without its newline, into buf.
 * False if it does not fit. */
bool userdb_format(const struct userdb_record *r, char *buf, size_t size);
/* Lower-case and check an address (local@domain); false if invalid. */
bool userdb_address_normalise(const char *in, char *out, size_t size);
bool userdb_domain_valid(const char *domain);
/* A count (size false) or a size with an optional k/m/g/t suffix (powers
 * of 1024), as in quota= and messages=; false if invalid or too large. */
bool userdb_parse_count(const char *text, long long *value_r, bool size);

/* --- snapshot.c: the loaded file, shared by readers --- */

/* One immutable load of the file. Readers hold a reference while they copy
 * what they need; a reload swaps in a new snapshot and the old one goes
 * when its last reader lets go. */
struct userdb_snapshot {
    _Atomic unsigned refs;
    struct userdb_file db;
    /* what the file was when read: a change of any means reload */
    unsigned long long dev, ino, size, mtime_ns;
    bool missing; /* there was no file: an empty database */
};

struct userdb_source {
    pthread_mutex_t lock; /* guards current (the pointer swap only) */
    struct userdb_snapshot *current;
    char path[4096];
    _Atomic long long checked_ms;  /* last look at the file */
    _Atomic bool reloading;        /* one thread re-reads; the others go on */
    _Atomic bool reload_requested; /* a forced reload came in meanwhile */
    /* Forced reloads asked for, and the count of them a pass has served
     * (a pass that started after they were asked), with its result and,
     * on failure, its reason (guarded by lock): for userdb_source_reload_now. */
    _Atomic unsigned long long forced_asked, forced_served;
    _Atomic int forced_result;
    char forced_error[300];
    const char *log_name;
};

/* Read the file the first time. A missing file is an empty database; an
 * unreadable one is an error. */
int userdb_source_open(struct userdb_source *src, const char *path, const char *log_name,
                       const char **error_r);
/* The current snapshot, referenced; stats the file first when interval_ms
 * have passed since the last look and reloads it if it changed. The
 * interval comes from the caller's configuration generation, so a reload
 * of the settings needs no copy here. */
struct userdb_snapshot *userdb_source_get(struct userdb_source *src, long long interval_ms);
/* Re-read now if the file changed (force: even if not). 1 reloaded, 0
 * unchanged, -1 failed (the old snapshot stays). A forced reload that
 * finds another thread reloading is not lost: that thread does one more,
 * forced, before it lets go (this call then returns 0). */
int userdb_source_reload(struct userdb_source *src, bool force);
/* A forced re-read that is done when this returns, whichever thread did
 * it: 1 the new snapshot is in place, -1 the file could not be read (the
 * old snapshot stays; the reason into why). */
int userdb_source_reload_now(struct userdb_source *src, char *why, size_t why_size);
void userdb_snapshot_unref(struct userdb_snapshot *snap);
void userdb_source_close(struct userdb_source *src);
/* Monotonic milliseconds. */
long long userdb_now_ms(void);

/* --- lookup.c: service answers from a snapshot --- */

struct petrel_userdb_entry;
/* "user" alone becomes user@primary; then normalised. False if invalid. */
bool userdb_canonical(const char *in, const char *primary, char *out, size_t size);
/* Delivery view (login false: aliases and catch-all apply) or login view
 * (accounts only, with the hash). Returns PETREL_USERDB_FOUND or
 * NOT_FOUND. */
int userdb_lookup_entry(const struct userdb_file *db, const char *address, bool login,
                        struct petrel_userdb_entry **entry_r);
void userdb_entry_free(struct petrel_userdb_entry *e);

/* --- edit.c: administrative changes that keep the rest of the file --- */

struct userdb_edit {
    char **lines; /* the file's lines as they are, without the newline */
    size_t nlines, cap;
    struct userdb_file db; /* the parse of lines, redone after each change */
    bool changed;
    char error[300];
};

void userdb_edit_load(struct userdb_edit *e, const char *text, size_t len);
/* The file's text; caller frees. */
char *userdb_edit_text(const struct userdb_edit *e, size_t *len_r);
void userdb_edit_free(struct userdb_edit *e);

/* Each returns 0, or -1 with e->error. Addresses and domains are checked
 * and normalised here. */
int userdb_edit_domain_add(struct userdb_edit *e, const char *domain);
int userdb_edit_domain_del(struct userdb_edit *e, const char *domain);
/* address NULL: remove the catch-all */
int userdb_edit_domain_catchall(struct userdb_edit *e, const char *domain, const char *address);
int userdb_edit_account_add(struct userdb_edit *e, const char *address, const char *hash,
                            long long quota_bytes, long long quota_messages);
int userdb_edit_account_del(struct userdb_edit *e, const char *address);
/* NULL / negative / -1 leave a field as it is. */
int userdb_edit_account_set(struct userdb_edit *e, const char *address, const char *hash,
                            long long quota_bytes, long long quota_messages, int disabled);
int userdb_edit_alias_add(struct userdb_edit *e, const char *address, char *const *targets,
                          size_t n);
/* n == 0: the whole alias */
int userdb_edit_alias_del(struct userdb_edit *e, const char *address, char *const *targets,
                          size_t n);
int userdb_edit_forward_set(struct userdb_edit *e, const char *address, char *const *targets,
                            size_t n, bool keep);
int userdb_edit_forward_clear(struct userdb_edit *e, const char *address);

/* The whole file at path, NUL-terminated, only if it is a regular file read
 * to its full size: 1 with *text_r (to free) and *st_r, 0 when it does not
 * exist, -1 with why filled. */
int userdb_read_file(const char *path, char **text_r, size_t *len_r, struct stat *st_r, char *why,
                     size_t why_size);

/* --- lockedfile.c: the file under an administrator's lock --- */

struct userdb_locked {
    char path[4096];
    int lock_fd;
    struct userdb_edit edit;
};

/* Lock and read the account file at path (a missing file is empty): a
 * shared lock for reading, an exclusive one with write. Neither the lock
 * file nor the temporary file is ever opened through a symbolic link.
 * -1 with why filled; userdb_locked_close() is wanted either way. */
int userdb_locked_open(struct userdb_locked *u, const char *path, bool write, char *why,
                       size_t why_size);
/* Write the edited text if it changed: a new temporary file (mkstemp)
 * with the old file's mode and, as root, its owner and group; fsync,
 * rename, fsync of the directory. 1 written, 0 nothing changed, -1 with
 * why filled. */
int userdb_locked_commit(struct userdb_locked *u, char *why, size_t why_size);
/* Unlock and free. */
void userdb_locked_close(struct userdb_locked *u);

/* --- admin.c: petrelctl domain|account|alias|forward, userdb_file reload --- */

extern const struct petrel_admin_command userdb_file_admin[];
/* The running module's forced re-read (module.c), for `userdb_file
 * reload`: as userdb_source_reload_now(). */
int userdb_file_reload_now(char *why, size_t why_size, size_t *entries_r, size_t *bad_r);

#endif
