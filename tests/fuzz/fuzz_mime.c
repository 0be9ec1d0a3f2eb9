/* libFuzzer target for the MIME parser. The first byte picks the limits
 * (its low bit: defaults or tight ones) and where the rest of the input is
 * split in two for feeding. Checks: every range lies within the input, a
 * part's header is followed by its body, children lie inside their parent's
 * body in order, and the split parse gives the same tree as feeding the
 * input whole. The header helpers also get the input as a string. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/mime.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct petrel_mime_part *parse(const uint8_t *data, size_t size, size_t split,
                                      const struct petrel_mime_limits *limits)
{
    struct petrel_mime_parser *p = petrel_mime_parser_new(limits);
    /* Exact-size copies so that AddressSanitizer sees any overread. */
    uint8_t *a = petrel_malloc(split), *b = petrel_malloc(size - split);
    memcpy(a, data, split);
    memcpy(b, data + split, size - split);
    petrel_mime_parser_feed(p, a, split);
    petrel_mime_parser_feed(p, b, size - split);
    free(a);
    free(b);
    struct petrel_mime_part *root = NULL;
    const char *error;
    if (petrel_mime_parser_finish(p, &root, &error) < 0 || root == NULL)
        abort();
    petrel_mime_parser_free(p);
    return root;
}

static void check_ranges(const struct petrel_mime_part *part, uint64_t size)
{
    uint64_t body_end = part->body_offset + part->body_size;
    if (part->header_offset + part->header_size != part->body_offset || body_end > size ||
        part->body_lines > part->body_size)
        abort();
    uint64_t at = part->body_offset;
    for (const struct petrel_mime_part *c = part->children; c != NULL; c = c->next) {
        if (c->parent != part || c->depth != part->depth + 1 || c->header_offset < at ||
            c->body_offset + c->body_size > body_end)
            abort();
        at = c->body_offset + c->body_size;
        check_ranges(c, size);
    }
    if (part->type == NULL || part->subtype == NULL || part->encoding == NULL)
        abort();
}

static bool str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool params_same(const struct petrel_mime_param *a, const struct petrel_mime_param *b,
                        unsigned int n)
{
    for (unsigned int i = 0; i < n; i++) {
        if (!str_same(a[i].name, b[i].name) || !str_same(a[i].value, b[i].value))
            return false;
    }
    return true;
}

static bool addresses_same(const struct petrel_mime_address *a, const struct petrel_mime_address *b)
{
    for (; a != NULL && b != NULL; a = a->next, b = b->next) {
        if (!str_same(a->name, b->name) || !str_same(a->route, b->route) ||
            !str_same(a->mailbox, b->mailbox) || !str_same(a->host, b->host))
            return false;
    }
    return a == NULL && b == NULL;
}

static bool envelopes_same(const struct petrel_mime_envelope *a,
                           const struct petrel_mime_envelope *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return str_same(a->date, b->date) && str_same(a->subject, b->subject) &&
           str_same(a->from, b->from) && str_same(a->sender, b->sender) &&
           str_same(a->reply_to, b->reply_to) && str_same(a->to, b->to) && str_same(a->cc, b->cc) &&
           str_same(a->bcc, b->bcc) && str_same(a->in_reply_to, b->in_reply_to) &&
           str_same(a->message_id, b->message_id) && addresses_same(a->from_list, b->from_list) &&
           addresses_same(a->sender_list, b->sender_list) &&
           addresses_same(a->reply_to_list, b->reply_to_list) &&
           addresses_same(a->to_list, b->to_list) && addresses_same(a->cc_list, b->cc_list) &&
           addresses_same(a->bcc_list, b->bcc_list);
}

static bool parts_same(const struct petrel_mime_part *a, const struct petrel_mime_part *b)
{
    if (!str_same(a->type, b->type) || !str_same(a->subtype, b->subtype) ||
        a->param_count != b->param_count || !params_same(a->params, b->params, a->param_count) ||
        !str_same(a->id, b->id) || !str_same(a->description, b->description) ||
        !str_same(a->encoding, b->encoding) || !str_same(a->disposition, b->disposition) ||
        a->disposition_param_count != b->disposition_param_count ||
        !params_same(a->disposition_params, b->disposition_params, a->disposition_param_count) ||
        !str_same(a->language, b->language) || !str_same(a->location, b->location) ||
        !str_same(a->md5, b->md5) || a->header_offset != b->header_offset ||
        a->header_size != b->header_size || a->body_offset != b->body_offset ||
        a->body_size != b->body_size || a->body_lines != b->body_lines ||
        a->limits_hit != b->limits_hit || !envelopes_same(a->envelope, b->envelope))
        return false;
    const struct petrel_mime_part *x = a->children, *y = b->children;
    for (; x != NULL && y != NULL; x = x->next, y = y->next) {
        if (!parts_same(x, y))
            return false;
    }
    return x == NULL && y == NULL;
}

static void helpers(const uint8_t *data, size_t size)
{
    char *s = petrel_strndup((const char *)data, size);
    free(petrel_mime_decode_header(s, 256));
    petrel_mime_addresses_free(petrel_mime_parse_addresses(s, 100));
    free(petrel_charset_to_utf8("utf-8", (const char *)data, size, 256));
    free(petrel_charset_to_utf8("iso-2022-jp", (const char *)data, size, 256));
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const struct petrel_mime_limits tight = {
        .max_depth = 3, .max_parts = 12, .max_header_size = 512, .max_field_size = 96};
    const struct petrel_mime_limits *limits = (data[0] & 1) != 0 ? &tight : NULL;
    size_t split = (size_t)(data[0] >> 1) * (size - 1) / 127;
    data++;
    size--;
    struct petrel_mime_part *whole = parse(data, size, size, limits);
    struct petrel_mime_part *parts = parse(data, size, split, limits);
    check_ranges(whole, size);
    if (whole->body_offset + whole->body_size != size || !parts_same(whole, parts))
        abort();
    petrel_mime_part_free(whole);
    petrel_mime_part_free(parts);
    helpers(data, size);
    return 0;
}
