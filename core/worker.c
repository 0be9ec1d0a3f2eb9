/* A fixed set of threads taking jobs from one bounded queue. A job whose
 * service is at its running cap waits while later jobs of other services
 * go ahead, so one slow back-end cannot starve the rest. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "worker.h"

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct petrel_job *queue_head;
static struct petrel_job **queue_tail = &queue_head;
static size_t queued, running, queue_limit;
static unsigned nthreads;
static pthread_t *threads;
static bool stopping;

static bool may_run(const struct petrel_job *job)
{
    return job->limit == NULL || job->limit->max == 0 || job->limit->running < job->limit->max;
}

/* Called with pool_lock held. */
static struct petrel_job *take_job(void)
{
    for (struct petrel_job **p = &queue_head; *p != NULL; p = &(*p)->next) {
        if (may_run(*p)) {
            struct petrel_job *job = *p;
            *p = job->next;
            if (job->next == NULL)
                queue_tail = p;
            queued--;
            return job;
        }
    }
    return NULL;
}

static void *worker_main(void *unused)
{
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        struct petrel_job *job = take_job();
        if (job == NULL) {
            if (stopping && queue_head == NULL)
                break;
            pthread_cond_wait(&pool_cond, &pool_lock);
            continue;
        }
        running++;
        if (job->limit != NULL)
            job->limit->running++;
        pthread_mutex_unlock(&pool_lock);

        job->work(job->arg);
        struct petrel_job_limit *limit = job->limit;
        job->finish(job);

        pthread_mutex_lock(&pool_lock);
        running--;
        if (limit != NULL) {
            limit->running--;
            /* A job held back by this cap may run now. Only a queued job
             * can be held back: waking every idle worker after each job
             * would cost a thundering herd of context switches. */
            if (queue_head != NULL)
                pthread_cond_broadcast(&pool_cond);
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

int petrel_workers_start(unsigned count, size_t queue_max, const char **error_r)
{
    threads = petrel_calloc(count, sizeof(*threads));
    queue_limit = queue_max;
    stopping = false;
    for (nthreads = 0; nthreads < count; nthreads++) {
        int err = pthread_create(&threads[nthreads], NULL, worker_main, NULL);
        if (err != 0) {
            *error_r = strerror(err);
            petrel_workers_stop();
            return -1;
        }
    }
    return 0;
}

void petrel_workers_stop(void)
{
    pthread_mutex_lock(&pool_lock);
    stopping = true;
    pthread_cond_broadcast(&pool_cond);
    pthread_mutex_unlock(&pool_lock);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
}

bool petrel_workers_push(struct petrel_job *job)
{
    pthread_mutex_lock(&pool_lock);
    if (queued >= queue_limit || stopping || nthreads == 0) {
        pthread_mutex_unlock(&pool_lock);
        return false;
    }
    job->next = NULL;
    *queue_tail = job;
    queue_tail = &job->next;
    queued++;
    pthread_cond_signal(&pool_cond);
    pthread_mutex_unlock(&pool_lock);
    return true;
}

void petrel_workers_load(size_t *queued_r, size_t *running_r)
{
    pthread_mutex_lock(&pool_lock);
    *queued_r = queued;
    *running_r = running;
    pthread_mutex_unlock(&pool_lock);
}

static void detached_finish(struct petrel_job *job) { free(job); }

bool petrel_worker_submit(petrel_work_fn *work, void *arg)
{
    struct petrel_job *job = petrel_calloc(1, sizeof(*job));
    job->work = work;
    job->arg = arg;
    job->finish = detached_finish;
    if (!petrel_workers_push(job)) {
        free(job);
        return false;
    }
    return true;
}
