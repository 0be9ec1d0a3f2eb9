/* One body part's bytes to searchable text: transfer decoding
 * (petrel/cte.h), charset to UTF-8 with iconv (or the bytes checked as
 * UTF-8), HTML reduced to text, case folding. Everything streams through
 * fixed buffers. */
#include "config.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/cte.h>
#include <petrel/mem.h>
#include <petrel/mimetext.h>

#include "mimetext_private.h"

/* ---- case folding ---- */

/* Capitals to small letters where both have two-byte UTF-8 forms (U+0080
 * to U+07FF), so a folded text is as long as the original. */
static uint32_t fold_cp(uint32_t c)
{
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 0x20; /* Latin-1 */
    if (c == 0x178)
        return 0xFF;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return (c != 0x130) ? (c | 1u) : c; /* Latin Extended-A, even capitals */
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
        return (c & 1u) ? c + 1 : c; /* odd capitals */
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 0x25;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 0x3F;
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
        return c + 0x20; /* Greek */
    if (c == 0x3C2)
        return 0x3C3; /* final sigma */
    if (c >= 0x400 && c <= 0x40F)
        return c + 0x50; /* Cyrillic Ѐ..Џ */
    if (c >= 0x410 && c <= 0x42F)
        return c + 0x20;
    return c;
}

size_t petrel_fold(struct petrel_fold *f, const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)in[i];
        if (f->pending != 0) {
            unsigned char lead = f->pending;
            f->pending = 0;
            if (b >= 0x80 && b <= 0xBF) {
                uint32_t c = fold_cp(((uint32_t)(lead & 0x1F) << 6) | (b & 0x3F));
                out[n++] = (char)(0xC0 | (c >> 6));
                out[n++] = (char)(0x80 | (c & 0x3F));
                continue;
            }
            out[n++] = (char)lead;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            f->pending = b;
            continue;
        }
        out[n++] = (char)((b >= 'A' && b <= 'Z') ? b + 32 : b);
    }
    return n;
}

size_t petrel_fold_end(struct petrel_fold *f, char *out)
{
    if (f->pending == 0)
        return 0;
    out[0] = (char)f->pending;
    f->pending = 0;
    return 1;
}

char *petrel_fold_str(const char *s, size_t len)
{
    struct petrel_fold f = {0};
    char *out = petrel_malloc(len + 2);
    size_t n = petrel_fold(&f, s, len, out);
    n += petrel_fold_end(&f, out + n);
    out[n] = '\0';
    return out;
}

size_t mimetext_utf8_put(unsigned long c, char *out)
{
    if (c == 0 || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
        c = 0xFFFD;
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- one part ---- */

struct petrel_mimetext_part {
    petrel_mimetext_fn *fn;
    void *ctx;
    bool stopped;
    struct petrel_cte cte; /* an unknown encoding is read as it is */
    iconv_t cd;            /* (iconv_t)-1: the bytes are checked as UTF-8 */
    char carry[16];
    size_t carry_len;
    unsigned char u8[4]; /* a UTF-8 sequence cut at the end of a piece */
    size_t u8_len;
    bool html;
    struct mimetext_html h;
    struct petrel_fold fold;
    size_t olen;
    char obuf[8192]; /* folded text not yet given, so fn sees pieces, not bytes */
};

static const struct petrel_mimetext_info body_info = {.kind = PETREL_MIMETEXT_BODY};

/* The last stage: fold, then hand to the caller in pieces of up to
 * sizeof(obuf). */
static bool flush(struct petrel_mimetext_part *p, bool last)
{
    if (!p->stopped && (p->olen > 0 || last) && !p->fn(p->ctx, &body_info, p->obuf, p->olen, last))
        p->stopped = true;
    p->olen = 0;
    return !p->stopped;
}

static bool to_fold(void *ctx, const char *utf8, size_t len)
{
    struct petrel_mimetext_part *p = ctx;
    while (len > 0 && !p->stopped) {
        size_t n = len < 4096 ? len : 4096;
        if (p->olen + n + 1 > sizeof(p->obuf) && !flush(p, false))
            break;
        p->olen += petrel_fold(&p->fold, utf8, n, p->obuf + p->olen);
        utf8 += n;
        len -= n;
    }
    return !p->stopped;
}

static bool to_text(struct petrel_mimetext_part *p, const char *utf8, size_t len)
{
    if (p->html)
        return mimetext_html_feed(&p->h, utf8, len, to_fold, p);
    return to_fold(p, utf8, len);
}

static const char replacement[] = "\xEF\xBF\xBD";

/* The length of the UTF-8 sequence that b leads, 0 when it leads none. */
static size_t utf8_seq_len(unsigned char b)
{
    if (b >= 0x01 && b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Whether s (n bytes, n = its sequence length) is one valid sequence. */
static bool utf8_seq_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return false;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0)
        return false; /* overlong */
    if (n == 3 && s[0] == 0xED && s[1] >= 0xA0)
        return false; /* surrogate */
    if (n == 4 && s[0] == 0xF0 && s[1] < 0x90)
        return false;
    if (n == 4 && s[0] == 0xF4 && s[1] >= 0x90)
        return false;
    return true;
}

/* Bytes that claim to be UTF-8: each byte that starts no valid sequence
 * (NUL included: it is no text) becomes U+FFFD, so the text is valid
 * UTF-8 for the index's tokenizer as for the scan. */
static void check_utf8(struct petrel_mimetext_part *p, const char *in, size_t len)
{
    char out[4096 + 8];
    size_t n = 0;
    for (size_t i = 0; i < len && !p->stopped; i++) {
        p->u8[p->u8_len++] = (unsigned char)in[i];
        while (p->u8_len > 0) {
            size_t need = utf8_seq_len(p->u8[0]);
            if (need > 0 && p->u8_len < need) {
                bool ok = true;
                for (size_t k = 1; k < p->u8_len; k++)
                    ok = ok && p->u8[k] >= 0x80 && p->u8[k] <= 0xBF;
                if (ok)
                    break; /* wait for the rest */
            }
            if (need > 0 && p->u8_len >= need && utf8_seq_valid(p->u8, need)) {
                memcpy(out + n, p->u8, need);
                n += need;
            } else {
                memcpy(out + n, replacement, 3);
                n += 3;
                need = 1; /* resync on the next byte */
            }
            memmove(p->u8, p->u8 + need, p->u8_len - need);
            p->u8_len -= need;
        }
        if (n >= 4096) {
            to_text(p, out, n);
            n = 0;
        }
    }
    if (n > 0)
        to_text(p, out, n);
}

/* Convert through iconv; a sequence cut at the end of in waits in carry. */
static void convert(struct petrel_mimetext_part *p, const char *in, size_t len)
{
    char tmp[sizeof(p->carry) + 4096];
    char out[4096];
    while (len > 0 && !p->stopped) {
        size_t take = len < 4096 ? len : 4096;
        memcpy(tmp, p->carry, p->carry_len);
        memcpy(tmp + p->carry_len, in, take);
        size_t inleft = p->carry_len + take;
        char *ip = tmp;
        p->carry_len = 0;
        in += take;
        len -= take;
        while (inleft > 0 && !p->stopped) {
            char *op = out;
            size_t outleft = sizeof(out);
            size_t r = iconv(p->cd, &ip, &inleft, &op, &outleft);
            /* iconv's output is UTF-8, but a charset may map a byte to NUL. */
            check_utf8(p, out, (size_t)(op - out));
            if (r != (size_t)-1 || errno == E2BIG)
                continue;
            if (errno == EINVAL && inleft < sizeof(p->carry)) {
                memcpy(p->carry, ip, inleft);
                p->carry_len = inleft;
                break;
            }
            /* Invalid: one replacement, then resync. */
            to_text(p, replacement, 3);
            ip++;
            inleft--;
            iconv(p->cd, NULL, NULL, NULL, NULL);
        }
    }
}

/* The names iconv is given: plain characters only, so that a suffix such
 * as "//TRANSLIT" cannot change how it behaves. */
static bool charset_usable(const char *cs)
{
    size_t n = strlen(cs);
    if (n == 0 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = cs[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return strcasecmp(cs, "utf-8") != 0 && strcasecmp(cs, "utf8") != 0 &&
           strcasecmp(cs, "us-ascii") != 0;
}

struct petrel_mimetext_part *petrel_mimetext_part_new(const char *encoding, const char *charset,
                                                      bool html, petrel_mimetext_fn *fn, void *ctx)
{
    struct petrel_mimetext_part *p = petrel_calloc(1, sizeof(*p));
    p->fn = fn;
    p->ctx = ctx;
    petrel_cte_init(&p->cte, encoding);
    p->cd = (iconv_t)-1;
    /* An unknown charset is read as UTF-8. */
    if (charset != NULL && charset_usable(charset))
        p->cd = iconv_open("UTF-8", charset);
    p->html = html;
    if (html)
        mimetext_html_init(&p->h);
    return p;
}

bool petrel_mimetext_part_feed(struct petrel_mimetext_part *p, const char *data, size_t len)
{
    char dec[1024 + 2];
    while (len > 0 && !p->stopped) {
        size_t n = len < 1024 ? len : 1024;
        size_t m = petrel_cte_decode(&p->cte, data, n, dec);
        if (p->cd == (iconv_t)-1)
            check_utf8(p, dec, m);
        else
            convert(p, dec, m);
        data += n;
        len -= n;
    }
    return !p->stopped;
}

bool petrel_mimetext_part_free(struct petrel_mimetext_part *p)
{
    if (p == NULL)
        return true;
    if (p->cd != (iconv_t)-1) {
        if (p->carry_len > 0 && !p->stopped)
            to_text(p, replacement, 3);
        iconv_close(p->cd);
    }
    for (size_t i = 0; i < p->u8_len && !p->stopped; i++)
        to_text(p, replacement, 3); /* a sequence cut by the end */
    if (p->html && !p->stopped)
        mimetext_html_end(&p->h, to_fold, p);
    if (!p->stopped)
        p->olen += petrel_fold_end(&p->fold, p->obuf + p->olen);
    bool go_on = flush(p, true);
    free(p);
    return go_on;
}
