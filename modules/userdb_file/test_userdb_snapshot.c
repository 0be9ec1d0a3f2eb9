/* The loaded database: lookups from a snapshot (accounts, forwarding,
 * aliases, catch-all, the primary domain), and reloads that follow the
 * file, keep the old data when the file cannot be read, and let a reader
 * keep its snapshot while a reload swaps in another; and the synchronous
 * reload of `userdb_file reload`. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/userdb.h>

#include "userdb_file.h"

#define HASH                                                                                       \
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq."    \
    "H91p5hVO1"

static const char text[] = "# test\n"
                           "domain example.test catchall=postmaster@example.test\n"
                           "domain other.test\n"
                           "account alice@example.test " HASH " quota=1G messages=100\n"
                           "account postmaster@example.test " HASH "\n"
                           "account bob@example.test " HASH " disabled\n"
                           "forward alice@example.test carol@far.test keep\n"
                           "alias sales@example.test alice@example.test bob@example.test\n";

static void test_lookups(void **state)
{
    struct userdb_file db;
    userdb_parse(text, sizeof(text) - 1, &db);
    assert_int_equal(db.nerrors, 0);
    struct petrel_userdb_entry *e;
    assert_int_equal(userdb_lookup_entry(&db, "alice@example.test", false, &e),
                     PETREL_USERDB_FOUND);
    assert_int_equal(e->kind, PETREL_USERDB_ACCOUNT);
    assert_int_equal(e->quota_bytes, 1024LL * 1024 * 1024);
    assert_int_equal(e->quota_messages, 100);
    assert_int_equal(e->ntargets, 1);
    assert_string_equal(e->targets[0], "carol@far.test");
    assert_true(e->keep);
    assert_null(e->hash);
    userdb_entry_free(e);

    assert_int_equal(userdb_lookup_entry(&db, "sales@example.test", false, &e),
                     PETREL_USERDB_FOUND);
    assert_int_equal(e->kind, PETREL_USERDB_ALIAS);
    assert_int_equal(e->ntargets, 2);
    assert_false(e->catchall);
    userdb_entry_free(e);

    /* Unknown local part: the catch-all, but only in its domain. */
    assert_int_equal(userdb_lookup_entry(&db, "nobody@example.test", false, &e),
                     PETREL_USERDB_FOUND);
    assert_true(e->catchall);
    assert_string_equal(e->address, "nobody@example.test");
    assert_string_equal(e->targets[0], "postmaster@example.test");
    userdb_entry_free(e);
    assert_int_equal(userdb_lookup_entry(&db, "nobody@other.test", false, &e),
                     PETREL_USERDB_NOT_FOUND);
    assert_int_equal(userdb_lookup_entry(&db, "x@elsewhere.test", false, &e),
                     PETREL_USERDB_NOT_FOUND);

    /* The login view: accounts only, with the hash; never a catch-all. */
    assert_int_equal(userdb_lookup_entry(&db, "bob@example.test", true, &e), PETREL_USERDB_FOUND);
    assert_true(e->disabled);
    assert_string_equal(e->hash, HASH);
    userdb_entry_free(e);
    assert_int_equal(userdb_lookup_entry(&db, "sales@example.test", true, &e),
                     PETREL_USERDB_NOT_FOUND);
    assert_int_equal(userdb_lookup_entry(&db, "nobody@example.test", true, &e),
                     PETREL_USERDB_NOT_FOUND);
    userdb_free(&db);
}

static void test_canonical(void **state)
{
    char out[USERDB_ADDRESS_MAX + 1];
    assert_true(userdb_canonical("Alice", "Example.Test", out, sizeof(out)));
    assert_string_equal(out, "alice@example.test");
    assert_true(userdb_canonical("Bob@Other.TEST", "example.test", out, sizeof(out)));
    assert_string_equal(out, "bob@other.test");
    assert_false(userdb_canonical("a b", "example.test", out, sizeof(out)));
    assert_false(userdb_canonical("", "example.test", out, sizeof(out)));
}

static void write_text(const char *path, const char *content)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

/* A fresh directory holding the path of a users file (not yet written). */
static void temp_users(char *dir, char *path, size_t size)
{
    assert_non_null(mkdtemp(dir));
    snprintf(path, size, "%s/users", dir);
}

/* check_interval as a test's configuration would give it. */
static long long interval_ms;

static bool has_account(struct userdb_source *src, const char *address)
{
    struct userdb_snapshot *s = userdb_source_get(src, interval_ms);
    bool found = userdb_find(&s->db, USERDB_ACCOUNT, address) != NULL;
    userdb_snapshot_unref(s);
    return found;
}

static void test_reload_follows_the_file(void **state)
{
    char dir[] = "/tmp/petrel-udb-XXXXXX", path[300];
    temp_users(dir, path, sizeof(path));
    struct userdb_source src;
    const char *err;
    interval_ms = 0;
    /* No file yet: an empty database, not an error. */
    assert_int_equal(userdb_source_open(&src, path, "test", &err), 0);
    assert_false(has_account(&src, "alice@example.test"));

    write_text(path, text);
    /* Interval 0: every lookup checks; the new inode is noticed. */
    assert_true(has_account(&src, "alice@example.test"));
    assert_int_equal(userdb_source_reload(&src, false), 0); /* unchanged */

    /* A reader keeps its snapshot across a reload. */
    struct userdb_snapshot *held = userdb_source_get(&src, interval_ms);
    write_text(path, "domain example.test\n# bad line 2\nbogus line\n"
                     "account dave@example.test " HASH "\n");
    assert_int_equal(userdb_source_reload(&src, false), 1);
    assert_non_null(userdb_find(&held->db, USERDB_ACCOUNT, "alice@example.test"));
    userdb_snapshot_unref(held);
    assert_false(has_account(&src, "alice@example.test"));
    assert_true(has_account(&src, "dave@example.test"));
    struct userdb_snapshot *s = userdb_source_get(&src, interval_ms);
    assert_int_equal(s->db.nerrors, 1);
    assert_int_equal(s->db.errors[0].line, 3); /* the bad line is reported by number */
    userdb_snapshot_unref(s);

    /* An unreadable file keeps the old data. */
    if (geteuid() != 0) {
        write_text(path, text);
        chmod(path, 0);
        assert_int_equal(userdb_source_reload(&src, false), -1);
        assert_true(has_account(&src, "dave@example.test"));
        chmod(path, 0600);
        assert_int_equal(userdb_source_reload(&src, false), 1);
        assert_true(has_account(&src, "alice@example.test"));
    }
    userdb_source_close(&src);
    unlink(path);
    rmdir(dir);
}

static void test_check_interval(void **state)
{
    char dir[] = "/tmp/petrel-udb-XXXXXX", path[300];
    temp_users(dir, path, sizeof(path));
    write_text(path, "domain example.test\n");
    struct userdb_source src;
    const char *err;
    /* An hour: lookups must not stat the file again. */
    interval_ms = 3600 * 1000;
    assert_int_equal(userdb_source_open(&src, path, "test", &err), 0);
    write_text(path, text);
    assert_false(has_account(&src, "alice@example.test"));
    /* A forced reload (SIGHUP) does not wait. */
    assert_int_equal(userdb_source_reload(&src, true), 1);
    assert_true(has_account(&src, "alice@example.test"));
    userdb_source_close(&src);
    unlink(path);
    rmdir(dir);
}

/* Only a regular file, read whole, replaces the snapshot: a directory or
 * a FIFO in its place is an error (and must not hang), the old data stays. */
static void test_not_a_regular_file(void **state)
{
    char dir[] = "/tmp/petrel-udb-XXXXXX", path[300];
    temp_users(dir, path, sizeof(path));
    write_text(path, text);
    struct userdb_source src;
    const char *err;
    interval_ms = 0;
    assert_int_equal(userdb_source_open(&src, path, "test", &err), 0);
    assert_true(has_account(&src, "alice@example.test"));

    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(userdb_source_reload(&src, true), -1);
    assert_true(has_account(&src, "alice@example.test"));
    rmdir(path);

    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(userdb_source_reload(&src, true), -1);
    assert_true(has_account(&src, "alice@example.test"));
    unlink(path);
    userdb_source_close(&src);
    rmdir(dir);
}

/* A forced reload that finds another reload running is done by that one
 * when it finishes, not dropped. */
static void test_forced_reload_not_lost(void **state)
{
    char dir[] = "/tmp/petrel-udb-XXXXXX", path[300];
    temp_users(dir, path, sizeof(path));
    write_text(path, text);
    struct userdb_source src;
    const char *err;
    interval_ms = 3600 * 1000;
    assert_int_equal(userdb_source_open(&src, path, "test", &err), 0);
    /* As if another thread were reloading: the SIGHUP cannot run now... */
    atomic_store(&src.reloading, true);
    assert_int_equal(userdb_source_reload(&src, true), 0);
    atomic_store(&src.reloading, false);
    /* ...so the next pass, for an unchanged file, is forced: it re-reads. */
    assert_int_equal(userdb_source_reload(&src, false), 1);
    assert_int_equal(userdb_source_reload(&src, false), 0);
    userdb_source_close(&src);
    unlink(path);
    rmdir(dir);
}

struct waiter {
    struct userdb_source *src;
    _Atomic bool done;
    int r;
    char why[300];
};

static void *reload_now_thread(void *arg)
{
    struct waiter *w = arg;
    w->r = userdb_source_reload_now(w->src, w->why, sizeof(w->why));
    atomic_store(&w->done, true);
    return NULL;
}

/* userdb_source_reload_now returns once a pass that started after it was
 * called has swapped the new file in, also when another thread was
 * reloading at the time; a file it cannot read is refused with why. */
static void test_reload_now(void **state)
{
    char dir[] = "/tmp/petrel-udb-XXXXXX", path[300], why[300];
    temp_users(dir, path, sizeof(path));
    write_text(path, "domain example.test\n");
    struct userdb_source src;
    const char *err;
    interval_ms = 3600 * 1000;
    assert_int_equal(userdb_source_open(&src, path, "test", &err), 0);
    write_text(path, text);
    assert_int_equal(userdb_source_reload_now(&src, why, sizeof(why)), 1);
    assert_true(has_account(&src, "alice@example.test"));

    /* Another thread is at a reload (that may have read the old file): the
     * call waits for a pass of its own. */
    atomic_store(&src.reloading, true);
    struct waiter w = {.src = &src};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reload_now_thread, &w), 0);
    usleep(50 * 1000);
    assert_false(atomic_load(&w.done));
    write_text(path, "domain example.test\naccount dave@example.test " HASH "\n");
    atomic_store(&src.reloading, false);
    pthread_join(t, NULL);
    assert_int_equal(w.r, 1);
    assert_true(has_account(&src, "dave@example.test"));

    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(userdb_source_reload_now(&src, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "not a regular file"));
    assert_true(has_account(&src, "dave@example.test"));
    rmdir(path);
    userdb_source_close(&src);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_reload_follows_the_file),
        cmocka_unit_test(test_check_interval),
        cmocka_unit_test(test_not_a_regular_file),
        cmocka_unit_test(test_forced_reload_not_lost),
        cmocka_unit_test(test_reload_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
