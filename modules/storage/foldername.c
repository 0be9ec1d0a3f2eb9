/* Folder names. The API speaks UTF-8 names separated by '/'; on disk each
 * folder is a Maildir++ directory ".A.B" below the account root, where '.'
 * separates levels. A literal '.' or '~' in a level, and anything a file
 * system or a Maildir tool could take for syntax, is written "~XX" (hex),
 * so "A/B.c" is ".A.B~2Ec". INBOX is the account root itself. No I/O. */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "storage_private.h"

/* Length of the UTF-8 sequence at s, or 0 when it is not well formed. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

bool storage_foldername_valid(const char *name, char *canon, size_t size)
{
    size_t len = strlen(name), depth = 1;
    if (len == 0 || len > PETREL_STORAGE_MAX_NAME || len >= size)
        return false;
    if (name[0] == '/' || name[len - 1] == '/')
        return false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)name[i];
        /* Control bytes and the IMAP LIST wildcards never name a folder. */
        if (c < 0x20 || c == 0x7f || c == '*' || c == '%')
            return false;
        if (c == '/') {
            if (name[i + 1] == '/' || ++depth > PETREL_STORAGE_MAX_DEPTH)
                return false;
        }
        size_t n = utf8_len((const unsigned char *)name + i);
        if (n == 0)
            return false;
        i += n;
    }
    memcpy(canon, name, len + 1);
    if (strncasecmp(canon, "INBOX", 5) == 0 && (canon[5] == '\0' || canon[5] == '/'))
        memcpy(canon, "INBOX", 5);
    return true;
}

static bool unsafe_byte(unsigned char c)
{
    return c == '.' || c == '~' || c == '/' || c == ':' || c < 0x20 || c == 0x7f;
}

bool storage_foldername_to_dir(const char *canon, char *dir, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (strcmp(canon, "INBOX") == 0) {
        if (size == 0)
            return false;
        dir[0] = '\0';
        return true;
    }
    /* Bounds: o + k bytes written must stay within the file name limit and
     * leave room for the terminating NUL. */
    for (const char *p = canon;; p++) {
        if (p == canon || *p == '/') {
            if (o + 1 > STORAGE_MAX_FILENAME || o + 1 >= size)
                return false;
            dir[o++] = '.';
            if (*p == '/')
                continue;
        }
        if (*p == '\0')
            break;
        unsigned char c = (unsigned char)*p;
        size_t k = unsafe_byte(c) ? 3 : 1;
        if (o + k > STORAGE_MAX_FILENAME || o + k >= size)
            return false;
        if (unsafe_byte(c)) {
            dir[o++] = '~';
            dir[o++] = hex[c >> 4];
            dir[o++] = hex[c & 15];
        } else {
            dir[o++] = (char)c;
        }
    }
    /* The loop wrote a separator before the first level only. */
    dir[o] = '\0';
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool storage_foldername_from_dir(const char *dir, char *name, size_t size)
{
    char raw[PETREL_STORAGE_MAX_NAME + 1];
    size_t o = 0;
    if (dir[0] != '.' || dir[1] == '\0' || strcmp(dir, "..") == 0)
        return false;
    for (const char *p = dir + 1; *p != '\0'; p++) {
        if (o + 1 >= sizeof(raw))
            return false;
        if (*p == '.') {
            raw[o++] = '/';
        } else if (*p == '~') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (lo < 0)
                return false;
            raw[o++] = (char)(hi * 16 + lo);
            p += 2;
        } else {
            raw[o++] = *p;
        }
    }
    raw[o] = '\0';
    if (!storage_foldername_valid(raw, name, size))
        return false;
    /* ".INBOX" alone would shadow the real INBOX (the root). */
    if (strcmp(name, "INBOX") == 0)
        return false;
    /* Exactly one directory name per folder: a name must encode back to
     * this very entry ("~2f" for "~2F", "~41" for "A", ".inbox.x" for
     * "INBOX/x" are other spellings and are refused). */
    char back[STORAGE_MAX_FILENAME + 1];
    return storage_foldername_to_dir(name, back, sizeof(back)) && strcmp(back, dir) == 0;
}

/* Copy one part of an address into out with unsafe bytes escaped; a
 * leading '.' is escaped too so that nothing is hidden or climbs up. */
static bool user_part(const char *s, size_t n, bool lower, char *out, size_t size, size_t *o)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (*o + 4 >= size)
            return false;
        if (lower)
            c = (unsigned char)tolower(c);
        if (isalnum(c) || (c != '.' && strchr("-_+=", c) != NULL) || (c == '.' && i > 0)) {
            out[(*o)++] = (char)c;
        } else {
            out[(*o)++] = '~';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        }
    }
    out[*o] = '\0';
    return true;
}

bool storage_foldername_user_path(const char *user, const char *default_domain, char *path,
                                  size_t size)
{
    size_t len = strlen(user), o = 0;
    if (len == 0 || len > STORAGE_MAX_USER)
        return false;
    const char *at = strrchr(user, '@');
    const char *domain = at != NULL ? at + 1 : default_domain;
    size_t local_len = at != NULL ? (size_t)(at - user) : len;
    if (domain == NULL || domain[0] == '\0' || strlen(domain) > STORAGE_MAX_USER)
        return false;
    /* Each part becomes one directory name: at most NAME_MAX bytes once
     * escaped, or it is not an acceptable name (rather than a mkdir error). */
    if (!user_part(domain, strlen(domain), true, path, size, &o) || o > STORAGE_MAX_FILENAME ||
        o + 2 >= size)
        return false;
    path[o++] = '/';
    size_t start = o;
    return user_part(user, local_len, false, path, size, &o) && o - start <= STORAGE_MAX_FILENAME;
}
