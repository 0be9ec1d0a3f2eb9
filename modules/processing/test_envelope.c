/* Queue envelopes (envelope.c): the text format both ways, what a reader
 * refuses (a torn file above all), queue ids, and the files: written
 * through tmp/ and renamed, with the next attempt as their mtime. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/buf.h>

#include "envelope.h"

#define ID "0123456789ABCDEFGHIJ"

/* A valid envelope's lines before the recipients. */
static const char head[] = "petrel-queue 1\n"
                           "id " ID "\n"
                           "arrival 1714564800\n"
                           "next 1714565100\n"
                           "attempts 2\n"
                           "size 120\n"
                           "from alice@example.test\n"
                           "flags 0 0 0 0\n";
static const char good_rcpt[] = "rcpt P L 0 bob@example.test\t\t\t\n";

static char *format(const struct queue_envelope *env)
{
    struct petrel_buf b;
    petrel_buf_init(&b, QUEUE_ENVELOPE_MAX);
    assert_true(queue_envelope_format(env, &b));
    char *s = malloc(b.len + 1);
    assert_non_null(s);
    memcpy(s, petrel_buf_head(&b), b.len);
    s[b.len] = '\0';
    petrel_buf_free(&b);
    return s;
}

static bool parses(const char *text)
{
    struct queue_envelope env;
    const char *error = NULL;
    bool ok = queue_envelope_parse(text, strlen(text), &env, &error);
    if (ok)
        queue_envelope_free(&env);
    else
        assert_string_equal(error, "malformed queue envelope");
    return ok;
}

/* head + extra + a recipient + end, parsed. */
static bool parses_with(const char *extra)
{
    char *text;
    assert_true(asprintf(&text, "%s%s%send\n", head, extra, good_rcpt) > 0);
    bool ok = parses(text);
    free(text);
    return ok;
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_same(const struct queue_envelope *a, const struct queue_envelope *b)
{
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->arrival, b->arrival);
    assert_int_equal(a->next_attempt, b->next_attempt);
    assert_int_equal(a->attempts, b->attempts);
    assert_int_equal(a->size, b->size);
    assert_string_equal(a->from, b->from);
    assert_str_or_null(a->helo, b->helo);
    assert_str_or_null(a->client_ip, b->client_ip);
    assert_str_or_null(a->protocol, b->protocol);
    assert_str_or_null(a->auth_user, b->auth_user);
    assert_str_or_null(a->tls_cipher, b->tls_cipher);
    assert_str_or_null(a->tls_version, b->tls_version);
    assert_str_or_null(a->envid, b->envid);
    assert_int_equal(a->submission, b->submission);
    assert_int_equal(a->trusted, b->trusted);
    assert_int_equal(a->smtputf8, b->smtputf8);
    assert_int_equal(a->requiretls, b->requiretls);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->ret, b->ret);
    assert_int_equal(a->nrcpts, b->nrcpts);
    for (size_t i = 0; i < a->nrcpts; i++) {
        const struct queue_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
        assert_int_equal(x->state, y->state);
        assert_int_equal(x->route, y->route);
        assert_int_equal(x->notify, y->notify);
        assert_string_equal(x->address, y->address);
        assert_str_or_null(x->original, y->original);
        assert_str_or_null(x->dsn_orcpt, y->dsn_orcpt);
        assert_str_or_null(x->reason, y->reason);
        assert_str_or_null(x->next_hop, y->next_hop);
        assert_int_equal(x->forwarded, y->forwarded);
    }
}

/* Every field set, and a recipient in each state. */
static void full_envelope(struct queue_envelope *env)
{
    static const char states[] = "EPTDFBS", routes[] = "-LR";
    queue_envelope_init(env);
    memcpy(env->id, ID, sizeof(ID));
    env->arrival = 1714564800;
    env->next_attempt = 1714565100;
    env->attempts = 7;
    env->size = 123456789012ull;
    env->from = strdup("alice@example.test");
    env->helo = strdup("mx.example.test");
    env->client_ip = strdup("2001:db8::1");
    env->protocol = strdup("ESMTPSA");
    env->auth_user = strdup("alice");
    env->tls_cipher = strdup("TLS_AES_256_GCM_SHA384");
    env->tls_version = strdup("TLSv1.3");
    env->envid = strdup("QQ314159");
    env->submission = true;
    env->trusted = true;
    env->smtputf8 = true;
    env->requiretls = true;
    env->body = 2;
    env->ret = 1;
    for (int i = 0; i < 7; i++) {
        char address[64];
        snprintf(address, sizeof(address), "r%d@example.test", i);
        struct queue_rcpt *r = queue_envelope_add(
            env, states[i], routes[i % 3], (unsigned)(i * 2 + 1) & 15, address,
            i % 2 ? "team@example.test" : NULL, i % 3 ? "rfc822;team@example.test" : NULL);
        if (i != 1)
            queue_rcpt_set_reason(r, "452 4.2.2 mailbox full, try later");
    }
}

static void test_round_trip(void **state)
{
    struct queue_envelope env, back;
    full_envelope(&env);
    char *text = format(&env);
    const char *error = NULL;
    assert_true(queue_envelope_parse(text, strlen(text), &back, &error));
    assert_same(&env, &back);
    char *again = format(&back);
    assert_string_equal(text, again); /* and stable */
    assert_int_equal(queue_envelope_open_count(&back), 5);
    free(again);
    free(text);
    queue_envelope_free(&back);
    queue_envelope_free(&env);
}

/* The trusted flag came fifth on the flags line: an envelope from before
 * it still reads (not trusted: dsn.c then goes by auth). */
static void test_flags_before_trusted(void **state)
{
    (void)state;
    struct queue_envelope env;
    const char *error = NULL;
    static const char old[] = "petrel-queue 1\nid " ID "\nfrom a@b.test\nflags 1 0 1 1\n"
                              "auth alice\nrcpt P L 0 x@y.test\t\t\t\nend\n";
    assert_true(queue_envelope_parse(old, strlen(old), &env, &error));
    assert_true(env.submission);
    assert_false(env.trusted);
    assert_int_equal(env.ret, 1);
    queue_envelope_free(&env);
    static const char now[] = "petrel-queue 1\nid " ID "\nfrom a@b.test\nflags 0 0 0 1 1\n"
                              "rcpt P L 0 x@y.test\t\t\t\nend\n";
    assert_true(queue_envelope_parse(now, strlen(now), &env, &error));
    assert_true(env.trusted);
    assert_false(env.requiretls);
    queue_envelope_free(&env);
}

/* REQUIRETLS is the sixth flag, written only when set: files without it
 * (and files from before it) read as not required. */
static void test_flags_requiretls(void **state)
{
    (void)state;
    struct queue_envelope env, back;
    const char *error = NULL;
    static const char with[] = "petrel-queue 1\nid " ID "\nfrom a@b.test\nflags 0 0 0 1 1 1\n"
                               "rcpt P L 0 x@y.test\t\t\t\nend\n";
    assert_true(queue_envelope_parse(with, strlen(with), &env, &error));
    assert_true(env.requiretls && env.trusted);
    char *text = format(&env);
    assert_non_null(strstr(text, "\nflags 0 0 0 1 1 1\n"));
    assert_true(queue_envelope_parse(text, strlen(text), &back, &error));
    assert_true(back.requiretls);
    free(text);
    queue_envelope_free(&back);
    env.requiretls = false;
    text = format(&env);
    assert_non_null(strstr(text, "\nflags 0 0 0 1 1\n"));
    free(text);
    queue_envelope_free(&env);
    static const char zero[] = "petrel-queue 1\nid " ID "\nfrom a@b.test\nflags 0 0 0 1 0 0\n"
                               "rcpt P L 0 x@y.test\t\t\t\nend\n";
    assert_true(queue_envelope_parse(zero, strlen(zero), &env, &error));
    assert_false(env.requiretls);
    queue_envelope_free(&env);
}

static void test_round_trip_minimal(void **state)
{
    struct queue_envelope env, back;
    queue_envelope_init(&env);
    memcpy(env.id, ID, sizeof(ID));
    env.from = strdup(""); /* the null sender */
    queue_envelope_add(&env, RCPT_PENDING, ROUTE_NONE, 0, "x@y.test", NULL, NULL);
    char *text = format(&env);
    const char *error = NULL;
    assert_true(queue_envelope_parse(text, strlen(text), &back, &error));
    assert_same(&env, &back);
    assert_null(back.helo);
    assert_null(back.rcpts[0].reason);
    free(text);
    queue_envelope_free(&back);
    queue_envelope_free(&env);
}

/* Tabs, line ends and other controls never reach the file: each becomes
 * '?', so one line stays one field. UTF-8 is kept. */
static void test_values_sanitised(void **state)
{
    struct queue_envelope env, back;
    queue_envelope_init(&env);
    memcpy(env.id, ID, sizeof(ID));
    env.from = strdup("a\nb@x.test");
    env.helo = strdup("evil\nrcpt P L 0 injected@x.test");
    struct queue_rcpt *r = queue_envelope_add(&env, RCPT_DEFERRED, ROUTE_LOCAL, 0, "x\ty@x.test",
                                              "o\r\n@x.test", "rfc822;\x01z");
    queue_rcpt_set_reason(r, "452\t4.2.2\nmailbox\rfull\x01\x1f\x7f d\xc3\xa9j\xc3\xa0");
    char *text = format(&env);
    const char *error = NULL;
    assert_true(queue_envelope_parse(text, strlen(text), &back, &error));
    assert_string_equal(back.from, "a?b@x.test");
    assert_string_equal(back.helo, "evil?rcpt P L 0 injected@x.test");
    assert_int_equal(back.nrcpts, 1);
    assert_string_equal(back.rcpts[0].address, "x?y@x.test");
    assert_string_equal(back.rcpts[0].original, "o??@x.test");
    assert_string_equal(back.rcpts[0].dsn_orcpt, "rfc822;?z");
    /* set_reason already makes a reason one line (spaces). */
    assert_string_equal(back.rcpts[0].reason, "452 4.2.2 mailbox full    d\xc3\xa9j\xc3\xa0");
    free(text);
    queue_envelope_free(&back);
    queue_envelope_free(&env);
}

/* A file cut anywhere (a crash while writing it) is refused: no prefix of
 * an envelope is an envelope. */
static void test_torn_file_refused(void **state)
{
    struct queue_envelope env, back;
    full_envelope(&env);
    char *text = format(&env);
    size_t len = strlen(text);
    const char *error;
    for (size_t cut = 0; cut < len; cut++) {
        error = NULL;
        if (queue_envelope_parse(text, cut, &back, &error)) {
            fprintf(stderr, "accepted a prefix of %zu of %zu bytes\n", cut, len);
            fail();
        }
        assert_non_null(error);
    }
    assert_true(queue_envelope_parse(text, len, &back, &error));
    queue_envelope_free(&back);
    /* Only the end line missing. */
    assert_true(len > 4 && strcmp(text + len - 4, "end\n") == 0);
    text[len - 4] = '\0';
    assert_false(parses(text));
    free(text);
    queue_envelope_free(&env);
}

static void test_required_fields(void **state)
{
    char text[1024];
    assert_true(parses_with(""));
    /* No recipient. */
    snprintf(text, sizeof(text), "%send\n", head);
    assert_false(parses(text));
    /* No id, no from: the head without that line. */
    static const char *const lines[] = {"id " ID "\n", "from alice@example.test\n",
                                        "petrel-queue 1\n"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        const char *at = strstr(head, lines[i]);
        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%send\n", (int)(at - head), head, at + strlen(lines[i]),
                 good_rcpt);
        assert_false(parses(text));
    }
    /* Another version of the format. */
    snprintf(text, sizeof(text), "petrel-queue 2\n%s%send\n", head + strlen("petrel-queue 1\n"),
             good_rcpt);
    assert_false(parses(text));
    /* The other fields may be left out. */
    assert_true(parses("petrel-queue 1\nid " ID "\nfrom \nrcpt E - 0 x@y.test\nend\n"));
    assert_false(parses(""));
}

static void test_unknown_keys_ignored(void **state)
{
    char *text;
    assert_true(asprintf(&text, "%sfuture-key some value\tand more\npriority 3\n%send\n", head,
                         good_rcpt) > 0);
    struct queue_envelope env;
    const char *error = NULL;
    assert_true(queue_envelope_parse(text, strlen(text), &env, &error));
    assert_string_equal(env.from, "alice@example.test");
    assert_int_equal(env.nrcpts, 1);
    queue_envelope_free(&env);
    free(text);
}

static void test_duplicate_string_keys_refused(void **state)
{
    static const char *const dups[] = {
        "from mallory@example.test\n", "helo a\nhelo b\n", "client a\nclient b\n",
        "protocol a\nprotocol b\n",    "auth a\nauth b\n", "tls a\ntls b\n",
        "envid a\nenvid b\n",          "from \n",
    };
    for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++)
        if (parses_with(dups[i])) {
            fprintf(stderr, "accepted twice: %s", dups[i]);
            fail();
        }
}

/* A key given twice is a damaged file whatever the key: which value would
 * be the right one? */
static void test_duplicate_scalar_keys_refused(void **state)
{
    static const char *const dups[] = {
        "id " ID "\n", "id 00000000000000000000\n", "arrival 5\n", "next 5\n", "attempts 5\n",
        "size 5\n",    "flags 1 1 1 1\n",
    };
    for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++)
        if (parses_with(dups[i])) {
            fprintf(stderr, "accepted twice: %s", dups[i]);
            fail();
        }
}

static void test_bad_lines_refused(void **state)
{
    static const char *const bad[] = {
        "rcpt X L 0 a@b.test\t\t\t\n", /* state */
        "rcpt P X 0 a@b.test\t\t\t\n", /* route */
        "rcpt P L 16 a@b.test\n",      /* notify is four bits */
        "rcpt P L -1 a@b.test\n",
        "rcpt P L 99999999999999999999999 a@b.test\n",
        "rcpt P L 3x a@b.test\n",
        "rcpt P L a@b.test\n", /* no notify */
        "rcpt P L 0 \t\t\t\n", /* no address */
        "rcpt P L 0 \n",
        "rcpt P L 0\n",
        "rcpt PL 0 a@b.test\n",
        "rcpt P  L 0 a@b.test\n",
        "rcpt \n",
        "rcpt\n",
        "arrival x\n",
        "arrival \n",
        "next 1.5\n",
        "attempts -1\n",
        "attempts 1000000\n",
        "size -1\n",
        "size 99999999999999999999999\n",
        "flags 0 0 3 0\n",
        "flags 0 0 0 3\n",
        "flags 0 0 -1 0\n",
        "flags 0 0 0\n",
        "flags 0 0 0 0 0 0 0\n",
        "flags 0 0 0 0 0 1x\n",
        "flags 0 0 0 0 0 \n",
        "flags 0 0 0 0 1x\n",
        "flags 0 0 0 0 \n",
        "id 0123456789ABCDEFGHI\n",
        "id 0123456789ABCDEFGHIW\n",
        "id 0123456789abcdefghij\n",
        "no-value-line\n",
        "\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (parses_with(bad[i])) {
            fprintf(stderr, "accepted: %s", bad[i]);
            fail();
        }
    /* A recipient line with only an address is whole. */
    assert_true(parses_with("rcpt S R 15 a@b.test\n"));
    /* A NUL inside the text hides the rest of it: refused as torn. */
    char text[512];
    int n = snprintf(text, sizeof(text), "%s%send\n", head, good_rcpt);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    text[strlen(head) + 5] = '\0';
    struct queue_envelope env;
    const char *error = NULL;
    assert_false(queue_envelope_parse(text, (size_t)n, &env, &error));
}

static void test_recipient_limit(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, QUEUE_ENVELOPE_MAX);
    assert_true(petrel_buf_printf(&b, "%s", head));
    for (int i = 0; i < QUEUE_MAX_RCPTS; i++)
        assert_true(petrel_buf_printf(&b, "rcpt P L 0 r%d@example.test\t\t\t\n", i));
    size_t len = b.len;
    assert_true(petrel_buf_printf(&b, "end\n"));
    struct queue_envelope env;
    const char *error = NULL;
    assert_true(queue_envelope_parse(petrel_buf_head(&b), b.len, &env, &error));
    assert_int_equal(env.nrcpts, QUEUE_MAX_RCPTS);
    assert_string_equal(env.rcpts[QUEUE_MAX_RCPTS - 1].address, "r9999@example.test");
    queue_envelope_free(&env);
    /* One more is refused. */
    b.len = len;
    assert_true(petrel_buf_printf(&b, "rcpt P L 0 one-more@example.test\t\t\t\nend\n"));
    assert_false(queue_envelope_parse(petrel_buf_head(&b), b.len, &env, &error));
    petrel_buf_free(&b);
}

/* Formatting into a buffer too small for the envelope fails; it never
 * claims success for a text that is not the whole envelope (a file that
 * would be written, renamed into place and then be unreadable). */
static bool small_buffers_ok(const struct queue_envelope *env)
{
    char *full = format(env);
    size_t len = strlen(full);
    bool good = true;
    for (size_t cap = 1; cap <= len && good; cap++) {
        struct petrel_buf b;
        petrel_buf_init(&b, cap);
        bool ok = queue_envelope_format(env, &b);
        if (ok != (cap == len) || (ok && memcmp(petrel_buf_head(&b), full, len) != 0)) {
            fprintf(stderr, "cap %zu of %zu: format says %s, wrote %zu bytes:\n%.*s", cap, len,
                    ok ? "ok" : "failed", b.len, (int)b.len, petrel_buf_head(&b));
            good = false;
        }
        petrel_buf_free(&b);
    }
    free(full);
    return good;
}

static void test_format_into_small_buffer(void **state)
{
    struct queue_envelope env;
    full_envelope(&env);
    bool ok = small_buffers_ok(&env);
    /* A short last recipient: what follows a line start that does not fit
     * is shorter than the room left. */
    queue_envelope_add(&env, RCPT_PENDING, ROUTE_LOCAL, 10, "a@b", NULL, NULL);
    ok = ok && small_buffers_ok(&env);
    queue_envelope_free(&env);
    assert_true(ok);
}

static int id_cmp(const void *a, const void *b) { return strcmp(a, b); }

static void test_id_new(void **state)
{
    enum { N = 100000 };
    char(*ids)[QUEUE_ID_LEN + 1] = malloc(sizeof(*ids) * N);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        queue_id_new(ids[i]);
        assert_int_equal(strlen(ids[i]), QUEUE_ID_LEN);
        assert_true(queue_id_valid(ids[i]));
    }
    qsort(ids, N, sizeof(*ids), id_cmp);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
    /* Time ordered: an id made later sorts after. */
    char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];
    queue_id_new(a);
    nanosleep(&(struct timespec){0, 2000000}, NULL);
    queue_id_new(b);
    assert_true(strcmp(a, b) < 0);
}

static void test_id_valid(void **state)
{
    assert_true(queue_id_valid(ID));
    assert_true(queue_id_valid("00000000000000000000"));
    assert_true(queue_id_valid("VVVVVVVVVVVVVVVVVVVV"));
    static const char *const bad[] = {
        "",
        "0123456789ABCDEFGHI",   /* 19 */
        "0123456789ABCDEFGHIJK", /* 21 */
        "0123456789ABCDEFGHIj",  /* lower case */
        "0123456789ABCDEFGHIW",  /* past base 32 */
        "0123456789ABCDEFGHIZ",
        "../23456789ABCDEFGHIJ",
        "../3456789ABCDEFGHIJ",
        "0123456789/BCDEFGHIJ",
        "0123456789ABCDEFGHI ",
        "0123456789ABCDEFGHI\n",
        "0123456789ABCDEFGH\xc3\x89",
        ".",
        "..",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (queue_id_valid(bad[i])) {
            fprintf(stderr, "valid: '%s'\n", bad[i]);
            fail();
        }
}

static void test_open_count(void **state)
{
    struct queue_envelope env;
    queue_envelope_init(&env);
    assert_int_equal(queue_envelope_open_count(&env), 0);
    const char *states = "DB";
    for (const char *s = states; *s != '\0'; s++)
        queue_envelope_add(&env, *s, ROUTE_LOCAL, 0, "x@y.test", NULL, NULL);
    assert_int_equal(queue_envelope_open_count(&env), 0);
    states = "EPTFS";
    for (const char *s = states; *s != '\0'; s++) {
        queue_envelope_add(&env, *s, ROUTE_LOCAL, 0, "x@y.test", NULL, NULL);
        assert_int_equal(queue_envelope_open_count(&env), (size_t)(s - states) + 1);
    }
    queue_envelope_free(&env);
}

static void test_queue_path(void **state)
{
    char out[64];
    assert_true(queue_path(out, sizeof(out), "/q", "active", ID));
    assert_string_equal(out, "/q/active/" ID);
    assert_true(queue_path(out, sizeof(out), "/q", "tmp", NULL));
    assert_string_equal(out, "/q/tmp");
    assert_false(queue_path(out, 30, "/q", "active", ID));
}

/* --- files --- */

static char *in(const char *dir, const char *sub, const char *id)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    assert_true(queue_path(p, sizeof(path[0]), dir, sub, id));
    return p;
}

static void test_write_and_read(void **state)
{
    char dir[] = "/tmp/petrel-envelope-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(mkdir(in(dir, "tmp", NULL), 0700), 0);
    assert_int_equal(mkdir(in(dir, "active", NULL), 0700), 0);
    struct queue_envelope env, back;
    full_envelope(&env);
    env.next_attempt = 2000000000; /* 2033 */
    const char *error = NULL;
    struct stat st, st2;
    for (int do_sync = 0; do_sync < 2; do_sync++) {
        assert_int_equal(queue_envelope_write(dir, "active", &env, do_sync), 0);
        assert_int_equal(stat(in(dir, "active", ID), &st), 0);
        assert_int_equal(st.st_mtime, env.next_attempt);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(access(in(dir, "tmp", ID), F_OK), -1); /* renamed away */
        assert_int_equal(queue_envelope_read(in(dir, "active", ID), &back, &error), 0);
        assert_null(error);
        assert_same(&env, &back);
        queue_envelope_free(&back);
    }
    /* A change replaces the file (a new inode: a lock on the old one is
     * on a file that is gone). No next attempt: the mtime is now. */
    env.rcpts[0].state = RCPT_DELIVERED;
    env.next_attempt = 0;
    time_t before = time(NULL);
    assert_int_equal(queue_envelope_write(dir, "active", &env, true), 0);
    assert_int_equal(stat(in(dir, "active", ID), &st2), 0);
    assert_true(st2.st_ino != st.st_ino);
    assert_true(st2.st_mtime >= before && st2.st_mtime <= time(NULL));
    assert_int_equal(queue_envelope_read(in(dir, "active", ID), &back, &error), 0);
    assert_int_equal(back.rcpts[0].state, RCPT_DELIVERED);
    queue_envelope_free(&back);

    /* Into a directory that is not there: fails, leaves no tmp file. */
    errno = 0;
    assert_int_equal(queue_envelope_write(dir, "hold", &env, false), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(access(in(dir, "tmp", ID), F_OK), -1);

    /* Reading: missing, malformed, not a regular file, a symbolic link,
     * too large. */
    assert_int_equal(queue_envelope_read(in(dir, "active", "00000000000000000000"), &back, &error),
                     -1);
    assert_int_equal(errno, ENOENT);
    FILE *f = fopen(in(dir, "active", "11111111111111111111"), "w");
    assert_non_null(f);
    fputs(head, f); /* no recipient, no end */
    fclose(f);
    assert_int_equal(queue_envelope_read(in(dir, "active", "11111111111111111111"), &back, &error),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_string_equal(error, "malformed queue envelope");
    error = NULL;
    assert_int_equal(queue_envelope_read(in(dir, "tmp", NULL), &back, &error), -1);
    assert_int_equal(errno, EINVAL);
    assert_non_null(error);
    assert_int_equal(symlink(in(dir, "active", ID), in(dir, "active", "22222222222222222222")), 0);
    assert_int_equal(queue_envelope_read(in(dir, "active", "22222222222222222222"), &back, &error),
                     -1);
    assert_int_equal(errno, ELOOP);
    int fd = open(in(dir, "active", "33333333333333333333"), O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)QUEUE_ENVELOPE_MAX + 1), 0);
    close(fd);
    error = NULL;
    assert_int_equal(queue_envelope_read(in(dir, "active", "33333333333333333333"), &back, &error),
                     -1);
    assert_int_equal(errno, EINVAL);
    assert_non_null(error);

    static const char *const ids[] = {ID, "11111111111111111111", "22222222222222222222",
                                      "33333333333333333333"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_int_equal(unlink(in(dir, "active", ids[i])), 0);
    assert_int_equal(rmdir(in(dir, "active", NULL)), 0);
    assert_int_equal(rmdir(in(dir, "tmp", NULL)), 0);
    assert_int_equal(rmdir(dir), 0);
    queue_envelope_free(&env);
}

/* The next hop and the forwarded flag: two more fields at the end of a
 * recipient, written only when set, so files without them (older ones)
 * read as before and an older reader ignores them. */
static void test_next_hop_and_forwarded(void **state)
{
    (void)state;
    struct queue_envelope env, back;
    const char *error = NULL;
    queue_envelope_init(&env);
    memcpy(env.id, ID, sizeof(ID));
    env.from = strdup("alice@example.test");
    struct queue_rcpt *r = queue_envelope_add(&env, RCPT_DEFERRED, ROUTE_REMOTE, 0, "bob@far.test",
                                              "team@example.test", NULL);
    queue_rcpt_set_reason(r, "451 4.7.1 later");
    queue_rcpt_set_next_hop(r, "mx1.far.test[127.0.0.2]:25");
    r->forwarded = true;
    r = queue_envelope_add(&env, RCPT_PENDING, ROUTE_REMOTE, 0, "carol@far.test", NULL, NULL);
    r->forwarded = true;
    queue_envelope_add(&env, RCPT_PENDING, ROUTE_LOCAL, 0, "dave@example.test", NULL, NULL);
    char *text = format(&env);
    assert_non_null(strstr(text, "rcpt T R 0 bob@far.test\tteam@example.test\t\t451 4.7.1 "
                                 "later\tmx1.far.test[127.0.0.2]:25\tf\n"));
    assert_non_null(strstr(text, "rcpt P R 0 carol@far.test\t\t\t\t\tf\n"));
    assert_non_null(strstr(text, "rcpt P L 0 dave@example.test\t\t\t\n"));
    assert_true(queue_envelope_parse(text, strlen(text), &back, &error));
    assert_same(&env, &back);
    queue_envelope_free(&back);
    free(text);
    /* An older file: neither. A newer one's flags beside ours: ignored. */
    assert_true(asprintf(&text,
                         "%srcpt P R 0 x@far.test\t\t\t\nrcpt P R 0 y@far.test\t\t\t\t"
                         "\tzf\tmore\nend\n",
                         head) > 0);
    assert_true(queue_envelope_parse(text, strlen(text), &back, &error));
    assert_null(back.rcpts[0].next_hop);
    assert_false(back.rcpts[0].forwarded);
    assert_null(back.rcpts[1].next_hop);
    assert_true(back.rcpts[1].forwarded);
    queue_envelope_free(&back);
    free(text);
    queue_envelope_free(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_flags_before_trusted),
        cmocka_unit_test(test_flags_requiretls),
        cmocka_unit_test(test_values_sanitised),
        cmocka_unit_test(test_torn_file_refused),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_duplicate_string_keys_refused),
        cmocka_unit_test(test_duplicate_scalar_keys_refused),
        cmocka_unit_test(test_bad_lines_refused),
        cmocka_unit_test(test_recipient_limit),
        cmocka_unit_test(test_format_into_small_buffer),
        cmocka_unit_test(test_id_new),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_open_count),
        cmocka_unit_test(test_queue_path),
        cmocka_unit_test(test_write_and_read),
        cmocka_unit_test(test_next_hop_and_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
