/* Framing of connection input into lines and sized chunks. No I/O: the
 * connection feeds it its input buffer; unit tests and the fuzzer feed it a
 * few bytes at a time. */
#ifndef PETREL_CORE_LINEREADER_H
#define PETREL_CORE_LINEREADER_H

#include <stdbool.h>
#include <stddef.h>

struct petrel_linereader {
    size_t max_line;   /* longest line, terminator excluded */
    size_t chunk_left; /* bytes still owed to a chunk; 0 = line mode */
    bool discarding;   /* inside an over-long line: dropping until LF */
    bool dropped_cr;   /* the last byte dropped was a CR */
};

enum petrel_lr_event {
    PETREL_LR_MORE,     /* need more input */
    PETREL_LR_LINE,     /* item is a line, NUL-terminated in place */
    PETREL_LR_CHUNK,    /* item is part of a chunk */
    PETREL_LR_TOO_LONG, /* an over-long line ended; it was dropped */
};

struct petrel_lr_item {
    char *data;
    size_t len;
    bool last;       /* final part of a chunk */
    bool crlf;       /* a line that ended in CRLF, not a bare LF */
    size_t consumed; /* input bytes used up, whatever the event */
};

void petrel_linereader_init(struct petrel_linereader *lr, size_t max_line);
void petrel_linereader_chunk(struct petrel_linereader *lr, size_t len);
/* Look at input [data, data+len). The caller drops item->consumed bytes. */
enum petrel_lr_event petrel_linereader_next(struct petrel_linereader *lr, char *data, size_t len,
                                            struct petrel_lr_item *item);

#endif
