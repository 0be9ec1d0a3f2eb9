/* Raw deflate both ways for a connection (RFC 4978), with memory counted
 * and given back between exchanges. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include <petrel/mem.h>

#include "zstream.h"

/* Our side may use a smaller window than 32K (RFC 1951 lets the sender
 * choose): 4K of history and memLevel 5 cost about 40K while an answer is
 * being compressed, against 260K at zlib's defaults, for a ratio on mail
 * text within a few percent. */
#define DEFLATE_BITS 12
#define DEFLATE_MEMLEVEL 5
/* The peer may refer 32K back: the inflater must keep that much. */
#define INFLATE_BITS 15
#define OUT_STEP 4096
/* zlib takes uInt lengths: feed it in pieces no larger. */
#define Z_PIECE (1u << 30)

struct petrel_zstream {
    z_stream def, inf;
    bool def_on, inf_on;
    bool inf_full; /* the last inflate filled its output: more may wait */
    /* While the inflater rests: the peer's history it may still refer to. */
    unsigned char *dict;
    uInt dict_len;
    size_t mem; /* bytes held through zalloc and dict */
};

/* Every allocation carries its size so that memory is counted exactly. */
union zhdr {
    size_t n;
    max_align_t align;
};

static void *tracked_alloc(struct petrel_zstream *z, size_t n)
{
    union zhdr *h = petrel_malloc(sizeof(*h) + n);
    h->n = n;
    z->mem += sizeof(*h) + n;
    return h + 1;
}

static void tracked_free(struct petrel_zstream *z, void *p)
{
    if (p == NULL)
        return;
    union zhdr *h = (union zhdr *)p - 1;
    z->mem -= sizeof(*h) + h->n;
    free(h);
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return tracked_alloc(opaque, (size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p) { tracked_free(opaque, p); }

struct petrel_zstream *petrel_zstream_new(void)
{
    return petrel_calloc(1, sizeof(struct petrel_zstream));
}

void petrel_zstream_free(struct petrel_zstream *z)
{
    if (z == NULL)
        return;
    if (z->def_on)
        deflateEnd(&z->def);
    if (z->inf_on)
        inflateEnd(&z->inf);
    tracked_free(z, z->dict);
    free(z);
}

size_t petrel_zstream_memory(const struct petrel_zstream *z) { return sizeof(*z) + z->mem; }

static void z_setup(struct petrel_zstream *z, z_stream *s)
{
    memset(s, 0, sizeof(*s));
    s->zalloc = z_alloc;
    s->zfree = z_free;
    s->opaque = z;
}

static bool deflater(struct petrel_zstream *z)
{
    if (z->def_on)
        return true;
    z_setup(z, &z->def);
    z->def_on = deflateInit2(&z->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -DEFLATE_BITS,
                             DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) == Z_OK;
    return z->def_on;
}

/* One piece (at most Z_PIECE bytes) through deflate into out. */
static bool deflate_piece(struct petrel_zstream *z, const unsigned char *data, uInt len, int mode,
                          struct petrel_buf *out)
{
    z->def.next_in = data;
    z->def.avail_in = len;
    for (;;) {
        size_t room;
        char *space = petrel_buf_space(out, OUT_STEP, &room);
        if (room == 0)
            return false;
        uInt avail = room > Z_PIECE ? Z_PIECE : (uInt)room;
        z->def.next_out = (unsigned char *)space;
        z->def.avail_out = avail;
        int r = deflate(&z->def, mode);
        petrel_buf_commit(out, avail - z->def.avail_out);
        if (r != Z_OK && r != Z_BUF_ERROR)
            return false;
        /* Done once the input is in and, flushing, zlib had room to spare
         * (Z_BUF_ERROR: nothing left to do). */
        if (z->def.avail_in == 0 &&
            (mode == Z_NO_FLUSH || z->def.avail_out != 0 || r == Z_BUF_ERROR))
            return true;
    }
}

bool petrel_zstream_deflate(struct petrel_zstream *z, const void *data, size_t len, bool flush,
                            struct petrel_buf *out)
{
    if (!deflater(z))
        return false;
    const unsigned char *p = data;
    do {
        uInt n = len > Z_PIECE ? Z_PIECE : (uInt)len;
        int mode = flush && n == len ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        if (!deflate_piece(z, p, n, mode, out))
            return false;
        p += n;
        len -= n;
    } while (len > 0);
    return true;
}

/* A new inflater, given back the history of the one that rested. */
static bool inflater(struct petrel_zstream *z)
{
    if (z->inf_on)
        return true;
    z_setup(z, &z->inf);
    if (inflateInit2(&z->inf, -INFLATE_BITS) != Z_OK)
        return false;
    z->inf_on = true;
    bool ok = true;
    if (z->dict != NULL)
        ok = inflateSetDictionary(&z->inf, z->dict, z->dict_len) == Z_OK;
    tracked_free(z, z->dict);
    z->dict = NULL;
    z->dict_len = 0;
    return ok;
}

bool petrel_zstream_inflate(struct petrel_zstream *z, const void *data, size_t len, size_t *used_r,
                            char *out, size_t room, size_t *made_r, const char **error_r)
{
    *used_r = 0;
    *made_r = 0;
    /* No input and nothing held: a call would only move zlib off the
     * block boundary that petrel_zstream_rest() looks for. */
    if (room == 0 || (len == 0 && !z->inf_full))
        return true;
    if (!inflater(z)) {
        *error_r = "cannot start the inflater";
        return false;
    }
    uInt in_len = len > Z_PIECE ? Z_PIECE : (uInt)len;
    uInt out_len = room > Z_PIECE ? Z_PIECE : (uInt)room;
    z->inf.next_in = data;
    z->inf.avail_in = in_len;
    z->inf.next_out = (unsigned char *)out;
    z->inf.avail_out = out_len;
    /* Z_BLOCK stops at each block boundary, so that data_type tells
     * petrel_zstream_rest() whether the stream stands at one. */
    do {
        uInt before_in = z->inf.avail_in, before_out = z->inf.avail_out;
        int r = inflate(&z->inf, Z_BLOCK);
        if (r == Z_STREAM_END) {
            *error_r = "the compressed stream ended";
            return false;
        }
        if (r == Z_BUF_ERROR)
            break; /* needs more input */
        if (r != Z_OK) {
            *error_r = z->inf.msg != NULL ? z->inf.msg : "corrupt compressed data";
            return false;
        }
        if (z->inf.avail_in == before_in && z->inf.avail_out == before_out)
            break;
    } while (z->inf.avail_out > 0 && z->inf.avail_in > 0);
    /* The final block is over (64: last, 128: at its end): the client
     * ended its stream, and RFC 4978 has no way back to plain text. */
    if ((z->inf.data_type & 192) == 192) {
        *error_r = "the compressed stream ended";
        return false;
    }
    *used_r = in_len - z->inf.avail_in;
    *made_r = out_len - z->inf.avail_out;
    z->inf_full = z->inf.avail_out == 0;
    return true;
}

bool petrel_zstream_inflate_pending(const struct petrel_zstream *z)
{
    return z->inf_on && z->inf_full;
}

void petrel_zstream_rest(struct petrel_zstream *z)
{
    if (z->def_on) {
        deflateEnd(&z->def);
        z->def_on = false;
    }
    /* data_type 128 alone: between blocks, on a byte boundary (what the
     * peer's sync flush leaves), not in a final block. A fresh inflater
     * stands there too, so history is all it needs. */
    if (!z->inf_on || z->inf_full || z->inf.avail_in != 0 || z->inf.data_type != 128)
        return;
    uInt n = 0;
    if (inflateGetDictionary(&z->inf, NULL, &n) != Z_OK)
        return;
    if (n > 0) {
        z->dict = tracked_alloc(z, n);
        z->dict_len = n;
        inflateGetDictionary(&z->inf, z->dict, &n);
    }
    inflateEnd(&z->inf);
    z->inf_on = false;
}
