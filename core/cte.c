/* Content-Transfer-Encoding decoding (see petrel/cte.h). */
#include "config.h"

#include <string.h>
#include <strings.h>

#include <petrel/cte.h>

#include "alphabet.h"

static const struct {
    const char *name;
    enum petrel_cte_kind kind;
} encodings[] = {
    {"7bit", PETREL_CTE_IDENTITY},       {"8bit", PETREL_CTE_IDENTITY},
    {"binary", PETREL_CTE_IDENTITY},     {"base64", PETREL_CTE_BASE64},
    {"quoted-printable", PETREL_CTE_QP},
};

static bool lookup(const char *encoding, enum petrel_cte_kind *kind_r)
{
    *kind_r = PETREL_CTE_IDENTITY;
    if (encoding == NULL)
        return true;
    for (size_t i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++)
        if (strcasecmp(encoding, encodings[i].name) == 0) {
            *kind_r = encodings[i].kind;
            return true;
        }
    return false;
}

bool petrel_cte_known(const char *encoding)
{
    enum petrel_cte_kind kind;
    return lookup(encoding, &kind);
}

bool petrel_cte_init(struct petrel_cte *d, const char *encoding)
{
    *d = (struct petrel_cte){.kind = PETREL_CTE_IDENTITY};
    return lookup(encoding, &d->kind);
}

static bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Padding may only complete a quantum of two or three sextets; after it
 * only more padding and blanks are expected. */
static void base64_pad(struct petrel_cte *d)
{
    if (!d->b64_end && d->b64_count < 2)
        d->damaged = true;
    d->b64_end = true;
}

static size_t decode_base64(struct petrel_cte *d, const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = petrel_base64_value((unsigned char)in[i]);
        if (in[i] == '=') {
            base64_pad(d);
            continue;
        }
        if (v < 0 || d->b64_end) {
            d->damaged |= !blank(in[i]);
            continue;
        }
        d->b64_acc = (d->b64_acc << 6) | (uint32_t)v;
        d->b64_bits += 6;
        d->b64_count = (d->b64_count + 1) % 4;
        if (d->b64_bits >= 8) {
            d->b64_bits -= 8;
            out[n++] = (char)((d->b64_acc >> d->b64_bits) & 0xFF);
        }
    }
    return n;
}

/* A broken escape goes through as written: the reader sees what was
 * there rather than losing bytes. */
static size_t decode_qp(struct petrel_cte *d, const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        switch (d->qp_state) {
        case 0:
            if (c == '=')
                d->qp_state = 1;
            else
                out[n++] = c;
            break;
        case 1:
            if (c == '\r') {
                d->qp_state = 3;
            } else if (c == '\n') {
                d->qp_state = 0; /* soft line break with a bare LF */
            } else if (petrel_hex_value((unsigned char)c) >= 0) {
                d->qp_hex = c;
                d->qp_state = 2;
            } else {
                out[n++] = '=';
                out[n++] = c;
                d->qp_state = 0;
                d->damaged = true;
            }
            break;
        case 2:
            if (petrel_hex_value((unsigned char)c) >= 0) {
                out[n++] = (char)(petrel_hex_value((unsigned char)d->qp_hex) * 16 +
                                  petrel_hex_value((unsigned char)c));
            } else {
                out[n++] = '=';
                out[n++] = d->qp_hex;
                out[n++] = c;
                d->damaged = true;
            }
            d->qp_state = 0;
            break;
        default: /* "=\r": the line feed of a soft break */
            d->qp_state = 0;
            if (c != '\n') {
                out[n++] = c;
                d->damaged = true;
            }
            break;
        }
    }
    return n;
}

size_t petrel_cte_decode(struct petrel_cte *d, const char *in, size_t len, char *out)
{
    switch (d->kind) {
    case PETREL_CTE_BASE64:
        return decode_base64(d, in, len, out);
    case PETREL_CTE_QP:
        return decode_qp(d, in, len, out);
    default:
        if (len > 0)
            memcpy(out, in, len);
        return len;
    }
}

bool petrel_cte_end(struct petrel_cte *d, char *out, size_t *len_r)
{
    *len_r = 0;
    if (d->kind == PETREL_CTE_BASE64 && d->b64_count != 0 && !d->b64_end)
        d->damaged = true; /* a quantum cut short, or no padding */
    if (d->kind == PETREL_CTE_QP && d->qp_state == 1) {
        out[(*len_r)++] = '=';
        d->damaged = true;
    } else if (d->kind == PETREL_CTE_QP && d->qp_state == 2) {
        out[(*len_r)++] = '=';
        out[(*len_r)++] = d->qp_hex;
        d->damaged = true;
    }
    d->qp_state = 0;
    return !d->damaged;
}

bool petrel_cte_decode_buf(struct petrel_cte *d, const char *in, size_t len, struct petrel_buf *out)
{
    char tmp[4096 + 2];
    while (len > 0) {
        size_t take = len < 4096 ? len : 4096;
        if (!petrel_buf_append(out, tmp, petrel_cte_decode(d, in, take, tmp)))
            return false;
        in += take;
        len -= take;
    }
    return true;
}
