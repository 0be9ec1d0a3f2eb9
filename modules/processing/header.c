/* The message header as processing reads it while a message arrives:
 * where it ends, what the trace needs from it, and, streaming over the
 * whole header however long, the client's Return-Path fields taken out
 * and the Received fields counted. No I/O: fuzz_header.c
 * drives it with messages split at any point. */
#include <ctype.h>
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

/* field-name WSP* ":" (RFC 5322 section 4.5.1 allows the blanks; some
 * readers take such a line as the field, so Petrel does too). */
bool proc_field_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0)
        return false;
    while (n < len && (line[n] == ' ' || line[n] == '\t'))
        n++;
    return n < len && line[n] == ':';
}

void proc_header_facts(const char *h, size_t len, struct proc_header_facts *f)
{
    *f = (struct proc_header_facts){0};
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(h + i, '\n', len - i);
        size_t n = nl != NULL ? (size_t)(nl - (h + i)) : len - i;
        if (proc_field_is(h + i, n, "Message-ID"))
            f->has_id = true;
        else if (proc_field_is(h + i, n, "Date"))
            f->has_date = true;
        i += n + 1;
    }
}

/* --- the streaming filter --- */

enum { AT_START, IN_NAME, IN_LINE };
static const char *const names[] = {"return-path", "received"}; /* bits of cand */
#define RETURN_PATH 1u
#define RECEIVED 2u

void proc_header_filter_init(struct proc_header_filter *f)
{
    *f = (struct proc_header_filter){.end = PROC_HEADER_START, .line = AT_START};
}

/* The held start of a line is a field (bits), or not (0): skip it or
 * pass it on. */
static void decide(struct proc_header_filter *f, unsigned field, proc_emit_fn *emit, void *arg)
{
    f->skipping = field == RETURN_PATH;
    f->hops += field == RECEIVED;
    if (!f->skipping)
        emit(arg, f->peek, f->peek_len);
    f->line = f->peek[f->peek_len - 1] == '\n' ? AT_START : IN_LINE;
}

/* One more byte of a line's start: which names it may still be. */
static void name_byte(struct proc_header_filter *f, char c, proc_emit_fn *emit, void *arg)
{
    size_t at = f->peek_len;
    f->peek[f->peek_len++] = c;
    unsigned matched = 0;
    for (unsigned i = 0; i < 2; i++) {
        size_t n = strlen(names[i]);
        if (!(f->cand & (1u << i)))
            continue;
        if (at < n ? (char)tolower((unsigned char)c) != names[i][at] : c != ' ' && c != '\t')
            f->cand &= ~(1u << i);
        if (at >= n && c == ':')
            matched = 1u << i;
    }
    if (matched != 0)
        decide(f, matched, emit, arg);
    else if (f->cand == 0)
        decide(f, 0, emit, arg);
    else if (f->peek_len == sizeof(f->peek))
        /* The name and nothing but blanks this far: a line no writer
         * makes but a reader may still take as the field. */
        decide(f, f->cand, emit, arg);
}

/* Header bytes, line by line: a line is held until its name tells (at
 * most sizeof(peek) bytes); the rest of it, and its folded lines, then
 * go on or away in whole runs. */
static void header_lines(struct proc_header_filter *f, const char *p, size_t len,
                         proc_emit_fn *emit, void *arg)
{
    for (size_t i = 0; i < len;) {
        if (f->line == IN_LINE) {
            const char *nl = memchr(p + i, '\n', len - i);
            size_t end = nl != NULL ? (size_t)(nl - p) + 1 : len;
            if (!f->skipping)
                emit(arg, p + i, end - i);
            f->line = nl != NULL ? AT_START : IN_LINE;
            i = end;
        } else if (f->line == AT_START && (p[i] == ' ' || p[i] == '\t')) {
            f->line = IN_LINE; /* a folded line goes with its field */
        } else {
            if (f->line == AT_START) {
                f->line = IN_NAME;
                f->peek_len = 0;
                f->cand = RETURN_PATH | RECEIVED;
            }
            name_byte(f, p[i++], emit, arg);
        }
    }
}

void proc_header_filter(struct proc_header_filter *f, const char *p, size_t len, proc_emit_fn *emit,
                        void *arg)
{
    size_t cut = 0;
    if (!f->done) {
        bool ended;
        cut = proc_header_end(&f->end, p, len, &ended);
        header_lines(f, p, cut, emit, arg);
        f->done = ended;
    }
    if (len > cut)
        emit(arg, p + cut, len - cut);
}

void proc_header_filter_finish(struct proc_header_filter *f, proc_emit_fn *emit, void *arg)
{
    if (f->line == IN_NAME) /* the message ended inside a name: not a field */
        decide(f, 0, emit, arg);
    f->done = true;
}
