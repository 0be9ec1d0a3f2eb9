/* Concurrency: threads deliver, flag and expunge in one folder (each with
 * its own account handle) while another reads changes and watches
 * notifications. Afterwards the index must match the files exactly, no UID
 * may repeat, and each thread's UIDs must increase in delivery order.
 * Bounded in count; no timing assertions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_storage_util.h"

#define DELIVERERS 4
#define PER_THREAD 60
#define READER_MAX_ROUNDS 100000

static atomic_int deliverers_done;
static atomic_int wakeups;
static atomic_int failures;

struct deliverer {
    pthread_t t;
    unsigned id;
    uint32_t uids[PER_THREAD];
};

static void *deliver_main(void *arg)
{
    struct deliverer *d = arg;
    struct petrel_mailbox *m;
    if (ops->mailbox_open("shared", &m) != PETREL_STORAGE_OK) {
        atomic_fetch_add(&failures, 1);
        atomic_fetch_add(&deliverers_done, 1);
        return NULL;
    }
    for (unsigned i = 0; i < PER_THREAD; i++)
        if (test_deliver(m, NULL, d->id * 1000 + i, &d->uids[i]) != PETREL_STORAGE_OK)
            atomic_fetch_add(&failures, 1);
    ops->mailbox_close(m);
    atomic_fetch_add(&deliverers_done, 1);
    return NULL;
}

/* Flags random ranges; marks every fifth UID deleted and expunges. */
static void *flag_main(void *arg)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    unsigned seed = 7;
    (void)arg;
    if (ops->mailbox_open("shared", &m) != PETREL_STORAGE_OK ||
        ops->folder_open(m, "INBOX", &f) != PETREL_STORAGE_OK) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    for (int round = 0; round < 200 && atomic_load(&deliverers_done) < DELIVERERS; round++) {
        uint32_t lo = (uint32_t)(rand_r(&seed) % (DELIVERERS * PER_THREAD)) + 1;
        struct petrel_storage_uid_range r = {lo, lo + 3};
        struct petrel_storage_uid_set set = {&r, 1};
        struct petrel_storage_store st = {
            PETREL_STORAGE_FLAGS_ADD, lo % 5 == 0 ? PETREL_STORAGE_DELETED : PETREL_STORAGE_SEEN,
            "$Seen1", 0};
        if (ops->store(f, &set, &st, NULL, NULL) != PETREL_STORAGE_OK)
            atomic_fetch_add(&failures, 1);
        if (round % 10 == 9 && ops->expunge(f, NULL, NULL, NULL) != PETREL_STORAGE_OK)
            atomic_fetch_add(&failures, 1);
    }
    ops->folder_close(f);
    ops->mailbox_close(m);
    return NULL;
}

static int check_msg(void *arg, const struct petrel_storage_msg *msg)
{
    uint32_t *last = arg;
    if (msg->uid <= *last)
        atomic_fetch_add(&failures, 1);
    *last = msg->uid;
    return 0;
}

static void *reader_main(void *arg)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    uint64_t modseq = 0;
    (void)arg;
    if (ops->mailbox_open("shared", &m) != PETREL_STORAGE_OK ||
        ops->folder_open(m, "INBOX", &f) != PETREL_STORAGE_OK) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    for (int i = 0; i < READER_MAX_ROUNDS && atomic_load(&deliverers_done) < DELIVERERS; i++) {
        struct petrel_storage_status st;
        uint32_t last = 0;
        if (ops->status(f, &st) != PETREL_STORAGE_OK ||
            ops->changes_since(f, modseq, check_msg, NULL, &last) != PETREL_STORAGE_OK)
            atomic_fetch_add(&failures, 1);
        if (st.highestmodseq < modseq) /* MODSEQ never goes back */
            atomic_fetch_add(&failures, 1);
        modseq = st.highestmodseq;
        if (i % 8 == 0)
            ops->sync(f);
    }
    ops->folder_close(f);
    ops->mailbox_close(m);
    return NULL;
}

static void wake_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wakeups, 1);
}

static void test_concurrent(void **state)
{
    struct deliverer d[DELIVERERS];
    pthread_t flagger, reader;
    struct petrel_mailbox *m;
    struct petrel_storage_watch *w;
    (void)state;
    test_root_make(false);
    assert_int_equal(ops->mailbox_open("shared", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->watch(m, "INBOX", wake_fn, NULL, &w), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < DELIVERERS; i++) {
        d[i].id = i + 1;
        assert_int_equal(pthread_create(&d[i].t, NULL, deliver_main, &d[i]), 0);
    }
    assert_int_equal(pthread_create(&flagger, NULL, flag_main, NULL), 0);
    assert_int_equal(pthread_create(&reader, NULL, reader_main, NULL), 0);
    for (unsigned i = 0; i < DELIVERERS; i++)
        pthread_join(d[i].t, NULL);
    pthread_join(flagger, NULL);
    pthread_join(reader, NULL);
    assert_int_equal(atomic_load(&failures), 0);
    assert_true(atomic_load(&wakeups) >= DELIVERERS * PER_THREAD);

    /* Per thread, UIDs increase in delivery order; across threads, no
     * UID is handed out twice. */
    static uint8_t used[DELIVERERS * PER_THREAD + 2];
    for (unsigned i = 0; i < DELIVERERS; i++)
        for (unsigned j = 0; j < PER_THREAD; j++) {
            uint32_t u = d[i].uids[j];
            assert_true(u >= 1 && u <= DELIVERERS * PER_THREAD);
            if (j > 0)
                assert_true(u > d[i].uids[j - 1]);
            assert_int_equal(used[u], 0);
            used[u] = 1;
        }

    /* Index and files agree: every file once, every row has its file. */
    struct petrel_folder *f;
    struct test_msgs t = {.n = 0};
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->messages(f, NULL, test_collect, &t), PETREL_STORAGE_OK);
    char dir[PATH_MAX];
    static uint32_t files[4096];
    test_folder_dir("shared", "", dir, sizeof(dir));
    size_t nf = test_count_files(dir, files, 4096);
    assert_int_equal(nf, t.n);
    for (size_t i = 0; i < nf; i++) {
        size_t k = 0;
        while (k < t.n && t.uid[k] != files[i])
            k++;
        assert_true(k < t.n);
    }
    for (size_t i = 1; i < t.n; i++)
        assert_true(t.uid[i] > t.uid[i - 1]);
    /* A rescan finds nothing to adopt or drop. */
    struct petrel_storage_status before, after;
    ops->status(f, &before);
    assert_int_equal(ops->sync(f), PETREL_STORAGE_OK);
    ops->status(f, &after);
    assert_int_equal(after.highestmodseq, before.highestmodseq);
    assert_int_equal(after.messages, t.n);
    ops->folder_close(f);
    ops->unwatch(w);
    ops->mailbox_close(m);
    test_root_remove();
}

/* Two threads copy in opposite directions (A -> B and B -> A) at once.
 * Before the fix a copy held the source lock while taking the
 * destination's: this hung. Bounded rounds, no timing. */
#define COPY_ROUNDS 40
#define COPY_MSGS 5

struct copier {
    pthread_t t;
    const char *from, *to;
};

static void *copy_main(void *arg)
{
    struct copier *c = arg;
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    uint32_t dv;
    if (ops->mailbox_open("cross", &m) != PETREL_STORAGE_OK ||
        ops->folder_open(m, c->from, &f) != PETREL_STORAGE_OK) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    struct petrel_storage_uid_range r = {1, COPY_MSGS};
    struct petrel_storage_uid_set set = {&r, 1};
    for (int i = 0; i < COPY_ROUNDS; i++)
        if (ops->copy(f, &set, c->to, NULL, NULL, &dv) != PETREL_STORAGE_OK)
            atomic_fetch_add(&failures, 1);
    ops->folder_close(f);
    ops->mailbox_close(m);
    return NULL;
}

static void test_copy_cross(void **state)
{
    struct petrel_mailbox *m;
    struct copier c[2] = {{.from = "Drafts", .to = "Sent"}, {.from = "Sent", .to = "Drafts"}};
    struct petrel_storage_status st;
    uint32_t uid;
    (void)state;
    test_root_make(false);
    atomic_store(&failures, 0);
    assert_int_equal(ops->mailbox_open("cross", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < COPY_MSGS; i++) {
        assert_int_equal(test_deliver(m, "Drafts", i, &uid), PETREL_STORAGE_OK);
        assert_int_equal(test_deliver(m, "Sent", i, &uid), PETREL_STORAGE_OK);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&c[i].t, NULL, copy_main, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(c[i].t, NULL);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(ops->folder_status(m, "Drafts", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, COPY_MSGS * (COPY_ROUNDS + 1));
    assert_int_equal(ops->folder_status(m, "Sent", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, COPY_MSGS * (COPY_ROUNDS + 1));
    ops->mailbox_close(m);
    test_root_remove();
}

/* STORE keeps renaming the files (flag changes) while another thread
 * copies them: every copy must copy every message (none silently skipped
 * because its file name changed). */
static atomic_int copies_done;

static void *toggle_main(void *arg)
{
    struct petrel_folder *f = arg;
    for (int i = 0; i < 100000 && !atomic_load(&copies_done); i++) {
        struct petrel_storage_store st = {i % 2 ? PETREL_STORAGE_FLAGS_ADD
                                                : PETREL_STORAGE_FLAGS_REMOVE,
                                          PETREL_STORAGE_SEEN | PETREL_STORAGE_FLAGGED, NULL, 0};
        if (ops->store(f, NULL, &st, NULL, NULL) != PETREL_STORAGE_OK)
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

struct count {
    int n;
};

static void count_map(void *arg, uint32_t s, uint32_t d)
{
    (void)s;
    (void)d;
    ((struct count *)arg)->n++;
}

static void test_copy_during_store(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f, *g;
    pthread_t t;
    uint32_t uid, dv;
    (void)state;
    test_root_make(false);
    atomic_store(&failures, 0);
    atomic_store(&copies_done, 0);
    assert_int_equal(ops->mailbox_open("toggle", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < COPY_MSGS; i++)
        assert_int_equal(test_deliver(m, NULL, i, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &g), PETREL_STORAGE_OK);
    assert_int_equal(pthread_create(&t, NULL, toggle_main, g), 0);
    for (int i = 0; i < COPY_ROUNDS; i++) {
        struct count c = {0};
        assert_int_equal(ops->copy(f, NULL, "Archive", count_map, &c, &dv), PETREL_STORAGE_OK);
        /* Copies land in Archive, not INBOX: the source keeps COPY_MSGS. */
        assert_int_equal(c.n, COPY_MSGS);
    }
    atomic_store(&copies_done, 1);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&failures), 0);
    struct petrel_storage_status st;
    assert_int_equal(ops->folder_status(m, "Archive", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, COPY_MSGS * COPY_ROUNDS);
    char dir[PATH_MAX];
    test_folder_dir("toggle", ".Archive", dir, sizeof(dir));
    assert_int_equal(test_count_files(dir, NULL, 0), COPY_MSGS * COPY_ROUNDS);
    ops->folder_close(g);
    ops->folder_close(f);
    ops->mailbox_close(m);
    test_root_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_copy_cross),
        cmocka_unit_test(test_copy_during_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
