/* The METADATA entries of an account (metadata_store.h): one file per
 * account in data_dir/imap-metadata, read whole, changed in memory and
 * written to a new file that replaces the old one by rename after fsync,
 * so a crash leaves the old or the new set, never a mix. Records are
 * [u32 length, bytes] for mailbox, entry and value. One lock for the
 * process serialises the read-change-write of every account's file;
 * changes are rare and small (bounded by METADATA_ENTRIES_MAX and
 * METADATA_VALUE_MAX). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "imap.h"
#include "metadata_store.h"

char imap_metadata_dir[4096];
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

/* The largest file: every entry at its largest, with its names. */
#define FILE_MAX                                                                                   \
    ((size_t)METADATA_ENTRIES_MAX * (METADATA_VALUE_MAX + METADATA_NAME_MAX + 4096 + 12))

void imap_metadata_free(struct imap_metadata *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].mailbox);
        free(m->v[i].entry);
        free(m->v[i].value);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

void imap_metadata_put(struct imap_metadata *m, const char *mailbox, const char *entry,
                       const char *value, size_t len)
{
    m->v = petrel_reallocarray(m->v, m->n + 1, sizeof(*m->v));
    struct imap_metadata_entry *e = &m->v[m->n++];
    e->mailbox = petrel_strdup(mailbox);
    e->entry = petrel_strdup(entry);
    e->value = petrel_malloc(len + 1);
    memcpy(e->value, value, len);
    e->value[len] = '\0';
    e->len = len;
}

/* The account's file name: bytes other than [a-z0-9.@_-] as %XX. */
static bool file_name(const char *user, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(imap_metadata_dir);
    if (n == 0 || n + 2 > size)
        return false;
    memcpy(out, imap_metadata_dir, n);
    out[n++] = '/';
    for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                     *p == '@' || *p == '_' || *p == '-';
        if (n + 4 >= size || (n > 0 && *p == '.' && out[n - 1] == '/'))
            return false; /* too long, or a dot file */
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return true;
}

static bool take(const unsigned char **p, const unsigned char *end, char **out, size_t *len_r)
{
    uint32_t len;
    if ((size_t)(end - *p) < 4)
        return false;
    memcpy(&len, *p, 4);
    *p += 4;
    if (len > (size_t)(end - *p))
        return false;
    *out = petrel_malloc((size_t)len + 1);
    memcpy(*out, *p, len);
    (*out)[len] = '\0';
    *p += len;
    *len_r = len;
    return true;
}

static int parse(const unsigned char *p, size_t size, struct imap_metadata *m)
{
    const unsigned char *end = p + size;
    while (p < end) {
        char *mailbox = NULL, *entry = NULL, *value = NULL;
        size_t ml, el, vl;
        bool ok = take(&p, end, &mailbox, &ml) && take(&p, end, &entry, &el) &&
                  take(&p, end, &value, &vl) && m->n < METADATA_ENTRIES_MAX;
        if (ok)
            imap_metadata_put(m, mailbox, entry, value, vl);
        free(mailbox);
        free(entry);
        free(value);
        if (!ok)
            return PETREL_STORAGE_TEMPFAIL;
    }
    return 0;
}

static int load(const char *path, struct imap_metadata *m)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : PETREL_STORAGE_TEMPFAIL;
    struct stat st;
    int err = PETREL_STORAGE_TEMPFAIL;
    if (fstat(fd, &st) == 0 && st.st_size >= 0 && (size_t)st.st_size <= FILE_MAX) {
        size_t size = (size_t)st.st_size, got = 0;
        unsigned char *buf = petrel_malloc(size + 1);
        while (got < size) {
            ssize_t r = read(fd, buf + got, size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got == size)
            err = parse(buf, size, m);
        free(buf);
    }
    close(fd);
    if (err != 0) {
        petrel_log(PETREL_LOG_ERROR, IMAP_LOG, "metadata file %s unreadable or damaged", path);
        imap_metadata_free(m);
    }
    return err;
}

static bool put_record(struct petrel_buf *b, const char *s, size_t len)
{
    uint32_t n = (uint32_t)len;
    return petrel_buf_append(b, &n, 4) && petrel_buf_append(b, s, len);
}

static int save(const char *path, const struct imap_metadata *m)
{
    struct petrel_buf b;
    petrel_buf_init(&b, FILE_MAX);
    bool ok = true;
    for (size_t i = 0; i < m->n && ok; i++) {
        const struct imap_metadata_entry *e = &m->v[i];
        ok = put_record(&b, e->mailbox, strlen(e->mailbox)) &&
             put_record(&b, e->entry, strlen(e->entry)) && put_record(&b, e->value, e->len);
    }
    char tmp[4200];
    ok = ok && petrel_snprintf(tmp, sizeof(tmp), "%s.new", path);
    int fd = ok ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    ok = fd >= 0;
    const char *p = petrel_buf_head(&b);
    for (size_t done = 0; ok && done < b.len;) {
        ssize_t w = write(fd, p + done, b.len - done);
        ok = w > 0;
        done += ok ? (size_t)w : 0;
    }
    if (fd >= 0) {
        ok = fsync(fd) == 0 && ok;
        ok = close(fd) == 0 && ok;
    }
    ok = ok && rename(tmp, path) == 0;
    petrel_buf_free(&b);
    if (!ok) {
        petrel_log(PETREL_LOG_ERROR, IMAP_LOG, "cannot write metadata file %s: %s", path,
                   strerror(errno));
        unlink(tmp);
    }
    return ok ? 0 : PETREL_STORAGE_TEMPFAIL;
}

int imap_metadata_change(const char *user, imap_metadata_fn *fn, void *arg)
{
    char path[4096];
    if (!file_name(user, path, sizeof(path)))
        return PETREL_STORAGE_TEMPFAIL;
    struct imap_metadata m = {NULL, 0};
    pthread_mutex_lock(&store_lock);
    int err = load(path, &m);
    bool changed = false;
    if (err == 0)
        err = fn(arg, &m, &changed);
    if (err == 0 && changed)
        err = save(path, &m);
    pthread_mutex_unlock(&store_lock);
    imap_metadata_free(&m);
    return err;
}

int imap_metadata_start(const char *data_dir, const char **error_r)
{
    if (!petrel_snprintf(imap_metadata_dir, sizeof(imap_metadata_dir), "%s/imap-metadata",
                         data_dir)) {
        *error_r = "the data directory's name is too long";
        return -1;
    }
    if (mkdir(imap_metadata_dir, 0700) != 0 && errno != EEXIST) {
        *error_r = "cannot create the METADATA directory (data_dir/imap-metadata)";
        return -1;
    }
    return 0;
}
