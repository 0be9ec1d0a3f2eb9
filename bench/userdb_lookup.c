/* Lookup benchmark of userdb_file: writes an account file of N accounts
 * (default 100,000) in a temporary directory, then measures the load
 * (read, parse, validate every hash, index) and the cost of a lookup
 * through the same path the service takes (snapshot reference, index
 * probe, copy of the entry, release), for hits and misses.
 *
 *   bench/userdb_lookup [ACCOUNTS] [LOOKUPS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <petrel/userdb.h>

#include "userdb_file.h"

#define HASH "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_file(const char *path, long n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fprintf(f, "# benchmark\ndomain bench.test catchall=postmaster@bench.test\n");
    for (long i = 0; i < n; i++)
        fprintf(f, "account user%ld@bench.test %s quota=1G\n", i, HASH);
    fclose(f);
}

static double lookups(struct userdb_source *src, long n, long count, bool hit)
{
    char address[64];
    long found = 0;
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        long k = (i * 7919) % n;
        snprintf(address, sizeof(address), hit ? "user%ld@bench.test" : "nobody%ld@other.test", k);
        struct userdb_snapshot *s = userdb_source_get(src, 1000);
        struct petrel_userdb_entry *e = NULL;
        if (userdb_lookup_entry(&s->db, address, false, &e) == PETREL_USERDB_FOUND)
            found++;
        userdb_entry_free(e);
        userdb_snapshot_unref(s);
    }
    double t = now_s() - t0;
    if (found != (hit ? count : 0)) {
        fprintf(stderr, "wrong results: %ld found\n", found);
        exit(1);
    }
    return t * 1e9 / (double)count;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000, count = argc > 2 ? atol(argv[2]) : 1000000;
    char dir[] = "/tmp/petrel-bench-XXXXXX", path[300];
    if (n < 1 || count < 1 || mkdtemp(dir) == NULL)
        return 2;
    snprintf(path, sizeof(path), "%s/users", dir);
    write_file(path, n);
    struct userdb_source src;
    const char *err;
    double t0 = now_s();
    if (userdb_source_open(&src, path, "bench", &err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double load = now_s() - t0;
    struct userdb_snapshot *s = userdb_source_get(&src, 1000);
    printf("accounts %ld (%zu entries, %zu errors)\n", n, s->db.count, s->db.nerrors);
    userdb_snapshot_unref(s);
    printf("load_ms %.1f\n", load * 1000);
    printf("lookup_hit_ns %.0f\n", lookups(&src, n, count, true));
    printf("lookup_miss_ns %.0f\n", lookups(&src, n, count, false));
    userdb_source_close(&src);
    unlink(path);
    rmdir(dir);
    return 0;
}
