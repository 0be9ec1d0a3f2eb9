/* Unit tests of the full-text index (fts.c) through the ops table: rows
 * added for new messages, dropped after an expunge, a lagging index caught up
 * (messages added while it was off), a missing or damaged one rebuilt, a
 * needle the index cannot answer refused, and the phrase query equal to a
 * substring test for needles with spaces, punctuation, quotes, FTS5
 * syntax and non-ASCII letters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cmocka.h>

#include <petrel/mem.h>
#include <petrel/mimetext.h>

#include "test_storage_util.h"

static int setup(void **state)
{
    (void)state;
    test_root_make(false);
    storage_configure_fts(true);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_root_remove();
    return 0;
}

static void collect_uid(void *arg, uint32_t uid)
{
    struct test_msgs *t = arg;
    if (t->n < 4096)
        t->uid[t->n++] = uid;
}

/* The UIDs fts_search gives (folded needle), as a "1 2 3" string;
 * "unsupported" when it refuses. */
static const char *fts(struct petrel_folder *f, enum petrel_storage_fts_where where,
                       const char *field, const char *needle)
{
    static char out[4096];
    struct test_msgs *t = calloc(1, sizeof(*t));
    char *folded = petrel_fold_str(needle, strlen(needle));
    int r = ops->fts_search(f, where, field, folded, strlen(folded), collect_uid, t);
    free(folded);
    if (r == PETREL_STORAGE_UNSUPPORTED) {
        free(t);
        return "unsupported";
    }
    assert_int_equal(r, PETREL_STORAGE_OK);
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->n; i++)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%u", i ? " " : "", t->uid[i]);
    free(t);
    return out;
}

static uint32_t put(struct petrel_mailbox *m, const char *text)
{
    uint32_t uid, v;
    struct petrel_storage_source src = {text, strlen(text), -1, 0};
    assert_int_equal(ops->deliver(m, NULL, &src, NULL, &uid, &v), PETREL_STORAGE_OK);
    return uid;
}

static const char *const msgs[] = {
    "From: Jörg <j@example.de>\r\nSubject: =?UTF-8?Q?Caf=C3=A9_cr=C3=A8me?=\r\n\r\n"
    "The albatross said \"hello, world\" AND left.\r\n",
    "From: Alice <a@example.org>\r\nSubject: plain\r\nContent-Type: text/html\r\n\r\n"
    "<p>NEAR(x*) col:umn</p><script>albatross</script>caf&eacute;\r\n",
    "From: Bob <b@example.org>\r\nSubject: koi\r\nContent-Type: text/plain; charset=koi8-r\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n8NLJ18XUIM3J0g==\r\n",
    "From: Carol <c@example.org>\r\nSubject: hello world\r\n\r\nnothing here, subject\r\n",
};

static void test_fts_search(void **state)
{
    (void)state;
    struct petrel_mailbox *m;
    assert_int_equal(ops->mailbox_open("fts1", &m), PETREL_STORAGE_OK);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(put(m, msgs[i]), i + 1);
    struct petrel_folder *f;
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    enum petrel_storage_fts_where B = PETREL_STORAGE_FTS_BODY, T = PETREL_STORAGE_FTS_TEXT,
                                  F = PETREL_STORAGE_FTS_FIELD;
    assert_string_equal(fts(f, B, NULL, "ALBATROSS"), "1"); /* not in the script */
    assert_string_equal(fts(f, B, NULL, "\"hello, world\" and"), "1");
    assert_string_equal(fts(f, B, NULL, "hello, world"), "1");
    assert_string_equal(fts(f, T, NULL, "hello world"), "4");
    assert_string_equal(fts(f, B, NULL, "near(x*)"), "2");
    assert_string_equal(fts(f, B, NULL, "col:umn"), "2");
    assert_string_equal(fts(f, B, NULL, "AND"), "1");
    assert_string_equal(fts(f, B, NULL, "café"), "2");
    assert_string_equal(fts(f, T, NULL, "CAFÉ"), "1 2");
    assert_string_equal(fts(f, B, NULL, "ПРИВЕТ МИР"), "3");
    assert_string_equal(fts(f, B, NULL, "при"), "3"); /* 3 characters, 6 bytes */
    assert_string_equal(fts(f, B, NULL, "ет м"), "3");
    assert_string_equal(fts(f, B, NULL, "8NLJ"), ""); /* the raw base64 is no text */
    assert_string_equal(fts(f, F, "subject", "crème"), "1");
    assert_string_equal(fts(f, F, "SUBJECT", "hello"), "4");
    assert_string_equal(fts(f, F, "from", "jörg <j@"), "1");
    /* A field's rows are "Name: value": a candidate list for the caller. */
    assert_string_equal(fts(f, F, "subject", "ject: "), "1 2 3 4");
    assert_string_equal(fts(f, T, NULL, "subject: hello"), "4");
    assert_string_equal(fts(f, B, NULL, "subject"), "4");
    /* What the index cannot answer. */
    assert_string_equal(fts(f, B, NULL, "ab"), "unsupported");
    assert_string_equal(fts(f, B, NULL, "é"), "unsupported");
    assert_string_equal(fts(f, B, NULL, "ab\xFF"), "unsupported");
    assert_string_equal(fts(f, F, "", "hello"), "unsupported");
    storage_configure_fts(false);
    assert_string_equal(fts(f, B, NULL, "albatross"), "unsupported");
    storage_configure_fts(true);
    /* A message delivered after the folder was opened is found too. */
    uint32_t uid5;
    assert_int_equal(test_deliver(m, NULL, 5, &uid5), PETREL_STORAGE_OK);
    assert_string_equal(fts(f, F, "subject", "number 5\tfolded"), "5");
    struct test_msgs *all = calloc(1, sizeof(*all));
    assert_int_equal(ops->messages(f, NULL, test_collect, all), PETREL_STORAGE_OK);
    char dir[PATH_MAX];
    test_folder_dir("fts1", "", dir, sizeof(dir));
    assert_int_equal(all->n, test_count_files(dir, NULL, 0));
    assert_string_equal(fts(f, T, NULL, "message"), "5");
    free(all);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

static void fts_file(const char *user, char *out, size_t size)
{
    char dir[PATH_MAX];
    test_folder_dir(user, "", dir, sizeof(dir));
    petrel_snprintf(out, size, "%s/petrel-fts.sqlite", dir);
}

static void test_fts_lag_expunge_rebuild(void **state)
{
    (void)state;
    struct petrel_mailbox *m;
    assert_int_equal(ops->mailbox_open("fts2", &m), PETREL_STORAGE_OK);
    put(m, msgs[0]);
    put(m, msgs[3]);
    char path[PATH_MAX + 32];
    fts_file("fts2", path, sizeof(path));
    struct stat sb;
    struct petrel_folder *f;
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_not_equal(stat(path, &sb), 0); /* made by the first search */
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), "1");
    assert_int_equal(stat(path, &sb), 0);
    /* Off: delivered but not indexed; on again: caught up. */
    storage_configure_fts(false);
    uint32_t late = put(m, msgs[0]);
    storage_configure_fts(true);
    char want[32];
    snprintf(want, sizeof(want), "1 %u", late);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), want);
    /* Expunged: gone from the answers. */
    struct petrel_storage_uid_range r1 = {1, 1};
    struct petrel_storage_uid_set s1 = {&r1, 1};
    struct petrel_storage_store del = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_DELETED, NULL, 0};
    assert_int_equal(ops->store(f, &s1, &del, NULL, NULL), PETREL_STORAGE_OK);
    assert_int_equal(ops->expunge(f, NULL, NULL, NULL), PETREL_STORAGE_OK);
    snprintf(want, sizeof(want), "%u", late);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), want);
    /* Removed: made again from the files. */
    unlink(path);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), want);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_TEXT, NULL, "hello world"), "2");
    /* Damaged: the same. */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("not a database ", fp);
    fclose(fp);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), want);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* A catch-up out of time: that search is refused (the caller scans), what
 * was indexed stays, and the following searches go on from there. With a
 * budget of 0 each does one batch (256 messages). */
static void test_fts_catchup_budget(void **state)
{
    (void)state;
    struct petrel_mailbox *m;
    assert_int_equal(ops->mailbox_open("fts4", &m), PETREL_STORAGE_OK);
    uint32_t last = 0;
    for (int i = 0; i < 600; i++)
        last = put(m, msgs[i % 4]);
    struct petrel_folder *f;
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    storage_configure_fts_catchup(0);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), "unsupported");
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), "unsupported");
    char got[4096];
    snprintf(got, sizeof(got), "%s", fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"));
    /* msgs[0] has the word in its body: every fourth message. */
    char want[16];
    snprintf(want, sizeof(want), " %u", last - 3);
    assert_non_null(strstr(got, want));
    assert_int_equal(strncmp(got, "1 5 9 ", 6), 0);
    /* A search soon after a cut scans without trying (the other keys of
     * the same command); a later one catches up. */
    storage_configure_fts_catchup(60000);
    uint32_t more = put(m, msgs[0]);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    f->fs->fts_cut_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), "unsupported");
    f->fs->fts_cut_ms = 0;
    snprintf(want, sizeof(want), " %u", more);
    assert_non_null(strstr(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "albatross"), want));
    storage_configure_fts_catchup(30000);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* A renamed folder's index goes with it, a deleted folder's with it. */
static void test_fts_rename(void **state)
{
    (void)state;
    struct petrel_mailbox *m;
    assert_int_equal(ops->mailbox_open("fts3", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_create(m, "Old", 0), PETREL_STORAGE_OK);
    uint32_t uid, v;
    struct petrel_storage_source src = {msgs[1], strlen(msgs[1]), -1, 0};
    assert_int_equal(ops->deliver(m, "Old", &src, NULL, &uid, &v), PETREL_STORAGE_OK);
    struct petrel_folder *old;
    assert_int_equal(ops->folder_open(m, "Old", &old), PETREL_STORAGE_OK);
    assert_string_equal(fts(old, PETREL_STORAGE_FTS_BODY, NULL, "col:umn"), "1");
    ops->folder_close(old);
    assert_int_equal(ops->folder_rename(m, "Old", "New"), PETREL_STORAGE_OK);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    test_folder_dir("fts3", ".New", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/petrel-fts.sqlite", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    struct petrel_folder *f;
    assert_int_equal(ops->folder_open(m, "New", &f), PETREL_STORAGE_OK);
    assert_string_equal(fts(f, PETREL_STORAGE_FTS_BODY, NULL, "col:umn"), "1");
    ops->folder_close(f);
    /* Deleted: the index file does not keep the directory alive. */
    assert_int_equal(ops->folder_delete(m, "New"), PETREL_STORAGE_OK);
    assert_int_not_equal(stat(dir, &sb), 0);
    ops->mailbox_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fts_search),
        cmocka_unit_test(test_fts_lag_expunge_rebuild),
        cmocka_unit_test(test_fts_catchup_budget),
        cmocka_unit_test(test_fts_rename),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
