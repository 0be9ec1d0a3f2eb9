/* The full-text index of a folder (docs/fts.md): an SQLite FTS5 table
 * with the trigram tokenizer over the texts of petrel_mimetext, already
 * folded, in its own file beside the folder's index. It is never the
 * source of truth: a missing, damaged or lagging index is (re)built from
 * the files before it answers, and any doubt makes it answer UNSUPPORTED
 * so that the caller scans.
 *
 * One row per text: rowid = uid << FTS_SEQ_BITS | FTS_BODY_BIT for a
 * body text | its number in the message, so the rows of a message are one
 * rowid range (deleted at once), a match never spans two texts, and a
 * BODY query keeps its rows by rowid alone (a filter on a column reads
 * the content table for every match: 25 times slower for a common word).
 * field is the lower-cased name of a header field of the message, '' for
 * a body text. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/mimetext.h>

#include "storage_private.h"

#define FTS_FILE "petrel-fts.sqlite"
#define FTS_SEQ_BITS 20
#define FTS_MAX_SEQ ((1u << FTS_SEQ_BITS) - 1u)
#define FTS_BODY_BIT (1u << (FTS_SEQ_BITS - 1))
/* Messages indexed in one transaction, so a long catch-up never holds the
 * write lock for long. */
#define FTS_BATCH 256u
/* Bumped when the texts change (extractor or layout): an index of another
 * version is rebuilt. */
#define FTS_VERSION 2

static const char fts_schema[] =
    "CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(text, field UNINDEXED,"
    " tokenize = 'trigram case_sensitive 1');"
    "CREATE TABLE IF NOT EXISTS done(uid INTEGER PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

static void fts_path(const struct storage_fstate *fs, char *out, size_t size)
{
    if (!petrel_snprintf(out, size, "%s/" FTS_FILE, fs->dir))
        out[0] = '\0';
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, STORAGE_BUSY_MS);
    /* WAL with synchronous=NORMAL loses the last changes on a crash but is
     * never damaged by one; what is lost is indexed again. */
    if (storage_index_exec_retry(db, "PRAGMA journal_mode=WAL") != SQLITE_OK ||
        storage_index_exec(db, "PRAGMA synchronous=NORMAL") != PETREL_STORAGE_OK ||
        storage_index_exec_retry(db, fts_schema) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static void fts_remove(const char *path)
{
    static const char *const ext[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        char p[PATH_MAX + 40];
        if (petrel_snprintf(p, sizeof(p), "%s%s", path, ext[i]))
            unlink(p);
    }
}

/* Whether db is an index of this version for this UIDVALIDITY (a new,
 * empty one is made so). */
static bool fts_matches(sqlite3 *db, int64_t uidvalidity)
{
    int64_t v, u;
    if (storage_index_meta(db, "version", -1, &v) != PETREL_STORAGE_OK ||
        storage_index_meta(db, "uidvalidity", -1, &u) != PETREL_STORAGE_OK)
        return false;
    if (v == -1 && u == -1)
        return storage_index_set_meta(db, "version", FTS_VERSION) == PETREL_STORAGE_OK &&
               storage_index_set_meta(db, "uidvalidity", uidvalidity) == PETREL_STORAGE_OK;
    return v == FTS_VERSION && u == uidvalidity;
}

/* The folder's index file, opened; removed and created again when it
 * cannot be opened or its version or UIDVALIDITY is not the folder's. */
static sqlite3 *fts_open(struct storage_fstate *fs, int64_t uidvalidity)
{
    char path[PATH_MAX + 32];
    fts_path(fs, path, sizeof(path));
    if (path[0] == '\0')
        return NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        sqlite3 *db = open_db(path);
        if (db != NULL && fts_matches(db, uidvalidity))
            return db;
        sqlite3_close(db);
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "full-text index %s made again", path);
        fts_remove(path);
    }
    return NULL;
}

/* ---- indexing one message ---- */

struct msg_rows {
    sqlite3_stmt *ins;
    uint32_t uid;
    uint32_t seq;
    struct petrel_buf text; /* the current text, pieces joined */
    bool failed;
};

static bool add_row(void *ctx, const struct petrel_mimetext_info *info, const char *data,
                    size_t len, bool last)
{
    struct msg_rows *r = ctx;
    petrel_buf_append(&r->text, data, len);
    if (!last)
        return true;
    if (r->seq >= FTS_BODY_BIT) {
        r->failed = true; /* more texts than rowids: the index cannot hold it */
        return false;
    }
    char field[256] = "";
    if (info->kind == PETREL_MIMETEXT_FIELD && info->field != NULL) {
        size_t n = strlen(info->field);
        if (n >= sizeof(field))
            n = sizeof(field) - 1;
        for (size_t i = 0; i < n; i++)
            field[i] = (char)((info->field[i] >= 'A' && info->field[i] <= 'Z') ? info->field[i] + 32
                                                                               : info->field[i]);
        field[n] = '\0';
    }
    sqlite3_reset(r->ins);
    uint32_t body = info->kind == PETREL_MIMETEXT_BODY ? FTS_BODY_BIT : 0;
    sqlite3_bind_int64(r->ins, 1, ((int64_t)r->uid << FTS_SEQ_BITS) | body | r->seq++);
    sqlite3_bind_text(r->ins, 2, petrel_buf_head(&r->text), (int)r->text.len, SQLITE_STATIC);
    sqlite3_bind_text(r->ins, 3, field, -1, SQLITE_STATIC);
    if (sqlite3_step(r->ins) != SQLITE_DONE)
        r->failed = true;
    petrel_buf_reset(&r->text);
    return !r->failed;
}

/* The statements of one catch-up, prepared once. */
struct fts_stmts {
    sqlite3_stmt *ins;  /* a text */
    sqlite3_stmt *done; /* a message indexed */
};

/* 1: indexed; 0: the message is gone; -1: failed. */
static int index_message(const struct fts_stmts *sq, struct petrel_folder *folder, uint32_t uid)
{
    struct petrel_buf hdr;
    petrel_buf_init(&hdr, PETREL_STORAGE_MAX_HEADER + 1);
    int fd = -1;
    uint64_t size;
    int ret = storage_message_fetch_header(folder, uid, &hdr);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_message_fetch_fd(folder, uid, &fd, &size);
    if (ret != PETREL_STORAGE_OK) {
        petrel_buf_free(&hdr);
        return ret == PETREL_STORAGE_NOT_FOUND ? 0 : -1;
    }
    struct msg_rows r = {.ins = sq->ins, .uid = uid};
    /* A text is at most PETREL_MIMETEXT_MAX_TEXT bytes. */
    petrel_buf_init(&r.text, PETREL_MIMETEXT_MAX_TEXT + 1);
    /* The header as IMAP SEARCH reads it: the cached block. */
    petrel_mimetext_header(petrel_buf_head(&hdr), hdr.len, add_row, &r);
    if (!r.failed && petrel_mimetext_body(fd, petrel_buf_head(&hdr), hdr.len, add_row, &r) != 0)
        r.failed = true;
    close(fd);
    petrel_buf_free(&r.text);
    petrel_buf_free(&hdr);
    if (r.failed)
        return -1;
    sqlite3_reset(sq->done);
    sqlite3_bind_int64(sq->done, 1, uid);
    return sqlite3_step(sq->done) == SQLITE_DONE ? 1 : -1;
}

static int delete_message(sqlite3 *db, uint32_t uid)
{
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(db, "DELETE FROM texts WHERE rowid BETWEEN ? AND ?", -1, &st,
                                NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, (int64_t)uid << FTS_SEQ_BITS);
        sqlite3_bind_int64(st, 2, ((int64_t)uid << FTS_SEQ_BITS) | FTS_MAX_SEQ);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    ok = ok && sqlite3_prepare_v2(db, "DELETE FROM done WHERE uid = ?", -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_int64(st, 1, uid);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    return ok ? 0 : -1;
}

/* ---- catching up with the folder ---- */

struct uid_list {
    uint32_t *v;
    size_t n, cap;
};

static void uid_push(struct uid_list *l, uint32_t uid)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = petrel_reallocarray(l->v, l->cap, sizeof(*l->v));
    }
    l->v[l->n++] = uid;
}

static int select_uids(sqlite3 *db, const char *sql, struct uid_list *l)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        uid_push(l, (uint32_t)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The folder's UIDVALIDITY and HIGHESTMODSEQ, and (l not NULL) its UIDs,
 * under its lock. */
static int folder_state(struct storage_fstate *fs, struct uid_list *l, int64_t *uidv_r,
                        int64_t *modseq_r)
{
    int ret = storage_folder_lock(fs);
    if (ret != PETREL_STORAGE_OK)
        return -1;
    int r = storage_index_meta(fs->db, "uidvalidity", 0, uidv_r) == PETREL_STORAGE_OK &&
                    storage_index_meta(fs->db, "highestmodseq", 0, modseq_r) == PETREL_STORAGE_OK
                ? (l != NULL ? select_uids(fs->db, "SELECT uid FROM msg ORDER BY uid", l) : 0)
                : -1;
    storage_folder_unlock(fs);
    return r;
}

/* Index what the folder has and the index lacks, drop what it no longer
 * has: both UID lists are sorted, one merge finds the two differences. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1: stopped at the deadline (what was committed stays, the next call
 * goes on from there). */
static int catch_up(sqlite3 *db, struct petrel_folder *folder, const struct uid_list *have,
                    int64_t deadline)
{
    struct uid_list done = {0}, add = {0}, del = {0};
    int ret = select_uids(db, "SELECT uid FROM done ORDER BY uid", &done);
    size_t i = 0, k = 0;
    while (ret == 0 && (i < have->n || k < done.n)) {
        if (k == done.n || (i < have->n && have->v[i] < done.v[k]))
            uid_push(&add, have->v[i++]);
        else if (i == have->n || done.v[k] < have->v[i])
            uid_push(&del, done.v[k++]);
        else
            i++, k++;
    }
    struct fts_stmts sq = {NULL, NULL};
    if (ret == 0 && add.n > 0 &&
        (sqlite3_prepare_v2(db, "INSERT INTO texts(rowid, text, field) VALUES(?, ?, ?)", -1,
                            &sq.ins, NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(db, "INSERT INTO done(uid) VALUES(?)", -1, &sq.done, NULL) !=
             SQLITE_OK))
        ret = -1;
    size_t a = 0, d = 0;
    while (ret == 0 && (a < add.n || d < del.n)) {
        if (storage_index_begin(db) != PETREL_STORAGE_OK) {
            ret = -1;
            break;
        }
        for (unsigned b = 0; ret == 0 && b < FTS_BATCH && d < del.n; b++)
            ret = delete_message(db, del.v[d++]);
        /* A UID not in done has no rows: each message's rows and its done
         * mark are written in one transaction. */
        for (unsigned b = 0; ret == 0 && b < FTS_BATCH && a < add.n; b++)
            if (index_message(&sq, folder, add.v[a++]) < 0)
                ret = -1;
        if (ret == 0)
            ret = storage_index_commit(db) == PETREL_STORAGE_OK ? 0 : -1;
        else
            storage_index_rollback(db);
        if (ret == 0 && (a < add.n || d < del.n) && now_ms() >= deadline) {
            petrel_log(PETREL_LOG_INFO, STORAGE_LOG,
                       "%s: full-text index: %zu of %zu messages left to index after the time"
                       " allowed; a search scans until they are",
                       folder->fs->dir, add.n - a, add.n);
            ret = 1;
        }
    }
    sqlite3_finalize(sq.ins);
    sqlite3_finalize(sq.done);
    free(done.v);
    free(add.v);
    free(del.v);
    return ret;
}

/* The folder's index, brought up to date; NULL when it cannot be. Every
 * message added or removed takes a new MODSEQ, so an index synced at the
 * folder's HIGHESTMODSEQ needs no catch-up: a search then reads no UID
 * list. A catch-up stops after fts_catchup_ms (a first search over a
 * folder of 100,000 new messages would take minutes): that search scans,
 * as do the others of the same command (those starting within
 * fts_catchup_ms of the stop), and a later one goes on. */
static bool cut_recently(struct storage_fstate *fs)
{
    if (storage_folder_lock(fs) != PETREL_STORAGE_OK)
        return true;
    bool recent =
        fs->fts_cut_ms != 0 && now_ms() - fs->fts_cut_ms < (int64_t)storage_env.fts_catchup_ms;
    storage_folder_unlock(fs);
    return recent;
}

static void mark_cut(struct storage_fstate *fs)
{
    if (storage_folder_lock(fs) == PETREL_STORAGE_OK) {
        fs->fts_cut_ms = now_ms();
        storage_folder_unlock(fs);
    }
}

/* 0: the index is current (*db_r open); 1: stopped at the deadline, what
 * was indexed kept; -1: it cannot be. A search does not try again right
 * after another was stopped. */
static int bring_up(struct petrel_folder *folder, int64_t deadline, bool search, sqlite3 **db_r)
{
    struct uid_list have = {0};
    int64_t uidv = 0, modseq = 0, synced = -1, uidv_now = 0, modseq_now = 0;
    sqlite3 *db = NULL;
    *db_r = NULL;
    if (folder_state(folder->fs, NULL, &uidv, &modseq) != 0 ||
        (db = fts_open(folder->fs, uidv)) == NULL)
        return -1;
    if (storage_index_meta(db, "synced_modseq", -1, &synced) == PETREL_STORAGE_OK &&
        synced == modseq) {
        *db_r = db;
        return 0;
    }
    /* The MODSEQ read before the UIDs: a change between the two is caught
     * up again next time, never missed. */
    int r = -1;
    if (!(search && cut_recently(folder->fs)) &&
        folder_state(folder->fs, &have, &uidv_now, &modseq_now) == 0 && uidv_now == uidv &&
        (r = catch_up(db, folder, &have, deadline)) == 0 &&
        storage_index_set_meta(db, "synced_modseq", modseq) != PETREL_STORAGE_OK)
        r = -1;
    free(have.v);
    if (r == 0)
        *db_r = db;
    else
        sqlite3_close(db);
    return r;
}

static sqlite3 *fts_ready(struct petrel_folder *folder)
{
    sqlite3 *db = NULL;
    if (storage_env.fts && bring_up(folder, now_ms() + storage_env.fts_catchup_ms, true, &db) == 1)
        mark_cut(folder->fs);
    return db;
}

int storage_fts_update(struct petrel_folder *folder, int64_t deadline)
{
    sqlite3 *db = NULL;
    int r = storage_env.fts ? bring_up(folder, deadline, false, &db) : 0;
    sqlite3_close(db);
    return r;
}

void storage_configure_fts(bool on) { storage_env.fts = on; }

void storage_configure_fts_catchup(unsigned ms) { storage_env.fts_catchup_ms = ms; }

/* ---- searching ---- */

/* At least 3 characters of valid UTF-8 (the trigram's unit), no NUL. */
static bool needle_usable(const char *s, size_t len)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        unsigned char b = (unsigned char)s[i];
        size_t k = b >= 0x01 && b < 0x80    ? 1
                   : b >= 0xC2 && b <= 0xDF ? 2
                   : b >= 0xE0 && b <= 0xEF ? 3
                   : b >= 0xF0 && b <= 0xF4 ? 4
                                            : 0;
        if (k == 0 || i + k > len)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((unsigned char)s[i + j] < 0x80 || (unsigned char)s[i + j] > 0xBF)
                return false;
        i += k;
    }
    return chars >= 3;
}

/* The needle as one FTS5 string: a phrase of its trigrams, which is a
 * substring test; '"' doubled, every other character literal. */
static char *fts_phrase(const char *s, size_t len)
{
    char *q = petrel_malloc(2 * len + 3);
    size_t n = 0;
    q[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            q[n++] = '"';
        q[n++] = s[i];
    }
    q[n++] = '"';
    q[n] = '\0';
    return q;
}

int storage_fts_search(struct petrel_folder *folder, enum petrel_storage_fts_where where,
                       const char *field, const char *needle, size_t len,
                       petrel_storage_uid_fn *match, void *arg)
{
    if (!storage_env.fts || !needle_usable(needle, len) ||
        (where == PETREL_STORAGE_FTS_FIELD && (field == NULL || field[0] == '\0')))
        return PETREL_STORAGE_UNSUPPORTED;
    sqlite3 *db = fts_ready(folder);
    if (db == NULL)
        return PETREL_STORAGE_UNSUPPORTED;
    static const char *const sql[] = {
        [PETREL_STORAGE_FTS_FIELD] = ("SELECT rowid FROM texts WHERE texts MATCH ?1"
                                      " AND field = lower(?2) ORDER BY rowid"),
        [PETREL_STORAGE_FTS_BODY] =
            "SELECT rowid FROM texts WHERE texts MATCH ?1 AND (rowid & ?3) != 0 ORDER BY rowid",
        [PETREL_STORAGE_FTS_TEXT] = "SELECT rowid FROM texts WHERE texts MATCH ?1 ORDER BY rowid",
    };
    sqlite3_stmt *st;
    char *phrase = fts_phrase(needle, len);
    int ret = PETREL_STORAGE_UNSUPPORTED;
    if ((unsigned)where <= PETREL_STORAGE_FTS_TEXT &&
        sqlite3_prepare_v2(db, sql[where], -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, phrase, -1, SQLITE_STATIC);
        if (where == PETREL_STORAGE_FTS_FIELD)
            sqlite3_bind_text(st, 2, field, -1, SQLITE_STATIC);
        if (where == PETREL_STORAGE_FTS_BODY)
            sqlite3_bind_int64(st, 3, FTS_BODY_BIT);
        int rc;
        uint32_t last = 0;
        bool any = false;
        /* Collected first: the callback may call the storage. */
        struct uid_list uids = {0};
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            uint32_t uid = (uint32_t)(sqlite3_column_int64(st, 0) >> FTS_SEQ_BITS);
            if (!any || uid != last)
                uid_push(&uids, uid);
            last = uid;
            any = true;
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        db = NULL;
        if (rc == SQLITE_DONE) {
            for (size_t i = 0; i < uids.n; i++)
                match(arg, uids.v[i]);
            ret = PETREL_STORAGE_OK;
        }
        free(uids.v);
    }
    sqlite3_close(db);
    free(phrase);
    return ret;
}
