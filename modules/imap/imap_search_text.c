/* The text side of SEARCH: case folding, the sliding-window matcher, and
 * one body part decoded (base64, quoted-printable, charset) on the way to
 * it. Everything streams through fixed buffers. */
#include "config.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap_search_private.h"
#include "imap_base64.h"

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

size_t search_fold(struct search_fold *f, const char *in, size_t len, char *out)
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

size_t search_fold_end(struct search_fold *f, char *out)
{
    if (f->pending == 0)
        return 0;
    out[0] = (char)f->pending;
    f->pending = 0;
    return 1;
}

char *search_fold_str(const char *s, size_t len)
{
    struct search_fold f = {0};
    char *out = petrel_malloc(len + 2);
    size_t n = search_fold(&f, s, len, out);
    n += search_fold_end(&f, out + n);
    out[n] = '\0';
    return out;
}

/* ---- matcher ---- */

void search_matcher_init(struct search_matcher *mt, const struct imap_search *s, uint64_t want,
                         uint64_t *hits)
{
    mt->s = s;
    mt->want = want & ~*hits;
    mt->hits = hits;
    mt->keep = 0;
    mt->len = 0;
    mt->budget = SEARCH_MAX_TEXT_BYTES;
    for (unsigned i = 0; i < s->needle_count; i++)
        if ((mt->want >> i) & 1u && s->needles[i].len > mt->keep + 1)
            mt->keep = s->needles[i].len - 1;
}

static void matcher_scan(struct search_matcher *mt)
{
    for (unsigned i = 0; i < mt->s->needle_count; i++) {
        const struct search_needle *nd = &mt->s->needles[i];
        if (!((mt->want >> i) & 1u))
            continue;
        if (nd->len == 0 || memmem(mt->buf, mt->len, nd->text, nd->len) != NULL) {
            *mt->hits |= 1ull << i;
            mt->want &= ~(1ull << i);
        }
    }
}

void search_matcher_feed(struct search_matcher *mt, const char *data, size_t len)
{
    if (len > mt->budget)
        len = (size_t)mt->budget;
    mt->budget -= len;
    while (len > 0 && mt->want != 0) {
        size_t room = sizeof(mt->buf) - mt->len;
        size_t n = len < room ? len : room;
        memcpy(mt->buf + mt->len, data, n);
        mt->len += n;
        data += n;
        len -= n;
        if (mt->len < sizeof(mt->buf))
            break;
        matcher_scan(mt);
        /* Keep the tail a needle may still complete. */
        memmove(mt->buf, mt->buf + mt->len - mt->keep, mt->keep);
        mt->len = mt->keep;
    }
}

void search_matcher_end(struct search_matcher *mt)
{
    if (mt->want != 0 && mt->len > 0)
        matcher_scan(mt);
    mt->len = 0;
}

bool search_matcher_done(const struct search_matcher *mt)
{
    return mt->want == 0 || mt->budget == 0;
}

/* ---- one body part ---- */

enum xfer { XFER_IDENTITY, XFER_BASE64, XFER_QP };

struct search_part {
    struct search_matcher *mt;
    enum xfer xfer;
    uint32_t b64_acc;
    unsigned b64_bits;
    bool b64_end;
    unsigned qp_state; /* 0 text, 1 after '=', 2 after "=X", 3 after "=\r" */
    char qp_hex;
    iconv_t cd; /* (iconv_t)-1: the bytes go through as they are */
    char carry[16];
    size_t carry_len;
    struct search_fold fold;
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Bytes that are not base64 are skipped, as RFC 2045 says; '=' ends it. */
static size_t decode_base64(struct search_part *p, const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len && !p->b64_end; i++) {
        int v = imap_base64_value((unsigned char)in[i], '/');
        if (in[i] == '=')
            p->b64_end = true;
        if (v < 0)
            continue;
        p->b64_acc = (p->b64_acc << 6) | (uint32_t)v;
        p->b64_bits += 6;
        if (p->b64_bits >= 8) {
            p->b64_bits -= 8;
            out[n++] = (char)((p->b64_acc >> p->b64_bits) & 0xFF);
        }
    }
    return n;
}

/* A broken escape goes through as written. Output: at most len + 2. */
static size_t decode_qp(struct search_part *p, const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        switch (p->qp_state) {
        case 0:
            if (c == '=')
                p->qp_state = 1;
            else
                out[n++] = c;
            break;
        case 1:
            if (c == '\r') {
                p->qp_state = 3;
            } else if (c == '\n') {
                p->qp_state = 0; /* soft line break */
            } else if (hex_value((unsigned char)c) >= 0) {
                p->qp_hex = c;
                p->qp_state = 2;
            } else {
                out[n++] = '=';
                out[n++] = c;
                p->qp_state = 0;
            }
            break;
        case 2:
            if (hex_value((unsigned char)c) >= 0) {
                out[n++] =
                    (char)(hex_value((unsigned char)p->qp_hex) * 16 + hex_value((unsigned char)c));
            } else {
                out[n++] = '=';
                out[n++] = p->qp_hex;
                out[n++] = c;
            }
            p->qp_state = 0;
            break;
        default: /* "=\r": the line feed of a soft break */
            p->qp_state = 0;
            if (c != '\n')
                out[n++] = c;
            break;
        }
    }
    return n;
}

static void to_matcher(struct search_part *p, const char *utf8, size_t len)
{
    char folded[4096 + 2];
    while (len > 0) {
        size_t n = len < 4096 ? len : 4096;
        size_t m = search_fold(&p->fold, utf8, n, folded);
        search_matcher_feed(p->mt, folded, m);
        utf8 += n;
        len -= n;
    }
}

static const char replacement[] = "\xEF\xBF\xBD";

/* Convert through iconv; a sequence cut at the end of in waits in carry. */
static void convert(struct search_part *p, const char *in, size_t len)
{
    char tmp[sizeof(p->carry) + 4096];
    char out[4096];
    while (len > 0) {
        size_t take = len < 4096 ? len : 4096;
        memcpy(tmp, p->carry, p->carry_len);
        memcpy(tmp + p->carry_len, in, take);
        size_t inleft = p->carry_len + take;
        char *ip = tmp;
        p->carry_len = 0;
        in += take;
        len -= take;
        while (inleft > 0) {
            char *op = out;
            size_t outleft = sizeof(out);
            size_t r = iconv(p->cd, &ip, &inleft, &op, &outleft);
            to_matcher(p, out, (size_t)(op - out));
            if (r != (size_t)-1 || errno == E2BIG)
                continue;
            if (errno == EINVAL && inleft < sizeof(p->carry)) {
                memcpy(p->carry, ip, inleft);
                p->carry_len = inleft;
                break;
            }
            /* Invalid: one replacement, then resync. */
            to_matcher(p, replacement, 3);
            ip++;
            inleft--;
            iconv(p->cd, NULL, NULL, NULL, NULL);
        }
    }
}

static void to_charset(struct search_part *p, const char *in, size_t len)
{
    if (p->cd == (iconv_t)-1)
        to_matcher(p, in, len);
    else
        convert(p, in, len);
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

struct search_part *search_part_new(const char *encoding, const char *charset,
                                    struct search_matcher *mt)
{
    struct search_part *p = petrel_calloc(1, sizeof(*p));
    p->mt = mt;
    if (encoding != NULL && strcasecmp(encoding, "base64") == 0)
        p->xfer = XFER_BASE64;
    else if (encoding != NULL && strcasecmp(encoding, "quoted-printable") == 0)
        p->xfer = XFER_QP;
    p->cd = (iconv_t)-1;
    /* An unknown charset is matched as its bytes. */
    if (charset != NULL && charset_usable(charset))
        p->cd = iconv_open("UTF-8", charset);
    return p;
}

void search_part_feed(struct search_part *p, const char *data, size_t len)
{
    char dec[1024 + 2];
    while (len > 0 && !search_matcher_done(p->mt)) {
        size_t n = len < 1024 ? len : 1024;
        size_t m = n;
        if (p->xfer == XFER_BASE64)
            m = decode_base64(p, data, n, dec);
        else if (p->xfer == XFER_QP)
            m = decode_qp(p, data, n, dec);
        else
            memcpy(dec, data, n);
        to_charset(p, dec, m);
        data += n;
        len -= n;
    }
}

void search_part_free(struct search_part *p)
{
    if (p == NULL)
        return;
    if (p->cd != (iconv_t)-1) {
        if (p->carry_len > 0)
            to_matcher(p, replacement, 3);
        iconv_close(p->cd);
    }
    char tail[2];
    size_t n = search_fold_end(&p->fold, tail);
    search_matcher_feed(p->mt, tail, n);
    search_matcher_end(p->mt);
    free(p);
}
