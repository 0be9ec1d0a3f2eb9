/* The text extractor shared by SEARCH and the full-text index: HTML to
 * text, entities, charsets, invalid UTF-8, attachment names, the texts
 * kept apart, any split of the input giving the same texts. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/mimetext.h>

#define MAX_TEXTS 32

struct texts {
    size_t count;
    enum petrel_mimetext_kind kind[MAX_TEXTS];
    char field[MAX_TEXTS][64];
    size_t value_offset[MAX_TEXTS];
    char text[MAX_TEXTS][4096];
    size_t len[MAX_TEXTS];
    bool open;
    size_t stop_after; /* stop once this many texts ended (0: never) */
};

static bool collect(void *ctx, const struct petrel_mimetext_info *info, const char *data,
                    size_t len, bool last)
{
    struct texts *t = ctx;
    if (!t->open) {
        assert_true(t->count < MAX_TEXTS);
        t->kind[t->count] = info->kind;
        snprintf(t->field[t->count], sizeof(t->field[0]), "%s",
                 info->field != NULL ? info->field : "");
        t->value_offset[t->count] = info->value_offset;
        t->len[t->count] = 0;
        t->open = true;
    }
    size_t i = t->count;
    assert_true(t->len[i] + len < sizeof(t->text[0]));
    memcpy(t->text[i] + t->len[i], data, len);
    t->len[i] += len;
    t->text[i][t->len[i]] = '\0';
    if (last) {
        t->open = false;
        t->count++;
        if (t->stop_after != 0 && t->count >= t->stop_after)
            return false;
    }
    return true;
}

/* One part's bytes in pieces of step bytes. */
static char *part_text(const char *encoding, const char *charset, bool html, const char *data,
                       size_t len, size_t step)
{
    struct texts *t = calloc(1, sizeof(*t));
    struct petrel_mimetext_part *p = petrel_mimetext_part_new(encoding, charset, html, collect, t);
    for (size_t i = 0; i < len; i += step)
        petrel_mimetext_part_feed(p, data + i, len - i < step ? len - i : step);
    assert_true(petrel_mimetext_part_free(p));
    assert_int_equal(t->count, 1);
    char *out = strdup(t->text[0]);
    free(t);
    return out;
}

static void expect_part(const char *encoding, const char *charset, bool html, const char *data,
                        const char *want)
{
    size_t len = strlen(data);
    for (size_t step = 1; step <= len + 1; step += (step < 12 ? 1 : 7)) {
        char *got = part_text(encoding, charset, html, data, len, step);
        if (strcmp(got, want) != 0)
            fail_msg("step %zu: got \"%s\", want \"%s\"", step, got, want);
        free(got);
    }
}

static void test_fold(void **state)
{
    (void)state;
    char *s = petrel_fold_str("ÀÉÎ Straße ŁŠŸ ΑΣΣ ς ЖЁ İ", strlen("ÀÉÎ Straße ŁŠŸ ΑΣΣ ς ЖЁ İ"));
    assert_string_equal(s, "àéî straße łšÿ ασσ σ жё İ");
    free(s);
}

static void test_html(void **state)
{
    (void)state;
    expect_part(NULL, NULL, true, "<p>Hello <b>Wor</b>ld</p><p>Next</p>", "hello world next");
    expect_part(NULL, NULL, true,
                "a<script type=\"x\">var secret = 1 < 2;</script>b<STYLE>.c{}</STYLE>c", "abc");
    expect_part(NULL, NULL, true, "x<!-- hidden <b> -- -->y<!DOCTYPE html>z", "xyz");
    expect_part(NULL, NULL, true, "<a href=\"a>b\" title='c>d'>link</a>", "link");
    expect_part(NULL, NULL, true, "Caf&eacute; &amp; &lt;tag&gt; &#233;t&#xE9; &#x263A;",
                "café & <tag> été ☺");
    expect_part(NULL, NULL, true, "&bogus; &amp no &#; &#xZZ; a&nbsp;b",
                "&bogus; &amp no &#; &#xzz; a b");
    expect_part(NULL, NULL, true, "1 < 2 and 3<4", "1 < 2 and 3<4");
    expect_part(NULL, NULL, true, "  lots \r\n of\t\tblanks  ", "lots of blanks");
    expect_part(NULL, NULL, true, "&#0; &#xD800; &#99999999;",
                "\xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD");
    /* The decoding comes first: entities in a QP, Latin-1 part. */
    expect_part("quoted-printable", "iso-8859-1", true, "<i>=C4rger</i> &Auml;=\r\nrger",
                "ärger ärger");
}

static void test_charsets(void **state)
{
    (void)state;
    /* "Grüße, Ärger!" in Latin-1, base64 */
    expect_part("base64", "iso-8859-1", false, "R3L832UsIMRyZ2VyIQ==", "grüße, ärger!");
    expect_part("quoted-printable", "windows-1252", false, "Zusam=\r\nmen =80 =E4rger=3D",
                "zusammen € ärger=");
    expect_part("8bit", "KOI8-R", false, "\xF0\xD2\xC9\xD7\xC5\xD4 \xCD\xC9\xD2", "привет мир");
    expect_part(NULL, "utf-8", false, "\xCE\x9A\xCE\x91 \xD0\x96\xD0\x81", "κα жё");
    /* Not UTF-8: each stray byte becomes U+FFFD, also under an unknown
     * charset; NUL is no text. */
    expect_part("7bit", "x-unknown", false, "ABC\xC9", "abc\xEF\xBF\xBD");
    expect_part(NULL, NULL, false, "a\xC3(b\xE2\x82", "a\xEF\xBF\xBD(b\xEF\xBF\xBD\xEF\xBF\xBD");
    expect_part(NULL, NULL, false, "\xED\xA0\x80z", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz");
    struct texts t = {0};
    struct petrel_mimetext_part *p = petrel_mimetext_part_new(NULL, NULL, false, collect, &t);
    petrel_mimetext_part_feed(p, "a\0b", 3);
    petrel_mimetext_part_free(p);
    assert_string_equal(t.text[0], "a\xEF\xBF\xBD"
                                   "b");
    /* The raw encoded form is not the text. */
    char *b64 = part_text("base64", "iso-8859-1", false, "R3L8", 4, 4);
    assert_null(strstr(b64, "r3l8"));
    free(b64);
}

static void test_header(void **state)
{
    (void)state;
    static const char hdr[] = "From: =?UTF-8?Q?J=C3=B6rg?= <j@example.de>\r\n"
                              "Subject: =?iso-8859-1?q?Caf=E9?= and\r\n"
                              " more\r\n"
                              "Bad\xE9Name: x\r\n"
                              "\r\n"
                              "Body: not a field\r\n";
    struct texts t = {0};
    assert_true(petrel_mimetext_header(hdr, sizeof(hdr) - 1, collect, &t));
    assert_int_equal(t.count, 2);
    assert_int_equal(t.kind[0], PETREL_MIMETEXT_FIELD);
    assert_string_equal(t.field[0], "From");
    assert_string_equal(t.text[0], "from: jörg <j@example.de>");
    assert_int_equal(t.value_offset[0], 6);
    assert_string_equal(t.field[1], "Subject");
    assert_string_equal(t.text[1], "subject: café and more");
    struct texts s = {.stop_after = 1};
    assert_false(petrel_mimetext_header(hdr, sizeof(hdr) - 1, collect, &s));
    assert_int_equal(s.count, 1);
}

static int memfd_with(const char *data)
{
    int fd = memfd_create("msg", 0);
    assert_true(fd >= 0);
    size_t len = strlen(data);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

static const char multipart[] =
    "From: a@example.org\r\n"
    "Subject: outer\r\n"
    "Content-Type: multipart/mixed; boundary=\"B\"\r\n"
    "\r\n"
    "preamble words\r\n"
    "--B\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "first part ends here\r\n"
    "--B\r\n"
    "Content-Type: text/html; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<p>second =E9t=E9</p>\r\n"
    "--B\r\n"
    "Content-Type: application/pdf; name=\"ignored.pdf\"\r\n"
    "Content-Disposition: attachment; filename*=UTF-8''R%C3%A9sum%C3%A9.PDF\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "c2VjcmV0d29yZA==\r\n"
    "--B\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: Inner Sender <in@example.org>\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "inner body\r\n"
    "--B--\r\n"
    "epilogue\r\n";

static void test_body(void **state)
{
    (void)state;
    int fd = memfd_with(multipart);
    struct texts *t = calloc(1, sizeof(*t));
    assert_int_equal(petrel_mimetext_body(fd, NULL, 0, collect, t), 0);
    assert_int_equal(t->count, 6);
    assert_string_equal(t->text[0], "first part ends here");
    assert_string_equal(t->text[1], "second été");
    assert_string_equal(t->text[2], "résumé.pdf");
    assert_string_equal(t->text[3], "from: inner sender <in@example.org>");
    assert_string_equal(t->field[3], "From");
    assert_string_equal(t->text[4], "subject: inner");
    assert_string_equal(t->text[5], "inner body");
    for (size_t i = 0; i < t->count; i++)
        assert_int_equal(t->kind[i], PETREL_MIMETEXT_BODY);
    /* Stopping: the extraction ends with the text that said so. */
    memset(t, 0, sizeof(*t));
    t->stop_after = 2;
    assert_int_equal(petrel_mimetext_body(fd, NULL, 0, collect, t), 0);
    assert_int_equal(t->count, 2);
    free(t);
    close(fd);
}

static void test_single_part(void **state)
{
    (void)state;
    static const char msg[] = "Subject: s\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n"
                              "\xF0\xD2\xC9\xD7\xC5\xD4";
    int fd = memfd_with(msg);
    size_t hlen = strstr(msg, "\r\n\r\n") + 4 - msg;
    struct texts t = {0}, u = {0};
    /* With the header given (one read) as without (the parse). */
    assert_int_equal(petrel_mimetext_body(fd, msg, hlen, collect, &t), 0);
    assert_int_equal(petrel_mimetext_body(fd, NULL, 0, collect, &u), 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(u.count, 1);
    assert_string_equal(t.text[0], "привет");
    assert_string_equal(u.text[0], "привет");
    close(fd);
    /* A directory cannot be read: an error, not an empty text. */
    int dfd = open("/", O_RDONLY);
    struct texts v = {0};
    assert_int_equal(petrel_mimetext_body(dfd, NULL, 0, collect, &v), -1);
    close(dfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),     cmocka_unit_test(test_html),
        cmocka_unit_test(test_charsets), cmocka_unit_test(test_header),
        cmocka_unit_test(test_body),     cmocka_unit_test(test_single_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
