/* IMAP strings: see imap_mime_str.h. */
#include "imap_mime_str.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Longer strings go as literals: some clients cap quoted strings. */
#define QUOTED_MAX 1024

void imap_mime_put(struct imap_mime_writer *w, const char *s, size_t len)
{
    if (!w->full && !petrel_buf_append(w->out, s, len))
        w->full = true;
}

void imap_mime_put_cstr(struct imap_mime_writer *w, const char *s)
{
    imap_mime_put(w, s, strlen(s));
}

void imap_mime_put_u64(struct imap_mime_writer *w, unsigned long long n)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%llu", n);
    imap_mime_put(w, num, (size_t)k);
}

/* Quoted-string holds only printable ASCII (TEXT-CHAR without CR/LF). */
static bool quotable(const char *s, size_t len)
{
    if (len > QUOTED_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7E)
            return false;
    }
    return true;
}

/* Cut at the cap without splitting a UTF-8 sequence. */
static size_t kept_len(const struct imap_mime_writer *w, const char *s, size_t len)
{
    if (w->str_max == 0 || len <= w->str_max)
        return len;
    size_t n = w->str_max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void put_string(struct imap_mime_writer *w, const char *s, bool upper)
{
    size_t len = kept_len(w, s, strlen(s));
    if (!quotable(s, len)) {
        char head[32];
        int k = snprintf(head, sizeof(head), "{%zu}\r\n", len);
        imap_mime_put(w, head, (size_t)k);
        imap_mime_put(w, s, len);
        return;
    }
    imap_mime_put(w, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        char c = upper ? (char)toupper((unsigned char)s[i]) : s[i];
        if (c == '"' || c == '\\')
            imap_mime_put(w, "\\", 1);
        imap_mime_put(w, &c, 1);
    }
    imap_mime_put(w, "\"", 1);
}

void imap_mime_put_nstring(struct imap_mime_writer *w, const char *s)
{
    if (s == NULL)
        imap_mime_put(w, "NIL", 3);
    else
        put_string(w, s, false);
}

void imap_mime_put_upper(struct imap_mime_writer *w, const char *s)
{
    if (s == NULL)
        imap_mime_put(w, "NIL", 3);
    else
        put_string(w, s, true);
}
