/* ENVELOPE and BODYSTRUCTURE of the hand-worked corpus (tests/mime: each
 * NAME.expected was written from RFC 3501 section 7.4.2, not from this
 * code), fed in 1-byte, 7-byte and whole pieces; BODY; the limits and
 * their fallbacks; the cache value round trip and damaged values refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/buf.h>
#include <petrel/storage.h>

#include "imap_msginfo.h"
#include "imap_msginfo_private.h"

#define FILE_MAX (1024 * 1024)

static const char *const corpus[] = {
    "simple",        "crlf_mixed", "nested",      "rfc822",      "rfc2231", "no_boundary",
    "lost_boundary", "bad_type",   "eightbit",    "groups",      "encoded", "digest",
    "msg_base64",    "top_rfc822", "description", "header_only",
};

static char *read_file(const char *name, const char *ext, size_t *len_r)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.%s", IMAP_MIME_CORPUS, name, ext);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *data = malloc(FILE_MAX + 1);
    size_t n = fread(data, 1, FILE_MAX, f);
    fclose(f);
    *len_r = n;
    return data;
}

static struct imap_msginfo *build(const char *msg, size_t len, size_t step)
{
    struct imap_msginfo_builder *b = imap_msginfo_builder_new();
    for (size_t i = 0; i < len; i += step)
        imap_msginfo_feed(b, msg + i, len - i < step ? len - i : step);
    return imap_msginfo_finish(b);
}

/* "ENVELOPE ...\nBODYSTRUCTURE ...\n", as the .expected files are. */
static char *describe(const struct imap_msginfo *mi)
{
    size_t el, bl;
    const char *e = imap_msginfo_envelope(mi, &el);
    const char *bs = imap_msginfo_bodystructure(mi, &bl);
    char *out = malloc(el + bl + 32);
    int n =
        snprintf(out, el + bl + 32, "ENVELOPE %.*s\nBODYSTRUCTURE %.*s\n", (int)el, e, (int)bl, bs);
    assert_true(n > 0);
    return out;
}

static void check_same(const char *name, const char *want, const char *got)
{
    if (strcmp(want, got) != 0)
        fail_msg("%s:\nexpected %s\n     got %s", name, want, got);
}

static void test_corpus(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 7, FILE_MAX};
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        size_t len, wlen;
        char *msg = read_file(corpus[i], "eml", &len);
        char *want = read_file(corpus[i], "expected", &wlen);
        want[wlen] = '\0';
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            struct imap_msginfo *mi = build(msg, len, steps[s]);
            char *got = describe(mi);
            check_same(corpus[i], want, got);
            free(got);
            imap_msginfo_free(mi);
        }
        free(msg);
        free(want);
    }
}

/* BODY is BODYSTRUCTURE without the extension data. */
static void test_body(void **state)
{
    (void)state;
    size_t len, bl;
    char *msg = read_file("nested", "eml", &len);
    struct imap_msginfo *mi = build(msg, len, len);
    const char *body = imap_msginfo_body(mi, &bl);
    check_same(
        "nested BODY",
        "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 10 1)"
        "(\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 11 1) \"ALTERNATIVE\")"
        "(\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 8) \"MIXED\")",
        body);
    assert_int_equal(bl, strlen(body));
    imap_msginfo_free(mi);
    free(msg);
}

/* An empty message still has a structure (RFC 3501). */
static void test_empty(void **state)
{
    (void)state;
    struct imap_msginfo *mi = build("", 0, 1);
    char *got = describe(mi);
    check_same("empty",
               "ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)\n"
               "BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 "
               "NIL NIL NIL NIL)\n",
               got);
    free(got);
    imap_msginfo_free(mi);
}

/* Balanced parentheses outside strings, literals skipped by their count. */
static bool balanced(const char *s, size_t len)
{
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            for (i++; i < len && s[i] != '"'; i++)
                i += s[i] == '\\';
        } else if (s[i] == '{') {
            char *end;
            unsigned long n = strtoul(s + i + 1, &end, 10);
            i = (size_t)(end - s) + 3 + n - 1;
        } else if (s[i] == '(' || s[i] == ')') {
            depth += s[i] == '(' ? 1 : -1;
            if (depth < 0)
                return false;
        }
    }
    return depth == 0;
}

/* Nesting past the parser's depth: the deepest multipart shows its body as
 * one text/plain part, and the answer stays well formed. */
static void test_deep(void **state)
{
    (void)state;
    struct petrel_buf m;
    petrel_buf_init(&m, 1 << 20);
    for (int i = 0; i < 100; i++)
        petrel_buf_printf(&m, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
    petrel_buf_printf(&m, "Content-Type: text/plain\n\ndeep\n");
    struct imap_msginfo *mi = build(petrel_buf_head(&m), m.len, 3);
    size_t bl;
    const char *bs = imap_msginfo_bodystructure(mi, &bl);
    assert_true(balanced(bs, bl));
    assert_non_null(strstr(bs, "((((((((((((((((((\"TEXT\" \"PLAIN\""));
    assert_null(strstr(bs, "(((((((((((((((((((\"TEXT\""));
    imap_msginfo_free(mi);
    petrel_buf_free(&m);
}

/* More parts than the parser keeps: the first ones are listed, the answer
 * stays well formed and within the cache. */
static void test_many_parts(void **state)
{
    (void)state;
    struct petrel_buf m;
    petrel_buf_init(&m, 1 << 22);
    petrel_buf_printf(&m, "Content-Type: multipart/mixed; boundary=x\n\n");
    for (int i = 0; i < 3000; i++)
        petrel_buf_printf(&m, "--x\nContent-Type: application/x-%d; name=\"%0200d\"\n\n.\n", i, i);
    petrel_buf_printf(&m, "--x--\n");
    struct imap_msginfo *mi = build(petrel_buf_head(&m), m.len, m.len);
    size_t bl, el;
    const char *bs = imap_msginfo_bodystructure(mi, &bl);
    assert_true(balanced(bs, bl));
    assert_non_null(strstr(bs, "\"X-0\""));
    assert_null(strstr(bs, "\"X-2999\""));
    /* Too long in full: written again with strings cut to 64 bytes. */
    char cut[128];
    snprintf(cut, sizeof(cut), "(\"NAME\" \"%064d\")", 0);
    assert_non_null(strstr(bs, cut));
    uint32_t count;
    imap_msginfo_parts(mi, &count);
    assert_int_equal(count, 1000); /* the parser's 1000 parts count the root */
    imap_msginfo_envelope(mi, &el);
    struct petrel_buf out;
    petrel_buf_init(&out, PETREL_STORAGE_MAX_CACHE);
    imap_msginfo_serialize(mi, &out);
    assert_true(out.len > bl);
    petrel_buf_free(&out);
    imap_msginfo_free(mi);
    petrel_buf_free(&m);
}

/* Still too long with short strings (many parameters on many parts):
 * the message is one application/octet-stream part of its body. */
static void test_one_part(void **state)
{
    (void)state;
    struct petrel_buf m;
    petrel_buf_init(&m, 1 << 23);
    const char *head = "Subject: s\nContent-Type: multipart/mixed; boundary=x\n\n";
    petrel_buf_printf(&m, "%s", head);
    for (int i = 0; i < 1000; i++) {
        petrel_buf_printf(&m, "--x\nContent-Type: application/x");
        for (int k = 0; k < 40; k++)
            petrel_buf_printf(&m, "; p%d=%070d", k, k);
        petrel_buf_printf(&m, "\n\n.\n");
    }
    petrel_buf_printf(&m, "--x--\n");
    struct imap_msginfo *mi = build(petrel_buf_head(&m), m.len, m.len);
    size_t bl;
    const char *bs = imap_msginfo_bodystructure(mi, &bl);
    char want[128];
    snprintf(want, sizeof(want),
             "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" %zu NIL NIL NIL NIL)",
             m.len - strlen(head));
    check_same("one part", want, bs);
    assert_int_equal(bl, strlen(want));
    const char *body = imap_msginfo_body(mi, &bl);
    want[strlen(want) - 17] = '\0';
    assert_memory_equal(body, want, strlen(want));
    assert_string_equal(body + strlen(want), ")");
    size_t el;
    assert_non_null(strstr(imap_msginfo_envelope(mi, &el), "\"s\""));
    uint32_t count;
    const struct imap_msginfo_part *t = imap_msginfo_parts(mi, &count);
    assert_int_equal(count, 1);
    assert_int_equal(t[0].body_offset, strlen(head));
    assert_int_equal(t[0].body_size, m.len - strlen(head));
    imap_msginfo_free(mi);
    petrel_buf_free(&m);
}

static void same_info(const struct imap_msginfo *a, const struct imap_msginfo *b)
{
    const char *(*get[])(const struct imap_msginfo *, size_t *) = {
        imap_msginfo_envelope, imap_msginfo_body, imap_msginfo_bodystructure};
    for (size_t i = 0; i < 3; i++) {
        size_t la, lb;
        const char *sa = get[i](a, &la), *sb = get[i](b, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(sa, sb, la);
    }
    uint32_t na, nb;
    const struct imap_msginfo_part *pa = imap_msginfo_parts(a, &na),
                                   *pb = imap_msginfo_parts(b, &nb);
    assert_int_equal(na, nb);
    for (uint32_t i = 0; i < na; i++) {
        assert_int_equal(pa[i].header_offset, pb[i].header_offset);
        assert_int_equal(pa[i].header_size, pb[i].header_size);
        assert_int_equal(pa[i].body_offset, pb[i].body_offset);
        assert_int_equal(pa[i].body_size, pb[i].body_size);
        assert_int_equal(pa[i].first_child, pb[i].first_child);
        assert_int_equal(pa[i].next, pb[i].next);
        assert_int_equal(pa[i].flags, pb[i].flags);
    }
    assert_int_equal(imap_msginfo_size(a), imap_msginfo_size(b));
}

static void test_cache(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        size_t len;
        char *msg = read_file(corpus[i], "eml", &len);
        struct imap_msginfo *mi = build(msg, len, len);
        struct petrel_buf v;
        petrel_buf_init(&v, PETREL_STORAGE_MAX_CACHE);
        imap_msginfo_serialize(mi, &v);
        struct imap_msginfo *back = imap_msginfo_deserialize(petrel_buf_head(&v), v.len);
        assert_non_null(back);
        same_info(mi, back);
        imap_msginfo_free(back);
        /* Every flipped byte and every cut is refused. */
        char *bad = malloc(v.len);
        for (size_t k = 0; k < v.len; k++) {
            memcpy(bad, petrel_buf_head(&v), v.len);
            bad[k] ^= 0x20;
            assert_null(imap_msginfo_deserialize(bad, v.len));
            assert_null(imap_msginfo_deserialize(petrel_buf_head(&v), k));
        }
        free(bad);
        petrel_buf_free(&v);
        imap_msginfo_free(mi);
        free(msg);
    }
    assert_null(imap_msginfo_deserialize("", 0));
    assert_null(imap_msginfo_deserialize("PIMI", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),     cmocka_unit_test(test_body),
        cmocka_unit_test(test_empty),      cmocka_unit_test(test_deep),
        cmocka_unit_test(test_many_parts), cmocka_unit_test(test_one_part),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
