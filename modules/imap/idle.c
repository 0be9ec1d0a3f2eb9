/* IDLE (RFC 2177) and the storage watcher behind it. The watcher runs on
 * whatever thread changed the folder, with a storage lock held: it only
 * marks the change and wakes the connection. The wakeup, on the
 * connection's thread, reports the changes to an IDLE session at once (a
 * job: storage calls block); other sessions get them at their next
 * command's end. An IDLE session holds no thread and no reader memory. */
#include <stdlib.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "imap.h"

static void on_change(void *arg)
{
    struct imap_watch_arg *wa = arg;
    atomic_store(&wa->changed, true);
    petrel_conn_wake(wa->waker);
}

void imap_watch_prepare(struct petrel_conn *conn, struct imap_session *s)
{
    if (s->watch_arg != NULL)
        return;
    s->watch_arg = petrel_calloc(1, sizeof(*s->watch_arg));
    s->watch_arg->waker = petrel_conn_waker_get(conn);
}

int imap_watch_start(struct imap_session *s, const char *folder)
{
    if (s->watch_arg == NULL)
        return 0;
    atomic_store(&s->watch_arg->changed, false);
    return imap_storage->watch(s->mbox, folder, on_change, s->watch_arg, &s->watch);
}

void imap_watch_stop(struct imap_session *s)
{
    if (s->watch != NULL)
        imap_storage->unwatch(s->watch);
    s->watch = NULL;
}

bool imap_watch_changed(struct imap_session *s)
{
    return s->watch_arg != NULL && atomic_exchange(&s->watch_arg->changed, false);
}

void imap_watch_free(struct imap_watch_arg *wa)
{
    if (wa == NULL)
        return;
    petrel_conn_waker_release(wa->waker);
    free(wa);
}

/* --- IDLE --- */

static void report_work(struct imap_job *j) { (void)j; /* the job's sync is the whole of it */ }

static void report(struct petrel_conn *conn, struct imap_session *s)
{
    struct imap_job *j = imap_job_new(s, report_work);
    j->sync = true;
    j->expunges = true;
    /* No tagged line if the pool is full: IDLE's tag is not this job's to
     * end; the change stays marked for the next wakeup or DONE. */
    j->untagged_only = true;
    if (!imap_job_submit(conn, j) && s->watch_arg != NULL)
        atomic_store(&s->watch_arg->changed, true);
}

void imap_cmd_idle(struct petrel_conn *conn, struct imap_session *s)
{
    s->mode = IMAP_MODE_IDLE;
    petrel_conn_set_timeout(conn, IMAP_AUTH_TIMEOUT);
    petrel_conn_printf(conn, "+ idling\r\n");
    if (s->folder != NULL)
        report(conn, s); /* what changed before, at once */
}

void imap_wakeup(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    if (s->mode == IMAP_MODE_IDLE && s->folder != NULL && s->state == IMAP_ST_SELECTED)
        report(conn, s);
    /* Otherwise the next command's end reports it (the mark stays). */
}

static void done_work(struct imap_job *j) { imap_job_ok(j, "IDLE terminated"); }

void imap_idle_line(struct petrel_conn *conn, struct imap_session *s, const char *line, size_t len)
{
    s->mode = IMAP_MODE_CMD;
    if (len != 4 || strncasecmp(line, "DONE", 4) != 0) {
        imap_bad(conn, s, "Expected DONE");
        return;
    }
    if (s->folder == NULL) {
        imap_tagged(conn, s, "OK", "IDLE terminated");
        return;
    }
    struct imap_job *j = imap_job_new(s, done_work);
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}
