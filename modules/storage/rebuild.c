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
    uint32_t uid;  /* chosen UID */
    bool dup_base; /* another file to adopt has the same base name */
};

/* U= hints above this are ignored: adopting one would leave no UIDs (or
 * wrap UIDNEXT to 0) and block the folder. */
#define UID_HINT_MAX (UINT32_MAX - STORAGE_UID_RESERVE)

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
        e->v[e->n++] = (struct entry){petrel_strdup(de->d_name), in_new, md, 0, false};
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

static int scan_modseq(struct scan *s, uint64_t *modseq_r)
{
    if (s->modseq == 0) {
        int ret = storage_index_next_modseq(s->fs->db, &s->modseq);
        if (ret != PETREL_STORAGE_OK)
            return ret;
    }
    s->changed = true;
    *modseq_r = s->modseq;
    return PETREL_STORAGE_OK;
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
    int ret = scan_modseq(s, &upd.modseq);
    return ret == PETREL_STORAGE_OK ? storage_index_update(s->fs->db, &upd) : ret;
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

static int entry_by_base(const void *a, const void *b)
{
    const struct entry *const *x = a, *const *y = b;
    return strcmp((*x)->md.base, (*y)->md.base);
}

/* Mark the files to adopt that share a base name: sorted once, then
 * neighbours compared (n log n; a pairwise search made a rebuild of 100k
 * files quadratic). */
static void mark_dup_bases(struct entries *ad)
{
    struct entry **v = petrel_reallocarray(NULL, ad->n ? ad->n : 1, sizeof(*v));
    for (size_t i = 0; i < ad->n; i++)
        v[i] = &ad->v[i];
    qsort(v, ad->n, sizeof(*v), entry_by_base);
    for (size_t i = 1; i < ad->n; i++)
        if (strcmp(v[i]->md.base, v[i - 1]->md.base) == 0)
            v[i]->dup_base = v[i - 1]->dup_base = true;
    free(v);
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
        return PETREL_STORAGE_OK; /* cannot be named: skipped */
    /* No symlink is followed and a FIFO does not block the open; only a
     * regular file is a message. */
    int fd = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0 || errno != ENOENT)
            petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "%s: not a message file, skipped", from);
        if (fd >= 0)
            close(fd);
        return PETREL_STORAGE_OK; /* gone meanwhile, or not a message */
    }
    const char *final = e->name;
    if (rename_needed || e->md.uid != e->uid || e->md.size != (uint64_t)sb.st_size) {
        const char *info = strchr(e->name, ':');
        if (!storage_maildir_new_base((uint64_t)sb.st_size, e->uid, base, sizeof(base)) ||
            !petrel_snprintf(name, sizeof(name), "%s%s", base, info != NULL ? info : "") ||
            !storage_maildir_path(to, sizeof(to), dir, e->in_new, name) || rename(from, to) < 0) {
            /* One file that cannot be adopted must not block the folder:
             * it is left alone (and tried again at the next scan). */
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "adopt %s: %s; skipped", from,
                       strerror(errno));
            close(fd);
            return PETREL_STORAGE_OK;
        }
        final = name;
    }
    struct petrel_buf header;
    petrel_buf_init(&header, PETREL_STORAGE_MAX_HEADER);
    storage_maildir_read_header(fd, &header);
    close(fd);
    uint64_t modseq;
    int ret = scan_modseq(s, &modseq);
    if (ret != PETREL_STORAGE_OK) {
        close(fd);
        return ret;
    }
    struct storage_row row = {
        .uid = e->uid,
        .flags = (!e->in_new && e->md.has_info) ? e->md.flags : 0,
        .recent = e->in_new,
        .modseq = modseq,
        .size = (uint64_t)sb.st_size,
        .idate = (int64_t)sb.st_mtime,
        .name = (char *) final,
        .keywords = (char *)"",
    };
    ret = storage_index_insert(s->fs->db, &row, header.len ? petrel_buf_head(&header) : NULL,
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
    for (size_t i = 0; i < ad->n; i++)
        if (ad->v[i].md.uid > UID_HINT_MAX) {
            petrel_log(PETREL_LOG_WARNING, STORAGE_LOG, "%s: U=%u in %s ignored (too large)",
                       s->fs->dir, ad->v[i].md.uid, ad->v[i].name);
            ad->v[i].md.uid = 0;
        }
    if (rebuild && has_duplicate_uids(ad)) {
        int64_t old64;
        int ret = storage_index_meta(s->fs->db, "uidvalidity", 0, &old64);
        uint32_t old = (uint32_t)old64, now = (uint32_t)time(NULL), v = now > old ? now : old + 1;
        if (ret == PETREL_STORAGE_OK)
            ret = storage_index_set_meta(s->fs->db, "uidvalidity", v);
        if (ret != PETREL_STORAGE_OK)
            return ret;
        petrel_log(PETREL_LOG_WARNING, STORAGE_LOG,
                   "%s: duplicate UIDs in file names: new UIDVALIDITY %u, messages renumbered",
                   s->fs->dir, v);
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
        if (next == 0 || next > UID_HINT_MAX) {
            /* UIDs exhausted: the file stays unadopted (logged), the folder
             * keeps working for what it has. */
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "%s: no UID left for %s; skipped", s->fs->dir,
                       ad->v[i].name);
            continue;
        }
        ad->v[i].uid = next++;
    }
    *uidnext = next;
    return next > 1 ? storage_index_reserve(s->fs, next - 1) : PETREL_STORAGE_OK;
}

static bool exists(const char *dir, bool in_new, const char *name)
{
    char path[PATH_MAX];
    struct stat sb;
    return storage_maildir_path(path, sizeof(path), dir, in_new, name) && lstat(path, &sb) == 0;
}

/* A row whose file was not listed: is the file there after all (moved
 * between new/ and cur/, or re-flagged, while readdir ran)? Looks at the
 * recorded path, new/<base>, and cur/<base>:2,<flags> for the recorded
 * flags and for none. */
static bool still_there(struct storage_fstate *fs, const struct storage_row *row)
{
    char base[STORAGE_MAX_FILENAME + 1], name[STORAGE_MAX_FILENAME + 1];
    size_t blen = strcspn(row->name, ":");
    if (exists(fs->dir, row->recent, row->name))
        return true;
    if (blen >= sizeof(base))
        return false;
    memcpy(base, row->name, blen);
    base[blen] = '\0';
    if (exists(fs->dir, true, base))
        return true;
    if (storage_maildir_name(base, row->flags, false, name, sizeof(name)) &&
        exists(fs->dir, false, name))
        return true;
    return storage_maildir_name(base, 0, false, name, sizeof(name)) && exists(fs->dir, false, name);
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
        uint64_t modseq;
        if (seen[r])
            continue;
        if (still_there(s->fs, &rows[r])) {
            /* Renamed while the directories were read: not an expunge.
             * The next sync looks again. */
            s->fs->new_mtime = s->fs->cur_mtime = (struct timespec){0, 0};
            continue;
        }
        if ((ret = scan_modseq(s, &modseq)) != PETREL_STORAGE_OK)
            break;
        ret = storage_index_expunge(s->fs->db, rows[r].uid, modseq);
        if (ret == PETREL_STORAGE_OK) /* ages with the window; pruned at the next expunge */
            ret = storage_expunged_record(s->fs->db, modseq, (int64_t)time(NULL));
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
    int64_t next64;
    *changed_r = false;
    int ret = storage_index_meta(fs->db, "uidnext", 1, &next64);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    uint32_t uidnext = (uint32_t)next64;
    dir_mtimes(fs); /* before reading: a change during the scan is seen next time */
    ret = read_dir(fs->dir, true, &files);
    if (ret == PETREL_STORAGE_OK)
        ret = read_dir(fs->dir, false, &files);
    if (storage_test_fault != NULL)
        storage_test_fault("scan_listed"); /* tests move files here */
    if (ret == PETREL_STORAGE_OK)
        ret = storage_index_load(fs->db, NULL, &rows, &nrows);
    struct keyed *k = ret == PETREL_STORAGE_OK ? keyed_rows(rows, nrows) : NULL;
    if (ret == PETREL_STORAGE_OK)
        ret = scan_known(&s, rows, k, nrows, &files, &ad);
    if (ret == PETREL_STORAGE_OK && ad.n > 0) {
        qsort(ad.v, ad.n, sizeof(*ad.v), entry_by_uid);
        ret = choose_uids(&s, &ad, rebuild, &uidnext);
        mark_dup_bases(&ad);
        for (size_t i = 0; i < ad.n && ret == PETREL_STORAGE_OK; i++)
            if (ad.v[i].uid != 0)
                ret = adopt(&s, &ad.v[i],
                            ad.v[i].dup_base || keyed_find(k, nrows, ad.v[i].md.base) < nrows);
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
