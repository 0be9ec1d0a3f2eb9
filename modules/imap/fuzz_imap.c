/* libFuzzer target for the IMAP command reader and the small syntax
 * parts. The input is a client's whole stream: cut into lines at LF (a CR
 * before it removed, as the core does) and, when the reader asks for a
 * literal, its bytes taken next in pieces whose size the first byte
 * picks; some literals are refused as a session would. Large literals go
 * to a sink that counts. Checked: a finished command's tree is within the
 * limits and well formed, a spooled literal got exactly its bytes, a BAD
 * has a text; every atom and string goes through modified UTF-7 decoding
 * (a decoded name encodes back to the same bytes) and the date parsers
 * (a parsed date-time formats and reads back to the same instant). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>

#include "imap_date.h"
#include "imap_list.h"
#include "imap_mutf7.h"
#include "imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct imap_parse_limits limits = {
    .max_command = 8192,
    .max_literal_mem = 100,
    .max_literal = 100000,
    .max_args = 64,
    .max_depth = 5,
};

struct counter {
    bool open;
    uint64_t expected, written;
    unsigned opens;
};

static bool sink_open(void *arg, const char *command, uint64_t size)
{
    struct counter *c = arg;
    if (c->open || command == NULL || size <= limits.max_literal_mem)
        abort();
    /* Every fourth is refused, and then never closed. */
    if (++c->opens % 4 == 0)
        return false;
    c->open = true;
    c->expected = size;
    c->written = 0;
    return true;
}

static bool sink_write(void *arg, const void *data, size_t len)
{
    struct counter *c = arg;
    (void)data;
    if (!c->open || len == 0)
        abort();
    c->written += len;
    if (c->written > c->expected)
        abort();
    return true;
}

static void sink_close(void *arg, bool ok)
{
    struct counter *c = arg;
    if (!c->open || (ok && c->written != c->expected))
        abort();
    c->open = false;
}

static void check_mutf7(const char *s, size_t len)
{
    struct petrel_buf utf8, back;
    petrel_buf_init(&utf8, 4096);
    petrel_buf_init(&back, 4096);
    if (imap_mutf7_decode(s, len, &utf8)) {
        if (!imap_mutf7_encode(petrel_buf_head(&utf8), utf8.len, &back) || back.len != len ||
            memcmp(petrel_buf_head(&back), s, len) != 0)
            abort();
    }
    petrel_buf_free(&utf8);
    petrel_buf_free(&back);
}

static void check_dates(const char *s, size_t len)
{
    int64_t t, again, days;
    if (imap_datetime_parse(s, len, &t)) {
        char out[IMAP_DATETIME_LEN + 1];
        imap_datetime_format(t, out);
        if (strlen(out) != IMAP_DATETIME_LEN ||
            !imap_datetime_parse(out, IMAP_DATETIME_LEN, &again))
            abort();
        /* Instants outside years 0000-9999 in UTC are clamped by the
         * format. */
        if (again != t && t >= INT64_C(-62167219200) && t <= INT64_C(253402300799))
            abort();
    }
    (void)imap_date_parse(s, len, &days);
}

/* Every element in bounds; returns the number of arguments. */
static size_t check_args(const struct imap_arg *args, size_t count, size_t depth)
{
    size_t n = count;
    if (depth > limits.max_depth)
        abort();
    for (size_t i = 0; i < count; i++) {
        const struct imap_arg *a = &args[i];
        switch (a->type) {
        case IMAP_ARG_ATOM:
            if (a->len == 0 || strlen(a->str) != a->len)
                abort();
            check_mutf7(a->str, a->len);
            check_dates(a->str, a->len);
            break;
        case IMAP_ARG_STRING:
            if (a->spooled) {
                if (a->str != NULL || a->len <= limits.max_literal_mem)
                    abort();
                break;
            }
            if (a->str[a->len] != '\0' || (!a->literal && strlen(a->str) != a->len))
                abort();
            check_mutf7(a->str, a->len);
            check_dates(a->str, a->len);
            break;
        case IMAP_ARG_NIL:
            if (a->str != NULL)
                abort();
            break;
        case IMAP_ARG_LIST:
            if ((a->count == 0) != (a->list == NULL))
                abort();
            n += check_args(a->list, a->count, depth + 1);
            break;
        }
    }
    return n;
}

static void check_command(struct imap_parser *p)
{
    const struct imap_command *c = imap_parse_command(p);
    if (c == NULL || c->tag[0] == '\0' || c->name[0] == '\0')
        abort();
    for (const char *s = c->name; *s != '\0'; s++)
        if (*s >= 'a' && *s <= 'z')
            abort();
    if (check_args(c->args, c->count, 0) > limits.max_args)
        abort();
    /* A LIST pattern built from the first two arguments matches without
     * trouble. */
    if (c->count >= 2) {
        const char *ref = imap_arg_astring(&c->args[0]);
        const char *pat = imap_arg_astring(&c->args[1]);
        if (ref != NULL && pat != NULL) {
            struct imap_list_pattern *lp =
                imap_list_pattern_new(ref, c->args[0].len, pat, c->args[1].len);
            if (lp != NULL) {
                (void)imap_list_match(lp, ref, c->args[0].len);
                (void)imap_list_match(lp, pat, c->args[1].len);
                imap_list_pattern_free(lp);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (data[0] & 0x1f) + 1;
    bool refuse_some = (data[0] & 0x20) != 0;
    limits.utf8_quoted = (data[0] & 0x40) != 0; /* IMAP4rev2, UTF8=ACCEPT */
    const char *in = (const char *)data + 1;
    size_t len = size - 1, pos = 0;
    unsigned literals = 0;
    struct counter counter = {0};
    struct imap_literal_sink sink = {sink_open, sink_write, sink_close, &counter};
    struct imap_parser *p = imap_parser_new(&limits);
    imap_parser_set_sink(p, &sink);
    while (pos < len) {
        const char *lf = memchr(in + pos, '\n', len - pos);
        size_t end = lf != NULL ? (size_t)(lf - in) : len;
        size_t line_len = end - pos;
        if (line_len > 0 && in[end - 1] == '\r')
            line_len--;
        enum imap_parse_status st = imap_parse_line(p, in + pos, line_len);
        pos = lf != NULL ? end + 1 : len;
        while (st == IMAP_PARSE_LITERAL) {
            struct imap_literal_info info = imap_parse_literal_info(p);
            if (refuse_some && ++literals % 3 == 0) {
                st = imap_parse_refuse(p);
                if (st != IMAP_PARSE_LITERAL)
                    break;
            }
            uint64_t left = info.size;
            if (left == 0)
                st = imap_parse_literal(p, NULL, 0);
            /* A stream that ends inside a literal ends the session. */
            while (left > 0 && pos < len) {
                size_t n = len - pos < piece ? len - pos : piece;
                n = left < n ? (size_t)left : n;
                st = imap_parse_literal(p, in + pos, n);
                pos += n;
                left -= n;
                if (st != (left > 0 ? IMAP_PARSE_LITERAL : IMAP_PARSE_LINE))
                    abort();
            }
            if (left > 0)
                break;
        }
        if (st == IMAP_PARSE_DONE && imap_parse_command(p) != NULL)
            check_command(p);
        if (st == IMAP_PARSE_BAD) {
            const char *e = imap_parse_error(p);
            if (e == NULL || e[0] == '\0' || imap_parse_tag(p)[0] == '\0')
                abort();
            if (counter.open)
                abort();
        }
    }
    imap_parser_free(p);
    if (counter.open)
        abort();
    return 0;
}
