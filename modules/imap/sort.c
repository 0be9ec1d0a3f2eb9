/* SORT and THREAD (RFC 5256), UID SORT and UID THREAD: the messages
 * matched as SEARCH matches them (search.c), then each one's sort keys
 * read from the store's cache (imap_sortkey.h; computed from the header
 * the first time) and ordered or threaded in the job. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_sortkey.h"
#include "imap_thread.h"

/* Criteria in one SORT; bytes of the string keys one SORT keeps. */
#define SORT_MAX_CRITERIA 16u
#define SORT_MAX_TEXT (256u * 1024u * 1024u)

enum sort_key {
    K_ARRIVAL,
    K_CC,
    K_DATE,
    K_FROM,
    K_SIZE,
    K_SUBJECT,
    K_TO,
    K_DISPLAYFROM,
    K_DISPLAYTO,
};

static const struct {
    const char *name;
    enum sort_key key;
    int field; /* the sortkey string, or -1 */
} sort_keys[] = {
    {"ARRIVAL", K_ARRIVAL, -1},
    {"CC", K_CC, IMAP_SK_CC},
    {"DATE", K_DATE, -1},
    {"FROM", K_FROM, IMAP_SK_FROM},
    {"SIZE", K_SIZE, -1},
    {"SUBJECT", K_SUBJECT, IMAP_SK_SUBJECT},
    {"TO", K_TO, IMAP_SK_TO},
    {"DISPLAYFROM", K_DISPLAYFROM, IMAP_SK_DISPLAYFROM},
    {"DISPLAYTO", K_DISPLAYTO, IMAP_SK_DISPLAYTO},
};
#define NKEYS (sizeof(sort_keys) / sizeof(sort_keys[0]))

struct criterion {
    unsigned k; /* index into sort_keys */
    bool reverse;
};

struct sort_arg {
    struct imap_search_run run;
    bool uid;
    unsigned ret; /* ESORT (RFC 5267): RETURN options, 0 for a plain SORT */
    bool thread;
    enum imap_thread_alg alg;
    struct criterion crit[SORT_MAX_CRITERIA];
    size_t ncrit;
};

static void sort_free(void *arg)
{
    struct sort_arg *a = arg;
    imap_search_run_free(&a->run);
    free(a);
}

/* One scan of the store's cache (cache_scan) for the key records of a
 * run's messages rather than a lookup each: use(ctx, i, rec, len) gets
 * run->uids[i]'s record, in UID order, and returns false to stop. What it
 * does not get is for read_key. */
typedef bool keyscan_use(void *ctx, size_t i, const char *rec, size_t len);

struct keyscan {
    const uint32_t *uids;
    size_t n, next;
    keyscan_use *use;
    void *ctx;
};

static int keyscan_fn(void *arg, uint32_t uid, const void *data, size_t len)
{
    struct keyscan *ks = arg;
    while (ks->next < ks->n && ks->uids[ks->next] < uid)
        ks->next++;
    if (ks->next == ks->n)
        return 1; /* past the last one wanted */
    if (ks->uids[ks->next] != uid || len == 0)
        return 0;
    return ks->use(ks->ctx, ks->next, data, len) ? 0 : 1;
}

static void keyscan(struct imap_session *s, const struct imap_search_run *run, keyscan_use *use,
                    void *ctx)
{
    if (run->n == 0 ||
        imap_storage->size <
            offsetof(struct petrel_storage_ops, cache_scan) + sizeof(imap_storage->cache_scan) ||
        imap_storage->cache_scan == NULL)
        return;
    struct keyscan ks = {run->uids, run->n, 0, use, ctx};
    /* One range from the first to the last: the scan skips the others. */
    struct petrel_storage_uid_range r = {run->uids[0], run->uids[run->n - 1]};
    struct petrel_storage_uid_set set = {&r, 1};
    imap_storage->cache_scan(s->folder, &set, IMAP_SORTKEY_CACHE_KEY, keyscan_fn, &ks);
}

/* The keys of uid from the cache, else from its header (then cached). */
static bool read_key(struct imap_session *s, uint32_t uid, struct petrel_buf *rec,
                     struct petrel_buf *hdr, struct imap_sortkey *k)
{
    petrel_buf_reset(rec);
    if (imap_storage->cache_get(s->folder, uid, IMAP_SORTKEY_CACHE_KEY, rec) == 0 &&
        imap_sortkey_parse(petrel_buf_head(rec), rec->len, k))
        return true;
    petrel_buf_reset(hdr);
    if (imap_storage->fetch_header(s->folder, uid, hdr) != 0)
        petrel_buf_reset(hdr); /* keys of an empty header: the message still sorts */
    petrel_buf_reset(rec);
    imap_sortkey_build(petrel_buf_head(hdr), hdr->len, rec);
    imap_storage->cache_set(s->folder, uid, IMAP_SORTKEY_CACHE_KEY, petrel_buf_head(rec), rec->len);
    return imap_sortkey_parse(petrel_buf_head(rec), rec->len, k);
}

/* --- SORT --- */

/* The string keys SORT orders by come first in the record. */
#define SORT_FIELDS (IMAP_SK_DISPLAYTO + 1)

/* A string key is kept ASCII upper-cased, so that memcmp orders as
 * imap_casemap_cmp does, and its first 8 bytes are also in pre (big-endian,
 * zero-padded): most comparisons end there without reading the text. */
struct entry {
    uint32_t number; /* what the answer says: UID or sequence number */
    uint32_t uid;
    int64_t date, arrival;
    uint64_t size;
    uint64_t pre[SORT_FIELDS];
    uint32_t off[SORT_FIELDS];
    uint16_t len[SORT_FIELDS];
};

struct sort_ctx {
    const struct sort_arg *a;
    const char *text;
};
static _Thread_local const struct sort_ctx *sort_cur;

static int cmp_num(int64_t x, int64_t y) { return x < y ? -1 : x > y; }

static bool put_text(struct petrel_buf *text, const char *str, size_t len, struct entry *x, int f)
{
    x->pre[f] = 0;
    if (len == 0)
        return true;
    size_t room;
    char *p = petrel_buf_space(text, len, &room);
    if (room < len)
        return false;
    uint64_t pre = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)str[i];
        p[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        if (i < 8)
            pre |= (uint64_t)(unsigned char)p[i] << (56 - 8 * i);
    }
    petrel_buf_commit(text, len);
    x->pre[f] = pre;
    return true;
}

static int cmp_text(const struct entry *x, const struct entry *y, int f, const char *text)
{
    if (x->pre[f] != y->pre[f])
        return x->pre[f] < y->pre[f] ? -1 : 1;
    size_t n = x->len[f] < y->len[f] ? x->len[f] : y->len[f];
    int r = n > 8 ? memcmp(text + x->off[f] + 8, text + y->off[f] + 8, n - 8) : 0;
    return r != 0 ? r : cmp_num(x->len[f], y->len[f]);
}

static int cmp_entry(const void *pa, const void *pb)
{
    const struct entry *x = pa, *y = pb;
    const struct sort_ctx *c = sort_cur;
    for (size_t i = 0; i < c->a->ncrit; i++) {
        unsigned k = c->a->crit[i].k;
        int r;
        if (sort_keys[k].key == K_ARRIVAL)
            r = cmp_num(x->arrival, y->arrival);
        else if (sort_keys[k].key == K_DATE)
            r = cmp_num(x->date, y->date);
        else if (sort_keys[k].key == K_SIZE)
            r = x->size < y->size ? -1 : x->size > y->size;
        else
            r = cmp_text(x, y, sort_keys[k].field, c->text);
        if (r != 0)
            return c->a->crit[i].reverse ? -r : r;
    }
    /* Ties: sequence order, which is UID order too. */
    return x->number < y->number ? -1 : x->number > y->number;
}

/* ESORT: MIN and MAX are the first and last in sort order, ALL the
 * numbers in sort order (RFC 5267 section 3); SAVE keeps them for "$". */
static void put_esort(struct imap_job *j, const struct sort_arg *a, const struct entry *e, size_t n)
{
    uint32_t *v = petrel_reallocarray(NULL, n > 0 ? n : 1, sizeof(*v));
    if (a->ret & IMAP_RET_SAVE) {
        for (size_t i = 0; i < n; i++)
            v[i] = e[i].uid;
        imap_saved_keep(j->s, a->ret, v, n);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = e[i].number;
    if (a->ret != IMAP_RET_SAVE)
        imap_esearch_put(j, a->uid, a->ret, v, n, imap_search_answer_modseq(&a->run));
    free(v);
}

/* The entries' keys, filled from the scan and then by read_key; the
 * strings go straight from a record into text. */
struct sort_fill {
    const struct sort_arg *a;
    struct entry *e;
    bool *done; /* entry i has its keys */
    struct petrel_buf text;
    bool full;
};

static bool fill_keys(struct sort_fill *f, size_t i, const struct imap_sortkey *k)
{
    struct entry *x = &f->e[i];
    f->done[i] = true;
    if (k->has_date)
        x->date = k->date;
    for (size_t c = 0; c < f->a->ncrit; c++) {
        int fld = sort_keys[f->a->crit[c].k].field;
        if (fld < 0 || x->len[fld] != 0)
            continue;
        x->off[fld] = (uint32_t)f->text.len;
        x->len[fld] = (uint16_t)k->len[fld];
        if (!put_text(&f->text, k->str[fld], k->len[fld], x, fld)) {
            f->full = true;
            return false;
        }
    }
    return true;
}

static bool fill_scanned(void *ctx, size_t i, const char *rec, size_t len)
{
    struct imap_sortkey k;
    return !imap_sortkey_parse(rec, len, &k) || fill_keys(ctx, i, &k);
}

static void sort_work_sort(struct imap_job *j, struct sort_arg *a)
{
    struct imap_session *s = j->s;
    struct imap_search_run *run = &a->run;
    size_t n = run->n > 0 ? run->n : 1;
    struct entry *e = petrel_reallocarray(NULL, n, sizeof(*e));
    struct sort_fill f = {.a = a, .e = e, .done = petrel_calloc(n, sizeof(bool))};
    petrel_buf_init(&f.text, SORT_MAX_TEXT);
    uint32_t at = 0; /* imap_msgs_seq_walk */
    for (size_t i = 0; i < run->n; i++) {
        struct entry *x = &e[i];
        memset(x, 0, sizeof(*x));
        x->number = a->uid ? run->uids[i] : imap_msgs_seq_walk(&s->msgs, run->uids[i], &at);
        x->uid = run->uids[i];
        x->date = x->arrival = run->internal_date[i];
        x->size = run->size[i];
    }
    /* ARRIVAL and SIZE come with the match: no key record to read. */
    bool need_keys = false;
    for (size_t c = 0; c < a->ncrit; c++)
        need_keys |= sort_keys[a->crit[c].k].field >= 0 || sort_keys[a->crit[c].k].key == K_DATE;
    if (need_keys) {
        keyscan(s, run, fill_scanned, &f);
        struct petrel_buf rec, hdr;
        petrel_buf_init(&rec, PETREL_STORAGE_MAX_CACHE);
        petrel_buf_init(&hdr, PETREL_STORAGE_MAX_HEADER + 1);
        for (size_t i = 0; i < run->n && !f.full; i++) {
            struct imap_sortkey k;
            if (!f.done[i] && read_key(s, run->uids[i], &rec, &hdr, &k))
                fill_keys(&f, i, &k);
        }
        petrel_buf_free(&rec);
        petrel_buf_free(&hdr);
    }
    if (f.full) {
        imap_job_no(j, "[LIMIT] Too much to sort");
    } else {
        struct sort_ctx ctx = {a, petrel_buf_head(&f.text)};
        sort_cur = &ctx;
        qsort(e, run->n, sizeof(*e), cmp_entry);
        sort_cur = NULL;
        if (a->ret == 0) {
            petrel_buf_printf(&j->out, "* SORT");
            for (size_t i = 0; i < run->n; i++)
                petrel_buf_printf(&j->out, " %u", e[i].number);
            /* A MODSEQ key: as SEARCH, "(MODSEQ n)" last (RFC 7162 section 7). */
            uint64_t modseq = imap_search_answer_modseq(run);
            if (modseq != 0)
                petrel_buf_printf(&j->out, " (MODSEQ %llu)", (unsigned long long)modseq);
            petrel_buf_append(&j->out, "\r\n", 2);
        } else {
            put_esort(j, a, e, run->n);
        }
        imap_job_ok(j, "%sSORT completed", a->uid ? "UID " : "");
    }
    if (f.full && (a->ret & IMAP_RET_SAVE))
        imap_saved_clear(s);
    free(e);
    free(f.done);
    petrel_buf_free(&f.text);
}

/* --- THREAD --- */

/* Messages are threaded in UID order after the scan, so the scanned
 * records are kept whole: at[i] is run->uids[i]'s in data, len 0 when the
 * scan had none (or data was full). */
struct thread_recs {
    struct petrel_buf data;
    struct {
        size_t off, len;
    } * at;
};

static bool keep_record(void *ctx, size_t i, const char *rec, size_t len)
{
    struct thread_recs *tr = ctx;
    size_t off = tr->data.len;
    if (!petrel_buf_append(&tr->data, rec, len))
        return false;
    tr->at[i].off = off;
    tr->at[i].len = len;
    return true;
}

static void sort_work_thread(struct imap_job *j, struct sort_arg *a)
{
    struct imap_session *s = j->s;
    struct imap_search_run *run = &a->run;
    struct imap_thread *t = imap_thread_new(a->alg);
    struct petrel_buf rec, hdr;
    petrel_buf_init(&rec, PETREL_STORAGE_MAX_CACHE);
    petrel_buf_init(&hdr, PETREL_STORAGE_MAX_HEADER + 1);
    struct thread_recs tr = {.at = petrel_calloc(run->n > 0 ? run->n : 1, sizeof(*tr.at))};
    petrel_buf_init(&tr.data, SORT_MAX_TEXT);
    keyscan(s, run, keep_record, &tr);
    uint32_t at = 0; /* imap_msgs_seq_walk */
    for (size_t i = 0; i < run->n; i++) {
        struct imap_sortkey k = {0};
        bool have =
            (tr.at[i].len > 0 &&
             imap_sortkey_parse(petrel_buf_head(&tr.data) + tr.at[i].off, tr.at[i].len, &k)) ||
            read_key(s, run->uids[i], &rec, &hdr, &k);
        struct imap_thread_msg m = {
            .number = a->uid ? run->uids[i] : imap_msgs_seq_walk(&s->msgs, run->uids[i], &at),
            .date = have && k.has_date ? k.date : run->internal_date[i],
        };
        if (have) {
            m.subject = k.str[IMAP_SK_SUBJECT];
            m.subject_len = k.len[IMAP_SK_SUBJECT];
            m.reply = k.reply;
            m.msgid = k.str[IMAP_SK_MSGID];
            m.msgid_len = k.len[IMAP_SK_MSGID];
            m.refs = k.str[IMAP_SK_REFS];
            m.refs_len = k.len[IMAP_SK_REFS];
        }
        imap_thread_add(t, &m);
    }
    petrel_buf_printf(&j->out, "* THREAD ");
    imap_thread_write(t, &j->out);
    petrel_buf_append(&j->out, "\r\n", 2);
    imap_thread_free(t);
    petrel_buf_free(&rec);
    petrel_buf_free(&hdr);
    petrel_buf_free(&tr.data);
    free(tr.at);
    imap_job_ok(j, "%sTHREAD completed", a->uid ? "UID " : "");
}

static void sort_work(struct imap_job *j)
{
    struct sort_arg *a = j->arg;
    int err = imap_search_run(j, &a->run);
    if (err != 0) {
        if (a->ret & IMAP_RET_SAVE)
            imap_saved_clear(j->s);
        imap_job_storage_error(j, err, a->thread ? "THREAD failed" : "SORT failed");
        return;
    }
    if (a->thread)
        sort_work_thread(j, a);
    else
        sort_work_sort(j, a);
}

/* --- the commands --- */

static bool parse_criteria(const struct imap_arg *list, struct sort_arg *a, const char **error_r)
{
    *error_r = "Bad sort criteria";
    if (list->type != IMAP_ARG_LIST || list->count == 0)
        return false;
    bool reverse = false;
    for (size_t i = 0; i < list->count; i++) {
        const struct imap_arg *c = &list->list[i];
        if (c->type != IMAP_ARG_ATOM || c->str == NULL)
            return false;
        if (strcasecmp(c->str, "REVERSE") == 0 && !reverse) {
            reverse = true;
            continue;
        }
        unsigned k = 0;
        while (k < NKEYS && strcasecmp(c->str, sort_keys[k].name) != 0)
            k++;
        if (k == NKEYS || a->ncrit == SORT_MAX_CRITERIA)
            return false;
        a->crit[a->ncrit++] = (struct criterion){k, reverse};
        reverse = false;
    }
    return !reverse; /* REVERSE must come before a key */
}

/* The charset argument both commands have, then the search keys. */
static void begin(struct petrel_conn *conn, struct imap_session *s, const struct imap_arg *args,
                  size_t count, struct sort_arg *a)
{
    const char *cs = count > 0 ? imap_arg_astring(&args[0]) : NULL;
    bool save = (a->ret & IMAP_RET_SAVE) != 0;
    if (cs == NULL || count < 2) {
        imap_bad(conn, s, "%s needs a charset and search keys", a->thread ? "THREAD" : "SORT");
    } else if ((s->enabled & IMAP_EN_UTF8) && strcasecmp(cs, "UTF-8") != 0) {
        /* RFC 6855 errata 4029: only UTF-8 once UTF8=ACCEPT is on. */
        imap_bad(conn, s, "Only UTF-8 after ENABLE UTF8=ACCEPT");
    } else if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
        imap_no(conn, s, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
    } else if (imap_search_begin(conn, s, args + 1, count - 1, &a->run)) {
        a->run.meta = true;
        struct imap_job *j = imap_job_new(s, sort_work);
        j->arg = a;
        j->free_arg = sort_free;
        if (!imap_job_submit(conn, j) && save)
            imap_saved_clear(s);
        return;
    }
    /* A SORT ... SAVE that fails leaves "$" empty (RFC 5182). */
    if (save)
        imap_saved_clear(s);
    free(a);
}

void imap_cmd_sort(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   size_t argi, bool uid)
{
    const char *error;
    struct sort_arg *a = petrel_calloc(1, sizeof(*a));
    a->uid = uid;
    /* ESORT: SORT RETURN (options) (criteria) ... */
    if (cmd->count > argi + 1 && cmd->args[argi].type == IMAP_ARG_ATOM &&
        cmd->args[argi].str != NULL && strcasecmp(cmd->args[argi].str, "RETURN") == 0 &&
        cmd->args[argi + 1].type == IMAP_ARG_LIST) {
        if (!imap_search_parse_return(&cmd->args[argi + 1], &a->ret, &error)) {
            free(a);
            imap_bad(conn, s, "%s", error);
            return;
        }
        argi += 2;
    }
    if (cmd->count <= argi || !parse_criteria(&cmd->args[argi], a, &error)) {
        if (a->ret & IMAP_RET_SAVE)
            imap_saved_clear(s);
        free(a);
        imap_bad(conn, s, "Bad sort criteria");
        return;
    }
    begin(conn, s, &cmd->args[argi + 1], cmd->count - argi - 1, a);
}

void imap_cmd_thread(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, size_t argi, bool uid)
{
    struct sort_arg *a = petrel_calloc(1, sizeof(*a));
    a->uid = uid;
    a->thread = true;
    const char *alg = cmd->count > argi ? imap_arg_astring(&cmd->args[argi]) : NULL;
    if (alg != NULL && strcasecmp(alg, "ORDEREDSUBJECT") == 0) {
        a->alg = IMAP_THREAD_ORDEREDSUBJECT;
    } else if (alg != NULL && strcasecmp(alg, "REFERENCES") == 0) {
        a->alg = IMAP_THREAD_REFERENCES;
    } else {
        free(a);
        imap_bad(conn, s, "Unknown threading algorithm");
        return;
    }
    begin(conn, s, &cmd->args[argi + 1], cmd->count - argi - 1, a);
}
