/* COMPRESS=DEFLATE on a connection (RFC 4978): below the protocol, above
 * TLS. What the module queues is compressed into the wire buffer when it
 * is sent; what arrives is inflated into the input buffer no faster than
 * the module takes it, so the line and chunk limits hold however much a
 * few bytes expand to. */
#include "config.h"

#include <stdlib.h>

#include <petrel/mem.h>

#include "conn_private.h"
#include "zstream.h"

/* Wire bytes held each way: one socket read of input not yet inflated;
 * compressed output is made a piece at a time while less than this waits. */
#define WIRE_STEP PETREL_READ_STEP

struct petrel_conn_z {
    struct petrel_zstream *z;
    struct petrel_buf in;  /* compressed input not yet inflated */
    struct petrel_buf out; /* bytes for the socket, compressed but for the first */
    bool starting;         /* input buffered before the start is still to move */
};

bool petrel_conn_deflating(const struct petrel_conn *c) { return c->z != NULL; }

bool petrel_conn_start_deflate(struct petrel_conn *c, const void *held, size_t held_len)
{
    if (c->z != NULL || c->relay != NULL || c->starttls || c->state != PETREL_CONN_OPEN || c->dead)
        return false;
    struct petrel_conn_z *z = petrel_calloc(1, sizeof(*z));
    z->z = petrel_zstream_new();
    /* Room for what came before the start; after it, one read at a time. */
    size_t early = held_len + c->in.len;
    petrel_buf_init(&z->in, early > WIRE_STEP ? early : WIRE_STEP);
    if (held_len > 0)
        petrel_buf_append(&z->in, held, held_len);
    petrel_buf_init(&z->out, c->out.max);
    /* What was queued before (the answer to the command that asked for
     * compression) goes out as it is. */
    petrel_buf_append(&z->out, petrel_buf_head(&c->out), c->out.len);
    petrel_buf_reset(&c->out);
    petrel_buf_release(&c->out);
    z->starting = true;
    c->z = z;
    petrel_conn_log(c, PETREL_LOG_DEBUG, "compression started");
    return true;
}

/* Input read before the start but not yet handed to the module followed
 * the command that started compression: it is compressed. Runs once the
 * module has taken that command's line. */
void petrel_conn_z_takeover(struct petrel_conn *c)
{
    struct petrel_conn_z *z = c->z;
    if (z == NULL || !z->starting)
        return;
    z->starting = false;
    if (!petrel_buf_append(&z->in, petrel_buf_head(&c->in), c->in.len)) {
        petrel_conn_log(c, PETREL_LOG_INFO, "too much input pipelined after compression started");
        c->dead = true;
        return;
    }
    petrel_buf_reset(&c->in);
    petrel_buf_release(&c->in);
}

bool petrel_conn_z_starting(const struct petrel_conn *c) { return c->z != NULL && c->z->starting; }

int petrel_conn_z_fill(struct petrel_conn *c, size_t *got_r)
{
    struct petrel_conn_z *z = c->z;
    if (z->in.len == 0 && !petrel_zstream_inflate_pending(z->z)) {
        ssize_t n = petrel_conn_recv(c, c->thread->scratch, WIRE_STEP);
        if (n == -2)
            return -1;
        if (n == 0)
            c->eof = true;
        if (n <= 0)
            return 0;
        petrel_buf_append(&z->in, c->thread->scratch, (size_t)n);
        *got_r += (size_t)n;
    }
    size_t want = c->in.max - c->in.len < WIRE_STEP ? c->in.max - c->in.len : WIRE_STEP;
    size_t room, used, made;
    char *space = petrel_buf_space(&c->in, want, &room);
    const char *why = NULL;
    if (!petrel_zstream_inflate(z->z, petrel_buf_head(&z->in), z->in.len, &used, space,
                                room < want ? room : want, &made, &why)) {
        petrel_conn_log(c, PETREL_LOG_WARNING, "bad compressed input (%s): closing", why);
        return -1;
    }
    petrel_buf_consume(&z->in, used);
    petrel_buf_commit(&c->in, made);
    if (z->in.len == 0)
        petrel_buf_release(&z->in);
    return used > 0 || made > 0 ? 1 : 0;
}

bool petrel_conn_z_input_waiting(const struct petrel_conn *c)
{
    const struct petrel_conn_z *z = c->z;
    return z != NULL && c->in.len < c->in.max &&
           (z->starting || z->in.len > 0 || petrel_zstream_inflate_pending(z->z));
}

bool petrel_conn_z_compress(struct petrel_conn *c)
{
    struct petrel_conn_z *z = c->z;
    while (c->out.len > 0 && z->out.len < WIRE_STEP) {
        size_t n = c->out.len < WIRE_STEP ? c->out.len : WIRE_STEP;
        /* A sync flush where the queued output ends: the client gets
         * whole answers without waiting for more. */
        if (!petrel_zstream_deflate(z->z, petrel_buf_head(&c->out), n, n == c->out.len, &z->out)) {
            petrel_conn_log(c, PETREL_LOG_ERROR, "compressing output failed: closing");
            return false;
        }
        petrel_buf_consume(&c->out, n);
    }
    return true;
}

struct petrel_buf *petrel_conn_z_wire(struct petrel_conn *c) { return &c->z->out; }

void petrel_conn_z_rest(struct petrel_conn *c)
{
    struct petrel_conn_z *z = c->z;
    if (z->starting || z->in.len > 0 || z->out.len > 0 || c->out.len > 0)
        return;
    petrel_buf_release(&z->out);
    petrel_zstream_rest(z->z);
}

void petrel_conn_z_free(struct petrel_conn *c)
{
    struct petrel_conn_z *z = c->z;
    if (z == NULL)
        return;
    petrel_zstream_free(z->z);
    petrel_buf_free(&z->in);
    petrel_buf_free(&z->out);
    free(z);
    c->z = NULL;
}
