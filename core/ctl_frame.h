/* The control socket's wire format, shared by petreld and petrelctl: a
 * stream of frames, each a 4-byte big-endian length (of what follows), a
 * type byte and a payload. petrelctl sends a request (words, options, a
 * secret, then END); petreld answers with output and an exit status. No
 * line limit, and a word may hold any byte but NUL. */
#ifndef PETREL_CORE_CTL_FRAME_H
#define PETREL_CORE_CTL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <petrel/buf.h>

enum petrel_ctl_type {
    /* request */
    PETREL_CTL_WORD = 'W',   /* one word of the command line */
    PETREL_CTL_JSON = 'J',   /* print JSON (empty payload) */
    PETREL_CTL_SECRET = 'S', /* the secret a command reads */
    PETREL_CTL_END = 'E',    /* the request is complete (empty payload) */
    /* reply */
    PETREL_CTL_STDOUT = 'O',
    PETREL_CTL_STDERR = 'R',
    PETREL_CTL_EXIT = 'X', /* one byte: the exit status; the last frame */
};

#define PETREL_CTL_REQUEST_MAX (64 * 1024) /* a whole request */
#define PETREL_CTL_WORDS_MAX 64
#define PETREL_CTL_REPLY_FRAME_MAX (256 * 1024)

/* The frame at the head of buf: its size (> 0) with the type and payload;
 * 0 if more bytes are needed; -1 if it is malformed (empty, or longer
 * than max). */
ssize_t petrel_ctl_frame_next(const char *buf, size_t len, size_t max, int *type_r,
                              const char **payload_r, size_t *plen_r);
/* Append a frame; false if b has no room left. */
bool petrel_ctl_frame_put(struct petrel_buf *b, int type, const void *payload, size_t len);

struct petrel_ctl_request {
    int argc;
    char *argv[PETREL_CTL_WORDS_MAX + 1]; /* NULL-terminated */
    bool json;
    char *secret; /* or NULL */
};

/* A whole request from buf: 1 parsed (free it with
 * petrel_ctl_request_free), 0 incomplete, -1 malformed (error_r). */
int petrel_ctl_request_parse(const char *buf, size_t len, struct petrel_ctl_request *req,
                             const char **error_r);
/* Frees the words and wipes the secret. */
void petrel_ctl_request_free(struct petrel_ctl_request *req);

#endif
