/* SEARCH and UID SEARCH (RFC 3501 section 6.4.4) on imap_search.h: the
 * keys compiled on the I/O thread, the messages matched in a job, the
 * header block or the file read only when a key needs them. */
#include <stdlib.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_search.h"

struct search_arg {
    struct imap_search *search;
    bool uid;
    unsigned needs;
    struct petrel_buf header;
    struct imap_job *j;
    int err;
    uint64_t max_modseq; /* of the matches, for "(MODSEQ n)" (RFC 7162 3.1.5) */
};

static void search_free(void *arg)
{
    struct search_arg *a = arg;
    imap_search_free(a->search);
    petrel_buf_free(&a->header);
    free(a);
}

static int match_one(void *arg, const struct petrel_storage_msg *msg)
{
    struct search_arg *a = arg;
    struct imap_session *s = a->j->s;
    uint32_t seq = imap_msgs_seq(&s->msgs, msg->uid);
    if (seq == 0)
        return 0; /* not announced to the client yet */
    struct imap_search_msg m = {
        .seq = seq,
        .uid = msg->uid,
        .max_seq = s->msgs.n,
        .max_uid = s->msgs.uid[s->msgs.n - 1],
        .flags = msg->flags,
        .keywords = msg->keywords,
        .recent = false, /* no message is \Recent: docs/imap.md */
        .size = msg->size,
        .internal_date = msg->internal_date,
        .modseq = msg->modseq,
        .fd = -1,
    };
    if (a->needs & IMAP_SEARCH_NEEDS_HEADER) {
        petrel_buf_reset(&a->header);
        if (imap_storage->fetch_header(s->folder, msg->uid, &a->header) == 0) {
            m.header = petrel_buf_head(&a->header);
            m.header_len = a->header.len;
        }
    }
    if (a->needs & IMAP_SEARCH_NEEDS_FILE) {
        uint64_t size;
        if (imap_storage->fetch_fd(s->folder, msg->uid, &m.fd, &size) != 0)
            m.fd = -1;
    }
    if (imap_search_match(a->search, &m) == 1) {
        petrel_buf_printf(&a->j->out, " %u", a->uid ? msg->uid : seq);
        if (msg->modseq > a->max_modseq)
            a->max_modseq = msg->modseq;
    }
    if (m.fd >= 0)
        close(m.fd);
    return 0;
}

static void search_work(struct imap_job *j)
{
    struct search_arg *a = j->arg;
    a->j = j;
    petrel_buf_printf(&j->out, "* SEARCH");
    int err = j->s->msgs.n == 0 ? 0 : imap_storage->messages(j->s->folder, NULL, match_one, a);
    if ((a->needs & IMAP_SEARCH_NEEDS_MODSEQ) && a->max_modseq != 0)
        petrel_buf_printf(&j->out, " (MODSEQ %llu)", (unsigned long long)a->max_modseq);
    petrel_buf_append(&j->out, "\r\n", 2);
    if (err != 0) {
        petrel_buf_reset(&j->out);
        imap_job_storage_error(j, err, "SEARCH failed");
        return;
    }
    imap_job_ok(j, "%sSEARCH completed", a->uid ? "UID " : "");
}

void imap_cmd_search(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, size_t argi, bool uid)
{
    struct imap_search *search;
    const char *error;
    const struct imap_arg *args = cmd->count > argi ? &cmd->args[argi] : NULL;
    switch (imap_search_compile(args, cmd->count - argi, &search, &error)) {
    case IMAP_SEARCH_OK:
        break;
    case IMAP_SEARCH_BADCHARSET:
        imap_no(conn, s, "[BADCHARSET (UTF-8 US-ASCII)] %s", error);
        return;
    default:
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct search_arg *a = petrel_calloc(1, sizeof(*a));
    a->search = search;
    a->uid = uid;
    a->needs = imap_search_needs(search);
    if (a->needs & IMAP_SEARCH_NEEDS_MODSEQ)
        s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
    petrel_buf_init(&a->header, PETREL_STORAGE_MAX_HEADER + 1);
    struct imap_job *j = imap_job_new(s, search_work);
    j->arg = a;
    j->free_arg = search_free;
    imap_job_submit(conn, j);
}
