/* SASL PLAIN and LOGIN: the exchanges a client may drive, strict base64,
 * cancels, limits and the refusals that keep identities safe to log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/mem.h>
#include <petrel/sasl.h>

/* base64 of a byte string (test helper; the server never encodes). */
static void b64(const void *data, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = '\0';
}

static void test_plain_initial_response(void **state)
{
    char line[64];
    b64("\0alice@example.test\0secret", 26, line);
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_PLAIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, line, &ch, &err), PETREL_SASL_DONE);
    struct petrel_sasl_credentials c;
    assert_true(petrel_sasl_credentials(s, &c));
    assert_string_equal(c.authzid, "");
    assert_string_equal(c.authcid, "alice@example.test");
    assert_string_equal(c.password, "secret");
    petrel_sasl_free(s);
}

static void test_plain_challenge_then_response(void **state)
{
    char line[64];
    b64("bob\0bob\0pw", 10, line);
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_PLAIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_CONTINUE);
    assert_string_equal(ch, "");
    struct petrel_sasl_credentials c;
    assert_false(petrel_sasl_credentials(s, &c));
    assert_int_equal(petrel_sasl_step(s, line, strlen(line), &ch, &err), PETREL_SASL_DONE);
    assert_true(petrel_sasl_credentials(s, &c));
    assert_string_equal(c.authzid, "bob");
    assert_string_equal(c.password, "pw");
    /* Nothing more is expected after DONE. */
    assert_int_equal(petrel_sasl_step(s, line, strlen(line), &ch, &err), PETREL_SASL_ERROR);
    petrel_sasl_free(s);
}

static void test_plain_malformed(void **state)
{
    static const struct {
        const char *msg;
        size_t len;
    } cases[] = {
        {"alice\0secret", 12},      /* one NUL */
        {"\0alice\0", 7},           /* empty password */
        {"\0\0secret", 8},          /* empty authcid */
        {"\0alice\0sec\0ret", 14},  /* NUL in the password */
        {"\0ali\nce\0secret", 14},  /* control in the authcid */
        {"x\r\0alice\0secret", 15}, /* control in the authzid */
        {"", 0},                    /* empty */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[64];
        b64(cases[i].msg, cases[i].len, line);
        struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_PLAIN);
        const char *ch, *err = NULL;
        assert_int_equal(petrel_sasl_start(s, cases[i].len ? line : "=", &ch, &err),
                         PETREL_SASL_ERROR);
        assert_non_null(err);
        struct petrel_sasl_credentials c;
        assert_false(petrel_sasl_credentials(s, &c));
        petrel_sasl_free(s);
    }
}

static void test_login_exchange(void **state)
{
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_LOGIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_CONTINUE);
    assert_string_equal(ch, "VXNlcm5hbWU6"); /* Username: */
    char line[64];
    b64("carol", 5, line);
    assert_int_equal(petrel_sasl_step(s, line, strlen(line), &ch, &err), PETREL_SASL_CONTINUE);
    assert_string_equal(ch, "UGFzc3dvcmQ6"); /* Password: */
    b64("hunter2", 7, line);
    assert_int_equal(petrel_sasl_step(s, line, strlen(line), &ch, &err), PETREL_SASL_DONE);
    struct petrel_sasl_credentials c;
    assert_true(petrel_sasl_credentials(s, &c));
    assert_string_equal(c.authcid, "carol");
    assert_string_equal(c.password, "hunter2");
    assert_string_equal(c.authzid, "");
    petrel_sasl_free(s);
}

static void test_login_initial_user(void **state)
{
    char line[64];
    b64("dave", 4, line);
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_LOGIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, line, &ch, &err), PETREL_SASL_CONTINUE);
    assert_string_equal(ch, "UGFzc3dvcmQ6");
    /* "=" is an empty password: refused. */
    assert_int_equal(petrel_sasl_step(s, "=", 1, &ch, &err), PETREL_SASL_ERROR);
    petrel_sasl_free(s);
}

static void test_login_nul_refused(void **state)
{
    char line[64];
    b64("da\0ve", 5, line);
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_LOGIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_CONTINUE);
    assert_int_equal(petrel_sasl_step(s, line, strlen(line), &ch, &err), PETREL_SASL_ERROR);
    petrel_sasl_free(s);
}

static void test_cancel(void **state)
{
    for (int mech = 0; mech < 2; mech++) {
        struct petrel_sasl *s = petrel_sasl_new((enum petrel_sasl_mech)mech);
        const char *ch, *err;
        assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_CONTINUE);
        assert_int_equal(petrel_sasl_step(s, "*", 1, &ch, &err), PETREL_SASL_CANCELLED);
        struct petrel_sasl_credentials c;
        assert_false(petrel_sasl_credentials(s, &c));
        petrel_sasl_free(s);
    }
}

static void test_base64_strict(void **state)
{
    unsigned char out[16];
    assert_int_equal(petrel_sasl_base64_decode("YWJj", 4, out, sizeof(out)), 3);
    assert_memory_equal(out, "abc", 3);
    assert_int_equal(petrel_sasl_base64_decode("YQ==", 4, out, sizeof(out)), 1);
    assert_int_equal(petrel_sasl_base64_decode("YWI=", 4, out, sizeof(out)), 2);
    assert_int_equal(petrel_sasl_base64_decode("", 0, out, sizeof(out)), 0);
    assert_int_equal(petrel_sasl_base64_decode("YQ", 2, out, sizeof(out)), -1);       /* unpadded */
    assert_int_equal(petrel_sasl_base64_decode("YR==", 4, out, sizeof(out)), -1);     /* bits */
    assert_int_equal(petrel_sasl_base64_decode("YWJ=", 4, out, sizeof(out)), -1);     /* bits */
    assert_int_equal(petrel_sasl_base64_decode("YW J", 4, out, sizeof(out)), -1);     /* blank */
    assert_int_equal(petrel_sasl_base64_decode("Y===", 4, out, sizeof(out)), -1);     /* 3 pads */
    assert_int_equal(petrel_sasl_base64_decode("YQ==YQ==", 8, out, sizeof(out)), -1); /* mid */
    assert_int_equal(petrel_sasl_base64_decode("=AAA", 4, out, sizeof(out)), -1);
    assert_int_equal(petrel_sasl_base64_decode("YWJj", 4, out, 2), -1); /* no room */
}

static void test_size_limits(void **state)
{
    char pw[PETREL_SASL_PASSWORD_MAX + 2];
    memset(pw, 'p', sizeof(pw));
    char msg[8 + sizeof(pw)], line[2048];
    /* The longest password is accepted ... */
    memcpy(msg, "\0u\0", 3);
    memcpy(msg + 3, pw, PETREL_SASL_PASSWORD_MAX);
    b64(msg, 3 + PETREL_SASL_PASSWORD_MAX, line);
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_PLAIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, line, &ch, &err), PETREL_SASL_DONE);
    petrel_sasl_free(s);
    /* ... one byte more is not. */
    memcpy(msg + 3, pw, PETREL_SASL_PASSWORD_MAX + 1);
    b64(msg, 4 + PETREL_SASL_PASSWORD_MAX, line);
    s = petrel_sasl_new(PETREL_SASL_PLAIN);
    assert_int_equal(petrel_sasl_start(s, line, &ch, &err), PETREL_SASL_ERROR);
    petrel_sasl_free(s);
    /* A line past the limit is refused before decoding. */
    memset(line, 'A', PETREL_SASL_LINE_MAX + 4);
    s = petrel_sasl_new(PETREL_SASL_LOGIN);
    assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_CONTINUE);
    assert_int_equal(petrel_sasl_step(s, line, PETREL_SASL_LINE_MAX + 4, &ch, &err),
                     PETREL_SASL_ERROR);
    assert_string_equal(err, "response too long");
    petrel_sasl_free(s);
}

static void test_mech_names(void **state)
{
    enum petrel_sasl_mech m;
    assert_true(petrel_sasl_mech_parse("plain", &m));
    assert_int_equal(m, PETREL_SASL_PLAIN);
    assert_true(petrel_sasl_mech_parse("LOGIN", &m));
    assert_int_equal(m, PETREL_SASL_LOGIN);
    assert_false(petrel_sasl_mech_parse("CRAM-MD5", &m));
    assert_string_equal(petrel_sasl_mech_name(PETREL_SASL_LOGIN), "LOGIN");
}

/* Feeding the same exchange byte by byte is not a thing for SASL (lines
 * come whole), but starting twice is a protocol bug the parser reports. */
static void test_start_twice(void **state)
{
    struct petrel_sasl *s = petrel_sasl_new(PETREL_SASL_PLAIN);
    const char *ch, *err;
    assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_CONTINUE);
    assert_int_equal(petrel_sasl_start(s, NULL, &ch, &err), PETREL_SASL_ERROR);
    petrel_sasl_free(s);
    petrel_sasl_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_initial_response),
        cmocka_unit_test(test_plain_challenge_then_response),
        cmocka_unit_test(test_plain_malformed),
        cmocka_unit_test(test_login_exchange),
        cmocka_unit_test(test_login_initial_user),
        cmocka_unit_test(test_login_nul_refused),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_mech_names),
        cmocka_unit_test(test_start_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
