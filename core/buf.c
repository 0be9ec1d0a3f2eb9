/* Capped, length-counted buffers (see petrel/buf.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>
#include <petrel/mem.h>

void petrel_buf_init(struct petrel_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void petrel_buf_free(struct petrel_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void petrel_buf_reset(struct petrel_buf *b) { b->off = b->len = 0; }

void petrel_buf_release(struct petrel_buf *b)
{
    if (b->len == 0)
        petrel_buf_free(b);
}

char *petrel_buf_space(struct petrel_buf *b, size_t want, size_t *room_r)
{
    size_t allowed = b->max - b->len;
    if (want > allowed)
        want = allowed;
    if (b->off + b->len + want > b->cap) {
        /* Slide live bytes to the front before growing. */
        if (b->off > 0) {
            memmove(b->data, b->data + b->off, b->len);
            b->off = 0;
        }
        if (b->len + want > b->cap) {
            size_t cap = b->cap ? b->cap : 256;
            while (cap < b->len + want)
                cap *= 2;
            if (cap > b->max)
                cap = b->max;
            b->data = petrel_realloc(b->data, cap);
            b->cap = cap;
        }
    }
    *room_r = b->cap - b->off - b->len;
    if (*room_r > allowed)
        *room_r = allowed;
    return b->data + b->off + b->len;
}

void petrel_buf_commit(struct petrel_buf *b, size_t n) { b->len += n; }

bool petrel_buf_append(struct petrel_buf *b, const void *data, size_t len)
{
    size_t room;
    if (len > b->max - b->len)
        return false;
    if (len == 0)
        return true;
    char *p = petrel_buf_space(b, len, &room);
    memcpy(p, data, len);
    b->len += len;
    return true;
}

bool petrel_buf_vprintf(struct petrel_buf *b, const char *fmt, va_list ap)
{
    char small[512];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0)
        return false;
    if ((size_t)n < sizeof(small))
        return petrel_buf_append(b, small, (size_t)n);
    if ((size_t)n > b->max - b->len)
        return false;
    size_t room;
    char *p = petrel_buf_space(b, (size_t)n + 1, &room);
    if (room < (size_t)n + 1) {
        /* Exactly at the cap: no room for vsnprintf's terminator. */
        char *tmp = petrel_malloc((size_t)n + 1);
        vsnprintf(tmp, (size_t)n + 1, fmt, ap);
        bool ok = petrel_buf_append(b, tmp, (size_t)n);
        free(tmp);
        return ok;
    }
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return true;
}

bool petrel_buf_printf(struct petrel_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = petrel_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return ok;
}

void petrel_buf_consume(struct petrel_buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}
