/* The bounded worker pool for blocking work (storage fsync, LDAP, FTP). */
#ifndef PETREL_CORE_WORKER_H
#define PETREL_CORE_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/conn.h>

/* Per-service cap on jobs running at once (seed 3.3.3 "threads"). */
struct petrel_job_limit {
    unsigned max; /* 0 = the pool's size */
    unsigned running;
};

struct petrel_job {
    struct petrel_job *next;
    petrel_work_fn *work;
    void *arg;
    struct petrel_job_limit *limit; /* may be NULL */
    /* Runs on the worker thread after work; owns the job from then on. */
    void (*finish)(struct petrel_job *job);
};

int petrel_workers_start(unsigned threads, size_t queue_max, const char **error_r);
/* Runs every queued job, then joins the threads. */
void petrel_workers_stop(void);
bool petrel_workers_push(struct petrel_job *job);
/* Jobs queued and running, for stats. */
void petrel_workers_load(size_t *queued_r, size_t *running_r);

#endif
