/* petrelctl queue list|show|flush|delete|hold|release: the processing
 * module's queue, read and changed through its files (the layout is in
 * modules/processing/envelope.h). The queue directory is found as the
 * daemon finds it: server.data_dir in petrel.conf and the queue_dir
 * setting of the conf.d file that enables processing.
 *
 * An entry is changed only under the lock the queue runner takes (flock
 * on the envelope, then a check that the name still is the locked file),
 * so it is never deleted or held in the middle of a delivery attempt.
 * The queue belongs to the daemon's user while petrelctl often runs as
 * root: every file is reached through directory descriptors opened
 * without following symbolic links, and only regular files are read. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/queue.h>

#include "ctl_queue.h"
#include "ctl_userdb.h"
#include "envelope.h"

#define LOCK_WAIT_MS 10000 /* how long a busy entry is waited for */
#define LOCK_RETRY_MS 50
#define HEADER_MAX (64 * 1024) /* of a message's header shown */

enum { Q_ACTIVE, Q_HOLD, Q_DATA, Q_NSUB };
static const char *const sub_names[Q_NSUB] = {"active", "hold", "data"};

struct queue {
    char root[PATH_MAX];
    int dir[Q_NSUB]; /* -1: the directory does not exist (yet) */
};

/* Both times of a file to now: the runner works on entries whose
 * modification time has come. */
static const struct timespec times_now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};

/* --- output ---------------------------------------------------------------- */

/* The length of a printable UTF-8 sequence at p (not a C1 control, an
 * overlong form or a surrogate), or 0. */
static size_t utf8_printable(const unsigned char *p, size_t n)
{
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
        return 0;
    return len;
}

/* Text from the queue (a client's words, a message's header) on a
 * terminal: control bytes and invalid UTF-8 as \xNN, tabs kept. */
static void put_escaped(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] >= 0x80 ? utf8_printable(p + i, len - i) : 1;
        if (n == 0 || (p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
            fprintf(f, "\\x%02X", p[i]);
            i++;
            continue;
        }
        fwrite(p + i, 1, n, f);
        i += n;
    }
}

static void put_str(const char *s) { put_escaped(stdout, s, strlen(s)); }

static void put_address(const char *s)
{
    putchar('<');
    put_str(s);
    putchar('>');
}

/* ISO 8601 in UTC: 2024-05-01T12:00:00Z. */
static const char *iso_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "@%lld", (long long)t);
    return buf;
}

static const char *state_text(char state)
{
    switch (state) {
    case RCPT_EXPAND:
        return "to expand";
    case RCPT_PENDING:
        return "pending";
    case RCPT_DEFERRED:
        return "deferred";
    case RCPT_DELIVERED:
        return "delivered";
    case RCPT_FAILED:
        return "failed";
    case RCPT_REPORTED:
        return "bounced";
    case RCPT_SUCCESS:
        return "delivered (report owed)";
    default:
        return "unknown state";
    }
}

/* What went wrong with a file, in words. */
static const char *describe(int e)
{
    switch (e) {
    case ELOOP:
        return "a symbolic link, not followed";
    case EINVAL:
        return "not a regular file";
    case EWOULDBLOCK:
        return "still locked after 10 seconds (the queue runner is working on it; try again)";
    default:
        return strerror(e);
    }
}

static void path_error(const struct queue *q, int sub, const char *id, const char *what, int e)
{
    char path[PATH_MAX + 64];
    if (!queue_path(path, sizeof(path), q->root, sub_names[sub], id))
        petrel_strlcpy(path, q->root, sizeof(path));
    fprintf(stderr, "petrelctl: %s%s%s: %s\n", what, what[0] != '\0' ? " " : "", path, describe(e));
}

static int no_such_message(const char *id)
{
    fprintf(stderr, "petrelctl: queue: %s: no such message\n", id);
    return 1;
}

/* --- finding the queue ------------------------------------------------------ */

/* <data_dir>/<queue_dir>, or queue_dir when it is absolute. */
static int queue_root(const char *conf, char *out, size_t size)
{
    char qdir[PATH_MAX] = "queue";
    bool fits = ctl_confd_setting(conf, "processing", "queue_dir", qdir, sizeof(qdir), true) == 0;
    /* The daemon refuses these (modules/processing/module.c). */
    if (!fits || qdir[0] == '\0' || strstr(qdir, "..") != NULL) {
        fprintf(stderr,
                "petrelctl: the processing module's queue_dir must be a path without "
                "'..'%s\n",
                fits ? "" : " and shorter");
        return -1;
    }
    return ctl_data_path(conf, qdir, out, size);
}

static void queue_close(struct queue *q)
{
    for (int i = 0; i < Q_NSUB; i++)
        if (q->dir[i] >= 0)
            close(q->dir[i]);
}

/* The queue's directories. One that does not exist yet (the daemon makes
 * them when it starts) is left at -1: an empty queue. */
static int queue_open(struct queue *q, const char *conf)
{
    for (int i = 0; i < Q_NSUB; i++)
        q->dir[i] = -1;
    if (queue_root(conf, q->root, sizeof(q->root)) < 0)
        return -1;
    int root = open(q->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "petrelctl: %s: %s\n", q->root, strerror(errno));
        return -1;
    }
    for (int i = 0; i < Q_NSUB; i++) {
        q->dir[i] = openat(root, sub_names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (q->dir[i] < 0 && errno != ENOENT) {
            path_error(q, i, NULL, "", errno);
            close(root);
            queue_close(q);
            return -1;
        }
    }
    close(root);
    return 0;
}

/* --- entries ----------------------------------------------------------------- */

/* A file in a queue directory, for reading: never through a symbolic link
 * and only a regular file (O_NONBLOCK: opening a FIFO would wait). -1 with
 * errno (EINVAL: not a regular file). */
static int open_file(int dfd, const char *id, struct stat *st)
{
    if (dfd < 0) {
        errno = ENOENT;
        return -1;
    }
    int fd = openat(dfd, id, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int e = fstat(fd, st) < 0 ? errno : !S_ISREG(st->st_mode) ? EINVAL : 0;
    if (e != 0) {
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Read and parse the envelope open at fd. */
static int read_envelope(int fd, const struct stat *st, const char *id, struct queue_envelope *env,
                         const char **error_r)
{
    static char why[100];
    if (st->st_size > (off_t)QUEUE_ENVELOPE_MAX) {
        *error_r = "larger than an envelope can be";
        return -1;
    }
    size_t size = (size_t)st->st_size, got = 0;
    char *text = petrel_malloc(size + 1);
    ssize_t n = 1;
    while (got < size && n > 0) {
        n = pread(fd, text + got, size - got, (off_t)got);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno == EINTR)
            n = 1;
    }
    bool ok = got == size && queue_envelope_parse(text, size, env, error_r);
    if (got != size)
        *error_r = n < 0 ? strerror(errno) : "shorter than its size";
    free(text);
    if (ok && strcmp(env->id, id) != 0) {
        petrel_snprintf(why, sizeof(why), "the envelope is for %s", env->id);
        *error_r = why;
        queue_envelope_free(env);
        ok = false;
    }
    return ok ? 0 : -1;
}

/* 0 with env and st; -1 unreadable (*error_r); -2 not there. */
static int load(const struct queue *q, int sub, const char *id, struct queue_envelope *env,
                struct stat *st, const char **error_r)
{
    int fd = open_file(q->dir[sub], id, st);
    if (fd < 0) {
        *error_r = describe(errno);
        return errno == ENOENT ? -2 : -1;
    }
    int r = read_envelope(fd, st, id, env, error_r);
    close(fd);
    return r;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Open and lock an entry as the queue runner does (runner.c process()):
 * flock(LOCK_EX | LOCK_NB) on the envelope, then the name must still be
 * that file, since the runner replaces the envelope by rename after an
 * attempt and a lock on the old file protects nothing. Retried while
 * someone has it, for up to LOCK_WAIT_MS. The descriptor, or -1 with
 * errno (ENOENT: no such entry, EWOULDBLOCK: still locked, EINVAL: not a
 * regular file). */
static int lock_entry(int dfd, const char *id)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct stat a, b;
        int fd = open_file(dfd, id, &a);
        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (fstatat(dfd, id, &b, AT_SYMLINK_NOFOLLOW) == 0 && b.st_ino == a.st_ino &&
                b.st_dev == a.st_dev)
                return fd;
            /* Replaced or removed meanwhile: look at the name again. */
        } else if (errno != EWOULDBLOCK && errno != EINTR) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        close(fd);
        if (elapsed_ms(&start) >= LOCK_WAIT_MS) {
            errno = EWOULDBLOCK;
            return -1;
        }
        nanosleep(&(struct timespec){0, LOCK_RETRY_MS * 1000000L}, NULL);
    }
}

/* Lock the entry in sub: the descriptor, -1 when there is none, -2 for
 * another error (printed). */
static int lock_or_print(const struct queue *q, int sub, const char *id)
{
    int fd = lock_entry(q->dir[sub], id);
    if (fd >= 0 || errno == ENOENT)
        return fd;
    path_error(q, sub, id, "cannot lock", errno);
    return -2;
}

static bool exists(const struct queue *q, int sub, const char *id)
{
    struct stat st;
    return q->dir[sub] >= 0 && fstatat(q->dir[sub], id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A directory entry made durable; errors printed. */
static int sync_dir(const struct queue *q, int sub)
{
    if (fsync(q->dir[sub]) == 0)
        return 0;
    path_error(q, sub, NULL, "cannot sync", errno);
    return -1;
}

/* Move a locked entry from one directory to the other, never over an
 * entry already there. */
static int move(const struct queue *q, int from, int to, const char *id)
{
    if (q->dir[to] < 0) {
        path_error(q, to, NULL, "cannot move the entry into", ENOENT);
        return -1;
    }
    int r = renameat2(q->dir[from], id, q->dir[to], id, RENAME_NOREPLACE);
    if (r < 0 && (errno == EINVAL || errno == ENOSYS)) { /* a file system without it */
        struct stat st;
        if (fstatat(q->dir[to], id, &st, AT_SYMLINK_NOFOLLOW) == 0)
            errno = EEXIST;
        else
            r = renameat(q->dir[from], id, q->dir[to], id);
    }
    if (r < 0) {
        if (errno == EEXIST)
            fprintf(stderr, "petrelctl: queue: %s is both in %s/ and in %s/: left alone\n", id,
                    sub_names[from], sub_names[to]);
        else
            path_error(q, from, id, "cannot move", errno);
        return -1;
    }
    return sync_dir(q, to) == 0 && sync_dir(q, from) == 0 ? 0 : -1;
}

/* --- list ------------------------------------------------------------------------ */

struct entry {
    char id[QUEUE_ID_LEN + 1];
    int sub;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : x->sub - y->sub;
}

/* The names in one queue directory that are queue ids. */
static int collect(const struct queue *q, int sub, struct entry **v, size_t *n, size_t *cap)
{
    if (q->dir[sub] < 0)
        return 0;
    /* A descriptor of its own: readdir moves the offset. */
    int fd = openat(q->dir[sub], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        path_error(q, sub, NULL, "cannot list", errno);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *v = petrel_reallocarray(*v, *cap, sizeof(**v));
        }
        memcpy((*v)[*n].id, de->d_name, QUEUE_ID_LEN + 1);
        (*v)[(*n)++].sub = sub;
    }
    closedir(d);
    return 0;
}

static void list_entry(const struct entry *e, const struct queue_envelope *env,
                       const struct stat *st, time_t now)
{
    char t[40];
    printf("%s  %llu  %s  %s", e->id, (unsigned long long)env->size,
           iso_time(env->arrival, t, sizeof(t)), e->sub == Q_HOLD ? "HELD  " : "");
    put_address(env->from);
    putchar('\n');
    if (e->sub == Q_ACTIVE)
        printf("  next attempt %s%s, %u attempt%s so far\n",
               iso_time((int64_t)st->st_mtime, t, sizeof(t)), st->st_mtime <= now ? " (due)" : "",
               env->attempts, env->attempts == 1 ? "" : "s");
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        printf("  ");
        put_address(r->address);
        if (r->original != NULL && strcmp(r->original, r->address) != 0) {
            printf(" (expanded from ");
            put_address(r->original);
            putchar(')');
        }
        printf("  %s", state_text(r->state));
        if (r->reason != NULL) {
            printf(": ");
            put_str(r->reason);
        }
        putchar('\n');
    }
}

static int cmd_list(const struct queue *q, const char *unused)
{
    (void)unused;
    struct entry *v = NULL;
    size_t n = 0, cap = 0, shown = 0;
    int rc =
        collect(q, Q_ACTIVE, &v, &n, &cap) == 0 && collect(q, Q_HOLD, &v, &n, &cap) == 0 ? 0 : 1;
    if (n > 0)
        qsort(v, n, sizeof(*v), entry_cmp);
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        struct queue_envelope env;
        struct stat st;
        const char *error;
        int r = load(q, v[i].sub, v[i].id, &env, &st, &error);
        if (r == -2)
            continue; /* delivered or deleted since the listing */
        if (r < 0) {
            printf("%s: unreadable (%s)%s\n\n", v[i].id, error,
                   v[i].sub == Q_HOLD ? " [held]" : "");
        } else {
            list_entry(&v[i], &env, &st, now);
            putchar('\n');
            queue_envelope_free(&env);
        }
        shown++;
    }
    free(v);
    if (shown == 0)
        printf("queue is empty\n");
    else
        printf("%zu message%s in the queue\n", shown, shown == 1 ? "" : "s");
    return rc;
}

/* --- show ------------------------------------------------------------------------ */

static void show_rcpt(const struct queue_rcpt *r)
{
    static const char *const notify[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
    printf("recipient:  ");
    put_address(r->address);
    printf("  %s (route %s, notify ", state_text(r->state),
           r->route == ROUTE_LOCAL    ? "local"
           : r->route == ROUTE_REMOTE ? "remote"
                                      : "not decided");
    if (r->notify == 0)
        printf("default");
    for (unsigned b = 0, first = 1; b < 4; b++)
        if (r->notify & (1u << b)) {
            printf("%s%s", first ? "" : ",", notify[b]);
            first = 0;
        }
    if (r->dsn_orcpt != NULL) {
        printf(", orcpt ");
        put_str(r->dsn_orcpt);
    }
    if (r->original != NULL && strcmp(r->original, r->address) != 0) {
        printf(", expanded from ");
        put_address(r->original);
    }
    printf(")\n");
    if (r->reason != NULL) {
        printf("  reason:   ");
        put_str(r->reason);
        putchar('\n');
    }
}

static void show_field(const char *name, const char *value)
{
    if (value == NULL)
        return;
    printf("%-12s", name);
    put_str(value);
    putchar('\n');
}

static void show_envelope(const struct queue_envelope *env, int sub, const struct stat *st)
{
    static const char *const body[] = {"7BIT", "8BITMIME", "BINARYMIME"};
    static const char *const ret[] = {"default", "FULL", "HDRS"};
    char t[40];
    printf("id:         %s\n", env->id);
    if (sub == Q_HOLD)
        printf("queue:      held (not worked on until released)\n");
    else
        printf("queue:      active, next attempt %s%s\n",
               iso_time((int64_t)st->st_mtime, t, sizeof(t)),
               st->st_mtime <= time(NULL) ? " (due)" : "");
    printf("arrival:    %s\n", iso_time(env->arrival, t, sizeof(t)));
    printf("attempts:   %u\n", env->attempts);
    printf("size:       %llu bytes\n", (unsigned long long)env->size);
    printf("from:       ");
    put_address(env->from);
    putchar('\n');
    show_field("helo:", env->helo);
    show_field("client:", env->client_ip);
    show_field("protocol:", env->protocol);
    show_field("auth:", env->auth_user);
    show_field("tls:", env->tls_version);
    show_field("cipher:", env->tls_cipher);
    show_field("envid:", env->envid);
    printf("options:    body %s, ret %s%s%s\n", body[env->body % 3], ret[env->ret % 3],
           env->submission ? ", submission" : "", env->smtputf8 ? ", smtputf8" : "");
    for (size_t i = 0; i < env->nrcpts; i++)
        show_rcpt(&env->rcpts[i]);
}

/* The header of data/ID: up to the empty line, at most HEADER_MAX bytes. */
static int show_header(const struct queue *q, const char *id)
{
    struct stat st;
    int fd = open_file(q->dir[Q_DATA], id, &st);
    if (fd < 0) {
        path_error(q, Q_DATA, id, "cannot read the message", errno);
        return 1;
    }
    char *buf = petrel_malloc(HEADER_MAX);
    size_t len = 0;
    ssize_t n = 1;
    while (len < HEADER_MAX && n > 0) {
        n = read(fd, buf + len, HEADER_MAX - len);
        if (n > 0)
            len += (size_t)n;
        else if (n < 0 && errno == EINTR)
            n = 1;
    }
    int e = errno;
    close(fd);
    printf("\nheader:\n");
    bool ended = false;
    for (size_t at = 0; at < len && !ended;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - buf) : len, line = end - at;
        if (line > 0 && buf[end - 1] == '\r' && nl != NULL)
            line--;
        ended = nl != NULL && line == 0;
        if (!ended && (nl != NULL || n == 0)) { /* a partial last line only at the end */
            put_escaped(stdout, buf + at, line);
            putchar('\n');
        }
        at = end + 1;
    }
    free(buf);
    if (n < 0) {
        path_error(q, Q_DATA, id, "cannot read", e);
        return 1;
    }
    if (!ended && len == HEADER_MAX)
        printf("[the header is longer than %d KiB: cut]\n", HEADER_MAX / 1024);
    return 0;
}

static int cmd_show(const struct queue *q, const char *id)
{
    struct queue_envelope env;
    struct stat st;
    const char *error;
    int sub = Q_ACTIVE, r = load(q, sub, id, &env, &st, &error);
    if (r == -2)
        r = load(q, sub = Q_HOLD, id, &env, &st, &error);
    if (r == -2)
        return no_such_message(id);
    if (r < 0) {
        fprintf(stderr, "petrelctl: %s/%s/%s: unreadable (%s)\n", q->root, sub_names[sub], id,
                error);
        return 1;
    }
    show_envelope(&env, sub, &st);
    queue_envelope_free(&env);
    return show_header(q, id);
}

/* --- changes ------------------------------------------------------------------------ */

static int flush_all(const struct queue *q)
{
    struct entry *v = NULL;
    size_t n = 0, cap = 0, done = 0;
    int rc = collect(q, Q_ACTIVE, &v, &n, &cap) == 0 ? 0 : 1;
    /* Without the lock: an entry the runner has now is being tried anyway. */
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (fstatat(q->dir[Q_ACTIVE], v[i].id, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (utimensat(q->dir[Q_ACTIVE], v[i].id, times_now, AT_SYMLINK_NOFOLLOW) == 0)
            done++;
        else if (errno != ENOENT) {
            path_error(q, Q_ACTIVE, v[i].id, "cannot flush", errno);
            rc = 1;
        }
    }
    free(v);
    printf("%zu message%s flushed\n", done, done == 1 ? "" : "s");
    return rc;
}

static int cmd_flush(const struct queue *q, const char *id)
{
    if (id == NULL)
        return flush_all(q);
    int fd = lock_or_print(q, Q_ACTIVE, id);
    if (fd < 0) {
        if (fd == -2)
            return 1;
        if (!exists(q, Q_HOLD, id))
            return no_such_message(id);
        fprintf(stderr, "petrelctl: queue: %s is held: release it to have it delivered\n", id);
        return 1;
    }
    int rc = 0;
    if (futimens(fd, times_now) < 0) {
        path_error(q, Q_ACTIVE, id, "cannot flush", errno);
        rc = 1;
    }
    close(fd);
    if (rc == 0)
        printf("1 message flushed\n");
    return rc;
}

static int cmd_delete(const struct queue *q, const char *id)
{
    int sub = Q_ACTIVE, fd = lock_or_print(q, sub, id);
    if (fd == -1)
        fd = lock_or_print(q, sub = Q_HOLD, id);
    if (fd < 0)
        return fd == -1 ? no_such_message(id) : 1;
    /* The envelope first: without it the message is not queued, and a data
     * file left alone is removed by petreld when it starts. */
    if (unlinkat(q->dir[sub], id, 0) < 0) {
        path_error(q, sub, id, "cannot delete", errno);
        close(fd);
        return 1;
    }
    int rc = sync_dir(q, sub) == 0 ? 0 : 1;
    close(fd);
    if (q->dir[Q_DATA] >= 0 && unlinkat(q->dir[Q_DATA], id, 0) < 0 && errno != ENOENT) {
        path_error(q, Q_DATA, id, "message deleted, but cannot remove its data file", errno);
        rc = 1;
    }
    printf("%s deleted\n", id);
    return rc;
}

static int cmd_hold(const struct queue *q, const char *id)
{
    int fd = lock_or_print(q, Q_ACTIVE, id);
    if (fd < 0) {
        if (fd == -2)
            return 1;
        if (!exists(q, Q_HOLD, id))
            return no_such_message(id);
        fprintf(stderr, "petrelctl: queue: %s is already held\n", id);
        return 1;
    }
    int rc = move(q, Q_ACTIVE, Q_HOLD, id) == 0 ? 0 : 1;
    close(fd);
    if (rc == 0)
        printf("%s held\n", id);
    return rc;
}

static int cmd_release(const struct queue *q, const char *id)
{
    int fd = lock_or_print(q, Q_HOLD, id);
    if (fd < 0) {
        if (fd == -2)
            return 1;
        if (!exists(q, Q_ACTIVE, id))
            return no_such_message(id);
        fprintf(stderr, "petrelctl: queue: %s is not held\n", id);
        return 1;
    }
    /* Due now, set before the move: once in active/ the runner may try it
     * and reschedule it at once, and that time must stay. */
    int rc = 0;
    if (futimens(fd, times_now) < 0) {
        path_error(q, Q_HOLD, id, "cannot release", errno);
        rc = 1;
    } else if (move(q, Q_HOLD, Q_ACTIVE, id) < 0) {
        rc = 1;
    }
    close(fd);
    if (rc == 0)
        printf("%s released\n", id);
    return rc;
}

/* --- the command ------------------------------------------------------------------- */

int ctl_queue_main(const char *conf, int argc, char **argv)
{
    static const struct {
        const char *name;
        int min, max; /* words after the name */
        int (*run)(const struct queue *q, const char *id);
    } commands[] = {
        {"list", 0, 0, cmd_list},     {"show", 1, 1, cmd_show}, {"flush", 0, 1, cmd_flush},
        {"delete", 1, 1, cmd_delete}, {"hold", 1, 1, cmd_hold}, {"release", 1, 1, cmd_release},
    };
    if (argc < 1 || strcmp(argv[0], "queue") != 0)
        return -1;
    int words = argc - 2;
    size_t k = 0;
    for (; argc >= 2 && k < sizeof(commands) / sizeof(commands[0]); k++)
        if (strcmp(argv[1], commands[k].name) == 0)
            break;
    if (argc < 2 || k == sizeof(commands) / sizeof(commands[0]) || words < commands[k].min ||
        words > commands[k].max) {
        fprintf(stderr, "usage: petrelctl [--config FILE] queue list | show ID | flush [ID] | "
                        "delete ID | hold ID | release ID\n");
        return 2;
    }
    const char *id = words == 1 ? argv[2] : NULL;
    if (id != NULL && !queue_id_valid(id)) {
        fprintf(stderr, "petrelctl: queue: '");
        put_escaped(stderr, id, strlen(id));
        fprintf(stderr, "' is not a queue id (%d characters, 0-9 and A-V)\n", QUEUE_ID_LEN);
        return 1;
    }
    struct queue q;
    if (queue_open(&q, conf) < 0)
        return 1;
    int rc = commands[k].run(&q, id);
    queue_close(&q);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "petrelctl: standard output: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}
