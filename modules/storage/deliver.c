/* Storing messages: deliver, append, copy and move. Order for durability
 * (Postfix, Maildir): write tmp/<name> and fsync it; then, under the folder
 * lock and the index write lock, take UIDNEXT, rename into new/ or cur/ with
 * the UID in the name, insert the row and commit; then fsync the directory,
 * and only then report success. A crash between rename and commit leaves a
 * file the next scan adopts under the UID of its name. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/stats.h>

#include "storage_private.h"

/* Copies are committed in batches so that a huge COPY neither holds the
 * folder lock for long nor keeps every header in memory. */
#define COPY_BATCH 128

static int source_size(const struct petrel_storage_source *src, uint64_t *size_r)
{
    if (src == NULL)
        return PETREL_STORAGE_INVALID_ARG;
    uint64_t size = src->fd >= 0 ? src->fd_len : src->len;
    if (src->fd < 0 && src->data == NULL && src->len != 0)
        return PETREL_STORAGE_INVALID_ARG;
    if (size > STORAGE_MAX_MESSAGE)
        return PETREL_STORAGE_TOO_LARGE;
    *size_r = size;
    return PETREL_STORAGE_OK;
}

/* Give a written tmp/ file its UID and index row. fs is locked. */
static int commit_new(struct storage_fstate *fs, const char *tmpbase, struct storage_row *row,
                      const struct petrel_buf *header, uint32_t *uidvalidity_r)
{
    char base[STORAGE_MAX_FILENAME + 1], name[STORAGE_MAX_FILENAME + 1];
    char from[PATH_MAX], to[PATH_MAX];
    int ret = storage_index_begin(fs->db);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    row->uid = (uint32_t)storage_index_meta(fs->db, "uidnext", 1);
    if (row->uid == 0 || row->uid == UINT32_MAX)
        ret = PETREL_STORAGE_TOO_LARGE;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_reserve(fs, row->uid);
    if (ret == PETREL_STORAGE_OK &&
        (!storage_maildir_set_uid(tmpbase, row->uid, base, sizeof(base)) ||
         !storage_maildir_name(base, row->flags, row->recent, name, sizeof(name)) ||
         !petrel_snprintf(from, sizeof(from), "%s/tmp/%s", fs->dir, tmpbase) ||
         !storage_maildir_path(to, sizeof(to), fs->dir, row->recent, name)))
        ret = PETREL_STORAGE_TEMPFAIL;
    if (ret == PETREL_STORAGE_OK && rename(from, to) < 0) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "rename %s: %s", from, strerror(errno));
        ret = PETREL_STORAGE_TEMPFAIL;
    }
    bool renamed = ret == PETREL_STORAGE_OK;
    row->name = name;
    row->modseq = storage_index_next_modseq(fs->db);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_insert(fs->db, row, header->len ? petrel_buf_head(header) : NULL,
                                   header->len);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_set_meta(fs->db, "uidnext", (int64_t)row->uid + 1);
    if (ret == PETREL_STORAGE_OK)
        *uidvalidity_r = (uint32_t)storage_index_meta(fs->db, "uidvalidity", 0);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_commit(fs->db);
    else
        storage_index_rollback(fs->db);
    row->name = NULL;
    /* Not acknowledged: the file must not turn up later as a message. */
    if (ret != PETREL_STORAGE_OK && renamed)
        unlink(to);
    return ret;
}

static int store_message(struct petrel_mailbox *mbox, const char *folder,
                         const struct petrel_storage_source *src, uint32_t flags,
                         const char *keywords, int64_t idate,
                         const struct petrel_storage_quota *quota, bool recent, uint32_t *uid_r,
                         uint32_t *uidvalidity_r)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1], kw[PETREL_STORAGE_MAX_KEYWORDS * 65 + 1];
    char tmpbase[STORAGE_MAX_FILENAME + 1];
    struct storage_fstate *fs;
    uint64_t size;
    int ret = source_size(src, &size);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((flags & ~PETREL_STORAGE_FLAGS_ALL) != 0 ||
        !storage_message_keywords(keywords != NULL ? keywords : "", kw, sizeof(kw)))
        return PETREL_STORAGE_INVALID_ARG;
    if (!storage_foldername_valid(folder != NULL ? folder : "INBOX", canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    if ((ret = storage_folder_get(mbox->acct, canon, &fs)) != PETREL_STORAGE_OK)
        return ret;
    if ((ret = storage_quota_check(mbox->acct, quota, size, 1)) != PETREL_STORAGE_OK) {
        storage_folder_put(fs);
        return ret;
    }
    struct petrel_buf header;
    petrel_buf_init(&header, PETREL_STORAGE_MAX_HEADER);
    if (!storage_maildir_new_base(size, 0, tmpbase, sizeof(tmpbase)))
        ret = PETREL_STORAGE_TEMPFAIL;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_maildir_write_tmp(fs->dir, tmpbase, src, &header);
    struct storage_row row = {.flags = flags, .recent = recent, .size = size, .keywords = kw};
    row.idate = idate != 0 ? idate : (int64_t)time(NULL);
    if (ret == PETREL_STORAGE_OK) {
        if ((ret = storage_folder_lock(fs)) == PETREL_STORAGE_OK) {
            ret = commit_new(fs, tmpbase, &row, &header, uidvalidity_r);
            storage_folder_unlock(fs);
        }
        if (ret != PETREL_STORAGE_OK) {
            char path[PATH_MAX];
            if (petrel_snprintf(path, sizeof(path), "%s/tmp/%s", fs->dir, tmpbase))
                unlink(path);
        }
    }
    petrel_buf_free(&header);
    /* The rename is durable only once the directory is. */
    if (ret == PETREL_STORAGE_OK)
        ret = storage_maildir_fsync_dir(fs->dir, recent ? "new" : "cur");
    if (ret == PETREL_STORAGE_OK) {
        *uid_r = row.uid;
        storage_quota_add(mbox->acct, (int64_t)size, 1);
        storage_notify(mbox->acct, fs->name);
    }
    storage_folder_put(fs);
    return ret;
}

int storage_deliver(struct petrel_mailbox *mbox, const char *folder,
                    const struct petrel_storage_source *src,
                    const struct petrel_storage_quota *quota, uint32_t *uid_r,
                    uint32_t *uidvalidity_r)
{
    static struct petrel_counter *delivered, *failed;
    if (delivered == NULL) {
        delivered = petrel_counter("storage.deliveries");
        failed = petrel_counter("storage.delivery_failures");
    }
    int ret = store_message(mbox, folder, src, 0, NULL, 0, quota, true, uid_r, uidvalidity_r);
    petrel_counter_add(ret == PETREL_STORAGE_OK ? delivered : failed, 1);
    if (ret != PETREL_STORAGE_OK && ret != PETREL_STORAGE_OVER_QUOTA)
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "%s: delivery failed: %s", mbox->acct->path,
                   storage_strerror(ret));
    return ret;
}

int storage_deliver_append(struct petrel_mailbox *mbox, const char *folder,
                           const struct petrel_storage_source *src,
                           const struct petrel_storage_append *attrs, uint32_t *uid_r,
                           uint32_t *uidvalidity_r)
{
    static const struct petrel_storage_append none;
    if (attrs == NULL)
        attrs = &none;
    int ret = store_message(mbox, folder, src, attrs->flags, attrs->keywords, attrs->internal_date,
                            &attrs->quota, false, uid_r, uidvalidity_r);
    if (ret == PETREL_STORAGE_OK)
        petrel_counter_add(petrel_counter("storage.appends"), 1);
    return ret;
}

/* --- copy and move --- */

struct copy_item {
    struct storage_row row; /* from the source */
    uint32_t new_uid;
    char tmpbase[STORAGE_MAX_FILENAME + 1];
    void *header;
    size_t header_len;
    bool linked;
};

/* Same inode in the destination's tmp/ (no data copied, nothing to sync
 * but the directory); a plain copy when the file system refuses links. */
static bool link_or_copy(const char *from, const char *to)
{
    if (link(from, to) == 0)
        return true;
    if (errno == ENOENT)
        return false;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return false;
    struct petrel_storage_source src = {NULL, 0, in, 0};
    off_t end = lseek(in, 0, SEEK_END);
    lseek(in, 0, SEEK_SET);
    src.fd_len = end > 0 ? (uint64_t)end : 0;
    const char *slash = strrchr(to, '/');
    char dir[PATH_MAX];
    size_t dlen = (size_t)(slash - to);
    bool ok = dlen >= 4 && dlen < sizeof(dir);
    if (ok) {
        memcpy(dir, to, dlen - 4); /* strip "/tmp" */
        dir[dlen - 4] = '\0';
        ok = storage_maildir_write_tmp(dir, slash + 1, &src, NULL) == PETREL_STORAGE_OK;
    }
    close(in);
    return ok;
}

static void load_extra(sqlite3 *db, struct copy_item *it)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT header FROM msg WHERE uid = ?", -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, it->row.uid);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0) {
        it->header_len = (size_t)sqlite3_column_bytes(st, 0);
        it->header = petrel_malloc(it->header_len);
        memcpy(it->header, sqlite3_column_blob(st, 0), it->header_len);
    }
    sqlite3_finalize(st);
}

static void copy_cache(sqlite3 *src, sqlite3 *dst, uint32_t from, uint32_t to)
{
    sqlite3_stmt *q, *ins;
    if (sqlite3_prepare_v2(src, "SELECT key, value FROM cache WHERE uid = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return;
    if (sqlite3_prepare_v2(dst, "INSERT OR REPLACE INTO cache(uid, key, value) VALUES(?,?,?)", -1,
                           &ins, NULL) != SQLITE_OK) {
        sqlite3_finalize(q);
        return;
    }
    sqlite3_bind_int64(q, 1, from);
    while (sqlite3_step(q) == SQLITE_ROW) {
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, to);
        sqlite3_bind_text(ins, 2, (const char *)sqlite3_column_text(q, 0), -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 3, sqlite3_column_blob(q, 1), sqlite3_column_bytes(q, 1),
                          SQLITE_TRANSIENT);
        sqlite3_step(ins);
    }
    sqlite3_finalize(q);
    sqlite3_finalize(ins);
}

/* Under the source lock: rows, headers, and links into dest's tmp/. */
static int copy_prepare(struct storage_fstate *src, struct storage_fstate *dst,
                        struct copy_item *items, size_t n)
{
    char from[PATH_MAX], to[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        struct copy_item *it = &items[i];
        load_extra(src->db, it);
        if (!storage_maildir_new_base(it->row.size, 0, it->tmpbase, sizeof(it->tmpbase)) ||
            !storage_maildir_path(from, sizeof(from), src->dir, it->row.recent, it->row.name) ||
            !petrel_snprintf(to, sizeof(to), "%s/tmp/%s", dst->dir, it->tmpbase))
            return PETREL_STORAGE_TEMPFAIL;
        it->linked = link_or_copy(from, to);
    }
    return PETREL_STORAGE_OK;
}

/* Under the destination lock: UIDs, renames and rows, one transaction. */
static int copy_commit(struct storage_fstate *src, struct storage_fstate *dst,
                       struct copy_item *items, size_t n, uint32_t *uidv_r, int64_t *bytes_r)
{
    char base[STORAGE_MAX_FILENAME + 1], name[STORAGE_MAX_FILENAME + 1];
    char from[PATH_MAX], to[PATH_MAX];
    int ret = storage_index_begin(dst->db);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    uint32_t next = (uint32_t)storage_index_meta(dst->db, "uidnext", 1);
    uint64_t modseq = storage_index_next_modseq(dst->db);
    if (next > UINT32_MAX - n - 1)
        ret = PETREL_STORAGE_TOO_LARGE;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_reserve(dst, next + (uint32_t)n);
    for (size_t i = 0; i < n && ret == PETREL_STORAGE_OK; i++) {
        struct copy_item *it = &items[i];
        if (!it->linked)
            continue;
        struct storage_row row = it->row;
        row.uid = next;
        row.modseq = modseq;
        if (!storage_maildir_set_uid(it->tmpbase, row.uid, base, sizeof(base)) ||
            !storage_maildir_name(base, row.flags, row.recent, name, sizeof(name)) ||
            !petrel_snprintf(from, sizeof(from), "%s/tmp/%s", dst->dir, it->tmpbase) ||
            !storage_maildir_path(to, sizeof(to), dst->dir, row.recent, name) ||
            rename(from, to) < 0) {
            ret = PETREL_STORAGE_TEMPFAIL;
            break;
        }
        it->linked = false; /* renamed: no tmp/ file left to clean */
        row.name = name;
        ret = storage_index_insert(dst->db, &row, it->header, it->header_len);
        it->new_uid = next++;
        *bytes_r += (int64_t)row.size;
    }
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_set_meta(dst->db, "uidnext", next);
    *uidv_r = (uint32_t)storage_index_meta(dst->db, "uidvalidity", 0);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_commit(dst->db);
    else
        storage_index_rollback(dst->db);
    (void)src;
    return ret;
}

static void copy_items_free(struct storage_fstate *dst, struct copy_item *items, size_t n)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        if (items[i].linked &&
            petrel_snprintf(path, sizeof(path), "%s/tmp/%s", dst->dir, items[i].tmpbase))
            unlink(path);
        storage_row_clear(&items[i].row);
        free(items[i].header);
    }
    free(items);
}

/* Cache values go along; done after the destination commit, best effort. */
static void copy_caches(struct storage_fstate *src, struct storage_fstate *dst,
                        struct copy_item *items, size_t n)
{
    if (storage_folder_lock(src) != PETREL_STORAGE_OK)
        return;
    if (src == dst) {
        for (size_t i = 0; i < n; i++)
            if (items[i].new_uid != 0)
                copy_cache(src->db, src->db, items[i].row.uid, items[i].new_uid);
        storage_folder_unlock(src);
        return;
    }
    if (storage_folder_lock(dst) == PETREL_STORAGE_OK) {
        for (size_t i = 0; i < n; i++)
            if (items[i].new_uid != 0)
                copy_cache(src->db, dst->db, items[i].row.uid, items[i].new_uid);
        storage_folder_unlock(dst);
    }
    storage_folder_unlock(src);
}

struct uidpair {
    uint32_t src, dst;
};

static int copy_batch(struct storage_fstate *src, struct storage_fstate *dst,
                      struct storage_row *rows, size_t n, struct uidpair **pairs, size_t *npairs,
                      uint32_t *uidv_r)
{
    struct copy_item *items = petrel_calloc(n, sizeof(*items));
    int64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].row = rows[i];
        rows[i].name = rows[i].keywords = NULL; /* moved */
    }
    int ret = storage_folder_lock(src);
    if (ret == PETREL_STORAGE_OK) {
        ret = copy_prepare(src, dst, items, n);
        storage_folder_unlock(src);
    }
    if (ret == PETREL_STORAGE_OK && (ret = storage_folder_lock(dst)) == PETREL_STORAGE_OK) {
        ret = copy_commit(src, dst, items, n, uidv_r, &bytes);
        storage_folder_unlock(dst);
    }
    if (ret == PETREL_STORAGE_OK)
        ret = storage_maildir_fsync_dir(dst->dir, "cur");
    if (ret == PETREL_STORAGE_OK)
        ret = storage_maildir_fsync_dir(dst->dir, "new");
    if (ret == PETREL_STORAGE_OK) {
        copy_caches(src, dst, items, n);
        *pairs = petrel_reallocarray(*pairs, *npairs + n, sizeof(**pairs));
        for (size_t i = 0; i < n; i++)
            if (items[i].new_uid != 0)
                (*pairs)[(*npairs)++] = (struct uidpair){items[i].row.uid, items[i].new_uid};
        storage_quota_add(dst->acct, bytes, (int64_t)n);
    }
    copy_items_free(dst, items, n);
    return ret;
}

static int copy_pairs(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                      const char *dest, struct uidpair **pairs_r, size_t *n_r,
                      struct storage_fstate **dst_r, uint32_t *uidv_r)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1];
    struct storage_fstate *src = folder->fs, *dst;
    struct storage_row *rows = NULL;
    size_t nrows = 0;
    *pairs_r = NULL;
    *n_r = 0;
    if (dest == NULL || !storage_foldername_valid(dest, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    int ret = storage_folder_get(src->acct, canon, &dst);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((ret = storage_folder_lock(src)) == PETREL_STORAGE_OK) {
        ret = storage_index_load(src->db, uids, &rows, &nrows);
        storage_folder_unlock(src);
    }
    *uidv_r = 0;
    if (ret == PETREL_STORAGE_OK && nrows == 0 && (ret = storage_folder_lock(dst)) == 0) {
        *uidv_r = (uint32_t)storage_index_meta(dst->db, "uidvalidity", 0);
        storage_folder_unlock(dst);
    }
    for (size_t i = 0; i < nrows && ret == PETREL_STORAGE_OK; i += COPY_BATCH)
        ret = copy_batch(src, dst, rows + i, nrows - i < COPY_BATCH ? nrows - i : COPY_BATCH,
                         pairs_r, n_r, uidv_r);
    storage_rows_free(rows, nrows);
    *dst_r = dst;
    return ret;
}

static void report_pairs(struct uidpair *pairs, size_t n, petrel_storage_uidmap_fn *map, void *arg)
{
    for (size_t i = 0; map != NULL && i < n; i++)
        map(arg, pairs[i].src, pairs[i].dst);
    free(pairs);
}

int storage_deliver_copy(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                         uint32_t *dest_uidvalidity_r)
{
    struct uidpair *pairs;
    struct storage_fstate *dst = NULL;
    size_t n;
    int ret = copy_pairs(folder, uids, dest, &pairs, &n, &dst, dest_uidvalidity_r);
    if (dst != NULL) {
        if (n > 0)
            storage_notify(dst->acct, dst->name);
        storage_folder_put(dst);
    }
    if (ret == PETREL_STORAGE_OK)
        report_pairs(pairs, n, map, arg);
    else
        free(pairs);
    return ret;
}

int storage_deliver_move(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                         uint32_t *dest_uidvalidity_r)
{
    struct uidpair *pairs;
    struct storage_fstate *dst = NULL;
    size_t n;
    int ret = copy_pairs(folder, uids, dest, &pairs, &n, &dst, dest_uidvalidity_r);
    if (dst != NULL) {
        if (n > 0)
            storage_notify(dst->acct, dst->name);
        storage_folder_put(dst);
    }
    if (ret != PETREL_STORAGE_OK || n == 0) {
        free(pairs);
        return ret;
    }
    /* Expunge exactly the copied source messages. */
    struct petrel_storage_uid_range *ranges = petrel_reallocarray(NULL, n, sizeof(*ranges));
    for (size_t i = 0; i < n; i++)
        ranges[i] = (struct petrel_storage_uid_range){pairs[i].src, pairs[i].src};
    struct petrel_storage_uid_set set = {ranges, n};
    ret = storage_message_remove(folder, &set, false, NULL, NULL);
    free(ranges);
    if (ret == PETREL_STORAGE_OK)
        report_pairs(pairs, n, map, arg);
    else
        free(pairs);
    return ret;
}
