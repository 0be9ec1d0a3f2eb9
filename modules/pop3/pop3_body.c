/* RETR and TOP output (pop3_body.h). */
#include <string.h>

#include "pop3_body.h"

void pop3_body_init(struct pop3_body *b, bool top, uint32_t lines)
{
    *b = (struct pop3_body){.line_start = true, .in_header = true, .top = top, .lines_left = lines};
}

/* A whole line went out: count it for TOP. The header ends at the first
 * empty line, which is sent; then lines_left lines of the body. */
static void line_done(struct pop3_body *b, size_t len)
{
    if (!b->top)
        return;
    if (b->in_header) {
        if (len == 0) {
            b->in_header = false;
            b->done = b->lines_left == 0;
        }
        return;
    }
    if (--b->lines_left == 0)
        b->done = true;
}

size_t pop3_body_feed(struct pop3_body *b, const char *data, size_t len, struct petrel_buf *out)
{
    size_t taken = 0;
    while (taken < len && !b->done) {
        const char *p = data + taken;
        size_t left = len - taken;
        if (b->line_start && p[0] == '.')
            petrel_buf_append(out, ".", 1);
        if (b->last_cr && p[0] != '\n') /* a CR held back at the end of the last piece */
            petrel_buf_append(out, "\r", 1);
        b->line_start = false;
        const char *nl = memchr(p, '\n', left);
        size_t n = nl != NULL ? (size_t)(nl - p) : left; /* bytes before the LF */
        if (n > 0) {
            /* A CR is held back until the next byte shows whether it ends
             * the line. */
            b->last_cr = p[n - 1] == '\r';
            b->line_len += n;
            petrel_buf_append(out, p, b->last_cr ? n - 1 : n);
        }
        taken += n;
        if (nl == NULL)
            break;
        /* The line's CR, if any, was held back: every line ends in CRLF. */
        petrel_buf_append(out, "\r\n", 2);
        size_t line_len = b->line_len - (b->last_cr ? 1 : 0);
        b->line_start = true;
        b->last_cr = false;
        b->line_len = 0;
        taken++;
        line_done(b, line_len);
    }
    return taken;
}

void pop3_body_end(struct pop3_body *b, struct petrel_buf *out)
{
    if (!b->line_start) /* a last line without its end (a held-back CR included) */
        petrel_buf_append(out, "\r\n", 2);
    petrel_buf_append(out, ".\r\n", 3);
}
