/* Header field helpers: RFC 2047 encoded words, RFC 2045/2231 parameters,
 * RFC 5322 address lists, and charset conversion through iconv. Everything
 * here is lenient: broken input gives a best-effort result, never an error,
 * and every output is bounded by its caller's cap. */
#include "config.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/buf.h>
#include <petrel/mem.h>
#include <petrel/mime.h>

#include "alphabet.h"
#include "mime_private.h"

#define CHARSET_NAME_MAX 64
/* Raw parameters looked at per field, RFC 2231 sections included. */
#define RAW_PARAMS_MAX 256
/* Adjacent encoded words in one charset are decoded together, so that a
 * character split across two words still converts (a common encoder bug). */
#define EW_PENDING_MAX (64 * 1024)

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ---- bounded UTF-8 output ---- */

/* Append UTF-8 text; at the cap, keep only whole characters. */
static void out_utf8(struct petrel_buf *out, const char *s, size_t n)
{
    size_t room = out->max - out->len;
    if (n > room) {
        n = room;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    petrel_buf_append(out, s, n);
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), or 0. Overlong
 * forms, surrogates and code points past U+10FFFF are invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    return len;
}

/* Copy bytes that should be UTF-8, replacing each invalid byte. */
static void out_sanitized(struct petrel_buf *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n && out->len < out->max) {
        size_t len = utf8_seq_len(u + i, n - i);
        if (len > 0) {
            i += len;
            continue;
        }
        out_utf8(out, s + run, i - run);
        out_utf8(out, replacement, 3);
        run = ++i;
    }
    out_utf8(out, s + run, i - run);
}

/* The buffer's bytes as a NUL-terminated string; the buffer is freed. */
static char *out_take(struct petrel_buf *out)
{
    char *s = petrel_malloc(out->len + 1);
    if (out->len > 0)
        memcpy(s, petrel_buf_head(out), out->len);
    s[out->len] = '\0';
    petrel_buf_free(out);
    return s;
}

static char *sanitized_dup(const char *s, size_t n)
{
    struct petrel_buf out;
    petrel_buf_init(&out, n * 3 + 1);
    out_sanitized(&out, s, n);
    return out_take(&out);
}

/* ---- charsets ---- */

/* Copy a charset name iconv can be trusted with: plain characters only, so
 * that suffixes such as "//TRANSLIT" cannot change how it behaves. An
 * RFC 2231 language suffix ("utf-8*en") is dropped. */
static bool charset_name(const char *charset, size_t len, char *name, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && charset[i] != '*'; i++) {
        char c = charset[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-_.:+", c) != NULL;
        if (!ok || c == '\0' || n + 1 >= size)
            return false;
        name[n++] = c;
    }
    name[n] = '\0';
    return n > 0;
}

/* US-ASCII is handled as UTF-8 too: mislabelled 8-bit text is common and
 * reading it as UTF-8 loses nothing that is really ASCII. */
static bool charset_is_utf8(const char *name)
{
    return strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0 ||
           strcasecmp(name, "us-ascii") == 0 || strcasecmp(name, "ascii") == 0;
}

static void convert(iconv_t cd, struct petrel_buf *out, const char *data, size_t len)
{
    char tmp[1024];
    char *in = (char *)data;
    size_t inleft = len;
    while (inleft > 0 && out->len < out->max) {
        char *op = tmp;
        size_t outleft = sizeof(tmp);
        size_t r = iconv(cd, &in, &inleft, &op, &outleft);
        out_utf8(out, tmp, (size_t)(op - tmp));
        if (r != (size_t)-1 || errno == E2BIG)
            continue;
        if (errno != EILSEQ && errno != EINVAL)
            break;
        /* Invalid or truncated input: one replacement, then resync. */
        out_utf8(out, replacement, 3);
        in++;
        inleft--;
        iconv(cd, NULL, NULL, NULL, NULL);
    }
    char *op = tmp;
    size_t outleft = sizeof(tmp);
    iconv(cd, NULL, NULL, &op, &outleft);
    out_utf8(out, tmp, (size_t)(op - tmp));
}

static bool charset_known(const char *charset, size_t len)
{
    char name[CHARSET_NAME_MAX];
    if (!charset_name(charset, len, name, sizeof(name)))
        return false;
    if (charset_is_utf8(name))
        return true;
    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1)
        return false;
    iconv_close(cd);
    return true;
}

/* Convert into out; false (out untouched) when the charset is unknown. */
static bool charset_convert(const char *charset, size_t charset_len, const char *data, size_t len,
                            struct petrel_buf *out)
{
    char name[CHARSET_NAME_MAX];
    if (!charset_name(charset, charset_len, name, sizeof(name)))
        return false;
    if (charset_is_utf8(name)) {
        out_sanitized(out, data, len);
        return true;
    }
    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1)
        return false;
    convert(cd, out, data, len);
    iconv_close(cd);
    return true;
}

char *petrel_charset_to_utf8(const char *charset, const char *data, size_t len, size_t max_out)
{
    struct petrel_buf out;
    petrel_buf_init(&out, max_out);
    if (!charset_convert(charset, strlen(charset), data, len, &out))
        return NULL;
    return out_take(&out);
}

/* ---- RFC 2047 encoded words ---- */

struct encoded_word {
    const char *charset;
    size_t charset_len;
    const char *end; /* just past "?=" */
};

/* Base64 into dst (room for n * 3 / 4 bytes); missing padding is accepted. */
static bool decode_b(const char *s, size_t n, char *dst, size_t *len_r)
{
    unsigned int acc = 0, bits = 0;
    size_t len = 0, pad = 0, chars = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') {
            pad++;
            continue;
        }
        int v = petrel_base64_value((unsigned char)s[i]);
        if (v < 0 || pad > 0)
            return false;
        chars++;
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[len++] = (char)((acc >> bits) & 0xFF);
        }
    }
    if (chars % 4 == 1 || pad > 2)
        return false;
    *len_r = len;
    return true;
}

static bool decode_q(const char *s, size_t n, char *dst, size_t *len_r)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            dst[len++] = ' ';
        } else if (s[i] == '=') {
            int hi = i + 2 < n ? petrel_hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? petrel_hex_value((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            dst[len++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[len++] = s[i];
        }
    }
    *len_r = len;
    return true;
}

/* Recognise "=?charset?B|Q?text?=" at s and decode its text into a fresh
 * buffer. False when malformed or in a charset we cannot convert. */
static bool parse_encoded_word(const char *s, struct encoded_word *ew, char **data_r, size_t *len_r)
{
    const char *cs = s + 2, *q = strchr(cs, '?');
    if (q == NULL || q == cs || q[1] == '\0' || q[2] != '?')
        return false;
    for (const char *c = cs; c < q; c++) {
        if (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n')
            return false;
    }
    char enc = q[1];
    const char *text = q + 3, *end = text;
    while (*end != '\0' && *end != '?' && *end != ' ' && *end != '\t' && *end != '\r' &&
           *end != '\n')
        end++;
    if (end[0] != '?' || end[1] != '=')
        return false;
    size_t n = (size_t)(end - text);
    char *data = petrel_malloc(n + 1);
    bool ok = false;
    if (enc == 'b' || enc == 'B')
        ok = decode_b(text, n, data, len_r);
    else if (enc == 'q' || enc == 'Q')
        ok = decode_q(text, n, data, len_r);
    if (!ok || !charset_known(cs, (size_t)(q - cs))) {
        free(data);
        return false;
    }
    ew->charset = cs;
    ew->charset_len = (size_t)(q - cs);
    ew->end = end + 2;
    *data_r = data;
    return true;
}

struct ew_decoder {
    struct petrel_buf out;
    struct petrel_buf pending; /* decoded bytes of adjacent words */
    const char *charset;       /* of the pending bytes */
    size_t charset_len;
};

static void ew_flush(struct ew_decoder *d)
{
    if (d->pending.len > 0)
        charset_convert(d->charset, d->charset_len, petrel_buf_head(&d->pending), d->pending.len,
                        &d->out);
    petrel_buf_reset(&d->pending);
    d->charset = NULL;
}

static void ew_add(struct ew_decoder *d, const struct encoded_word *ew, const char *data,
                   size_t len)
{
    if (d->charset != NULL && (d->charset_len != ew->charset_len ||
                               strncasecmp(d->charset, ew->charset, ew->charset_len) != 0 ||
                               !petrel_buf_append(&d->pending, data, len)))
        ew_flush(d);
    if (d->charset == NULL) {
        d->charset = ew->charset;
        d->charset_len = ew->charset_len;
        if (!petrel_buf_append(&d->pending, data, len))
            charset_convert(ew->charset, ew->charset_len, data, len, &d->out);
    }
}

static bool is_lwsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char *petrel_mime_decode_header(const char *value, size_t max_out)
{
    struct ew_decoder d = {.charset = NULL};
    petrel_buf_init(&d.out, max_out);
    petrel_buf_init(&d.pending, EW_PENDING_MAX);
    const char *s = value, *ws = NULL;
    bool prev_encoded = false;
    while (*s != '\0' && d.out.len < d.out.max) {
        if (is_lwsp(*s)) {
            ws = s;
            while (is_lwsp(*s))
                s++;
            continue;
        }
        struct encoded_word ew;
        char *data;
        size_t len;
        if (s[0] == '=' && s[1] == '?' && parse_encoded_word(s, &ew, &data, &len)) {
            /* Blanks between two encoded words are not displayed. */
            if (!prev_encoded && ws != NULL) {
                ew_flush(&d);
                out_sanitized(&d.out, ws, (size_t)(s - ws));
            }
            ew_add(&d, &ew, data, len);
            free(data);
            s = ew.end;
            ws = NULL;
            prev_encoded = true;
            continue;
        }
        ew_flush(&d);
        if (ws != NULL)
            out_sanitized(&d.out, ws, (size_t)(s - ws));
        const char *run = s;
        s += s[0] == '=' && s[1] == '?' ? 2 : 1;
        while (*s != '\0' && !is_lwsp(*s) && !(s[0] == '=' && s[1] == '?'))
            s++;
        out_sanitized(&d.out, run, (size_t)(s - run));
        ws = NULL;
        prev_encoded = false;
    }
    ew_flush(&d);
    if (ws != NULL)
        out_sanitized(&d.out, ws, (size_t)(s - ws));
    petrel_buf_free(&d.pending);
    return out_take(&d.out);
}

/* ---- RFC 822 lexing ---- */

/* Skip blanks and (nested (comments)), with backslash escapes inside. */
static const char *skip_cfws(const char *s)
{
    for (;;) {
        while (is_lwsp(*s))
            s++;
        if (*s != '(')
            return s;
        unsigned int depth = 0;
        do {
            if (*s == '\\' && s[1] != '\0')
                s++;
            else if (*s == '(')
                depth++;
            else if (*s == ')')
                depth--;
            s++;
        } while (*s != '\0' && depth > 0);
    }
}

/* A quoted string at s (which is at '"'): unescaped content appended to
 * out; returns the position after the closing quote (or the end). */
static const char *lex_quoted(const char *s, struct petrel_buf *out)
{
    for (s++; *s != '\0' && *s != '"'; s++) {
        if (*s == '\\' && s[1] != '\0')
            s++;
        if (*s != '\r' && *s != '\n')
            petrel_buf_append(out, s, 1);
    }
    return *s == '"' ? s + 1 : s;
}

static bool is_tspecial(char c) { return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL; }

static bool is_ctl_or_space(char c) { return (unsigned char)c <= ' ' || c == 0x7F; }

/* An RFC 2045 token; returns its end (== s when there is none). */
static const char *lex_token(const char *s)
{
    while (*s != '\0' && !is_ctl_or_space(*s) && !is_tspecial(*s))
        s++;
    return s;
}

static char *lower_dup(const char *s, size_t n)
{
    char *r = sanitized_dup(s, n);
    for (char *c = r; *c != '\0'; c++) {
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    }
    return r;
}

char *petrel_mime_first_token(const char *value)
{
    const char *s = skip_cfws(value), *end = lex_token(s);
    return end == s ? NULL : lower_dup(s, (size_t)(end - s));
}

/* ---- parameters (RFC 2045 section 5.1, RFC 2231) ---- */

struct raw_param {
    char *name;  /* lower-cased, markers removed */
    char *value; /* as written, unquoted */
    int section; /* -1 when not split */
    bool extended;
    bool used;
};

/* An unquoted value: lenient, since unquoted boundaries with '=' or '/'
 * are everywhere. It ends at ';', a blank or a control character. */
static const char *lex_loose_value(const char *s)
{
    while (*s != '\0' && *s != ';' && *s != '"' && *s != '(' && !is_ctl_or_space(*s))
        s++;
    return s;
}

/* Split "name*3*" into its base, section and extended flag. */
static void raw_param_name(struct raw_param *rp, const char *s, size_t n)
{
    rp->section = -1;
    rp->extended = n > 0 && s[n - 1] == '*';
    if (rp->extended)
        n--;
    const char *star = memchr(s, '*', n);
    if (star != NULL && star + 1 < s + n && (size_t)(s + n - star - 1) <= 4) {
        int section = 0;
        const char *d;
        for (d = star + 1; d < s + n && *d >= '0' && *d <= '9'; d++)
            section = section * 10 + (*d - '0');
        if (d == s + n) {
            rp->section = section;
            n = (size_t)(star - s);
        }
    }
    rp->name = lower_dup(s, n);
}

/* One "; name=value"; returns where parsing goes on, NULL at the end.
 * max is the length of the whole value, which bounds this one. */
static const char *lex_param(const char *s, size_t max, struct raw_param *rp, bool *got_r)
{
    *got_r = false;
    s = skip_cfws(s);
    if (*s == '\0')
        return NULL;
    if (*s != ';') {
        /* Garbage: resume at the next separator. */
        while (*s != '\0' && *s != ';')
            s++;
        return s;
    }
    s = skip_cfws(s + 1);
    const char *name = s, *end = lex_token(s);
    if (end == name)
        return s;
    s = skip_cfws(end);
    if (*s != '=')
        return s;
    s = skip_cfws(s + 1);
    struct petrel_buf v;
    petrel_buf_init(&v, max + 1);
    if (*s == '"') {
        s = lex_quoted(s, &v);
    } else {
        const char *vend = lex_loose_value(s);
        petrel_buf_append(&v, s, (size_t)(vend - s));
        s = vend;
    }
    raw_param_name(rp, name, (size_t)(end - name));
    rp->value = out_take(&v);
    rp->used = false;
    *got_r = true;
    return s;
}

static void pct_decode(const char *s, struct petrel_buf *out)
{
    for (; *s != '\0'; s++) {
        int hi, lo;
        if (*s == '%' && (hi = petrel_hex_value((unsigned char)s[1])) >= 0 &&
            (lo = petrel_hex_value((unsigned char)s[2])) >= 0) {
            char c = (char)(hi << 4 | lo);
            petrel_buf_append(out, &c, 1);
            s += 2;
        } else {
            petrel_buf_append(out, s, 1);
        }
    }
}

/* The value of an extended parameter: "charset'language'%XX..." for the
 * first section, percent-encoding only for the others. */
static void extended_value(const char *v, bool first, char *charset, size_t size,
                           struct petrel_buf *bytes)
{
    if (first) {
        const char *q1 = strchr(v, '\''), *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
        if (q2 != NULL) {
            size_t n = (size_t)(q1 - v) < size ? (size_t)(q1 - v) : size - 1;
            memcpy(charset, v, n);
            charset[n] = '\0';
            v = q2 + 1;
        }
    }
    pct_decode(v, bytes);
}

static struct raw_param *find_section(struct raw_param *raw, unsigned int n, const char *name,
                                      int section)
{
    for (unsigned int i = 0; i < n; i++) {
        if (!raw[i].used && raw[i].section == section && strcmp(raw[i].name, name) == 0)
            return &raw[i];
    }
    return NULL;
}

/* Join name*0, name*1, ... (or the single name*) into one value. */
static char *join_sections(struct raw_param *raw, unsigned int n, const char *name, int first)
{
    char charset[CHARSET_NAME_MAX] = "";
    size_t total = 0;
    for (unsigned int i = 0; i < n; i++)
        total += strlen(raw[i].value) + 1;
    struct petrel_buf bytes;
    petrel_buf_init(&bytes, total + 1);
    struct raw_param *rp;
    for (int sec = first; (rp = find_section(raw, n, name, sec)) != NULL; sec++) {
        rp->used = true;
        if (rp->extended)
            extended_value(rp->value, sec == first, charset, sizeof(charset), &bytes);
        else
            petrel_buf_append(&bytes, rp->value, strlen(rp->value));
        if (sec < 0)
            break;
    }
    struct petrel_buf out;
    petrel_buf_init(&out, bytes.len * 3 + 1);
    const char *data = bytes.len > 0 ? petrel_buf_head(&bytes) : "";
    if (charset[0] == '\0' || !charset_convert(charset, strlen(charset), data, bytes.len, &out))
        petrel_buf_append(&out, data, strnlen(data, bytes.len));
    petrel_buf_free(&bytes);
    return out_take(&out);
}

static bool has_param(const struct petrel_mime_param *params, unsigned int count, const char *name)
{
    return petrel_mime_param_find(params, count, name) != NULL;
}

/* Resolve raw parameters into final ones: RFC 2231 forms win over plain
 * ones of the same name, and the first plain one wins over later ones. */
static void resolve_params(struct raw_param *raw, unsigned int n,
                           struct petrel_mime_param **params_r, unsigned int *count_r)
{
    struct petrel_mime_param *params = NULL;
    unsigned int count = 0;
    for (unsigned int i = 0; i < n && count < PETREL_MIME_MAX_PARAMS; i++) {
        const char *name = raw[i].name;
        if (raw[i].used || has_param(params, count, name))
            continue;
        char *value;
        if (find_section(raw, n, name, 0) != NULL)
            value = join_sections(raw, n, name, 0);
        else if (find_section(raw, n, name, -1) != NULL && raw[i].extended && raw[i].section < 0)
            value = join_sections(raw, n, name, -1);
        else if (raw[i].section >= 0)
            continue; /* sections without a first one */
        else if (strcmp(name, "boundary") == 0)
            value = petrel_strdup(raw[i].value); /* must match bytes exactly */
        else
            value = petrel_mime_decode_header(raw[i].value, strlen(raw[i].value) * 3 + 16);
        raw[i].used = true;
        params = petrel_reallocarray(params, count + 1, sizeof(*params));
        params[count].name = petrel_strdup(name);
        params[count].value = value;
        count++;
    }
    *params_r = params;
    *count_r = count;
}

/* An extended plain form ("name*=") must beat an earlier "name=": resolve
 * extended ones first by moving them to the front. */
static void extended_first(struct raw_param *raw, unsigned int n)
{
    unsigned int k = 0;
    for (unsigned int i = 0; i < n; i++) {
        if (raw[i].extended || raw[i].section >= 0) {
            struct raw_param t = raw[i];
            memmove(&raw[k + 1], &raw[k], (i - k) * sizeof(*raw));
            raw[k++] = t;
        }
    }
}

static void parse_params(const char *s, struct petrel_mime_param **params_r, unsigned int *count_r)
{
    struct raw_param *raw = petrel_calloc(RAW_PARAMS_MAX, sizeof(*raw));
    unsigned int n = 0;
    size_t max = strlen(s);
    while (s != NULL && n < RAW_PARAMS_MAX) {
        bool got;
        s = lex_param(s, max, &raw[n], &got);
        if (got)
            n++;
    }
    extended_first(raw, n);
    resolve_params(raw, n, params_r, count_r);
    for (unsigned int i = 0; i < n; i++) {
        free(raw[i].name);
        free(raw[i].value);
    }
    free(raw);
}

bool petrel_mime_parse_type_params(const char *value, char **type_r, char **subtype_r,
                                   struct petrel_mime_param **params_r, unsigned int *count_r)
{
    const char *s = skip_cfws(value), *end = lex_token(s);
    const char *sub = NULL, *sub_end = NULL;
    if (end == s)
        return false;
    const char *rest = skip_cfws(end);
    if (subtype_r != NULL) {
        if (*rest != '/')
            return false;
        sub = skip_cfws(rest + 1);
        sub_end = lex_token(sub);
        if (sub_end == sub)
            return false;
        rest = sub_end;
    }
    *type_r = lower_dup(s, (size_t)(end - s));
    if (subtype_r != NULL)
        *subtype_r = lower_dup(sub, (size_t)(sub_end - sub));
    parse_params(rest, params_r, count_r);
    return true;
}

void petrel_mime_params_free(struct petrel_mime_param *params, unsigned int count)
{
    for (unsigned int i = 0; i < count; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
}

const char *petrel_mime_param_find(const struct petrel_mime_param *params, unsigned int count,
                                   const char *name)
{
    for (unsigned int i = 0; i < count; i++) {
        if (strcasecmp(params[i].name, name) == 0)
            return params[i].value;
    }
    return NULL;
}

/* ---- address lists (RFC 5322 section 3.4, with the obsolete forms) ---- */

static bool is_addr_special(char c) { return c != '\0' && strchr("()<>[]:;@\\,\"", c) != NULL; }

struct addr_list {
    struct petrel_mime_address *head, **tail;
    unsigned int count, max;
    size_t len; /* of the whole value: bounds every piece of it */
};

static bool addr_full(const struct addr_list *l) { return l->max > 0 && l->count >= l->max; }

static void addr_emit(struct addr_list *l, char *name, char *route, char *mailbox, char *host)
{
    struct petrel_mime_address *a = petrel_calloc(1, sizeof(*a));
    a->name = name;
    a->route = route;
    a->mailbox = mailbox;
    a->host = host;
    *l->tail = a;
    l->tail = &a->next;
    l->count++;
}

/* A phrase: words (atoms, with dots, and quoted strings) up to a special.
 * phrase gets them joined by one space, local without separators. */
static const char *lex_phrase(const char *s, struct petrel_buf *phrase, struct petrel_buf *local)
{
    for (;;) {
        s = skip_cfws(s);
        if (*s == '\0' || (is_addr_special(*s) && *s != '"'))
            return s;
        if (phrase->len > 0)
            petrel_buf_append(phrase, " ", 1);
        if (*s == '"') {
            size_t before = phrase->len;
            s = lex_quoted(s, phrase);
            petrel_buf_append(local, petrel_buf_head(phrase) + before, phrase->len - before);
            continue;
        }
        const char *start = s;
        while (*s != '\0' && !is_lwsp(*s) && !is_addr_special(*s))
            s++;
        petrel_buf_append(phrase, start, (size_t)(s - start));
        petrel_buf_append(local, start, (size_t)(s - start));
    }
}

/* A domain after '@': atoms, dots and [literals], blanks and comments
 * dropped, up to a separator. */
static const char *lex_domain(const char *s, struct petrel_buf *out)
{
    for (;;) {
        s = skip_cfws(s);
        if (*s == '[') {
            const char *end = strchr(s, ']');
            end = end != NULL ? end + 1 : s + strlen(s);
            petrel_buf_append(out, s, (size_t)(end - s));
            s = end;
            continue;
        }
        if (*s == '\0' || is_addr_special(*s))
            return s;
        const char *start = s;
        while (*s != '\0' && !is_lwsp(*s) && !is_addr_special(*s))
            s++;
        petrel_buf_append(out, start, (size_t)(s - start));
    }
}

static char *buf_dup(const struct petrel_buf *b)
{
    return sanitized_dup(b->len > 0 ? petrel_buf_head(b) : "", b->len);
}

static char *phrase_dup(const struct petrel_buf *phrase)
{
    if (phrase->len == 0)
        return NULL;
    char *raw = buf_dup(phrase);
    char *name = petrel_mime_decode_header(raw, phrase->len * 3 + 16);
    free(raw);
    return name;
}

/* "<[@route,@route:]local@domain>" at s (which is at '<'). */
static const char *lex_angle(const char *s, struct addr_list *l, const struct petrel_buf *phrase)
{
    struct petrel_buf route, dummy, local, domain;
    size_t max = 2 * l->len + 1;
    petrel_buf_init(&route, max);
    petrel_buf_init(&dummy, max);
    petrel_buf_init(&local, max);
    petrel_buf_init(&domain, max);
    s = skip_cfws(s + 1);
    if (*s == '@') {
        const char *colon = strpbrk(s, ":>");
        if (colon != NULL && *colon == ':') {
            for (const char *c = s; c < colon; c++) {
                if (!is_lwsp(*c))
                    petrel_buf_append(&route, c, 1);
            }
            s = colon + 1;
        }
    }
    s = lex_phrase(s, &dummy, &local);
    bool at = *s == '@';
    if (at)
        s = lex_domain(s + 1, &domain);
    while (*s != '\0' && *s != '>')
        s++;
    if (*s == '>')
        s++;
    addr_emit(l, phrase_dup(phrase), route.len > 0 ? buf_dup(&route) : NULL, buf_dup(&local),
              buf_dup(&domain));
    petrel_buf_free(&route);
    petrel_buf_free(&dummy);
    petrel_buf_free(&local);
    petrel_buf_free(&domain);
    return s;
}

/* One step of the list: a phrase and what follows it. */
static const char *lex_address(const char *s, struct addr_list *l, bool *in_group)
{
    struct petrel_buf phrase, local;
    size_t max = 2 * l->len + 1;
    petrel_buf_init(&phrase, max);
    petrel_buf_init(&local, max);
    const char *start = s;
    s = lex_phrase(s, &phrase, &local);
    char c = *s;
    if (c == '<') {
        s = lex_angle(s, l, &phrase);
    } else if (c == '@') {
        struct petrel_buf domain;
        petrel_buf_init(&domain, max);
        s = lex_domain(s + 1, &domain);
        addr_emit(l, NULL, NULL, buf_dup(&local), buf_dup(&domain));
        petrel_buf_free(&domain);
    } else if (c == ':' && !*in_group) {
        char *group = phrase_dup(&phrase);
        addr_emit(l, NULL, NULL, group != NULL ? group : petrel_strdup(""), NULL);
        *in_group = true;
        s++;
    } else {
        /* A bare word: an address without a domain ("To: root"). */
        if (local.len > 0)
            addr_emit(l, NULL, NULL, buf_dup(&local), petrel_strdup(""));
        if (c == ';' && *in_group) {
            addr_emit(l, NULL, NULL, NULL, NULL);
            *in_group = false;
        }
        if (c != '\0' && (s == start || c == ',' || c == ';' || c == ':' || c == '>' || c == ']' ||
                          c == ')' || c == '\\'))
            s++;
    }
    petrel_buf_free(&phrase);
    petrel_buf_free(&local);
    return s;
}

struct petrel_mime_address *petrel_mime_parse_addresses(const char *value, unsigned int max_count)
{
    struct addr_list l = {.head = NULL, .count = 0, .max = max_count, .len = strlen(value)};
    l.tail = &l.head;
    bool in_group = false;
    const char *s = value;
    while (*s != '\0' && !addr_full(&l)) {
        const char *before = s;
        s = lex_address(s, &l, &in_group);
        if (s == before)
            s++; /* never stall on garbage */
    }
    if (in_group)
        addr_emit(&l, NULL, NULL, NULL, NULL);
    return l.head;
}

void petrel_mime_addresses_free(struct petrel_mime_address *list)
{
    while (list != NULL) {
        struct petrel_mime_address *next = list->next;
        free(list->name);
        free(list->route);
        free(list->mailbox);
        free(list->host);
        free(list);
        list = next;
    }
}
