/* Delivery throughput of the storage module: 4 KB messages delivered by T
 * threads, either each to its own account or all to one account, with the
 * durability settings of production (fsync, index_sync = full) unless told
 * otherwise. Prints one human line and "RESULT {json}".
 *
 *   store_bench --dir DIR [--threads T] [-n N] [--size BYTES] [--one-account]
 *               [--no-fsync] [--index-sync full|normal|off] [--no-fts]
 *   store_bench --dir DIR --rebuild [-n N] [--size BYTES]
 *
 * --rebuild: N message files (no index, half with a U= in the name) are
 * put into one INBOX, then the time of the first folder_open (the index
 * rebuilt from the files) is measured.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <petrel/mem.h>

#include "storage_private.h"

#define MAX_THREADS 64

struct worker {
    pthread_t t;
    unsigned id;
    unsigned count;
    int failures;
};

static const char *g_user_shared = "bench";
static bool g_one_account;
static char *g_message;
static size_t g_size;

static void *work(void *arg)
{
    struct worker *w = arg;
    struct petrel_mailbox *m;
    char user[64];
    if (g_one_account)
        petrel_strlcpy(user, g_user_shared, sizeof(user));
    else
        petrel_snprintf(user, sizeof(user), "bench%u", w->id);
    if (storage_ops.mailbox_open(user, &m) != PETREL_STORAGE_OK) {
        w->failures = (int)w->count;
        return NULL;
    }
    struct petrel_storage_source src = {g_message, g_size, -1, 0};
    for (unsigned i = 0; i < w->count; i++) {
        uint32_t uid, v;
        if (storage_ops.deliver(m, NULL, &src, NULL, &uid, &v) != PETREL_STORAGE_OK)
            w->failures++;
    }
    storage_ops.mailbox_close(m);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rebuild_bench(unsigned n)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    char path[PATH_MAX];
    if (storage_ops.mailbox_open(g_user_shared, &m) != PETREL_STORAGE_OK)
        return 1;
    for (unsigned i = 0; i < n; i++) {
        /* Even ones carry a U= (kept), odd ones get a new UID. */
        if (i % 2 == 0)
            petrel_snprintf(path, sizeof(path), "%s/bench.test/%s/new/%u.M1P1Q%u.bench,S=%zu,U=%u",
                            storage_env.root, g_user_shared, 1000000 + i, i, g_size, i + 1);
        else
            petrel_snprintf(path, sizeof(path), "%s/bench.test/%s/new/%u.M1P1Q%u.bench,S=%zu",
                            storage_env.root, g_user_shared, 1000000 + i, i, g_size);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, g_message, g_size) != (ssize_t)g_size) {
            perror(path);
            return 1;
        }
        close(fd);
    }
    double t0 = now();
    int ret = storage_ops.folder_open(m, "INBOX", &f);
    double wall = now() - t0;
    struct petrel_storage_status st = {0};
    if (ret == PETREL_STORAGE_OK) {
        storage_ops.status(f, &st);
        storage_ops.folder_close(f);
    }
    storage_ops.mailbox_close(m);
    printf("rebuild: %u files indexed in %.2fs -> %.1f files/s (%u messages, %s)\n", n, wall,
           n / wall, st.messages, storage_strerror(ret));
    printf("RESULT {\"label\": \"rebuild\", \"files\": %u, \"wall_s\": %.3f, "
           "\"files_per_s\": %.1f, \"messages\": %u}\n",
           n, wall, n / wall, st.messages);
    return ret == PETREL_STORAGE_OK && st.messages == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    bool rebuild = false, fts = true;
    const char *dir = NULL, *sync = "full";
    unsigned threads = 1, n = 2000;
    bool do_fsync = true;
    g_size = 4096;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            g_size = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--one-account") == 0)
            g_one_account = true;
        else if (strcmp(argv[i], "--no-fsync") == 0)
            do_fsync = false;
        else if (strcmp(argv[i], "--index-sync") == 0 && i + 1 < argc)
            sync = argv[++i];
        else if (strcmp(argv[i], "--rebuild") == 0)
            rebuild = true;
        else if (strcmp(argv[i], "--no-fts") == 0)
            fts = false; /* docs/fts.md: the indexing cost */
        else {
            fprintf(stderr, "usage: see the comment at the top of store_bench.c\n");
            return 2;
        }
    }
    if (dir == NULL || threads == 0 || threads > MAX_THREADS || n == 0 || n > 1000000 ||
        g_size < 64 || g_size > (64u << 20)) {
        fprintf(stderr, "store_bench: --dir required; 1..64 threads; n <= 1e6; size 64..64M\n");
        return 2;
    }
    enum storage_sync_mode mode = strcmp(sync, "off") == 0      ? STORAGE_SYNC_OFF
                                  : strcmp(sync, "normal") == 0 ? STORAGE_SYNC_NORMAL
                                                                : STORAGE_SYNC_FULL;
    storage_configure(dir, "bench.test", do_fsync, mode);
    storage_configure_fts(fts);
    g_message = petrel_malloc(g_size);
    int hl =
        snprintf(g_message, g_size, "From: a@b.test\r\nTo: c@d.test\r\nSubject: bench\r\n\r\n");
    for (size_t i = (size_t)hl; i < g_size; i++)
        g_message[i] = (i % 78 == 77) ? '\n' : (char)('a' + i % 26);
    if (rebuild) {
        int r = rebuild_bench(n);
        free(g_message);
        return r;
    }
    /* Accounts exist before the clock starts: creation is not delivery. */
    for (unsigned i = 0; i < threads; i++) {
        struct petrel_mailbox *m;
        char user[64];
        petrel_snprintf(user, sizeof(user), "bench%u", i);
        if (storage_ops.mailbox_open(g_one_account ? g_user_shared : user, &m) == 0)
            storage_ops.mailbox_close(m);
    }
    struct worker w[MAX_THREADS];
    double t0 = now();
    for (unsigned i = 0; i < threads; i++) {
        w[i] = (struct worker){.id = i, .count = n / threads, .failures = 0};
        pthread_create(&w[i].t, NULL, work, &w[i]);
    }
    int failures = 0;
    unsigned total = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(w[i].t, NULL);
        failures += w[i].failures;
        total += w[i].count;
    }
    double wall = now() - t0;
    printf("store %s: %u x %zuB deliveries (threads=%u, fsync=%s, index_sync=%s) in %.2fs -> "
           "%.1f deliveries/s, %d failures\n",
           g_one_account ? "one-account" : "per-thread-accounts", total, g_size, threads,
           do_fsync ? "yes" : "no", sync, wall, total / wall, failures);
    printf("RESULT {\"label\": \"%s\", \"deliveries\": %u, \"size\": %zu, \"threads\": %u, "
           "\"fsync\": %s, \"index_sync\": \"%s\", \"wall_s\": %.3f, \"deliveries_per_s\": %.1f, "
           "\"failures\": %d}\n",
           g_one_account ? "one-account" : "accounts", total, g_size, threads,
           do_fsync ? "true" : "false", sync, wall, total / wall, failures);
    free(g_message);
    return failures == 0 ? 0 : 1;
}
