/* The message on its way in (message.c, space.c) without a server: what
 * errno says when a write fails, the spool floor shared by every message
 * being written, MAIL's free-space look kept off the caller's thread,
 * local delivery's copy where O_TMPFILE is missing, and the pipeline
 * asking the userdb once per address, committed or retried. statvfs and open are
 * wrapped (-Wl,--wrap=...) to count the looks and refuse O_TMPFILE. */
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
#include <sys/statvfs.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/mem.h>

#include "processing.h"

int __real_statvfs(const char *path, struct statvfs *st);
int __wrap_statvfs(const char *path, struct statvfs *st);

static _Atomic unsigned statvfs_calls;

int __wrap_statvfs(const char *path, struct statvfs *st)
{
    statvfs_calls++;
    return __real_statvfs(path, st);
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

static bool no_tmpfile; /* O_TMPFILE fails as on a file system without it */

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return __real_open(path, flags, mode);
}

static char dir[64];

static struct proc_settings settings;

static int setup(void **state)
{
    (void)state;
    petrel_strlcpy(dir, "test_message.XXXXXX", sizeof(dir));
    assert_non_null(mkdtemp(dir));
    assert_true(realpath(dir, proc_env.queue) != NULL);
    char data[PATH_MAX];
    assert_true(queue_path(data, sizeof(data), proc_env.queue, "data", NULL));
    assert_int_equal(mkdir(data, 0700), 0);
    assert_true(queue_path(data, sizeof(data), proc_env.queue, "tmp", NULL));
    assert_int_equal(mkdir(data, 0700), 0);
    petrel_strlcpy(proc_env.hostname, "mx.example.test", sizeof(proc_env.hostname));
    /* No daemon, no generation: the pipeline reads these. */
    memset(&settings, 0, sizeof(settings));
    settings.memory_limit = 4096; /* every message below spills at once */
    settings.max_hops = 50;
    settings.min_free_space = 0;
    proc_env.unit_settings = &settings;
    proc_space_changed(0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static struct petrel_queue_msg *begin(void)
{
    static const struct petrel_envelope_rcpt rcpt = {"bob@example.test", NULL, 0};
    struct petrel_envelope env = {.mail_from = "alice@example.test", .rcpts = &rcpt, .nrcpts = 1};
    return proc_begin(&env);
}

/* A write refused for some other reason than space never says ENOSPC,
 * whatever errno held before: smtp_in would answer 452 4.3.1. */
static void test_write_errno_is_deliberate(void **state)
{
    (void)state;
    char data[PATH_MAX];
    assert_true(queue_path(data, sizeof(data), proc_env.queue, "data", NULL));
    assert_int_equal(rmdir(data), 0); /* the spill cannot open its file */
    struct petrel_queue_msg *m = begin();
    static char body[8192];
    memset(body, 'x', sizeof(body));
    assert_true(proc_write(m, "Subject: x\r\n\r\n", 14));
    errno = ENOSPC;
    assert_false(proc_write(m, body, sizeof(body)));
    assert_int_not_equal(errno, ENOSPC);
    assert_int_not_equal(errno, 0);
    errno = ENOSPC; /* stale, from anything the worker did before */
    assert_false(proc_write(m, body, sizeof(body)));
    assert_int_not_equal(errno, ENOSPC);
    assert_int_not_equal(errno, 0);
    proc_abort(m);
}

/* Many messages written at once share the floor: together they stop
 * about where one would, not one check interval each later. */
static void test_space_floor_shared(void **state)
{
    (void)state;
    enum { MSGS = 12, CHUNK = 65536, ROUNDS = 16 };
    struct statvfs st;
    assert_int_equal(__real_statvfs(proc_env.queue, &st), 0);
    uint64_t avail = (uint64_t)st.f_bavail * st.f_frsize;
    if (avail < (64u << 20))
        skip();
    /* Half of min_free_space: 2 MiB below what is free now. */
    settings.min_free_space = (long long)(avail - (2u << 20)) * 2;
    proc_space_changed(0);
    struct petrel_queue_msg *m[MSGS];
    bool ok[MSGS];
    for (int i = 0; i < MSGS; i++) {
        m[i] = begin();
        ok[i] = proc_write(m[i], "Subject: x\r\n\r\n", 14);
    }
    static char chunk[CHUNK];
    memset(chunk, 'x', sizeof(chunk));
    uint64_t accepted = 0;
    unsigned refused = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < MSGS; i++) {
            if (!ok[i])
                continue;
            ok[i] = proc_write(m[i], chunk, sizeof(chunk));
            if (ok[i])
                accepted += CHUNK;
            else {
                assert_int_equal(errno, ENOSPC);
                refused++;
            }
        }
    for (int i = 0; i < MSGS; i++)
        proc_abort(m[i]);
    /* 12 MiB offered, 2 MiB above the floor: a little slack, never a MiB
     * per message. No lower bound: other writers on this file system
     * (a parallel build) may take the 2 MiB first. */
    assert_int_equal(refused, MSGS);
    assert_true(accepted <= (4u << 20));
}

/* MAIL (an I/O thread) looks at the spool from a cache; a data file
 * removed (proc_space_changed) does not make every next MAIL look. */
static void test_has_room_cached(void **state)
{
    (void)state;
    settings.min_free_space = 1;
    assert_true(proc_has_room(0)); /* fills the cache */
    unsigned before = statvfs_calls;
    for (int i = 0; i < 100; i++) {
        proc_space_changed(0);
        assert_true(proc_has_room(1000));
    }
    assert_true(statvfs_calls - before <= 1);
}

/* --- local delivery with a store that keeps what it got --- */

static struct petrel_buf stored;

static int fake_lookup(const char *address, struct petrel_userdb_entry **entry_r,
                       const char **error_r)
{
    (void)address, (void)error_r;
    *entry_r = petrel_calloc(1, sizeof(**entry_r));
    (*entry_r)->kind = PETREL_USERDB_ACCOUNT;
    return PETREL_USERDB_FOUND;
}

static void fake_entry_free(struct petrel_userdb_entry *e) { free(e); }

static int fake_open(const char *user, struct petrel_mailbox **mbox_r)
{
    (void)user;
    *mbox_r = (struct petrel_mailbox *)&stored;
    return PETREL_STORAGE_OK;
}

static void fake_close(struct petrel_mailbox *mbox) { (void)mbox; }

static int fake_deliver(struct petrel_mailbox *mbox, const char *folder,
                        const struct petrel_storage_source *src,
                        const struct petrel_storage_quota *quota, uint32_t *uid_r,
                        uint32_t *uidvalidity_r)
{
    (void)mbox, (void)folder, (void)quota;
    *uid_r = *uidvalidity_r = 1;
    if (src->fd < 0)
        return petrel_buf_append(&stored, src->data, src->len) ? PETREL_STORAGE_OK
                                                               : PETREL_STORAGE_TEMPFAIL;
    char buf[4096];
    for (uint64_t left = src->fd_len; left > 0;) {
        ssize_t n = read(src->fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));
        if (n <= 0)
            return PETREL_STORAGE_TEMPFAIL;
        petrel_buf_append(&stored, buf, (size_t)n);
        left -= (uint64_t)n;
    }
    return PETREL_STORAGE_OK;
}

static const char *fake_strerror(int err)
{
    (void)err;
    return "fake store error";
}

/* A message in a data file is copied for each recipient into an unnamed
 * file: with a mkstemp file removed at once where O_TMPFILE fails. */
static void test_deliver_without_o_tmpfile(void **state)
{
    (void)state;
    static const struct petrel_userdb_ops userdb = {
        .size = sizeof(userdb), .lookup = fake_lookup, .entry_free = fake_entry_free};
    static struct petrel_storage_ops storage;
    storage = (struct petrel_storage_ops){.size = sizeof(storage),
                                          .mailbox_open = fake_open,
                                          .mailbox_close = fake_close,
                                          .deliver = fake_deliver,
                                          .strerror = fake_strerror};
    proc_env.userdb = &userdb;
    proc_env.storage = &storage;
    static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
    char path[PATH_MAX];
    assert_true(queue_path(path, sizeof(path), proc_env.queue, "data", "message"));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, msg, sizeof(msg) - 1), (ssize_t)(sizeof(msg) - 1));
    struct queue_envelope env;
    queue_envelope_init(&env);
    env.from = petrel_strdup("alice@example.test");
    queue_envelope_add(&env, RCPT_PENDING, ROUTE_LOCAL, 0, "bob@example.test", NULL, NULL);
    struct proc_content c = {.set = &settings,
                             .id = "0123456789ABCDEFGHIJ",
                             .env = &env,
                             .fd = fd,
                             .len = sizeof(msg) - 1};
    petrel_buf_init(&stored, 65536);
    no_tmpfile = true;
    proc_deliver_local(&c, &env, false);
    no_tmpfile = false;
    assert_int_equal(env.rcpts[0].state, RCPT_DELIVERED);
    static const char want[] =
        "Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\n";
    assert_int_equal(stored.len, sizeof(want) - 1 + sizeof(msg) - 1);
    assert_memory_equal(petrel_buf_head(&stored), want, sizeof(want) - 1);
    assert_memory_equal(petrel_buf_head(&stored) + sizeof(want) - 1, msg, sizeof(msg) - 1);
    /* The copy left nothing behind in tmp/. */
    char cmd[PATH_MAX + 64];
    assert_true(queue_path(path, sizeof(path), proc_env.queue, "tmp", NULL));
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    petrel_buf_free(&stored);
    queue_envelope_free(&env);
    close(fd);
}

/* --- one userdb lookup per address: expansion's answer reaches delivery --- */

static unsigned lookups;
static struct petrel_storage_quota quota_seen;

/* bob and carol are accounts with a quota; team is an alias of carol. */
static int counting_lookup(const char *address, struct petrel_userdb_entry **entry_r,
                           const char **error_r)
{
    (void)error_r;
    static char *const team[] = {"carol@example.test", NULL};
    lookups++;
    bool alias = strcmp(address, "team@example.test") == 0;
    if (!alias && strcmp(address, "bob@example.test") != 0 &&
        strcmp(address, "carol@example.test") != 0)
        return PETREL_USERDB_NOT_FOUND;
    struct petrel_userdb_entry *e = petrel_calloc(1, sizeof(*e));
    e->kind = alias ? PETREL_USERDB_ALIAS : PETREL_USERDB_ACCOUNT;
    e->address = petrel_strdup(address);
    e->quota_bytes = 12345;
    e->quota_messages = 67;
    e->targets = alias ? (char **)team : NULL;
    e->ntargets = alias ? 1 : 0;
    *entry_r = e;
    return PETREL_USERDB_FOUND;
}

static void counting_entry_free(struct petrel_userdb_entry *e)
{
    free(e->address);
    free(e);
}

static bool all_local(const char *domain)
{
    (void)domain;
    return true;
}

static int quota_deliver(struct petrel_mailbox *mbox, const char *folder,
                         const struct petrel_storage_source *src,
                         const struct petrel_storage_quota *quota, uint32_t *uid_r,
                         uint32_t *uidvalidity_r)
{
    assert_non_null(quota);
    quota_seen = *quota;
    return fake_deliver(mbox, folder, src, quota, uid_r, uidvalidity_r);
}

static void use_counting_services(void)
{
    static const struct petrel_userdb_ops userdb = {.size = sizeof(userdb),
                                                    .domain_is_local = all_local,
                                                    .lookup = counting_lookup,
                                                    .entry_free = counting_entry_free};
    static struct petrel_storage_ops storage;
    storage = (struct petrel_storage_ops){.size = sizeof(storage),
                                          .mailbox_open = fake_open,
                                          .mailbox_close = fake_close,
                                          .deliver = quota_deliver,
                                          .strerror = fake_strerror};
    proc_env.userdb = &userdb;
    proc_env.storage = &storage;
    settings.max_expansion = 1000;
    settings.lifetime = 86400;
    lookups = 0;
    quota_seen = (struct petrel_storage_quota){0, 0};
    petrel_buf_init(&stored, 65536);
}

/* A message SMTP commits: bob (an account) and team (an alias of carol)
 * take three lookups, one per address, and delivery gets the quota that
 * expansion read. */
static void test_commit_one_lookup_per_address(void **state)
{
    (void)state;
    use_counting_services();
    settings.direct_delivery = true;
    static const struct petrel_envelope_rcpt rcpts[] = {{"bob@example.test", NULL, 0},
                                                        {"team@example.test", NULL, 0}};
    struct petrel_envelope env = {.mail_from = "alice@example.test", .rcpts = rcpts, .nrcpts = 2};
    struct petrel_queue_msg *m = proc_begin(&env);
    assert_true(proc_write(m, "Subject: x\r\n\r\nbody\r\n", 20));
    struct petrel_queue_reply reply;
    proc_commit(m, &reply);
    assert_int_equal(reply.code, 250);
    assert_int_equal(lookups, 3);
    assert_int_equal(quota_seen.bytes, 12345);
    assert_int_equal(quota_seen.messages, 67);
    assert_non_null(memmem(petrel_buf_head(&stored), stored.len, "Delivered-To: carol@", 20));
    petrel_buf_free(&stored);
}

static void retry_finished(void *arg, bool recorded) { *(int *)arg = recorded ? 1 : -1; }

/* A queue entry whose recipient was expanded at an earlier attempt: the
 * one lookup is delivery's, and the entry goes once delivered. */
static void test_retry_one_lookup(void **state)
{
    (void)state;
    use_counting_services();
    static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
    char path[PATH_MAX];
    assert_true(queue_path(path, sizeof(path), proc_env.queue, "data", "0123456789ABCDEFGHIJ"));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, msg, sizeof(msg) - 1), (ssize_t)(sizeof(msg) - 1));
    struct queue_envelope env;
    queue_envelope_init(&env);
    petrel_strlcpy(env.id, "0123456789ABCDEFGHIJ", sizeof(env.id));
    env.from = petrel_strdup("alice@example.test");
    env.size = sizeof(msg) - 1;
    env.arrival = time(NULL);
    queue_envelope_add(&env, RCPT_DEFERRED, ROUTE_LOCAL, 0, "bob@example.test", NULL, NULL);
    int ended = 0;
    proc_pipeline_retry(&settings, &env, fd, false, retry_finished, &ended);
    assert_int_equal(ended, 1); /* recorded, before the call returned: nothing remote */
    assert_int_equal(env.rcpts[0].state, RCPT_DELIVERED);
    assert_int_equal(lookups, 1);
    assert_int_equal(quota_seen.bytes, 12345);
    assert_int_equal(access(path, F_OK), -1); /* removed from the queue */
    petrel_buf_free(&stored);
    queue_envelope_free(&env);
    close(fd);
}

/* A fake transport: keeps what it is given, answers when the test says. */
static struct petrel_transport_msg *taken[4];
static size_t ntaken;
static bool transport_busy;

static bool fake_submit(struct petrel_transport_msg *msg)
{
    if (transport_busy || ntaken == 4)
        return false;
    taken[ntaken++] = msg;
    return true;
}

static void answer(struct petrel_transport_msg *m, size_t i, enum petrel_transport_status st,
                   const char *reason)
{
    m->rcpts[i].status = st;
    petrel_strlcpy(m->rcpts[i].reason, reason, sizeof(m->rcpts[i].reason));
}

/* A retry with remote recipients of two domains and a local one: the
 * local one is delivered at once; the remote ones go to the transport,
 * one message a domain; the attempt ends only when both are back, with
 * each recipient's outcome in the envelope, the deferred one kept. */
static void test_retry_waits_for_the_transport(void **state)
{
    (void)state;
    use_counting_services();
    static const struct petrel_transport_ops transport = {.submit = fake_submit};
    proc_env.transport = &transport;
    settings.retry_min = 300;
    settings.retry_max = 3600;
    ntaken = 0;
    transport_busy = false;
    char path[PATH_MAX];
    assert_true(queue_path(path, sizeof(path), proc_env.queue, "active", NULL));
    assert_int_equal(mkdir(path, 0700), 0);
    char sent[PATH_MAX];
    assert_true(queue_path(sent, sizeof(sent), proc_env.queue, "sent", NULL));
    assert_int_equal(mkdir(sent, 0700), 0);
    assert_true(queue_path(sent, sizeof(sent), proc_env.queue, "sent", "0123456789ABCDEFGHIJ"));
    static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
    assert_true(queue_path(path, sizeof(path), proc_env.queue, "data", "0123456789ABCDEFGHIJ"));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, msg, sizeof(msg) - 1), (ssize_t)(sizeof(msg) - 1));
    struct queue_envelope env;
    queue_envelope_init(&env);
    petrel_strlcpy(env.id, "0123456789ABCDEFGHIJ", sizeof(env.id));
    env.from = petrel_strdup("alice@example.test");
    env.size = sizeof(msg) - 1;
    env.arrival = time(NULL);
    queue_envelope_add(&env, RCPT_PENDING, ROUTE_REMOTE, 0, "x@Far.test", NULL, NULL);
    queue_envelope_add(&env, RCPT_DEFERRED, ROUTE_LOCAL, 0, "bob@example.test", NULL, NULL);
    queue_envelope_add(&env, RCPT_PENDING, ROUTE_REMOTE, 0, "y@other.test", NULL, NULL);
    queue_envelope_add(&env, RCPT_DEFERRED, ROUTE_REMOTE, PETREL_DSN_NEVER, "z@far.test", NULL,
                       "rfc822;z@far.test");
    int ended = 0;
    proc_pipeline_retry(&settings, &env, fd, false, retry_finished, &ended);
    assert_int_equal(ended, 0); /* waiting for the transport */
    assert_int_equal(env.rcpts[1].state, RCPT_DELIVERED);
    assert_int_equal(ntaken, 2);
    struct petrel_transport_msg *far = taken[0], *other = taken[1];
    assert_string_equal(far->domain, "far.test");
    assert_int_equal(far->nrcpts, 2);
    assert_string_equal(far->rcpts[1].address, "z@far.test");
    assert_string_equal(far->rcpts[1].orcpt, "rfc822;z@far.test");
    assert_int_equal(far->rcpts[1].notify, PETREL_DSN_NEVER);
    assert_string_equal(far->from, "alice@example.test");
    assert_int_equal(far->data_fd, fd);
    assert_int_equal(far->size, sizeof(msg) - 1);
    assert_string_equal(other->domain, "other.test");
    answer(far, 0, PETREL_TRANSPORT_DELIVERED, "250 2.0.0 ok");
    answer(far, 1, PETREL_TRANSPORT_FAILED, "550 5.1.1 no such user");
    far->done(far);
    assert_int_equal(ended, 0); /* one domain still out */
    /* What far took is noted at once, before the envelope says so. */
    char note[64] = "";
    int nfd = open(sent, O_RDONLY);
    assert_true(nfd >= 0);
    assert_true(read(nfd, note, sizeof(note) - 1) > 0);
    close(nfd);
    assert_string_equal(note, "x@Far.test\n");
    answer(other, 0, PETREL_TRANSPORT_DEFERRED, "451 4.3.0 try later");
    other->done(other);
    assert_int_equal(ended, 1);
    assert_int_equal(env.rcpts[0].state, RCPT_DELIVERED);
    assert_int_equal(env.rcpts[2].state, RCPT_DEFERRED);
    assert_string_equal(env.rcpts[2].reason, "451 4.3.0 try later");
    assert_int_equal(env.rcpts[3].state, RCPT_REPORTED); /* failed, NOTIFY=NEVER: nothing sent */
    assert_string_equal(env.rcpts[3].reason, "550 5.1.1 no such user");
    assert_int_equal(env.attempts, 1);
    assert_true(env.next_attempt > env.arrival); /* kept for the deferred one */
    assert_int_equal(access(sent, F_OK), -1);    /* the envelope records it now */

    /* Killed after the next hop took y, before the envelope said so: the
     * attempt after the restart finds the note and sends y no more. */
    nfd = open(sent, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(nfd, "y@other.test\nz@far", 18), 18); /* the last line cut */
    close(nfd);
    ntaken = 0;
    env.rcpts[3].state = RCPT_DEFERRED;
    env.rcpts[3].route = ROUTE_LOCAL; /* out of the way */
    ended = 0;
    proc_pipeline_retry(&settings, &env, fd, true, retry_finished, &ended);
    assert_int_equal(ended, 1);
    assert_int_equal(ntaken, 0);
    assert_int_equal(env.rcpts[2].state, RCPT_DELIVERED);
    assert_non_null(strstr(env.rcpts[2].reason, "sent before a restart"));
    assert_int_equal(access(sent, F_OK), -1);

    /* A busy transport: the attempt ends at once, the recipients deferred. */
    env.rcpts[2].state = RCPT_DEFERRED;
    ntaken = 0;
    transport_busy = true;
    ended = 0;
    unsigned attempts = env.attempts;
    proc_pipeline_retry(&settings, &env, fd, false, retry_finished, &ended);
    assert_int_equal(ended, 1);
    assert_int_equal(env.attempts, attempts); /* not an attempt: soon again */
    assert_true(env.next_attempt <= time(NULL) + 1);
    assert_int_equal(env.rcpts[2].state, RCPT_DEFERRED);
    assert_non_null(strstr(env.rcpts[2].reason, "transport is busy"));
    proc_env.transport = NULL;
    queue_envelope_free(&env);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_errno_is_deliberate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_space_floor_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_has_room_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_without_o_tmpfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_one_lookup_per_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_one_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_waits_for_the_transport, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
