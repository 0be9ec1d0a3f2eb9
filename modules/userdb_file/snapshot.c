/* The loaded account file as an immutable, reference-counted snapshot.
 * Readers take a reference under a mutex held only for the pointer copy,
 * so they never wait for each other or for a reload; a reload parses the
 * new file outside the lock and swaps the pointer. A failed read keeps the
 * old snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "userdb_file.h"

#define ERRORS_LOGGED 100 /* per load; the rest are counted */

long long userdb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_identity(struct userdb_snapshot *s, const struct stat *st)
{
    s->dev = (unsigned long long)st->st_dev;
    s->ino = (unsigned long long)st->st_ino;
    s->size = (unsigned long long)st->st_size;
    s->mtime_ns = (unsigned long long)st->st_mtim.tv_sec * 1000000000ULL +
                  (unsigned long long)st->st_mtim.tv_nsec;
}

static bool same_file(const struct userdb_snapshot *s, const struct stat *st)
{
    struct userdb_snapshot t;
    set_identity(&t, st);
    return !s->missing && s->dev == t.dev && s->ino == t.ino && s->size == t.size &&
           s->mtime_ns == t.mtime_ns;
}

static void log_errors(const struct userdb_source *src, const struct userdb_file *db)
{
    for (size_t i = 0; i < db->nerrors && i < ERRORS_LOGGED; i++)
        petrel_log(PETREL_LOG_WARNING, src->log_name, "%s:%u: %s (line skipped)", src->path,
                   db->errors[i].line, db->errors[i].message);
    if (db->nerrors > ERRORS_LOGGED)
        petrel_log(PETREL_LOG_WARNING, src->log_name, "%s: %zu more bad lines not shown", src->path,
                   db->nerrors - ERRORS_LOGGED);
}

/* Read and parse the file into a new snapshot. NULL with error_r. */
static struct userdb_snapshot *load(const struct userdb_source *src, const char **error_r)
{
    static _Thread_local char why[300];
    struct userdb_snapshot *s = petrel_calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    char *text;
    size_t len;
    struct stat st;
    int r = userdb_read_file(src->path, &text, &len, &st, why, sizeof(why));
    if (r == 0) {
        s->missing = true;
        return s;
    }
    if (r < 0) {
        free(s);
        *error_r = why;
        return NULL;
    }
    set_identity(s, &st);
    userdb_parse(text, len, &s->db);
    free(text);
    return s;
}

static void summarise(const struct userdb_source *src, const struct userdb_snapshot *s,
                      const char *what)
{
    if (s->missing) {
        petrel_log(PETREL_LOG_WARNING, src->log_name, "%s does not exist: no accounts", src->path);
        return;
    }
    log_errors(src, &s->db);
    petrel_log(PETREL_LOG_INFO, src->log_name, "%s %s: %zu entries, %zu bad lines", what, src->path,
               s->db.count, s->db.nerrors);
}

int userdb_source_open(struct userdb_source *src, const char *path, const char *log_name,
                       const char **error_r)
{
    memset(src, 0, sizeof(*src));
    pthread_mutex_init(&src->lock, NULL);
    if (!petrel_strlcpy(src->path, path, sizeof(src->path))) {
        *error_r = "file path too long";
        return -1;
    }
    src->log_name = log_name;
    src->current = load(src, error_r);
    if (src->current == NULL)
        return -1;
    summarise(src, src->current, "loaded");
    atomic_store(&src->checked_ms, userdb_now_ms());
    return 0;
}

static struct userdb_snapshot *ref_current(struct userdb_source *src)
{
    pthread_mutex_lock(&src->lock);
    struct userdb_snapshot *s = src->current;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&src->lock);
    return s;
}

void userdb_snapshot_unref(struct userdb_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    userdb_free(&s->db);
    free(s);
}

/* One reload pass, by the thread that holds src->reloading. */
static int reload_once(struct userdb_source *src, bool force)
{
    struct userdb_snapshot *old = ref_current(src);
    struct stat st;
    int r = 0;
    bool changed;
    if (stat(src->path, &st) == 0)
        changed = !same_file(old, &st);
    else
        changed = errno != ENOENT || !old->missing; /* load() reports or empties */
    if (force || changed) {
        const char *why;
        struct userdb_snapshot *s = load(src, &why);
        if (s == NULL) {
            petrel_log(PETREL_LOG_ERROR, src->log_name, "reload failed, keeping the old data: %s",
                       why);
            pthread_mutex_lock(&src->lock);
            petrel_strlcpy(src->forced_error, why, sizeof(src->forced_error));
            pthread_mutex_unlock(&src->lock);
            r = -1;
        } else {
            summarise(src, s, "reloaded");
            pthread_mutex_lock(&src->lock);
            struct userdb_snapshot *prev = src->current;
            src->current = s;
            pthread_mutex_unlock(&src->lock);
            userdb_snapshot_unref(prev);
            r = 1;
        }
    }
    userdb_snapshot_unref(old);
    atomic_store(&src->checked_ms, userdb_now_ms());
    return r;
}

int userdb_source_reload(struct userdb_source *src, bool force)
{
    /* The request is posted before trying: whoever holds the reload sees
     * it after letting go (below) and does one more pass. */
    if (force) {
        atomic_fetch_add(&src->forced_asked, 1);
        atomic_store(&src->reload_requested, true);
    }
    int r = 0;
    for (;;) {
        bool expected = false;
        if (!atomic_compare_exchange_strong(&src->reloading, &expected, true))
            return r; /* another thread is at it: use the current snapshot */
        bool forced = atomic_exchange(&src->reload_requested, false);
        /* Read after taking the request: every forced reload counted by
         * now was asked before this pass reads the file. */
        unsigned long long asked = atomic_load(&src->forced_asked);
        r = reload_once(src, forced || force);
        if (forced || force) {
            atomic_store(&src->forced_result, r);
            atomic_store(&src->forced_served, asked);
        }
        force = false;
        atomic_store(&src->reloading, false);
        if (!atomic_load(&src->reload_requested))
            return r;
    }
}

int userdb_source_reload_now(struct userdb_source *src, char *why, size_t why_size)
{
    unsigned long long mine = atomic_fetch_add(&src->forced_asked, 1) + 1;
    atomic_store(&src->reload_requested, true);
    /* Either this thread gets to reload, or the thread at it sees the
     * request before letting go and serves it: wait for that pass, not
     * for one that may have read the file before the change. */
    while (atomic_load(&src->forced_served) < mine) {
        userdb_source_reload(src, false);
        if (atomic_load(&src->forced_served) < mine)
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    int r = atomic_load(&src->forced_result);
    if (r < 0) {
        pthread_mutex_lock(&src->lock);
        petrel_strlcpy(why, src->forced_error, why_size);
        pthread_mutex_unlock(&src->lock);
    }
    return r < 0 ? -1 : 1;
}

struct userdb_snapshot *userdb_source_get(struct userdb_source *src, long long interval_ms)
{
    if (userdb_now_ms() - atomic_load(&src->checked_ms) >= interval_ms)
        userdb_source_reload(src, false);
    return ref_current(src);
}

void userdb_source_close(struct userdb_source *src)
{
    userdb_snapshot_unref(src->current);
    src->current = NULL;
    pthread_mutex_destroy(&src->lock);
}
