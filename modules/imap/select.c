/* SELECT and EXAMINE, CLOSE and UNSELECT (RFC 3691), the selected
 * folder's message table (sequence number to UID and flags), the changes
 * other sessions made reported as EXISTS, RECENT, EXPUNGE and FETCH FLAGS
 * (RFC 3501 section 7), and sequence sets to UIDs. */
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "imap.h"
#include "imap_seqset.h"

/* --- the message table --- */

static uint32_t lower_bound(const struct imap_msgs *m, uint32_t uid)
{
    uint32_t lo = 0, hi = m->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->uid[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t imap_msgs_seq(const struct imap_msgs *m, uint32_t uid)
{
    uint32_t i = lower_bound(m, uid);
    return i < m->n && m->uid[i] == uid ? i + 1 : 0;
}

uint32_t imap_msgs_seq_walk(const struct imap_msgs *m, uint32_t uid, uint32_t *at)
{
    uint32_t i = *at;
    if (i > m->n || (i > 0 && m->uid[i - 1] >= uid))
        i = lower_bound(m, uid); /* not ascending after all */
    else
        while (i < m->n && m->uid[i] < uid)
            i++;
    *at = i;
    return i < m->n && m->uid[i] == uid ? i + 1 : 0;
}

void imap_msgs_remove(struct imap_msgs *m, uint32_t seq)
{
    uint32_t i = seq - 1;
    memmove(&m->uid[i], &m->uid[i + 1], (m->n - i - 1) * sizeof(m->uid[0]));
    memmove(&m->flags[i], &m->flags[i + 1], (m->n - i - 1) * sizeof(m->flags[0]));
    m->n--;
}

void imap_msgs_add(struct imap_msgs *m, uint32_t uid, uint8_t flags)
{
    if (m->n == m->cap) {
        m->cap = m->cap == 0 ? 64 : m->cap * 2;
        m->uid = petrel_reallocarray(m->uid, m->cap, sizeof(m->uid[0]));
        m->flags = petrel_reallocarray(m->flags, m->cap, sizeof(m->flags[0]));
    }
    m->uid[m->n] = uid;
    m->flags[m->n] = flags;
    m->n++;
}

static void msgs_free(struct imap_msgs *m)
{
    free(m->uid);
    free(m->flags);
    *m = (struct imap_msgs){0};
}

/* --- sequence sets --- */

static void push_uid(struct petrel_storage_uid_range **r, size_t *n, size_t *cap, uint32_t uid)
{
    if (*n > 0 && (*r)[*n - 1].hi + 1 == uid) {
        (*r)[*n - 1].hi = uid;
        return;
    }
    if (*n == *cap) {
        *cap = *cap == 0 ? 16 : *cap * 2;
        *r = petrel_reallocarray(*r, *cap, sizeof(**r));
    }
    (*r)[(*n)++] = (struct petrel_storage_uid_range){uid, uid};
}

bool imap_set_to_uids(const struct imap_session *s, const struct imap_arg *arg, bool uid,
                      struct petrel_storage_uid_set *set_r, const char **error_r)
{
    struct imap_seqset set;
    *set_r = (struct petrel_storage_uid_set){0};
    if (arg->type != IMAP_ARG_ATOM) {
        *error_r = "Bad sequence set";
        return false;
    }
    enum imap_seqset_result r = imap_seqset_parse(arg->str, arg->len, &set);
    if (r == IMAP_SEQSET_OK && set.saved) {
        /* "$": the saved SEARCH result, messages either way (RFC 5182). */
        struct petrel_storage_uid_range *saved;
        set_r->count = imap_saved_uids(s, &saved);
        set_r->ranges = saved;
        return true;
    }
    if (r != IMAP_SEQSET_OK) {
        *error_r = r == IMAP_SEQSET_LIMIT ? "[LIMIT] Too many ranges" : "Bad sequence set";
        return false;
    }
    const struct imap_msgs *m = &s->msgs;
    if (!uid)
        for (size_t i = 0; i < set.count; i++)
            /* "1:*" in an empty folder is an empty set, as clients expect. */
            if ((set.ranges[i].lo > m->n || set.ranges[i].hi > m->n) &&
                !(m->n == 0 &&
                  (set.ranges[i].lo == IMAP_SEQ_STAR || set.ranges[i].hi == IMAP_SEQ_STAR))) {
                imap_seqset_free(&set);
                *error_r = "Invalid message sequence number";
                return false;
            }
    struct petrel_storage_uid_range *ranges = NULL;
    uint32_t star = uid ? (m->n > 0 ? m->uid[m->n - 1] : 0) : m->n;
    size_t n = imap_seqset_resolve(&set, star, &ranges);
    imap_seqset_free(&set);
    if (uid) {
        set_r->ranges = ranges;
        set_r->count = n;
        return true;
    }
    struct petrel_storage_uid_range *out = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t seq = ranges[i].lo; seq >= 1 && seq <= ranges[i].hi && seq <= m->n; seq++) {
            push_uid(&out, &count, &cap, m->uid[seq - 1]);
            if (seq == UINT32_MAX)
                break;
        }
    free(ranges);
    set_r->ranges = out;
    set_r->count = count;
    return true;
}

/* --- updates --- */

struct change {
    uint64_t modseq;
    uint32_t uid;
    uint8_t flags;
    bool keywords;
};

struct collect {
    struct change *changed;
    size_t n, cap;
    struct petrel_storage_uid_range *vanished;
    size_t nv, capv;
};

static int on_changed(void *arg, const struct petrel_storage_msg *msg)
{
    struct collect *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap == 0 ? 64 : c->cap * 2;
        c->changed = petrel_reallocarray(c->changed, c->cap, sizeof(*c->changed));
    }
    c->changed[c->n++] = (struct change){.modseq = msg->modseq,
                                         .uid = msg->uid,
                                         .flags = IMAP_MSG_BYTE(msg),
                                         .keywords = msg->keywords[0] != '\0'};
    return 0;
}

static void on_vanished(void *arg, uint32_t lo, uint32_t hi)
{
    struct collect *c = arg;
    if (c->nv == c->capv) {
        c->capv = c->capv == 0 ? 16 : c->capv * 2;
        c->vanished = petrel_reallocarray(c->vanished, c->capv, sizeof(*c->vanished));
    }
    c->vanished[c->nv++] = (struct petrel_storage_uid_range){lo, hi};
}

/* The flags with keywords, read again for an update line. */
static int put_flags_of(void *arg, const struct petrel_storage_msg *msg)
{
    imap_put_flags(arg, msg->flags, msg->keywords);
    return 0;
}

/* Both: false when they stopped at half of max_answer; what is left is found
 * again by the next sync (s->modseq not advanced), and what was applied
 * is not reported twice (the table already has it). */
static bool apply_vanished(struct imap_session *s, const struct collect *c, struct petrel_buf *out)
{
    /* A QRESYNC client is told VANISHED with the UIDs instead of one
     * EXPUNGE a message (RFC 7162 3.2.10). */
    bool qresync = (s->enabled & IMAP_EN_QRESYNC) != 0;
    struct petrel_storage_uid_range *gone = NULL;
    size_t ngone = 0, cap = 0;
    bool all = true;
    for (size_t i = 0; i < c->nv && all; i++) {
        uint32_t k = lower_bound(&s->msgs, c->vanished[i].lo);
        while (k < s->msgs.n && s->msgs.uid[k] <= c->vanished[i].hi) {
            if (out->len + ngone * 24 > (size_t)s->cfg->max_answer / 2) {
                all = false;
                break;
            }
            if (qresync)
                imap_uid_ranges_push(&gone, &ngone, &cap, s->msgs.uid[k], s->msgs.uid[k]);
            else
                petrel_buf_printf(out, "* %u EXPUNGE\r\n", k + 1);
            imap_msgs_remove(&s->msgs, k + 1);
        }
    }
    imap_put_vanished(out, false, gone, ngone);
    free(gone);
    return all;
}

/* This session's own STORE made this change (and the message has not
 * changed since). */
static bool own_change(const struct imap_session *s, const struct change *ch)
{
    for (size_t i = 0; i < s->nown; i++)
        if (s->own[i].uid == ch->uid && s->own[i].modseq == ch->modseq)
            return true;
    return false;
}

static bool apply_changed(struct imap_session *s, const struct collect *c, struct petrel_buf *out)
{
    uint32_t before = s->msgs.n;
    bool all = true;
    for (size_t i = 0; i < c->n; i++) {
        const struct change *ch = &c->changed[i];
        if (out->len > (size_t)s->cfg->max_answer / 2) {
            all = false;
            break;
        }
        uint32_t seq = imap_msgs_seq(&s->msgs, ch->uid);
        if (seq == 0) {
            if (s->msgs.n == 0 || ch->uid > s->msgs.uid[s->msgs.n - 1]) {
                imap_msgs_add(&s->msgs, ch->uid, ch->flags);
            }
            continue;
        }
        /* Unchanged flags: nothing to say, unless keywords are involved
         * (the byte only knows whether there are any). */
        uint8_t *byte = &s->msgs.flags[seq - 1];
        if (seq > before || (*byte == ch->flags && (!ch->keywords || own_change(s, ch))))
            continue;
        *byte = ch->flags;
        petrel_buf_printf(out, "* %u FETCH (", seq);
        /* QRESYNC: every unsolicited FETCH names the UID (RFC 7162
         * 3.2.4); CONDSTORE: and the MODSEQ (3.1.4). */
        if (s->enabled & IMAP_EN_QRESYNC)
            petrel_buf_printf(out, "UID %u ", ch->uid);
        petrel_buf_append(out, "FLAGS ", 6);
        struct petrel_storage_uid_range one = {ch->uid, ch->uid};
        struct petrel_storage_uid_set set = {&one, 1};
        if (imap_storage->messages(s->folder, &set, put_flags_of, out) != 0)
            imap_put_flags(out, ch->flags & PETREL_STORAGE_FLAGS_ALL, NULL);
        if (s->enabled & IMAP_EN_CONDSTORE)
            petrel_buf_printf(out, " MODSEQ (%llu)", (unsigned long long)ch->modseq);
        petrel_buf_append(out, ")\r\n", 3);
    }
    /* RECENT is always 0: no message is \Recent (docs/imap.md); rev2 has none. */
    if (s->msgs.n != before)
        petrel_buf_printf(out, "* %u EXISTS\r\n%s", s->msgs.n,
                          (s->enabled & IMAP_EN_REV2) ? "" : "* 0 RECENT\r\n");
    return all;
}

int imap_sync(struct imap_session *s, struct petrel_buf *out, bool expunges)
{
    /* EXPUNGE may not be sent during FETCH, STORE and SEARCH (RFC 3501
     * section 7.4.1): their updates wait for the next command. */
    if (!expunges)
        return 0;
    bool changed = imap_watch_changed(s);
    (void)changed;
    struct petrel_storage_status st;
    int err = imap_storage->status(s->folder, &st);
    if (err != 0)
        return err;
    if (st.highestmodseq == s->modseq && st.uidnext == s->uidnext)
        return 0;
    struct collect c = {0};
    err = imap_storage->changes_since(s->folder, s->modseq, on_changed, on_vanished, &c);
    if (err == 0) {
        if (apply_vanished(s, &c, out) && apply_changed(s, &c, out)) {
            s->modseq = st.highestmodseq;
            s->uidnext = st.uidnext;
            s->nown = 0; /* all seen: the next sync starts past them */
        }
    }
    free(c.changed);
    free(c.vanished);
    return err;
}

/* --- SELECT, EXAMINE --- */

struct select_arg {
    char *name;
    bool readonly;
    uint32_t unseen; /* sequence number of the first unseen */
    /* QRESYNC (RFC 7162 3.2.5): what the client knew. known is the
     * known-uids atom, resolved once the folder's UIDNEXT is known. */
    bool qresync;
    uint32_t q_uidvalidity;
    uint64_t q_modseq;
    char *known;
};

static void select_free(void *arg)
{
    struct select_arg *a = arg;
    free(a->name);
    free(a->known);
    free(a);
}

void imap_unselect(struct imap_session *s)
{
    imap_watch_stop(s);
    if (s->folder != NULL)
        imap_storage->folder_close(s->folder);
    s->folder = NULL;
    free(s->folder_name);
    s->folder_name = NULL;
    msgs_free(&s->msgs);
    imap_saved_clear(s);
    s->modseq = 0;
    s->nown = 0;
    if (s->state == IMAP_ST_SELECTED)
        s->state = IMAP_ST_AUTH;
}

static int add_msg(void *arg, const struct petrel_storage_msg *msg)
{
    struct imap_job *j = arg;
    struct imap_session *s = j->s;
    struct select_arg *a = j->arg;
    imap_msgs_add(&s->msgs, msg->uid, (uint8_t)IMAP_MSG_BYTE(msg));
    if (a->unseen == 0 && !(msg->flags & PETREL_STORAGE_SEEN))
        a->unseen = s->msgs.n;
    return 0;
}

static int open_folder(struct imap_job *j, struct petrel_storage_status *st)
{
    struct imap_session *s = j->s;
    struct select_arg *a = j->arg;
    int err = imap_storage->folder_open(s->mbox, a->name, &s->folder);
    if (err == 0)
        err = imap_storage->status(s->folder, st);
    if (err == 0)
        err = imap_storage->messages(s->folder, NULL, add_msg, j);
    if (err == 0)
        err = imap_watch_start(s, a->name);
    return err;
}

struct resync {
    struct imap_session *s;
    struct petrel_buf *out;
    const struct petrel_storage_uid_set *known; /* NULL: all */
    struct petrel_storage_uid_range *vanished;
    size_t nv, capv;
};

static bool known_uid(const struct petrel_storage_uid_set *known, uint32_t uid)
{
    if (known == NULL)
        return true;
    for (size_t i = 0; i < known->count; i++)
        if (uid >= known->ranges[i].lo && uid <= known->ranges[i].hi)
            return true;
    return false;
}

static int resync_changed(void *arg, const struct petrel_storage_msg *msg)
{
    struct resync *r = arg;
    uint32_t seq = imap_msgs_seq(&r->s->msgs, msg->uid);
    if (seq == 0 || !known_uid(r->known, msg->uid))
        return 0;
    petrel_buf_printf(r->out, "* %u FETCH (UID %u FLAGS ", seq, msg->uid);
    imap_put_flags(r->out, msg->flags, msg->keywords);
    petrel_buf_printf(r->out, " MODSEQ (%llu))\r\n", (unsigned long long)msg->modseq);
    return 0;
}

static void resync_vanished(void *arg, uint32_t lo, uint32_t hi)
{
    struct resync *r = arg;
    imap_uid_ranges_push(&r->vanished, &r->nv, &r->capv, lo, hi);
}

/* QRESYNC's answer: what vanished since the client's MODSEQ, then the
 * messages that changed (flags or new), both limited to its known UIDs.
 * A MODSEQ older than the store's expunged window gets every missing UID
 * as vanished (docs/imap-sync.md). */
static int resync(struct imap_job *j, struct select_arg *a)
{
    struct imap_session *s = j->s;
    struct petrel_storage_uid_set known = {0};
    const char *error;
    struct imap_arg arg = {
        .type = IMAP_ARG_ATOM, .str = a->known, .len = a->known != NULL ? strlen(a->known) : 0};
    if (a->known != NULL && !imap_uid_set_wide(s, &arg, &known, &error))
        return PETREL_STORAGE_INVALID_ARG; /* checked when parsed */
    struct petrel_buf changed;
    petrel_buf_init(&changed, IMAP_OUT_MAX);
    struct resync r = {s, &changed, a->known != NULL ? &known : NULL, NULL, 0, 0};
    int err =
        imap_storage->changes_since(s->folder, a->q_modseq, resync_changed, resync_vanished, &r);
    if (err == 0) {
        /* Without known UIDs: all below UIDNEXT the client may have seen. */
        struct petrel_storage_uid_range below = {1, s->uidnext > 1 ? s->uidnext - 1 : 1};
        struct petrel_storage_uid_set upto = {&below, 1};
        struct petrel_storage_uid_range *v;
        size_t nv =
            imap_uid_ranges_intersect(r.vanished, r.nv, a->known != NULL ? &known : &upto, &v);
        imap_put_vanished(&j->out, true, v, nv);
        free(v);
        petrel_buf_append(&j->out, petrel_buf_head(&changed), changed.len);
    }
    free(r.vanished);
    free((void *)known.ranges);
    petrel_buf_free(&changed);
    return err;
}

static void select_work(struct imap_job *j)
{
    struct imap_session *s = j->s;
    struct select_arg *a = j->arg;
    /* RFC 7162 3.2.11: the mailbox this SELECT replaces is closed, and
     * said so before anything about the new one. */
    if (s->folder != NULL)
        petrel_buf_printf(&j->out, "* OK [CLOSED] Previous mailbox closed\r\n");
    imap_unselect(s);
    struct petrel_storage_status st;
    int err = open_folder(j, &st);
    if (err != 0) {
        imap_unselect(s);
        imap_job_storage_error(j, err, "Cannot select the mailbox");
        return;
    }
    s->folder_name = a->name;
    a->name = NULL;
    s->readonly = a->readonly;
    s->uidvalidity = st.uidvalidity;
    s->uidnext = st.uidnext;
    s->modseq = st.highestmodseq;
    s->state = IMAP_ST_SELECTED;
    struct petrel_buf *o = &j->out;
    petrel_buf_printf(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
    if (s->readonly)
        petrel_buf_printf(o, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
    else
        petrel_buf_printf(o, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
                             "\\Draft \\*)] Flags permitted\r\n");
    /* IMAP4rev2 has no \Recent, so no RECENT, and no UNSEEN code; it
     * names the folder in a LIST answer instead (RFC 9051 6.3.2). */
    bool rev2 = (s->enabled & IMAP_EN_REV2) != 0;
    petrel_buf_printf(o, "* %u EXISTS\r\n%s", s->msgs.n, rev2 ? "" : "* 0 RECENT\r\n");
    if (a->unseen != 0 && !rev2)
        petrel_buf_printf(o, "* OK [UNSEEN %u] First unseen\r\n", a->unseen);
    if (rev2 && (err = imap_list_put_one(j, s->folder_name)) != 0) {
        imap_unselect(s);
        petrel_buf_reset(o);
        imap_job_storage_error(j, err, "Cannot select the mailbox");
        return;
    }
    petrel_buf_printf(
        o, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
        s->uidvalidity, s->uidnext);
    /* Every folder keeps MODSEQ, so HIGHESTMODSEQ always (RFC 7162 3.1.2.1). */
    petrel_buf_printf(o, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)s->modseq);
    if (a->qresync && a->q_uidvalidity == s->uidvalidity && (err = resync(j, a)) != 0) {
        imap_unselect(s);
        petrel_buf_reset(o);
        imap_job_storage_error(j, err, "Cannot resynchronize");
        return;
    }
    imap_job_ok(j, "[%s] %s completed", s->readonly ? "READ-ONLY" : "READ-WRITE",
                s->readonly ? "EXAMINE" : "SELECT");
}

/* The QRESYNC parameter's list: (uidvalidity modseq [known-uids
 * [(seqs uids)]]). The sequence match data is checked, not used: the
 * store remembers expunges, or else reports every missing UID. */
static bool qresync_param(const struct imap_arg *l, struct select_arg *a, const char **error_r)
{
    *error_r = "Bad QRESYNC parameter";
    if (l->type != IMAP_ARG_LIST || l->count < 2 || l->count > 4)
        return false;
    uint64_t uidv;
    if (!imap_parse_modseq(&l->list[0], false, &uidv) || uidv > UINT32_MAX ||
        !imap_parse_modseq(&l->list[1], false, &a->q_modseq))
        return false;
    a->q_uidvalidity = (uint32_t)uidv;
    struct imap_seqset set;
    for (size_t i = 2; i < l->count; i++) {
        const struct imap_arg *x = &l->list[i];
        size_t n = i == 2 ? 1 : x->type == IMAP_ARG_LIST ? x->count : 0;
        if (n != (i == 2 ? 1u : 2u))
            return false;
        for (size_t k = 0; k < n; k++) {
            const struct imap_arg *y = i == 2 ? x : &x->list[k];
            if (y->type != IMAP_ARG_ATOM ||
                imap_seqset_parse(y->str, y->len, &set) != IMAP_SEQSET_OK)
                return false;
            bool saved = set.saved;
            imap_seqset_free(&set);
            if (saved)
                return false;
        }
    }
    if (l->count > 2)
        a->known = petrel_strdup(l->list[2].str);
    a->qresync = true;
    return true;
}

/* SELECT's optional parameter list: CONDSTORE, or QRESYNC (...) once
 * ENABLEd (RFC 7162 3.1.8 and 3.2.5). */
static bool select_params(struct imap_session *s, const struct imap_arg *l, struct select_arg *a,
                          const char **error_r)
{
    *error_r = "Bad SELECT parameters";
    if (l->type != IMAP_ARG_LIST)
        return false;
    for (size_t i = 0; i < l->count; i++) {
        if (imap_arg_atom_is(&l->list[i], "CONDSTORE")) {
            s->enabled |= IMAP_EN_CONDSTORE;
        } else if (imap_arg_atom_is(&l->list[i], "QRESYNC") && i + 1 < l->count) {
            if (!(s->enabled & IMAP_EN_QRESYNC)) {
                *error_r = "QRESYNC not enabled";
                return false;
            }
            if (!qresync_param(&l->list[++i], a, error_r))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

void imap_cmd_select(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, bool readonly)
{
    const char *error;
    char *name = cmd->count == 1 || cmd->count == 2
                     ? imap_folder_from_wire(s, &cmd->args[0], &error)
                     : (error = "SELECT takes a mailbox name", NULL);
    if (name == NULL) {
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct select_arg *a = petrel_calloc(1, sizeof(*a));
    a->name = name;
    a->readonly = readonly;
    if (cmd->count == 2 && !select_params(s, &cmd->args[1], a, &error)) {
        select_free(a);
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct imap_job *j = imap_job_new(s, select_work);
    j->arg = a;
    j->free_arg = select_free;
    imap_watch_prepare(conn, s);
    imap_job_submit(conn, j);
}

/* --- CLOSE, UNSELECT --- */

static void close_work(struct imap_job *j)
{
    struct imap_session *s = j->s;
    bool expunge = j->arg != NULL;
    if (expunge && !s->readonly)
        imap_storage->expunge(s->folder, NULL, NULL, NULL); /* silently: RFC 3501 6.4.2 */
    imap_unselect(s);
    imap_job_ok(j, "%s completed", expunge ? "CLOSE" : "UNSELECT");
}

void imap_cmd_close(struct petrel_conn *conn, struct imap_session *s, bool expunge)
{
    struct imap_job *j = imap_job_new(s, close_work);
    j->arg = expunge ? j : NULL; /* a mark only */
    imap_job_submit(conn, j);
}

/* --- the end of a connection --- */

struct release_job {
    struct petrel_mailbox *mbox;
    struct petrel_folder *folder;
    struct petrel_storage_watch *watch;
    struct imap_watch_arg *watch_arg;
};

static void release_work(void *arg)
{
    struct release_job *r = arg;
    if (r->watch != NULL)
        imap_storage->unwatch(r->watch);
    imap_watch_free(r->watch_arg); /* the watcher is gone: no one wakes */
    if (r->folder != NULL)
        imap_storage->folder_close(r->folder);
    if (r->mbox != NULL)
        imap_storage->mailbox_close(r->mbox);
    free(r);
}

void imap_session_release(struct imap_session *s)
{
    struct release_job *r = petrel_calloc(1, sizeof(*r));
    *r = (struct release_job){s->mbox, s->folder, s->watch, s->watch_arg};
    s->mbox = NULL;
    s->folder = NULL;
    s->watch = NULL;
    s->watch_arg = NULL;
    free(s->folder_name);
    s->folder_name = NULL;
    msgs_free(&s->msgs);
    imap_saved_clear(s);
    /* Closing may write the index: a worker's job, unless the pool's queue
     * is full or gone at shutdown. */
    if (!petrel_worker_submit(release_work, r))
        release_work(r);
}
