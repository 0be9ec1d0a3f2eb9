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
#include "imap_subject.h"
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

/* The key records of a run's messages, read in one scan of the store's
 * cache (cache_scan) rather than a lookup each: at[i] is the record of
 * run->uids[i] in data, len 0 when it has none yet. */
struct keyrecs {
    const uint32_t *uids;
    size_t n, next;
    struct petrel_buf data;
    struct keyrec {
        size_t off, len;
    } * at;
};

static int keyrec_fn(void *arg, uint32_t uid, const void *data, size_t len)
{
    struct keyrecs *kr = arg;
    while (kr->next < kr->n && kr->uids[kr->next] < uid)
        kr->next++;
    if (kr->next == kr->n)
        return 1; /* past the last one wanted */
    if (kr->uids[kr->next] != uid || len == 0)
        return 0;
    kr->at[kr->next] = (struct keyrec){kr->data.len, len};
    /* Full: the rest are read one by one, as without the scan. */
    return petrel_buf_append(&kr->data, data, len) ? 0 : 1;
}

static void keyrecs_load(struct imap_session *s, const struct imap_search_run *run, bool scan,
                         struct keyrecs *kr)
{
    *kr = (struct keyrecs){.uids = run->uids, .n = run->n};
    petrel_buf_init(&kr->data, SORT_MAX_TEXT);
    kr->at = petrel_calloc(run->n > 0 ? run->n : 1, sizeof(*kr->at));
    if (!scan || run->n == 0 ||
        imap_storage->size <
            offsetof(struct petrel_storage_ops, cache_scan) + sizeof(imap_storage->cache_scan) ||
        imap_storage->cache_scan == NULL)
        return;
    /* One range from the first to the last: the scan skips the others. */
    struct petrel_storage_uid_range r = {run->uids[0], run->uids[run->n - 1]};
    struct petrel_storage_uid_set set = {&r, 1};
    imap_storage->cache_scan(s->folder, &set, IMAP_SORTKEY_CACHE_KEY, keyrec_fn, kr);
}

static void keyrecs_free(struct keyrecs *kr)
{
    petrel_buf_free(&kr->data);
    free(kr->at);
}

/* The keys of run->uids[i]: from the scan, else from the cache, else from
 * its header (then cached). */
static bool read_key(struct imap_session *s, const struct keyrecs *kr, size_t i,
                     struct petrel_buf *rec, struct petrel_buf *hdr, struct imap_sortkey *k)
{
    uint32_t uid = kr->uids[i];
    if (kr->at[i].len > 0 &&
        imap_sortkey_parse(petrel_buf_head(&kr->data) + kr->at[i].off, kr->at[i].len, k))
        return true;
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

struct entry {
    uint32_t number; /* what the answer says: UID or sequence number */
    uint32_t uid;
    int64_t date, arrival;
    uint64_t size;
    uint32_t off[IMAP_SK_COUNT];
    uint16_t len[IMAP_SK_COUNT];
};

struct sort_ctx {
    const struct sort_arg *a;
    const char *text;
};
static _Thread_local const struct sort_ctx *sort_cur;

static int cmp_num(int64_t x, int64_t y) { return x < y ? -1 : x > y; }

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
        else {
            int f = sort_keys[k].field;
            r = imap_casemap_cmp(c->text + x->off[f], x->len[f], c->text + y->off[f], y->len[f]);
        }
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

static void sort_work_sort(struct imap_job *j, struct sort_arg *a)
{
    struct imap_session *s = j->s;
    struct imap_search_run *run = &a->run;
    struct entry *e = petrel_reallocarray(NULL, run->n > 0 ? run->n : 1, sizeof(*e));
    struct petrel_buf text, rec, hdr;
    petrel_buf_init(&text, SORT_MAX_TEXT);
    petrel_buf_init(&rec, PETREL_STORAGE_MAX_CACHE);
    petrel_buf_init(&hdr, PETREL_STORAGE_MAX_HEADER + 1);
    bool full = false;
    /* ARRIVAL and SIZE come with the match: no key record to read. */
    bool need_keys = false;
    for (size_t c = 0; c < a->ncrit; c++)
        need_keys |= sort_keys[a->crit[c].k].field >= 0 || sort_keys[a->crit[c].k].key == K_DATE;
    struct keyrecs kr;
    keyrecs_load(s, run, need_keys, &kr);
    for (size_t i = 0; i < run->n && !full; i++) {
        struct imap_sortkey k = {0};
        bool have = need_keys && read_key(s, &kr, i, &rec, &hdr, &k);
        struct entry *x = &e[i];
        memset(x, 0, sizeof(*x));
        x->number = a->uid ? run->uids[i] : imap_msgs_seq(&s->msgs, run->uids[i]);
        x->uid = run->uids[i];
        x->arrival = run->internal_date[i];
        x->size = run->size[i];
        x->date = have && k.has_date ? k.date : x->arrival;
        for (size_t c = 0; c < a->ncrit && have; c++) {
            int f = sort_keys[a->crit[c].k].field;
            if (f < 0 || x->len[f] != 0)
                continue;
            x->off[f] = (uint32_t)text.len;
            x->len[f] = (uint16_t)k.len[f];
            if (!petrel_buf_append(&text, k.str[f], k.len[f]))
                full = true;
        }
    }
    if (full) {
        imap_job_no(j, "[LIMIT] Too much to sort");
    } else {
        struct sort_ctx ctx = {a, petrel_buf_head(&text)};
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
    if (full && (a->ret & IMAP_RET_SAVE))
        imap_saved_clear(s);
    free(e);
    petrel_buf_free(&text);
    petrel_buf_free(&rec);
    petrel_buf_free(&hdr);
    keyrecs_free(&kr);
}

/* --- THREAD --- */

static void sort_work_thread(struct imap_job *j, struct sort_arg *a)
{
    struct imap_session *s = j->s;
    struct imap_search_run *run = &a->run;
    struct imap_thread *t = imap_thread_new(a->alg);
    struct petrel_buf rec, hdr;
    petrel_buf_init(&rec, PETREL_STORAGE_MAX_CACHE);
    petrel_buf_init(&hdr, PETREL_STORAGE_MAX_HEADER + 1);
    struct keyrecs kr;
    keyrecs_load(s, run, true, &kr);
    for (size_t i = 0; i < run->n; i++) {
        struct imap_sortkey k = {0};
        bool have = read_key(s, &kr, i, &rec, &hdr, &k);
        struct imap_thread_msg m = {
            .number = a->uid ? run->uids[i] : imap_msgs_seq(&s->msgs, run->uids[i]),
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
    keyrecs_free(&kr);
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
