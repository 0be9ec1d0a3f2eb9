/* The METADATA file of an account: what one change writes the next reads
 * back (values with NUL, several mailboxes), an unchanged read writes
 * nothing, a refused change leaves the file as it was, a damaged file is
 * an error and is left alone, and user names cannot leave the directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/storage.h>

#include "metadata_store.h"

static char parent[] = "/tmp/petrel-metadata-test-XXXXXX";
static char dir[4096]; /* parent/imap-metadata */

static int add_two(void *arg, struct imap_metadata *m, bool *changed_r)
{
    (void)arg;
    imap_metadata_put(m, "", "/private/comment", "server", 6);
    imap_metadata_put(m, "Work/Sub", "/shared/x", "a\0b", 3);
    *changed_r = true;
    return 0;
}

struct seen {
    size_t n;
    bool server, work;
};

static int look(void *arg, struct imap_metadata *m, bool *changed_r)
{
    struct seen *s = arg;
    (void)changed_r;
    s->n = m->n;
    for (size_t i = 0; i < m->n; i++) {
        const struct imap_metadata_entry *e = &m->v[i];
        s->server |= strcmp(e->mailbox, "") == 0 && strcmp(e->entry, "/private/comment") == 0 &&
                     e->len == 6 && memcmp(e->value, "server", 6) == 0;
        s->work |=
            strcmp(e->mailbox, "Work/Sub") == 0 && e->len == 3 && memcmp(e->value, "a\0b", 3) == 0;
    }
    return 0;
}

static int refuse(void *arg, struct imap_metadata *m, bool *changed_r)
{
    (void)arg;
    imap_metadata_put(m, "", "/private/more", "x", 1);
    *changed_r = true;
    return PETREL_STORAGE_TOO_LARGE;
}

static void round_trip(void **state)
{
    (void)state;
    assert_int_equal(imap_metadata_change("alice@example.test", add_two, NULL), 0);
    struct seen s = {0, false, false};
    assert_int_equal(imap_metadata_change("alice@example.test", look, &s), 0);
    assert_int_equal(s.n, 2);
    assert_true(s.server && s.work);
    assert_int_equal(imap_metadata_change("alice@example.test", refuse, NULL),
                     PETREL_STORAGE_TOO_LARGE);
    s = (struct seen){0, false, false};
    assert_int_equal(imap_metadata_change("alice@example.test", look, &s), 0);
    assert_int_equal(s.n, 2);
    /* another account starts empty */
    s = (struct seen){0, false, false};
    assert_int_equal(imap_metadata_change("bob@example.test", look, &s), 0);
    assert_int_equal(s.n, 0);
}

static void damaged_file(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/carol@example.test", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("\x10\x00\x00\x00short", 1, 9, f); /* a length past the end */
    fclose(f);
    struct seen s = {0, false, false};
    assert_int_equal(imap_metadata_change("carol@example.test", look, &s), PETREL_STORAGE_TEMPFAIL);
    assert_int_equal(imap_metadata_change("carol@example.test", add_two, NULL),
                     PETREL_STORAGE_TEMPFAIL);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 9); /* left for the administrator */
    unlink(path);
}

static void names_stay_inside(void **state)
{
    (void)state;
    assert_int_equal(imap_metadata_change("x/../../escape", add_two, NULL), 0);
    char path[4200];
    snprintf(path, sizeof(path), "%s/x%%2f..%%2f..%%2fescape", dir);
    assert_int_equal(access(path, F_OK), 0);
    unlink(path);
    assert_int_equal(imap_metadata_change("../escape", add_two, NULL), PETREL_STORAGE_TEMPFAIL);
    assert_int_equal(imap_metadata_change(".hidden", add_two, NULL), PETREL_STORAGE_TEMPFAIL);
}

int main(void)
{
    assert_non_null(mkdtemp(parent));
    const char *error = NULL;
    assert_int_equal(imap_metadata_start(parent, &error), 0);
    snprintf(dir, sizeof(dir), "%s", imap_metadata_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(damaged_file),
        cmocka_unit_test(names_stay_inside),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char path[4200];
    snprintf(path, sizeof(path), "%s/alice@example.test", dir);
    unlink(path);
    if (rmdir(dir) != 0 || rmdir(parent) != 0)
        failed++; /* a file the tests did not expect */
    return failed;
}
