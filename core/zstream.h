/* A connection's deflate filter (RFC 4978 COMPRESS=DEFLATE): raw deflate
 * both ways, no I/O, so unit tests and the fuzzer drive it directly. The
 * connection feeds it what it reads (after TLS) and what it sends (before
 * TLS). */
#ifndef PETREL_CORE_ZSTREAM_H
#define PETREL_CORE_ZSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/buf.h>

struct petrel_zstream;

struct petrel_zstream *petrel_zstream_new(void);
void petrel_zstream_free(struct petrel_zstream *z);

/* Compress len bytes onto the end of out. With flush, everything given so
 * far is in out afterwards, ending on a byte boundary (Z_SYNC_FLUSH), so
 * the peer can act on whole answers. False if out's cap was reached (out is
 * then unusable: close the connection). */
bool petrel_zstream_deflate(struct petrel_zstream *z, const void *data, size_t len, bool flush,
                            struct petrel_buf *out);

/* Inflate from [data, data+len) into [out, out+room): *used_r input bytes
 * were taken and *made_r output bytes written. Output never exceeds room,
 * however much the input would expand to (a bomb waits for room). False for
 * a corrupt or ended stream, with the reason in *error_r. */
bool petrel_zstream_inflate(struct petrel_zstream *z, const void *data, size_t len, size_t *used_r,
                            char *out, size_t room, size_t *made_r, const char **error_r);
/* The inflater holds output it had no room for: call inflate again (with
 * no input if need be) before reading more. */
bool petrel_zstream_inflate_pending(const struct petrel_zstream *z);

/* Give memory back between exchanges: the deflater goes (a new one starts
 * the next answer; raw deflate needs no state across a sync flush), and
 * the inflater, when the peer's stream stands at a block boundary, keeps
 * only the history the peer may still refer to. */
void petrel_zstream_rest(struct petrel_zstream *z);
/* Bytes zlib holds for this stream now (for tests and the bench). */
size_t petrel_zstream_memory(const struct petrel_zstream *z);

#endif
