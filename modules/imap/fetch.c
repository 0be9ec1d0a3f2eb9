/* FETCH and UID FETCH (RFC 3501 section 6.4.5): the items parsed on the
 * I/O thread, then the answer built by worker jobs a batch of messages at
 * a time. A body section larger than one read goes out as a literal over
 * several turns (output_drained), never whole in memory. ENVELOPE, BODY,
 * BODYSTRUCTURE and the part table come from imap_msginfo.h, cached in
 * the store so each file is parsed once; sections from imap_section.h,
 * BINARY's decoded bytes from imap_binary.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "imap.h"
#include "imap_binary.h"
#include "imap_date.h"
#include "imap_msginfo.h"
#include "imap_section.h"

#define F_UID 1u
#define F_FLAGS 2u
#define F_DATE 4u
#define F_SIZE 8u
#define F_ENVELOPE 16u
#define F_BODY 32u
#define F_BODYSTRUCTURE 64u
#define F_MODSEQ 128u /* RFC 7162 */
#define F_NEEDS_INFO (F_ENVELOPE | F_BODY | F_BODYSTRUCTURE)
#define MAX_SECTIONS 64u
/* Messages whose metadata one storage call reads. */
#define META_BATCH 256u

struct meta {
    uint32_t uid, seq, flags;
    bool found;
    uint64_t modseq;
    int64_t date;
    uint64_t size;
    char *keywords;
};

struct imap_fetch {
    unsigned items;
    bool uid, seen;   /* seen: a section sets \Seen */
    bool binary;      /* a BINARY item is asked for */
    bool unknown_cte; /* a message was left out for it: the answer is NO */
    struct imap_section *secs[MAX_SECTIONS];
    size_t nsecs;
    struct petrel_storage_uid_set set;
    size_t max_out;
    uint32_t pos; /* next index in the message table */
    struct meta meta[META_BATCH];
    uint32_t nmeta, mi_next;
    /* The message being answered. */
    bool in_msg;
    bool first; /* no item of the message written yet */
    struct meta *cur;
    struct imap_msginfo *info;
    int fd;
    size_t sec_i;
    uint64_t off, left;     /* a literal still to send */
    struct imap_binary bin; /* a BINARY literal still to send (bin.left) */
    bool done;
    /* (CHANGEDSINCE n [VANISHED]), RFC 7162 3.1.4.1 and 3.2.6: only
     * messages with a greater MODSEQ, and first the UIDs of vset that
     * vanished since. */
    uint64_t changedsince;
    bool vanished;
    struct petrel_storage_uid_set vset;
};

static void meta_clear(struct imap_fetch *f)
{
    for (uint32_t i = 0; i < f->nmeta; i++)
        free(f->meta[i].keywords);
    f->nmeta = f->mi_next = 0;
}

static void msg_end(struct imap_fetch *f)
{
    imap_msginfo_free(f->info);
    f->info = NULL;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->in_msg = false;
}

void imap_fetch_free(struct imap_session *s)
{
    struct imap_fetch *f = s->fetch;
    if (f == NULL)
        return;
    msg_end(f);
    meta_clear(f);
    for (size_t i = 0; i < f->nsecs; i++)
        imap_section_free(f->secs[i]);
    free((void *)f->set.ranges);
    free((void *)f->vset.ranges);
    free(f);
    s->fetch = NULL;
}

/* --- the items --- */

static bool add_item(struct imap_fetch *f, const struct imap_arg *a, const char **error_r)
{
    static const struct {
        const char *name;
        unsigned bits;
    } simple[] = {
        {"UID", F_UID},
        {"FLAGS", F_FLAGS},
        {"INTERNALDATE", F_DATE},
        {"RFC822.SIZE", F_SIZE},
        {"ENVELOPE", F_ENVELOPE},
        {"BODY", F_BODY},
        {"BODYSTRUCTURE", F_BODYSTRUCTURE},
        {"MODSEQ", F_MODSEQ},
        {"ALL", F_FLAGS | F_DATE | F_SIZE | F_ENVELOPE},
        {"FAST", F_FLAGS | F_DATE | F_SIZE},
        {"FULL", F_FLAGS | F_DATE | F_SIZE | F_ENVELOPE | F_BODY},
    };
    if (a->type != IMAP_ARG_ATOM) {
        *error_r = "FETCH items are atoms";
        return false;
    }
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
        if (strcasecmp(a->str, simple[i].name) == 0) {
            f->items |= simple[i].bits;
            return true;
        }
    struct imap_section *sec;
    switch (imap_section_parse(a->str, a->len, &sec, error_r)) {
    case IMAP_SECTION_OK:
        if (f->nsecs == MAX_SECTIONS) {
            imap_section_free(sec);
            *error_r = "[LIMIT] Too many sections";
            return false;
        }
        f->seen |= imap_section_sets_seen(sec);
        f->binary |= imap_section_is_binary(sec);
        f->secs[f->nsecs++] = sec;
        return true;
    case IMAP_SECTION_NOT_SECTION:
        *error_r = "Unknown FETCH item";
        return false;
    default:
        return false;
    }
}

static bool parse_items(struct imap_fetch *f, const struct imap_arg *a, const char **error_r)
{
    if (a->type != IMAP_ARG_LIST)
        return add_item(f, a, error_r);
    if (a->count == 0) {
        *error_r = "Empty FETCH item list";
        return false;
    }
    for (size_t i = 0; i < a->count; i++)
        if (!add_item(f, &a->list[i], error_r))
            return false;
    return true;
}

/* --- on a worker --- */

static int take_meta(void *arg, const struct petrel_storage_msg *msg)
{
    struct imap_fetch *f = arg;
    for (uint32_t i = f->mi_next; i < f->nmeta; i++)
        if (f->meta[i].uid == msg->uid) {
            struct meta *m = &f->meta[i];
            m->found = true;
            m->flags = msg->flags;
            m->date = msg->internal_date;
            m->size = msg->size;
            m->modseq = msg->modseq;
            m->keywords = petrel_strdup(msg->keywords);
            f->mi_next = i + 1;
            break;
        }
    return 0;
}

static bool in_set(const struct petrel_storage_uid_set *set, uint32_t uid)
{
    for (size_t i = 0; i < set->count; i++)
        if (uid >= set->ranges[i].lo && uid <= set->ranges[i].hi)
            return true;
    return false;
}

/* The next batch of messages' metadata; false when none are left. */
static bool next_batch(struct imap_session *s, struct imap_fetch *f)
{
    meta_clear(f);
    struct petrel_storage_uid_range r[META_BATCH];
    size_t nr = 0;
    while (f->pos < s->msgs.n && f->nmeta < META_BATCH) {
        uint32_t uid = s->msgs.uid[f->pos++];
        if (!in_set(&f->set, uid))
            continue;
        f->meta[f->nmeta++] = (struct meta){.uid = uid, .seq = f->pos};
        if (nr > 0 && r[nr - 1].hi + 1 == uid)
            r[nr - 1].hi = uid;
        else
            r[nr++] = (struct petrel_storage_uid_range){uid, uid};
    }
    if (f->nmeta == 0)
        return false;
    struct petrel_storage_uid_set set = {r, nr};
    imap_storage->messages(s->folder, &set, take_meta, f);
    f->mi_next = 0;
    return true;
}

static int feed_info(void *arg, const void *data, size_t len)
{
    imap_msginfo_feed(arg, data, len);
    return 0;
}

/* The message's structure: from the cache, else parsed once and cached. */
static struct imap_msginfo *msginfo(struct imap_session *s, uint32_t uid)
{
    struct petrel_buf b;
    petrel_buf_init(&b, PETREL_STORAGE_MAX_CACHE);
    struct imap_msginfo *mi = NULL;
    if (imap_storage->cache_get(s->folder, uid, IMAP_MSGINFO_CACHE_KEY, &b) == 0)
        mi = imap_msginfo_deserialize(petrel_buf_head(&b), b.len);
    if (mi == NULL) {
        struct imap_msginfo_builder *bld = imap_msginfo_builder_new();
        imap_storage->fetch_stream(s->folder, uid, feed_info, bld);
        mi = imap_msginfo_finish(bld);
        petrel_buf_reset(&b);
        imap_msginfo_serialize(mi, &b);
        if (b.len > 0)
            imap_storage->cache_set(s->folder, uid, IMAP_MSGINFO_CACHE_KEY, petrel_buf_head(&b),
                                    b.len);
    }
    petrel_buf_free(&b);
    return mi;
}

/* Items after the first one of a message are separated by a blank. */
static void sep(struct imap_fetch *f, struct petrel_buf *out)
{
    if (!f->first)
        petrel_buf_append(out, " ", 1);
    f->first = false;
}

static void put_value(struct imap_fetch *f, struct petrel_buf *out, const char *name, const char *v,
                      size_t len)
{
    sep(f, out);
    petrel_buf_printf(out, "%s ", name);
    petrel_buf_append(out, v, len);
}

static int take_modseq(void *arg, const struct petrel_storage_msg *msg)
{
    struct meta *m = arg;
    m->modseq = msg->modseq;
    return 0;
}

/* RFC 3516: BINARY of a part whose CTE the server cannot decode fails
 * the command with NO [UNKNOWN-CTE]. The message's answer is left out
 * whole, decided before any of it (or its \Seen) is written. */
static bool binary_refused(const struct imap_fetch *f)
{
    for (size_t i = 0; i < f->nsecs; i++) {
        struct imap_section_plan plan;
        if (!imap_section_is_binary(f->secs[i]))
            continue;
        imap_section_resolve(f->secs[i], f->info, &plan);
        if (plan.kind == IMAP_SECTION_DECODE && plan.unknown_cte)
            return true;
    }
    return false;
}

static void msg_start(struct imap_session *s, struct imap_fetch *f, struct meta *m,
                      struct petrel_buf *out)
{
    f->cur = m;
    f->in_msg = true;
    f->sec_i = 0;
    f->fd = -1;
    if ((f->items & F_NEEDS_INFO) || f->nsecs > 0)
        f->info = msginfo(s, m->uid);
    if (f->binary && binary_refused(f)) {
        f->unknown_cte = true;
        msg_end(f);
        return;
    }
    bool flags = (f->items & F_FLAGS) != 0;
    if (f->seen && !s->readonly && !(m->flags & PETREL_STORAGE_SEEN)) {
        struct petrel_storage_uid_range one = {m->uid, m->uid};
        struct petrel_storage_uid_set set = {&one, 1};
        struct petrel_storage_store req = {.mode = PETREL_STORAGE_FLAGS_ADD,
                                           .flags = PETREL_STORAGE_SEEN};
        if (imap_storage->store(s->folder, &set, &req, NULL, NULL) == 0) {
            imap_storage->messages(s->folder, &set, take_modseq, m); /* the new MODSEQ */
            m->flags |= PETREL_STORAGE_SEEN;
            s->msgs.flags[m->seq - 1] |= PETREL_STORAGE_SEEN;
            flags = true; /* the client learns the change */
        }
    }
    petrel_buf_printf(out, "* %u FETCH (", m->seq);
    f->first = true;
    if (f->uid || (f->items & F_UID)) {
        petrel_buf_printf(out, "UID %u", m->uid);
        f->first = false;
    }
    if (flags) {
        sep(f, out);
        petrel_buf_append(out, "FLAGS ", 6);
        imap_put_flags(out, m->flags, m->keywords);
    }
    /* A CONDSTORE client learns the MODSEQ with the flags (RFC 7162 3.1.4). */
    if ((f->items & F_MODSEQ) || (flags && (s->enabled & IMAP_EN_CONDSTORE))) {
        sep(f, out);
        petrel_buf_printf(out, "MODSEQ (%llu)", (unsigned long long)m->modseq);
    }
    if (f->items & F_DATE) {
        sep(f, out);
        char date[IMAP_DATETIME_LEN + 1];
        imap_datetime_format(m->date, date);
        petrel_buf_printf(out, "INTERNALDATE \"%s\"", date);
    }
    if (f->items & F_SIZE) {
        sep(f, out);
        petrel_buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)m->size);
    }
    size_t len;
    const char *v;
    if (f->items & F_ENVELOPE) {
        v = imap_msginfo_envelope(f->info, &len);
        put_value(f, out, "ENVELOPE", v, len);
    }
    if (f->items & F_BODY) {
        v = imap_msginfo_body(f->info, &len);
        put_value(f, out, "BODY", v, len);
    }
    if (f->items & F_BODYSTRUCTURE) {
        v = imap_msginfo_bodystructure(f->info, &len);
        put_value(f, out, "BODYSTRUCTURE", v, len);
    }
    if (f->nsecs > 0) {
        uint64_t size;
        if (imap_storage->fetch_fd(s->folder, m->uid, &f->fd, &size) != 0)
            f->fd = -1;
    }
}

/* Bytes at off of the message into out; a short file gives what it has
 * and the rest as blanks, so the literal keeps its announced size. */
static void put_file(int fd, uint64_t off, uint64_t len, struct petrel_buf *out)
{
    while (len > 0) {
        size_t room;
        size_t want = len > IMAP_READ_BYTES ? IMAP_READ_BYTES : (size_t)len;
        char *p = petrel_buf_space(out, want, &room);
        if (room == 0)
            return;
        if (room > want)
            room = want;
        ssize_t n = fd >= 0 ? pread(fd, p, room, (off_t)off) : 0;
        if (n <= 0) {
            memset(p, ' ', room);
            n = (ssize_t)room;
        }
        petrel_buf_commit(out, (size_t)n);
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
}

/* BINARY[...]<partial> or BINARY.SIZE[...]: the section is decoded once
 * to learn its size (and whether a NUL asks for a literal8, RFC 3516
 * section 4.3), then again as it is sent; false when the literal goes out
 * over later turns. */
static bool put_binary(struct imap_fetch *f, struct imap_section *sec, struct petrel_buf *out)
{
    struct imap_section_plan plan;
    uint64_t size = 0, start, count;
    bool nul = false;
    imap_section_resolve(sec, f->info, &plan);
    if (plan.kind == IMAP_SECTION_DECODE)
        imap_binary_measure(f->fd, &plan, &size, &nul);
    sep(f, out);
    if (imap_section_is_size(sec)) {
        petrel_buf_printf(out, "%s %llu", imap_section_name(sec), (unsigned long long)size);
        return true;
    }
    imap_section_partial(sec, size, &start, &count);
    petrel_buf_printf(out, "%s %s{%llu}\r\n", imap_section_name(sec), nul ? "~" : "",
                      (unsigned long long)count);
    petrel_counter_add(imap_counters.fetched_bytes, (int64_t)count);
    imap_binary_start(&f->bin, f->fd, &plan, start, count);
    return imap_binary_put(&f->bin, IMAP_READ_BYTES, out) == 0;
}

/* One section; false when its literal goes out over later turns. */
static bool put_section(struct imap_fetch *f, struct imap_section *sec, struct petrel_buf *out)
{
    if (imap_section_is_binary(sec))
        return put_binary(f, sec, out);
    struct imap_section_plan plan;
    imap_section_resolve(sec, f->info, &plan);
    sep(f, out);
    petrel_buf_printf(out, "%s ", imap_section_name(sec));
    uint64_t start, count;
    if (plan.kind == IMAP_SECTION_FILTER) {
        struct petrel_buf hdr, kept;
        size_t cap =
            plan.length > PETREL_STORAGE_MAX_CACHE ? PETREL_STORAGE_MAX_CACHE : (size_t)plan.length;
        petrel_buf_init(&hdr, cap + 1);
        petrel_buf_init(&kept, cap + 1);
        put_file(f->fd, plan.offset, cap, &hdr);
        imap_section_filter(sec, petrel_buf_head(&hdr), hdr.len, &kept);
        imap_section_partial(sec, kept.len, &start, &count);
        petrel_buf_printf(out, "{%llu}\r\n", (unsigned long long)count);
        petrel_buf_append(out, petrel_buf_head(&kept) + start, (size_t)count);
        petrel_buf_free(&hdr);
        petrel_buf_free(&kept);
        return true;
    }
    uint64_t len = plan.kind == IMAP_SECTION_EMPTY ? 0 : plan.length;
    imap_section_partial(sec, len, &start, &count);
    petrel_buf_printf(out, "{%llu}\r\n", (unsigned long long)count);
    petrel_counter_add(imap_counters.fetched_bytes, (int64_t)count);
    if (count <= IMAP_READ_BYTES) {
        put_file(f->fd, plan.offset + start, count, out);
        return true;
    }
    f->off = plan.offset + start;
    f->left = count;
    return false;
}

/* The message's sections from sec_i on; false while a literal streams. */
static bool msg_go_on(struct imap_fetch *f, struct petrel_buf *out)
{
    while (f->sec_i < f->nsecs) {
        if (!put_section(f, f->secs[f->sec_i++], out))
            return false;
    }
    petrel_buf_append(out, ")\r\n", 3);
    msg_end(f);
    return true;
}

static void stream_part(struct imap_fetch *f, struct petrel_buf *out)
{
    uint64_t n = f->left > IMAP_READ_BYTES ? IMAP_READ_BYTES : f->left;
    put_file(f->fd, f->off, n, out);
    f->off += n;
    f->left -= n;
}

struct vanished {
    struct petrel_storage_uid_range *r;
    size_t n, cap;
};

static void on_vanished(void *arg, uint32_t lo, uint32_t hi)
{
    struct vanished *v = arg;
    imap_uid_ranges_push(&v->r, &v->n, &v->cap, lo, hi);
}

static void put_vanished(struct imap_session *s, struct imap_fetch *f, struct petrel_buf *out)
{
    struct vanished v = {0};
    if (imap_storage->changes_since(s->folder, f->changedsince, NULL, on_vanished, &v) == 0) {
        struct petrel_storage_uid_range *r;
        size_t n = imap_uid_ranges_intersect(v.r, v.n, &f->vset, &r);
        imap_put_vanished(out, true, r, n);
        free(r);
    }
    free(v.r);
}

static void fetch_work(struct imap_job *j)
{
    struct imap_session *s = j->s;
    struct imap_fetch *f = s->fetch;
    struct petrel_buf *out = &j->out;
    if (f->vanished) {
        put_vanished(s, f, out);
        f->vanished = false;
    }
    while (out->len < f->max_out) {
        if (f->left > 0) {
            stream_part(f, out);
            if (f->left > 0)
                return;
        }
        if (f->bin.left > 0 && imap_binary_put(&f->bin, IMAP_READ_BYTES, out) > 0)
            return;
        if (f->in_msg) {
            if (!msg_go_on(f, out))
                continue;
        }
        if (f->mi_next >= f->nmeta && !next_batch(s, f)) {
            f->done = true;
            if (f->unknown_cte)
                imap_job_no(j, "[UNKNOWN-CTE] A part's Content-Transfer-Encoding is unknown");
            else
                imap_job_ok(j, "%sFETCH completed", f->uid ? "UID " : "");
            return;
        }
        struct meta *m = &f->meta[f->mi_next++];
        if (m->found && (f->changedsince == 0 || m->modseq > f->changedsince))
            msg_start(s, f, m, out);
    }
}

static void fetch_after(struct petrel_conn *conn, struct imap_job *j)
{
    struct imap_session *s = j->s;
    if (s->fetch->done)
        imap_fetch_free(s);
    else
        petrel_conn_want_drained(conn);
}

static void fetch_submit(struct petrel_conn *conn, struct imap_session *s)
{
    struct imap_job *j = imap_job_new(s, fetch_work);
    j->after = fetch_after;
    if (imap_job_submit(conn, j))
        return;
    /* Answered NO: the FETCH ends here. Part of it may be out already,
     * a literal perhaps: the client cannot read on, so it goes. */
    bool started = s->fetch->pos > 0;
    imap_fetch_free(s);
    if (started) {
        petrel_conn_log(conn, PETREL_LOG_WARNING, "no worker for the rest of a FETCH: closing");
        s->state = IMAP_ST_LOGOUT;
        petrel_conn_close(conn);
        return;
    }
    imap_command_end(conn, s);
}

void imap_fetch_more(struct petrel_conn *conn, struct imap_session *s) { fetch_submit(conn, s); }

/* FETCH's modifier list: CHANGEDSINCE n, and VANISHED with it in UID
 * FETCH once QRESYNC is enabled (RFC 7162 3.2.6). */
static bool fetch_modifiers(struct imap_session *s, struct imap_fetch *f, const struct imap_arg *l,
                            const char **error_r)
{
    *error_r = "FETCH modifiers are (CHANGEDSINCE n [VANISHED])";
    if (l->type != IMAP_ARG_LIST || l->count == 0)
        return false;
    for (size_t i = 0; i < l->count; i++) {
        if (imap_arg_atom_is(&l->list[i], "CHANGEDSINCE") && i + 1 < l->count &&
            f->changedsince == 0) {
            if (!imap_parse_modseq(&l->list[++i], false, &f->changedsince)) {
                *error_r = "Bad CHANGEDSINCE value";
                return false;
            }
        } else if (imap_arg_atom_is(&l->list[i], "VANISHED") && !f->vanished) {
            f->vanished = true;
        } else {
            return false;
        }
    }
    if (f->vanished && (f->changedsince == 0 || !f->uid || !(s->enabled & IMAP_EN_QRESYNC))) {
        *error_r = "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled";
        return false;
    }
    f->items |= f->changedsince != 0 ? F_MODSEQ : 0;
    return f->changedsince != 0;
}

void imap_cmd_fetch(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd, size_t argi, bool uid)
{
    if (cmd->count != argi + 2 && cmd->count != argi + 3) {
        imap_bad(conn, s, "FETCH takes a set and items");
        return;
    }
    struct imap_fetch *f = petrel_calloc(1, sizeof(*f));
    f->fd = -1;
    f->uid = uid;
    const char *error;
    if (!parse_items(f, &cmd->args[argi + 1], &error) ||
        !imap_set_to_uids(s, &cmd->args[argi], uid, &f->set, &error) ||
        (cmd->count == argi + 3 && !fetch_modifiers(s, f, &cmd->args[argi + 2], &error)) ||
        (f->vanished && !imap_uid_set_wide(s, &cmd->args[argi], &f->vset, &error))) {
        s->fetch = f;
        imap_fetch_free(s);
        imap_bad(conn, s, "%s", error);
        return;
    }
    if (f->items & F_MODSEQ)
        s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
    size_t max = petrel_conn_max_output(conn);
    f->max_out = max > 2 * IMAP_READ_BYTES ? max / 2 : IMAP_READ_BYTES;
    s->fetch = f;
    fetch_submit(conn, s);
}
