/* The message header as processing reads it while a message arrives:
 * where it ends, what the trace needs from it, and the client's
 * Return-Path fields taken out. No I/O: tests/fuzz/fuzz_header.c drives
 * it with headers split at any point. */
#include <string.h>
#include <strings.h>

#include "processing.h"

size_t proc_header_end(unsigned char *state, const char *p, size_t len, bool *ended_r)
{
    static const char end[] = "\r\n\r\n"; /* state: bytes of it seen */
    size_t cut = 0;
    bool ended = *state == 4;
    while (cut < len && !ended) {
        char c = p[cut++];
        *state = c == end[*state] ? *state + 1 : (c == '\r' ? 1 : 0);
        ended = *state == 4;
    }
    *ended_r = ended;
    return cut;
}

bool proc_field_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

void proc_header_facts(const char *h, size_t len, struct proc_header_facts *f)
{
    *f = (struct proc_header_facts){0};
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(h + i, '\n', len - i);
        size_t n = nl != NULL ? (size_t)(nl - (h + i)) : len - i;
        if (proc_field_is(h + i, n, "Received"))
            f->hops++;
        else if (proc_field_is(h + i, n, "Message-ID"))
            f->has_id = true;
        else if (proc_field_is(h + i, n, "Date"))
            f->has_date = true;
        i += n + 1;
    }
}

void proc_header_strip_return_path(const char *h, size_t len, proc_emit_fn *emit, void *arg)
{
    bool skipping = false;
    size_t start = 0; /* of the bytes not yet emitted */
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(h + i, '\n', len - i);
        size_t n = nl != NULL ? (size_t)(nl - (h + i)) + 1 : len - i;
        if (h[i] != ' ' && h[i] != '\t') /* a folded line goes with its field */
            skipping = proc_field_is(h + i, n, "Return-Path");
        if (skipping) {
            if (i > start)
                emit(arg, h + start, i - start);
            start = i + n;
        }
        i += n;
    }
    if (len > start)
        emit(arg, h + start, len - start);
}
