/* A message to its searchable texts (plugins-api/petrel/mimetext.h): the
 * header's fields, then the body through the core MIME parser, each text
 * part streamed through mimetext_part.c. The file is read at most twice,
 * in fixed chunks: once to find the parts (skipped when the header says
 * the message is one part), once for the text. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/mime.h>
#include <petrel/mimetext.h>

/* One unfolded field is cut here; the MIME parser keeps as much. */
#define FIELD_MAX PETREL_MIME_DEFAULT_MAX_FIELD_SIZE
#define NAME_MAX_LEN 256u
#define READ_CHUNK (64u * 1024u)

/* ---- raw header fields ---- */

struct field_acc {
    char name[NAME_MAX_LEN];
    size_t name_len;
    char *value;
    size_t value_len;
    bool open;
};

static void acc_append(struct field_acc *a, const char *s, size_t len)
{
    size_t room = FIELD_MAX - a->value_len;
    if (len > room)
        len = room;
    memcpy(a->value + a->value_len, s, len);
    a->value_len += len;
}

static bool acc_emit(struct field_acc *a, petrel_header_field_fn *fn, void *ctx)
{
    if (!a->open)
        return true;
    a->open = false;
    a->value[a->value_len] = '\0';
    return fn(a->name, a->name_len, a->value, a->value_len, ctx);
}

/* A field line "name: value": false when it is none (skipped). A name is
 * printable ASCII (RFC 5322 section 2.2), so it is valid UTF-8 too. */
static bool acc_start(struct field_acc *a, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return false;
    size_t n = (size_t)(colon - line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 33 || (unsigned char)line[i] > 126)
            return false;
    memcpy(a->name, line, n);
    a->name[n] = '\0';
    a->name_len = n;
    a->value_len = 0;
    a->open = true;
    const char *v = colon + 1;
    size_t vlen = len - (size_t)(v - line);
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    acc_append(a, v, vlen);
    return true;
}

bool petrel_header_fields(const char *hdr, size_t len, petrel_header_field_fn *fn, void *ctx)
{
    struct field_acc a = {.open = false};
    a.value = petrel_malloc(FIELD_MAX + 1);
    bool go_on = true;
    size_t pos = 0;
    while (pos < len && go_on) {
        const char *line = hdr + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (line_len == 0)
            break; /* the end of the header */
        if (line[0] == ' ' || line[0] == '\t') {
            if (a.open)
                acc_append(&a, line, line_len); /* unfolding keeps the blank */
            continue;
        }
        go_on = acc_emit(&a, fn, ctx);
        if (go_on)
            acc_start(&a, line, line_len);
    }
    if (go_on)
        go_on = acc_emit(&a, fn, ctx);
    free(a.value);
    return go_on;
}

/* ---- header texts ---- */

struct header_texts {
    enum petrel_mimetext_kind kind;
    petrel_mimetext_fn *fn;
    void *ctx;
};

static bool field_text(const char *name, size_t name_len, const char *value, size_t value_len,
                       void *arg)
{
    struct header_texts *ht = arg;
    (void)value_len; /* decoded up to a NUL, which is no text */
    char *decoded = petrel_mime_decode_header(value, FIELD_MAX);
    size_t dlen = strlen(decoded);
    /* "Name: value", so that a TEXT search sees the field as a whole. */
    size_t total = name_len + 2 + dlen;
    char *line = petrel_malloc(total + 1);
    memcpy(line, name, name_len);
    memcpy(line + name_len, ": ", 2);
    memcpy(line + name_len + 2, decoded, dlen);
    free(decoded);
    char *folded = petrel_fold_str(line, total);
    free(line);
    struct petrel_mimetext_info info = {
        .kind = ht->kind, .field = name, .value_offset = name_len + 2};
    bool go_on = ht->fn(ht->ctx, &info, folded, total, true);
    free(folded);
    return go_on;
}

static bool header_texts(const char *hdr, size_t len, enum petrel_mimetext_kind kind,
                         petrel_mimetext_fn *fn, void *ctx)
{
    struct header_texts ht = {.kind = kind, .fn = fn, .ctx = ctx};
    return petrel_header_fields(hdr, len, field_text, &ht);
}

bool petrel_mimetext_header(const char *hdr, size_t len, petrel_mimetext_fn *fn, void *ctx)
{
    return header_texts(hdr, len, PETREL_MIMETEXT_FIELD, fn, ctx);
}

/* ---- body texts ---- */

struct body_walk {
    int fd;
    char *chunk; /* READ_CHUNK bytes */
    petrel_mimetext_fn *fn;
    void *ctx;
    uint64_t budget; /* body text bytes still given */
    bool stopped;
    bool read_error;
};

/* The caller's fn behind the per-message budget: the text that reaches
 * it ends, and the extraction stops. */
static bool budget_fn(void *arg, const struct petrel_mimetext_info *info, const char *data,
                      size_t len, bool last)
{
    struct body_walk *b = arg;
    if (b->stopped)
        return false;
    bool cut = len >= b->budget && !(len == b->budget && last);
    if (cut) {
        len = (size_t)b->budget;
        last = true;
    }
    b->budget -= len;
    if (!b->fn(b->ctx, info, data, len, last) || cut)
        b->stopped = true;
    return !b->stopped;
}

typedef void range_fn(struct body_walk *b, const char *data, size_t len, void *ctx);

/* Read [offset, offset + size) in chunks, giving each to fn. */
static void read_range(struct body_walk *b, uint64_t offset, uint64_t size, range_fn *fn, void *ctx)
{
    while (size > 0 && !b->read_error && !b->stopped) {
        size_t want = size < READ_CHUNK ? (size_t)size : READ_CHUNK;
        ssize_t n = pread(b->fd, b->chunk, want, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            b->read_error = true;
            return;
        }
        if (n == 0)
            return; /* shorter than the parse said: the file changed */
        fn(b, b->chunk, (size_t)n, ctx);
        offset += (uint64_t)n;
        size -= (uint64_t)n;
        if ((size_t)n < want)
            return; /* a short read of a regular file is its end */
    }
}

static void feed_part(struct body_walk *b, const char *data, size_t len, void *ctx)
{
    (void)b;
    petrel_mimetext_part_feed(ctx, data, len);
}

static void feed_parser(struct body_walk *b, const char *data, size_t len, void *ctx)
{
    (void)b;
    petrel_mime_parser_feed(ctx, data, len);
}

static void walk_text(struct body_walk *b, const struct petrel_mime_part *part)
{
    const char *charset = petrel_mime_param_find(part->params, part->param_count, "charset");
    bool html = strcmp(part->subtype, "html") == 0;
    struct petrel_mimetext_part *tp =
        petrel_mimetext_part_new(part->encoding, charset, html, budget_fn, b);
    read_range(b, part->body_offset, part->body_size, feed_part, tp);
    petrel_mimetext_part_free(tp);
}

/* An attachment's file name, as the MIME parser decoded it (RFC 2231 or
 * RFC 2047), is a text of the body. */
static void walk_name(struct body_walk *b, const struct petrel_mime_part *part)
{
    const char *name =
        petrel_mime_param_find(part->disposition_params, part->disposition_param_count, "filename");
    if (name == NULL)
        name = petrel_mime_param_find(part->params, part->param_count, "name");
    if (name == NULL || name[0] == '\0')
        return;
    struct petrel_mimetext_part *tp = petrel_mimetext_part_new(NULL, NULL, false, budget_fn, b);
    petrel_mimetext_part_feed(tp, name, strlen(name));
    petrel_mimetext_part_free(tp);
}

/* The header of an attached message is text of the body too. */
static void walk_embedded_header(struct body_walk *b, const struct petrel_mime_part *part)
{
    uint64_t size = part->header_size;
    if (size > PETREL_MIMETEXT_MAX_HEADER)
        size = PETREL_MIMETEXT_MAX_HEADER;
    char *hdr = petrel_malloc((size_t)size + 1);
    ssize_t n;
    do
        n = pread(b->fd, hdr, (size_t)size, (off_t)part->header_offset);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        b->read_error = true;
    else if (!header_texts(hdr, (size_t)n, PETREL_MIMETEXT_BODY, budget_fn, b))
        b->stopped = true;
    free(hdr);
}

static void walk_part(struct body_walk *b, const struct petrel_mime_part *part)
{
    if (b->read_error || b->stopped)
        return;
    if (part->parent != NULL && strcmp(part->parent->type, "message") == 0)
        walk_embedded_header(b, part);
    if (part->children != NULL) {
        for (const struct petrel_mime_part *c = part->children; c != NULL; c = c->next)
            walk_part(b, c);
        return;
    }
    walk_name(b, part);
    /* Only text is text: the bytes of images and other attachments are not. */
    if (strcmp(part->type, "text") == 0 && !b->stopped && !b->read_error)
        walk_text(b, part);
}

static struct petrel_mime_part *parse_tree(struct body_walk *b, const char *header,
                                           size_t header_len)
{
    struct petrel_mime_parser *p = petrel_mime_parser_new(NULL);
    struct petrel_mime_part *root = NULL;
    const char *error;
    if (header != NULL) {
        /* The header alone tells whether the message is one part. */
        petrel_mime_parser_feed(p, header, header_len);
        if (petrel_mime_parser_finish(p, &root, &error) == 0 &&
            strcmp(root->type, "multipart") != 0 && strcmp(root->type, "message") != 0) {
            root->body_offset = header_len;
            root->body_size = UINT64_MAX - header_len;
            petrel_mime_parser_free(p);
            return root;
        }
        petrel_mime_part_free(root);
        petrel_mime_parser_free(p);
        p = petrel_mime_parser_new(NULL);
        root = NULL;
    }
    read_range(b, 0, PETREL_MIMETEXT_MAX_PARSE, feed_parser, p);
    if (petrel_mime_parser_finish(p, &root, &error) != 0)
        root = NULL;
    petrel_mime_parser_free(p);
    return root;
}

int petrel_mimetext_body(int fd, const char *header, size_t header_len, petrel_mimetext_fn *fn,
                         void *ctx)
{
    struct body_walk b = {.fd = fd, .fn = fn, .ctx = ctx, .budget = PETREL_MIMETEXT_MAX_TEXT};
    b.chunk = petrel_malloc(READ_CHUNK);
    struct petrel_mime_part *root = parse_tree(&b, header, header_len);
    if (root != NULL && !b.read_error)
        walk_part(&b, root);
    petrel_mime_part_free(root);
    free(b.chunk);
    return b.read_error ? -1 : 0;
}
