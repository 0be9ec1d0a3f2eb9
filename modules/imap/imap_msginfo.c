/* The msginfo: the core MIME parser's tree turned into the three answers
 * and the part table, then the tree is dropped. An answer that would pass
 * IMAP_MSGINFO_MAX_VALUE is written again with strings cut short, and if
 * that is still too long, the message is described as one part (see
 * docs/imap-fetch.md), so that the whole msginfo always fits one cache
 * value. */
#include "imap_msginfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/mime.h>
#include <petrel/storage.h>

#include "imap_bodystructure.h"
#include "imap_envelope.h"
#include "imap_msginfo_private.h"

/* Bytes of one answer: three of them and the part table stay below
 * PETREL_STORAGE_MAX_CACHE. */
#define IMAP_MSGINFO_MAX_VALUE (256 * 1024)
/* Bytes kept of each string on the second try. */
#define IMAP_MSGINFO_SHORT_STRING 64

struct imap_msginfo_builder {
    struct petrel_mime_parser *parser;
    uint64_t size;
};

struct imap_msginfo {
    char *envelope, *body, *bodystructure;
    size_t envelope_len, body_len, bodystructure_len;
    struct imap_msginfo_part *parts;
    uint32_t part_count;
    uint64_t size;
};

struct imap_msginfo_builder *imap_msginfo_builder_new(void)
{
    struct imap_msginfo_builder *b = petrel_calloc(1, sizeof(*b));
    b->parser = petrel_mime_parser_new(NULL);
    return b;
}

void imap_msginfo_feed(struct imap_msginfo_builder *b, const void *data, size_t len)
{
    petrel_mime_parser_feed(b->parser, data, len);
    b->size += len;
}

static char *take(struct petrel_buf *buf, size_t *len_r)
{
    *len_r = buf->len;
    char *s = petrel_malloc(buf->len + 1);
    if (buf->len > 0)
        memcpy(s, petrel_buf_head(buf), buf->len);
    s[buf->len] = '\0';
    petrel_buf_free(buf);
    return s;
}

/* One answer, written in full, then with short strings; false when even
 * that does not fit. */
typedef void write_fn(struct imap_mime_writer *w, const struct petrel_mime_part *root);

static bool render(write_fn *fn, const struct petrel_mime_part *root, char **s_r, size_t *len_r)
{
    static const size_t caps[] = {0, IMAP_MSGINFO_SHORT_STRING};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        struct petrel_buf buf;
        petrel_buf_init(&buf, IMAP_MSGINFO_MAX_VALUE);
        struct imap_mime_writer w = {.out = &buf, .str_max = caps[i]};
        fn(&w, root);
        if (!w.full) {
            *s_r = take(&buf, len_r);
            return true;
        }
        petrel_buf_free(&buf);
    }
    return false;
}

static void write_envelope(struct imap_mime_writer *w, const struct petrel_mime_part *root)
{
    imap_envelope_write(w, root->envelope);
}

static void write_body(struct imap_mime_writer *w, const struct petrel_mime_part *root)
{
    imap_bodystructure_write(w, root, false);
}

static void write_bodystructure(struct imap_mime_writer *w, const struct petrel_mime_part *root)
{
    imap_bodystructure_write(w, root, true);
}

static char *dup_len(const char *s, size_t *len_r)
{
    *len_r = strlen(s);
    return petrel_strdup(s);
}

/* The last resort for BODY and BODYSTRUCTURE: one
 * application/octet-stream part, the message's body. */
static void one_part(struct imap_msginfo *mi, const struct petrel_mime_part *root)
{
    char body[128], ext[128];
    int n =
        snprintf(body, sizeof(body), "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" %llu",
                 (unsigned long long)root->body_size);
    snprintf(ext, sizeof(ext), "%.*s NIL NIL NIL NIL)", n, body);
    snprintf(body + n, sizeof(body) - (size_t)n, ")");
    free(mi->body);
    free(mi->bodystructure);
    mi->body = dup_len(body, &mi->body_len);
    mi->bodystructure = dup_len(ext, &mi->bodystructure_len);
    free(mi->parts);
    mi->part_count = 1;
    mi->parts = petrel_calloc(1, sizeof(*mi->parts));
    mi->parts[0] = (struct imap_msginfo_part){root->header_offset,
                                              root->header_size,
                                              root->body_offset,
                                              root->body_size,
                                              IMAP_PART_NONE,
                                              IMAP_PART_NONE,
                                              0};
}

static struct imap_msginfo *from_tree(const struct petrel_mime_part *root, uint64_t size)
{
    struct imap_msginfo *mi = petrel_calloc(1, sizeof(*mi));
    mi->size = size;
    if (!render(write_envelope, root, &mi->envelope, &mi->envelope_len))
        mi->envelope = dup_len("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", &mi->envelope_len);
    mi->parts = imap_bodystructure_parts(root, &mi->part_count);
    if (!render(write_body, root, &mi->body, &mi->body_len) ||
        !render(write_bodystructure, root, &mi->bodystructure, &mi->bodystructure_len))
        one_part(mi, root);
    return mi;
}

struct imap_msginfo *imap_msginfo_finish(struct imap_msginfo_builder *b)
{
    struct petrel_mime_part *root = NULL;
    const char *error = NULL;
    if (petrel_mime_parser_finish(b->parser, &root, &error) != 0 || root == NULL) {
        /* Only a second finish fails: an empty parse keeps the promise. */
        petrel_mime_parser_free(b->parser);
        b->parser = petrel_mime_parser_new(NULL);
        petrel_mime_parser_finish(b->parser, &root, &error);
    }
    struct imap_msginfo *mi = from_tree(root, b->size);
    petrel_mime_part_free(root);
    petrel_mime_parser_free(b->parser);
    free(b);
    return mi;
}

void imap_msginfo_free(struct imap_msginfo *mi)
{
    if (mi == NULL)
        return;
    free(mi->envelope);
    free(mi->body);
    free(mi->bodystructure);
    free(mi->parts);
    free(mi);
}

const char *imap_msginfo_envelope(const struct imap_msginfo *mi, size_t *len_r)
{
    *len_r = mi->envelope_len;
    return mi->envelope;
}

const char *imap_msginfo_body(const struct imap_msginfo *mi, size_t *len_r)
{
    *len_r = mi->body_len;
    return mi->body;
}

const char *imap_msginfo_bodystructure(const struct imap_msginfo *mi, size_t *len_r)
{
    *len_r = mi->bodystructure_len;
    return mi->bodystructure;
}

const struct imap_msginfo_part *imap_msginfo_parts(const struct imap_msginfo *mi, uint32_t *count_r)
{
    *count_r = mi->part_count;
    return mi->parts;
}

uint64_t imap_msginfo_size(const struct imap_msginfo *mi) { return mi->size; }

/* ---- the cache value ----
 * "PIMI", version, message size, part count, the three answer lengths,
 * the answers, the part table, then an FNV-1a 64 checksum of all that;
 * integers little-endian. */

#define CACHE_MAGIC "PIMI"
#define CACHE_VERSION 2u /* 2: the CTE in the part flags */
#define CACHE_HEAD (4 + 4 + 8 + 4 * 4)
#define CACHE_PART (4 * 8 + 3 * 4)

static uint64_t fnv1a(const unsigned char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static size_t cache_size(const struct imap_msginfo *mi)
{
    return CACHE_HEAD + mi->envelope_len + mi->body_len + mi->bodystructure_len +
           (size_t)mi->part_count * CACHE_PART + 8;
}

static unsigned char *put_part(unsigned char *p, const struct imap_msginfo_part *part)
{
    const uint64_t v[] = {part->header_offset, part->header_size, part->body_offset,
                          part->body_size};
    for (size_t i = 0; i < 4; i++, p += 8)
        put_le(p, v[i], 8);
    put_le(p, part->first_child, 4);
    put_le(p + 4, part->next, 4);
    put_le(p + 8, part->flags, 4);
    return p + 12;
}

void imap_msginfo_serialize(const struct imap_msginfo *mi, struct petrel_buf *out)
{
    size_t total = cache_size(mi);
    if (total > PETREL_STORAGE_MAX_CACHE)
        return; /* cannot happen with the value caps; never store a cut value */
    unsigned char *v = petrel_malloc(total), *p = v;
    memcpy(p, CACHE_MAGIC, 4);
    put_le(p + 4, CACHE_VERSION, 4);
    put_le(p + 8, mi->size, 8);
    put_le(p + 16, mi->part_count, 4);
    put_le(p + 20, mi->envelope_len, 4);
    put_le(p + 24, mi->body_len, 4);
    put_le(p + 28, mi->bodystructure_len, 4);
    p += CACHE_HEAD;
    memcpy(p, mi->envelope, mi->envelope_len);
    p += mi->envelope_len;
    memcpy(p, mi->body, mi->body_len);
    p += mi->body_len;
    memcpy(p, mi->bodystructure, mi->bodystructure_len);
    p += mi->bodystructure_len;
    for (uint32_t i = 0; i < mi->part_count; i++)
        p = put_part(p, &mi->parts[i]);
    put_le(p, fnv1a(v, total - 8), 8);
    petrel_buf_append(out, v, total);
    free(v);
}

static bool span_ok(uint64_t offset, uint64_t len, uint64_t size)
{
    return offset <= size && len <= size - offset;
}

/* A part read back must describe bytes of the message, and point only
 * forward (so that walking the table ends). */
static bool get_part(const unsigned char *p, uint32_t i, uint32_t count, uint64_t size,
                     struct imap_msginfo_part *part)
{
    part->header_offset = get_le(p, 8);
    part->header_size = get_le(p + 8, 8);
    part->body_offset = get_le(p + 16, 8);
    part->body_size = get_le(p + 24, 8);
    part->first_child = (uint32_t)get_le(p + 32, 4);
    part->next = (uint32_t)get_le(p + 36, 4);
    part->flags = (uint32_t)get_le(p + 40, 4);
    bool links = (part->first_child == IMAP_PART_NONE ||
                  (part->first_child > i && part->first_child < count)) &&
                 (part->next == IMAP_PART_NONE || (part->next > i && part->next < count));
    return links &&
           (part->flags & ~(IMAP_PART_MULTIPART | IMAP_PART_MESSAGE | IMAP_PART_CTE_MASK)) == 0 &&
           span_ok(part->header_offset, part->header_size, size) &&
           span_ok(part->body_offset, part->body_size, size);
}

static char *get_string(const unsigned char **p, size_t len, size_t *len_r)
{
    char *s = petrel_malloc(len + 1);
    memcpy(s, *p, len);
    s[len] = '\0';
    *p += len;
    *len_r = len;
    return s;
}

struct imap_msginfo *imap_msginfo_deserialize(const void *data, size_t len)
{
    const unsigned char *v = data;
    if (len < CACHE_HEAD + 8 || len > PETREL_STORAGE_MAX_CACHE || memcmp(v, CACHE_MAGIC, 4) != 0 ||
        get_le(v + 4, 4) != CACHE_VERSION || get_le(v + len - 8, 8) != fnv1a(v, len - 8))
        return NULL;
    uint64_t count = get_le(v + 16, 4), lens[3];
    uint64_t need = CACHE_HEAD + 8 + count * CACHE_PART;
    for (size_t i = 0; i < 3; i++) {
        lens[i] = get_le(v + 20 + 4 * i, 4);
        need += lens[i];
    }
    if (need != len || count == 0)
        return NULL;
    struct imap_msginfo *mi = petrel_calloc(1, sizeof(*mi));
    mi->size = get_le(v + 8, 8);
    const unsigned char *p = v + CACHE_HEAD;
    mi->envelope = get_string(&p, lens[0], &mi->envelope_len);
    mi->body = get_string(&p, lens[1], &mi->body_len);
    mi->bodystructure = get_string(&p, lens[2], &mi->bodystructure_len);
    mi->part_count = (uint32_t)count;
    mi->parts = petrel_reallocarray(NULL, count, sizeof(*mi->parts));
    for (uint32_t i = 0; i < mi->part_count; i++, p += CACHE_PART) {
        if (!get_part(p, i, mi->part_count, mi->size, &mi->parts[i])) {
            imap_msginfo_free(mi);
            return NULL;
        }
    }
    return mi;
}
