/* The sent log: which recipients a next hop took, noted the moment the
 * transport says so, before the envelope records it (a worker and an
 * fsync later). A process killed in between leaves the note behind, and
 * the next attempt sends none of them twice. One small file per entry,
 * sent/ID, a recipient a line, appended without fsync: it guards against
 * a killed daemon (the page cache outlives it), not a power cut, which
 * may still bring a duplicate (RFC 1047). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/buf.h>
#include <petrel/log.h>

#include "processing.h"

#define SENT_MAX (1u << 20) /* bytes of one note read back */

void proc_sent_note(const char *id, const struct petrel_transport_msg *msg)
{
    struct petrel_buf b;
    petrel_buf_init(&b, SENT_MAX);
    for (size_t i = 0; i < msg->nrcpts; i++)
        if (msg->rcpts[i].status == PETREL_TRANSPORT_DELIVERED)
            petrel_buf_printf(&b, "%s\n", msg->rcpts[i].address);
    char path[PATH_MAX];
    if (b.len > 0 && queue_path(path, sizeof(path), proc_env.queue, "sent", id)) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        /* One write: a line is never half there for the reader. */
        if (fd < 0 || write(fd, petrel_buf_head(&b), b.len) != (ssize_t)b.len)
            petrel_log(PETREL_LOG_WARNING, PROC_LOG, "%s: cannot note what was sent: %s", id,
                       strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    petrel_buf_free(&b);
}

/* Whether address is a whole line of the note. */
static bool noted(const char *note, size_t len, const char *address)
{
    size_t n = strlen(address);
    for (const char *p = note; p < note + len;) {
        const char *nl = memchr(p, '\n', (size_t)(note + len - p));
        if (nl == NULL)
            return false; /* a line cut short counts for nothing */
        if ((size_t)(nl - p) == n && memcmp(p, address, n) == 0)
            return true;
        p = nl + 1;
    }
    return false;
}

void proc_sent_apply(struct queue_envelope *env)
{
    char path[PATH_MAX];
    if (!queue_path(path, sizeof(path), proc_env.queue, "sent", env->id))
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return;
    char *note = malloc(SENT_MAX);
    ssize_t len = note != NULL ? read(fd, note, SENT_MAX) : -1;
    close(fd);
    for (size_t i = 0; len > 0 && i < env->nrcpts; i++) {
        struct queue_rcpt *r = &env->rcpts[i];
        if (r->route != ROUTE_REMOTE || strchr("PT", r->state) == NULL ||
            !noted(note, (size_t)len, r->address))
            continue;
        r->state = RCPT_DELIVERED;
        queue_rcpt_set_reason(r, "250 2.0.0 sent before a restart (from the sent log)");
        petrel_log(PETREL_LOG_INFO, PROC_LOG,
                   "%s: to=<%s> was sent before a restart: not sent again", env->id, r->address);
    }
    free(note);
}

void proc_sent_clear(const char *id)
{
    char path[PATH_MAX];
    if (queue_path(path, sizeof(path), proc_env.queue, "sent", id))
        unlink(path);
}
