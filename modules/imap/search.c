/* SEARCH and UID SEARCH (RFC 3501 section 6.4.4) on imap_search.h: the
 * keys compiled on the I/O thread, the messages matched in a job, the
 * header block or the file read only when a key needs them. RETURN gives
 * an ESEARCH answer (RFC 4731) and SAVE keeps the result for "$" (RFC
 * 5182); SORT and THREAD (sort.c) match through the same run. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_search.h"

#define RET_MIN IMAP_RET_MIN
#define RET_MAX IMAP_RET_MAX
#define RET_ALL IMAP_RET_ALL
#define RET_COUNT IMAP_RET_COUNT
#define RET_SAVE IMAP_RET_SAVE

struct search_arg {
    struct imap_search_run run;
    bool uid;
    bool esearch; /* RETURN given */
    unsigned ret;
};

void imap_search_run_free(struct imap_search_run *run)
{
    imap_search_fts_free(run->search);
    imap_search_free(run->search);
    run->search = NULL;
    petrel_buf_free(&run->header);
    free(run->uids);
    run->uids = NULL;
    free(run->internal_date);
    run->internal_date = NULL;
    free(run->size);
    run->size = NULL;
    run->n = run->cap = 0;
}

static void search_free(void *arg)
{
    struct search_arg *a = arg;
    imap_search_run_free(&a->run);
    free(a);
}

struct match_ctx {
    struct imap_search_run *run;
    struct imap_session *s;
    uint32_t at; /* imap_msgs_seq_walk: the store hands messages in UID order */
};

static int match_one(void *arg, const struct petrel_storage_msg *msg)
{
    struct match_ctx *x = arg;
    struct imap_search_run *run = x->run;
    struct imap_session *s = x->s;
    uint32_t seq = imap_msgs_seq_walk(&s->msgs, msg->uid, &x->at);
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
    if (run->needs & IMAP_SEARCH_NEEDS_HEADER) {
        petrel_buf_reset(&run->header);
        if (imap_storage->fetch_header(s->folder, msg->uid, &run->header) == 0) {
            m.header = petrel_buf_head(&run->header);
            m.header_len = run->header.len;
        }
    }
    if (run->needs & IMAP_SEARCH_NEEDS_FILE) {
        uint64_t size;
        if (imap_storage->fetch_fd(s->folder, msg->uid, &m.fd, &size) != 0)
            m.fd = -1;
    }
    if (imap_search_match(run->search, &m) == 1) {
        if (run->n == run->cap) {
            run->cap = run->cap == 0 ? 256 : run->cap * 2;
            run->uids = petrel_reallocarray(run->uids, run->cap, sizeof(*run->uids));
            if (run->meta) {
                run->internal_date =
                    petrel_reallocarray(run->internal_date, run->cap, sizeof(*run->internal_date));
                run->size = petrel_reallocarray(run->size, run->cap, sizeof(*run->size));
            }
        }
        if (run->meta) {
            run->internal_date[run->n] = msg->internal_date;
            run->size[run->n] = msg->size;
        }
        run->uids[run->n++] = msg->uid;
        if (msg->modseq > run->max_modseq)
            run->max_modseq = msg->modseq;
    }
    if (m.fd >= 0)
        close(m.fd);
    return 0;
}

/* The internal dates OLDER / YOUNGER compare, from the metadata alone. */
struct dates {
    struct imap_search_date *d;
    size_t n, cap;
};

static int add_date(void *arg, const struct petrel_storage_msg *msg)
{
    struct dates *ds = arg;
    if (ds->n == ds->cap) {
        ds->cap = ds->cap == 0 ? 256 : ds->cap * 2;
        ds->d = petrel_reallocarray(ds->d, ds->cap, sizeof(*ds->d));
    }
    ds->d[ds->n++] = (struct imap_search_date){msg->uid, msg->internal_date};
    return 0;
}

int imap_search_run(struct imap_job *j, struct imap_search_run *run)
{
    struct imap_session *s = j->s;
    if (s->msgs.n == 0)
        return 0;
    if (imap_search_uses_within(run->search)) {
        struct dates ds = {0};
        int err = imap_storage->messages(s->folder, NULL, add_date, &ds);
        if (err == 0)
            imap_search_bind_within(run->search, (int64_t)time(NULL), ds.d, ds.n);
        free(ds.d);
        if (err != 0)
            return err;
    }
    run->needs = imap_search_fts(run->search, imap_storage, s->folder); /* docs/fts.md */
    struct match_ctx x = {run, s, 0};
    /* An indexed key that every match needs: only its UIDs are loaded,
     * so a rare word does not walk the whole folder. */
    struct petrel_storage_uid_set only = {0};
    struct petrel_storage_uid_range *ranges = NULL;
    bool narrow = imap_search_fts_narrow(run->search, &ranges, &only.count);
    only.ranges = ranges;
    int err = narrow && only.count == 0
                  ? 0
                  : imap_storage->messages(s->folder, narrow ? &only : NULL, match_one, &x);
    free(ranges);
    return err;
}

/* --- the saved result (RFC 5182) --- */

void imap_saved_clear(struct imap_session *s)
{
    free(s->saved);
    s->saved = NULL;
    s->nsaved = 0;
}

void imap_saved_set(struct imap_session *s, const uint32_t *uids, size_t n)
{
    imap_saved_clear(s);
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->nsaved > 0 && s->saved[s->nsaved - 1].hi + 1 == uids[i]) {
            s->saved[s->nsaved - 1].hi = uids[i];
            continue;
        }
        if (s->nsaved == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            s->saved = petrel_reallocarray(s->saved, cap, sizeof(*s->saved));
        }
        s->saved[s->nsaved++] = (struct petrel_storage_uid_range){uids[i], uids[i]};
    }
}

size_t imap_saved_uids(const struct imap_session *s, struct petrel_storage_uid_range **out_r)
{
    /* UIDs are never used again in a folder, so a saved UID no longer in
     * the table was expunged: dropped here (RFC 5182 section 2.1). */
    struct petrel_storage_uid_range *out = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < s->nsaved; i++)
        for (uint32_t u = s->saved[i].lo; u >= s->saved[i].lo && u <= s->saved[i].hi; u++) {
            if (imap_msgs_seq(&s->msgs, u) != 0) {
                if (n > 0 && out[n - 1].hi + 1 == u) {
                    out[n - 1].hi = u;
                } else {
                    if (n == cap) {
                        cap = cap == 0 ? 16 : cap * 2;
                        out = petrel_reallocarray(out, cap, sizeof(*out));
                    }
                    out[n++] = (struct petrel_storage_uid_range){u, u};
                }
            }
            if (u == UINT32_MAX)
                break;
        }
    *out_r = out;
    return n;
}

/* --- the answers --- */

/* Numbers ascending as a sequence set: "1:3,7". */
static void put_set(struct petrel_buf *out, const uint32_t *v, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = i;
        while (k + 1 < n && v[k + 1] == v[k] + 1)
            k++;
        petrel_buf_printf(out, "%s%u", i > 0 ? "," : "", v[i]);
        if (k > i)
            petrel_buf_printf(out, ":%u", v[k]);
        i = k + 1;
    }
}

void imap_esearch_put(struct imap_job *j, bool uid, unsigned ret, const uint32_t *v, size_t n,
                      uint64_t modseq)
{
    petrel_buf_printf(&j->out, "* ESEARCH (TAG ");
    imap_put_string(&j->out, j->tag, strlen(j->tag));
    petrel_buf_printf(&j->out, ")%s", uid ? " UID" : "");
    if (n > 0 && (ret & RET_MIN))
        petrel_buf_printf(&j->out, " MIN %u", v[0]);
    if (n > 0 && (ret & RET_MAX))
        petrel_buf_printf(&j->out, " MAX %u", v[n - 1]);
    if (n > 0 && (ret & RET_ALL)) {
        petrel_buf_printf(&j->out, " ALL ");
        put_set(&j->out, v, n); /* runs only where ascending: the order stays */
    }
    if (ret & RET_COUNT)
        petrel_buf_printf(&j->out, " COUNT %zu", n);
    if (modseq != 0)
        petrel_buf_printf(&j->out, " MODSEQ %llu", (unsigned long long)modseq);
    petrel_buf_append(&j->out, "\r\n", 2);
}

uint64_t imap_search_answer_modseq(const struct imap_search_run *run)
{
    return (run->needs & IMAP_SEARCH_NEEDS_MODSEQ) && run->n > 0 ? run->max_modseq : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* RFC 5182 section 2.4: with MIN and/or MAX alone only those are kept;
 * first and last of the answer's order (SORT's too). */
void imap_saved_keep(struct imap_session *s, unsigned ret, const uint32_t *uids, size_t n)
{
    if ((ret & (RET_MIN | RET_MAX)) != 0 && (ret & (RET_ALL | RET_COUNT)) == 0 && n > 0) {
        uint32_t keep[2];
        size_t k = 0;
        if (ret & RET_MIN)
            keep[k++] = uids[0];
        if ((ret & RET_MAX) && (k == 0 || uids[n - 1] != keep[0]))
            keep[k++] = uids[n - 1];
        if (k == 2 && keep[0] > keep[1]) {
            uint32_t x = keep[0];
            keep[0] = keep[1];
            keep[1] = x;
        }
        imap_saved_set(s, keep, k);
        return;
    }
    uint32_t *sorted = petrel_reallocarray(NULL, n > 0 ? n : 1, sizeof(*sorted));
    if (n > 0)
        memcpy(sorted, uids, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_u32);
    imap_saved_set(s, sorted, n);
    free(sorted);
}

static void search_work(struct imap_job *j)
{
    struct search_arg *a = j->arg;
    struct imap_search_run *run = &a->run;
    int err = imap_search_run(j, run);
    if (err != 0) {
        if (a->ret & RET_SAVE)
            imap_saved_clear(j->s);
        imap_job_storage_error(j, err, "SEARCH failed");
        return;
    }
    if (a->ret & RET_SAVE)
        imap_saved_keep(j->s, a->ret, run->uids, run->n);
    uint64_t modseq = imap_search_answer_modseq(run);
    /* The answer's numbers: UIDs, or sequence numbers in the same order. */
    uint32_t at = 0;
    if (!a->uid)
        for (size_t i = 0; i < run->n; i++)
            run->uids[i] = imap_msgs_seq_walk(&j->s->msgs, run->uids[i], &at);
    if (!a->esearch) {
        petrel_buf_printf(&j->out, "* SEARCH");
        for (size_t i = 0; i < run->n; i++)
            petrel_buf_printf(&j->out, " %u", run->uids[i]);
        if (modseq != 0)
            petrel_buf_printf(&j->out, " (MODSEQ %llu)", (unsigned long long)modseq);
        petrel_buf_append(&j->out, "\r\n", 2);
    } else if (a->ret != RET_SAVE) {
        /* SAVE alone asks for no ESEARCH (RFC 5182 section 2.4). */
        imap_esearch_put(j, a->uid, a->ret, run->uids, run->n, modseq);
    }
    imap_job_ok(j, "%sSEARCH completed", a->uid ? "UID " : "");
}

/* RETURN (option ...): the options, or false with *error_r. */
bool imap_search_parse_return(const struct imap_arg *list, unsigned *ret_r, const char **error_r)
{
    static const struct {
        const char *name;
        unsigned bit;
    } opts[] = {{"MIN", RET_MIN},
                {"MAX", RET_MAX},
                {"ALL", RET_ALL},
                {"COUNT", RET_COUNT},
                {"SAVE", RET_SAVE}};
    unsigned ret = 0;
    for (size_t i = 0; i < list->count; i++) {
        const struct imap_arg *o = &list->list[i];
        size_t k = 0;
        while (o->type == IMAP_ARG_ATOM && o->str != NULL && k < sizeof(opts) / sizeof(opts[0]) &&
               strcasecmp(o->str, opts[k].name) != 0)
            k++;
        if (o->type != IMAP_ARG_ATOM || o->str == NULL || k == sizeof(opts) / sizeof(opts[0])) {
            *error_r = "Unknown SEARCH return option";
            return false;
        }
        ret |= opts[k].bit;
    }
    *ret_r = ret == 0 ? RET_ALL : ret; /* RETURN () is ALL (RFC 4731) */
    return true;
}

bool imap_search_begin(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_arg *args, size_t count, struct imap_search_run *run)
{
    const char *error;
    *run = (struct imap_search_run){0};
    switch (imap_search_compile(count > 0 ? args : NULL, count, &run->search, &error)) {
    case IMAP_SEARCH_OK:
        break;
    case IMAP_SEARCH_BADCHARSET:
        imap_no(conn, s, "[BADCHARSET (UTF-8 US-ASCII)] %s", error);
        return false;
    default:
        imap_bad(conn, s, "%s", error);
        return false;
    }
    if (imap_search_uses_saved(run->search)) {
        struct petrel_storage_uid_range *r;
        size_t n = imap_saved_uids(s, &r);
        imap_search_bind_saved(run->search, r, n);
        free(r);
    }
    run->needs = imap_search_needs(run->search);
    if (run->needs & IMAP_SEARCH_NEEDS_MODSEQ)
        s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
    petrel_buf_init(&run->header, PETREL_STORAGE_MAX_HEADER + 1);
    return true;
}

void imap_cmd_search(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, size_t argi, bool uid)
{
    struct search_arg *a = petrel_calloc(1, sizeof(*a));
    a->uid = uid;
    const struct imap_arg *args = cmd->count > argi ? &cmd->args[argi] : NULL;
    size_t count = cmd->count - argi;
    if (count >= 2 && args[0].type == IMAP_ARG_ATOM && args[0].str != NULL &&
        strcasecmp(args[0].str, "RETURN") == 0 && args[1].type == IMAP_ARG_LIST) {
        const char *error;
        if (!imap_search_parse_return(&args[1], &a->ret, &error)) {
            free(a);
            imap_bad(conn, s, "%s", error);
            return;
        }
        a->esearch = true;
        args += 2;
        count -= 2;
    } else if (s->enabled & IMAP_EN_REV2) {
        a->esearch = true; /* rev2 answers SEARCH with ESEARCH (RFC 9051 6.4.4) */
        a->ret = RET_ALL;
    }
    /* RFC 6855 section 3 (and its errata 4029): strings are UTF-8 once
     * UTF8=ACCEPT is on, so a charset would contradict it. */
    if ((s->enabled & IMAP_EN_UTF8) && count > 0 && imap_arg_atom_is(&args[0], "CHARSET")) {
        free(a);
        imap_bad(conn, s, "No CHARSET after ENABLE UTF8=ACCEPT");
        return;
    }
    if (!imap_search_begin(conn, s, args, count, &a->run)) {
        /* A SEARCH ... SAVE that fails leaves "$" empty (RFC 5182). */
        if (a->ret & RET_SAVE)
            imap_saved_clear(s);
        free(a);
        return;
    }
    bool save = (a->ret & RET_SAVE) != 0;
    struct imap_job *j = imap_job_new(s, search_work);
    j->arg = a;
    j->free_arg = search_free;
    if (!imap_job_submit(conn, j) && save)
        imap_saved_clear(s); /* refused for a full pool: a failed SAVE too */
}
