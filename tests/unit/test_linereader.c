/* The line reader, fed whole and a byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "linereader.h"

/* Feed input in pieces of step bytes the way a connection does (keeping
 * unconsumed bytes), recording events as "L:text", "C:text|", "T". */
static void run(const char *input, size_t step, size_t max_line, const size_t *chunks, char *out,
                size_t outsize)
{
    struct petrel_linereader lr;
    petrel_linereader_init(&lr, max_line);
    char buf[4096];
    size_t have = 0, fed = 0, total = strlen(input);
    out[0] = '\0';
    while (fed < total || have > 0) {
        size_t n = total - fed < step ? total - fed : step;
        memcpy(buf + have, input + fed, n);
        have += n;
        fed += n;
        for (;;) {
            struct petrel_lr_item it;
            enum petrel_lr_event ev = petrel_linereader_next(&lr, buf, have, &it);
            size_t used = strlen(out);
            if (ev == PETREL_LR_LINE) {
                snprintf(out + used, outsize - used, "L:%s;", it.data);
                if (strncmp(it.data, "CHUNK", 5) == 0 && *chunks != 0)
                    petrel_linereader_chunk(&lr, *chunks++);
            } else if (ev == PETREL_LR_CHUNK) {
                snprintf(out + used, outsize - used, "C:%.*s%s;", (int)it.len, it.data,
                         it.last ? "|" : "");
            } else if (ev == PETREL_LR_TOO_LONG) {
                snprintf(out + used, outsize - used, "T;");
            }
            memmove(buf, buf + it.consumed, have - it.consumed);
            have -= it.consumed;
            if (ev == PETREL_LR_MORE)
                break;
        }
        if (n == 0)
            break;
    }
}

static void check_all_steps(const char *input, size_t max_line, const size_t *chunks,
                            const char *expect)
{
    char out[4096];
    for (size_t step = 1; step <= strlen(input); step++) {
        run(input, step, max_line, chunks, out, sizeof(out));
        if (strcmp(out, expect) != 0)
            fail_msg("step %zu: got '%s', expected '%s'", step, out, expect);
    }
}

static const size_t no_chunks[] = {0};

static void test_crlf_and_lf(void **state)
{
    check_all_steps("HELO a\r\nNOOP\nQUIT\r\n", 64, no_chunks, "L:HELO a;L:NOOP;L:QUIT;");
}

static void test_empty_lines(void **state) { check_all_steps("\r\n\n", 64, no_chunks, "L:;L:;"); }

static void test_bare_cr_stays_in_line(void **state)
{
    check_all_steps("a\rb\r\n", 64, no_chunks, "L:a\rb;");
}

static void test_too_long(void **state)
{
    /* 10 is fine, 11 is too long; reported once at its LF, then in step. */
    check_all_steps("0123456789\r\n0123456789X\r\nok\r\n", 10, no_chunks, "L:0123456789;T;L:ok;");
}

static void test_too_long_without_newline_is_bounded(void **state)
{
    struct petrel_linereader lr;
    petrel_linereader_init(&lr, 8);
    char buf[64];
    memset(buf, 'x', sizeof(buf));
    struct petrel_lr_item it;
    assert_int_equal(petrel_linereader_next(&lr, buf, sizeof(buf), &it), PETREL_LR_MORE);
    assert_int_equal(it.consumed, sizeof(buf)); /* dropped, not kept */
    assert_int_equal(petrel_linereader_next(&lr, "yy\n", 3, &it), PETREL_LR_TOO_LONG);
    char ok[] = "fine\n";
    assert_int_equal(petrel_linereader_next(&lr, ok, 5, &it), PETREL_LR_LINE);
    assert_string_equal(it.data, "fine");
}

static void test_chunks(void **state)
{
    static const size_t chunks[] = {5, 0};
    char out[4096];
    run("CHUNK\r\nab\ncdNEXT\r\n", 100, 64, chunks, out, sizeof(out));
    assert_string_equal(out, "L:CHUNK;C:ab\ncd|;L:NEXT;");
    run("CHUNK\r\nab\ncdNEXT\r\n", 1, 64, chunks, out, sizeof(out));
    assert_string_equal(out, "L:CHUNK;C:a;C:b;C:\n;C:c;C:d|;L:NEXT;");
}

static void test_nul_in_line(void **state)
{
    struct petrel_linereader lr;
    petrel_linereader_init(&lr, 64);
    char buf[] = {'a', '\0', 'b', '\r', '\n'};
    struct petrel_lr_item it;
    assert_int_equal(petrel_linereader_next(&lr, buf, sizeof(buf), &it), PETREL_LR_LINE);
    assert_int_equal(it.len, 3); /* the length tells the module about the NUL */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crlf_and_lf),
        cmocka_unit_test(test_empty_lines),
        cmocka_unit_test(test_bare_cr_stays_in_line),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_too_long_without_newline_is_bounded),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_nul_in_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
