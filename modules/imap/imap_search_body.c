/* The body side of SEARCH: the core MIME parser finds the parts of the
 * message, then each text part is read again and streamed through its
 * decoders into the matcher. Two reads of the file at most, in fixed
 * chunks; a message that is a single part needs only the second. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/mime.h>

#include "imap_search_private.h"

struct body_scan {
    const struct imap_search *s;
    int fd;
    char *chunk; /* SEARCH_READ_CHUNK bytes */
    struct search_matcher mt;
    uint64_t want;
    uint64_t *hits;
    bool read_error;
};

/* Read [offset, offset + size) in chunks, giving each to fn. */
static void read_range(struct body_scan *b, uint64_t offset, uint64_t size,
                       void (*fn)(struct body_scan *, const char *, size_t, void *), void *ctx)
{
    while (size > 0 && !b->read_error && !search_matcher_done(&b->mt)) {
        size_t want = size < SEARCH_READ_CHUNK ? (size_t)size : SEARCH_READ_CHUNK;
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

static void feed_part(struct body_scan *b, const char *data, size_t len, void *ctx)
{
    (void)b;
    search_part_feed(ctx, data, len);
}

static void feed_parser(struct body_scan *b, const char *data, size_t len, void *ctx)
{
    (void)b;
    petrel_mime_parser_feed(ctx, data, len);
}

static const char *part_charset(const struct petrel_mime_part *part)
{
    return petrel_mime_param_find(part->params, part->param_count, "charset");
}

static void scan_text(struct body_scan *b, const struct petrel_mime_part *part)
{
    struct search_part *sp = search_part_new(part->encoding, part_charset(part), &b->mt);
    read_range(b, part->body_offset, part->body_size, feed_part, sp);
    search_part_free(sp);
}

/* The header of an attached message is text of the body too. */
static void scan_embedded_header(struct body_scan *b, const struct petrel_mime_part *part)
{
    uint64_t size = part->header_size;
    if (size > SEARCH_MAX_HEADER_BYTES)
        size = SEARCH_MAX_HEADER_BYTES;
    char *hdr = petrel_malloc((size_t)size + 1);
    ssize_t n;
    do
        n = pread(b->fd, hdr, (size_t)size, (off_t)part->header_offset);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        b->read_error = true;
    else
        search_header_match(b->s, hdr, (size_t)n, b->mt.want, b->hits, true);
    free(hdr);
    b->mt.want &= ~*b->hits;
}

static void scan_part(struct body_scan *b, const struct petrel_mime_part *part)
{
    if (b->read_error || search_matcher_done(&b->mt))
        return;
    if (part->parent != NULL && strcmp(part->parent->type, "message") == 0)
        scan_embedded_header(b, part);
    if (part->children != NULL) {
        for (const struct petrel_mime_part *c = part->children; c != NULL; c = c->next)
            scan_part(b, c);
        return;
    }
    /* Only text is text: images and other attachments are not searched. */
    if (strcmp(part->type, "text") == 0)
        scan_text(b, part);
}

static struct petrel_mime_part *parse_tree(struct body_scan *b, const char *header,
                                           size_t header_len, bool *single_r)
{
    struct petrel_mime_parser *p = petrel_mime_parser_new(NULL);
    struct petrel_mime_part *root = NULL;
    const char *error;
    *single_r = false;
    if (header != NULL) {
        /* The header alone tells whether the message is one part. */
        petrel_mime_parser_feed(p, header, header_len);
        if (petrel_mime_parser_finish(p, &root, &error) == 0 &&
            strcmp(root->type, "multipart") != 0 && strcmp(root->type, "message") != 0) {
            root->body_offset = header_len;
            root->body_size = UINT64_MAX - header_len;
            *single_r = true;
            petrel_mime_parser_free(p);
            return root;
        }
        petrel_mime_part_free(root);
        petrel_mime_parser_free(p);
        p = petrel_mime_parser_new(NULL);
        root = NULL;
    }
    read_range(b, 0, SEARCH_MAX_PARSE_BYTES, feed_parser, p);
    if (petrel_mime_parser_finish(p, &root, &error) != 0)
        root = NULL;
    petrel_mime_parser_free(p);
    return root;
}

int search_body_match(const struct imap_search *s, int fd, const char *header, size_t header_len,
                      uint64_t want, uint64_t *hits)
{
    struct body_scan b = {.s = s, .fd = fd, .hits = hits};
    b.chunk = petrel_malloc(SEARCH_READ_CHUNK);
    search_matcher_init(&b.mt, s, want, hits);
    bool single;
    struct petrel_mime_part *root = parse_tree(&b, header, header_len, &single);
    if (root != NULL && !b.read_error) {
        /* The matcher's budget counted nothing during the parse. */
        scan_part(&b, root);
    }
    petrel_mime_part_free(root);
    free(b.chunk);
    return b.read_error ? -1 : 0;
}
