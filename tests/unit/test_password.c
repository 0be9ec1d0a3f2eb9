/* Password hashing and verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/password.h>

static void test_hash_and_verify(void **state)
{
    static const struct {
        enum petrel_password_scheme scheme;
        const char *prefix;
    } cases[] = {{PETREL_PASSWORD_YESCRYPT, "$y$"},
                 {PETREL_PASSWORD_SHA512, "$6$"},
                 {PETREL_PASSWORD_BCRYPT, "$2b$"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *error = NULL;
        char *h = petrel_password_hash("correct horse", cases[i].scheme, &error);
        assert_non_null(h);
        assert_memory_equal(h, cases[i].prefix, strlen(cases[i].prefix));
        assert_true(petrel_password_hash_valid(h));
        assert_true(petrel_password_verify("correct horse", h));
        assert_false(petrel_password_verify("correct horsf", h));
        assert_false(petrel_password_verify("", h));
        /* A fresh salt every time. */
        char *again = petrel_password_hash("correct horse", cases[i].scheme, &error);
        assert_string_not_equal(h, again);
        free(again);
        free(h);
    }
}

static void test_known_hashes(void **state)
{
    /* From glibc-compatible crypt("secret", "$6$saltsalt"). */
    const char *sha =
        "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y"
        "77vwPZN.Pq.H91p5hVO1";
    assert_true(petrel_password_verify("secret", sha));
    assert_false(petrel_password_verify("Secret", sha));
    /* The cost named in the hash (as Dovecot's doveadm pw and mkpasswd
     * -R write it): crypt("secret", "$6$rounds=5000$saltsalt"), which is
     * the default cost, so the same digest. */
    const char *rounds =
        "$6$rounds=5000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y"
        "77vwPZN.Pq.H91p5hVO1";
    assert_true(petrel_password_hash_valid(rounds));
    assert_true(petrel_password_verify("secret", rounds));
    assert_false(petrel_password_verify("Secret", rounds));
    assert_false(petrel_password_hash_valid("$6$rounds=$saltsalt$abcdefgh"));
    assert_false(petrel_password_hash_valid("$6$rounds=50x0$saltsalt$abcdefgh"));
    assert_false(petrel_password_hash_valid("$6$saltsalt$abc=defgh"));
    assert_false(petrel_password_hash_valid("$y$rounds=5000$saltsalt$abcdefgh"));
}

static void test_import(void **state)
{
    const char *error = NULL;
    char *h = petrel_password_hash("pw", PETREL_PASSWORD_SHA512, &error);
    size_t len = strlen("{SHA512-CRYPT}") + strlen(h) + 1;
    char *prefixed = malloc(len);
    memcpy(prefixed, "{SHA512-CRYPT}", 14);
    memcpy(prefixed + 14, h, strlen(h) + 1);
    char *imported = petrel_password_import(prefixed, &error);
    assert_non_null(imported);
    assert_string_equal(imported, h);
    assert_true(petrel_password_verify("pw", imported));
    free(imported);
    memcpy(prefixed, "{CRYPT}", 7);
    memmove(prefixed + 7, h, strlen(h) + 1);
    imported = petrel_password_import(prefixed, &error);
    assert_string_equal(imported, h);
    free(imported);
    free(prefixed);
    free(h);

    static const char *const refused[] = {
        "{PLAIN}secret",
        "{MD5}abc",
        "$1$salt$abcdefghijklmnopqrstuv",
        "abJnggxhB/yWI",
        "$6$salt$has space in it ok",
        "$6$salt$colon:inside",
        "",
        "{CRYPT}",
        "*",
        "!",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        error = NULL;
        assert_null(petrel_password_import(refused[i], &error));
        assert_non_null(error);
        assert_false(petrel_password_verify("secret", refused[i]));
    }
}

static void test_limits(void **state)
{
    const char *error = NULL;
    char *long_pw = malloc(PETREL_PASSWORD_MAX + 2);
    memset(long_pw, 'a', PETREL_PASSWORD_MAX + 1);
    long_pw[PETREL_PASSWORD_MAX + 1] = '\0';
    assert_null(petrel_password_hash(long_pw, PETREL_PASSWORD_YESCRYPT, &error));
    long_pw[PETREL_PASSWORD_MAX] = '\0';
    char *h = petrel_password_hash(long_pw, PETREL_PASSWORD_YESCRYPT, &error);
    assert_non_null(h);
    assert_true(petrel_password_verify(long_pw, h));
    long_pw[PETREL_PASSWORD_MAX] = 'a';
    assert_false(petrel_password_verify(long_pw, h));
    free(h);
    free(long_pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_known_hashes),
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
