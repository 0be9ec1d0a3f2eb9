/* The bytes of FETCH BINARY (RFC 3516): a section decoded from its
 * Content-Transfer-Encoding as it is read from the message file, in
 * pieces, so a part of any size costs two fixed buffers. The decoded size
 * is only known by decoding, so an answer takes two passes: measure (the
 * size for the literal, and whether a NUL makes it a literal8), then the
 * bytes. No allocation; pread only, on the caller's thread. */
#ifndef PETREL_IMAP_BINARY_H
#define PETREL_IMAP_BINARY_H

#include <stdbool.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/cte.h>

#include "imap_section.h"

struct imap_binary {
    struct petrel_cte cte;
    int fd;
    uint64_t in_off, in_left; /* encoded bytes still to read */
    uint64_t skip;            /* decoded bytes still to drop (a partial's start) */
    uint64_t left;            /* decoded bytes still to give */
    bool ended;               /* the decoder's end is taken */
};

/* A DECODE plan's decoded size, and whether it holds a NUL. */
void imap_binary_measure(int fd, const struct imap_section_plan *plan, uint64_t *size_r,
                         bool *nul_r);
/* Give count decoded bytes from start on. */
void imap_binary_start(struct imap_binary *b, int fd, const struct imap_section_plan *plan,
                       uint64_t start, uint64_t count);
/* Append about max more of them (at most 16 KiB over) to out; a file
 * that ends early gives blanks, so the literal keeps its announced size.
 * Returns the bytes still to give. */
uint64_t imap_binary_put(struct imap_binary *b, uint64_t max, struct petrel_buf *out);

#endif
