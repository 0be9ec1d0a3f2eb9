/* Folders: the shared per-folder state (one SQLite connection under a
 * mutex), and create, delete, rename, list, subscribe. Subscriptions and
 * special-use attributes live in the account database
 * (petrel-account.sqlite at the account root). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/stats.h>

#include "storage_private.h"

static const struct {
    const char *name;
    unsigned attr;
} initial_folders[] = {
    {"Drafts", PETREL_STORAGE_FOLDER_DRAFTS},   {"Sent", PETREL_STORAGE_FOLDER_SENT},
    {"Trash", PETREL_STORAGE_FOLDER_TRASH},     {"Junk", PETREL_STORAGE_FOLDER_JUNK},
    {"Archive", PETREL_STORAGE_FOLDER_ARCHIVE},
};

/* A folder directory is a real directory (a symlinked ".X" is not
 * followed: it could lead out of the account) with a cur/ in it. The
 * account directory itself (INBOX) may be a link the administrator made. */
static bool folder_exists(const char *dir)
{
    char path[PATH_MAX];
    struct stat sb;
    const char *last = strrchr(dir, '/');
    bool sub = last != NULL && last[1] == '.';
    return (!sub || (lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))) &&
           petrel_snprintf(path, sizeof(path), "%s/cur", dir) && lstat(path, &sb) == 0 &&
           S_ISDIR(sb.st_mode);
}

static size_t folder_count(struct storage_account *acct);
static size_t missing_levels(struct storage_account *acct, char *canon);

/* --- shared folder states --- */

int storage_folder_get(struct storage_account *acct, const char *name, struct storage_fstate **r)
{
    char dir[PATH_MAX];
    struct storage_fstate *fs;
    pthread_mutex_lock(&acct->lock);
    for (fs = acct->folders; fs != NULL; fs = fs->next)
        if (!fs->deleted && strcmp(fs->name, name) == 0)
            break;
    if (fs == NULL) {
        storage_mailbox_path(acct, name, dir, sizeof(dir));
        if (dir[0] == '\0' || !folder_exists(dir)) {
            pthread_mutex_unlock(&acct->lock);
            return dir[0] == '\0' ? PETREL_STORAGE_INVALID_NAME : PETREL_STORAGE_NOT_FOUND;
        }
        fs = petrel_calloc(1, sizeof(*fs));
        fs->acct = acct;
        fs->name = petrel_strdup(name);
        fs->dir = petrel_strdup(dir);
        pthread_mutex_init(&fs->lock, NULL);
        fs->next = acct->folders;
        acct->folders = fs;
    }
    fs->refs++;
    pthread_mutex_unlock(&acct->lock);
    *r = fs;
    return PETREL_STORAGE_OK;
}

static void fstate_unlink(struct storage_account *acct, struct storage_fstate *fs);

/* The state of folder name stops being used: deleted, or renamed (a state's
 * name and dir never change, so that threads holding it may read them
 * without its lock; a renamed folder gets a new state under its new name,
 * and handles open on the old one get NOT_FOUND). acct->lock held. */
static void fstate_retire(struct storage_account *acct, const char *name)
{
    for (struct storage_fstate *fs = acct->folders, *next; fs != NULL; fs = next) {
        next = fs->next;
        if (fs->deleted || strcmp(fs->name, name) != 0)
            continue;
        pthread_mutex_lock(&fs->lock);
        fs->deleted = true;
        storage_index_close(fs);
        pthread_mutex_unlock(&fs->lock);
        if (fs->refs == 0)
            fstate_unlink(acct, fs);
    }
}

static void fstate_unlink(struct storage_account *acct, struct storage_fstate *fs)
{
    for (struct storage_fstate **p = &acct->folders; *p != NULL; p = &(*p)->next)
        if (*p == fs) {
            *p = fs->next;
            break;
        }
    storage_index_close(fs);
    pthread_mutex_destroy(&fs->lock);
    free(fs->name);
    free(fs->dir);
    free(fs);
}

void storage_folder_put(struct storage_fstate *fs)
{
    struct storage_account *acct = fs->acct;
    pthread_mutex_lock(&acct->lock);
    /* Live states stay cached with their index open until the account
     * closes; a deleted one goes with its last user. */
    if (--fs->refs == 0 && fs->deleted)
        fstate_unlink(acct, fs);
    pthread_mutex_unlock(&acct->lock);
}

static int scan_locked(struct storage_fstate *fs, bool *changed_r)
{
    int ret = storage_index_begin(fs->db);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = storage_rebuild_scan(fs, false, changed_r);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_commit(fs->db);
    else
        storage_index_rollback(fs->db);
    return ret;
}

int storage_folder_lock(struct storage_fstate *fs)
{
    bool changed;
    int ret = PETREL_STORAGE_OK;
    pthread_mutex_lock(&fs->lock);
    if (fs->deleted)
        ret = PETREL_STORAGE_NOT_FOUND;
    else if (fs->db == NULL)
        ret = storage_index_open(fs);
    /* First use in this process: catch up with what happened while no
     * petrel process watched (crash recovery, other programs). */
    if (ret == PETREL_STORAGE_OK && !fs->scanned)
        ret = scan_locked(fs, &changed);
    if (ret != PETREL_STORAGE_OK)
        pthread_mutex_unlock(&fs->lock);
    return ret;
}

void storage_folder_unlock(struct storage_fstate *fs) { pthread_mutex_unlock(&fs->lock); }

/* --- the account database --- */

int storage_folder_account_db(struct storage_account *acct)
{
    char path[PATH_MAX];
    if (acct->db != NULL)
        return PETREL_STORAGE_OK;
    if (!petrel_snprintf(path, sizeof(path), "%s/" STORAGE_ACCOUNT_DB, acct->path))
        return PETREL_STORAGE_INVALID_NAME;
    if (sqlite3_open_v2(path, &acct->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "open %s: %s", path, sqlite3_errmsg(acct->db));
        sqlite3_close(acct->db);
        acct->db = NULL;
        return PETREL_STORAGE_TEMPFAIL;
    }
    sqlite3_busy_timeout(acct->db, STORAGE_BUSY_MS);
    /* As for folder indexes: no BUSY from a second process opening it. */
    int ret = PETREL_STORAGE_OK;
    if (storage_index_exec_retry(acct->db, "PRAGMA journal_mode=WAL") != SQLITE_OK ||
        storage_index_exec_retry(
            acct->db, "BEGIN IMMEDIATE;"
                      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER);"
                      "CREATE TABLE IF NOT EXISTS subs(name TEXT PRIMARY KEY);"
                      "CREATE TABLE IF NOT EXISTS special(name TEXT PRIMARY KEY, attrs INTEGER);"
                      "COMMIT;") != SQLITE_OK) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "open %s: %s", path, sqlite3_errmsg(acct->db));
        ret = PETREL_STORAGE_TEMPFAIL;
    }
    if (ret != PETREL_STORAGE_OK) {
        sqlite3_close(acct->db);
        acct->db = NULL;
    }
    return ret;
}

static int account_sql(struct storage_account *acct, const char *sql, const char *a, const char *b,
                       int64_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(acct->db, sql, -1, &st, NULL) != SQLITE_OK)
        return storage_index_exec(acct->db, sql); /* logs the error */
    int i = 1;
    if (a != NULL)
        sqlite3_bind_text(st, i++, a, -1, SQLITE_STATIC);
    if (b != NULL)
        sqlite3_bind_text(st, i++, b, -1, SQLITE_STATIC);
    if (n >= 0)
        sqlite3_bind_int64(st, i, n);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "account db: %s", sqlite3_errmsg(acct->db));
        return PETREL_STORAGE_TEMPFAIL;
    }
    return PETREL_STORAGE_OK;
}

static int create_dir(struct storage_account *acct, const char *name, unsigned special_use)
{
    char dir[PATH_MAX], marker[PATH_MAX + 16];
    storage_mailbox_path(acct, name, dir, sizeof(dir));
    if (dir[0] == '\0')
        return PETREL_STORAGE_INVALID_NAME;
    int ret = storage_maildir_mkdirs(dir);
    /* Maildir++ marks a sub-folder with an empty "maildirfolder" file. */
    if (ret == PETREL_STORAGE_OK && strcmp(name, "INBOX") != 0 &&
        petrel_snprintf(marker, sizeof(marker), "%s/maildirfolder", dir)) {
        int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
        ret = storage_maildir_fsync_dir(dir, "");
    }
    if (ret == PETREL_STORAGE_OK && special_use != 0)
        ret = account_sql(acct, "INSERT OR REPLACE INTO special(name, attrs) VALUES(?, ?)", name,
                          NULL, special_use);
    return ret;
}

/* A new account: INBOX and the special-use folders, all subscribed. Done
 * once, under the account database's write lock (other processes). */
int storage_folder_init_account(struct storage_account *acct)
{
    int ret = storage_maildir_mkdirs(acct->path);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_folder_account_db(acct);
    if (ret != PETREL_STORAGE_OK || (ret = storage_index_begin(acct->db)) != PETREL_STORAGE_OK)
        return ret;
    int64_t initialized;
    ret = storage_index_meta(acct->db, "initialized", 0, &initialized);
    if (ret == PETREL_STORAGE_OK && initialized == 0) {
        ret = account_sql(acct, "INSERT OR IGNORE INTO subs(name) VALUES(?)", "INBOX", NULL, -1);
        for (size_t i = 0; i < sizeof(initial_folders) / sizeof(initial_folders[0]); i++) {
            if (ret == PETREL_STORAGE_OK)
                ret = create_dir(acct, initial_folders[i].name, initial_folders[i].attr);
            if (ret == PETREL_STORAGE_OK)
                ret = account_sql(acct, "INSERT OR IGNORE INTO subs(name) VALUES(?)",
                                  initial_folders[i].name, NULL, -1);
        }
        if (ret == PETREL_STORAGE_OK)
            ret = storage_index_set_meta(acct->db, "initialized", 1);
        if (ret == PETREL_STORAGE_OK) {
            petrel_log(PETREL_LOG_INFO, STORAGE_LOG, "%s: new account", acct->path);
            storage_count(storage_counters.accounts_created, 1);
        }
    }
    if (ret == PETREL_STORAGE_OK)
        return storage_index_commit(acct->db);
    storage_index_rollback(acct->db);
    sqlite3_close(acct->db);
    acct->db = NULL;
    return ret;
}

/* --- folder operations --- */

int storage_folder_create(struct petrel_mailbox *mbox, const char *name, unsigned special_use)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1], dir[PATH_MAX];
    struct storage_account *acct = mbox->acct;
    if (name == NULL || !storage_foldername_valid(name, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    if ((special_use & ~PETREL_STORAGE_SPECIAL_USE_MASK) != 0)
        return PETREL_STORAGE_INVALID_ARG;
    storage_mailbox_path(acct, canon, dir, sizeof(dir));
    if (dir[0] == '\0')
        return PETREL_STORAGE_INVALID_NAME;
    pthread_mutex_lock(&acct->lock);
    int ret = PETREL_STORAGE_OK;
    if (folder_exists(dir)) {
        ret = PETREL_STORAGE_EXISTS;
    } else if (folder_count(acct) + missing_levels(acct, canon) > storage_env.max_folders) {
        ret = PETREL_STORAGE_TOO_LARGE; /* each missing parent is a folder too */
    } else {
        /* Parents first, as IMAP CREATE does. */
        for (char *p = strchr(canon, '/'); p != NULL && ret == PETREL_STORAGE_OK;
             p = strchr(p + 1, '/')) {
            *p = '\0';
            ret = create_dir(acct, canon, 0);
            *p = '/';
        }
        if (ret == PETREL_STORAGE_OK)
            ret = create_dir(acct, canon, special_use);
    }
    pthread_mutex_unlock(&acct->lock);
    if (ret == PETREL_STORAGE_OK)
        storage_notify(acct, NULL);
    return ret;
}

/* Remove a Maildir that has been renamed out of sight. */
static void remove_tree(const char *dir)
{
    static const char *const subs[] = {"tmp", "new", "cur", ""};
    char path[PATH_MAX], file[PATH_MAX];
    for (size_t i = 0; i < 4; i++) {
        if (!petrel_snprintf(path, sizeof(path), "%s%s%s", dir, subs[i][0] ? "/" : "", subs[i]))
            continue;
        DIR *d = opendir(path);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
                petrel_snprintf(file, sizeof(file), "%s/%s", path, de->d_name))
                unlink(file);
        if (d != NULL)
            closedir(d);
        if (subs[i][0] != '\0')
            rmdir(path);
    }
    if (rmdir(dir) < 0)
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "rmdir %s: %s", dir, strerror(errno));
}

/* Names of the folder directories of the account (not INBOX). */
static size_t folder_names(struct storage_account *acct, char ***names_r)
{
    char name[PETREL_STORAGE_MAX_NAME + 1], path[PATH_MAX];
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(acct->path);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL && n < storage_env.max_folders) {
        if (!storage_foldername_from_dir(de->d_name, name, sizeof(name)) ||
            !petrel_snprintf(path, sizeof(path), "%s/%s", acct->path, de->d_name) ||
            !folder_exists(path))
            continue;
        names = petrel_reallocarray(names, n + 1, sizeof(*names));
        names[n++] = petrel_strdup(name);
    }
    if (d != NULL)
        closedir(d);
    *names_r = names;
    return n;
}

static void names_free(char **names, size_t n);

static size_t folder_count(struct storage_account *acct)
{
    char **names;
    size_t n = folder_names(acct, &names);
    names_free(names, n);
    return n;
}

/* How many folders creating canon makes (itself and missing parents). */
static size_t missing_levels(struct storage_account *acct, char *canon)
{
    char dir[PATH_MAX];
    size_t n = 1;
    for (char *p = strchr(canon, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        storage_mailbox_path(acct, canon, dir, sizeof(dir));
        if (strcmp(canon, "INBOX") != 0 && !folder_exists(dir))
            n++;
        *p = '/';
    }
    return n;
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static bool is_child(const char *name, const char *parent)
{
    size_t n = strlen(parent);
    return strncmp(name, parent, n) == 0 && name[n] == '/';
}

static bool has_children(struct storage_account *acct, const char *name)
{
    char **names;
    size_t n = folder_names(acct, &names);
    bool r = false;
    for (size_t i = 0; i < n && !r; i++)
        r = is_child(names[i], name);
    names_free(names, n);
    return r;
}

int storage_folder_delete(struct petrel_mailbox *mbox, const char *name)
{
    static atomic_uint seq;
    char canon[PETREL_STORAGE_MAX_NAME + 1], dir[PATH_MAX], gone[PATH_MAX];
    struct storage_account *acct = mbox->acct;
    if (name == NULL || !storage_foldername_valid(name, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    if (strcmp(canon, "INBOX") == 0)
        return PETREL_STORAGE_NOT_ALLOWED;
    storage_mailbox_path(acct, canon, dir, sizeof(dir));
    if (!petrel_snprintf(gone, sizeof(gone), "%s/tmp/deleted.%ld.%u", acct->path, (long)getpid(),
                         atomic_fetch_add(&seq, 1)))
        return PETREL_STORAGE_TEMPFAIL;
    pthread_mutex_lock(&acct->lock);
    int ret = PETREL_STORAGE_OK;
    if (dir[0] == '\0' || !folder_exists(dir))
        ret = PETREL_STORAGE_NOT_FOUND;
    else if (has_children(acct, canon))
        ret = PETREL_STORAGE_NOT_ALLOWED;
    else if (rename(dir, gone) < 0) /* out of sight at once, then removed */
        ret = PETREL_STORAGE_TEMPFAIL;
    if (ret == PETREL_STORAGE_OK) {
        fstate_retire(acct, canon);
        account_sql(acct, "DELETE FROM special WHERE name = ?", canon, NULL, -1);
        remove_tree(gone);
    }
    pthread_mutex_unlock(&acct->lock);
    if (ret == PETREL_STORAGE_OK) {
        storage_quota_forget(acct);
        storage_notify(acct, NULL);
        storage_notify(acct, canon);
    }
    return ret;
}

/* Rename one folder directory and the states that point at it. */
static int rename_one(struct storage_account *acct, const char *from, const char *to)
{
    char fdir[PATH_MAX], tdir[PATH_MAX];
    storage_mailbox_path(acct, from, fdir, sizeof(fdir));
    storage_mailbox_path(acct, to, tdir, sizeof(tdir));
    if (fdir[0] == '\0' || tdir[0] == '\0')
        return PETREL_STORAGE_INVALID_NAME;
    if (rename(fdir, tdir) < 0) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "rename %s: %s", fdir, strerror(errno));
        return PETREL_STORAGE_TEMPFAIL;
    }
    storage_maildir_fsync_dir(acct->path, "");
    fstate_retire(acct, from);
    account_sql(acct, "UPDATE special SET name = ? WHERE name = ?", to, from, -1);
    account_sql(acct, "UPDATE subs SET name = ? WHERE name = ?", to, from, -1);
    return PETREL_STORAGE_OK;
}

static int rename_tree(struct storage_account *acct, const char *from, const char *to)
{
    char tdir[PATH_MAX], child_to[PETREL_STORAGE_MAX_NAME + 1], canon[PETREL_STORAGE_MAX_NAME + 1];
    char **names;
    size_t n, flen = strlen(from);
    storage_mailbox_path(acct, to, tdir, sizeof(tdir));
    if (tdir[0] == '\0')
        return PETREL_STORAGE_INVALID_NAME;
    if (folder_exists(tdir))
        return PETREL_STORAGE_EXISTS;
    n = folder_names(acct, &names);
    int ret = PETREL_STORAGE_OK;
    /* Every new name must be valid before anything moves. */
    for (size_t i = 0; i < n && ret == PETREL_STORAGE_OK; i++) {
        if (!is_child(names[i], from))
            continue;
        if (!petrel_snprintf(child_to, sizeof(child_to), "%s%s", to, names[i] + flen) ||
            !storage_foldername_valid(child_to, canon, sizeof(canon)) ||
            !storage_foldername_to_dir(canon, tdir, STORAGE_MAX_FILENAME + 1))
            ret = PETREL_STORAGE_INVALID_NAME;
    }
    for (char *p = strchr(to, '/'); ret == PETREL_STORAGE_OK && p != NULL; p = strchr(p + 1, '/')) {
        petrel_strlcpy(canon, to, (size_t)(p - to) + 1);
        storage_mailbox_path(acct, canon, tdir, sizeof(tdir));
        if (!folder_exists(tdir))
            ret = create_dir(acct, canon, 0);
    }
    if (ret == PETREL_STORAGE_OK)
        ret = rename_one(acct, from, to);
    for (size_t i = 0; i < n && ret == PETREL_STORAGE_OK; i++)
        if (is_child(names[i], from) &&
            petrel_snprintf(child_to, sizeof(child_to), "%s%s", to, names[i] + flen))
            ret = rename_one(acct, names[i], child_to);
    names_free(names, n);
    return ret;
}

/* RENAME INBOX: its messages move to a new folder; INBOX stays, empty. */
static int rename_inbox(struct petrel_mailbox *mbox, const char *to)
{
    struct petrel_folder *inbox;
    int ret = storage_folder_create(mbox, to, 0);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((ret = storage_folder_open(mbox, "INBOX", &inbox)) != PETREL_STORAGE_OK)
        return ret;
    uint32_t v;
    ret = storage_deliver_move(inbox, NULL, to, NULL, NULL, &v);
    storage_folder_close(inbox);
    return ret;
}

int storage_folder_rename(struct petrel_mailbox *mbox, const char *from, const char *to)
{
    char f[PETREL_STORAGE_MAX_NAME + 1], t[PETREL_STORAGE_MAX_NAME + 1], dir[PATH_MAX];
    struct storage_account *acct = mbox->acct;
    if (from == NULL || to == NULL || !storage_foldername_valid(from, f, sizeof(f)) ||
        !storage_foldername_valid(to, t, sizeof(t)))
        return PETREL_STORAGE_INVALID_NAME;
    if (strcmp(t, "INBOX") == 0)
        return PETREL_STORAGE_EXISTS;
    if (strcmp(f, t) == 0 || is_child(t, f))
        return PETREL_STORAGE_NOT_ALLOWED;
    if (strcmp(f, "INBOX") == 0)
        return rename_inbox(mbox, t);
    pthread_mutex_lock(&acct->lock);
    storage_mailbox_path(acct, f, dir, sizeof(dir));
    int ret =
        dir[0] != '\0' && folder_exists(dir) ? rename_tree(acct, f, t) : PETREL_STORAGE_NOT_FOUND;
    pthread_mutex_unlock(&acct->lock);
    if (ret == PETREL_STORAGE_OK) {
        storage_notify(acct, NULL);
        storage_notify(acct, f);
    }
    return ret;
}

struct listed {
    char *name;
    unsigned attrs;
};

static int listed_cmp(const void *a, const void *b)
{
    const struct listed *x = a, *y = b;
    /* INBOX first, then byte order. */
    int xi = strcmp(x->name, "INBOX") == 0, yi = strcmp(y->name, "INBOX") == 0;
    if (xi != yi)
        return yi - xi;
    return strcmp(x->name, y->name);
}

static struct listed *listed_find(struct listed *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

/* Add subscription and special-use attributes from the account database. */
static void list_attrs(struct storage_account *acct, struct listed **v, size_t *n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(acct->db, "SELECT name, attrs FROM special", -1, &st, NULL) ==
        SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            struct listed *l = listed_find(*v, *n, (const char *)sqlite3_column_text(st, 0));
            if (l != NULL)
                l->attrs |= (unsigned)sqlite3_column_int64(st, 1) & PETREL_STORAGE_SPECIAL_USE_MASK;
        }
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(acct->db, "SELECT name FROM subs", -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW && *n < storage_env.max_folders * 2) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        struct listed *l = listed_find(*v, *n, name);
        if (l == NULL) {
            *v = petrel_reallocarray(*v, *n + 1, sizeof(**v));
            l = &(*v)[(*n)++];
            l->name = petrel_strdup(name);
            l->attrs = PETREL_STORAGE_FOLDER_NONEXISTENT;
        }
        l->attrs |= PETREL_STORAGE_FOLDER_SUBSCRIBED;
    }
    sqlite3_finalize(st);
}

int storage_folder_list(struct petrel_mailbox *mbox, petrel_storage_folder_fn *fn, void *arg)
{
    struct storage_account *acct = mbox->acct;
    char **names;
    pthread_mutex_lock(&acct->lock);
    size_t n = folder_names(acct, &names), count = n + 1;
    struct listed *v = petrel_reallocarray(NULL, count, sizeof(*v));
    v[0] = (struct listed){petrel_strdup("INBOX"), 0};
    for (size_t i = 0; i < n; i++)
        v[i + 1] = (struct listed){names[i], 0};
    free(names); /* the strings moved into v */
    list_attrs(acct, &v, &count);
    pthread_mutex_unlock(&acct->lock);
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < count; j++)
            if (!(v[j].attrs & PETREL_STORAGE_FOLDER_NONEXISTENT) &&
                is_child(v[j].name, v[i].name)) {
                v[i].attrs |= PETREL_STORAGE_FOLDER_HAS_CHILDREN;
                break;
            }
    qsort(v, count, sizeof(*v), listed_cmp);
    for (size_t i = 0; i < count; i++) {
        struct petrel_storage_folder_info info = {v[i].name, v[i].attrs};
        fn(arg, &info);
        free(v[i].name);
    }
    free(v);
    return PETREL_STORAGE_OK;
}

int storage_folder_subscribe(struct petrel_mailbox *mbox, const char *name, bool subscribe)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1];
    if (name == NULL || !storage_foldername_valid(name, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    pthread_mutex_lock(&mbox->acct->lock);
    int ret = account_sql(mbox->acct,
                          subscribe ? "INSERT OR IGNORE INTO subs(name) VALUES(?)"
                                    : "DELETE FROM subs WHERE name = ?",
                          canon, NULL, -1);
    pthread_mutex_unlock(&mbox->acct->lock);
    return ret;
}

/* --- open folders --- */

static int get_canon(struct petrel_mailbox *mbox, const char *name, struct storage_fstate **fs_r)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1];
    if (name == NULL || !storage_foldername_valid(name, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    return storage_folder_get(mbox->acct, canon, fs_r);
}

int storage_folder_status(struct petrel_mailbox *mbox, const char *name,
                          struct petrel_storage_status *st)
{
    struct storage_fstate *fs;
    int ret = get_canon(mbox, name, &fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((ret = storage_folder_lock(fs)) == PETREL_STORAGE_OK) {
        ret = storage_index_status(fs->db, st);
        storage_folder_unlock(fs);
    }
    storage_folder_put(fs);
    return ret;
}

static bool dirs_changed(struct storage_fstate *fs)
{
    char path[PATH_MAX];
    struct stat sb;
    if (!petrel_snprintf(path, sizeof(path), "%s/new", fs->dir) || stat(path, &sb) < 0 ||
        sb.st_mtim.tv_sec != fs->new_mtime.tv_sec || sb.st_mtim.tv_nsec != fs->new_mtime.tv_nsec)
        return true;
    return !petrel_snprintf(path, sizeof(path), "%s/cur", fs->dir) || stat(path, &sb) < 0 ||
           sb.st_mtim.tv_sec != fs->cur_mtime.tv_sec || sb.st_mtim.tv_nsec != fs->cur_mtime.tv_nsec;
}

static int sync_fs(struct storage_fstate *fs, bool always)
{
    bool changed = false;
    int ret = storage_folder_lock(fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if (always || dirs_changed(fs))
        ret = scan_locked(fs, &changed);
    storage_folder_unlock(fs);
    if (changed)
        storage_notify(fs->acct, fs->name);
    return ret;
}

int storage_folder_open(struct petrel_mailbox *mbox, const char *name, struct petrel_folder **r)
{
    struct storage_fstate *fs;
    int ret = get_canon(mbox, name, &fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((ret = sync_fs(fs, false)) != PETREL_STORAGE_OK) {
        storage_folder_put(fs);
        return ret;
    }
    struct petrel_folder *f = petrel_calloc(1, sizeof(*f));
    f->fs = fs;
    storage_mailbox_hold(fs->acct);
    *r = f;
    return PETREL_STORAGE_OK;
}

void storage_folder_close(struct petrel_folder *folder)
{
    if (folder == NULL)
        return;
    struct storage_account *acct = folder->fs->acct;
    storage_folder_put(folder->fs);
    free(folder);
    storage_mailbox_release(acct);
}

int storage_folder_sync(struct petrel_folder *folder) { return sync_fs(folder->fs, true); }

int storage_folder_fstatus(struct petrel_folder *folder, struct petrel_storage_status *st)
{
    int ret = storage_folder_lock(folder->fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = storage_index_status(folder->fs->db, st);
    storage_folder_unlock(folder->fs);
    return ret;
}
