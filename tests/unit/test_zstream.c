/* The connection's deflate filter: round trips, input a byte at a time,
 * corrupt and ended streams, a bomb held to the room given, and memory
 * given back at rest without losing the peer's history. The peer is
 * played by zlib itself with its own 32K window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include <petrel/buf.h>

#include "zstream.h"

/* The peer's compressor: 32K window, sync flush after each message. */
static void peer_deflate_init(z_stream *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(deflateInit2(s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
}

static void peer_send(z_stream *s, const void *data, size_t len, int mode, struct petrel_buf *out)
{
    s->next_in = (Bytef *)data;
    s->avail_in = (uInt)len;
    do {
        size_t room;
        char *p = petrel_buf_space(out, 4096, &room);
        assert_true(room > 0);
        s->next_out = (Bytef *)p;
        s->avail_out = (uInt)room;
        int r = deflate(s, mode);
        assert_true(r == Z_OK || r == Z_BUF_ERROR || r == Z_STREAM_END);
        petrel_buf_commit(out, room - s->avail_out);
    } while (s->avail_out == 0);
}

/* The peer's decompressor for what petrel_zstream_deflate made. */
static void peer_inflate(z_stream *s, const struct petrel_buf *in, struct petrel_buf *out)
{
    s->next_in = (Bytef *)petrel_buf_head(in);
    s->avail_in = (uInt)in->len;
    do {
        size_t room;
        char *p = petrel_buf_space(out, 4096, &room);
        assert_true(room > 0);
        s->next_out = (Bytef *)p;
        s->avail_out = (uInt)room;
        int r = inflate(s, Z_SYNC_FLUSH);
        assert_true(r == Z_OK || r == Z_BUF_ERROR);
        petrel_buf_commit(out, room - s->avail_out);
    } while (s->avail_out == 0 || s->avail_in > 0);
}

/* Inflate everything in `in` with steps of at most `step` input bytes and
 * `room` output bytes. */
static bool ours_inflate(struct petrel_zstream *z, const struct petrel_buf *in, size_t step,
                         size_t room, struct petrel_buf *out, const char **why)
{
    size_t off = 0;
    for (int guard = 0; guard < 100000000; guard++) {
        size_t n = in->len - off < step ? in->len - off : step;
        size_t used, made, r;
        char *p = petrel_buf_space(out, room, &r);
        assert_true(r > 0);
        if (!petrel_zstream_inflate(z, petrel_buf_head(in) + off, n, &used, p, r < room ? r : room,
                                    &made, why))
            return false;
        assert_true(made <= room);
        petrel_buf_commit(out, made);
        off += used;
        if (off == in->len && !petrel_zstream_inflate_pending(z))
            return true;
    }
    fail();
    return false;
}

static char *text(size_t len, unsigned seed)
{
    static const char *words[] = {"Subject: ", "hello ",   "world ", "IMAP ",    "\r\n",
                                  "FETCH ",    "deflate ", "42 ",    "mailbox ", "Petrel "};
    char *t = malloc(len);
    size_t i = 0;
    while (i < len) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % 10];
        for (size_t k = 0; w[k] != '\0' && i < len; k++)
            t[i++] = w[k];
    }
    return t;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct petrel_zstream *z = petrel_zstream_new();
    z_stream peer;
    memset(&peer, 0, sizeof(peer));
    assert_int_equal(inflateInit2(&peer, -15), Z_OK);
    for (unsigned batch = 0; batch < 5; batch++) {
        size_t len = 1000 + batch * 30000;
        char *t = text(len, batch);
        struct petrel_buf wire, back;
        petrel_buf_init(&wire, 1 << 20);
        petrel_buf_init(&back, 1 << 20);
        /* Two writes, the flush after the second. */
        assert_true(petrel_zstream_deflate(z, t, len / 3, false, &wire));
        assert_true(petrel_zstream_deflate(z, t + len / 3, len - len / 3, true, &wire));
        assert_true(wire.len < len / 2);
        peer_inflate(&peer, &wire, &back);
        /* After a sync flush the peer has every byte. */
        assert_int_equal(back.len, len);
        assert_memory_equal(petrel_buf_head(&back), t, len);
        if (batch % 2 == 1)
            petrel_zstream_rest(z); /* a new deflater continues the stream */
        petrel_buf_free(&wire);
        petrel_buf_free(&back);
        free(t);
    }
    inflateEnd(&peer);
    petrel_zstream_free(z);
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    size_t len = 70000; /* beyond the 32K window: far references */
    char *t = text(len, 7);
    z_stream peer;
    peer_deflate_init(&peer);
    struct petrel_buf wire, back;
    petrel_buf_init(&wire, 1 << 20);
    petrel_buf_init(&back, 1 << 20);
    peer_send(&peer, t, len, Z_SYNC_FLUSH, &wire);
    struct petrel_zstream *z = petrel_zstream_new();
    const char *why = NULL;
    assert_true(ours_inflate(z, &wire, 1, 1, &back, &why));
    assert_int_equal(back.len, len);
    assert_memory_equal(petrel_buf_head(&back), t, len);
    /* And in odd sizes with room smaller than the input expands to. */
    petrel_buf_reset(&wire);
    petrel_buf_reset(&back);
    peer_send(&peer, t, len, Z_SYNC_FLUSH, &wire);
    assert_true(ours_inflate(z, &wire, 7, 13, &back, &why));
    assert_int_equal(back.len, len);
    assert_memory_equal(petrel_buf_head(&back), t, len);
    deflateEnd(&peer);
    petrel_zstream_free(z);
    petrel_buf_free(&wire);
    petrel_buf_free(&back);
    free(t);
}

static void test_corrupt(void **state)
{
    (void)state;
    struct petrel_zstream *z = petrel_zstream_new();
    /* Block type 3 is reserved: 0xff starts a final block of type 3. */
    static const char bad[] = "\xff\xff\xff\xff garbage after COMPRESS";
    size_t used, made;
    char out[64];
    const char *why = NULL;
    assert_false(
        petrel_zstream_inflate(z, bad, sizeof(bad) - 1, &used, out, sizeof(out), &made, &why));
    assert_non_null(why);
    petrel_zstream_free(z);
}

static void test_stream_end(void **state)
{
    (void)state;
    z_stream peer;
    peer_deflate_init(&peer);
    struct petrel_buf wire, back;
    petrel_buf_init(&wire, 1 << 16);
    petrel_buf_init(&back, 1 << 16);
    peer_send(&peer, "a1 NOOP\r\n", 9, Z_FINISH, &wire);
    struct petrel_zstream *z = petrel_zstream_new();
    const char *why = NULL;
    assert_false(ours_inflate(z, &wire, 1000, 1000, &back, &why));
    assert_string_equal(why, "the compressed stream ended");
    deflateEnd(&peer);
    petrel_zstream_free(z);
    petrel_buf_free(&wire);
    petrel_buf_free(&back);
}

/* 64 MiB of one byte compresses to about 64K: every call yields at most
 * the room it was given, and memory does not grow with the output. */
static void test_bomb(void **state)
{
    (void)state;
    z_stream peer;
    peer_deflate_init(&peer);
    struct petrel_buf wire;
    petrel_buf_init(&wire, 1 << 20);
    char *zeros = calloc(1, 1 << 20);
    for (int i = 0; i < 64; i++)
        peer_send(&peer, zeros, 1 << 20, i == 63 ? Z_SYNC_FLUSH : Z_NO_FLUSH, &wire);
    assert_true(wire.len < 200000);
    struct petrel_zstream *z = petrel_zstream_new();
    char out[4096];
    size_t off = 0, total = 0, most = 0;
    const char *why = NULL;
    while (off < wire.len || petrel_zstream_inflate_pending(z)) {
        size_t used, made;
        assert_true(petrel_zstream_inflate(z, petrel_buf_head(&wire) + off, wire.len - off, &used,
                                           out, sizeof(out), &made, &why));
        assert_true(made <= sizeof(out));
        assert_true(used > 0 || made > 0);
        off += used;
        total += made;
        size_t m = petrel_zstream_memory(z);
        most = m > most ? m : most;
    }
    assert_int_equal(total, (size_t)64 << 20);
    assert_true(most < 64 * 1024); /* the 32K window and zlib's state */
    deflateEnd(&peer);
    petrel_zstream_free(z);
    petrel_buf_free(&wire);
    free(zeros);
}

/* At rest the deflater is gone and the inflater keeps only the history
 * the peer sent; the peer then refers back into it and is understood. */
static void test_rest_keeps_history(void **state)
{
    (void)state;
    z_stream peer;
    peer_deflate_init(&peer);
    struct petrel_zstream *z = petrel_zstream_new();
    struct petrel_buf wire, back, sent;
    petrel_buf_init(&wire, 1 << 16);
    petrel_buf_init(&back, 1 << 16);
    petrel_buf_init(&sent, 1 << 16);
    static const char cmd[] =
        "a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])\r\n";
    peer_send(&peer, cmd, sizeof(cmd) - 1, Z_SYNC_FLUSH, &wire);
    const char *why = NULL;
    assert_true(ours_inflate(z, &wire, 1 << 16, 1 << 16, &back, &why));
    assert_true(petrel_zstream_deflate(z, "* OK\r\n", 6, true, &sent));
    size_t busy = petrel_zstream_memory(z);
    petrel_zstream_rest(z);
    size_t resting = petrel_zstream_memory(z);
    assert_true(resting < busy);
    assert_true(resting < 1024); /* the struct and the command's bytes */
    /* The same command again: the peer encodes it as a back reference. */
    petrel_buf_reset(&wire);
    peer_send(&peer, cmd, sizeof(cmd) - 1, Z_SYNC_FLUSH, &wire);
    assert_true(wire.len < 20);
    assert_true(ours_inflate(z, &wire, 3, 5, &back, &why));
    assert_int_equal(back.len, 2 * (sizeof(cmd) - 1));
    assert_memory_equal(petrel_buf_head(&back) + sizeof(cmd) - 1, cmd, sizeof(cmd) - 1);
    deflateEnd(&peer);
    petrel_zstream_free(z);
    petrel_buf_free(&wire);
    petrel_buf_free(&back);
    petrel_buf_free(&sent);
}

/* Input that stops inside a block cannot rest: its state is more than
 * history. It goes on where it stopped. */
static void test_no_rest_mid_block(void **state)
{
    (void)state;
    z_stream peer;
    peer_deflate_init(&peer);
    struct petrel_buf wire, back;
    petrel_buf_init(&wire, 1 << 16);
    petrel_buf_init(&back, 1 << 16);
    char *t = text(5000, 3);
    peer_send(&peer, t, 5000, Z_SYNC_FLUSH, &wire);
    struct petrel_zstream *z = petrel_zstream_new();
    size_t half = wire.len / 2, used, made, room;
    const char *why = NULL;
    char *p = petrel_buf_space(&back, 8192, &room);
    assert_true(
        petrel_zstream_inflate(z, petrel_buf_head(&wire), half, &used, p, room, &made, &why));
    petrel_buf_commit(&back, made);
    size_t before = petrel_zstream_memory(z);
    petrel_zstream_rest(z);
    assert_int_equal(petrel_zstream_memory(z), before);
    p = petrel_buf_space(&back, 8192, &room);
    assert_true(petrel_zstream_inflate(z, petrel_buf_head(&wire) + used, wire.len - used, &used, p,
                                       room, &made, &why));
    petrel_buf_commit(&back, made);
    assert_int_equal(back.len, 5000);
    assert_memory_equal(petrel_buf_head(&back), t, 5000);
    deflateEnd(&peer);
    petrel_zstream_free(z);
    petrel_buf_free(&wire);
    petrel_buf_free(&back);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_stream_end),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_rest_keeps_history),
        cmocka_unit_test(test_no_rest_mid_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
