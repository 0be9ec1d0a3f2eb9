/* SMTP replies as a client reads them (RFC 5321 section 4.2): "NNN-text"
 * continuation lines, then "NNN text" (or a bare "NNN"), every line with
 * the same code. The joined text is what reasons, DSNs and logs carry, so
 * it is kept printable and short whatever the server sends. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_reply.h"

void smtp_reply_init(struct smtp_reply *r) { memset(r, 0, sizeof(*r)); }

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of a leading enhanced status code "C.SSS.DDD" of class c followed
 * by a space or the end, or 0 (RFC 3463: subject and detail 1-3 digits). */
static size_t enhanced_len(const char *s, size_t len, char c)
{
    if (len < 5 || s[0] != c || s[1] != '.')
        return 0;
    size_t i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && i - start < 4 && is_digit(s[i]))
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
    }
    return i == len || s[i] == ' ' ? i : 0;
}

static void add_text(struct smtp_reply *r, const char *s, size_t len)
{
    while (len > 0 && *s == ' ')
        s++, len--;
    if (len == 0)
        return;
    if (r->text_len > 0 && r->text_len < SMTP_REPLY_TEXT_MAX)
        r->text[r->text_len++] = ' ';
    for (size_t i = 0; i < len; i++) {
        if (r->text_len >= SMTP_REPLY_TEXT_MAX) {
            r->truncated = true;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        r->text[r->text_len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    r->text[r->text_len] = '\0';
}

static void first_word(struct smtp_reply *r, const char *s, size_t len)
{
    size_t n = 0;
    while (n < len && s[n] != ' ' && n < SMTP_REPLY_DOMAIN_MAX)
        n++;
    memcpy(r->domain, s, n);
    r->domain[n] = '\0';
}

enum smtp_reply_step smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                                     const char **text_r)
{
    if (len < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]) ||
        (len > 3 && line[3] != ' ' && line[3] != '-') || r->lines >= SMTP_REPLY_LINES_MAX)
        return SMTP_REPLY_BAD;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->lines > 0 && code != r->code)
        return SMTP_REPLY_BAD;
    r->code = code;
    const char *text = len > 4 ? line + 4 : line + len;
    size_t tlen = len > 4 ? len - 4 : 0;
    if (text_r != NULL)
        *text_r = text;
    if (r->lines == 0)
        first_word(r, text, tlen);
    size_t e = enhanced_len(text, tlen, line[0]);
    if (e > 0 && r->lines == 0 && e < sizeof(r->enhanced)) {
        memcpy(r->enhanced, text, e);
        r->enhanced[e] = '\0';
    }
    if (e > 0 && r->enhanced[0] != '\0') /* repeated on every line: drop it */
        text += e, tlen -= e;
    add_text(r, text, tlen);
    r->lines++;
    r->done = len == 3 || line[3] == ' ';
    return r->done ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

static bool keyword_is(const char *text, size_t len, const char *kw, const char **arg_r,
                       size_t *alen_r)
{
    size_t n = strlen(kw);
    if (len < n || strncasecmp(text, kw, n) != 0 || (len > n && text[n] != ' '))
        return false;
    *arg_r = len > n ? text + n + 1 : text + len;
    *alen_r = len > n ? len - n - 1 : 0;
    return true;
}

static uint64_t parse_size(const char *s, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && is_digit(s[i]); i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return 0; /* absurd: as good as no limit */
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v;
}

/* The mechanisms after "AUTH " (or the old "AUTH=", still sent by some
 * servers): only PLAIN and LOGIN matter to us. */
static void auth_mechs(struct smtp_ehlo *e, const char *arg, size_t alen)
{
    e->auth = true;
    size_t i = 0;
    while (i < alen) {
        while (i < alen && arg[i] == ' ')
            i++;
        size_t start = i;
        while (i < alen && arg[i] != ' ')
            i++;
        size_t n = i - start;
        if (n == 5 && strncasecmp(arg + start, "PLAIN", 5) == 0)
            e->auth_plain = true;
        else if (n == 5 && strncasecmp(arg + start, "LOGIN", 5) == 0)
            e->auth_login = true;
    }
}

void smtp_ehlo_keyword(struct smtp_ehlo *e, const char *text, size_t len)
{
    const char *arg;
    size_t alen;
    if (keyword_is(text, len, "AUTH", &arg, &alen))
        auth_mechs(e, arg, alen);
    else if (len > 5 && strncasecmp(text, "AUTH=", 5) == 0)
        auth_mechs(e, text + 5, len - 5);
    if (keyword_is(text, len, "SIZE", &arg, &alen)) {
        e->size = true;
        e->size_limit = parse_size(arg, alen);
    }
    e->pipelining |= keyword_is(text, len, "PIPELINING", &arg, &alen);
    e->eightbitmime |= keyword_is(text, len, "8BITMIME", &arg, &alen);
    e->smtputf8 |= keyword_is(text, len, "SMTPUTF8", &arg, &alen);
    e->dsn |= keyword_is(text, len, "DSN", &arg, &alen);
    e->starttls |= keyword_is(text, len, "STARTTLS", &arg, &alen);
    e->chunking |= keyword_is(text, len, "CHUNKING", &arg, &alen);
    e->binarymime |= keyword_is(text, len, "BINARYMIME", &arg, &alen);
    e->requiretls |= keyword_is(text, len, "REQUIRETLS", &arg, &alen);
}

void smtp_reply_reason(char *out, size_t size, const struct smtp_reply *r, const char *command,
                       const char *peer)
{
    char head[32], tail[400];
    char cls = (char)('0' + r->code / 100);
    if (r->enhanced[0] != '\0')
        snprintf(head, sizeof(head), "%03d %s ", r->code, r->enhanced);
    else
        snprintf(head, sizeof(head), "%03d %c.0.0 ", r->code, cls);
    snprintf(tail, sizeof(tail), " (in reply to %s, from %s)", command, peer);
    size_t h = strlen(head), t = strlen(tail);
    if (size == 0)
        return;
    if (h + t + 1 > size) { /* only a tiny buffer: the code at least */
        snprintf(out, size, "%s", head);
        return;
    }
    size_t room = size - h - t - 1;
    size_t n = r->text_len < room ? r->text_len : room;
    memcpy(out, head, h);
    memcpy(out + h, r->text, n);
    memcpy(out + h + n, tail, t + 1);
}
