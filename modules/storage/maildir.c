/* Maildir files: unique names that carry the size and the UID, the
 * tmp/ write with fsync, flag letters in the ":2," suffix (kept in sync so
 * that mutt and other Maildir readers see them; keywords live only in the
 * index), and directory syncs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "storage_private.h"

#define IO_CHUNK 65536

static atomic_uint name_counter;

/* Maildir info letters in ASCII order, as the specification asks. */
static const struct {
    char letter;
    uint32_t flag;
} letters[] = {
    {'D', PETREL_STORAGE_DRAFT}, {'F', PETREL_STORAGE_FLAGGED}, {'R', PETREL_STORAGE_ANSWERED},
    {'S', PETREL_STORAGE_SEEN},  {'T', PETREL_STORAGE_DELETED},
};

void storage_maildir_flag_chars(uint32_t flags, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++)
        if (flags & letters[i].flag)
            out[o++] = letters[i].letter;
    out[o] = '\0';
}

static bool parse_number(const char *p, uint64_t max, uint64_t *r)
{
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > max)
            return false;
    }
    if (*p != '\0' && *p != ',' && *p != ':')
        return false;
    *r = v;
    return true;
}

bool storage_maildir_parse(const char *name, struct storage_mdname *r)
{
    const char *colon = strchr(name, ':');
    size_t blen = colon != NULL ? (size_t)(colon - name) : strlen(name);
    uint64_t v;
    memset(r, 0, sizeof(*r));
    r->size = UINT64_MAX;
    if (blen == 0 || blen >= sizeof(r->base) || name[0] == '.')
        return false;
    memcpy(r->base, name, blen);
    r->base[blen] = '\0';
    for (const char *p = strchr(r->base, ','); p != NULL; p = strchr(p + 1, ',')) {
        if (strncmp(p, ",S=", 3) == 0 && parse_number(p + 3, UINT64_MAX / 10, &v))
            r->size = v;
        else if (strncmp(p, ",U=", 3) == 0 && parse_number(p + 3, UINT32_MAX, &v))
            r->uid = (uint32_t)v;
    }
    if (colon != NULL && strncmp(colon, ":2,", 3) == 0) {
        r->has_info = true;
        for (const char *p = colon + 3; *p != '\0'; p++)
            for (size_t i = 0; i < sizeof(letters) / sizeof(letters[0]); i++)
                if (*p == letters[i].letter)
                    r->flags |= letters[i].flag;
    }
    return true;
}

bool storage_maildir_new_base(uint64_t size, uint32_t uid, char *base, size_t size_b)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned q = atomic_fetch_add(&name_counter, 1);
    if (uid != 0)
        return petrel_snprintf(base, size_b, "%lld.M%06ldP%ldQ%u.%s,S=%" PRIu64 ",U=%" PRIu32,
                               (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), q,
                               storage_env.host, size, uid);
    return petrel_snprintf(base, size_b, "%lld.M%06ldP%ldQ%u.%s,S=%" PRIu64, (long long)tv.tv_sec,
                           (long)tv.tv_usec, (long)getpid(), q, storage_env.host, size);
}

bool storage_maildir_set_uid(const char *base, uint32_t uid, char *out, size_t size)
{
    char tmp[STORAGE_MAX_FILENAME + 1];
    if (!petrel_strlcpy(tmp, base, sizeof(tmp)))
        return false;
    char *u = strstr(tmp, ",U=");
    if (u != NULL) {
        char *end = strchr(u + 1, ',');
        if (end != NULL)
            memmove(u, end, strlen(end) + 1);
        else
            *u = '\0';
    }
    return petrel_snprintf(out, size, "%s,U=%" PRIu32, tmp, uid);
}

bool storage_maildir_name(const char *base, uint32_t flags, bool in_new, char *out, size_t size)
{
    char fl[8];
    if (in_new)
        return petrel_strlcpy(out, base, size);
    storage_maildir_flag_chars(flags, fl);
    return petrel_snprintf(out, size, "%s:2,%s", base, fl);
}

bool storage_maildir_path(char *out, size_t size, const char *dir, bool in_new, const char *name)
{
    return petrel_snprintf(out, size, "%s/%s/%s", dir, in_new ? "new" : "cur", name);
}

/* A new directory entry survives a power loss only once the directory
 * holding it is synced: the folder in the account (or the account in its
 * domain), and tmp/ new/ cur/ in the folder. */
int storage_maildir_mkdirs(const char *dir)
{
    static const char *const subs[] = {"", "/tmp", "/new", "/cur"};
    char path[PATH_MAX];
    bool made_sub = false;
    for (size_t i = 0; i < 4; i++) {
        if (!petrel_snprintf(path, sizeof(path), "%s%s", dir, subs[i]))
            return PETREL_STORAGE_INVALID_NAME;
        if (mkdir(path, 0700) < 0) {
            if (errno == EEXIST)
                continue;
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "mkdir %s: %s", path, strerror(errno));
            return errno == ENAMETOOLONG ? PETREL_STORAGE_INVALID_NAME : PETREL_STORAGE_TEMPFAIL;
        }
        if (i == 0) {
            int ret = storage_maildir_fsync_parent(dir);
            if (ret != PETREL_STORAGE_OK)
                return ret;
        } else {
            made_sub = true;
        }
    }
    return made_sub ? storage_maildir_fsync_dir(dir, "") : PETREL_STORAGE_OK;
}

int storage_maildir_fsync_parent(const char *path)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return storage_maildir_fsync_dir(".", "");
    size_t n = (size_t)(slash - path);
    if (n >= sizeof(parent))
        return PETREL_STORAGE_TEMPFAIL;
    memcpy(parent, path, n);
    parent[n] = '\0';
    return storage_maildir_fsync_dir(n > 0 ? parent : "/", "");
}

int storage_maildir_fsync_dir(const char *dir, const char *sub)
{
    char path[PATH_MAX];
    if (storage_test_fault != NULL && storage_test_fault("fsync_dir"))
        return PETREL_STORAGE_TEMPFAIL;
    if (!storage_env.fsync)
        return PETREL_STORAGE_OK;
    if (!petrel_snprintf(path, sizeof(path), "%s%s%s", dir, sub[0] ? "/" : "", sub))
        return PETREL_STORAGE_TEMPFAIL;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "fsync %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return PETREL_STORAGE_TEMPFAIL;
    }
    close(fd);
    return PETREL_STORAGE_OK;
}

/* Collects the header block (up to and with the empty line) of a message
 * fed in pieces, within PETREL_STORAGE_MAX_HEADER bytes. */
struct header_grab {
    struct petrel_buf *out;
    size_t line_len;
    bool done;
};

static void header_feed(struct header_grab *g, const char *data, size_t len)
{
    size_t i;
    if (g->done || g->out == NULL)
        return;
    for (i = 0; i < len && !g->done; i++) {
        if (data[i] == '\n') {
            g->done = g->line_len == 0;
            g->line_len = 0;
        } else if (data[i] != '\r') {
            g->line_len++;
        }
    }
    if (!petrel_buf_append(g->out, data, i))
        g->done = true; /* over the bound: keep what fits */
}

void storage_maildir_header_of(const char *data, size_t len, struct petrel_buf *out)
{
    struct header_grab g = {out, 0, false};
    header_feed(&g, data, len < PETREL_STORAGE_MAX_HEADER ? len : PETREL_STORAGE_MAX_HEADER);
}

void storage_maildir_read_header(int fd, struct petrel_buf *out)
{
    char buf[8192];
    struct header_grab g = {out, 0, false};
    off_t off = 0;
    while (!g.done && off < PETREL_STORAGE_MAX_HEADER) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n <= 0)
            break;
        header_feed(&g, buf, (size_t)n);
        off += n;
    }
}

static bool write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Copy exactly len bytes from the caller's fd. */
static int copy_fd(int out, int in, uint64_t len, struct header_grab *g)
{
    char *buf = petrel_malloc(IO_CHUNK);
    int ret = PETREL_STORAGE_OK;
    while (len > 0) {
        ssize_t n = read(in, buf, len < IO_CHUNK ? (size_t)len : IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n == 0 ? PETREL_STORAGE_INVALID_ARG : PETREL_STORAGE_TEMPFAIL;
            break;
        }
        header_feed(g, buf, (size_t)n);
        if (!write_all(out, buf, (size_t)n)) {
            ret = PETREL_STORAGE_TEMPFAIL;
            break;
        }
        len -= (uint64_t)n;
    }
    free(buf);
    return ret;
}

int storage_maildir_write_tmp(const char *dir, const char *base,
                              const struct petrel_storage_source *src, struct petrel_buf *header_r)
{
    char path[PATH_MAX];
    struct header_grab g = {header_r, 0, false};
    int ret = PETREL_STORAGE_OK;
    if (!petrel_snprintf(path, sizeof(path), "%s/tmp/%s", dir, base))
        return PETREL_STORAGE_TEMPFAIL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "create %s: %s", path, strerror(errno));
        return PETREL_STORAGE_TEMPFAIL;
    }
    if (src->fd >= 0) {
        ret = copy_fd(fd, src->fd, src->fd_len, &g);
    } else {
        header_feed(&g, src->data,
                    src->len < PETREL_STORAGE_MAX_HEADER ? src->len : PETREL_STORAGE_MAX_HEADER);
        if (!write_all(fd, src->data, src->len))
            ret = PETREL_STORAGE_TEMPFAIL;
    }
    /* The data must be on disk before the rename makes it visible. */
    if (ret == PETREL_STORAGE_OK && storage_env.fsync && fsync(fd) < 0)
        ret = PETREL_STORAGE_TEMPFAIL;
    if (close(fd) < 0 && ret == PETREL_STORAGE_OK)
        ret = PETREL_STORAGE_TEMPFAIL;
    if (ret != PETREL_STORAGE_OK) {
        if (ret == PETREL_STORAGE_TEMPFAIL)
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "write %s: %s", path, strerror(errno));
        unlink(path);
    }
    return ret;
}
