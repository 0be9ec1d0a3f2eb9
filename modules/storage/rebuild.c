/* Index <-> files. The files are the truth: a message file the index does
 * not know (a crash between the rename and the index commit, or another
 * program) is adopted, keeping the U= of its name when that UID is unused
 * and above every UID handed out, else with a new UID; an index row whose
 * file is gone is recorded as expunged; flags changed in a file name by a
 * Maildir reader are taken over. A new index (lost or corrupt) is rebuilt
 * the same way, keeping every U= that is unique; when U= values collide no
 * UID can be trusted, so UIDVALIDITY is bumped and all are renumbered. */
#include <dirent.h>
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

#include "storage_private.h"

struct entry {
    char *name;
    bool in_new;
    struct storage_mdname md;
    uint32_t uid; /* chosen UID */
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

static void entries_free(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].name);
    free(e->v);
}

static int read_dir(const char *dir, bool in_new, struct entries *e)
{
    char path[PATH_MAX];
    if (!petrel_snprintf(path, sizeof(path), "%s/%s", dir, in_new ? "new" : "cur"))
        return PETREL_STORAGE_TEMPFAIL;
    DIR *d = opendir(path);
    if (d == NULL) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "opendir %s: %s", path, strerror(errno));
        return PETREL_STORAGE_TEMPFAIL;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct storage_mdname md;
        if (!storage_maildir_parse(de->d_name, &md))
            continue; /* ".", "..", dot files */
        if (e->n == e->cap) {
            e->cap = e->cap ? e->cap * 2 : 256;
            e->v = petrel_reallocarray(e->v, e->cap, sizeof(*e->v));
        }
        e->v[e->n++] = (struct entry){petrel_strdup(de->d_name), in_new, md, 0};
    }
    closedir(d);
    return PETREL_STORAGE_OK;
}

/* Adoption order: by U= hint (0 last), then by name (time-ordered). */
static int entry_by_uid(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    uint64_t ux = x->md.uid ? x->md.uid : UINT64_MAX, uy = y->md.uid ? y->md.uid : UINT64_MAX;
    if (ux != uy)
        return ux < uy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void dir_mtimes(struct storage_fstate *fs)
{
    char path[PATH_MAX];
    struct stat sb;
    if (petrel_snprintf(path, sizeof(path), "%s/new", fs->dir) && stat(path, &sb) == 0)
        fs->new_mtime = sb.st_mtim;
    if (petrel_snprintf(path, sizeof(path), "%s/cur", fs->dir) && stat(path, &sb) == 0)
        fs->cur_mtime = sb.st_mtim;
}

struct scan {
    struct storage_fstate *fs;
    uint64_t modseq; /* 0 until the first change */
    bool changed;
    int64_t bytes, msgs; /* quota delta */
};

static uint64_t scan_modseq(struct scan *s)
{
    if (s->modseq == 0)
        s->modseq = storage_index_next_modseq(s->fs->db);
    s->changed = true;
    return s->modseq;
}

/* Known file: take over a location or flag change made outside. The row's
 * name stays as loaded (the lookup table points into it). */
static int match_row(struct scan *s, const struct storage_row *row, const struct entry *e)
{
    if (strcmp(row->name, e->name) == 0 && row->recent == e->in_new)
        return PETREL_STORAGE_OK;
    struct storage_row upd = *row;
    upd.name = e->name;
    upd.recent = e->in_new;
    if (!e->in_new && e->md.has_info)
        upd.flags = e->md.flags;
    upd.modseq = scan_modseq(s);
    return storage_index_update(s->fs->db, &upd);
}

/* Rows sorted by base name (the file name up to ':') for lookups. */
struct keyed {
    const char *name;
    size_t len;
    size_t row;
};

static int prefix_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    return prefix_cmp(x->name, x->len, y->name, y->len);
}

static struct keyed *keyed_rows(struct storage_row *rows, size_t n)
{
    struct keyed *k = petrel_reallocarray(NULL, n ? n : 1, sizeof(*k));
    for (size_t i = 0; i < n; i++)
        k[i] = (struct keyed){rows[i].name, strcspn(rows[i].name, ":"), i};
    qsort(k, n, sizeof(*k), keyed_cmp);
    return k;
}

/* The row whose base is base, or n. */
static size_t keyed_find(const struct keyed *k, size_t n, const char *base)
{
    size_t lo = 0, hi = n, blen = strlen(base);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = prefix_cmp(k[mid].name, k[mid].len, base, blen);
        if (c == 0)
            return k[mid].row;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n;
}

static bool base_known(const struct keyed *k, size_t n, const char *base, struct entries *e,
                       size_t self)
{
    if (keyed_find(k, n, base) < n)
        return true;
    for (size_t i = 0; i < e->n; i++)
        if (i != self && strcmp(e->v[i].md.base, base) == 0)
            return true;
    return false;
}

/* Insert one unknown file under its chosen UID, renaming it when its name
 * does not carry that UID (or its base is taken). */
static int adopt(struct scan *s, struct entry *e, bool rename_needed)
{
    char from[PATH_MAX], to[PATH_MAX], base[STORAGE_MAX_FILENAME + 1],
        name[STORAGE_MAX_FILENAME + 1];
    struct stat sb;
    const char *dir = s->fs->dir;
    if (!storage_maildir_path(from, sizeof(from), dir, e->in_new, e->name))
        return PETREL_STORAGE_TEMPFAIL;
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        if (fd >= 0)
            close(fd);
        return PETREL_STORAGE_OK; /* gone meanwhile: nothing to adopt */
    }
    const char *final = e->name;
    if (rename_needed || e->md.uid != e->uid || e->md.size != (uint64_t)sb.st_size) {
        const char *info = strchr(e->name, ':');
        if (!storage_maildir_new_base((uint64_t)sb.st_size, e->uid, base, sizeof(base)) ||
            !petrel_snprintf(name, sizeof(name), "%s%s", base, info != NULL ? info : "") ||
            !storage_maildir_path(to, sizeof(to), dir, e->in_new, name) || rename(from, to) < 0) {
            close(fd);
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "adopt %s: %s", from, strerror(errno));
            return PETREL_STORAGE_TEMPFAIL;
        }
        final = name;
    }
    struct petrel_buf header;
    petrel_buf_init(&header, PETREL_STORAGE_MAX_HEADER);
    storage_maildir_read_header(fd, &header);
    close(fd);
    struct storage_row row = {
        .uid = e->uid,
        .flags = (!e->in_new && e->md.has_info) ? e->md.flags : 0,
        .recent = e->in_new,
        .modseq = scan_modseq(s),
        .size = (uint64_t)sb.st_size,
        .idate = (int64_t)sb.st_mtime,
        .name = (char *) final,
        .keywords = (char *)"",
    };
    int ret = storage_index_insert(s->fs->db, &row, header.len ? petrel_buf_head(&header) : NULL,
                                   header.len);
    petrel_buf_free(&header);
    s->bytes += sb.st_size;
    s->msgs++;
    return ret;
}

static bool has_duplicate_uids(struct entries *adopt_list)
{
    for (size_t i = 1; i < adopt_list->n; i++)
        if (adopt_list->v[i].md.uid != 0 && adopt_list->v[i].md.uid == adopt_list->v[i - 1].md.uid)
            return true;
    return false;
}

/* Choose UIDs for the files to adopt (sorted by U= hint). */
static int choose_uids(struct scan *s, struct entries *ad, bool rebuild, uint32_t *uidnext)
{
    uint32_t next = *uidnext, last_kept = 0;
    if (rebuild && has_duplicate_uids(ad)) {
        uint32_t old = (uint32_t)storage_index_meta(s->fs->db, "uidvalidity", 0);
        uint32_t now = (uint32_t)time(NULL), v = now > old ? now : old + 1;
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG,
                   "%s: duplicate UIDs in file names: new UIDVALIDITY %u, messages renumbered",
                   s->fs->dir, v);
        storage_index_set_meta(s->fs->db, "uidvalidity", v);
        s->fs->uid_ceiling = 0;
        for (size_t i = 0; i < ad->n; i++)
            ad->v[i].md.uid = 0;
        next = 1;
    }
    for (size_t i = 0; i < ad->n; i++) {
        uint32_t u = ad->v[i].md.uid;
        /* Sorted by hint: a repeat of the previous hint is a collision. */
        if (u != 0 && u != last_kept && (rebuild || u >= *uidnext)) {
            ad->v[i].uid = u;
            last_kept = u;
            if (u >= next)
                next = u + 1;
        }
    }
    for (size_t i = 0; i < ad->n; i++) {
        if (ad->v[i].uid != 0)
            continue;
        if (next == 0 || next == UINT32_MAX)
            return PETREL_STORAGE_TOO_LARGE;
        ad->v[i].uid = next++;
    }
    *uidnext = next;
    return next > 1 ? storage_index_reserve(s->fs, next - 1) : PETREL_STORAGE_OK;
}

static int scan_known(struct scan *s, struct storage_row *rows, const struct keyed *k, size_t nrows,
                      struct entries *files, struct entries *ad)
{
    bool *seen = petrel_calloc(nrows ? nrows : 1, sizeof(bool));
    int ret = PETREL_STORAGE_OK;
    for (size_t i = 0; i < files->n && ret == PETREL_STORAGE_OK; i++) {
        struct entry *e = &files->v[i];
        size_t r = keyed_find(k, nrows, e->md.base);
        if (r < nrows && !seen[r]) {
            seen[r] = true;
            ret = match_row(s, &rows[r], e);
        } else {
            ad->v = petrel_reallocarray(ad->v, ad->n + 1, sizeof(*ad->v));
            ad->v[ad->n++] = *e;
            e->name = NULL; /* moved */
        }
    }
    for (size_t r = 0; r < nrows && ret == PETREL_STORAGE_OK; r++) {
        if (seen[r])
            continue;
        ret = storage_index_expunge(s->fs->db, rows[r].uid, scan_modseq(s));
        s->bytes -= (int64_t)rows[r].size;
        s->msgs--;
    }
    free(seen);
    return ret;
}

int storage_rebuild_scan(struct storage_fstate *fs, bool rebuild, bool *changed_r)
{
    struct entries files = {0}, ad = {0};
    struct storage_row *rows = NULL;
    size_t nrows = 0;
    struct scan s = {fs, 0, false, 0, 0};
    uint32_t uidnext = (uint32_t)storage_index_meta(fs->db, "uidnext", 1);
    *changed_r = false;
    dir_mtimes(fs); /* before reading: a change during the scan is seen next time */
    int ret = read_dir(fs->dir, true, &files);
    if (ret == PETREL_STORAGE_OK)
        ret = read_dir(fs->dir, false, &files);
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_load(fs->db, NULL, &rows, &nrows);
    struct keyed *k = ret == PETREL_STORAGE_OK ? keyed_rows(rows, nrows) : NULL;
    if (ret == PETREL_STORAGE_OK)
        ret = scan_known(&s, rows, k, nrows, &files, &ad);
    if (ret == PETREL_STORAGE_OK && ad.n > 0) {
        qsort(ad.v, ad.n, sizeof(*ad.v), entry_by_uid);
        ret = choose_uids(&s, &ad, rebuild, &uidnext);
        for (size_t i = 0; i < ad.n && ret == PETREL_STORAGE_OK; i++)
            ret = adopt(&s, &ad.v[i], base_known(k, nrows, ad.v[i].md.base, &ad, i));
        if (ret == PETREL_STORAGE_OK)
            ret = storage_index_set_meta(fs->db, "uidnext", uidnext);
        if (ret == PETREL_STORAGE_OK && !rebuild)
            petrel_log(PETREL_LOG_INFO, STORAGE_LOG, "%s: adopted %zu message file(s)", fs->dir,
                       ad.n);
    }
    free(k);
    storage_rows_free(rows, nrows);
    entries_free(&files);
    entries_free(&ad);
    if (ret == PETREL_STORAGE_OK) {
        fs->scanned = true;
        *changed_r = s.changed;
        if (s.changed)
            storage_quota_forget(fs->acct);
    }
    return ret;
}
