/* Free space in the spool. A crowd sending large messages it never
 * finishes must not fill the disk under everyone else: MAIL is refused
 * (452 4.3.1) when the spool has less than min_free_space plus the
 * message's declared SIZE, and a message being written is cut off when
 * the spool falls to half of min_free_space, which keeps that half for the
 * messages already accepted (the queue files, bounces, the store).
 *
 * One statvfs serves everyone for a while: the bytes written to spool
 * files since (by every message, counted before they are written) come
 * off what it said, so messages written at once share the floor instead
 * of each overshooting it between two looks. */
#include <errno.h>
#include <stdatomic.h>
#include <sys/statvfs.h>
#include <time.h>

#include <petrel/log.h>
#include <petrel/module.h>

#include "processing.h"

/* A look is good for SPACE_CACHE_MS, or until SPACE_LOOK_BYTES were
 * written since: the count cannot see other writers (the store). */
#define SPACE_CACHE_MS 250
#define SPACE_LOOK_BYTES (1u << 20)

static _Atomic uint64_t cached_free = UINT64_MAX;
static _Atomic int64_t cached_at = INT64_MIN / 2; /* ms; long ago: look first */
static _Atomic uint64_t written;                  /* bytes counted since the look */
static _Atomic uint64_t freed;                    /* bytes of data files removed since */
static _Atomic bool due;                          /* a data file went: look again */
static atomic_flag looking = ATOMIC_FLAG_INIT;    /* a look is on its way */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Take n off a count, never below zero (two looks at once both take
 * what they saw). */
static void forget(_Atomic uint64_t *count, uint64_t n)
{
    uint64_t w = atomic_load(count);
    while (!atomic_compare_exchange_weak(count, &w, w > n ? w - n : 0))
        ;
}

/* statvfs, and forget the bytes counted before it (they are in its
 * answer; the few still on their way to the disk are forgotten early). */
static void look(void)
{
    uint64_t before = atomic_load(&written), gone = atomic_load(&freed);
    struct statvfs st;
    uint64_t avail = UINT64_MAX; /* unknown: the checks allow */
    if (statvfs(proc_env.queue, &st) == 0)
        avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    atomic_store(&cached_free, avail);
    forget(&written, before);
    forget(&freed, gone);
    atomic_store(&cached_at, now_ms());
    atomic_store(&due, false);
}

static void look_work(void *arg)
{
    (void)arg;
    look();
    atomic_flag_clear(&looking);
}

/* What the last look said less what was written since, plus what
 * removed data files gave back. */
static uint64_t estimate(void)
{
    uint64_t avail = atomic_load(&cached_free), w = atomic_load(&written);
    if (avail == UINT64_MAX)
        return avail;
    uint64_t f = atomic_load(&freed);
    avail = avail > UINT64_MAX - f ? UINT64_MAX - 1 : avail + f;
    return avail > w ? avail - w : 0;
}

static bool stale(void) { return now_ms() - atomic_load(&cached_at) >= SPACE_CACHE_MS; }

void proc_space_prime(void) { look(); }

/* Room came back: counted at once (the next MAIL may need it), and a
 * worker looks again soon. */
void proc_space_changed(uint64_t len)
{
    atomic_fetch_add(&freed, len);
    atomic_store(&due, true);
}

bool proc_has_room(uint64_t size)
{
    struct petrel_config *gen;
    uint64_t min = (uint64_t)proc_settings_ref(&gen)->min_free_space;
    petrel_config_unref(gen);
    if (min == 0)
        return true;
    /* MAIL runs on an I/O thread: it answers from the cache and leaves
     * the look to a worker. Only when the pool takes no job does it look
     * itself, at most one thread at a time and once per SPACE_CACHE_MS. */
    if ((atomic_load(&due) || stale()) && !atomic_flag_test_and_set(&looking) &&
        !petrel_worker_submit(look_work, NULL)) {
        if (stale())
            look();
        atomic_flag_clear(&looking);
    }
    uint64_t avail = estimate();
    return avail >= min && avail - min >= size;
}

void proc_space_used(uint64_t len) { atomic_fetch_add(&written, len); }

bool proc_write_room(const struct proc_settings *set, uint64_t len)
{
    atomic_fetch_add(&written, len);
    uint64_t keep = (uint64_t)set->min_free_space / 2;
    if (keep == 0)
        return true;
    /* Worker thread: it may look itself when the count grew large or the
     * estimate falls short (a look may show room that came back). */
    uint64_t avail = estimate();
    if (avail < keep || atomic_load(&due) || stale() || atomic_load(&written) >= SPACE_LOOK_BYTES) {
        look();
        avail = estimate();
    }
    if (avail >= keep)
        return true;
    errno = ENOSPC; /* len stays counted until the next look: no harm */
    return false;
}
