/* FETCH section items: every form parsed and named, bad ones refused,
 * other items passed on; resolving against messages (RFC 3501 section
 * 6.4.5 and its example of part numbers), HEADER.FIELDS filtering and
 * partials; BINARY's decoded bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/buf.h>

#include "imap_binary.h"
#include "imap_msginfo.h"
#include "imap_section.h"

static struct imap_section *parse_ok(const char *item)
{
    struct imap_section *sec = NULL;
    const char *error = NULL;
    if (imap_section_parse(item, strlen(item), &sec, &error) != IMAP_SECTION_OK)
        fail_msg("%s: refused (%s)", item, error != NULL ? error : "not a section");
    return sec;
}

static void named(const char *item, const char *name, bool seen)
{
    struct imap_section *sec = parse_ok(item);
    if (strcmp(imap_section_name(sec), name) != 0)
        fail_msg("%s: named %s, expected %s", item, imap_section_name(sec), name);
    assert_int_equal(imap_section_sets_seen(sec), seen);
    imap_section_free(sec);
}

static void test_names(void **state)
{
    (void)state;
    named("BODY[]", "BODY[]", true);
    named("body.peek[]", "BODY[]", false);
    named("BODY[HEADER]", "BODY[HEADER]", true);
    named("BODY[TEXT]", "BODY[TEXT]", true);
    named("BODY[1]", "BODY[1]", true);
    named("BODY[1.2.3]", "BODY[1.2.3]", true);
    named("BODY[1.2.MIME]", "BODY[1.2.MIME]", true);
    named("BODY.PEEK[2.HEADER]", "BODY[2.HEADER]", false);
    named("BODY[3.TEXT]", "BODY[3.TEXT]", true);
    named("BODY[header.fields (From to)]", "BODY[HEADER.FIELDS (FROM TO)]", true);
    named("BODY[1.2.HEADER.FIELDS.NOT (Subject \"X-Odd\")]",
          "BODY[1.2.HEADER.FIELDS.NOT (SUBJECT X-ODD)]", true);
    named("BODY[HEADER.FIELDS (\"a b\")]", "BODY[HEADER.FIELDS (\"A B\")]", true);
    named("BODY[]<0.100>", "BODY[]<0>", true);
    named("BODY.PEEK[1]<42.1>", "BODY[1]<42>", false);
    named("RFC822", "RFC822", true);
    named("rfc822.header", "RFC822.HEADER", false);
    named("RFC822.TEXT", "RFC822.TEXT", true);
    named("BINARY[]", "BINARY[]", true);
    named("binary[1.2]", "BINARY[1.2]", true);
    named("BINARY.PEEK[3]<10.20>", "BINARY[3]<10>", false);
    named("BINARY.SIZE[1.2.3]", "BINARY.SIZE[1.2.3]", false);
    named("binary.size[]", "BINARY.SIZE[]", false);
}

static void refused(const char *item)
{
    struct imap_section *sec = NULL;
    const char *error = NULL;
    if (imap_section_parse(item, strlen(item), &sec, &error) != IMAP_SECTION_BAD)
        fail_msg("%s: not refused", item);
    assert_null(sec);
    assert_non_null(error);
}

static void not_section(const char *item)
{
    struct imap_section *sec = NULL;
    const char *error = NULL;
    assert_int_equal(imap_section_parse(item, strlen(item), &sec, &error),
                     IMAP_SECTION_NOT_SECTION);
    assert_null(sec);
}

static void test_bad(void **state)
{
    (void)state;
    refused("BODY[");
    refused("BODY[0]");
    refused("BODY[1.]");
    refused("BODY[1..2]");
    refused("BODY[MIME]");
    refused("BODY[HEADER.FIELDS]");
    refused("BODY[HEADER.FIELDS ()]");
    refused("BODY[HEADER.FIELDS (From]");
    refused("BODY[HEADER.FIELDS (\"From)]");
    refused("BODY[TEXTX]");
    refused("BODY[1.HEADERS]");
    refused("BODY[]<1>");
    refused("BODY[]<1.0>");
    refused("BODY[]<-1.5>");
    refused("BODY[]<1.5");
    refused("BODY[]x");
    refused("BODY[4294967296]");
    refused("BODY[]<4294967296.1>");
    /* Part numbers deeper than any message can be. */
    char deep[300];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "BODY[");
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "1.");
    snprintf(deep + n, sizeof(deep) - n, "1]");
    refused(deep);
    not_section("BODY");
    not_section("BODYSTRUCTURE");
    not_section("FLAGS");
    not_section("RFC822.SIZE");
    not_section("RFC822.HEADERS");
    not_section("BINARY");
    not_section("BINARY.SIZE");
    not_section("BINARYX[1]");
    /* BINARY takes part numbers only; BINARY.SIZE no partial. */
    refused("BINARY[1.HEADER]");
    refused("BINARY[TEXT]");
    refused("BINARY[1.MIME]");
    refused("BINARY[0]");
    refused("BINARY[1.]");
    refused("BINARY[.1]");
    refused("BINARY[1");
    refused("BINARY[1]<0.0>");
    refused("BINARY[1]<5>");
    refused("BINARY.SIZE[1]<0.10>");
    refused("BINARY.PEEK[x]");
    refused("BINARY[1]x");
    refused("BINARY[4294967296]");
}

/* A message in the shape of RFC 3501's example of part numbers. */
static const char example[] = "Subject: top\r\n"
                              "Content-Type: multipart/mixed; boundary=A\r\n"
                              "\r\n"
                              "--A\r\n"
                              "\r\n"
                              "part one\r\n"
                              "--A\r\n"
                              "Content-Type: application/octet-stream\r\n"
                              "\r\n"
                              "part two\r\n"
                              "--A\r\n"
                              "Content-Type: message/rfc822\r\n"
                              "\r\n"
                              "Subject: inner\r\n"
                              "Content-Type: multipart/mixed; boundary=B\r\n"
                              "\r\n"
                              "--B\r\n"
                              "Content-Type: text/plain\r\n"
                              "\r\n"
                              "three one\r\n"
                              "--B\r\n"
                              "Content-Type: application/octet-stream\r\n"
                              "\r\n"
                              "three two\r\n"
                              "--B--\r\n"
                              "--A\r\n"
                              "Content-Type: multipart/alternative; boundary=C\r\n"
                              "\r\n"
                              "--C\r\n"
                              "\r\n"
                              "four one\r\n"
                              "--C\r\n"
                              "Content-Type: message/rfc822\r\n"
                              "\r\n"
                              "Subject: four two\r\n"
                              "\r\n"
                              "four two body\r\n"
                              "--C--\r\n"
                              "--A--\r\n";

static struct imap_msginfo *info(const char *msg)
{
    struct imap_msginfo_builder *b = imap_msginfo_builder_new();
    imap_msginfo_feed(b, msg, strlen(msg));
    return imap_msginfo_finish(b);
}

/* The bytes the item gives, or "(empty)"/"(filter ...)". */
static void fetched(const struct imap_msginfo *mi, const char *msg, const char *item,
                    const char *want)
{
    struct imap_section *sec = parse_ok(item);
    struct imap_section_plan plan;
    imap_section_resolve(sec, mi, &plan);
    char got[1024];
    if (plan.kind == IMAP_SECTION_EMPTY) {
        snprintf(got, sizeof(got), "(empty)");
    } else {
        assert_true(plan.offset + plan.length <= strlen(msg));
        if (plan.kind == IMAP_SECTION_FILTER) {
            struct petrel_buf out;
            petrel_buf_init(&out, 4096);
            imap_section_filter(sec, msg + plan.offset, (size_t)plan.length, &out);
            snprintf(got, sizeof(got), "%.*s", (int)out.len, petrel_buf_head(&out));
            petrel_buf_free(&out);
        } else {
            snprintf(got, sizeof(got), "%.*s", (int)plan.length, msg + plan.offset);
        }
    }
    if (strcmp(got, want) != 0)
        fail_msg("%s: got [%s], expected [%s]", item, got, want);
    imap_section_free(sec);
}

static void test_resolve(void **state)
{
    (void)state;
    struct imap_msginfo *mi = info(example);
    fetched(mi, example, "BODY[]", example);
    fetched(mi, example, "RFC822", example);
    fetched(mi, example, "BODY[HEADER]",
            "Subject: top\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n");
    fetched(mi, example, "RFC822.HEADER",
            "Subject: top\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n");
    fetched(mi, example, "BODY[1]", "part one");
    fetched(mi, example, "BODY[1.MIME]", "\r\n");
    fetched(mi, example, "BODY[2]", "part two");
    fetched(mi, example, "BODY[2.MIME]", "Content-Type: application/octet-stream\r\n\r\n");
    fetched(mi, example, "BODY[3.HEADER]",
            "Subject: inner\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n");
    fetched(mi, example, "BODY[3.HEADER.FIELDS (subject)]", "Subject: inner\r\n\r\n");
    fetched(mi, example, "BODY[3.1]", "three one");
    fetched(mi, example, "BODY[3.2]", "three two");
    fetched(mi, example, "BODY[3.2.MIME]", "Content-Type: application/octet-stream\r\n\r\n");
    fetched(mi, example, "BODY[4.1]", "four one");
    fetched(mi, example, "BODY[4.2]", "Subject: four two\r\n\r\nfour two body");
    fetched(mi, example, "BODY[4.2.HEADER]", "Subject: four two\r\n\r\n");
    fetched(mi, example, "BODY[4.2.TEXT]", "four two body");
    /* A non-multipart message held has one part: its body. */
    fetched(mi, example, "BODY[4.2.1]", "four two body");
    fetched(mi, example, "BODY[5]", "(empty)");
    fetched(mi, example, "BODY[1.1]", "(empty)");
    fetched(mi, example, "BODY[2.HEADER]", "(empty)");
    fetched(mi, example, "BODY[3.3]", "(empty)");
    fetched(mi, example, "BODY[4.2.2]", "(empty)");
    imap_msginfo_free(mi);

    /* Part 1 of a message that is not multipart is its body. */
    const char *plain = "Subject: x\nFrom: a@b\n\nline\n";
    mi = info(plain);
    fetched(mi, plain, "BODY[1]", "line\n");
    fetched(mi, plain, "BODY[TEXT]", "line\n");
    fetched(mi, plain, "RFC822.TEXT", "line\n");
    fetched(mi, plain, "BODY[2]", "(empty)");
    fetched(mi, plain, "BODY[HEADER.FIELDS (FROM)]", "From: a@b\n\n");
    imap_msginfo_free(mi);
}

static void filtered(const char *item, const char *header, const char *want)
{
    struct imap_section *sec = parse_ok(item);
    struct petrel_buf out;
    petrel_buf_init(&out, 4096);
    imap_section_filter(sec, header, strlen(header), &out);
    char got[1024];
    snprintf(got, sizeof(got), "%.*s", (int)out.len, petrel_buf_head(&out));
    if (strcmp(got, want) != 0)
        fail_msg("%s: got [%s], expected [%s]", item, got, want);
    petrel_buf_free(&out);
    imap_section_free(sec);
}

static void test_filter(void **state)
{
    (void)state;
    const char *h = "From: a@b\r\nTo: c@d,\r\n e@f\r\nSubject: hi\r\nto : again\r\n"
                    "not a field\r\n\r\n";
    filtered("BODY[HEADER.FIELDS (TO)]", h, "To: c@d,\r\n e@f\r\nto : again\r\n\r\n");
    filtered("BODY[HEADER.FIELDS (subject from)]", h, "From: a@b\r\nSubject: hi\r\n\r\n");
    filtered("BODY[HEADER.FIELDS.NOT (To)]", h, "From: a@b\r\nSubject: hi\r\n\r\n");
    filtered("BODY[HEADER.FIELDS (X-None)]", h, "\r\n");
    filtered("BODY[HEADER.FIELDS (FROM)]", "From: a\nTo: b\n\n", "From: a\n\n");
    filtered("BODY[HEADER.FIELDS (FROM)]", "", "\r\n");
    /* A field name that is the prefix of another is not that one. */
    filtered("BODY[HEADER.FIELDS (FROM)]", "From-X: 1\r\nFrom: 2\r\n\r\n", "From: 2\r\n\r\n");
}

static void cut(const char *item, uint64_t len, uint64_t start, uint64_t count)
{
    struct imap_section *sec = parse_ok(item);
    uint64_t s, c;
    imap_section_partial(sec, len, &s, &c);
    assert_int_equal(s, start);
    assert_int_equal(c, count);
    imap_section_free(sec);
}

static void test_partial(void **state)
{
    (void)state;
    cut("BODY[]", 100, 0, 100);
    cut("BODY[]<0.10>", 100, 0, 10);
    cut("BODY[]<95.10>", 100, 95, 5);
    cut("BODY[]<100.10>", 100, 100, 0);
    cut("BODY[]<500.10>", 100, 100, 0);
    cut("BODY.PEEK[TEXT]<0.4294967295>", 7, 0, 7);
}

/* A message with every encoding, and an attached one. */
static const char encoded[] = "Subject: enc\r\n"
                              "Content-Type: multipart/mixed; boundary=A\r\n"
                              "\r\n"
                              "--A\r\n"
                              "Content-Transfer-Encoding: quoted-printable\r\n"
                              "\r\n"
                              "caf=C3=A9 soft=\r\nbreak=00end\r\n"
                              "--A\r\n"
                              "Content-Transfer-Encoding: BASE64\r\n"
                              "\r\n"
                              "AAFi\r\naW5h\r\ncnk=\r\n"
                              "--A\r\n"
                              "Content-Transfer-Encoding: x-uuencode\r\n"
                              "\r\n"
                              "begin\r\n"
                              "--A\r\n"
                              "Content-Type: message/rfc822\r\n"
                              "\r\n"
                              "Subject: inner\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "\r\n"
                              "aW5uZXI=\r\n"
                              "--A\r\n"
                              "\r\n"
                              "plain\r\n"
                              "--A--\r\n";

/* BINARY's bytes through imap_binary.h from a file, whole and in every
 * partial, in pieces of every size. */
static void binary(const struct imap_msginfo *mi, int fd, const char *item, const char *want,
                   size_t want_len, bool want_nul)
{
    struct imap_section *sec = parse_ok(item);
    struct imap_section_plan plan;
    imap_section_resolve(sec, mi, &plan);
    assert_int_equal(plan.kind, IMAP_SECTION_DECODE);
    assert_false(plan.unknown_cte);
    uint64_t size;
    bool nul;
    imap_binary_measure(fd, &plan, &size, &nul);
    if (size != want_len)
        fail_msg("%s: size %llu, expected %zu", item, (unsigned long long)size, want_len);
    assert_int_equal(nul, want_nul);
    for (uint64_t start = 0; start <= size; start++) {
        for (uint64_t max = 1; max <= size + 1; max++) {
            struct imap_binary b;
            struct petrel_buf out;
            petrel_buf_init(&out, 4096);
            imap_binary_start(&b, fd, &plan, start, size - start);
            while (imap_binary_put(&b, max, &out) > 0)
                ;
            assert_int_equal(out.len, size - start);
            assert_memory_equal(petrel_buf_head(&out), want + start, out.len);
            petrel_buf_free(&out);
        }
    }
    imap_section_free(sec);
}

static void test_binary(void **state)
{
    (void)state;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(fwrite(encoded, 1, strlen(encoded), tmp), strlen(encoded));
    fflush(tmp);
    int fd = fileno(tmp);
    struct imap_msginfo *mi = info(encoded);
#define LIT(s) s, sizeof(s) - 1
    binary(mi, fd, "BINARY[1]", LIT("caf\xc3\xa9 softbreak\0end"), true);
    binary(mi, fd, "BINARY[2]",
           LIT("\0\x01"
               "binary"),
           true);
    /* An attached message's encoding is identity: its bytes as stored. */
    binary(mi, fd, "BINARY[4]",
           LIT("Subject: inner\r\nContent-Transfer-Encoding: base64\r\n\r\naW5uZXI="), false);
    binary(mi, fd, "BINARY[4.1]", LIT("inner"), false);
    binary(mi, fd, "BINARY[5]", LIT("plain"), false);
#undef LIT
    binary(mi, fd, "BINARY[]", encoded, strlen(encoded), false);
    /* An unknown encoding is said, not decoded. */
    struct imap_section *sec = parse_ok("BINARY.SIZE[3]");
    struct imap_section_plan plan;
    imap_section_resolve(sec, mi, &plan);
    assert_int_equal(plan.kind, IMAP_SECTION_DECODE);
    assert_true(plan.unknown_cte);
    imap_section_free(sec);
    /* A part that is not there is empty, whatever its encoding would be. */
    sec = parse_ok("BINARY[9]");
    imap_section_resolve(sec, mi, &plan);
    assert_int_equal(plan.kind, IMAP_SECTION_EMPTY);
    imap_section_free(sec);
    /* A file shorter than the table says: blanks keep the literal's size. */
    struct imap_binary b;
    struct petrel_buf out;
    petrel_buf_init(&out, 4096);
    sec = parse_ok("BINARY[5]");
    imap_section_resolve(sec, mi, &plan);
    imap_binary_start(&b, -1, &plan, 0, 5);
    assert_int_equal(imap_binary_put(&b, 100, &out), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(petrel_buf_head(&out), "     ", 5);
    petrel_buf_free(&out);
    imap_section_free(sec);
    imap_msginfo_free(mi);
    fclose(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),   cmocka_unit_test(test_bad),
        cmocka_unit_test(test_resolve), cmocka_unit_test(test_filter),
        cmocka_unit_test(test_partial), cmocka_unit_test(test_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
