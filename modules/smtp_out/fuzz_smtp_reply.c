/* libFuzzer target for the reply parser: the input is what a remote
 * server sends, split into lines at LF (a CR before it dropped, as the
 * core's line reader does). Whatever it sends: a complete reply has a
 * code of 200-599 with the same first digit as its enhanced code, its
 * text is printable ASCII within SMTP_REPLY_TEXT_MAX, its domain within
 * bounds, never more than SMTP_REPLY_LINES_MAX lines; EHLO keywords and
 * the reason built from the reply never overflow; a reason always starts
 * with the code and ends with its context. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const struct smtp_reply *r)
{
    if (r->code < 200 || r->code > 599 || r->lines == 0 || r->lines > SMTP_REPLY_LINES_MAX)
        abort();
    if (r->enhanced[0] != '\0' && r->enhanced[0] != '0' + r->code / 100)
        abort();
    size_t n = strlen(r->text);
    if (n != r->text_len || n > SMTP_REPLY_TEXT_MAX || strlen(r->domain) > SMTP_REPLY_DOMAIN_MAX)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (r->text[i] < 0x20 || r->text[i] > 0x7e)
            abort();
    }
    /* Exactly the size, so that ASan sees a write past it. */
    size_t sizes[] = {PETREL_TRANSPORT_REASON_MAX, 64, 16, 1};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        char *out = malloc(sizes[k]);
        smtp_reply_reason(out, sizes[k], r, "RCPT TO", "mx.example.org[192.0.2.1]");
        if (strlen(out) >= sizes[k] || (sizes[k] > 3 && (out[0] != '0' + r->code / 100)))
            abort();
        if (sizes[k] == PETREL_TRANSPORT_REASON_MAX &&
            strstr(out, " (in reply to RCPT TO, from mx.example.org[192.0.2.1])") == NULL)
            abort();
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply r;
    struct smtp_ehlo e = {0};
    smtp_reply_init(&r);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t len = i - start;
        if (len > 0 && data[start + len - 1] == '\r')
            len--;
        if (len > SMTP_REPLY_LINE_MAX)
            len = SMTP_REPLY_LINE_MAX; /* the core discards longer lines */
        char *line = malloc(len + 1);
        memcpy(line, data + start, len);
        line[len] = '\0';
        const char *text = NULL;
        enum smtp_reply_step s = smtp_reply_feed(&r, line, len, &text);
        if (s != SMTP_REPLY_BAD) {
            if (text == NULL || text < line || text > line + len)
                abort();
            smtp_ehlo_keyword(&e, text, len - (size_t)(text - line));
        }
        if (s == SMTP_REPLY_DONE)
            check_reply(&r);
        if (s != SMTP_REPLY_MORE)
            smtp_reply_init(&r);
        free(line);
        start = i + 1;
    }
    return 0;
}
