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
#include <sys/stat.h>
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

/* Give a written tmp/ file its UID and index row. fs is locked. to_r
 * (PATH_MAX) receives the message's path. */
static int commit_new(struct storage_fstate *fs, const char *tmpbase, struct storage_row *row,
                      const struct petrel_buf *header, uint32_t *uidvalidity_r, char *to_r)
{
    char base[STORAGE_MAX_FILENAME + 1], name[STORAGE_MAX_FILENAME + 1];
    char from[PATH_MAX];
    int64_t next = 0, uidv = 0;
    int ret = storage_index_begin(fs->db);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    /* A metadata read error must never turn into UIDNEXT = 1. */
    ret = storage_index_meta(fs->db, "uidnext", 1, &next);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_meta(fs->db, "uidvalidity", 0, &uidv);
    if (ret == PETREL_STORAGE_OK && (next <= 0 || next >= UINT32_MAX))
        ret = PETREL_STORAGE_TOO_LARGE;
    row->uid = (uint32_t)next;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_reserve(fs, row->uid);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_next_modseq(fs->db, &row->modseq);
    if (ret == PETREL_STORAGE_OK &&
        (!storage_maildir_set_uid(tmpbase, row->uid, base, sizeof(base)) ||
         !storage_maildir_name(base, row->flags, row->recent, name, sizeof(name)) ||
         !petrel_snprintf(from, sizeof(from), "%s/tmp/%s", fs->dir, tmpbase) ||
         !storage_maildir_path(to_r, PATH_MAX, fs->dir, row->recent, name)))
        ret = PETREL_STORAGE_TEMPFAIL;
    if (ret == PETREL_STORAGE_OK && rename(from, to_r) < 0) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "rename %s: %s", from, strerror(errno));
        ret = PETREL_STORAGE_TEMPFAIL;
    }
    bool renamed = ret == PETREL_STORAGE_OK;
    row->name = name;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_insert(fs->db, row, header->len ? petrel_buf_head(header) : NULL,
                                   header->len);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_set_meta(fs->db, "uidnext", (int64_t)row->uid + 1);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_commit(fs->db);
    else
        storage_index_rollback(fs->db);
    row->name = NULL;
    if (ret == PETREL_STORAGE_OK)
        *uidvalidity_r = (uint32_t)uidv;
    /* Not acknowledged: the file must not turn up later as a message. */
    if (ret != PETREL_STORAGE_OK && renamed)
        unlink(to_r);
    return ret;
}

/* Take back committed messages whose directory could not be synced: they
 * are visible but not durable, and the caller is told to try again, so
 * they must not stay (a retry would store them twice). */
static int withdraw(struct storage_fstate *fs, const uint32_t *uids, size_t n)
{
    struct petrel_storage_uid_range *ranges = petrel_reallocarray(NULL, n ? n : 1, sizeof(*ranges));
    for (size_t i = 0; i < n; i++)
        ranges[i] = (struct petrel_storage_uid_range){uids[i], uids[i]};
    struct petrel_storage_uid_set set = {ranges, n};
    struct petrel_folder f = {fs};
    int ret = n > 0 ? storage_message_remove(&f, &set, false, NULL, NULL) : PETREL_STORAGE_OK;
    free(ranges);
    if (ret != PETREL_STORAGE_OK)
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG,
                   "%s: %zu message(s) not durable and not withdrawn: a retry may store them twice",
                   fs->dir, n);
    return ret;
}

static int store_message(struct petrel_mailbox *mbox, const char *folder,
                         const struct petrel_storage_source *src, uint32_t flags,
                         const char *keywords, int64_t idate,
                         const struct petrel_storage_quota *quota, bool recent, uint32_t *uid_r,
                         uint32_t *uidvalidity_r)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1], kw[PETREL_STORAGE_MAX_KEYWORDS * 65 + 1];
    char tmpbase[STORAGE_MAX_FILENAME + 1], to[PATH_MAX];
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
            ret = commit_new(fs, tmpbase, &row, &header, uidvalidity_r, to);
            storage_folder_unlock(fs);
        }
        if (ret != PETREL_STORAGE_OK) {
            char path[PATH_MAX];
            if (petrel_snprintf(path, sizeof(path), "%s/tmp/%s", fs->dir, tmpbase))
                unlink(path);
        }
    }
    petrel_buf_free(&header);
    if (ret == PETREL_STORAGE_OK)
        storage_quota_add(mbox->acct, (int64_t)size, 1);
    /* The rename is durable only once the directory is. When that sync
     * fails the message is taken back out (index row and file) before
     * TEMPFAIL is returned, so the sender's retry cannot deliver it twice.
     * No second fsync: after a failed fsync Linux may report a later one
     * as successful although the data never reached the disk. */
    if (ret == PETREL_STORAGE_OK &&
        (ret = storage_maildir_fsync_dir(fs->dir, recent ? "new" : "cur")) != PETREL_STORAGE_OK)
        withdraw(fs, &row.uid, 1);
    if (ret == PETREL_STORAGE_OK) {
        *uid_r = row.uid;
        storage_notify(mbox->acct, fs->name);
        storage_fts_note(mbox->acct, fs->name);
    }
    storage_folder_put(fs);
    return ret;
}

int storage_deliver(struct petrel_mailbox *mbox, const char *folder,
                    const struct petrel_storage_source *src,
                    const struct petrel_storage_quota *quota, uint32_t *uid_r,
                    uint32_t *uidvalidity_r)
{
    int ret = store_message(mbox, folder, src, 0, NULL, 0, quota, true, uid_r, uidvalidity_r);
    storage_count(ret == PETREL_STORAGE_OK ? storage_counters.delivered
                                           : storage_counters.delivery_failures,
                  1);
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
        storage_count(storage_counters.appends, 1);
    return ret;
}

/* --- copy and move ---
 *
 * In batches of COPY_BATCH messages, holding one folder lock at a time
 * (two copies in opposite directions must not deadlock):
 *   1. source lock, write transaction: reload the batch's rows (current
 *      names and flags), read headers and cache values, hard-link the
 *      files into the destination's tmp/;
 *   2. destination lock: UIDs, renames into new/ cur/, rows and cache
 *      values in one transaction; on failure every renamed file is removed
 *      again, so nothing reappears later as a message;
 *   3. the destination directories are synced.
 * COPY is all or nothing: when a batch fails, the batches already copied
 * are withdrawn from the destination. MOVE expunges each batch from the
 * source once it is durable in the destination: a failed MOVE may have
 * moved some whole batches, but never leaves a message in both folders,
 * so a retry does not duplicate. */

struct copy_kv {
    char *key;
    void *value;
    size_t len;
};

struct copy_item {
    struct storage_row row; /* the source row, as loaded under the source lock */
    uint32_t new_uid;       /* 0 until committed in the destination */
    char tmpbase[STORAGE_MAX_FILENAME + 1];
    void *header;
    size_t header_len;
    struct copy_kv *cache;
    size_t ncache;
    bool linked;  /* a file in the destination's tmp/ */
    char *placed; /* renamed into new/ or cur/, not yet committed */
};

static void copy_item_clear(struct storage_fstate *dst, struct copy_item *it)
{
    char path[PATH_MAX];
    if (it->linked && petrel_snprintf(path, sizeof(path), "%s/tmp/%s", dst->dir, it->tmpbase))
        unlink(path);
    storage_row_clear(&it->row);
    free(it->header);
    for (size_t k = 0; k < it->ncache; k++) {
        free(it->cache[k].key);
        free(it->cache[k].value);
    }
    free(it->cache);
    free(it->placed);
    memset(it, 0, sizeof(*it));
}

/* Same inode in the destination's tmp/ (no data copied, nothing to sync
 * but the directory); a plain copy when the file system refuses links.
 * 0, ENOENT (no such source file) or another errno. */
static int link_or_copy(const char *from, const char *to)
{
    if (link(from, to) == 0)
        return 0;
    if (errno == ENOENT)
        return ENOENT;
    int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (in < 0)
        return errno == ENOENT ? ENOENT : EIO;
    struct stat sb;
    struct petrel_storage_source src = {NULL, 0, in, 0};
    const char *slash = strrchr(to, '/');
    char dir[PATH_MAX];
    size_t dlen = (size_t)(slash - to);
    bool ok = fstat(in, &sb) == 0 && S_ISREG(sb.st_mode) && dlen >= 4 && dlen < sizeof(dir);
    if (ok) {
        src.fd_len = (uint64_t)sb.st_size;
        memcpy(dir, to, dlen - 4); /* strip "/tmp" */
        dir[dlen - 4] = '\0';
        ok = storage_maildir_write_tmp(dir, slash + 1, &src, NULL) == PETREL_STORAGE_OK;
    }
    close(in);
    return ok ? 0 : EIO;
}

static int load_extra(sqlite3 *db, struct copy_item *it)
{
    sqlite3_stmt *st;
    int rc;
    if (sqlite3_prepare_v2(db, "SELECT header FROM msg WHERE uid = ?", -1, &st, NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, it->row.uid);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0) {
        it->header_len = (size_t)sqlite3_column_bytes(st, 0);
        it->header = petrel_malloc(it->header_len);
        memcpy(it->header, sqlite3_column_blob(st, 0), it->header_len);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return PETREL_STORAGE_TEMPFAIL;
    if (sqlite3_prepare_v2(db, "SELECT key, value FROM cache WHERE uid = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, it->row.uid);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct copy_kv kv = {petrel_strdup((const char *)sqlite3_column_text(st, 0)), NULL,
                             (size_t)sqlite3_column_bytes(st, 1)};
        kv.value = petrel_malloc(kv.len ? kv.len : 1);
        if (kv.len > 0)
            memcpy(kv.value, sqlite3_column_blob(st, 1), kv.len);
        it->cache = petrel_reallocarray(it->cache, it->ncache + 1, sizeof(*it->cache));
        it->cache[it->ncache++] = kv;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PETREL_STORAGE_OK : PETREL_STORAGE_TEMPFAIL;
}

static int insert_cache(sqlite3 *db, uint32_t uid, const struct copy_item *it)
{
    sqlite3_stmt *st;
    int ret = PETREL_STORAGE_OK;
    if (it->ncache == 0)
        return PETREL_STORAGE_OK;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO cache(uid, key, value) VALUES(?,?,?)", -1,
                           &st, NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    for (size_t k = 0; k < it->ncache && ret == PETREL_STORAGE_OK; k++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, uid);
        sqlite3_bind_text(st, 2, it->cache[k].key, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, it->cache[k].value, (int)it->cache[k].len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            ret = PETREL_STORAGE_TEMPFAIL;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Step 1, under the source lock. The batch's rows are loaded again here:
 * a STORE since the UID list was read has renamed files and changed
 * flags. A UID no longer in the index was expunged and is skipped; a row
 * whose file is missing makes the folder be scanned (another process may
 * have renamed it) and the batch be tried once more; still missing is a
 * TEMPFAIL, never a silent skip. *n_r: items filled. */
static int copy_prepare(struct storage_fstate *src, struct storage_fstate *dst,
                        const uint32_t *uids, size_t n, struct copy_item *items, size_t *n_r)
{
    char from[PATH_MAX], to[PATH_MAX];
    struct petrel_storage_uid_range *ranges = petrel_reallocarray(NULL, n, sizeof(*ranges));
    for (size_t i = 0; i < n; i++)
        ranges[i] = (struct petrel_storage_uid_range){uids[i], uids[i]};
    struct petrel_storage_uid_set set = {ranges, n};
    /* The write lock keeps other processes from renaming files meanwhile. */
    int ret = storage_index_begin(src->db);
    *n_r = 0;
    for (int attempt = 0; ret == PETREL_STORAGE_OK && attempt < 2; attempt++) {
        struct storage_row *rows = NULL;
        size_t nrows = 0, count = 0;
        bool missing = false;
        if ((ret = storage_index_load(src->db, &set, &rows, &nrows)) != PETREL_STORAGE_OK)
            break;
        for (size_t i = 0; i < nrows && ret == PETREL_STORAGE_OK; i++) {
            struct copy_item *it = &items[count++];
            it->row = rows[i];
            rows[i].name = rows[i].keywords = NULL; /* moved */
            if ((ret = load_extra(src->db, it)) != PETREL_STORAGE_OK)
                break;
            if (!storage_maildir_new_base(it->row.size, 0, it->tmpbase, sizeof(it->tmpbase)) ||
                !storage_maildir_path(from, sizeof(from), src->dir, it->row.recent, it->row.name) ||
                !petrel_snprintf(to, sizeof(to), "%s/tmp/%s", dst->dir, it->tmpbase)) {
                ret = PETREL_STORAGE_TEMPFAIL;
                break;
            }
            int err = link_or_copy(from, to);
            if (err == 0)
                it->linked = true;
            else if (err == ENOENT)
                missing = true;
            else
                ret = PETREL_STORAGE_TEMPFAIL;
        }
        storage_rows_free(rows, nrows);
        *n_r = count;
        if (ret != PETREL_STORAGE_OK || !missing)
            break;
        for (size_t i = 0; i < count; i++)
            copy_item_clear(dst, &items[i]);
        *n_r = 0;
        if (attempt == 1) {
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "%s: copy: message files missing", src->dir);
            ret = PETREL_STORAGE_TEMPFAIL;
            break;
        }
        bool changed;
        ret = storage_rebuild_scan(src, false, &changed);
    }
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_commit(src->db); /* keeps what a scan found */
    else
        storage_index_rollback(src->db);
    free(ranges);
    return ret;
}

/* Step 2, under the destination lock: one transaction. */
static int copy_commit(struct storage_fstate *dst, struct copy_item *items, size_t n,
                       uint32_t *uidv_r, int64_t *bytes_r, int64_t *msgs_r)
{
    char base[STORAGE_MAX_FILENAME + 1], name[STORAGE_MAX_FILENAME + 1];
    char from[PATH_MAX], to[PATH_MAX];
    int64_t next = 0, uidv = 0, bytes = 0, msgs = 0;
    uint64_t modseq = 0;
    int ret = storage_index_begin(dst->db);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = storage_index_meta(dst->db, "uidnext", 1, &next);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_meta(dst->db, "uidvalidity", 0, &uidv);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_next_modseq(dst->db, &modseq);
    if (ret == PETREL_STORAGE_OK && (next <= 0 || (uint64_t)next + n + 1 >= UINT32_MAX))
        ret = PETREL_STORAGE_TOO_LARGE;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_reserve(dst, (uint32_t)next + (uint32_t)n);
    for (size_t i = 0; i < n && ret == PETREL_STORAGE_OK; i++) {
        struct copy_item *it = &items[i];
        if (!it->linked)
            continue;
        struct storage_row row = it->row;
        row.uid = (uint32_t)next;
        row.modseq = modseq;
        if (!storage_maildir_set_uid(it->tmpbase, row.uid, base, sizeof(base)) ||
            !storage_maildir_name(base, row.flags, row.recent, name, sizeof(name)) ||
            !petrel_snprintf(from, sizeof(from), "%s/tmp/%s", dst->dir, it->tmpbase) ||
            !storage_maildir_path(to, sizeof(to), dst->dir, row.recent, name) ||
            (storage_test_fault != NULL && storage_test_fault("copy_rename")) ||
            rename(from, to) < 0) {
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "copy into %s: %s", dst->dir,
                       strerror(errno));
            ret = PETREL_STORAGE_TEMPFAIL;
            break;
        }
        it->linked = false; /* renamed: no tmp/ file left */
        it->placed = petrel_strdup(to);
        row.name = name;
        ret = storage_index_insert(dst->db, &row, it->header, it->header_len);
        if (ret == PETREL_STORAGE_OK)
            ret = insert_cache(dst->db, row.uid, it);
        it->new_uid = (uint32_t)next++;
        bytes += (int64_t)row.size;
        msgs++;
    }
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_set_meta(dst->db, "uidnext", next);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_commit(dst->db);
    else
        storage_index_rollback(dst->db);
    for (size_t i = 0; i < n; i++) {
        /* Rolled back: files renamed into new/ cur/ must not be adopted later
         * (their U= would be handed out again). */
        if (ret != PETREL_STORAGE_OK && items[i].placed != NULL) {
            unlink(items[i].placed);
            items[i].new_uid = 0;
        }
        free(items[i].placed);
        items[i].placed = NULL;
    }
    if (ret == PETREL_STORAGE_OK) {
        *uidv_r = (uint32_t)uidv;
        *bytes_r = bytes;
        *msgs_r = msgs;
    }
    return ret;
}

struct uidpair {
    uint32_t src, dst;
};

struct copy_run {
    struct storage_fstate *src, *dst;
    struct uidpair *pairs;
    size_t npairs;
    uint32_t uidv;
};

static int copy_batch(struct copy_run *c, const uint32_t *uids, size_t n)
{
    struct copy_item *items = petrel_calloc(n, sizeof(*items));
    size_t count = 0;
    int64_t bytes = 0, msgs = 0;
    int ret = storage_folder_lock(c->src);
    if (ret == PETREL_STORAGE_OK) {
        ret = copy_prepare(c->src, c->dst, uids, n, items, &count);
        storage_folder_unlock(c->src);
    }
    if (ret == PETREL_STORAGE_OK && (ret = storage_folder_lock(c->dst)) == PETREL_STORAGE_OK) {
        ret = copy_commit(c->dst, items, count, &c->uidv, &bytes, &msgs);
        storage_folder_unlock(c->dst);
    }
    size_t first = c->npairs;
    if (ret == PETREL_STORAGE_OK) {
        /* Only what was copied counts. */
        storage_quota_add(c->dst->acct, bytes, msgs);
        c->pairs = petrel_reallocarray(c->pairs, c->npairs + count + 1, sizeof(*c->pairs));
        for (size_t i = 0; i < count; i++)
            if (items[i].new_uid != 0)
                c->pairs[c->npairs++] = (struct uidpair){items[i].row.uid, items[i].new_uid};
        if ((ret = storage_maildir_fsync_dir(c->dst->dir, "cur")) == PETREL_STORAGE_OK)
            ret = storage_maildir_fsync_dir(c->dst->dir, "new");
        if (ret != PETREL_STORAGE_OK) {
            uint32_t *added = petrel_reallocarray(NULL, count + 1, sizeof(*added));
            for (size_t i = first; i < c->npairs; i++)
                added[i - first] = c->pairs[i].dst;
            withdraw(c->dst, added, c->npairs - first);
            free(added);
            c->npairs = first;
        }
    }
    for (size_t i = 0; i < n; i++)
        copy_item_clear(c->dst, &items[i]);
    free(items);
    return ret;
}

/* The source UIDs of uids (NULL = all) at the start. */
static int copy_list(struct storage_fstate *src, const struct petrel_storage_uid_set *uids,
                     uint32_t **list_r, size_t *n_r)
{
    struct storage_row *rows = NULL;
    size_t n = 0;
    int ret = storage_folder_lock(src);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = storage_index_load(src->db, uids, &rows, &n);
    storage_folder_unlock(src);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    uint32_t *list = petrel_reallocarray(NULL, n ? n : 1, sizeof(*list));
    for (size_t i = 0; i < n; i++)
        list[i] = rows[i].uid;
    storage_rows_free(rows, n);
    *list_r = list;
    *n_r = n;
    return PETREL_STORAGE_OK;
}

static int expunge_source(struct petrel_folder *folder, const struct uidpair *pairs, size_t n)
{
    struct petrel_storage_uid_range *ranges = petrel_reallocarray(NULL, n ? n : 1, sizeof(*ranges));
    for (size_t i = 0; i < n; i++)
        ranges[i] = (struct petrel_storage_uid_range){pairs[i].src, pairs[i].src};
    struct petrel_storage_uid_set set = {ranges, n};
    int ret = n > 0 ? storage_message_remove(folder, &set, false, NULL, NULL) : PETREL_STORAGE_OK;
    free(ranges);
    return ret;
}

static int copy_or_move(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                        const char *dest, bool move, petrel_storage_uidmap_fn *map, void *arg,
                        uint32_t *dest_uidvalidity_r)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1];
    struct copy_run c = {folder->fs, NULL, NULL, 0, 0};
    uint32_t *list = NULL;
    size_t nlist = 0;
    if (dest == NULL || !storage_foldername_valid(dest, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    int ret = storage_folder_get(c.src->acct, canon, &c.dst);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    ret = copy_list(c.src, uids, &list, &nlist);
    if (storage_test_fault != NULL)
        storage_test_fault("copy_listed"); /* tests change the source here */
    if (ret == PETREL_STORAGE_OK && nlist == 0 &&
        (ret = storage_folder_lock(c.dst)) == PETREL_STORAGE_OK) {
        int64_t v;
        ret = storage_index_meta(c.dst->db, "uidvalidity", 0, &v);
        c.uidv = (uint32_t)v;
        storage_folder_unlock(c.dst);
    }
    size_t moved = 0; /* pairs whose source is expunged */
    for (size_t i = 0; i < nlist && ret == PETREL_STORAGE_OK; i += COPY_BATCH) {
        ret = copy_batch(&c, list + i, nlist - i < COPY_BATCH ? nlist - i : COPY_BATCH);
        if (ret != PETREL_STORAGE_OK || !move)
            continue;
        ret = expunge_source(folder, c.pairs + moved, c.npairs - moved);
        if (ret != PETREL_STORAGE_OK) {
            /* Not in both folders: take this batch back out of dest. */
            uint32_t *added = petrel_reallocarray(NULL, c.npairs - moved + 1, sizeof(*added));
            for (size_t k = moved; k < c.npairs; k++)
                added[k - moved] = c.pairs[k].dst;
            withdraw(c.dst, added, c.npairs - moved);
            free(added);
            c.npairs = moved;
        }
        moved = c.npairs;
    }
    if (ret != PETREL_STORAGE_OK && !move && c.npairs > 0) {
        /* COPY is all or nothing: earlier batches go again. */
        uint32_t *added = petrel_reallocarray(NULL, c.npairs, sizeof(*added));
        for (size_t k = 0; k < c.npairs; k++)
            added[k] = c.pairs[k].dst;
        withdraw(c.dst, added, c.npairs);
        free(added);
        c.npairs = 0;
    }
    if (c.npairs > 0) {
        storage_notify(c.dst->acct, c.dst->name);
        storage_fts_note(c.dst->acct, c.dst->name);
    }
    storage_folder_put(c.dst);
    free(list);
    if (ret == PETREL_STORAGE_OK) {
        *dest_uidvalidity_r = c.uidv;
        for (size_t i = 0; map != NULL && i < c.npairs; i++)
            map(arg, c.pairs[i].src, c.pairs[i].dst);
    }
    free(c.pairs);
    return ret;
}

int storage_deliver_copy(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                         uint32_t *dest_uidvalidity_r)
{
    return copy_or_move(folder, uids, dest, false, map, arg, dest_uidvalidity_r);
}

int storage_deliver_move(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                         const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                         uint32_t *dest_uidvalidity_r)
{
    return copy_or_move(folder, uids, dest, true, map, arg, dest_uidvalidity_r);
}
