/* Content-Transfer-Encoding decoding: every split of the input gives the
 * same bytes (cut at every offset, and fed in steps of every size), QP
 * soft line breaks and escapes cut by a piece's end, base64 with blanks
 * and garbage, damage reported, unknown encodings refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/cte.h>

struct result {
    char out[1024];
    size_t len;
    bool clean;
};

static void feed(struct petrel_cte *d, const char *in, size_t len, struct result *r)
{
    assert_true(r->len + len + 2 <= sizeof(r->out));
    size_t n = petrel_cte_decode(d, in, len, r->out + r->len);
    assert_true(n <= len + 2);
    r->len += n;
}

static void finish(struct petrel_cte *d, struct result *r)
{
    size_t n;
    r->clean = petrel_cte_end(d, r->out + r->len, &n);
    r->len += n;
}

/* Decode in pieces of step bytes. */
static void decode_steps(const char *enc, const char *in, size_t len, size_t step, struct result *r)
{
    struct petrel_cte d;
    assert_true(petrel_cte_init(&d, enc));
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < len; i += step)
        feed(&d, in + i, len - i < step ? len - i : step, r);
    finish(&d, r);
}

/* Decode in two pieces cut at `cut`. */
static void decode_cut(const char *enc, const char *in, size_t len, size_t cut, struct result *r)
{
    struct petrel_cte d;
    assert_true(petrel_cte_init(&d, enc));
    memset(r, 0, sizeof(*r));
    feed(&d, in, cut, r);
    feed(&d, in + cut, len - cut, r);
    finish(&d, r);
}

static void check_n(const char *enc, const char *in, size_t in_len, const char *want,
                    size_t want_len, bool clean)
{
    struct result r;
    for (size_t cut = 0; cut <= in_len; cut++) {
        decode_cut(enc, in, in_len, cut, &r);
        assert_int_equal(r.len, want_len);
        assert_memory_equal(r.out, want, want_len);
        assert_int_equal(r.clean, clean);
    }
    for (size_t step = 1; step <= in_len + 1; step++) {
        decode_steps(enc, in, in_len, step, &r);
        assert_int_equal(r.len, want_len);
        assert_memory_equal(r.out, want, want_len);
        assert_int_equal(r.clean, clean);
    }
}

static void check(const char *enc, const char *in, const char *want, bool clean)
{
    check_n(enc, in, strlen(in), want, strlen(want), clean);
}

static void test_base64(void **state)
{
    (void)state;
    check("base64", "SGVsbG8sIHdvcmxkIQ==", "Hello, world!", true);
    check("BASE64", "SGVs\r\nbG8s\r\nIHdv\r\ncmxk\r\nIQ==\r\n", "Hello, world!", true);
    check("base64", "YWJj", "abc", true);
    check("base64", "YWI=", "ab", true);
    check("base64", "YQ==\r\n", "a", true);
    check("base64", "", "", true);
    /* NUL and high bytes come out as they are. */
    check_n("base64", "AP8AAQ==", 8, "\0\xff\0\x01", 4, true);
}

static void test_base64_lenient(void **state)
{
    (void)state;
    /* Blanks are not damage; other bytes outside the alphabet are, and are skipped. */
    check("base64", " S G V s\tb G 8 =\r\n", "Hello", true);
    check("base64", "SGV*sbG8!=", "Hello", false);
    /* Padding ends it: what follows is ignored (and is damage unless blank). */
    check("base64", "YQ==YWJj", "a", false);
    check("base64", "YQ==\r\n\r\n", "a", true);
    /* A quantum cut short, or without its padding. */
    check("base64", "YWJjZ", "abc", false);
    check("base64", "YWI", "ab", false);
    /* Padding too early. */
    check("base64", "Y=", "", false);
}

static void test_qp(void **state)
{
    (void)state;
    check("quoted-printable", "caf=C3=A9 =3D ok\r\n", "caf\xc3\xa9 = ok\r\n", true);
    /* Soft line breaks, CRLF and bare LF. */
    check("Quoted-Printable", "long=\r\nline=\nend\r\n", "longlineend\r\n", true);
    /* Lower-case hex is read too. */
    check("quoted-printable", "=e9=E9", "\xe9\xe9", true);
    check_n("quoted-printable", "a=00b", 5, "a\0b", 3, true);
    /* An escape at the end of every piece (check cuts everywhere). */
    check("quoted-printable", "=41=42=43=\r\n=44", "ABCD", true);
}

static void test_qp_broken(void **state)
{
    (void)state;
    /* A broken escape goes through as written. */
    check("quoted-printable", "a=Zb", "a=Zb", false);
    check("quoted-printable", "a=4Zb", "a=4Zb", false);
    check("quoted-printable", "x=\ry", "xy", false);
    /* An escape cut by the end of the input. */
    check("quoted-printable", "end=", "end=", false);
    check("quoted-printable", "end=4", "end=4", false);
    /* A soft break at the very end is no damage. */
    check("quoted-printable", "end=\r\n", "end", true);
}

static void test_identity(void **state)
{
    (void)state;
    check_n("binary", "a\0b=41", 6, "a\0b=41", 6, true);
    check("7bit", "SGVsbG8=", "SGVsbG8=", true);
    check("8BIT", "\xe9t\xe9", "\xe9t\xe9", true);
    struct petrel_cte d;
    assert_true(petrel_cte_init(&d, NULL)); /* no header: 7bit */
    assert_int_equal(d.kind, PETREL_CTE_IDENTITY);
}

static void test_unknown(void **state)
{
    (void)state;
    struct petrel_cte d;
    assert_false(petrel_cte_init(&d, "x-uuencode"));
    assert_false(petrel_cte_init(&d, "base64x"));
    assert_false(petrel_cte_init(&d, ""));
    assert_false(petrel_cte_known("gzip"));
    assert_true(petrel_cte_known("Quoted-Printable"));
    assert_true(petrel_cte_known(NULL));
}

static void test_buf(void **state)
{
    (void)state;
    /* Long input through the buffer form, which feeds in blocks. */
    size_t n = 3 * 4096;
    char *in = malloc(n / 3 * 4 + 1);
    for (size_t i = 0; i < n / 3 * 4; i += 4)
        memcpy(in + i, "AAEC", 4); /* 00 01 02 */
    struct petrel_cte d;
    struct petrel_buf out;
    petrel_buf_init(&out, n);
    assert_true(petrel_cte_init(&d, "base64"));
    assert_true(petrel_cte_decode_buf(&d, in, n / 3 * 4, &out));
    assert_int_equal(out.len, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal((unsigned char)petrel_buf_head(&out)[i], i % 3);
    /* A full buffer says so. */
    assert_false(petrel_cte_decode_buf(&d, in, 4, &out));
    petrel_buf_free(&out);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),   cmocka_unit_test(test_base64_lenient),
        cmocka_unit_test(test_qp),       cmocka_unit_test(test_qp_broken),
        cmocka_unit_test(test_identity), cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
