/* The queue runner: a scheduled scan (petrel/schedule.h) that looks at
 * active/ when kicked and at least once a second, and hands due entries
 * to the worker pool, where each goes through the pipeline (pipeline.c).
 * An
 * envelope's modification time is its next attempt, so a scan is a
 * readdir and a stat per entry, and petrelctl can make an entry due by
 * touching it. An entry is worked on under an exclusive flock, which
 * petrelctl takes too before it deletes or holds one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/schedule.h>

#include "processing.h"

#define MAX_JOBS 64
/* Entries in flight: on a worker, or waiting for the transport (which
 * holds no thread, so many may wait; the transport has limits of its
 * own). A hash set of their ids, open addressing, twice as large. */
#define MAX_INFLIGHT 2048
#define INFLIGHT_SLOTS (2 * MAX_INFLIGHT)

static struct petrel_schedule *_Atomic runner; /* kicked from any thread */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char inflight[INFLIGHT_SLOTS][QUEUE_ID_LEN + 1]; /* "" free, "-" removed */
static unsigned ninflight, nworking, ntombs;
static bool scan_limited; /* the last scan left due entries for lack of job slots */
static time_t started;
/* Entries whose envelope could not be rewritten after an attempt: their
 * next attempt must look for deliveries the envelope does not record. */
#define DIRTY_MAX 64
static char dirty[DIRTY_MAX][QUEUE_ID_LEN + 1];
static unsigned dirty_next;

static bool is_dirty(const char *id)
{
    pthread_mutex_lock(&lock);
    bool r = false;
    for (unsigned i = 0; i < DIRTY_MAX && !r; i++)
        r = strcmp(dirty[i], id) == 0;
    pthread_mutex_unlock(&lock);
    return r;
}

static void mark_dirty(const char *id)
{
    pthread_mutex_lock(&lock);
    memcpy(dirty[dirty_next++ % DIRTY_MAX], id, QUEUE_ID_LEN + 1);
    pthread_mutex_unlock(&lock);
}

/* Leave an entry alone for a while (it could not be worked on). */
static void postpone(const struct proc_settings *set, int fd)
{
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec += set->retry_min;
    t[1] = t[0];
    futimens(fd, t);
}

void proc_runner_kick(void)
{
    if (runner != NULL)
        petrel_schedule_kick(runner);
}

/* Lock the entry at path for this attempt: -1 if it is gone, held by
 * petrelctl, or was replaced meanwhile. */
static int entry_lock(const char *path)
{
    int lfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (lfd < 0)
        return -1; /* deleted or held meanwhile */
    struct stat a, b;
    if (flock(lfd, LOCK_EX | LOCK_NB) < 0 || fstat(lfd, &a) < 0 || stat(path, &b) < 0 ||
        a.st_ino != b.st_ino) {
        close(lfd);
        return -1; /* petrelctl has it, or it was replaced */
    }
    return lfd;
}

static void entry_hold(const char *path, const char *id)
{
    char held[PATH_MAX];
    if (queue_path(held, sizeof(held), proc_env.queue, "hold", id))
        rename(path, held);
}

/* The envelope and the data file of a locked entry; an entry that cannot
 * be read is held for the administrator rather than tried again and
 * again. The data file's descriptor, or -1. */
static int entry_load(const char *path, const char *data, const char *id,
                      struct queue_envelope *env)
{
    const char *error;
    if (queue_envelope_read(path, env, &error) < 0) {
        if (errno != ENOENT) {
            petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: %s: entry held", path,
                       error != NULL ? error : strerror(errno));
            entry_hold(path, id);
        }
        return -1;
    }
    bool mismatch = strcmp(env->id, id) != 0;
    int dfd = mismatch ? -1 : open(data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (dfd < 0) {
        petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: %s: entry held", id,
                   mismatch ? "envelope of another id" : strerror(errno));
        entry_hold(path, id);
        queue_envelope_free(env);
    }
    return dfd;
}

/* One attempt at an entry, from its lock to the end of its pass (which
 * may wait for the transport): what must live that long. */
struct attempt {
    char id[QUEUE_ID_LEN + 1];
    struct petrel_config *gen;
    const struct proc_settings *set;
    int lfd, dfd;
    struct queue_envelope env;
};

/* The set's slot for id: where it is, or else the first free one on its
 * probe sequence. lock held. */
static char *inflight_slot(const char *id, bool *found_r)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    char *free_slot = NULL;
    for (unsigned i = 0; i < INFLIGHT_SLOTS; i++) {
        char *s = inflight[(h + i) % INFLIGHT_SLOTS];
        if (s[0] == '\0') {
            *found_r = false;
            return free_slot != NULL ? free_slot : s;
        }
        if (s[0] == '-' && free_slot == NULL)
            free_slot = s;
        else if (strcmp(s, id) == 0) {
            *found_r = true;
            return s;
        }
    }
    *found_r = false;
    return free_slot;
}

/* lock held. */
static bool is_inflight(const char *id)
{
    bool found;
    inflight_slot(id, &found);
    return found;
}

/* lock held; not full (the scan checks ninflight first). */
static void inflight_add(const char *id)
{
    bool found;
    char *s = inflight_slot(id, &found);
    memcpy(s, id, QUEUE_ID_LEN + 1);
    ninflight++;
}

/* lock held. */
static void inflight_remove(const char *id)
{
    bool found;
    char *s = inflight_slot(id, &found);
    if (!found)
        return;
    s[0] = '-', s[1] = '\0'; /* keeps later probes going */
    ninflight--;
    if (++ntombs < INFLIGHT_SLOTS / 4)
        return;
    /* Too many removed marks make probes long: build the set anew. */
    static char live[MAX_INFLIGHT][QUEUE_ID_LEN + 1];
    unsigned n = 0;
    for (unsigned i = 0; i < INFLIGHT_SLOTS; i++)
        if (inflight[i][0] != '\0' && inflight[i][0] != '-')
            memcpy(live[n++], inflight[i], QUEUE_ID_LEN + 1);
    memset(inflight, 0, sizeof(inflight));
    ninflight = ntombs = 0;
    for (unsigned i = 0; i < n; i++)
        inflight_add(live[i]);
}

/* The attempt is over: the lock goes, and its job slot. */
static void attempt_end(struct attempt *a, bool recorded)
{
    if (a->dfd >= 0) {
        if (!recorded) {
            mark_dirty(a->id);
            postpone(a->set, a->lfd);
        }
        queue_envelope_free(&a->env);
        close(a->dfd);
    }
    if (a->lfd >= 0)
        close(a->lfd);
    petrel_config_unref(a->gen);
    pthread_mutex_lock(&lock);
    inflight_remove(a->id);
    bool more = scan_limited;
    pthread_mutex_unlock(&lock);
    if (more)
        proc_runner_kick();
    free(a);
}

static void attempt_finished(void *arg, bool recorded) { attempt_end(arg, recorded); }

/* Work on one queue entry under its lock: the pipeline delivers what can
 * be, reports failures and removes or reschedules the entry, all under one
 * generation's settings. */
static void attempt(struct attempt *a)
{
    char path[PATH_MAX], data[PATH_MAX];
    a->lfd = a->dfd = -1;
    a->set = proc_settings_ref(&a->gen);
    if (!queue_path(path, sizeof(path), proc_env.queue, "active", a->id) ||
        !queue_path(data, sizeof(data), proc_env.queue, "data", a->id) ||
        (a->lfd = entry_lock(path)) < 0 || (a->dfd = entry_load(path, data, a->id, &a->env)) < 0) {
        attempt_end(a, true);
        return;
    }
    /* An entry from before this start may have been delivered to some
     * recipients without its envelope saying so. */
    bool dedupe = a->env.arrival <= started || is_dirty(a->id);
    proc_pipeline_retry(a->set, &a->env, a->dfd, dedupe, attempt_finished, a);
}

/* On a worker: the attempt runs until it ends or waits for the transport;
 * either way this job's slot among runner_jobs is free again. */
static void job_run(void *arg)
{
    attempt(arg); /* may have freed arg */
    pthread_mutex_lock(&lock);
    nworking--;
    /* Only a scan that stopped at the job limit has more to hand out now;
     * otherwise the next tick will do (an entry that could not be worked
     * on must not be tried again in a tight loop). */
    bool more = scan_limited;
    pthread_mutex_unlock(&lock);
    if (more)
        proc_runner_kick();
}

/* Hand due entries to workers, up to runner_jobs at a time. */
static void scan(void)
{
    char dir[PATH_MAX];
    if (!queue_path(dir, sizeof(dir), proc_env.queue, "active", NULL))
        return;
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    struct petrel_config *gen;
    unsigned jobs = proc_settings_ref(&gen)->runner_jobs;
    petrel_config_unref(gen);
    unsigned limit = jobs < MAX_JOBS ? jobs : MAX_JOBS;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (!queue_id_valid(de->d_name) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_mtime > now)
            continue;
        pthread_mutex_lock(&lock);
        bool full = nworking >= limit || ninflight >= MAX_INFLIGHT,
             skip = full || is_inflight(de->d_name);
        struct attempt *j = NULL;
        if (!skip) {
            j = petrel_calloc(1, sizeof(*j));
            memcpy(j->id, de->d_name, sizeof(j->id));
            inflight_add(j->id);
            nworking++;
        }
        scan_limited = full;
        pthread_mutex_unlock(&lock);
        if (full)
            break;
        if (j != NULL && !petrel_worker_submit(job_run, j)) {
            pthread_mutex_lock(&lock);
            inflight_remove(j->id);
            nworking--;
            pthread_mutex_unlock(&lock);
            free(j);
            break;
        }
    }
    closedir(d);
}

static void scan_work(void *arg)
{
    (void)arg;
    scan();
}

/* Files a crash left behind: envelopes half written (tmp/), message data
 * nobody acknowledged (data/ without an envelope) and sent notes of
 * entries gone (sent/). Only files older than this start: connections
 * may already be spooling. */
static void clean(void)
{
    static const char *const subs[] = {"tmp", "data", "sent"};
    for (size_t s = 0; s < 3; s++) {
        char dir[PATH_MAX];
        if (!queue_path(dir, sizeof(dir), proc_env.queue, subs[s], NULL))
            continue;
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            struct stat st;
            char a[PATH_MAX], h[PATH_MAX];
            if (!queue_id_valid(de->d_name) ||
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                st.st_mtime >= started)
                continue;
            if (s > 0 && queue_path(a, sizeof(a), proc_env.queue, "active", de->d_name) &&
                queue_path(h, sizeof(h), proc_env.queue, "hold", de->d_name) &&
                (access(a, F_OK) == 0 || access(h, F_OK) == 0))
                continue;
            if (unlinkat(dirfd(d), de->d_name, 0) == 0 && s == 1)
                petrel_log(PETREL_LOG_INFO, PROC_LOG,
                           "%s: removed a message never acknowledged (a crash or a restart)",
                           de->d_name);
        }
        closedir(d);
    }
}

void proc_runner_prepare(void)
{
    /* At init, before any connection can spool a file: clean() removes
     * only what is older. */
    started = time(NULL);
}

int proc_runner_start(const char **error_r)
{
    static const char *const subs[] = {"", "/tmp", "/data", "/active", "/hold", "/sent"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        char dir[PATH_MAX];
        if (!petrel_snprintf(dir, sizeof(dir), "%s%s", proc_env.queue, subs[i]) ||
            (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
            *error_r = "cannot create the queue directories";
            petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: %s", dir, strerror(errno));
            return -1;
        }
    }
    clean();
    runner = petrel_schedule_every(1000, scan_work, NULL);
    petrel_schedule_kick(runner); /* look at what a previous run left */
    return 0;
}

void proc_runner_stop(void)
{
    /* Jobs already with the workers finished: the pool drains before the
     * modules stop. */
    struct petrel_schedule *r = runner;
    runner = NULL; /* a late kick finds nothing, not a freed schedule */
    petrel_schedule_cancel(r);
}
