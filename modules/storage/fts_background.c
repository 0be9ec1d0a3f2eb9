/* Background full-text indexing (docs/fts.md): folders that were given
 * messages (delivery, APPEND, COPY, MOVE) are noted, and a schedule
 * indexes them on a worker a few seconds later, so that a search usually
 * finds its index current. A run works at most FTS_BG_WORK_MS (a batch in
 * progress ends first) every FTS_BG_INTERVAL_MS: about a fifth of one
 * core at most, taken from deliveries only while they keep coming faster
 * than it indexes; what it has not reached by a search is caught up by
 * that search (fts_catchup). Only in petreld, where the module's init
 * starts it: a tool or a test using the store directly indexes at search
 * time as before. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <petrel/mem.h>
#include <petrel/schedule.h>

#include "storage_private.h"

#define FTS_BG_MAX 1024u /* folders waiting; more are left to their searches */
#define FTS_BG_INTERVAL_MS 5000u
#define FTS_BG_WORK_MS 1000

struct fts_pending {
    struct storage_account *acct; /* held */
    char *name;
};

static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fts_pending bg[FTS_BG_MAX]; /* bg_lock */
static size_t bg_n;                       /* bg_lock */
static bool bg_on;                        /* bg_lock */
static struct petrel_schedule *bg_sched;

void storage_fts_note(struct storage_account *acct, const char *name)
{
    if (!storage_env.fts)
        return;
    pthread_mutex_lock(&bg_lock);
    bool known = !bg_on || bg_n == FTS_BG_MAX;
    for (size_t i = 0; i < bg_n && !known; i++)
        known = bg[i].acct == acct && strcmp(bg[i].name, name) == 0;
    if (!known) {
        storage_mailbox_hold(acct);
        bg[bg_n++] = (struct fts_pending){acct, petrel_strdup(name)};
    }
    pthread_mutex_unlock(&bg_lock);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pending_free(struct fts_pending *p)
{
    storage_mailbox_release(p->acct);
    free(p->name);
}

static void bg_run(void *arg)
{
    (void)arg;
    int64_t deadline = now_ms() + FTS_BG_WORK_MS;
    while (now_ms() < deadline) {
        pthread_mutex_lock(&bg_lock);
        if (bg_n == 0) {
            pthread_mutex_unlock(&bg_lock);
            break;
        }
        struct fts_pending p = bg[0];
        memmove(bg, bg + 1, --bg_n * sizeof(bg[0]));
        pthread_mutex_unlock(&bg_lock);
        struct petrel_mailbox m = {p.acct};
        struct petrel_folder *f;
        int cut = 0;
        if (storage_folder_open(&m, p.name, &f) == PETREL_STORAGE_OK) {
            cut = storage_fts_update(f, deadline);
            storage_folder_close(f);
        }
        if (cut != 1) {
            pending_free(&p);
            continue;
        }
        /* Out of time: first in line for the next run (unless noted again
         * meanwhile, or stopping). */
        pthread_mutex_lock(&bg_lock);
        bool again = !bg_on || bg_n == FTS_BG_MAX;
        for (size_t i = 0; i < bg_n && !again; i++)
            again = bg[i].acct == p.acct && strcmp(bg[i].name, p.name) == 0;
        if (!again) {
            memmove(bg + 1, bg, bg_n++ * sizeof(bg[0]));
            bg[0] = p;
        }
        pthread_mutex_unlock(&bg_lock);
        if (again)
            pending_free(&p);
        break;
    }
}

void storage_fts_background_start(void)
{
    if (!storage_env.fts)
        return;
    pthread_mutex_lock(&bg_lock);
    bg_on = true;
    pthread_mutex_unlock(&bg_lock);
    bg_sched = petrel_schedule_every(FTS_BG_INTERVAL_MS, bg_run, NULL);
}

void storage_fts_background_stop(void)
{
    if (bg_sched == NULL)
        return;
    petrel_schedule_cancel(bg_sched);
    bg_sched = NULL;
    pthread_mutex_lock(&bg_lock);
    bg_on = false;
    size_t n = bg_n;
    bg_n = 0;
    pthread_mutex_unlock(&bg_lock);
    for (size_t i = 0; i < n; i++)
        pending_free(&bg[i]);
}
