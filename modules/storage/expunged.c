/* The expunged window: each folder's index remembers expunged UIDs with
 * their MODSEQ so that a QRESYNC client learns exactly what vanished
 * (RFC 7162), but only for expunged_days and at most expunged_max rows.
 * Pruning raises the vanished_floor meta to the newest MODSEQ it dropped:
 * a client whose MODSEQ is older than that is answered with every missing
 * UID below UIDNEXT (message.c), which the RFC allows. docs/imap-sync.md. */
#include <sqlite3.h>

#include "storage_private.h"

/* One expunge step's MODSEQ and when it happened (the expunged rows of a
 * step share the MODSEQ), so that age can be judged per step. */
int storage_expunged_record(sqlite3 *db, uint64_t modseq, int64_t now)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO expunge_time(modseq, at) VALUES(?, ?)", -1,
                           &st, NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, (int64_t)modseq);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PETREL_STORAGE_OK : PETREL_STORAGE_TEMPFAIL;
}

/* The first column of a one-row query with one integer parameter, or 0. */
static int query_int(sqlite3 *db, const char *sql, int64_t param, int64_t *value_r)
{
    sqlite3_stmt *st;
    *value_r = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, param);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *value_r = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? PETREL_STORAGE_OK : PETREL_STORAGE_TEMPFAIL;
}

static int delete_upto(sqlite3 *db, const char *sql, int64_t cut)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return PETREL_STORAGE_TEMPFAIL;
    sqlite3_bind_int64(st, 1, cut);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? PETREL_STORAGE_OK : PETREL_STORAGE_TEMPFAIL;
}

int storage_expunged_prune(sqlite3 *db, int64_t now)
{
    int64_t by_age, by_count, floor;
    int ret = query_int(db, "SELECT MAX(modseq) FROM expunge_time WHERE at < ?",
                        now - (int64_t)storage_env.expunged_days * 86400, &by_age);
    if (ret == PETREL_STORAGE_OK)
        /* The newest row beyond the max: it and everything older go. */
        ret = query_int(db, "SELECT modseq FROM expunged ORDER BY modseq DESC LIMIT 1 OFFSET ?",
                        (int64_t)storage_env.expunged_max, &by_count);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    int64_t cut = by_age > by_count ? by_age : by_count;
    if (cut <= 0)
        return PETREL_STORAGE_OK;
    if ((ret = delete_upto(db, "DELETE FROM expunged WHERE modseq <= ?", cut)) !=
            PETREL_STORAGE_OK ||
        (ret = delete_upto(db, "DELETE FROM expunge_time WHERE modseq <= ?", cut)) !=
            PETREL_STORAGE_OK ||
        (ret = storage_index_meta(db, "vanished_floor", 0, &floor)) != PETREL_STORAGE_OK)
        return ret;
    return cut > floor ? storage_index_set_meta(db, "vanished_floor", cut) : PETREL_STORAGE_OK;
}
