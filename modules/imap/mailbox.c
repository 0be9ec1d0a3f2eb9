/* The folder commands (RFC 3501 sections 6.3.3 to 6.3.10): CREATE,
 * DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with the extended forms
 * of RFC 5258 clients send) and LSUB with CHILDREN
 * (RFC 3348) and SPECIAL-USE (RFC 6154) attributes, and STATUS. Each runs
 * as one job; LIST filters the store's folder list there. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_list.h"
#include "imap_mutf7.h"

/* A growing list of folder names. */
struct strs {
    char **v;
    size_t n, cap;
};

static void strs_add(struct strs *s, const char *name, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap == 0 ? 16 : s->cap * 2;
        s->v = petrel_reallocarray(s->v, s->cap, sizeof(*s->v));
    }
    s->v[s->n++] = petrel_strndup(name, len);
}

static void strs_free(struct strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int strs_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* At most this many patterns in one LIST ("pattern list", RFC 5258). */
#define LIST_PATTERNS_MAX 16u

struct folder_arg {
    char *name, *name2; /* RENAME's target */
    struct imap_list_pattern *pattern[LIST_PATTERNS_MAX];
    size_t npatterns;
    const char *verb;
    bool lsub;
    bool special_only;            /* LIST (SPECIAL-USE): folders with a special use */
    bool subscribed_only;         /* LIST (SUBSCRIBED) */
    bool put_subscribed;          /* \Subscribed asked for (RETURN or selection) */
    struct strs emitted, parents; /* LSUB: see lsub_one */
    unsigned items;               /* STATUS */
};

static void folder_arg_free(void *arg)
{
    struct folder_arg *a = arg;
    free(a->name);
    free(a->name2);
    for (size_t i = 0; i < a->npatterns; i++)
        imap_list_pattern_free(a->pattern[i]);
    strs_free(&a->emitted);
    strs_free(&a->parents);
    free(a);
}

static struct imap_job *folder_job(struct imap_session *s, imap_job_fn *work, struct folder_arg *a)
{
    struct imap_job *j = imap_job_new(s, work);
    j->arg = a;
    j->free_arg = folder_arg_free;
    j->sync = true;
    j->expunges = true;
    return j;
}

/* --- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE --- */

static void folder_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    struct petrel_mailbox *m = j->s->mbox;
    int err;
    if (strcmp(a->verb, "CREATE") == 0)
        err = imap_storage->folder_create(m, a->name, 0);
    else if (strcmp(a->verb, "DELETE") == 0)
        err = j->s->folder_name != NULL && strcmp(j->s->folder_name, a->name) == 0
                  ? PETREL_STORAGE_NOT_ALLOWED
                  : imap_storage->folder_delete(m, a->name);
    else if (strcmp(a->verb, "RENAME") == 0)
        err = imap_storage->folder_rename(m, a->name, a->name2);
    else
        err = imap_storage->folder_subscribe(m, a->name, a->verb[0] == 'S');
    if (err != 0)
        imap_job_storage_error(j, err, a->verb);
    else
        imap_job_ok(j, "%s completed", a->verb);
}

void imap_cmd_folder(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    bool rename = strcmp(cmd->name, "RENAME") == 0;
    const char *error = rename ? "RENAME takes two mailbox names" : "Takes a mailbox name";
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->verb = cmd->name[0] == 'C'   ? "CREATE"
              : cmd->name[0] == 'D' ? "DELETE"
              : cmd->name[0] == 'R' ? "RENAME"
              : cmd->name[0] == 'S' ? "SUBSCRIBE"
                                    : "UNSUBSCRIBE";
    if (cmd->count == (rename ? 2u : 1u)) {
        a->name = imap_folder_from_wire(&cmd->args[0], &error);
        if (a->name != NULL && rename)
            a->name2 = imap_folder_from_wire(&cmd->args[1], &error);
    }
    if (a->name == NULL || (rename && a->name2 == NULL)) {
        folder_arg_free(a);
        imap_bad(conn, s, "%s", error);
        return;
    }
    /* A trailing separator only says the name will have children. */
    size_t len = strlen(a->name);
    if (a->verb[0] == 'C' && len > 1 && a->name[len - 1] == PETREL_STORAGE_SEPARATOR)
        a->name[len - 1] = '\0';
    imap_job_submit(conn, folder_job(s, folder_work, a));
}

/* --- LIST, LSUB --- */

static const struct {
    unsigned bit;
    const char *name;
} special_use[] = {
    {PETREL_STORAGE_FOLDER_ALL, "\\All"},       {PETREL_STORAGE_FOLDER_ARCHIVE, "\\Archive"},
    {PETREL_STORAGE_FOLDER_DRAFTS, "\\Drafts"}, {PETREL_STORAGE_FOLDER_FLAGGED, "\\Flagged"},
    {PETREL_STORAGE_FOLDER_JUNK, "\\Junk"},     {PETREL_STORAGE_FOLDER_SENT, "\\Sent"},
    {PETREL_STORAGE_FOLDER_TRASH, "\\Trash"},
};

static bool list_matches(const struct folder_arg *a, const char *name, size_t len)
{
    for (size_t i = 0; i < a->npatterns; i++)
        if (imap_list_match(a->pattern[i], name, len))
            return true;
    return false;
}

static void put_line(struct imap_job *j, const char *attrs, const char *name)
{
    struct folder_arg *a = j->arg;
    petrel_buf_printf(&j->out, "* %s (%s) \"/\" ", a->lsub ? "LSUB" : "LIST", attrs);
    imap_put_folder(&j->out, name);
    petrel_buf_append(&j->out, "\r\n", 2);
}

/* LSUB: a subscribed name the pattern does not match, but whose parent
 * it does ('%' stopping there), gives the parent, \Noselect unless it is
 * itself subscribed (RFC 3501 6.3.9); collected, sent after the list. */
static void lsub_parents(struct folder_arg *a, const char *name)
{
    size_t len = strlen(name);
    if (list_matches(a, name, len))
        return;
    for (size_t k = len; k-- > 1;)
        if (name[k] == PETREL_STORAGE_SEPARATOR && list_matches(a, name, k))
            strs_add(&a->parents, name, k);
}

static void list_one(void *arg, const struct petrel_storage_folder_info *info)
{
    struct imap_job *j = arg;
    struct folder_arg *a = j->arg;
    bool missing = (info->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT) != 0;
    bool subscribed = (info->attrs & PETREL_STORAGE_FOLDER_SUBSCRIBED) || missing;
    bool special = false;
    for (size_t i = 0; i < sizeof(special_use) / sizeof(special_use[0]); i++)
        special |= (info->attrs & special_use[i].bit) != 0;
    if ((a->lsub || a->subscribed_only) ? !subscribed : missing)
        return;
    if (a->special_only && !special)
        return;
    if (a->lsub)
        lsub_parents(a, info->name);
    if (!list_matches(a, info->name, strlen(info->name)))
        return;
    if (a->lsub)
        strs_add(&a->emitted, info->name, strlen(info->name));
    struct petrel_buf attrs;
    petrel_buf_init(&attrs, 256);
    const char *sep = "";
    if (missing) {
        /* RFC 5258's name in the extended form, RFC 3501's in LSUB. */
        petrel_buf_printf(&attrs, "%s", a->lsub ? "\\Noselect" : "\\NonExistent");
        sep = " ";
    } else if (!a->lsub) {
        petrel_buf_printf(&attrs, "%s",
                          info->attrs & PETREL_STORAGE_FOLDER_HAS_CHILDREN ? "\\HasChildren"
                                                                           : "\\HasNoChildren");
        sep = " ";
    }
    if (a->put_subscribed && subscribed) {
        petrel_buf_printf(&attrs, "%s\\Subscribed", sep);
        sep = " ";
    }
    for (size_t i = 0; i < sizeof(special_use) / sizeof(special_use[0]); i++)
        if (info->attrs & special_use[i].bit) {
            petrel_buf_printf(&attrs, "%s%s", sep, special_use[i].name);
            sep = " ";
        }
    petrel_buf_append(&attrs, "", 1);
    put_line(j, petrel_buf_head(&attrs), info->name);
    petrel_buf_free(&attrs);
}

static void lsub_put_parents(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    if (a->parents.n == 0)
        return;
    qsort(a->parents.v, a->parents.n, sizeof(char *), strs_cmp);
    if (a->emitted.n > 0) /* qsort and bsearch take no NULL array, even empty */
        qsort(a->emitted.v, a->emitted.n, sizeof(char *), strs_cmp);
    for (size_t i = 0; i < a->parents.n; i++) {
        const char *name = a->parents.v[i];
        if (i > 0 && strcmp(name, a->parents.v[i - 1]) == 0)
            continue;
        if (a->emitted.n == 0 ||
            bsearch(&name, a->emitted.v, a->emitted.n, sizeof(char *), strs_cmp) == NULL)
            put_line(j, "\\Noselect", name);
    }
}

static void list_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    const char *verb = a->lsub ? "LSUB" : "LIST";
    if (a->npatterns == 0) { /* the hierarchy's root and separator */
        petrel_buf_printf(&j->out, "* %s (\\Noselect) \"/\" \"\"\r\n", verb);
        imap_job_ok(j, "%s completed", verb);
        return;
    }
    int err = imap_storage->folder_list(j->s->mbox, list_one, j);
    if (err != 0) {
        imap_job_storage_error(j, err, verb);
        return;
    }
    lsub_put_parents(j);
    imap_job_ok(j, "%s completed", verb);
}

/* Options of the extended LIST (RFC 5258, RFC 6154) in a parenthesised
 * list: false for an unknown one. CHILDREN and SPECIAL-USE attributes are
 * sent anyway, so asking for them changes nothing. */
static bool list_options(struct folder_arg *a, const struct imap_arg *list, bool selection)
{
    for (size_t i = 0; i < list->count; i++) {
        const struct imap_arg *o = &list->list[i];
        if (imap_arg_atom_is(o, "SUBSCRIBED")) {
            a->put_subscribed = true;
            a->subscribed_only |= selection;
        } else if (imap_arg_atom_is(o, "SPECIAL-USE")) {
            a->special_only |= selection;
        } else if (selection || !imap_arg_atom_is(o, "CHILDREN")) {
            return false;
        }
    }
    return true;
}

static bool add_pattern(struct folder_arg *a, const char *ref, const struct imap_arg *arg)
{
    const char *pat = imap_arg_astring(arg);
    if (pat == NULL || arg->spooled || a->npatterns == LIST_PATTERNS_MAX)
        return false;
    if (pat[0] == '\0')
        return true; /* matches nothing; alone, asks for the root */
    struct petrel_buf r, p;
    petrel_buf_init(&r, 4096);
    petrel_buf_init(&p, 4096);
    /* '*' and '%' pass through modified UTF-7 unchanged. */
    bool ok = imap_mutf7_decode(ref, strlen(ref), &r) && imap_mutf7_decode(pat, strlen(pat), &p);
    if (ok) {
        a->pattern[a->npatterns] =
            imap_list_pattern_new(petrel_buf_head(&r), r.len, petrel_buf_head(&p), p.len);
        ok = a->pattern[a->npatterns] != NULL;
        a->npatterns += ok;
    }
    petrel_buf_free(&r);
    petrel_buf_free(&p);
    return ok;
}

/* LIST [(selection options)] reference (pattern | (patterns))
 * [RETURN (return options)]; LSUB reference pattern. */
static const char *list_parse(struct folder_arg *a, const struct imap_command *cmd)
{
    size_t i = 0, n = cmd->count;
    if (!a->lsub && n > 0 && cmd->args[0].type == IMAP_ARG_LIST) {
        if (!list_options(a, &cmd->args[0], true))
            return "Unknown LIST selection option";
        i++;
    }
    if (!a->lsub && n >= i + 4 && imap_arg_atom_is(&cmd->args[n - 2], "RETURN") &&
        cmd->args[n - 1].type == IMAP_ARG_LIST) {
        if (!list_options(a, &cmd->args[n - 1], false))
            return "Unknown LIST return option";
        n -= 2;
    }
    if (n != i + 2)
        return a->lsub ? "LSUB takes a reference and a pattern"
                       : "LIST takes a reference and a pattern";
    const struct imap_arg *ref_arg = &cmd->args[i], *pats = &cmd->args[i + 1];
    const char *ref = imap_arg_astring(ref_arg);
    if (ref == NULL || ref_arg->spooled)
        return "Bad reference";
    if (pats->type == IMAP_ARG_LIST && !a->lsub) {
        if (pats->count == 0)
            return "Empty pattern list";
        for (size_t k = 0; k < pats->count; k++) {
            if (!add_pattern(a, ref, &pats->list[k]))
                return "Bad reference or pattern";
        }
    } else {
        if (!add_pattern(a, ref, pats))
            return "Bad reference or pattern";
    }
    return NULL;
}

void imap_cmd_list(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   bool lsub)
{
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->lsub = lsub;
    const char *error = list_parse(a, cmd);
    if (error != NULL) {
        folder_arg_free(a);
        imap_bad(conn, s, "%s", error);
        return;
    }
    imap_job_submit(conn, folder_job(s, list_work, a));
}

/* --- STATUS --- */

#define ST_MESSAGES 1u
#define ST_RECENT 2u
#define ST_UIDNEXT 4u
#define ST_UIDVALIDITY 8u
#define ST_UNSEEN 16u
#define ST_HIGHESTMODSEQ 32u /* RFC 7162 (part Q) */

static void status_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    struct petrel_storage_status st;
    int err = imap_storage->folder_status(j->s->mbox, a->name, &st);
    if (err != 0) {
        imap_job_storage_error(j, err, "STATUS");
        return;
    }
    struct petrel_buf *o = &j->out;
    petrel_buf_printf(o, "* STATUS ");
    imap_put_folder(o, a->name);
    petrel_buf_printf(o, " (");
    const char *sep = "";
    const struct {
        unsigned bit;
        const char *name;
        uint32_t value;
    } items[] = {
        {ST_MESSAGES, "MESSAGES", st.messages}, {ST_RECENT, "RECENT", 0}, /* never \Recent */
        {ST_UIDNEXT, "UIDNEXT", st.uidnext},    {ST_UIDVALIDITY, "UIDVALIDITY", st.uidvalidity},
        {ST_UNSEEN, "UNSEEN", st.unseen},
    };
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        if (a->items & items[i].bit) {
            petrel_buf_printf(o, "%s%s %u", sep, items[i].name, items[i].value);
            sep = " ";
        }
    if (a->items & ST_HIGHESTMODSEQ)
        petrel_buf_printf(o, "%sHIGHESTMODSEQ %llu", sep, (unsigned long long)st.highestmodseq);
    petrel_buf_printf(o, ")\r\n");
    imap_job_ok(j, "STATUS completed");
}

static unsigned status_items(const struct imap_arg *list)
{
    static const char *const names[] = {"MESSAGES",    "RECENT", "UIDNEXT",
                                        "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"};
    unsigned items = 0;
    if (list->type != IMAP_ARG_LIST || list->count == 0)
        return 0;
    for (size_t i = 0; i < list->count; i++) {
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (imap_arg_atom_is(&list->list[i], names[k]))
                bit = 1u << k;
        if (bit == 0)
            return 0;
        items |= bit;
    }
    return items;
}

void imap_cmd_status(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    const char *error = "STATUS takes a mailbox and a list of items";
    char *name = cmd->count == 2 ? imap_folder_from_wire(&cmd->args[0], &error) : NULL;
    unsigned items = cmd->count == 2 ? status_items(&cmd->args[1]) : 0;
    if (name == NULL || items == 0) {
        free(name);
        imap_bad(conn, s, "%s", error);
        return;
    }
    if (items & ST_HIGHESTMODSEQ)
        s->enabled |= IMAP_EN_CONDSTORE; /* RFC 7162 3.1 */
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->name = name;
    a->items = items;
    imap_job_submit(conn, folder_job(s, status_work, a));
}
