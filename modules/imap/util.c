/* The wire forms the commands share: strings (quoted or literal), flag
 * lists both ways, and folder names. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_mutf7.h"

/* utf8: UTF-8 may be quoted (IMAP4rev2's and RFC 6855's quoted strings). */
static bool quotable(const char *s, size_t len, bool utf8)
{
    if (len > 1024)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0' || c == '\r' || c == '\n' || (c >= 0x80 && !utf8))
            return false;
    }
    return !utf8 || imap_utf8_valid(s, len, false);
}

static void put_string(struct petrel_buf *out, const char *s, size_t len, bool utf8)
{
    if (!quotable(s, len, utf8)) {
        petrel_buf_printf(out, "{%zu}\r\n", len);
        petrel_buf_append(out, s, len);
        return;
    }
    petrel_buf_append(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            petrel_buf_append(out, "\\", 1);
        petrel_buf_append(out, &s[i], 1);
    }
    petrel_buf_append(out, "\"", 1);
}

void imap_put_string(struct petrel_buf *out, const char *s, size_t len)
{
    put_string(out, s, len, false);
}

void imap_put_nstring(struct petrel_buf *out, const char *s)
{
    if (s == NULL)
        petrel_buf_append(out, "NIL", 3);
    else
        imap_put_string(out, s, strlen(s));
}

static const struct {
    uint32_t bit;
    const char *name;
} system_flags[] = {
    {PETREL_STORAGE_SEEN, "\\Seen"},       {PETREL_STORAGE_ANSWERED, "\\Answered"},
    {PETREL_STORAGE_FLAGGED, "\\Flagged"}, {PETREL_STORAGE_DELETED, "\\Deleted"},
    {PETREL_STORAGE_DRAFT, "\\Draft"},
};
#define NFLAGS (sizeof(system_flags) / sizeof(system_flags[0]))

void imap_put_flags(struct petrel_buf *out, uint32_t flags, const char *keywords)
{
    const char *sep = "";
    petrel_buf_append(out, "(", 1);
    for (size_t i = 0; i < NFLAGS; i++)
        if (flags & system_flags[i].bit) {
            petrel_buf_printf(out, "%s%s", sep, system_flags[i].name);
            sep = " ";
        }
    if (keywords != NULL && keywords[0] != '\0')
        petrel_buf_printf(out, "%s%s", sep, keywords);
    petrel_buf_append(out, ")", 1);
}

/* RFC 3501 atom characters less the list and quoted specials. */
static bool keyword_ok(const char *s, size_t len)
{
    if (len == 0 || len > PETREL_STORAGE_MAX_KEYWORD)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            return false;
    }
    return true;
}

static bool one_flag(const struct imap_arg *a, uint32_t *flags, struct petrel_buf *kw,
                     const char **error_r)
{
    if (a->type != IMAP_ARG_ATOM) {
        *error_r = "a flag is an atom";
        return false;
    }
    if (a->str[0] == '\\') {
        for (size_t i = 0; i < NFLAGS; i++)
            if (strcasecmp(a->str, system_flags[i].name) == 0) {
                *flags |= system_flags[i].bit;
                return true;
            }
        *error_r = "unknown system flag";
        return false;
    }
    if (!keyword_ok(a->str, a->len)) {
        *error_r = "bad keyword";
        return false;
    }
    if (kw->len > 0)
        petrel_buf_append(kw, " ", 1);
    if (!petrel_buf_append(kw, a->str, a->len)) {
        *error_r = "too many keywords";
        return false;
    }
    return true;
}

bool imap_parse_flags(const struct imap_arg *arg, uint32_t *flags_r, char **keywords_r,
                      const char **error_r)
{
    struct petrel_buf kw;
    petrel_buf_init(&kw, (PETREL_STORAGE_MAX_KEYWORD + 1) * PETREL_STORAGE_MAX_KEYWORDS);
    *flags_r = 0;
    *keywords_r = NULL;
    bool ok = true;
    if (arg->type == IMAP_ARG_LIST) {
        for (size_t i = 0; ok && i < arg->count; i++)
            ok = one_flag(&arg->list[i], flags_r, &kw, error_r);
    } else {
        ok = one_flag(arg, flags_r, &kw, error_r);
    }
    if (ok && kw.len > 0)
        *keywords_r = petrel_strndup(petrel_buf_head(&kw), kw.len);
    petrel_buf_free(&kw);
    return ok;
}

char *imap_folder_from_wire(const struct imap_session *s, const struct imap_arg *arg,
                            const char **error_r)
{
    const char *name = imap_arg_astring(arg);
    if (name == NULL || arg->spooled || arg->len == 0 || strlen(name) != arg->len) {
        *error_r = "Bad mailbox name";
        return NULL;
    }
    char *copy;
    if (IMAP_UTF8_NAMES(s)) {
        if (arg->len > 4 * PETREL_STORAGE_MAX_NAME || !imap_utf8_valid(name, arg->len, true)) {
            *error_r = "Mailbox names are in UTF-8";
            return NULL;
        }
        copy = petrel_strndup(name, arg->len);
    } else {
        struct petrel_buf utf8;
        petrel_buf_init(&utf8, 4 * PETREL_STORAGE_MAX_NAME + 16);
        if (!imap_mutf7_decode(name, arg->len, &utf8)) {
            petrel_buf_free(&utf8);
            *error_r = "Mailbox names are in modified UTF-7";
            return NULL;
        }
        copy = petrel_strndup(petrel_buf_head(&utf8), utf8.len);
        petrel_buf_free(&utf8);
    }
    /* INBOX is case-insensitive, also as the first level (RFC 3501 5.1). */
    if (strncasecmp(copy, "INBOX", 5) == 0 && (copy[5] == '\0' || copy[5] == '/'))
        memcpy(copy, "INBOX", 5);
    return copy;
}

void imap_put_folder(const struct imap_session *s, struct petrel_buf *out, const char *name)
{
    size_t len = strlen(name);
    if (IMAP_UTF8_NAMES(s)) { /* quoted when it can be: rev2's quoted strings take UTF-8 */
        put_string(out, name, len, true);
        return;
    }
    struct petrel_buf wire;
    petrel_buf_init(&wire, 8 * PETREL_STORAGE_MAX_NAME + 16);
    if (imap_mutf7_encode(name, len, &wire))
        imap_put_string(out, petrel_buf_head(&wire), wire.len);
    else /* not UTF-8: another program's name, sent as it is */
        imap_put_string(out, name, len);
    petrel_buf_free(&wire);
}
