/* Capped buffers: appends past the cap fail, consumption slides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/buf.h>
#include <petrel/mem.h>

static void test_append_cap(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 10);
    assert_true(petrel_buf_append(&b, "hello", 5));
    assert_true(petrel_buf_append(&b, "world", 5));
    assert_false(petrel_buf_append(&b, "!", 1));
    assert_int_equal(b.len, 10);
    assert_memory_equal(petrel_buf_head(&b), "helloworld", 10);
    petrel_buf_free(&b);
}

static void test_consume_and_reuse(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 8);
    assert_true(petrel_buf_append(&b, "abcdefgh", 8));
    petrel_buf_consume(&b, 6);
    assert_int_equal(b.len, 2);
    /* Room comes back after consumption. */
    assert_true(petrel_buf_append(&b, "123456", 6));
    assert_memory_equal(petrel_buf_head(&b), "gh123456", 8);
    petrel_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    petrel_buf_release(&b);
    assert_null(b.data);
    petrel_buf_free(&b);
}

static void test_printf(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 2000);
    assert_true(petrel_buf_printf(&b, "%d-%s", 42, "x"));
    assert_memory_equal(petrel_buf_head(&b), "42-x", 4);
    char big[1000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_true(petrel_buf_printf(&b, "%s", big)); /* beyond the stack buffer */
    assert_int_equal(b.len, 4 + 999);
    assert_false(petrel_buf_printf(&b, "%s", big)); /* over the cap */
    assert_int_equal(b.len, 4 + 999);
    petrel_buf_free(&b);
}

static void test_printf_exactly_at_cap(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 600);
    char text[601];
    memset(text, 'z', 600);
    text[600] = '\0';
    assert_true(petrel_buf_printf(&b, "%s", text));
    assert_int_equal(b.len, 600);
    petrel_buf_free(&b);
}

static void test_space_commit(void **state)
{
    struct petrel_buf b;
    size_t room;
    petrel_buf_init(&b, 100);
    char *p = petrel_buf_space(&b, 1000, &room);
    assert_int_equal(room, 100);
    memcpy(p, "xyz", 3);
    petrel_buf_commit(&b, 3);
    assert_int_equal(b.len, 3);
    petrel_buf_space(&b, 1000, &room);
    assert_int_equal(room, 97);
    petrel_buf_free(&b);
}

static void test_strings(void **state)
{
    char small[4];
    assert_false(petrel_strlcpy(small, "hello", sizeof(small)));
    assert_string_equal(small, "hel");
    assert_true(petrel_strlcpy(small, "hi", sizeof(small)));
    assert_false(petrel_snprintf(small, sizeof(small), "%d", 12345));
    assert_true(petrel_memeq_const("abc", "abc", 3));
    assert_false(petrel_memeq_const("abc", "abd", 3));
}

/* The server-wide message memory: holders take in 64 KiB steps past
 * their free bytes, a spent budget says no, and dropping gives it back. */
static void test_membudget(void **state)
{
    (void)state;
    petrel_membudget_set(3 * 65536);
    size_t a = 0, b = 0;
    assert_true(petrel_membudget_hold(&a, 8192, 8192)); /* free */
    assert_int_equal(a, 0);
    assert_true(petrel_membudget_hold(&a, 8193, 8192));
    assert_int_equal(a, 65536);
    assert_true(petrel_membudget_hold(&a, 65536, 8192)); /* covered */
    assert_true(petrel_membudget_hold(&b, 2 * 65536, 0));
    assert_int_equal(petrel_membudget_used(), 3 * 65536);
    assert_false(petrel_membudget_hold(&a, 65536 + 8193, 8192)); /* spent */
    assert_int_equal(a, 65536);
    petrel_membudget_drop(&b, 65536);
    assert_int_equal(b, 65536);
    assert_true(petrel_membudget_hold(&a, 65536 + 8193, 8192));
    petrel_membudget_drop(&a, 0);
    petrel_membudget_drop(&b, 0);
    assert_int_equal(petrel_membudget_used(), 0);
    assert_false(petrel_membudget_take(4 * 65536)); /* more than the whole budget */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_cap),   cmocka_unit_test(test_consume_and_reuse),
        cmocka_unit_test(test_printf),       cmocka_unit_test(test_printf_exactly_at_cap),
        cmocka_unit_test(test_space_commit), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_membudget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
