/* SEARCH helpers: case-insensitive (ASCII) substring matching on a header
 * field's unfolded value (from the cached header block) or on the raw body
 * streamed from the file, a piece at a time, never all in memory. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "storage_private.h"

#define SEARCH_CHUNK 65536
#define MAX_NEEDLE 255

void storage_search_init(struct storage_matcher *m, const char *needle)
{
    m->needle = needle;
    m->nlen = strlen(needle);
    m->tlen = 0;
    m->found = m->nlen == 0;
}

static bool match_at(const struct storage_matcher *m, const char *s)
{
    for (size_t j = 0; j < m->nlen; j++)
        if (tolower((unsigned char)s[j]) != tolower((unsigned char)m->needle[j]))
            return false;
    return true;
}

static bool find_in(const struct storage_matcher *m, const char *s, size_t len)
{
    for (size_t i = 0; i + m->nlen <= len; i++)
        if (match_at(m, s + i))
            return true;
    return false;
}

void storage_search_feed(struct storage_matcher *m, const char *data, size_t len)
{
    char join[2 * sizeof(m->tail)];
    if (m->found || len == 0)
        return;
    /* A match across the boundary: the kept tail plus the piece's start. */
    size_t head = len < m->nlen - 1 ? len : m->nlen - 1;
    memcpy(join, m->tail, m->tlen);
    memcpy(join + m->tlen, data, head);
    if (find_in(m, join, m->tlen + head) || find_in(m, data, len)) {
        m->found = true;
        return;
    }
    /* Keep the last nlen-1 bytes of everything seen so far. */
    size_t keep = m->nlen - 1, total = m->tlen + len;
    if (total <= keep) {
        memcpy(m->tail + m->tlen, data, len);
        m->tlen = total;
    } else if (len >= keep) {
        memcpy(m->tail, data + len - keep, keep);
        m->tlen = keep;
    } else {
        size_t from_tail = keep - len;
        memmove(m->tail, m->tail + m->tlen - from_tail, from_tail);
        memcpy(m->tail + from_tail, data, len);
        m->tlen = keep;
    }
}

bool storage_search_header_field(const char *h, size_t len, const char *field, const char *needle)
{
    size_t flen = strlen(field), i = 0;
    struct storage_matcher m;
    bool in_field = false;
    storage_search_init(&m, needle);
    while (i < len) {
        size_t end = i;
        while (end < len && h[end] != '\n')
            end++;
        size_t line_end = end > i && h[end - 1] == '\r' ? end - 1 : end;
        if (line_end == i)
            break; /* the empty line: end of header */
        if (h[i] == ' ' || h[i] == '\t') {
            if (in_field) /* continuation: unfolded, the blank stays */
                storage_search_feed(&m, h + i, line_end - i);
        } else {
            if (in_field && m.found)
                return true;
            in_field =
                line_end - i > flen && strncasecmp(h + i, field, flen) == 0 && h[i + flen] == ':';
            if (in_field) {
                storage_search_init(&m, needle);
                size_t v = i + flen + 1;
                while (v < line_end && (h[v] == ' ' || h[v] == '\t'))
                    v++;
                storage_search_feed(&m, h + v, line_end - v);
            }
        }
        i = end + 1;
    }
    return in_field && m.found;
}

/* Stream the file through the matcher, skipping the header for BODY. */
static int search_file(struct petrel_folder *folder, uint32_t uid, bool body_only,
                       struct storage_matcher *m)
{
    int fd;
    uint64_t size;
    int ret = storage_message_fetch_fd(folder, uid, &fd, &size);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    char *buf = petrel_malloc(SEARCH_CHUNK);
    size_t line_len = 0;
    bool in_body = !body_only;
    while (!m->found) {
        ssize_t n = read(fd, buf, SEARCH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? PETREL_STORAGE_TEMPFAIL : PETREL_STORAGE_OK;
            break;
        }
        size_t start = 0;
        for (; !in_body && start < (size_t)n; start++) {
            if (buf[start] == '\n') {
                in_body = line_len == 0;
                line_len = 0;
            } else if (buf[start] != '\r') {
                line_len++;
            }
        }
        if (in_body)
            storage_search_feed(m, buf + start, (size_t)n - start);
    }
    free(buf);
    close(fd);
    return ret;
}

static int search_header(struct petrel_folder *folder, uint32_t uid,
                         const struct petrel_storage_search *q, bool *match)
{
    struct petrel_buf h;
    petrel_buf_init(&h, PETREL_STORAGE_MAX_HEADER);
    int ret = storage_message_fetch_header(folder, uid, &h);
    if (ret == PETREL_STORAGE_OK)
        *match = storage_search_header_field(petrel_buf_head(&h), h.len, q->field, q->needle);
    petrel_buf_free(&h);
    return ret;
}

struct uids {
    uint32_t *v;
    size_t n;
};

static int collect(void *arg, const struct petrel_storage_msg *msg)
{
    struct uids *u = arg;
    u->v = petrel_reallocarray(u->v, u->n + 1, sizeof(*u->v));
    u->v[u->n++] = msg->uid;
    return 0;
}

int storage_search(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                   const struct petrel_storage_search *q, petrel_storage_uid_fn *match, void *arg)
{
    struct uids u = {NULL, 0};
    if (q == NULL || q->needle == NULL || strlen(q->needle) > MAX_NEEDLE ||
        q->key > PETREL_STORAGE_SEARCH_TEXT ||
        (q->key == PETREL_STORAGE_SEARCH_HEADER && (q->field == NULL || q->field[0] == '\0')))
        return PETREL_STORAGE_INVALID_ARG;
    int ret = storage_message_list(folder, uids, collect, &u);
    for (size_t i = 0; i < u.n && ret == PETREL_STORAGE_OK; i++) {
        bool hit = false;
        if (q->key == PETREL_STORAGE_SEARCH_HEADER) {
            ret = search_header(folder, u.v[i], q, &hit);
        } else {
            struct storage_matcher m;
            storage_search_init(&m, q->needle);
            ret = search_file(folder, u.v[i], q->key == PETREL_STORAGE_SEARCH_BODY, &m);
            hit = m.found;
        }
        if (ret == PETREL_STORAGE_NOT_FOUND) {
            ret = PETREL_STORAGE_OK; /* expunged meanwhile */
            continue;
        }
        if (ret == PETREL_STORAGE_OK && hit)
            match(arg, u.v[i]);
    }
    free(u.v);
    return ret;
}
