/* The per-folder index: one SQLite database in WAL mode in the folder's
 * Maildir holding UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, UID -> file, flags,
 * keywords, MODSEQ, dates, sizes, the header block and a key/value cache,
 * and the expunged UIDs with their MODSEQ. The files stay the truth: a lost
 * or corrupt index is rebuilt from them (rebuild.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "storage_private.h"

static const char schema_tx[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS msg(uid INTEGER PRIMARY KEY, base TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL, recent INTEGER NOT NULL, flags INTEGER NOT NULL,"
    " keywords TEXT NOT NULL DEFAULT '', modseq INTEGER NOT NULL, idate INTEGER NOT NULL,"
    " size INTEGER NOT NULL, header BLOB);"
    "CREATE INDEX IF NOT EXISTS msg_modseq ON msg(modseq);"
    "CREATE TABLE IF NOT EXISTS cache(uid INTEGER NOT NULL, key TEXT NOT NULL, value BLOB,"
    " PRIMARY KEY(uid, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS expunged(uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(modseq);"
    "CREATE TABLE IF NOT EXISTS expunge_time(modseq INTEGER PRIMARY KEY, at INTEGER NOT NULL);"
    "COMMIT;";

static int sql_error(sqlite3 *db, const char *what)
{
    int code = sqlite3_errcode(db);
    petrel_log(code == SQLITE_BUSY ? PETREL_LOG_WARNING : PETREL_LOG_ERROR, STORAGE_LOG,
               "index %s: %s", what, sqlite3_errmsg(db));
    return PETREL_STORAGE_TEMPFAIL;
}

int storage_index_exec(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_error(db, sql);
    return PETREL_STORAGE_OK;
}

/* BEGIN IMMEDIATE takes the write lock up front, so that the UIDNEXT read
 * inside the transaction cannot be read by another writer too. */
int storage_index_begin(sqlite3 *db) { return storage_index_exec(db, "BEGIN IMMEDIATE"); }

int storage_index_commit(sqlite3 *db)
{
    int ret = storage_index_exec(db, "COMMIT");
    if (ret != PETREL_STORAGE_OK)
        storage_index_rollback(db);
    return ret;
}

void storage_index_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sql_error(db, sql);
        return NULL;
    }
    return st;
}

/* Step a statement that returns no rows and finalize it. */
static int run(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_error(db, what);
    return PETREL_STORAGE_OK;
}

int storage_index_meta(sqlite3 *db, const char *key, int64_t dflt, int64_t *value_r)
{
    sqlite3_stmt *st = prepare(db, "SELECT value FROM meta WHERE key = ?");
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *value_r = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : dflt;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_error(db, key);
    return PETREL_STORAGE_OK;
}

int storage_index_set_meta(sqlite3 *db, const char *key, int64_t value)
{
    sqlite3_stmt *st = prepare(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, value);
    return run(db, st, "set meta");
}

int storage_index_next_modseq(sqlite3 *db, uint64_t *modseq_r)
{
    int64_t m;
    int ret = storage_index_meta(db, "highestmodseq", 1, &m);
    if (ret == PETREL_STORAGE_OK && (m < 0 || m == INT64_MAX))
        ret = PETREL_STORAGE_TEMPFAIL;
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_set_meta(db, "highestmodseq", m + 1);
    if (ret == PETREL_STORAGE_OK)
        *modseq_r = (uint64_t)m + 1;
    return ret;
}

static void base_of(const char *name, char *base, size_t size)
{
    size_t n = strcspn(name, ":");
    if (n >= size)
        n = size - 1;
    memcpy(base, name, n);
    base[n] = '\0';
}

int storage_index_insert(sqlite3 *db, const struct storage_row *row, const void *header,
                         size_t header_len)
{
    char base[STORAGE_MAX_FILENAME + 1];
    sqlite3_stmt *st = prepare(db, "INSERT INTO msg(uid, base, name, recent, flags, keywords,"
                                   " modseq, idate, size, header) VALUES(?,?,?,?,?,?,?,?,?,?)");
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    base_of(row->name, base, sizeof(base));
    sqlite3_bind_int64(st, 1, row->uid);
    sqlite3_bind_text(st, 2, base, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, row->recent);
    sqlite3_bind_int64(st, 5, row->flags);
    sqlite3_bind_text(st, 6, row->keywords != NULL ? row->keywords : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (int64_t)row->modseq);
    sqlite3_bind_int64(st, 8, row->idate);
    sqlite3_bind_int64(st, 9, (int64_t)row->size);
    if (header != NULL)
        sqlite3_bind_blob(st, 10, header, (int)header_len, SQLITE_STATIC);
    return run(db, st, "insert");
}

int storage_index_update(sqlite3 *db, const struct storage_row *row)
{
    char base[STORAGE_MAX_FILENAME + 1];
    sqlite3_stmt *st = prepare(db, "UPDATE msg SET base=?, name=?, recent=?, flags=?, keywords=?,"
                                   " modseq=? WHERE uid=?");
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    base_of(row->name, base, sizeof(base));
    sqlite3_bind_text(st, 1, base, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, row->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, row->recent);
    sqlite3_bind_int64(st, 4, row->flags);
    sqlite3_bind_text(st, 5, row->keywords != NULL ? row->keywords : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)row->modseq);
    sqlite3_bind_int64(st, 7, row->uid);
    return run(db, st, "update");
}

int storage_index_expunge(sqlite3 *db, uint32_t uid, uint64_t modseq)
{
    sqlite3_stmt *st = prepare(db, "DELETE FROM msg WHERE uid = ?");
    int ret;
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, uid);
    if ((ret = run(db, st, "expunge")) != PETREL_STORAGE_OK)
        return ret;
    if ((st = prepare(db, "DELETE FROM cache WHERE uid = ?")) == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, uid);
    if ((ret = run(db, st, "expunge cache")) != PETREL_STORAGE_OK)
        return ret;
    if ((st = prepare(db, "INSERT OR REPLACE INTO expunged(uid, modseq) VALUES(?, ?)")) == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, uid);
    sqlite3_bind_int64(st, 2, (int64_t)modseq);
    return run(db, st, "expunge record");
}

void storage_row_clear(struct storage_row *row)
{
    free(row->name);
    free(row->keywords);
    row->name = row->keywords = NULL;
}

void storage_rows_free(struct storage_row *rows, size_t count)
{
    for (size_t i = 0; i < count; i++)
        storage_row_clear(&rows[i]);
    free(rows);
}

#define ROW_COLUMNS "uid, name, recent, flags, keywords, modseq, idate, size"

static void row_read(sqlite3_stmt *st, struct storage_row *r)
{
    r->uid = (uint32_t)sqlite3_column_int64(st, 0);
    r->name = petrel_strdup((const char *)sqlite3_column_text(st, 1));
    r->recent = sqlite3_column_int(st, 2) != 0;
    r->flags = (uint32_t)sqlite3_column_int64(st, 3);
    r->keywords = petrel_strdup((const char *)sqlite3_column_text(st, 4));
    r->modseq = (uint64_t)sqlite3_column_int64(st, 5);
    r->idate = sqlite3_column_int64(st, 6);
    r->size = (uint64_t)sqlite3_column_int64(st, 7);
}

int storage_index_get(struct storage_fstate *fs, uint32_t uid, struct storage_row *row)
{
    static const char sql[] = "SELECT " ROW_COLUMNS " FROM msg WHERE uid = ?";
    if (fs->get_st == NULL && sqlite3_prepare_v3(fs->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                 &fs->get_st, NULL) != SQLITE_OK) {
        fs->get_st = NULL;
        return sql_error(fs->db, sql);
    }
    sqlite3_stmt *st = fs->get_st;
    int ret = PETREL_STORAGE_NOT_FOUND;
    sqlite3_bind_int64(st, 1, uid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row_read(st, row);
        ret = PETREL_STORAGE_OK;
    } else if (rc != SQLITE_DONE) {
        ret = sql_error(fs->db, "get");
    }
    sqlite3_reset(st); /* ends its read of the index */
    return ret;
}

/* Before db is closed: a statement left would keep it open. */
static void forget_statements(struct storage_fstate *fs)
{
    sqlite3_finalize(fs->get_st);
    fs->get_st = NULL;
}

static int range_cmp(const void *a, const void *b)
{
    const struct petrel_storage_uid_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorted, merged copy of a set, so rows come out once each, in UID order. */
static size_t normalise(const struct petrel_storage_uid_set *uids,
                        struct petrel_storage_uid_range **out)
{
    size_t n = 0;
    struct petrel_storage_uid_range *r =
        petrel_reallocarray(NULL, uids->count ? uids->count : 1, sizeof(*r));
    for (size_t i = 0; i < uids->count; i++) {
        uint32_t lo = uids->ranges[i].lo, hi = uids->ranges[i].hi;
        r[n].lo = lo < hi ? lo : hi;
        r[n].hi = lo < hi ? hi : lo;
        n++;
    }
    qsort(r, n, sizeof(*r), range_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && r[i].lo <= r[m - 1].hi + 1ull) {
            if (r[i].hi > r[m - 1].hi)
                r[m - 1].hi = r[i].hi;
        } else {
            r[m++] = r[i];
        }
    }
    *out = r;
    return m;
}

int storage_index_load(sqlite3 *db, const struct petrel_storage_uid_set *uids,
                       struct storage_row **rows_r, size_t *count_r)
{
    struct petrel_storage_uid_range all = {1, UINT32_MAX}, *ranges = NULL;
    size_t nr = uids != NULL ? normalise(uids, &ranges) : 1, n = 0, cap = 0;
    struct storage_row *rows = NULL;
    int ret = PETREL_STORAGE_OK;
    sqlite3_stmt *st = prepare(db, "SELECT " ROW_COLUMNS " FROM msg WHERE uid BETWEEN ? AND ?"
                                   " ORDER BY uid");
    if (st == NULL) {
        free(ranges);
        return PETREL_STORAGE_TEMPFAIL;
    }
    for (size_t i = 0; i < nr && ret == PETREL_STORAGE_OK; i++) {
        const struct petrel_storage_uid_range *r = ranges != NULL ? &ranges[i] : &all;
        int rc;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, r->lo);
        sqlite3_bind_int64(st, 2, r->hi);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                rows = petrel_reallocarray(rows, cap, sizeof(*rows));
            }
            row_read(st, &rows[n++]);
        }
        if (rc != SQLITE_DONE)
            ret = sql_error(db, "load");
    }
    sqlite3_finalize(st);
    free(ranges);
    if (ret != PETREL_STORAGE_OK) {
        storage_rows_free(rows, n);
        return ret;
    }
    *rows_r = rows;
    *count_r = n;
    return PETREL_STORAGE_OK;
}

int storage_index_load_since(sqlite3 *db, uint64_t modseq, struct storage_row **rows_r,
                             size_t *count_r)
{
    struct storage_row *rows = NULL;
    size_t n = 0, cap = 0;
    int rc;
    sqlite3_stmt *st = prepare(db, "SELECT " ROW_COLUMNS " FROM msg WHERE modseq > ? ORDER BY uid");
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, (int64_t)modseq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rows = petrel_reallocarray(rows, cap, sizeof(*rows));
        }
        row_read(st, &rows[n++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        storage_rows_free(rows, n);
        return sql_error(db, "changes");
    }
    *rows_r = rows;
    *count_r = n;
    return PETREL_STORAGE_OK;
}

int storage_index_status(sqlite3 *db, struct petrel_storage_status *s)
{
    sqlite3_stmt *st = prepare(db, "SELECT count(*), total(recent), total((flags & 1) = 0),"
                                   " total(size) FROM msg");
    if (st == NULL)
        return PETREL_STORAGE_TEMPFAIL;
    memset(s, 0, sizeof(*s));
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return sql_error(db, "status");
    }
    s->messages = (uint32_t)sqlite3_column_int64(st, 0);
    s->recent = (uint32_t)sqlite3_column_double(st, 1);
    s->unseen = (uint32_t)sqlite3_column_double(st, 2);
    s->size = (uint64_t)sqlite3_column_double(st, 3);
    sqlite3_finalize(st);
    int64_t next, v, hm;
    int ret = storage_index_meta(db, "uidnext", 1, &next);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_meta(db, "uidvalidity", 0, &v);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_meta(db, "highestmodseq", 1, &hm);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    s->uidnext = (uint32_t)next;
    s->uidvalidity = (uint32_t)v;
    s->highestmodseq = (uint64_t)hm;
    return PETREL_STORAGE_OK;
}

/* --- the uidvalidity file: UIDVALIDITY and a UID ceiling outside the index,
 * so that a rebuilt index keeps UIDVALIDITY and never hands out a UID that
 * was used before (every assigned UID is below the durable ceiling). */

int storage_index_read_uidv(const char *dir, uint32_t *uidvalidity_r, uint32_t *ceiling_r)
{
    char path[PATH_MAX], buf[64];
    unsigned long v, c;
    *uidvalidity_r = *ceiling_r = 0;
    if (!petrel_snprintf(path, sizeof(path), "%s/" STORAGE_UIDV_FILE, dir))
        return PETREL_STORAGE_TEMPFAIL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PETREL_STORAGE_NOT_FOUND;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return PETREL_STORAGE_NOT_FOUND;
    buf[n] = '\0';
    if (sscanf(buf, "V%lu C%lu", &v, &c) != 2 || v == 0 || v > UINT32_MAX || c > UINT32_MAX)
        return PETREL_STORAGE_NOT_FOUND;
    *uidvalidity_r = (uint32_t)v;
    *ceiling_r = (uint32_t)c;
    return PETREL_STORAGE_OK;
}

int storage_index_write_uidv(const char *dir, uint32_t uidvalidity, uint32_t ceiling)
{
    static atomic_uint seq;
    char path[PATH_MAX], tmp[PATH_MAX], buf[64];
    if (!petrel_snprintf(path, sizeof(path), "%s/" STORAGE_UIDV_FILE, dir) ||
        !petrel_snprintf(tmp, sizeof(tmp), "%s/tmp/uidv.%ld.%u", dir, (long)getpid(),
                         atomic_fetch_add(&seq, 1)))
        return PETREL_STORAGE_TEMPFAIL;
    int len = snprintf(buf, sizeof(buf), "V%" PRIu32 " C%" PRIu32 "\n", uidvalidity, ceiling);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok =
        fd >= 0 && write(fd, buf, (size_t)len) == len && (!storage_env.fsync || fsync(fd) == 0);
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "write %s: %s", path, strerror(errno));
        unlink(tmp);
        return PETREL_STORAGE_TEMPFAIL;
    }
    return storage_maildir_fsync_dir(dir, "");
}

int storage_index_reserve(struct storage_fstate *fs, uint32_t uid)
{
    if (uid < fs->uid_ceiling)
        return PETREL_STORAGE_OK;
    if (uid > UINT32_MAX - STORAGE_UID_RESERVE)
        return PETREL_STORAGE_TOO_LARGE; /* UIDs exhausted: needs a new UIDVALIDITY */
    int64_t v;
    int ret = storage_index_meta(fs->db, "uidvalidity", 0, &v);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_write_uidv(fs->dir, (uint32_t)v, uid + STORAGE_UID_RESERVE);
    if (ret == PETREL_STORAGE_OK)
        fs->uid_ceiling = uid + STORAGE_UID_RESERVE;
    return ret;
}

/* --- opening --- */

static const char *const sync_pragmas[] = {
    "PRAGMA synchronous=OFF",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA synchronous=FULL",
};

void storage_index_cache_sync(sqlite3 *db, bool cache)
{
    /* A cache row can be made again, so its commit need not wait for an
     * fsync: WAL with synchronous=NORMAL stays consistent, and the next
     * FULL commit's fsync of the WAL carries the row too. One fsync per
     * row cost a first SORT over 100,000 messages 30 s. */
    if (storage_env.index_sync == STORAGE_SYNC_FULL)
        sqlite3_exec(db, sync_pragmas[cache ? STORAGE_SYNC_NORMAL : STORAGE_SYNC_FULL], NULL, NULL,
                     NULL);
}

/* PRAGMA journal_mode and the first schema statements can meet another
 * process opening the same new database: SQLite then answers SQLITE_BUSY
 * without calling the busy handler (the journal mode change needs an
 * exclusive lock). Retry those for as long as the busy timeout allows. */
int storage_index_exec_retry(sqlite3 *db, const char *sql)
{
    int rc;
    for (unsigned waited = 0;; waited += 2) {
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        if (waited >= STORAGE_BUSY_MS)
            break;
        sqlite3_sleep(2);
    }
    return rc;
}

void storage_configure_index_mmap(long long bytes) { storage_env.index_mmap = bytes; }

/* Reading a 100,000-message index by pread cost a third of a SORT or
 * SEARCH ALL; mapped, its pages come from the page cache directly. SQLite
 * still writes with write(), so only reads go through the map. */
static int set_mmap(sqlite3 *db)
{
    char sql[64];
    petrel_snprintf(sql, sizeof(sql), "PRAGMA mmap_size=%lld", storage_env.index_mmap);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int db_open(const char *path, sqlite3 **db_r)
{
    sqlite3 *db = NULL;
    /* One connection per folder per process, used under the folder mutex. */
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_PRIVATECACHE,
                             NULL);
    if (rc != SQLITE_OK) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "open %s: %s", path,
                   db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, STORAGE_BUSY_MS);
    /* The schema goes in under the write lock (BEGIN IMMEDIATE waits in
     * the busy handler), never as a read upgraded to a write. */
    if ((rc = storage_index_exec_retry(db, "PRAGMA journal_mode=WAL")) != SQLITE_OK ||
        (rc = sqlite3_exec(db, sync_pragmas[storage_env.index_sync], NULL, NULL, NULL)) !=
            SQLITE_OK ||
        (rc = set_mmap(db)) != SQLITE_OK ||
        (rc = storage_index_exec_retry(db, schema_tx)) != SQLITE_OK) {
        rc = sqlite3_extended_errcode(db);
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "open %s: %s (%d)", path, sqlite3_errmsg(db), rc);
        sqlite3_close(db);
        return rc != SQLITE_OK ? rc : SQLITE_ERROR;
    }
    *db_r = db;
    return SQLITE_OK;
}

/* Move a broken index (and its WAL) aside: kept for a post-mortem. */
static void move_aside(const char *path)
{
    char to[PATH_MAX + 64], side[PATH_MAX + 8];
    if (petrel_snprintf(to, sizeof(to), "%s.broken-%lld", path, (long long)time(NULL)))
        rename(path, to);
    static const char *const ext[] = {"-wal", "-shm"};
    for (size_t i = 0; i < 2; i++)
        if (petrel_snprintf(side, sizeof(side), "%s%s", path, ext[i]))
            unlink(side);
}

/* A new index: UIDVALIDITY from the uidvalidity file when there is one,
 * then every file adopted. */
static int init_index(struct storage_fstate *fs)
{
    uint32_t v, ceiling;
    bool changed;
    int ret = storage_index_read_uidv(fs->dir, &v, &ceiling);
    if (ret != PETREL_STORAGE_OK) {
        v = (uint32_t)time(NULL);
        ceiling = 1;
    }
    fs->uid_ceiling = ceiling;
    if ((ret = storage_index_set_meta(fs->db, "uidvalidity", v)) != PETREL_STORAGE_OK ||
        (ret = storage_index_set_meta(fs->db, "uidnext", ceiling > 0 ? ceiling : 1)) !=
            PETREL_STORAGE_OK)
        return ret;
    /* MODSEQ must not go back either: start past any value a client could
     * hold (microseconds since the epoch) and remember that expunges before
     * this point are unknown. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t floor = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if ((ret = storage_index_set_meta(fs->db, "highestmodseq", floor)) != PETREL_STORAGE_OK ||
        (ret = storage_index_set_meta(fs->db, "vanished_floor", floor)) != PETREL_STORAGE_OK)
        return ret;
    return storage_rebuild_scan(fs, true, &changed);
}

static int open_checked(struct storage_fstate *fs, const char *path, bool *broken_r)
{
    struct stat sb;
    bool existed = stat(path, &sb) == 0 && sb.st_size > 0;
    int rc = db_open(path, &fs->db), ret;
    *broken_r = false;
    if (rc != SQLITE_OK) {
        *broken_r = (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT;
        return PETREL_STORAGE_TEMPFAIL;
    }
    int64_t uidv;
    if ((ret = storage_index_begin(fs->db)) != PETREL_STORAGE_OK ||
        (ret = storage_index_meta(fs->db, "uidvalidity", 0, &uidv)) != PETREL_STORAGE_OK)
        goto fail;
    if (uidv == 0) {
        if (existed)
            petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "%s: index without state, rebuilding",
                       fs->dir);
        if ((ret = init_index(fs)) != PETREL_STORAGE_OK)
            goto fail;
    } else {
        uint32_t v, c;
        if (storage_index_read_uidv(fs->dir, &v, &c) == PETREL_STORAGE_OK && v == (uint32_t)uidv)
            fs->uid_ceiling = c;
        else
            fs->uid_ceiling = 0; /* rewritten at the next UID */
        rc = sqlite3_exec(fs->db, "SELECT count(*) FROM msg", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            *broken_r = true;
            ret = PETREL_STORAGE_TEMPFAIL;
            goto fail;
        }
    }
    if ((ret = storage_index_commit(fs->db)) != PETREL_STORAGE_OK)
        goto fail;
    return PETREL_STORAGE_OK;
fail : {
    int code = sqlite3_errcode(fs->db) & 0xff;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        *broken_r = true;
}
    storage_index_rollback(fs->db);
    forget_statements(fs);
    sqlite3_close(fs->db);
    fs->db = NULL;
    return ret;
}

int storage_index_open(struct storage_fstate *fs)
{
    char path[PATH_MAX];
    bool broken;
    if (!petrel_snprintf(path, sizeof(path), "%s/" STORAGE_INDEX_FILE, fs->dir))
        return PETREL_STORAGE_TEMPFAIL;
    int ret = open_checked(fs, path, &broken);
    if (ret != PETREL_STORAGE_OK && broken) {
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG,
                   "%s: index corrupt, moved aside and rebuilt from the files", path);
        move_aside(path);
        ret = open_checked(fs, path, &broken);
    }
    if (ret == PETREL_STORAGE_OK)
        fs->scanned = false;
    return ret;
}

void storage_index_close(struct storage_fstate *fs)
{
    forget_statements(fs);
    if (fs->db != NULL)
        sqlite3_close(fs->db);
    fs->db = NULL;
}
