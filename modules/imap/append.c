/* APPEND (RFC 3501 section 6.3.11) with flags, internal date, LITERAL+
 * and APPENDUID (RFC 4315). A message larger than the reader keeps in
 * memory goes through its sink (imap_parse.h) to a spool file, never
 * whole into memory; the store reads it from there on a worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "imap.h"
#include "imap_date.h"

/* --- the spool (the parser's sink) --- */

static int spool_open(void)
{
    const char *dir = imap_spool_dir;
    /* Nameless where the file system allows: nothing to clean up. */
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
        return fd;
    char path[4096];
    if (!petrel_snprintf(path, sizeof(path), "%s/append-......", dir))
        return -1;
    /* mkostemp's template: the six dots become its six placeholders. */
    memset(path + strlen(path) - 6, 'X', 6);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static bool sink_open(void *arg, const char *command, uint64_t size)
{
    struct imap_session *s = arg;
    if (strcmp(command, "APPEND") != 0 || s->state == IMAP_ST_NOAUTH || s->spool_fd >= 0 ||
        size > (uint64_t)s->cfg->max_literal)
        return false;
    s->spool_fd = spool_open();
    s->spool_size = size;
    if (s->spool_fd < 0)
        petrel_log(PETREL_LOG_WARNING, IMAP_LOG, "cannot create an APPEND spool file: %s",
                   strerror(errno));
    return s->spool_fd >= 0;
}

static bool sink_write(void *arg, const void *data, size_t len)
{
    struct imap_session *s = arg;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(s->spool_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            petrel_log(PETREL_LOG_WARNING, IMAP_LOG, "cannot write the APPEND spool: %s",
                       strerror(errno));
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void sink_close(void *arg, bool ok)
{
    if (!ok)
        imap_spool_close(arg);
}

void imap_spool_close(struct imap_session *s)
{
    if (s->spool_fd >= 0)
        close(s->spool_fd);
    s->spool_fd = -1;
}

const struct imap_literal_sink *imap_append_sink(struct imap_session *s)
{
    /* One sink per session: its arg is the session. */
    s->sink = (struct imap_literal_sink){sink_open, sink_write, sink_close, s};
    return &s->sink;
}

/* --- APPEND --- */

struct append_arg {
    char *folder;
    char *keywords;
    struct petrel_storage_append attrs;
    struct petrel_storage_source src;
    void *data;
};

static void append_free(void *arg)
{
    struct append_arg *a = arg;
    free(a->folder);
    free(a->keywords);
    free(a->data);
    if (a->src.fd >= 0)
        close(a->src.fd);
    free(a);
}

static void append_work(struct imap_job *j)
{
    struct append_arg *a = j->arg;
    uint32_t uid = 0, uidvalidity = 0;
    if (a->src.fd >= 0 && lseek(a->src.fd, 0, SEEK_SET) != 0) {
        imap_job_no(j, "[UNAVAILABLE] Cannot read the message back");
        return;
    }
    int err = imap_quota_limits(j->s, &a->attrs.quota);
    if (err == 0)
        err = imap_storage->append(j->s->mbox, a->folder, &a->src, &a->attrs, &uid, &uidvalidity);
    if (err == PETREL_STORAGE_NOT_FOUND) {
        imap_job_no(j, "[TRYCREATE] No such mailbox");
        return;
    }
    if (err != 0) {
        imap_job_storage_error(j, err, "APPEND failed");
        return;
    }
    petrel_counter_add(imap_counters.appended, 1);
    imap_job_ok(j, "[APPENDUID %u %u] APPEND completed", uidvalidity, uid);
}

/* The optional flag list and date-time between the name and the message. */
/* The options between the mailbox and cmd->args[last], the message. */
static bool append_options(const struct imap_command *cmd, size_t last, struct append_arg *a,
                           const char **error_r)
{
    size_t i = 1;
    if (i < last && cmd->args[i].type == IMAP_ARG_LIST) {
        if (!imap_parse_flags(&cmd->args[i], &a->attrs.flags, &a->keywords, error_r))
            return false;
        a->attrs.keywords = a->keywords;
        i++;
    }
    if (i < last) {
        const struct imap_arg *d = &cmd->args[i];
        if (d->type != IMAP_ARG_STRING || d->spooled ||
            !imap_datetime_parse(d->str, d->len, &a->attrs.internal_date)) {
            *error_r = "Bad date-time";
            return false;
        }
        i++;
    }
    if (i != last) {
        *error_r = "APPEND takes a mailbox, flags, a date-time and a message";
        return false;
    }
    return true;
}

void imap_cmd_append(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    const char *error = "APPEND takes a mailbox, flags, a date-time and a message";
    const struct imap_arg *msg = cmd->count >= 2 ? &cmd->args[cmd->count - 1] : NULL;
    size_t last = cmd->count - 1;
    /* RFC 6855 section 4: "UTF8 (~{n}...)" is a message with UTF-8 in its
     * header; the store takes it as it is. */
    if (msg != NULL && msg->type == IMAP_ARG_LIST && cmd->count >= 3 &&
        imap_arg_atom_is(&cmd->args[cmd->count - 2], "UTF8")) {
        if (!(s->enabled & IMAP_EN_UTF8)) {
            imap_bad(conn, s, "APPEND UTF8 needs ENABLE UTF8=ACCEPT");
            return;
        }
        msg = msg->count == 1 && msg->list[0].binary ? &msg->list[0] : NULL;
        last--;
    }
    if (msg == NULL || msg->type != IMAP_ARG_STRING) {
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct append_arg *a = petrel_calloc(1, sizeof(*a));
    a->src.fd = -1;
    a->folder = imap_folder_from_wire(s, &cmd->args[0], &error);
    if (a->folder == NULL || !append_options(cmd, last, a, &error)) {
        append_free(a);
        imap_bad(conn, s, "%s", error);
        return;
    }
    if (msg->spooled) {
        a->src.fd = s->spool_fd; /* the job's now */
        a->src.fd_len = s->spool_size;
        s->spool_fd = -1;
    } else {
        a->data = petrel_malloc(msg->len + 1);
        memcpy(a->data, msg->str, msg->len);
        a->src.data = a->data;
        a->src.len = msg->len;
    }
    struct imap_job *j = imap_job_new(s, append_work);
    j->arg = a;
    j->free_arg = append_free;
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}
