/* Dot-stuffing of outgoing DATA: lines starting with "." are stuffed
 * wherever the pieces split, the end is CRLF "." CRLF, and a queued
 * message holding the "." line that smtp_in makes of a client's
 * <CR>.<CR> (bare CR normalisation) cannot end the data early. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/dotstuff.h>

/* Stuff in pieces of `step` bytes; compare with want. */
static void check(const char *in, const char *want, size_t step)
{
    struct petrel_dotstuff d;
    struct petrel_buf out;
    petrel_buf_init(&out, 4096);
    petrel_dotstuff_init(&d);
    size_t len = strlen(in);
    for (size_t i = 0; i < len; i += step)
        assert_true(petrel_dotstuff_add(&d, in + i, len - i < step ? len - i : step, &out));
    assert_true(petrel_dotstuff_end(&d, &out));
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(petrel_buf_head(&out), want, out.len);
    petrel_buf_free(&out);
}

static void check_all_splits(const char *in, const char *want)
{
    for (size_t step = 1; step <= strlen(in) + 1; step++)
        check(in, want, step);
}

static void test_lines_starting_with_a_dot(void **state)
{
    (void)state;
    check_all_splits("Subject: x\r\n\r\n.hidden\r\n..two\r\nend\r\n",
                     "Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n");
    check_all_splits(".first line\r\n", "..first line\r\n.\r\n");
    check_all_splits("a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n"); /* not at a line start */
}

/* What the queue holds after smtp_in normalised a client's bare CRs:
 * "x<CR>.<CR>MAIL FROM..." arrived as one DATA line and was stored as
 * three lines, the middle one a lone ".". */
static void test_normalised_bare_cr_dot_is_stuffed(void **state)
{
    (void)state;
    check_all_splits("Subject: s\r\n\r\nx\r\n.\r\nMAIL FROM:<evil@x.test>\r\n",
                     "Subject: s\r\n\r\nx\r\n..\r\nMAIL FROM:<evil@x.test>\r\n.\r\n");
}

static void test_end_of_data(void **state)
{
    (void)state;
    check_all_splits("", ".\r\n");
    check_all_splits("no line end", "no line end\r\n.\r\n");
    check_all_splits("ends in CR\r", "ends in CR\r\r\n.\r\n");
    check_all_splits("bare LF\n", "bare LF\n\r\n.\r\n");
    check_all_splits("x\r\n.", "x\r\n..\r\n.\r\n");
}

static void test_full_buffer(void **state)
{
    (void)state;
    struct petrel_dotstuff d;
    struct petrel_buf out;
    petrel_buf_init(&out, 4);
    petrel_dotstuff_init(&d);
    assert_false(petrel_dotstuff_add(&d, ".abcd", 5, &out));
    petrel_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_starting_with_a_dot),
        cmocka_unit_test(test_normalised_bare_cr_dot_is_stuffed),
        cmocka_unit_test(test_end_of_data),
        cmocka_unit_test(test_full_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
