/* A length-counted byte buffer with a hard cap: everything read from the
 * network goes through one. Appends past the cap fail instead of growing. */
#ifndef PETREL_BUF_H
#define PETREL_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct petrel_buf {
    char *data;
    size_t off; /* start of live bytes within data */
    size_t len; /* live bytes from off */
    size_t cap; /* allocated size of data */
    size_t max; /* hard cap on len */
};

void petrel_buf_init(struct petrel_buf *b, size_t max);
void petrel_buf_free(struct petrel_buf *b);
/* Drop all content; keeps the allocation for reuse. */
void petrel_buf_reset(struct petrel_buf *b);
/* Drop content and the allocation (idle connections give memory back). */
void petrel_buf_release(struct petrel_buf *b);
bool petrel_buf_append(struct petrel_buf *b, const void *data, size_t len);
bool petrel_buf_printf(struct petrel_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool petrel_buf_vprintf(struct petrel_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Reserve room for at least want more bytes; returns where to write and the
 * room available (which may be less than want at the cap, zero when full). */
char *petrel_buf_space(struct petrel_buf *b, size_t want, size_t *room_r);
void petrel_buf_commit(struct petrel_buf *b, size_t n);
void petrel_buf_consume(struct petrel_buf *b, size_t n);

/* The live bytes; "" (not NULL + 0) for a buffer never written to. */
static inline const char *petrel_buf_head(const struct petrel_buf *b)
{
    return b->data != NULL ? b->data + b->off : "";
}

#endif
