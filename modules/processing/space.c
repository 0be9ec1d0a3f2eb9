/* Free space in the spool. A crowd sending large messages it never
 * finishes must not fill the disk under everyone else: MAIL is refused
 * (452 4.3.1) when the spool has less than min_free_space plus the
 * message's declared SIZE, and a message being written is cut off when
 * the spool falls to half of min_free_space, which keeps that half for the
 * messages already accepted (the queue files, bounces, the store). */
#include <errno.h>
#include <stdatomic.h>
#include <sys/statvfs.h>
#include <time.h>

#include <petrel/log.h>

#include "processing.h"

/* statvfs at most every SPACE_CACHE_MS: cheap, but asked per MAIL. */
#define SPACE_CACHE_MS 250

static _Atomic uint64_t cached_free;
static _Atomic int64_t cached_at = -1000000;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bytes an unprivileged writer may still use in the queue directory;
 * UINT64_MAX when unknown (the check then allows). */
static uint64_t spool_free(bool fresh)
{
    int64_t now = now_ms();
    if (!fresh && now - atomic_load(&cached_at) < SPACE_CACHE_MS)
        return atomic_load(&cached_free);
    struct statvfs st;
    uint64_t avail = UINT64_MAX;
    if (statvfs(proc_env.queue, &st) == 0)
        avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    atomic_store(&cached_free, avail);
    atomic_store(&cached_at, now);
    return avail;
}

void proc_space_changed(void) { atomic_store(&cached_at, -1000000); }

bool proc_has_room(uint64_t size)
{
    uint64_t min = (uint64_t)atomic_load(&proc_env.min_free_space);
    if (min == 0)
        return true;
    uint64_t avail = spool_free(false);
    return avail >= min && avail - min >= size;
}

bool proc_write_room(size_t len)
{
    uint64_t keep = (uint64_t)atomic_load(&proc_env.min_free_space) / 2;
    if (keep == 0)
        return true;
    uint64_t avail = spool_free(true);
    if (avail >= keep && avail - keep >= len)
        return true;
    errno = ENOSPC;
    return false;
}
