/* Crash safety. A child delivers in a loop and reports each UID on a pipe
 * only after deliver() returned; the parent kills it with SIGKILL mid-way,
 * then checks that (a) every acknowledged message is there and no UID
 * repeats, (b) a deleted or garbage index is rebuilt from the files with
 * the same UIDs and UIDVALIDITY. Also: two processes delivering into one
 * folder at once (SQLite locking across processes). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "test_storage_util.h"

#define ACKS_BEFORE_KILL 150
#define CHILD_MAX 100000
#define MAX_ACKS 8192

/* Deliver limit messages, writing each acknowledged UID to fd, then exit:
 * the body of every child process here. */
static void deliver_and_exit(struct petrel_mailbox *m, int fd, unsigned limit)
{
    for (unsigned i = 0; i < limit; i++) {
        uint32_t uid;
        if (test_deliver(m, NULL, i, &uid) != PETREL_STORAGE_OK)
            _exit(3);
        if (write(fd, &uid, sizeof(uid)) != sizeof(uid))
            _exit(4);
    }
    ops->mailbox_close(m);
    _exit(0);
}

static void child_deliver(int fd, const char *user, unsigned limit)
{
    struct petrel_mailbox *m;
    if (ops->mailbox_open(user, &m) != PETREL_STORAGE_OK)
        _exit(2);
    deliver_and_exit(m, fd, limit);
}

/* Read acknowledged UIDs until count or EOF. */
static size_t read_acks(int fd, uint32_t *acks, size_t have, size_t want)
{
    while (have < want && have < MAX_ACKS) {
        ssize_t n = read(fd, &acks[have], sizeof(uint32_t));
        if (n != sizeof(uint32_t))
            break;
        have++;
    }
    return have;
}

struct snapshot {
    struct test_msgs msgs;
    struct petrel_storage_status st;
};

static void snapshot(const char *user, struct snapshot *s)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    s->msgs.n = 0;
    assert_int_equal(ops->mailbox_open(user, &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &s->st), PETREL_STORAGE_OK);
    assert_int_equal(ops->messages(f, NULL, test_collect, &s->msgs), PETREL_STORAGE_OK);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

static bool has_uid(const struct test_msgs *t, uint32_t uid)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->uid[i] == uid)
            return true;
    return false;
}

static void check_consistent(const char *user, const struct snapshot *s)
{
    char dir[PATH_MAX];
    static uint32_t files[MAX_ACKS];
    test_folder_dir(user, "", dir, sizeof(dir));
    size_t n = test_count_files(dir, files, MAX_ACKS);
    assert_int_equal(n, s->msgs.n);
    for (size_t i = 1; i < s->msgs.n; i++)
        assert_true(s->msgs.uid[i] > s->msgs.uid[i - 1]); /* unique, ordered */
    for (size_t i = 0; i < n; i++)
        assert_true(has_uid(&s->msgs, files[i]));
    assert_true(s->st.uidnext > (s->msgs.n ? s->msgs.uid[s->msgs.n - 1] : 0));
}

static void remove_index(const char *user)
{
    char dir[PATH_MAX], p[PATH_MAX + 16];
    static const char *const ext[] = {"", "-wal", "-shm"};
    test_folder_dir(user, "", dir, sizeof(dir));
    for (int i = 0; i < 3; i++) {
        petrel_snprintf(p, sizeof(p), "%s/" STORAGE_INDEX_FILE "%s", dir, ext[i]);
        unlink(p);
    }
}

static void test_kill_during_delivery(void **state)
{
    int pipefd[2];
    static uint32_t acks[MAX_ACKS];
    (void)state;
    test_root_make(true);
    /* The account exists before the child starts. */
    struct petrel_mailbox *m;
    assert_int_equal(ops->mailbox_open("crash", &m), PETREL_STORAGE_OK);
    ops->mailbox_close(m);
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        child_deliver(pipefd[1], "crash", CHILD_MAX);
    }
    close(pipefd[1]);
    size_t n = read_acks(pipefd[0], acks, 0, ACKS_BEFORE_KILL);
    assert_int_equal(n, ACKS_BEFORE_KILL);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    n = read_acks(pipefd[0], acks, n, MAX_ACKS); /* acks sent before it died */
    close(pipefd[0]);

    /* (a) reopened: every acknowledged message, no UID twice. */
    struct snapshot s1, s2, s3;
    snapshot("crash", &s1);
    for (size_t i = 0; i < n; i++) {
        assert_true(has_uid(&s1.msgs, acks[i]));
        if (i > 0)
            assert_true(acks[i] > acks[i - 1]);
    }
    check_consistent("crash", &s1);

    /* (b) index deleted: rebuilt with the same UIDs and UIDVALIDITY. */
    remove_index("crash");
    snapshot("crash", &s2);
    assert_int_equal(s2.st.uidvalidity, s1.st.uidvalidity);
    assert_int_equal(s2.msgs.n, s1.msgs.n);
    assert_memory_equal(s2.msgs.uid, s1.msgs.uid, s1.msgs.n * sizeof(uint32_t));
    assert_true(s2.st.uidnext >= s1.st.uidnext);
    check_consistent("crash", &s2);

    /* (c) garbage index: logged, moved aside, rebuilt the same way. */
    char dir[PATH_MAX], p[PATH_MAX + 32];
    test_folder_dir("crash", "", dir, sizeof(dir));
    petrel_snprintf(p, sizeof(p), "%s/" STORAGE_INDEX_FILE, dir);
    int fd = open(p, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 + 3);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    snapshot("crash", &s3);
    assert_int_equal(s3.st.uidvalidity, s1.st.uidvalidity);
    assert_memory_equal(s3.msgs.uid, s1.msgs.uid, s1.msgs.n * sizeof(uint32_t));
    check_consistent("crash", &s3);

    /* New deliveries continue above every UID ever handed out. */
    assert_int_equal(ops->mailbox_open("crash", &m), PETREL_STORAGE_OK);
    uint32_t uid;
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    assert_true(uid >= s1.st.uidnext);
    ops->mailbox_close(m);
    test_root_remove();
}

static void test_two_processes(void **state)
{
    int pipes[2][2];
    pid_t pids[2];
    static uint32_t acks[2][MAX_ACKS];
    size_t n[2];
    (void)state;
    test_root_make(false);
    /* The account and its INBOX index exist before the children start,
     * and every handle is closed: nothing of it is cached across fork()
     * (test_fork_with_open_handles covers handles kept open). */
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    assert_int_equal(ops->mailbox_open("duo", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    ops->folder_close(f);
    ops->mailbox_close(m);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(pipes[i][0]);
            child_deliver(pipes[i][1], "duo", 100);
        }
        close(pipes[i][1]);
    }
    for (int i = 0; i < 2; i++) {
        int status;
        n[i] = read_acks(pipes[i][0], acks[i], 0, MAX_ACKS);
        close(pipes[i][0]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(n[i], 100);
    }
    struct snapshot s;
    snapshot("duo", &s);
    assert_int_equal(s.msgs.n, 200);
    for (size_t i = 0; i < 100; i++)
        for (size_t j = 0; j < 100; j++)
            assert_int_not_equal(acks[0][i], acks[1][j]);
    check_consistent("duo", &s);
    test_root_remove();
}

/* A parent that keeps its handles open across fork(): the children must
 * not use the inherited SQLite connections (they open their own), and the
 * parent's handles keep working afterwards. */
static void child_fresh(int fd, const struct storage_account *inherited)
{
    struct petrel_mailbox *m;
    if (ops->mailbox_open("forked", &m) != PETREL_STORAGE_OK)
        _exit(2);
    if (m->acct == inherited) /* the parent's state, used across fork() */
        _exit(5);
    deliver_and_exit(m, fd, 50);
}

static void test_fork_with_open_handles(void **state)
{
    int pipes[2][2];
    pid_t pids[2];
    static uint32_t acks[2][MAX_ACKS];
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    uint32_t uid;
    (void)state;
    test_root_make(false);
    assert_int_equal(ops->mailbox_open("forked", &m), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, NULL, 0, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(pipes[i][0]);
            child_fresh(pipes[i][1], m->acct);
        }
        close(pipes[i][1]);
    }
    for (int i = 0; i < 2; i++) {
        int status;
        size_t n = read_acks(pipes[i][0], acks[i], 0, MAX_ACKS);
        close(pipes[i][0]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(n, 50);
    }
    /* The parent's connection still works and sees everything. */
    struct petrel_storage_status st;
    assert_int_equal(ops->sync(f), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 101);
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    assert_true(uid > 101);
    ops->folder_close(f);
    ops->mailbox_close(m);
    test_root_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_during_delivery),
        cmocka_unit_test(test_two_processes),
        cmocka_unit_test(test_fork_with_open_handles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
