/* STORE (with .SILENT), COPY and MOVE (RFC 6851) with COPYUID and UID
 * EXPUNGE (RFC 4315), EXPUNGE, NOOP and CHECK. The EXPUNGE responses of
 * EXPUNGE and MOVE come from the job's sync, as other sessions' do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap.h"

struct set_arg {
    struct petrel_storage_uid_set set;
    struct petrel_storage_store req;
    char *keywords;
    char *dest;
    bool uid, silent, move;
    /* STORE (UNCHANGEDSINCE n), RFC 7162 3.1.3: the UIDs that failed it. */
    bool conditional;
    struct petrel_storage_uid_range *modified;
    size_t nmod, capmod;
    struct petrel_buf src, dst; /* COPYUID's sets */
    uint32_t last_src, last_dst;
    bool run;
};

static void set_arg_free(void *arg)
{
    struct set_arg *a = arg;
    free((void *)a->set.ranges);
    free(a->modified);
    free(a->keywords);
    free(a->dest);
    petrel_buf_free(&a->src);
    petrel_buf_free(&a->dst);
    free(a);
}

static struct set_arg *set_arg_new(struct imap_job *j)
{
    struct set_arg *a = petrel_calloc(1, sizeof(*a));
    petrel_buf_init(&a->src, IMAP_OUT_MAX / 4);
    petrel_buf_init(&a->dst, IMAP_OUT_MAX / 4);
    j->arg = a;
    j->free_arg = set_arg_free;
    return a;
}

/* The set argument, or an answered BAD. */
/* STORE, MOVE and EXPUNGE change the folder: not in EXAMINE's. */
static void refuse_readonly(struct petrel_conn *conn, struct imap_session *s, struct imap_job *j)
{
    imap_no(conn, s, "[READ-ONLY] The mailbox is read-only");
    imap_job_free(j);
}

static bool take_set(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, size_t argi, bool uid,
                     struct petrel_storage_uid_set *set_r)
{
    const char *error;
    if (argi >= cmd->count) {
        imap_bad(conn, s, "Missing sequence set");
        return false;
    }
    if (!imap_set_to_uids(s, &cmd->args[argi], uid, set_r, &error)) {
        imap_bad(conn, s, "%s", error);
        return false;
    }
    return true;
}

/* --- NOOP, CHECK --- */

static void noop_work(struct imap_job *j)
{
    /* Other programs' changes to the files (Petrel's own need no sync). */
    imap_storage->sync(j->s->folder);
    imap_job_ok(j, "Completed");
}

void imap_cmd_noop(struct petrel_conn *conn, struct imap_session *s)
{
    if (s->state != IMAP_ST_SELECTED) {
        imap_tagged(conn, s, "OK", "NOOP completed");
        return;
    }
    struct imap_job *j = imap_job_new(s, noop_work);
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}

/* --- STORE --- */

struct store_out {
    struct imap_job *j;
    const struct set_arg *a;
    uint64_t before; /* HIGHESTMODSEQ before the STORE: later ones are its changes */
};

static bool in_ranges(const struct petrel_storage_uid_range *r, size_t n, uint32_t uid)
{
    for (size_t i = 0; i < n; i++)
        if (uid >= r[i].lo && uid <= r[i].hi)
            return true;
    return false;
}

static int store_report(void *arg, const struct petrel_storage_msg *msg)
{
    struct store_out *o = arg;
    struct imap_session *s = o->j->s;
    const struct set_arg *a = o->a;
    uint32_t seq = imap_msgs_seq(&s->msgs, msg->uid);
    if (seq == 0 || in_ranges(a->modified, a->nmod, msg->uid))
        return 0; /* not announced yet (the next sync does), or left alone */
    /* Kept current even when silent, so the next sync does not report it. */
    uint8_t *byte = &s->msgs.flags[seq - 1];
    *byte = (uint8_t)IMAP_MSG_BYTE(msg);
    if (s->nown < IMAP_OWN_MAX) /* keywords: the byte alone cannot tell */
        s->own[s->nown++] = (struct imap_own_change){msg->uid, msg->modseq};
    bool modseq = (s->enabled & IMAP_EN_CONDSTORE) != 0;
    /* .SILENT still tells a CONDSTORE client the new MODSEQ of what
     * changed (RFC 7162 3.1.3). */
    if (a->silent && !(modseq && msg->modseq > o->before))
        return 0;
    struct petrel_buf *out = &o->j->out;
    petrel_buf_printf(out, "* %u FETCH (", seq);
    if (!a->silent) {
        petrel_buf_append(out, "FLAGS ", 6);
        imap_put_flags(out, msg->flags, msg->keywords);
    }
    if (modseq)
        petrel_buf_printf(out, "%sMODSEQ (%llu)", a->silent ? "" : " ",
                          (unsigned long long)msg->modseq);
    if (a->uid)
        petrel_buf_printf(out, " UID %u", msg->uid);
    petrel_buf_append(out, ")\r\n", 3);
    return 0;
}

static void store_modified(void *arg, uint32_t uid)
{
    struct set_arg *a = arg;
    imap_uid_ranges_push(&a->modified, &a->nmod, &a->capmod, uid, uid);
}

/* UNCHANGEDSINCE 0: every message has a greater MODSEQ, so all fail. */
static int store_all_modified(void *arg, const struct petrel_storage_msg *msg)
{
    store_modified(arg, msg->uid);
    return 0;
}

/* "OK [MODIFIED set]": UIDs for UID STORE, else sequence numbers. */
static void put_modified(struct imap_job *j, const struct set_arg *a)
{
    struct petrel_buf *out = &j->out;
    petrel_buf_printf(out, "%s OK [MODIFIED ", j->tag);
    uint32_t last = 0, start = 0;
    bool any = false;
    for (size_t i = 0; i < a->nmod; i++)
        for (uint32_t uid = a->modified[i].lo; uid >= a->modified[i].lo && uid <= a->modified[i].hi;
             uid++) {
            uint32_t v = a->uid ? uid : imap_msgs_seq(&j->s->msgs, uid);
            if (v != 0 && any && v == last + 1) {
                last = v;
            } else if (v != 0) {
                if (any && last != start)
                    petrel_buf_printf(out, ":%u", last);
                petrel_buf_printf(out, "%s%u", any ? "," : "", v);
                start = last = v;
                any = true;
            }
            if (uid == UINT32_MAX)
                break;
        }
    if (any && last != start)
        petrel_buf_printf(out, ":%u", last);
    petrel_buf_printf(out, "] Conditional STORE failed\r\n");
}

static void store_work(struct imap_job *j)
{
    struct set_arg *a = j->arg;
    struct imap_session *s = j->s;
    if (a->set.count == 0) {
        imap_job_ok(j, "STORE completed");
        return;
    }
    struct petrel_storage_status before = {0};
    int err = imap_storage->status(s->folder, &before);
    if (err == 0 && a->conditional && a->req.unchangedsince == 0)
        err = imap_storage->messages(s->folder, &a->set, store_all_modified, a);
    else if (err == 0)
        err = imap_storage->store(s->folder, &a->set, &a->req,
                                  a->conditional ? store_modified : NULL, a);
    if (err != 0) {
        imap_job_storage_error(j, err, "STORE failed");
        return;
    }
    struct store_out o = {j, a, before.highestmodseq};
    imap_storage->messages(s->folder, &a->set, store_report, &o);
    if (a->nmod > 0)
        put_modified(j, a); /* no sync in STORE: the tagged line is last */
    else
        imap_job_ok(j, "STORE completed");
}

static bool store_item(const char *item, struct set_arg *a)
{
    const char *p = item;
    a->req.mode = PETREL_STORAGE_FLAGS_REPLACE;
    if (*p == '+' || *p == '-')
        a->req.mode = *p++ == '+' ? PETREL_STORAGE_FLAGS_ADD : PETREL_STORAGE_FLAGS_REMOVE;
    if (strncasecmp(p, "FLAGS", 5) != 0)
        return false;
    p += 5;
    a->silent = strcasecmp(p, ".SILENT") == 0;
    return *p == '\0' || a->silent;
}

/* STORE's modifier list: (UNCHANGEDSINCE n) is the only one known. */
static bool store_modifiers(struct imap_session *s, const struct imap_arg *l, struct set_arg *a)
{
    if (l->count != 2 || !imap_arg_atom_is(&l->list[0], "UNCHANGEDSINCE") ||
        !imap_parse_modseq(&l->list[1], true, &a->req.unchangedsince))
        return false;
    a->conditional = true;
    s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
    return true;
}

void imap_cmd_store(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd, size_t argi, bool uid)
{
    size_t item = argi + 1;
    if (cmd->count > item && cmd->args[item].type == IMAP_ARG_LIST)
        item++;
    if (cmd->count < item + 2 || cmd->args[item].type != IMAP_ARG_ATOM) {
        imap_bad(conn, s, "STORE takes a set, FLAGS, +FLAGS or -FLAGS, and flags");
        return;
    }
    struct imap_job *j = imap_job_new(s, store_work);
    struct set_arg *a = set_arg_new(j);
    a->uid = uid;
    const char *error = "STORE takes (UNCHANGEDSINCE n) as its only modifier";
    struct imap_arg flags = {
        .type = IMAP_ARG_LIST, .list = &cmd->args[item + 1], .count = cmd->count - item - 1};
    const struct imap_arg *fl = flags.count == 1 ? &cmd->args[item + 1] : &flags;
    bool ok = item == argi + 1 || store_modifiers(s, &cmd->args[argi + 1], a);
    if (ok && !(ok = store_item(cmd->args[item].str, a)))
        error = "STORE takes FLAGS, +FLAGS or -FLAGS (.SILENT)";
    else if (ok)
        ok = imap_parse_flags(fl, &a->req.flags, &a->keywords, &error);
    if (ok && !take_set(conn, s, cmd, argi, uid, &a->set)) {
        imap_job_free(j);
        return;
    }
    if (!ok) {
        imap_bad(conn, s, "%s", error);
        imap_job_free(j);
        return;
    }
    if (s->readonly) {
        refuse_readonly(conn, s, j);
        return;
    }
    a->req.keywords = a->keywords;
    imap_job_submit(conn, j);
}

/* --- COPY, MOVE --- */

static void put_uid(struct petrel_buf *b, uint32_t *last, uint32_t uid)
{
    /* Consecutive UIDs as ranges: "4:7,9". */
    size_t len = b->len;
    if (*last != 0 && uid == *last + 1) {
        const char *head = petrel_buf_head(b);
        size_t k = len;
        while (k > 0 && head[k - 1] != ',' && head[k - 1] != ':')
            k--;
        if (k > 0 && head[k - 1] == ':')
            b->len = k; /* replace the range's end */
        else
            petrel_buf_append(b, ":", 1);
        petrel_buf_printf(b, "%u", uid);
    } else {
        petrel_buf_printf(b, "%s%u", len > 0 ? "," : "", uid);
    }
    *last = uid;
}

static void copy_map(void *arg, uint32_t src, uint32_t dst)
{
    struct set_arg *a = arg;
    put_uid(&a->src, &a->last_src, src);
    put_uid(&a->dst, &a->last_dst, dst);
}

static void copy_work(struct imap_job *j)
{
    struct set_arg *a = j->arg;
    struct imap_session *s = j->s;
    const char *what = a->move ? "MOVE" : "COPY";
    if (a->set.count == 0) {
        imap_job_ok(j, "%s completed", what);
        return;
    }
    uint32_t uidvalidity = 0;
    int err = a->move ? 0 : imap_quota_check_copy(s, &a->set);
    if (err == 0)
        err = (a->move ? imap_storage->move : imap_storage->copy)(s->folder, &a->set, a->dest,
                                                                  copy_map, a, &uidvalidity);
    if (err == PETREL_STORAGE_NOT_FOUND) {
        imap_job_no(j, "[TRYCREATE] No such mailbox");
        return;
    }
    if (err != 0) {
        imap_job_storage_error(j, err, a->move ? "MOVE failed" : "COPY failed");
        return;
    }
    if (a->src.len == 0) {
        imap_job_ok(j, "%s completed", what);
        return;
    }
    char code[64];
    snprintf(code, sizeof(code), "COPYUID %u ", uidvalidity);
    if (a->move) { /* RFC 6851: before the EXPUNGEs */
        petrel_buf_printf(&j->out, "* OK [%s%.*s %.*s] Moved\r\n", code, (int)a->src.len,
                          petrel_buf_head(&a->src), (int)a->dst.len, petrel_buf_head(&a->dst));
        imap_job_ok(j, "MOVE completed");
        return;
    }
    /* A COPYUID longer than the tagged line holds is left out (RFC 4315
     * allows a server not to send it). */
    if (a->src.len + a->dst.len + 80 < sizeof(j->text))
        imap_job_ok(j, "[%s%.*s %.*s] COPY completed", code, (int)a->src.len,
                    petrel_buf_head(&a->src), (int)a->dst.len, petrel_buf_head(&a->dst));
    else
        imap_job_ok(j, "COPY completed");
}

void imap_cmd_copy(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   size_t argi, bool uid, bool move)
{
    const char *error = "COPY takes a set and a mailbox name";
    char *dest =
        cmd->count == argi + 2 ? imap_folder_from_wire(s, &cmd->args[argi + 1], &error) : NULL;
    if (dest == NULL) {
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct imap_job *j = imap_job_new(s, copy_work);
    struct set_arg *a = set_arg_new(j);
    a->dest = dest;
    a->move = move;
    if (!take_set(conn, s, cmd, argi, uid, &a->set)) {
        imap_job_free(j);
        return;
    }
    if (move && s->readonly) {
        refuse_readonly(conn, s, j);
        return;
    }
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}

/* --- EXPUNGE, UID EXPUNGE --- */

static void expunge_work(struct imap_job *j)
{
    struct set_arg *a = j->arg;
    int err = 0;
    if (!a->uid || a->set.count > 0)
        err = imap_storage->expunge(j->s->folder, a->uid ? &a->set : NULL, NULL, NULL);
    struct petrel_storage_status st;
    if (err != 0)
        imap_job_storage_error(j, err, "EXPUNGE failed");
    else if ((j->s->enabled & IMAP_EN_QRESYNC) && imap_storage->status(j->s->folder, &st) == 0)
        /* RFC 7162 3.2.10: the MODSEQ the expunges reached. */
        imap_job_ok(j, "[HIGHESTMODSEQ %llu] EXPUNGE completed",
                    (unsigned long long)st.highestmodseq);
    else
        imap_job_ok(j, "EXPUNGE completed");
}

void imap_cmd_expunge(struct petrel_conn *conn, struct imap_session *s,
                      const struct imap_command *cmd, size_t argi, bool uid)
{
    if (cmd->count != argi + (uid ? 1 : 0)) {
        imap_bad(conn, s, uid ? "UID EXPUNGE takes a set" : "EXPUNGE takes no arguments");
        return;
    }
    struct imap_job *j = imap_job_new(s, expunge_work);
    struct set_arg *a = set_arg_new(j);
    a->uid = uid;
    if (uid && !take_set(conn, s, cmd, argi, true, &a->set)) {
        imap_job_free(j);
        return;
    }
    if (s->readonly) {
        refuse_readonly(conn, s, j);
        return;
    }
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}
