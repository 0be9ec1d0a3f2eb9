/* The processing module's admin commands (petrel/admin.h): petrelctl queue
 * list|show|flush|delete|hold|release, on the queue files (their layout is
 * in envelope.h). Online they run in petreld, as the daemon's user that
 * owns the queue; offline in petrelctl, often as root. The queue directory
 * is the one the module computes from its settings (proc_queue_root).
 *
 * An entry is changed only under the lock the queue runner takes (flock
 * on the envelope, then a check that the name still is the locked file),
 * so it is never deleted or held in the middle of a delivery attempt.
 * Whoever runs them, every file is reached through directory descriptors
 * opened without following symbolic links, and only regular files are
 * read: the queue's contents are not trusted. */
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

#include <petrel/admin.h>
#include <petrel/buf.h>
#include <petrel/mem.h>

#include "processing.h"

#define LOCK_WAIT_MS 10000 /* how long a busy entry is waited for */
#define LOCK_RETRY_MS 50
#define HEADER_MAX (64 * 1024) /* of a message's header shown */

enum { Q_ACTIVE, Q_HOLD, Q_DATA, Q_NSUB };
static const char *const sub_names[Q_NSUB] = {"active", "hold", "data"};

struct queue {
    struct petrel_admin_call *call;
    char root[sizeof(proc_env.queue)];
    int dir[Q_NSUB]; /* -1: the directory does not exist (yet) */
};

/* Both times of a file to now: the runner works on entries whose
 * modification time has come. */
static const struct timespec times_now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};

/* --- output ---------------------------------------------------------------- */

static void put_str(const struct queue *q, const char *s)
{
    petrel_admin_print_safe(q->call, s, strlen(s));
}

static void put_address(const struct queue *q, const char *s)
{
    petrel_admin_print(q->call, "<");
    put_str(q, s);
    petrel_admin_print(q->call, ">");
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

static const char *route_text(char route)
{
    return route == ROUTE_LOCAL ? "local" : route == ROUTE_REMOTE ? "remote" : "not decided";
}

/* The address a recipient was expanded from, or NULL if it was not. */
static const char *expanded_from(const struct queue_rcpt *r)
{
    return r->original != NULL && strcmp(r->original, r->address) != 0 ? r->original : NULL;
}

/* Where a remote recipient's last attempt went, else its domain; NULL
 * for others. */
static const char *next_hop(const struct queue_rcpt *r)
{
    if (r->route != ROUTE_REMOTE)
        return NULL;
    if (r->next_hop != NULL)
        return r->next_hop;
    const char *at = strrchr(r->address, '@');
    return at != NULL ? at + 1 : NULL;
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

static int path_error(const struct queue *q, int sub, const char *id, const char *what, int e)
{
    char path[PATH_MAX + 64];
    if (!queue_path(path, sizeof(path), q->root, sub_names[sub], id))
        petrel_strlcpy(path, q->root, sizeof(path));
    return petrel_admin_fail(q->call, "%s%s%s: %s", what, what[0] != '\0' ? " " : "", path,
                             describe(e));
}

static int no_such_message(const struct queue *q, const char *id)
{
    return petrel_admin_fail(q->call, "queue: %s: no such message", id);
}

/* --- finding the queue ------------------------------------------------------ */

static void queue_close(struct queue *q)
{
    for (int i = 0; i < Q_NSUB; i++)
        if (q->dir[i] >= 0)
            close(q->dir[i]);
}

/* The queue's directories. One that does not exist yet (the daemon makes
 * them when it starts) is left at -1: an empty queue. */
static int queue_open(struct queue *q, struct petrel_admin_call *call)
{
    q->call = call;
    for (int i = 0; i < Q_NSUB; i++)
        q->dir[i] = -1;
    const struct proc_config *c = petrel_admin_config(call);
    /* check refuses these before a command runs; never walk elsewhere. */
    if (c->queue_dir[0] == '\0' || strstr(c->queue_dir, "..") != NULL)
        return petrel_admin_fail(call, "the processing module's queue_dir must be a path "
                                       "without '..'");
    if (!proc_queue_root(c, q->root, sizeof(q->root)))
        return petrel_admin_fail(call, "the processing module's queue_dir is too long");
    int root = open(q->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return errno == ENOENT ? 0 : petrel_admin_fail(call, "%s: %s", q->root, strerror(errno));
    for (int i = 0; i < Q_NSUB; i++) {
        q->dir[i] = openat(root, sub_names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (q->dir[i] < 0 && errno != ENOENT) {
            path_error(q, i, NULL, "", errno);
            close(root);
            queue_close(q);
            return 1;
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

/* Why an entry cannot be read; its own per call, since calls run on
 * several workers at once in the daemon. */
struct why {
    char text[100];
};

/* Read and parse the envelope open at fd. */
static int read_envelope(int fd, const struct stat *st, const char *id, struct queue_envelope *env,
                         const char **error_r, struct why *why)
{
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
        petrel_snprintf(why->text, sizeof(why->text), "the envelope is for %s", env->id);
        *error_r = why->text;
        queue_envelope_free(env);
        ok = false;
    }
    return ok ? 0 : -1;
}

/* 0 with env and st; -1 unreadable (*error_r); -2 not there. */
static int load(const struct queue *q, int sub, const char *id, struct queue_envelope *env,
                struct stat *st, const char **error_r, struct why *why)
{
    int fd = open_file(q->dir[sub], id, st);
    if (fd < 0) {
        *error_r = describe(errno);
        return errno == ENOENT ? -2 : -1;
    }
    int r = read_envelope(fd, st, id, env, error_r, why);
    close(fd);
    return r;
}

static long elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Open and lock an entry as the queue runner does (runner.c attempt()):
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
 * another error (said). */
static int lock_or_fail(const struct queue *q, int sub, const char *id)
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

/* Lock id in sub for a change. When it is not there, say why: it is in
 * other (elsewhere says so) or nowhere. The descriptor, or -1 (said). */
static int lock_for_change(const struct queue *q, int sub, int other, const char *id,
                           const char *elsewhere)
{
    int fd = lock_or_fail(q, sub, id);
    if (fd >= 0 || fd == -2)
        return fd >= 0 ? fd : -1;
    if (!exists(q, other, id))
        no_such_message(q, id);
    else
        petrel_admin_fail(q->call, "queue: %s %s", id, elsewhere);
    return -1;
}

/* A directory entry made durable; errors said. */
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
            petrel_admin_fail(q->call, "queue: %s is both in %s/ and in %s/: left alone", id,
                              sub_names[from], sub_names[to]);
        else
            path_error(q, from, id, "cannot move", errno);
        return -1;
    }
    return sync_dir(q, to) == 0 && sync_dir(q, from) == 0 ? 0 : -1;
}

/* An entry became due: online, the runner looks at once rather than at
 * its next tick (offline there is no runner; it looks when it starts). */
static void wake_runner(const struct queue *q)
{
    if (petrel_admin_online(q->call))
        proc_runner_kick();
}

/* --- rows (--json) ------------------------------------------------------------ */

/* The fields list and show share, of one recipient (r NULL: none, for an
 * unreadable entry, env NULL then too). */
static void row_fields(const struct queue *q, const char *id, int sub,
                       const struct queue_envelope *env, const struct stat *st,
                       const struct queue_rcpt *r, const char *error)
{
    struct petrel_admin_call *call = q->call;
    char t[40];
    petrel_admin_str(call, "id", id);
    petrel_admin_str(call, "queue", sub == Q_HOLD ? "hold" : "active");
    if (env != NULL) {
        petrel_admin_int(call, "size", env->size > INT64_MAX ? INT64_MAX : (int64_t)env->size);
        petrel_admin_str(call, "arrival", iso_time(env->arrival, t, sizeof(t)));
        petrel_admin_str(call, "sender", env->from);
        petrel_admin_int(call, "attempts", env->attempts);
        petrel_admin_str(call, "next_attempt",
                         sub == Q_HOLD ? NULL : iso_time((int64_t)st->st_mtime, t, sizeof(t)));
    } else {
        static const char *const keys[] = {"size", "arrival", "sender", "attempts", "next_attempt"};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            petrel_admin_str(call, keys[i], NULL);
    }
    petrel_admin_str(call, "recipient", r != NULL ? r->address : NULL);
    petrel_admin_str(call, "original", r != NULL ? expanded_from(r) : NULL);
    petrel_admin_str(call, "state", r != NULL ? state_text(r->state) : NULL);
    petrel_admin_str(call, "reason", r != NULL ? r->reason : NULL);
    petrel_admin_str(call, "next_hop", r != NULL ? next_hop(r) : NULL);
    petrel_admin_str(call, "error", error);
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

static void list_entry(const struct queue *q, const struct entry *e,
                       const struct queue_envelope *env, const struct stat *st, time_t now)
{
    struct petrel_admin_call *call = q->call;
    char t[40];
    petrel_admin_print(call, "%s  %llu  %s  %s", e->id, (unsigned long long)env->size,
                       iso_time(env->arrival, t, sizeof(t)), e->sub == Q_HOLD ? "HELD  " : "");
    put_address(q, env->from);
    petrel_admin_print(call, "\n");
    if (e->sub == Q_ACTIVE)
        petrel_admin_print(call, "  next attempt %s%s, %u attempt%s so far\n",
                           iso_time((int64_t)st->st_mtime, t, sizeof(t)),
                           st->st_mtime <= now ? " (due)" : "", env->attempts,
                           env->attempts == 1 ? "" : "s");
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        petrel_admin_print(call, "  ");
        put_address(q, r->address);
        if (expanded_from(r) != NULL) {
            petrel_admin_print(call, " (expanded from ");
            put_address(q, r->original);
            petrel_admin_print(call, ")");
        }
        petrel_admin_print(call, "  %s", state_text(r->state));
        if (r->route == ROUTE_REMOTE && r->next_hop != NULL) { /* tried: where */
            petrel_admin_print(call, " via ");
            put_str(q, r->next_hop);
        }
        if (r->reason != NULL) {
            petrel_admin_print(call, ": ");
            put_str(q, r->reason);
        }
        petrel_admin_print(call, "\n");
        row_fields(q, e->id, e->sub, env, st, r, NULL);
        petrel_admin_row_end(call);
    }
}

static int cmd_list(struct queue *q, const char *unused)
{
    (void)unused;
    struct petrel_admin_call *call = q->call;
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
        struct why why;
        int r = load(q, v[i].sub, v[i].id, &env, &st, &error, &why);
        if (r == -2)
            continue; /* delivered or deleted since the listing */
        if (r < 0) {
            petrel_admin_print(call, "%s: unreadable (%s)%s\n\n", v[i].id, error,
                               v[i].sub == Q_HOLD ? " [held]" : "");
            row_fields(q, v[i].id, v[i].sub, NULL, NULL, NULL, error);
            petrel_admin_row_end(call);
        } else {
            list_entry(q, &v[i], &env, &st, now);
            petrel_admin_print(call, "\n");
            queue_envelope_free(&env);
        }
        shown++;
    }
    free(v);
    if (shown == 0)
        petrel_admin_print(call, "queue is empty\n");
    else
        petrel_admin_print(call, "%zu message%s in the queue\n", shown, shown == 1 ? "" : "s");
    return rc;
}

/* --- show ------------------------------------------------------------------------ */

static const char *const notify_words[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
static const char *const body_words[] = {"7BIT", "8BITMIME", "BINARYMIME"};
static const char *const ret_words[] = {"default", "FULL", "HDRS"};

static void show_rcpt(const struct queue *q, const struct queue_rcpt *r)
{
    struct petrel_admin_call *call = q->call;
    petrel_admin_print(call, "recipient:  ");
    put_address(q, r->address);
    petrel_admin_print(call, "  %s (route %s, notify ", state_text(r->state), route_text(r->route));
    if (r->notify == 0)
        petrel_admin_print(call, "default");
    for (unsigned b = 0, first = 1; b < 4; b++)
        if (r->notify & (1u << b)) {
            petrel_admin_print(call, "%s%s", first ? "" : ",", notify_words[b]);
            first = 0;
        }
    if (r->dsn_orcpt != NULL) {
        petrel_admin_print(call, ", orcpt ");
        put_str(q, r->dsn_orcpt);
    }
    if (expanded_from(r) != NULL) {
        petrel_admin_print(call, ", expanded from ");
        put_address(q, r->original);
    }
    petrel_admin_print(call, ")\n");
    if (r->reason != NULL) {
        petrel_admin_print(call, "  reason:   ");
        put_str(q, r->reason);
        petrel_admin_print(call, "\n");
    }
    if (next_hop(r) != NULL) {
        petrel_admin_print(call, "  next hop: ");
        put_str(q, next_hop(r));
        petrel_admin_print(call, "\n");
    }
}

static void show_field(const struct queue *q, const char *name, const char *value)
{
    if (value == NULL)
        return;
    petrel_admin_print(q->call, "%-12s", name);
    put_str(q, value);
    petrel_admin_print(q->call, "\n");
}

static void show_envelope(const struct queue *q, const struct queue_envelope *env, int sub,
                          const struct stat *st)
{
    struct petrel_admin_call *call = q->call;
    char t[40];
    petrel_admin_print(call, "id:         %s\n", env->id);
    if (sub == Q_HOLD)
        petrel_admin_print(call, "queue:      held (not worked on until released)\n");
    else
        petrel_admin_print(call, "queue:      active, next attempt %s%s\n",
                           iso_time((int64_t)st->st_mtime, t, sizeof(t)),
                           st->st_mtime <= time(NULL) ? " (due)" : "");
    petrel_admin_print(call, "arrival:    %s\n", iso_time(env->arrival, t, sizeof(t)));
    petrel_admin_print(call, "attempts:   %u\n", env->attempts);
    petrel_admin_print(call, "size:       %llu bytes\n", (unsigned long long)env->size);
    petrel_admin_print(call, "from:       ");
    put_address(q, env->from);
    petrel_admin_print(call, "\n");
    show_field(q, "helo:", env->helo);
    show_field(q, "client:", env->client_ip);
    show_field(q, "protocol:", env->protocol);
    show_field(q, "auth:", env->auth_user);
    show_field(q, "tls:", env->tls_version);
    show_field(q, "cipher:", env->tls_cipher);
    show_field(q, "envid:", env->envid);
    petrel_admin_print(call, "options:    body %s, ret %s%s%s%s\n", body_words[env->body % 3],
                       ret_words[env->ret % 3], env->submission ? ", submission" : "",
                       env->smtputf8 ? ", smtputf8" : "", env->requiretls ? ", requiretls" : "");
    for (size_t i = 0; i < env->nrcpts; i++)
        show_rcpt(q, &env->rcpts[i]);
}

/* The start of data/ID, as read. */
struct header {
    char *buf;
    size_t len;
    int open_error; /* errno of opening it, or 0 */
    int read_error; /* errno of a failed read, or 0 */
    bool eof;       /* all of the file was read */
};

static void header_read(const struct queue *q, const char *id, struct header *h)
{
    *h = (struct header){0};
    struct stat st;
    int fd = open_file(q->dir[Q_DATA], id, &st);
    if (fd < 0) {
        h->open_error = errno;
        return;
    }
    h->buf = petrel_malloc(HEADER_MAX);
    ssize_t n = 1;
    while (h->len < HEADER_MAX && n > 0) {
        n = read(fd, h->buf + h->len, HEADER_MAX - h->len);
        if (n > 0)
            h->len += (size_t)n;
        else if (n < 0 && errno == EINTR)
            n = 1;
    }
    h->read_error = n < 0 ? errno : 0;
    h->eof = n == 0;
    close(fd);
}

/* The header's lines, up to the empty line, without their CR: printed
 * (json NULL) or gathered into json, one "\n" after each. Whether it was
 * cut at HEADER_MAX. */
static bool header_lines(const struct queue *q, const struct header *h, struct petrel_buf *json)
{
    bool ended = false;
    for (size_t at = 0; at < h->len && !ended;) {
        const char *nl = memchr(h->buf + at, '\n', h->len - at);
        size_t end = nl != NULL ? (size_t)(nl - h->buf) : h->len, line = end - at;
        if (line > 0 && h->buf[end - 1] == '\r' && nl != NULL)
            line--;
        ended = nl != NULL && line == 0;
        if (!ended && (nl != NULL || h->eof)) { /* a partial last line only at the end */
            if (json == NULL) {
                petrel_admin_print_safe(q->call, h->buf + at, line);
                petrel_admin_print(q->call, "\n");
            } else {
                petrel_buf_append(json, h->buf + at, line);
                petrel_buf_append(json, "\n", 1);
            }
        }
        at = end + 1;
    }
    return !ended && h->len == HEADER_MAX;
}

/* The header as one string for JSON, or NULL when the file could not be
 * opened. A NUL byte (which would end the string) becomes 0xFF, which the
 * JSON shows as U+FFFD like any other invalid byte. */
static char *header_json(const struct queue *q, const struct header *h)
{
    if (h->open_error != 0)
        return NULL;
    struct petrel_buf b;
    petrel_buf_init(&b, SIZE_MAX);
    header_lines(q, h, &b);
    char *s = petrel_malloc(b.len + 1);
    memcpy(s, petrel_buf_head(&b), b.len);
    s[b.len] = '\0';
    for (size_t i = 0; i < b.len; i++)
        if (s[i] == '\0')
            s[i] = (char)0xff;
    petrel_buf_free(&b);
    return s;
}

static void show_rows(const struct queue *q, const struct queue_envelope *env, int sub,
                      const struct stat *st, const char *header)
{
    struct petrel_admin_call *call = q->call;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        row_fields(q, env->id, sub, env, st, r, NULL);
        petrel_admin_str(call, "helo", env->helo);
        petrel_admin_str(call, "client", env->client_ip);
        petrel_admin_str(call, "protocol", env->protocol);
        petrel_admin_str(call, "auth", env->auth_user);
        petrel_admin_str(call, "tls", env->tls_version);
        petrel_admin_str(call, "cipher", env->tls_cipher);
        petrel_admin_str(call, "envid", env->envid);
        petrel_admin_str(call, "body", body_words[env->body % 3]);
        petrel_admin_str(call, "ret", ret_words[env->ret % 3]);
        petrel_admin_bool(call, "submission", env->submission);
        petrel_admin_bool(call, "smtputf8", env->smtputf8);
        petrel_admin_bool(call, "requiretls", env->requiretls);
        petrel_admin_str(call, "route", route_text(r->route));
        const char *notify[4];
        size_t n = 0;
        for (unsigned b = 0; b < 4; b++)
            if (r->notify & (1u << b))
                notify[n++] = notify_words[b];
        petrel_admin_list(call, "notify", notify, n);
        petrel_admin_str(call, "orcpt", r->dsn_orcpt);
        petrel_admin_str(call, "header", header);
        petrel_admin_row_end(call);
    }
}

static int cmd_show(struct queue *q, const char *id)
{
    struct queue_envelope env;
    struct stat st;
    const char *error;
    struct why why;
    int sub = Q_ACTIVE, r = load(q, sub, id, &env, &st, &error, &why);
    if (r == -2)
        r = load(q, sub = Q_HOLD, id, &env, &st, &error, &why);
    if (r == -2)
        return no_such_message(q, id);
    if (r < 0)
        return petrel_admin_fail(q->call, "%s/%s/%s: unreadable (%s)", q->root, sub_names[sub], id,
                                 error);
    struct header h;
    header_read(q, id, &h);
    show_envelope(q, &env, sub, &st);
    if (petrel_admin_json(q->call)) {
        char *header = header_json(q, &h);
        show_rows(q, &env, sub, &st, header);
        free(header);
    }
    queue_envelope_free(&env);
    int rc = 0;
    if (h.open_error != 0) {
        rc = path_error(q, Q_DATA, id, "cannot read the message", h.open_error);
    } else {
        petrel_admin_print(q->call, "\nheader:\n");
        bool cut = header_lines(q, &h, NULL);
        if (h.read_error != 0)
            rc = path_error(q, Q_DATA, id, "cannot read", h.read_error);
        else if (cut)
            petrel_admin_print(q->call, "[the header is longer than %d KiB: cut]\n",
                               HEADER_MAX / 1024);
    }
    free(h.buf);
    return rc;
}

/* --- changes ------------------------------------------------------------------------ */

static int flush_all(struct queue *q)
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
        else if (errno != ENOENT)
            rc = path_error(q, Q_ACTIVE, v[i].id, "cannot flush", errno);
    }
    free(v);
    if (done > 0)
        wake_runner(q);
    petrel_admin_print(q->call, "%zu message%s flushed\n", done, done == 1 ? "" : "s");
    return rc;
}

static int cmd_flush(struct queue *q, const char *id)
{
    if (id == NULL)
        return flush_all(q);
    int fd = lock_for_change(q, Q_ACTIVE, Q_HOLD, id, "is held: release it to have it delivered");
    if (fd < 0)
        return 1;
    int rc = futimens(fd, times_now) < 0 ? path_error(q, Q_ACTIVE, id, "cannot flush", errno) : 0;
    close(fd);
    if (rc == 0) {
        wake_runner(q);
        petrel_admin_print(q->call, "1 message flushed\n");
    }
    return rc;
}

static int cmd_delete(struct queue *q, const char *id)
{
    int sub = Q_ACTIVE, fd = lock_or_fail(q, sub, id);
    if (fd == -1)
        fd = lock_or_fail(q, sub = Q_HOLD, id);
    if (fd < 0)
        return fd == -1 ? no_such_message(q, id) : 1;
    /* The envelope first: without it the message is not queued, and a data
     * file left alone is removed by petreld when it starts. */
    if (unlinkat(q->dir[sub], id, 0) < 0) {
        path_error(q, sub, id, "cannot delete", errno);
        close(fd);
        return 1;
    }
    int rc = sync_dir(q, sub) == 0 ? 0 : 1;
    close(fd);
    struct stat st;
    bool sized = q->dir[Q_DATA] >= 0 && fstatat(q->dir[Q_DATA], id, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (q->dir[Q_DATA] >= 0 && unlinkat(q->dir[Q_DATA], id, 0) < 0) {
        if (errno != ENOENT)
            rc = path_error(q, Q_DATA, id, "message deleted, but cannot remove its data file",
                            errno);
    } else if (sized && petrel_admin_online(q->call)) {
        proc_space_changed((uint64_t)st.st_size); /* MAIL may count on that room at once */
    }
    petrel_admin_print(q->call, "%s deleted\n", id);
    return rc;
}

static int cmd_hold(struct queue *q, const char *id)
{
    int fd = lock_for_change(q, Q_ACTIVE, Q_HOLD, id, "is already held");
    if (fd < 0)
        return 1;
    int rc = move(q, Q_ACTIVE, Q_HOLD, id) == 0 ? 0 : 1;
    close(fd);
    if (rc == 0)
        petrel_admin_print(q->call, "%s held\n", id);
    return rc;
}

static int cmd_release(struct queue *q, const char *id)
{
    int fd = lock_for_change(q, Q_HOLD, Q_ACTIVE, id, "is not held");
    if (fd < 0)
        return 1;
    /* Due now, set before the move: once in active/ the runner may try it
     * and reschedule it at once, and that time must stay. */
    int rc = 0;
    if (futimens(fd, times_now) < 0)
        rc = path_error(q, Q_HOLD, id, "cannot release", errno);
    else if (move(q, Q_HOLD, Q_ACTIVE, id) < 0)
        rc = 1;
    close(fd);
    if (rc == 0) {
        wake_runner(q);
        petrel_admin_print(q->call, "%s released\n", id);
    }
    return rc;
}

/* --- the commands ------------------------------------------------------------------- */

/* Checks the words (min to max of them, the last one an id when there is
 * one), opens the queue and runs the command. */
static int run(struct petrel_admin_call *call, int argc, char **argv, int min, int max,
               int (*cmd)(struct queue *q, const char *id))
{
    if (argc < min || argc > max)
        return petrel_admin_usage(call);
    const char *id = argc == 1 ? argv[0] : NULL;
    if (id != NULL && !queue_id_valid(id))
        return petrel_admin_fail(call, "queue: '%s' is not a queue id (%d characters, 0-9 and A-V)",
                                 id, QUEUE_ID_LEN);
    struct queue q;
    if (queue_open(&q, call) != 0)
        return 1;
    int rc = cmd(&q, id);
    queue_close(&q);
    return rc;
}

static int run_list(struct petrel_admin_call *call, int argc, char **argv)
{
    return run(call, argc, argv, 0, 0, cmd_list);
}

static int run_show(struct petrel_admin_call *call, int argc, char **argv)
{
    return run(call, argc, argv, 1, 1, cmd_show);
}

static int run_flush(struct petrel_admin_call *call, int argc, char **argv)
{
    return run(call, argc, argv, 0, 1, cmd_flush);
}

static int run_delete(struct petrel_admin_call *call, int argc, char **argv)
{
    return run(call, argc, argv, 1, 1, cmd_delete);
}

static int run_hold(struct petrel_admin_call *call, int argc, char **argv)
{
    return run(call, argc, argv, 1, 1, cmd_hold);
}

static int run_release(struct petrel_admin_call *call, int argc, char **argv)
{
    return run(call, argc, argv, 1, 1, cmd_release);
}

#define QUEUE_WHERE (PETREL_ADMIN_ONLINE | PETREL_ADMIN_OFFLINE)

const struct petrel_admin_command proc_admin_commands[] = {
    {"queue list", "", "queued and held messages, each recipient's state",
     QUEUE_WHERE | PETREL_ADMIN_OWN_TEXT, run_list},
    {"queue show", "ID", "a message's envelope and header", QUEUE_WHERE | PETREL_ADMIN_OWN_TEXT,
     run_show},
    {"queue flush", "[ID]", "make every queued message (or ID) due now", QUEUE_WHERE, run_flush},
    {"queue delete", "ID", "remove a message without a bounce", QUEUE_WHERE, run_delete},
    {"queue hold", "ID", "keep a message from delivery until released", QUEUE_WHERE, run_hold},
    {"queue release", "ID", "put a held message back, due at once", QUEUE_WHERE, run_release},
    {.name = NULL},
};
