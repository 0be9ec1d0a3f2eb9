/* Messages of an open folder: metadata, fetch (streamed from the file),
 * the header and key/value cache, flag changes (kept in the file name too),
 * expunge and the changes since a MODSEQ. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/stats.h>

#include "storage_private.h"

#define FETCH_CHUNK 65536

static void to_msg(const struct storage_row *r, struct petrel_storage_msg *m)
{
    *m = (struct petrel_storage_msg){
        r->uid, r->flags, r->keywords ? r->keywords : "", r->modseq, r->idate, r->size, r->recent};
}

int storage_message_list(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         petrel_storage_msg_fn *fn, void *arg)
{
    struct storage_row *rows;
    size_t n;
    int ret = storage_folder_lock(folder->fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = storage_index_load(folder->fs->db, uids, &rows, &n);
    storage_folder_unlock(folder->fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    for (size_t i = 0; i < n && ret == 0; i++) {
        struct petrel_storage_msg m;
        to_msg(&rows[i], &m);
        ret = fn(arg, &m);
    }
    storage_rows_free(rows, n);
    return ret;
}

/* --- fetch --- */

static int open_row(struct storage_fstate *fs, uint32_t uid, int *fd_r)
{
    char path[PATH_MAX];
    struct storage_row row;
    int ret = storage_folder_lock(fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = storage_index_get(fs, uid, &row);
    if (ret == PETREL_STORAGE_OK) {
        if (!storage_maildir_path(path, sizeof(path), fs->dir, row.recent, row.name))
            ret = PETREL_STORAGE_TEMPFAIL;
        else if ((*fd_r = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0)
            ret = errno == ENOENT ? PETREL_STORAGE_NOT_FOUND : PETREL_STORAGE_TEMPFAIL;
        else {
            /* Only a regular file is a message (never a FIFO or a device). */
            struct stat sb;
            if (fstat(*fd_r, &sb) < 0 || !S_ISREG(sb.st_mode)) {
                close(*fd_r);
                ret = PETREL_STORAGE_TEMPFAIL;
            }
        }
        storage_row_clear(&row);
    }
    storage_folder_unlock(fs);
    return ret;
}

int storage_message_fetch_fd(struct petrel_folder *folder, uint32_t uid, int *fd_r,
                             uint64_t *size_r)
{
    struct stat sb;
    int ret = PETREL_STORAGE_NOT_FOUND;
    /* Under the folder lock the name cannot change, so a miss means the
     * file went away outside petrel: look at the files once, then give up. */
    for (int i = 0; i < 2; i++) {
        ret = open_row(folder->fs, uid, fd_r);
        if (ret != PETREL_STORAGE_NOT_FOUND || i == 1)
            break;
        struct storage_row row;
        if (storage_folder_lock(folder->fs) != PETREL_STORAGE_OK)
            break;
        bool known = storage_index_get(folder->fs, uid, &row) == PETREL_STORAGE_OK;
        if (known)
            storage_row_clear(&row);
        storage_folder_unlock(folder->fs);
        if (!known || storage_folder_sync(folder) != PETREL_STORAGE_OK)
            break;
    }
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if (fstat(*fd_r, &sb) < 0) {
        close(*fd_r);
        return PETREL_STORAGE_TEMPFAIL;
    }
    *size_r = (uint64_t)sb.st_size;
    return PETREL_STORAGE_OK;
}

int storage_message_fetch_stream(struct petrel_folder *folder, uint32_t uid,
                                 petrel_storage_data_fn *fn, void *arg)
{
    int fd;
    uint64_t size;
    int ret = storage_message_fetch_fd(folder, uid, &fd, &size);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    char *buf = petrel_malloc(FETCH_CHUNK);
    for (;;) {
        ssize_t n = read(fd, buf, FETCH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            ret = PETREL_STORAGE_TEMPFAIL;
        if (n <= 0 || (ret = fn(arg, buf, (size_t)n)) != 0)
            break;
    }
    free(buf);
    close(fd);
    return ret;
}

/* One blob column of the row for uid (and key, when not NULL), appended to
 * out. */
static int fetch_blob(struct petrel_folder *folder, const char *sql, uint32_t uid, const char *key,
                      struct petrel_buf *out)
{
    sqlite3_stmt *st;
    int ret = storage_folder_lock(folder->fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = PETREL_STORAGE_TEMPFAIL;
    if (sqlite3_prepare_v2(folder->fs->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, uid);
        if (key != NULL)
            sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            ret = petrel_buf_append(out, sqlite3_column_blob(st, 0),
                                    (size_t)sqlite3_column_bytes(st, 0))
                      ? PETREL_STORAGE_OK
                      : PETREL_STORAGE_TOO_LARGE;
        else if (rc == SQLITE_DONE)
            ret = PETREL_STORAGE_NOT_FOUND;
        sqlite3_finalize(st);
    }
    storage_folder_unlock(folder->fs);
    return ret;
}

int storage_message_fetch_header(struct petrel_folder *folder, uint32_t uid, struct petrel_buf *out)
{
    return fetch_blob(folder, "SELECT header FROM msg WHERE uid = ?", uid, NULL, out);
}

/* --- cache --- */

static bool cache_key_ok(const char *key)
{
    size_t n = key != NULL ? strlen(key) : 0;
    if (n == 0 || n > PETREL_STORAGE_MAX_CACHE_KEY)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f)
            return false;
    return true;
}

int storage_message_cache_get(struct petrel_folder *folder, uint32_t uid, const char *key,
                              struct petrel_buf *out)
{
    if (!cache_key_ok(key))
        return PETREL_STORAGE_INVALID_ARG;
    return fetch_blob(folder, "SELECT value FROM cache WHERE uid = ? AND key = ?", uid, key, out);
}

int storage_message_cache_set(struct petrel_folder *folder, uint32_t uid, const char *key,
                              const void *data, size_t len)
{
    sqlite3_stmt *st;
    if (!cache_key_ok(key) || (data == NULL && len != 0))
        return PETREL_STORAGE_INVALID_ARG;
    if (len > PETREL_STORAGE_MAX_CACHE)
        return PETREL_STORAGE_TOO_LARGE;
    int ret = storage_folder_lock(folder->fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = PETREL_STORAGE_TEMPFAIL;
    storage_index_cache_sync(folder->fs->db, true);
    /* Only for a message that exists: no orphan cache rows. */
    if (sqlite3_prepare_v2(folder->fs->db,
                           "INSERT OR REPLACE INTO cache(uid, key, value)"
                           " SELECT uid, ?, ? FROM msg WHERE uid = ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, len ? data : "", (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, uid);
        if (sqlite3_step(st) == SQLITE_DONE)
            ret =
                sqlite3_changes(folder->fs->db) > 0 ? PETREL_STORAGE_OK : PETREL_STORAGE_NOT_FOUND;
        sqlite3_finalize(st);
    }
    storage_index_cache_sync(folder->fs->db, false);
    storage_folder_unlock(folder->fs);
    return ret;
}

/* cache_scan reads at most this many rows (and bytes) under the folder
 * lock, then hands them over with the lock released, so a long scan never
 * holds deliveries back for long nor takes much memory. */
#define CACHE_SCAN_CHUNK 2048u
#define CACHE_SCAN_BYTES (4u * 1024u * 1024u)

struct cache_rows {
    uint32_t uid[CACHE_SCAN_CHUNK];
    struct petrel_buf data; /* the values, back to back */
    size_t end[CACHE_SCAN_CHUNK];
    size_t n;
    bool more; /* the chunk stopped at a limit, not at the range's end */
};

/* The rows of key with lo <= uid <= hi, at most one chunk. */
static int cache_chunk(struct storage_fstate *fs, const char *key, uint32_t lo, uint32_t hi,
                       struct cache_rows *r)
{
    sqlite3_stmt *st;
    r->n = 0;
    r->more = false;
    petrel_buf_reset(&r->data);
    int ret = storage_folder_lock(fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = PETREL_STORAGE_TEMPFAIL;
    if (sqlite3_prepare_v2(fs->db,
                           "SELECT uid, value FROM cache WHERE uid BETWEEN ? AND ? AND key = ?"
                           " ORDER BY uid LIMIT ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, (int)CACHE_SCAN_CHUNK);
        int rc = SQLITE_DONE;
        ret = PETREL_STORAGE_OK;
        while (ret == PETREL_STORAGE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            size_t len = (size_t)sqlite3_column_bytes(st, 1);
            if (r->n > 0 && r->data.len + len > CACHE_SCAN_BYTES) {
                r->more = true; /* this row starts the next chunk */
                break;
            }
            if (!petrel_buf_append(&r->data, sqlite3_column_blob(st, 1), len))
                ret = PETREL_STORAGE_TOO_LARGE;
            r->uid[r->n] = (uint32_t)sqlite3_column_int64(st, 0);
            r->end[r->n++] = r->data.len;
        }
        if (r->n == CACHE_SCAN_CHUNK)
            r->more = true;
        else if (ret == PETREL_STORAGE_OK && !r->more && rc != SQLITE_DONE)
            ret = PETREL_STORAGE_TEMPFAIL;
        sqlite3_finalize(st);
    }
    storage_folder_unlock(fs);
    return ret;
}

int storage_message_cache_scan(struct petrel_folder *folder,
                               const struct petrel_storage_uid_set *uids, const char *key,
                               petrel_storage_cache_fn *fn, void *arg)
{
    if (!cache_key_ok(key))
        return PETREL_STORAGE_INVALID_ARG;
    struct petrel_storage_uid_range all = {1, UINT32_MAX};
    size_t nranges = uids != NULL ? uids->count : 1;
    struct cache_rows *r = petrel_calloc(1, sizeof(*r));
    petrel_buf_init(&r->data, CACHE_SCAN_BYTES + PETREL_STORAGE_MAX_CACHE);
    int ret = PETREL_STORAGE_OK;
    for (size_t i = 0; i < nranges && ret == 0; i++) {
        const struct petrel_storage_uid_range *rg = uids != NULL ? &uids->ranges[i] : &all;
        uint64_t lo = rg->lo;
        while (ret == 0 && lo <= rg->hi) {
            if ((ret = cache_chunk(folder->fs, key, (uint32_t)lo, rg->hi, r)) != 0)
                break;
            for (size_t k = 0; k < r->n && ret == 0; k++) {
                size_t start = k > 0 ? r->end[k - 1] : 0;
                ret = fn(arg, r->uid[k], petrel_buf_head(&r->data) + start, r->end[k] - start);
            }
            if (!r->more)
                break;
            lo = (uint64_t)r->uid[r->n - 1] + 1;
        }
    }
    petrel_buf_free(&r->data);
    free(r);
    return ret;
}

/* --- keywords and flags --- */

static bool atom_ok(const char *s, size_t n)
{
    if (n == 0 || n > PETREL_STORAGE_MAX_KEYWORD || s[0] == '\\')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

struct kwlist {
    const char *w[PETREL_STORAGE_MAX_KEYWORDS * 2];
    size_t len[PETREL_STORAGE_MAX_KEYWORDS * 2];
    size_t n;
};

static bool kw_has(const struct kwlist *l, const char *w, size_t n)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->len[i] == n && strncasecmp(l->w[i], w, n) == 0)
            return true;
    return false;
}

/* Split a space-separated list; false when a word is not an atom. */
static bool kw_split(const char *s, struct kwlist *l, size_t max)
{
    while (*s != '\0') {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        if (n == 0)
            break;
        if (!atom_ok(s, n) || l->n >= max)
            return false;
        if (!kw_has(l, s, n)) {
            l->w[l->n] = s;
            l->len[l->n++] = n;
        }
        s += n;
    }
    return true;
}

static bool kw_join(const struct kwlist *l, char *out, size_t size)
{
    size_t o = 0;
    /* Insertion sort, case-insensitive: a stable, canonical order. */
    size_t idx[PETREL_STORAGE_MAX_KEYWORDS * 2];
    for (size_t i = 0; i < l->n; i++) {
        size_t j = i;
        for (; j > 0; j--) {
            size_t a = idx[j - 1], m = l->len[a] < l->len[i] ? l->len[a] : l->len[i];
            int c = strncasecmp(l->w[a], l->w[i], m);
            if (c < 0 || (c == 0 && l->len[a] <= l->len[i]))
                break;
            idx[j] = idx[j - 1];
        }
        idx[j] = i;
    }
    out[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        size_t k = idx[i];
        if (o + l->len[k] + 2 > size)
            return false;
        if (o > 0)
            out[o++] = ' ';
        memcpy(out + o, l->w[k], l->len[k]);
        o += l->len[k];
        out[o] = '\0';
    }
    return true;
}

bool storage_message_keywords(const char *in, char *out, size_t size)
{
    struct kwlist l = {.n = 0};
    return kw_split(in, &l, PETREL_STORAGE_MAX_KEYWORDS) && kw_join(&l, out, size);
}

int storage_message_apply(const struct petrel_storage_store *req, const char *req_kw,
                          uint32_t *flags, char **keywords)
{
    char out[PETREL_STORAGE_MAX_KEYWORDS * (PETREL_STORAGE_MAX_KEYWORD + 1) + 1];
    struct kwlist cur = {.n = 0}, want = {.n = 0}, res = {.n = 0};
    uint32_t f = *flags;
    kw_split(*keywords != NULL ? *keywords : "", &cur, PETREL_STORAGE_MAX_KEYWORDS * 2);
    kw_split(req_kw, &want, PETREL_STORAGE_MAX_KEYWORDS);
    switch (req->mode) {
    case PETREL_STORAGE_FLAGS_ADD:
        f |= req->flags;
        res = cur;
        for (size_t i = 0; i < want.n; i++)
            if (!kw_has(&res, want.w[i], want.len[i])) {
                /* More than the limit is refused, never silently cut. */
                if (res.n >= PETREL_STORAGE_MAX_KEYWORDS)
                    return -1;
                res.w[res.n] = want.w[i];
                res.len[res.n++] = want.len[i];
            }
        break;
    case PETREL_STORAGE_FLAGS_REMOVE:
        f &= ~req->flags;
        for (size_t i = 0; i < cur.n; i++)
            if (!kw_has(&want, cur.w[i], cur.len[i])) {
                res.w[res.n] = cur.w[i];
                res.len[res.n++] = cur.len[i];
            }
        break;
    case PETREL_STORAGE_FLAGS_REPLACE:
        f = req->flags;
        res = want;
        break;
    }
    if (!kw_join(&res, out, sizeof(out)))
        return -1;
    bool changed = f != *flags || strcmp(out, *keywords != NULL ? *keywords : "") != 0;
    if (changed) {
        *flags = f;
        free(*keywords);
        *keywords = petrel_strdup(out);
    }
    return changed;
}

struct uidlist {
    uint32_t *v;
    size_t n;
};

static void uidlist_add(struct uidlist *l, uint32_t uid)
{
    l->v = petrel_reallocarray(l->v, l->n + 1, sizeof(*l->v));
    l->v[l->n++] = uid;
}

static void uidlist_report(struct uidlist *l, petrel_storage_uid_fn *fn, void *arg)
{
    for (size_t i = 0; fn != NULL && i < l->n; i++)
        fn(arg, l->v[i]);
    free(l->v);
}

/* Rename the file to carry its new flags (a flagged message lives in cur/). */
static int rename_flags(struct storage_fstate *fs, struct storage_row *row)
{
    char base[STORAGE_MAX_FILENAME + 1], name[STORAGE_MAX_FILENAME + 1];
    char from[PATH_MAX], to[PATH_MAX];
    size_t blen = strcspn(row->name, ":");
    if (blen >= sizeof(base))
        return PETREL_STORAGE_TEMPFAIL;
    memcpy(base, row->name, blen);
    base[blen] = '\0';
    if (!storage_maildir_name(base, row->flags, false, name, sizeof(name)) ||
        !storage_maildir_path(from, sizeof(from), fs->dir, row->recent, row->name) ||
        !storage_maildir_path(to, sizeof(to), fs->dir, false, name))
        return PETREL_STORAGE_TEMPFAIL;
    if (strcmp(from, to) != 0 && rename(from, to) < 0)
        return errno == ENOENT ? PETREL_STORAGE_NOT_FOUND : PETREL_STORAGE_TEMPFAIL;
    free(row->name);
    row->name = petrel_strdup(name);
    row->recent = false;
    return PETREL_STORAGE_OK;
}

static int store_rows(struct storage_fstate *fs, struct storage_row *rows, size_t n,
                      const struct petrel_storage_store *req, const char *kw,
                      struct uidlist *modified, bool *changed_r)
{
    uint64_t modseq = 0;
    int ret = PETREL_STORAGE_OK;
    for (size_t i = 0; i < n && ret == PETREL_STORAGE_OK; i++) {
        struct storage_row *r = &rows[i];
        if (req->unchangedsince != 0 && r->modseq > req->unchangedsince) {
            uidlist_add(modified, r->uid);
            continue;
        }
        int applied = storage_message_apply(req, kw, &r->flags, &r->keywords);
        if (applied < 0) {
            ret = PETREL_STORAGE_INVALID_ARG; /* over PETREL_STORAGE_MAX_KEYWORDS */
            break;
        }
        if (applied == 0)
            continue;
        if (modseq == 0 && (ret = storage_index_next_modseq(fs->db, &modseq)) != PETREL_STORAGE_OK)
            break;
        r->modseq = modseq;
        ret = rename_flags(fs, r);
        if (ret == PETREL_STORAGE_NOT_FOUND) {
            ret = PETREL_STORAGE_OK; /* removed outside: the next sync records it */
            continue;
        }
        if (ret == PETREL_STORAGE_OK)
            ret = storage_index_update(fs->db, r);
        *changed_r = true;
    }
    return ret;
}

int storage_message_store(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                          const struct petrel_storage_store *req, petrel_storage_uid_fn *modified,
                          void *arg)
{
    char kw[PETREL_STORAGE_MAX_KEYWORDS * (PETREL_STORAGE_MAX_KEYWORD + 1) + 1];
    struct storage_fstate *fs = folder->fs;
    struct uidlist mod = {NULL, 0};
    struct storage_row *rows = NULL;
    size_t n = 0;
    bool changed = false;
    if (req == NULL || (req->flags & ~PETREL_STORAGE_FLAGS_ALL) != 0 ||
        req->mode > PETREL_STORAGE_FLAGS_REPLACE ||
        !storage_message_keywords(req->keywords != NULL ? req->keywords : "", kw, sizeof(kw)))
        return PETREL_STORAGE_INVALID_ARG;
    int ret = storage_folder_lock(fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((ret = storage_index_begin(fs->db)) == PETREL_STORAGE_OK) {
        ret = storage_index_load(fs->db, uids, &rows, &n);
        if (ret == PETREL_STORAGE_OK)
            ret = store_rows(fs, rows, n, req, kw, &mod, &changed);
        if (ret == PETREL_STORAGE_OK)
            ret = storage_index_commit(fs->db);
        else
            storage_index_rollback(fs->db);
    }
    storage_folder_unlock(fs);
    storage_rows_free(rows, n);
    if (ret == PETREL_STORAGE_OK && changed) {
        storage_maildir_fsync_dir(fs->dir, "cur");
        storage_notify(fs->acct, fs->name);
    }
    uidlist_report(&mod, ret == PETREL_STORAGE_OK ? modified : NULL, arg);
    return ret;
}

/* --- expunge --- */

int storage_message_remove(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                           bool only_deleted, petrel_storage_uid_fn *expunged, void *arg)
{
    char path[PATH_MAX];
    struct storage_fstate *fs = folder->fs;
    struct uidlist gone = {NULL, 0};
    struct storage_row *rows = NULL;
    size_t n = 0;
    int64_t bytes = 0;
    int ret = storage_folder_lock(fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((ret = storage_index_begin(fs->db)) == PETREL_STORAGE_OK) {
        uint64_t modseq = 0;
        ret = storage_index_load(fs->db, uids, &rows, &n);
        for (size_t i = 0; i < n && ret == PETREL_STORAGE_OK; i++) {
            if (only_deleted && !(rows[i].flags & PETREL_STORAGE_DELETED))
                continue;
            /* File first: a crash before the commit only leaves a row
             * without a file, which the next scan records as expunged. */
            if (storage_maildir_path(path, sizeof(path), fs->dir, rows[i].recent, rows[i].name) &&
                unlink(path) < 0 && errno != ENOENT)
                petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "unlink %s: %s", path, strerror(errno));
            if (modseq == 0 &&
                (ret = storage_index_next_modseq(fs->db, &modseq)) != PETREL_STORAGE_OK)
                break;
            ret = storage_index_expunge(fs->db, rows[i].uid, modseq);
            uidlist_add(&gone, rows[i].uid);
            bytes += (int64_t)rows[i].size;
        }
        /* The window is kept at each expunge step, in its transaction. */
        if (ret == PETREL_STORAGE_OK && modseq != 0 &&
            (ret = storage_expunged_record(fs->db, modseq, (int64_t)time(NULL))) ==
                PETREL_STORAGE_OK)
            ret = storage_expunged_prune(fs->db, (int64_t)time(NULL));
        if (ret == PETREL_STORAGE_OK)
            ret = storage_index_commit(fs->db);
        else
            storage_index_rollback(fs->db);
    }
    storage_folder_unlock(fs);
    storage_rows_free(rows, n);
    if (ret == PETREL_STORAGE_OK && gone.n > 0) {
        storage_maildir_fsync_dir(fs->dir, "cur");
        storage_quota_add(fs->acct, -bytes, -(int64_t)gone.n);
        storage_count(storage_counters.expunged, (int64_t)gone.n);
        storage_notify(fs->acct, fs->name);
    }
    uidlist_report(&gone, ret == PETREL_STORAGE_OK ? expunged : NULL, arg);
    return ret;
}

int storage_message_expunge(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                            petrel_storage_uid_fn *expunged, void *arg)
{
    return storage_message_remove(folder, uids, true, expunged, arg);
}

/* --- changes since a MODSEQ --- */

struct ranges {
    struct petrel_storage_uid_range *v;
    size_t n;
};

static void ranges_add(struct ranges *r, uint32_t lo, uint32_t hi)
{
    if (r->n > 0 && r->v[r->n - 1].hi + 1ull == lo) {
        r->v[r->n - 1].hi = hi;
        return;
    }
    r->v = petrel_reallocarray(r->v, r->n + 1, sizeof(*r->v));
    r->v[r->n++] = (struct petrel_storage_uid_range){lo, hi};
}

/* Every UID below UIDNEXT that is not present: when the expunge records
 * do not reach back far enough (the index was rebuilt). */
static int vanished_gaps(sqlite3 *db, struct ranges *out)
{
    sqlite3_stmt *st;
    int64_t next64;
    uint32_t expect = 1;
    if (storage_index_meta(db, "uidnext", 1, &next64) != PETREL_STORAGE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    uint32_t next = (uint32_t)next64;
    if (sqlite3_prepare_v2(db, "SELECT uid FROM msg ORDER BY uid", -1, &st, NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
        if (uid > expect)
            ranges_add(out, expect, uid - 1);
        expect = uid + 1;
    }
    sqlite3_finalize(st);
    if (next > expect)
        ranges_add(out, expect, next - 1);
    return PETREL_STORAGE_OK;
}

static int vanished_since(sqlite3 *db, uint64_t modseq, struct ranges *out)
{
    sqlite3_stmt *st;
    int64_t floor;
    if (storage_index_meta(db, "vanished_floor", 0, &floor) != PETREL_STORAGE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    if ((uint64_t)floor > modseq)
        return vanished_gaps(db, out);
    if (sqlite3_prepare_v2(db, "SELECT uid FROM expunged WHERE modseq > ? ORDER BY uid", -1, &st,
                           NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, (int64_t)modseq);
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint32_t uid = (uint32_t)sqlite3_column_int64(st, 0);
        ranges_add(out, uid, uid);
    }
    sqlite3_finalize(st);
    return PETREL_STORAGE_OK;
}

int storage_message_changes(struct petrel_folder *folder, uint64_t modseq,
                            petrel_storage_msg_fn *changed, petrel_storage_range_fn *vanished,
                            void *arg)
{
    struct storage_row *rows = NULL;
    struct ranges gone = {NULL, 0};
    size_t n = 0;
    int ret = storage_folder_lock(folder->fs);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if (changed != NULL)
        ret = storage_index_load_since(folder->fs->db, modseq, &rows, &n);
    if (ret == PETREL_STORAGE_OK && vanished != NULL)
        ret = vanished_since(folder->fs->db, modseq, &gone);
    storage_folder_unlock(folder->fs);
    for (size_t i = 0; ret == PETREL_STORAGE_OK && i < gone.n; i++)
        vanished(arg, gone.v[i].lo, gone.v[i].hi);
    for (size_t i = 0; i < n && ret == 0; i++) {
        struct petrel_storage_msg m;
        to_msg(&rows[i], &m);
        ret = changed(arg, &m);
    }
    free(gone.v);
    storage_rows_free(rows, n);
    return ret;
}
