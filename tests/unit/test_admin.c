/* Admin calls (core/admin.c) and control socket frames (core/ctl_frame.c):
 * the aligned table, JSON escaping, the command's own text, errors shown
 * safely, group usage, the secret asked for when first wanted, and the
 * request parser's limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/buf.h>
#include <petrel/mem.h>

#include "admin_private.h"
#include "ctl_frame.h"
#include "server.h"

struct capture {
    struct petrel_buf out, err;
    int secrets_asked;
};

static void capture_write(void *arg, int stream, const char *data, size_t len)
{
    struct capture *c = arg;
    petrel_buf_append(stream == PETREL_ADMIN_STDERR ? &c->err : &c->out, data, len);
}

static char *capture_secret(void *arg, const char **error_r)
{
    struct capture *c = arg;
    c->secrets_asked++;
    *error_r = "no terminal";
    return c->secrets_asked == 1 ? petrel_strdup("s3cret") : NULL;
}

/* The command under test, chosen by argv[0]. */
static int run_rows(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    const char *targets[] = {"a@x.test", "b\"q\\@x.test"};
    if (strcmp(argv[0], "table") == 0) {
        petrel_admin_str(call, "name", "short");
        petrel_admin_int(call, "n", 7);
        petrel_admin_bool(call, "on", true);
        petrel_admin_list(call, "targets", targets, 2);
        petrel_admin_row_end(call);
        petrel_admin_str(call, "name", "\xc3\xa9t\xc3\xa9 longer\x1b[2J");
        petrel_admin_int(call, "n", -12345);
        petrel_admin_bool(call, "on", false);
        petrel_admin_list(call, "targets", NULL, 0);
        petrel_admin_row_end(call);
        petrel_admin_str(call, "name", NULL);
        petrel_admin_row_end(call); /* fewer fields: the rest shown as "-" */
    } else if (strcmp(argv[0], "json") == 0) {
        petrel_admin_str(call, "s", "q\"b\\n\nt\tc\x01 \xc2\x85 \xff \xe2\x82\xac");
        petrel_admin_str(call, "null", NULL);
        petrel_admin_list(call, "l", targets, 2);
        petrel_admin_row_end(call);
        petrel_admin_print(call, "text only\n");
    } else if (strcmp(argv[0], "fail") == 0) {
        return petrel_admin_fail(call, "'%s' is bad", "x\x1b[2Jy\xff");
    } else if (strcmp(argv[0], "usage") == 0) {
        return petrel_admin_usage(call);
    } else if (strcmp(argv[0], "secret") == 0) {
        petrel_admin_print(call, "checked first\n");
        const char *s = petrel_admin_secret(call);
        const char *again = petrel_admin_secret(call);
        petrel_admin_print(call, "secret %s %s\n", s ? s : "-", s == again ? "once" : "twice");
    }
    return 0;
}

static int run_own(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    petrel_admin_print(call, "own text\n");
    petrel_admin_str(call, "k", "v");
    petrel_admin_row_end(call);
    return 0;
}

static const struct petrel_admin_command table[] = {
    {"thing show", "ARG", "", PETREL_ADMIN_OFFLINE | PETREL_ADMIN_SECRET, run_rows},
    {"thing own", "", "", PETREL_ADMIN_OFFLINE | PETREL_ADMIN_OWN_TEXT, run_own},
    {"other", "[X]", "", PETREL_ADMIN_OFFLINE, run_own},
    {"thing set", "KEY VALUE", "", PETREL_ADMIN_OFFLINE, run_own},
    {NULL, NULL, NULL, 0, NULL},
};
static struct petrel_module mod = {.abi_minor = 7, .admin = table};
static struct petrel_ctx ctx = {.mod = &mod, .name = "thing"};

/* Run argv (command name and arguments) as petrelctl would. */
static int run(struct capture *c, bool json, int argc, char **argv)
{
    petrel_buf_init(&c->out, SIZE_MAX);
    petrel_buf_init(&c->err, SIZE_MAX);
    c->secrets_asked = 0;
    struct petrel_admin_io io = {.write = capture_write, .read_secret = capture_secret, .arg = c};
    petrel_server.modules = &ctx;
    struct petrel_admin_found f;
    int found = petrel_admin_find(argc, argv, &f);
    int rc = found == 1
                 ? petrel_admin_exec(&f, argc - f.words, argv + f.words, json, false, NULL, &io)
             : found == 0 ? petrel_admin_group_usage(f.ctx, argv[0], &io)
                          : -1;
    petrel_server.modules = NULL;
    petrel_buf_append(&c->out, "", 1);
    petrel_buf_append(&c->err, "", 1);
    return rc;
}

static void done(struct capture *c)
{
    petrel_buf_free(&c->out);
    petrel_buf_free(&c->err);
}

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define RUN(c, json, ...)                                                                          \
    run(c, json, sizeof(ARGV(__VA_ARGS__)) / sizeof(char *) - 1, ARGV(__VA_ARGS__))

static void test_table(void **state)
{
    (void)state;
    struct capture c;
    assert_int_equal(RUN(&c, false, "thing", "show", "table"), 0);
    assert_string_equal(petrel_buf_head(&c.out),
                        "name               n       on   targets\n"
                        "short              7       yes  a@x.test,b\"q\\@x.test\n"
                        "\xc3\xa9t\xc3\xa9 longer\\x1B[2J  -12345  no   -\n"
                        "-                  -       -    -\n");
    assert_string_equal(petrel_buf_head(&c.err), "");
    done(&c);
}

static void test_json(void **state)
{
    (void)state;
    struct capture c;
    assert_int_equal(RUN(&c, true, "thing", "show", "json"), 0);
    assert_string_equal(petrel_buf_head(&c.out),
                        "{\"s\":\"q\\\"b\\\\n\\nt\\tc\\u0001 \\u0085 \\ufffd \xe2\x82\xac\","
                        "\"null\":null,\"l\":[\"a@x.test\",\"b\\\"q\\\\@x.test\"]}\n");
    done(&c);
    assert_int_equal(RUN(&c, true, "thing", "show", "table"), 0);
    assert_non_null(strstr(petrel_buf_head(&c.out), "\"on\":true,\"targets\":[\"a@x.test\""));
    assert_non_null(strstr(petrel_buf_head(&c.out), "\"on\":false,\"targets\":[]}"));
    assert_non_null(strstr(petrel_buf_head(&c.out), "{\"name\":null}\n"));
    done(&c);
}

static void test_own_text(void **state)
{
    (void)state;
    struct capture c;
    assert_int_equal(RUN(&c, false, "thing", "own"), 0);
    assert_string_equal(petrel_buf_head(&c.out), "own text\n");
    done(&c);
    assert_int_equal(RUN(&c, true, "thing", "own"), 0);
    assert_string_equal(petrel_buf_head(&c.out), "{\"k\":\"v\"}\n");
    done(&c);
}

static void test_fail_is_escaped(void **state)
{
    (void)state;
    struct capture c;
    assert_int_equal(RUN(&c, false, "thing", "show", "fail"), 1);
    assert_string_equal(petrel_buf_head(&c.err), "petrelctl: 'x\\x1B[2Jy\\xFF' is bad\n");
    done(&c);
}

static void test_usage_of_the_group(void **state)
{
    (void)state;
    struct capture c;
    static const char want[] = "usage: petrelctl [--config FILE] thing show ARG | own | set KEY "
                               "VALUE\n";
    assert_int_equal(RUN(&c, false, "thing", "show", "usage"), 2);
    assert_string_equal(petrel_buf_head(&c.err), want);
    done(&c);
    assert_int_equal(RUN(&c, false, "thing", "frobnicate"), 2); /* a group, no command */
    assert_string_equal(petrel_buf_head(&c.err), want);
    done(&c);
    assert_int_equal(RUN(&c, false, "thing"), 2);
    assert_string_equal(petrel_buf_head(&c.err), want);
    done(&c);
    assert_int_equal(RUN(&c, false, "nothing"), -1);
    done(&c);
    /* The longest name wins; a one-word command is a group of its own. */
    assert_int_equal(RUN(&c, false, "other"), 0);
    assert_string_equal(petrel_buf_head(&c.out), "own text\nk\nv\n");
    done(&c);
}

static void test_secret_asked_once_when_wanted(void **state)
{
    (void)state;
    struct capture c;
    assert_int_equal(RUN(&c, false, "thing", "show", "secret"), 0);
    assert_string_equal(petrel_buf_head(&c.out), "checked first\nsecret s3cret once\n");
    assert_int_equal(c.secrets_asked, 1);
    done(&c);
    /* A command without the flag gets none. */
    assert_int_equal(RUN(&c, false, "thing", "set", "secret"), 0);
    assert_int_equal(c.secrets_asked, 0);
    done(&c);
}

static void put(struct petrel_buf *b, int type, const char *text)
{
    assert_true(petrel_ctl_frame_put(b, type, text, strlen(text)));
}

static void test_request_frames(void **state)
{
    (void)state;
    struct petrel_buf b;
    struct petrel_ctl_request req;
    const char *error = NULL;
    petrel_buf_init(&b, 1 << 20);
    put(&b, PETREL_CTL_WORD, "queue");
    put(&b, PETREL_CTL_WORD, "show");
    put(&b, PETREL_CTL_JSON, "");
    put(&b, PETREL_CTL_SECRET, "pw");
    put(&b, PETREL_CTL_END, "");
    for (size_t n = 0; n < b.len; n++) /* every prefix: more is needed */
        assert_int_equal(petrel_ctl_request_parse(petrel_buf_head(&b), n, &req, &error), 0);
    assert_int_equal(petrel_ctl_request_parse(petrel_buf_head(&b), b.len, &req, &error), 1);
    assert_int_equal(req.argc, 2);
    assert_string_equal(req.argv[1], "show");
    assert_null(req.argv[2]);
    assert_true(req.json);
    assert_string_equal(req.secret, "pw");
    petrel_ctl_request_free(&req);

    /* Limits: words, the whole request, frame lengths, NUL. */
    petrel_buf_reset(&b);
    for (int i = 0; i <= PETREL_CTL_WORDS_MAX; i++)
        put(&b, PETREL_CTL_WORD, "w");
    assert_int_equal(petrel_ctl_request_parse(petrel_buf_head(&b), b.len, &req, &error), -1);
    assert_string_equal(error, "too many words");
    petrel_buf_reset(&b);
    static char big[PETREL_CTL_REQUEST_MAX + 16];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put(&b, PETREL_CTL_WORD, big);
    assert_int_equal(petrel_ctl_request_parse(petrel_buf_head(&b), b.len, &req, &error), -1);
    assert_string_equal(error, "malformed frame");
    petrel_buf_reset(&b); /* frames that fit, but not all of them */
    big[PETREL_CTL_REQUEST_MAX / 2] = '\0';
    put(&b, PETREL_CTL_WORD, big);
    put(&b, PETREL_CTL_WORD, big);
    assert_int_equal(
        petrel_ctl_request_parse(petrel_buf_head(&b), PETREL_CTL_REQUEST_MAX, &req, &error), -1);
    assert_string_equal(error, "request too long");
    petrel_buf_reset(&b);
    assert_true(petrel_ctl_frame_put(&b, PETREL_CTL_WORD, "a\0b", 3));
    put(&b, PETREL_CTL_END, "");
    assert_int_equal(petrel_ctl_request_parse(petrel_buf_head(&b), b.len, &req, &error), -1);
    assert_string_equal(error, "NUL in a request");
    assert_int_equal(petrel_ctl_request_parse("\0\0\0\0", 4, &req, &error), -1);
    petrel_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_own_text),
        cmocka_unit_test(test_fail_is_escaped),
        cmocka_unit_test(test_usage_of_the_group),
        cmocka_unit_test(test_secret_asked_once_when_wanted),
        cmocka_unit_test(test_request_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
