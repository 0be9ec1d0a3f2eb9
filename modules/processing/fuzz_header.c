/* libFuzzer target for processing's header scan (modules/processing/
 * header.c). The first byte seeds where the stream is split, the rest is
 * the start of a message as smtp_in hands it over. Whatever arrives:
 * the end of the header is found at the same place however the bytes are
 * split (the first CRLF CRLF, or a CRLF at the very start); and the
 * streaming filter, fed the same bytes in other random pieces, counts as
 * hops the header's lines that are "Received" fields in any case (blanks
 * allowed before the colon), and passes the header less its Return-Path
 * fields and their folded lines, then the rest unchanged, computed here
 * line by line over the whole input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "processing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the header ends in p, the simple way; 0 if it does not. */
static size_t oracle_end(const char *p, size_t len)
{
    if (len >= 2 && p[0] == '\r' && p[1] == '\n')
        return 2;
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

struct sink {
    char *buf;
    size_t len;
};

static void collect(void *arg, const char *p, size_t len)
{
    struct sink *s = arg;
    if (len == 0)
        abort(); /* no empty pieces */
    memcpy(s->buf + s->len, p, len);
    s->len += len;
}

/* The field name, blanks, then a colon; or (the filter decides within
 * PROC_FIELD_PEEK bytes) the name and blanks up to that length. */
static bool starts_field(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0)
        return false;
    while (k < n && k < PROC_FIELD_PEEK && (line[k] == ' ' || line[k] == '\t'))
        k++;
    return k == PROC_FIELD_PEEK || (k < n && line[k] == ':');
}

/* The lines of h that the strip keeps, computed line by line. */
static size_t oracle_strip(const char *h, size_t len, char *out)
{
    size_t o = 0;
    bool skipping = false;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(h + i, '\n', len - i);
        size_t n = nl != NULL ? (size_t)(nl - (h + i)) + 1 : len - i;
        if (h[i] != ' ' && h[i] != '\t')
            skipping = starts_field(h + i, n, "return-path");
        if (!skipping) {
            memcpy(out + o, h + i, n);
            o += n;
        }
        i += n;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    uint32_t rnd = data[0] * 2654435761u + 1;
    const char *p = (const char *)data + 1;
    size_t len = size - 1;

    /* The end, fed in random pieces. */
    unsigned char state = PROC_HEADER_START;
    size_t header = 0;
    bool ended = false;
    for (size_t off = 0; off < len && !ended;) {
        rnd = rnd * 1103515245u + 12345u;
        size_t n = 1 + (rnd >> 16) % 17;
        if (n > len - off)
            n = len - off;
        size_t cut = proc_header_end(&state, p + off, n, &ended);
        if (cut > n || (!ended && cut != n))
            abort();
        header += cut;
        off += cut;
    }
    size_t want = oracle_end(p, len);
    if (ended != (want != 0) || (ended && header != want) || (!ended && header != len))
        abort();

    /* The filter over the whole input in other pieces: the header less
     * its Return-Path fields, then the rest as it is. */
    unsigned hops = 0;
    for (size_t i = 0; i < header;) {
        const char *nl = memchr(p + i, '\n', header - i);
        size_t n = nl != NULL ? (size_t)(nl - (p + i)) + 1 : header - i;
        hops += starts_field(p + i, n, "received");
        i += n;
    }
    char *got = malloc(len + 1), *expect = malloc(len + 1);
    size_t n = oracle_strip(p, header, expect);
    memcpy(expect + n, p + header, len - header);
    n += len - header;
    struct proc_header_filter f;
    proc_header_filter_init(&f);
    struct sink s = {got, 0};
    for (size_t off = 0; off < len;) {
        rnd = rnd * 1103515245u + 12345u;
        size_t k = (rnd >> 16) % 300; /* 0 to past PROC_FIELD_PEEK */
        if (k > len - off)
            k = len - off;
        proc_header_filter(&f, p + off, k, collect, &s);
        off += k;
    }
    proc_header_filter_finish(&f, collect, &s);
    if (f.hops != hops || s.len != n || memcmp(got, expect, n) != 0)
        abort();
    free(got);
    free(expect);
    return 0;
}
