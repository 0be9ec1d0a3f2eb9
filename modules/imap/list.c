/* LIST and LSUB (RFC 3501 6.3.8-9) with LIST-EXTENDED (RFC 5258):
 * selection options SUBSCRIBED, REMOTE, RECURSIVEMATCH and SPECIAL-USE
 * (RFC 6154), return options SUBSCRIBED, CHILDREN, SPECIAL-USE and STATUS
 * (LIST-STATUS, RFC 5819), several patterns. The job takes the store's
 * whole folder list (bounded by the backend's folder limit), adds the
 * names that are only parents of subscribed names, sorts them, and
 * decides each name once; RECURSIVEMATCH marks the ancestors of every
 * selected name that no pattern matches. */
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_list.h"
#include "imap_mutf7.h"

/* At most this many patterns in one LIST ("pattern list", RFC 5258). */
#define LIST_PATTERNS_MAX 16u

#define SEL_SUBSCRIBED 1u
#define SEL_REMOTE 2u
#define SEL_RECURSIVE 4u
#define SEL_SPECIAL 8u
#define RET_SUBSCRIBED 1u
#define RET_CHILDREN 2u
#define RET_SPECIAL 4u
#define RET_STATUS 8u

struct list_entry {
    char *name;
    unsigned attrs; /* the store's; FOLDER_NONEXISTENT for names no folder has */
    bool from_store;
    bool childinfo; /* a descendant no pattern matches meets the selection */
};

struct list_arg {
    struct imap_list_pattern *pattern[LIST_PATTERNS_MAX];
    size_t npatterns;
    bool lsub;
    bool utf8; /* patterns in UTF-8, not modified UTF-7 (IMAP_UTF8_NAMES) */
    unsigned sel, ret;
    unsigned status_items; /* RETURN (STATUS (...)) */
    struct list_entry *v;
    size_t n, cap;
};

static void list_arg_free(void *arg)
{
    struct list_arg *a = arg;
    for (size_t i = 0; i < a->npatterns; i++)
        imap_list_pattern_free(a->pattern[i]);
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i].name);
    free(a->v);
    free(a);
}

static void entry_add(struct list_arg *a, const char *name, size_t len, unsigned attrs,
                      bool from_store)
{
    if (a->n == a->cap) {
        a->cap = a->cap == 0 ? 64 : a->cap * 2;
        a->v = petrel_reallocarray(a->v, a->cap, sizeof(*a->v));
    }
    a->v[a->n++] = (struct list_entry){petrel_strndup(name, len), attrs, from_store, false};
}

/* Name order; of two equal names the store's comes first. */
static int entry_cmp(const void *x, const void *y)
{
    const struct list_entry *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c != 0 ? c : (int)b->from_store - (int)a->from_store;
}

static int name_cmp(const void *key, const void *x)
{
    return strcmp(key, ((const struct list_entry *)x)->name);
}

/* In the sorted list, where each name is once. */
static struct list_entry *entry_find(struct list_arg *a, const char *name)
{
    return a->n == 0 ? NULL : bsearch(name, a->v, a->n, sizeof(*a->v), name_cmp);
}

static void collect(void *arg, const struct petrel_storage_folder_info *info)
{
    struct list_arg *a = arg;
    size_t len = strlen(info->name);
    entry_add(a, info->name, len, info->attrs, true);
    /* A subscribed name whose parents do not exist: the parents, as
     * \NonExistent names, for RECURSIVEMATCH and LSUB. */
    if (info->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT)
        for (size_t k = len; k-- > 1;)
            if (info->name[k] == PETREL_STORAGE_SEPARATOR)
                entry_add(a, info->name, k, PETREL_STORAGE_FOLDER_NONEXISTENT, false);
}

/* Sorted, each name once. */
static void entries_sort(struct list_arg *a)
{
    if (a->n == 0)
        return;
    qsort(a->v, a->n, sizeof(*a->v), entry_cmp);
    size_t w = 1;
    for (size_t i = 1; i < a->n; i++) {
        if (strcmp(a->v[i].name, a->v[w - 1].name) == 0) {
            free(a->v[i].name);
            continue;
        }
        a->v[w++] = a->v[i];
    }
    a->n = w;
}

static bool pattern_matches(const struct list_arg *a, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < a->npatterns; i++)
        if (imap_list_match(a->pattern[i], name, len))
            return true;
    return false;
}

static bool is_subscribed(const struct list_entry *e)
{
    /* The store lists a missing name only because it is subscribed. */
    return (e->attrs & PETREL_STORAGE_FOLDER_SUBSCRIBED) ||
           (e->from_store && (e->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT));
}

static bool exists(const struct list_entry *e)
{
    return (e->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT) == 0;
}

/* Whether the name meets the selection options (LSUB: subscribed). */
static bool selected(const struct list_arg *a, const struct list_entry *e)
{
    if ((a->sel & SEL_SUBSCRIBED) && !is_subscribed(e))
        return false;
    if ((a->sel & SEL_SPECIAL) && !(exists(e) && (e->attrs & PETREL_STORAGE_SPECIAL_USE_MASK)))
        return false;
    return (a->sel & (SEL_SUBSCRIBED | SEL_SPECIAL)) != 0 || exists(e);
}

/* RECURSIVEMATCH (and LSUB's parents, RFC 3501 6.3.9): each ancestor of a
 * selected name that no pattern matches. */
static void mark_childinfo(struct list_arg *a)
{
    for (size_t i = 0; i < a->n; i++) {
        const char *name = a->v[i].name;
        if (!selected(a, &a->v[i]) || pattern_matches(a, name))
            continue;
        char buf[IMAP_LIST_NAME_MAX + 1];
        size_t len = strlen(name);
        if (len > IMAP_LIST_NAME_MAX)
            continue;
        memcpy(buf, name, len + 1);
        for (size_t k = len; k-- > 1;)
            if (buf[k] == PETREL_STORAGE_SEPARATOR) {
                buf[k] = '\0';
                struct list_entry *p = entry_find(a, buf);
                if (p != NULL)
                    p->childinfo = true;
            }
    }
}

static const struct {
    unsigned bit;
    const char *name;
} special_use[] = {
    {PETREL_STORAGE_FOLDER_ALL, "\\All"},       {PETREL_STORAGE_FOLDER_ARCHIVE, "\\Archive"},
    {PETREL_STORAGE_FOLDER_DRAFTS, "\\Drafts"}, {PETREL_STORAGE_FOLDER_FLAGGED, "\\Flagged"},
    {PETREL_STORAGE_FOLDER_JUNK, "\\Junk"},     {PETREL_STORAGE_FOLDER_SENT, "\\Sent"},
    {PETREL_STORAGE_FOLDER_TRASH, "\\Trash"},
};

static void put_attr(struct petrel_buf *o, bool *first, const char *attr)
{
    petrel_buf_printf(o, "%s%s", *first ? "" : " ", attr);
    *first = false;
}

/* The attributes: CHILDREN and SPECIAL-USE ones are sent whether asked
 * for or not (RFC 5258 section 4 and RFC 6154 allow it), so that a plain
 * LIST tells a client what it needs. */
static void put_attrs(struct petrel_buf *o, const struct list_arg *a, const struct list_entry *e,
                      bool is_selected)
{
    bool first = true;
    petrel_buf_append(o, "(", 1);
    if (a->lsub) {
        if (!exists(e) || !is_selected)
            put_attr(o, &first, "\\Noselect");
    } else if (!exists(e)) {
        put_attr(o, &first, "\\NonExistent");
    } else {
        put_attr(o, &first,
                 e->attrs & PETREL_STORAGE_FOLDER_HAS_CHILDREN ? "\\HasChildren"
                                                               : "\\HasNoChildren");
    }
    if (!a->lsub && (a->ret & RET_SUBSCRIBED) && is_subscribed(e))
        put_attr(o, &first, "\\Subscribed");
    if (exists(e) && (is_selected || !a->lsub))
        for (size_t i = 0; i < sizeof(special_use) / sizeof(special_use[0]); i++)
            if (e->attrs & special_use[i].bit)
                put_attr(o, &first, special_use[i].name);
    petrel_buf_append(o, ")", 1);
}

/* CHILDINFO names the selection options a descendant met (RFC 5258 3.5). */
static void put_childinfo(struct petrel_buf *o, const struct list_arg *a)
{
    petrel_buf_printf(o, " (\"CHILDINFO\" (");
    const char *sep = "";
    if (a->sel & SEL_SUBSCRIBED) {
        petrel_buf_printf(o, "\"SUBSCRIBED\"");
        sep = " ";
    }
    if (a->sel & SEL_SPECIAL)
        petrel_buf_printf(o, "%s\"SPECIAL-USE\"", sep);
    petrel_buf_printf(o, "))");
}

/* LIST-STATUS: the STATUS of a listed folder that can be selected, from
 * its index only. A folder gone since the list is left out. */
static int put_status(struct imap_job *j, const struct list_arg *a, const struct list_entry *e)
{
    int err = imap_status_put(j->s, &j->out, e->name, a->status_items);
    return err == PETREL_STORAGE_NOT_FOUND ? 0 : err;
}

static int put_entry(struct imap_job *j, const struct list_arg *a, const struct list_entry *e)
{
    bool is_selected = selected(a, e);
    bool childinfo = e->childinfo && (a->lsub || (a->sel & SEL_RECURSIVE));
    if (!(is_selected || childinfo) || !pattern_matches(a, e->name))
        return 0;
    petrel_buf_printf(&j->out, "* %s ", a->lsub ? "LSUB" : "LIST");
    put_attrs(&j->out, a, e, is_selected);
    petrel_buf_printf(&j->out, " \"/\" ");
    imap_put_folder(j->s, &j->out, e->name);
    if (childinfo && !a->lsub)
        put_childinfo(&j->out, a);
    petrel_buf_append(&j->out, "\r\n", 2);
    if ((a->ret & RET_STATUS) && exists(e))
        return put_status(j, a, e);
    return 0;
}

static void list_work(struct imap_job *j)
{
    struct list_arg *a = j->arg;
    const char *verb = a->lsub ? "LSUB" : "LIST";
    if (a->npatterns == 0) { /* the hierarchy's root and separator */
        petrel_buf_printf(&j->out, "* %s (\\Noselect) \"/\" \"\"\r\n", verb);
        imap_job_ok(j, "%s completed", verb);
        return;
    }
    int err = imap_storage->folder_list(j->s->mbox, collect, a);
    if (err == 0) {
        entries_sort(a);
        if (a->lsub || (a->sel & SEL_RECURSIVE))
            mark_childinfo(a);
        for (size_t i = 0; i < a->n && err == 0; i++)
            err = put_entry(j, a, &a->v[i]);
    }
    if (err != 0)
        imap_job_storage_error(j, err, verb);
    else
        imap_job_ok(j, "%s completed", verb);
}

/* IMAP4rev2's SELECT and EXAMINE name the folder in a LIST answer with
 * its attributes (RFC 9051 section 6.3.2). */
struct one_folder {
    const char *name;
    struct list_entry e;
};

static void collect_one(void *arg, const struct petrel_storage_folder_info *info)
{
    struct one_folder *o = arg;
    if (o->e.name == NULL && strcmp(info->name, o->name) == 0 &&
        !(info->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT))
        o->e = (struct list_entry){(char *)o->name, info->attrs, true, false};
}

int imap_list_put_one(struct imap_job *j, const char *name)
{
    struct one_folder o = {name, {0}};
    int err = imap_storage->folder_list(j->s->mbox, collect_one, &o);
    if (err != 0 || o.e.name == NULL)
        return err;
    const struct list_arg plain = {0};
    petrel_buf_printf(&j->out, "* LIST ");
    put_attrs(&j->out, &plain, &o.e, true);
    petrel_buf_printf(&j->out, " \"/\" ");
    imap_put_folder(j->s, &j->out, name);
    petrel_buf_append(&j->out, "\r\n", 2);
    return 0;
}

/* --- parsing --- */

/* The bit of a LIST option word in opts, 0 for an unknown one. */
struct list_option {
    const char *name;
    unsigned bit;
};

static unsigned option_bit(const struct imap_arg *arg, const struct list_option *opts, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (imap_arg_atom_is(arg, opts[k].name))
            return opts[k].bit;
    return 0;
}

static const char *selection_options(struct list_arg *a, const struct imap_arg *list)
{
    static const struct list_option opts[] = {{"SUBSCRIBED", SEL_SUBSCRIBED},
                                              {"REMOTE", SEL_REMOTE},
                                              {"RECURSIVEMATCH", SEL_RECURSIVE},
                                              {"SPECIAL-USE", SEL_SPECIAL}};
    for (size_t i = 0; i < list->count; i++) {
        unsigned bit = option_bit(&list->list[i], opts, sizeof(opts) / sizeof(opts[0]));
        if (bit == 0)
            return "Unknown LIST selection option";
        a->sel |= bit;
    }
    /* RFC 5258 section 3: it only refines another option. */
    if ((a->sel & SEL_RECURSIVE) && !(a->sel & (SEL_SUBSCRIBED | SEL_SPECIAL)))
        return "RECURSIVEMATCH needs another selection option";
    if (a->sel & SEL_SUBSCRIBED)
        a->ret |= RET_SUBSCRIBED; /* implied (RFC 5258 section 3.1) */
    return NULL;
}

static const char *return_options(struct list_arg *a, const struct imap_arg *list)
{
    static const struct list_option opts[] = {{"SUBSCRIBED", RET_SUBSCRIBED},
                                              {"CHILDREN", RET_CHILDREN},
                                              {"SPECIAL-USE", RET_SPECIAL},
                                              {"STATUS", RET_STATUS}};
    for (size_t i = 0; i < list->count; i++) {
        unsigned bit = option_bit(&list->list[i], opts, sizeof(opts) / sizeof(opts[0]));
        if (bit == 0)
            return "Unknown LIST return option";
        if (bit == RET_STATUS) {
            if (a->ret & RET_STATUS)
                return "STATUS given twice";
            if (i + 1 == list->count ||
                (a->status_items = imap_status_items(&list->list[i + 1])) == 0)
                return "RETURN (STATUS) takes a list of status items";
            i++;
        }
        a->ret |= bit;
    }
    return NULL;
}

static bool add_pattern(struct list_arg *a, const char *ref, const struct imap_arg *arg)
{
    const char *pat = imap_arg_astring(arg);
    if (pat == NULL || arg->spooled || a->npatterns == LIST_PATTERNS_MAX)
        return false;
    if (pat[0] == '\0')
        return true; /* matches nothing; alone, asks for the root */
    struct petrel_buf r, p;
    petrel_buf_init(&r, 4096);
    petrel_buf_init(&p, 4096);
    bool ok;
    if (a->utf8) /* '*' and '%' are themselves in both forms */
        ok = imap_utf8_valid(ref, strlen(ref), true) && imap_utf8_valid(pat, strlen(pat), true) &&
             petrel_buf_append(&r, ref, strlen(ref)) && petrel_buf_append(&p, pat, strlen(pat));
    else
        ok = imap_mutf7_decode(ref, strlen(ref), &r) && imap_mutf7_decode(pat, strlen(pat), &p);
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

static const char *patterns(struct list_arg *a, const struct imap_arg *ref_arg,
                            const struct imap_arg *pats)
{
    const char *ref = imap_arg_astring(ref_arg);
    if (ref == NULL || ref_arg->spooled)
        return "Bad reference";
    if (pats->type != IMAP_ARG_LIST || a->lsub)
        return add_pattern(a, ref, pats) ? NULL : "Bad reference or pattern";
    if (pats->count == 0)
        return "Empty pattern list";
    for (size_t k = 0; k < pats->count; k++)
        if (!add_pattern(a, ref, &pats->list[k]))
            return "Bad reference or pattern";
    return NULL;
}

/* LIST [(selection options)] reference (pattern | (patterns))
 * [RETURN (return options)]; LSUB reference pattern. */
static const char *list_parse(struct list_arg *a, const struct imap_command *cmd)
{
    size_t i = 0, n = cmd->count;
    const char *error;
    if (a->lsub)
        a->sel = SEL_SUBSCRIBED;
    if (!a->lsub && n > 0 && cmd->args[0].type == IMAP_ARG_LIST) {
        if ((error = selection_options(a, &cmd->args[0])) != NULL)
            return error;
        i++;
    }
    if (!a->lsub && n >= i + 4 && imap_arg_atom_is(&cmd->args[n - 2], "RETURN") &&
        cmd->args[n - 1].type == IMAP_ARG_LIST) {
        if ((error = return_options(a, &cmd->args[n - 1])) != NULL)
            return error;
        n -= 2;
    }
    if (n != i + 2)
        return a->lsub ? "LSUB takes a reference and a pattern"
                       : "LIST takes a reference and a pattern";
    return patterns(a, &cmd->args[i], &cmd->args[i + 1]);
}

void imap_cmd_list(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   bool lsub)
{
    struct list_arg *a = petrel_calloc(1, sizeof(*a));
    a->lsub = lsub;
    a->utf8 = IMAP_UTF8_NAMES(s);
    const char *error = list_parse(a, cmd);
    if (error != NULL) {
        list_arg_free(a);
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct imap_job *j = imap_job_new(s, list_work);
    j->arg = a;
    j->free_arg = list_arg_free;
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}
