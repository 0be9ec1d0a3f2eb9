/* METADATA (RFC 5464): GETMETADATA and SETMETADATA on server entries
 * (mailbox "") and mailbox entries, kept by metadata_store.c. Limits:
 * METADATA_VALUE_MAX bytes a value ([METADATA MAXSIZE]) and
 * METADATA_ENTRIES_MAX entries an account ([METADATA TOOMANY]); a
 * SETMETADATA is all or nothing. Entry names are compared without regard
 * to case and kept as first set. DELETE drops a folder's entries and
 * RENAME moves them with it (imap_metadata_folder). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "imap.h"
#include "metadata_store.h"

#define DEPTH_INFINITY 2u
#define SET_PAIRS_MAX METADATA_ENTRIES_MAX
#define GET_ENTRIES_MAX 64u

struct meta_arg {
    char *mailbox; /* "" for the server */
    /* GET: the entries asked for; SET: entries and their values */
    const char *entry[SET_PAIRS_MAX];
    const char *value[SET_PAIRS_MAX]; /* NULL: NIL, remove */
    size_t len[SET_PAIRS_MAX];
    size_t n;
    char *copy; /* one block holding the names and values above */
    bool set;
    unsigned depth;
    unsigned long long maxsize; /* 0: no limit */
};

static void meta_arg_free(void *arg)
{
    struct meta_arg *a = arg;
    free(a->mailbox);
    free(a->copy);
    free(a);
}

/* RFC 5464 section 3.2: "/private/..." or "/shared/...", printable ASCII
 * without '*', '%', "//" or a trailing '/'; GETMETADATA may also ask for
 * the roots "/private" and "/shared" themselves (with DEPTH). */
static bool entry_ok(const struct imap_arg *arg, bool root_too)
{
    const char *e = imap_arg_astring(arg);
    if (e == NULL || arg->spooled || arg->len == 0 || arg->len > METADATA_NAME_MAX ||
        e[arg->len - 1] == '/')
        return false;
    if (root_too && (strcasecmp(e, "/private") == 0 || strcasecmp(e, "/shared") == 0))
        return true;
    if (strncasecmp(e, "/private/", 9) != 0 && strncasecmp(e, "/shared/", 8) != 0)
        return false;
    for (size_t i = 0; i < arg->len; i++) {
        unsigned char c = (unsigned char)e[i];
        if (c <= 0x20 || c >= 0x7f || c == '*' || c == '%' || (c == '/' && e[i + 1] == '/'))
            return false;
    }
    return true;
}

/* Names and values copied out of the parser's memory, which the job outlives. */
static void keep(struct meta_arg *a, const struct imap_arg *const *args, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += args[i] != NULL && args[i]->type != IMAP_ARG_NIL ? args[i]->len + 1 : 0;
    a->copy = petrel_malloc(total + 1);
    char *p = a->copy;
    for (size_t i = 0; i < n; i++) {
        const char **slot =
            i % 2 == 0 || !a->set ? &a->entry[a->set ? i / 2 : i] : &a->value[i / 2];
        if (args[i]->type == IMAP_ARG_NIL) {
            *slot = NULL;
            continue;
        }
        memcpy(p, args[i]->str, args[i]->len);
        p[args[i]->len] = '\0';
        *slot = p;
        if (a->set && i % 2 == 1)
            a->len[i / 2] = args[i]->len;
        p += args[i]->len + 1;
    }
    a->n = a->set ? n / 2 : n;
}

static bool same_entry(const struct imap_metadata_entry *e, const char *mailbox, const char *entry)
{
    return strcmp(e->mailbox, mailbox) == 0 && strcasecmp(e->entry, entry) == 0;
}

/* --- SETMETADATA --- */

static int set_fn(void *arg, struct imap_metadata *m, bool *changed_r)
{
    struct meta_arg *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        size_t k = 0;
        while (k < m->n && !same_entry(&m->v[k], a->mailbox, a->entry[i]))
            k++;
        if (a->value[i] == NULL) {
            if (k == m->n)
                continue;
            free(m->v[k].mailbox);
            free(m->v[k].entry);
            free(m->v[k].value);
            m->v[k] = m->v[--m->n];
        } else if (k < m->n) {
            free(m->v[k].value);
            m->v[k].value = petrel_malloc(a->len[i] + 1);
            memcpy(m->v[k].value, a->value[i], a->len[i]);
            m->v[k].value[a->len[i]] = '\0';
            m->v[k].len = a->len[i];
        } else if (m->n >= METADATA_ENTRIES_MAX) {
            return PETREL_STORAGE_TOO_LARGE;
        } else {
            imap_metadata_put(m, a->mailbox, a->entry[i], a->value[i], a->len[i]);
        }
        *changed_r = true;
    }
    return 0;
}

/* --- GETMETADATA --- */

struct get_state {
    struct meta_arg *a;
    struct petrel_buf *out;
    size_t items;
    size_t longest; /* of the values MAXSIZE left out */
};

static void put_value(struct petrel_buf *out, const char *v, size_t len)
{
    if (memchr(v, '\0', len) != NULL) { /* only a literal8 carries NUL */
        petrel_buf_printf(out, "~{%zu}\r\n", len);
        petrel_buf_append(out, v, len);
    } else {
        imap_put_string(out, v, len);
    }
}

static void put_item(struct get_state *g, const char *entry, const char *v, size_t len)
{
    if (v != NULL && g->a->maxsize > 0 && len > g->a->maxsize) {
        g->longest = len > g->longest ? len : g->longest;
        return;
    }
    if (g->items++ > 0)
        petrel_buf_append(g->out, " ", 1);
    imap_put_string(g->out, entry, strlen(entry));
    petrel_buf_append(g->out, " ", 1);
    if (v == NULL)
        petrel_buf_printf(g->out, "NIL");
    else
        put_value(g->out, v, len);
}

/* Whether e lies below the asked entry within the depth. */
static bool below(const char *asked, const char *e, unsigned depth)
{
    size_t n = strlen(asked);
    if (depth == 0 || strncasecmp(asked, e, n) != 0 || e[n] != '/')
        return false;
    return depth == DEPTH_INFINITY || strchr(e + n + 1, '/') == NULL;
}

static int get_fn(void *arg, struct imap_metadata *m, bool *changed_r)
{
    struct get_state *g = arg;
    struct meta_arg *a = g->a;
    (void)changed_r;
    for (size_t i = 0; i < a->n; i++) {
        bool found = false;
        for (size_t k = 0; k < m->n; k++)
            if (same_entry(&m->v[k], a->mailbox, a->entry[i])) {
                put_item(g, m->v[k].entry, m->v[k].value, m->v[k].len);
                found = true;
            }
        if (!found)
            put_item(g, a->entry[i], NULL, 0);
        for (size_t k = 0; k < m->n; k++)
            if (strcmp(m->v[k].mailbox, a->mailbox) == 0 &&
                below(a->entry[i], m->v[k].entry, a->depth))
                put_item(g, m->v[k].entry, m->v[k].value, m->v[k].len);
    }
    return 0;
}

static void meta_work(struct imap_job *j)
{
    struct meta_arg *a = j->arg;
    const char *verb = a->set ? "SETMETADATA" : "GETMETADATA";
    struct petrel_storage_status st;
    int err = a->mailbox[0] == '\0' ? 0 : imap_storage->folder_status(j->s->mbox, a->mailbox, &st);
    if (err != 0) {
        imap_job_storage_error(j, err, verb);
        return;
    }
    if (a->set) {
        err = imap_metadata_change(j->s->user, set_fn, a);
        if (err == PETREL_STORAGE_TOO_LARGE)
            imap_job_no(j, "[METADATA TOOMANY] At most %u entries an account",
                        METADATA_ENTRIES_MAX);
        else if (err != 0)
            imap_job_storage_error(j, err, verb);
        else
            imap_job_ok(j, "SETMETADATA completed");
        return;
    }
    struct petrel_buf items;
    petrel_buf_init(&items, IMAP_OUT_MAX);
    struct get_state g = {a, &items, 0, 0};
    err = imap_metadata_change(j->s->user, get_fn, &g);
    if (err == 0 && g.items > 0) {
        petrel_buf_printf(&j->out, "* METADATA ");
        imap_put_folder(j->s, &j->out, a->mailbox);
        petrel_buf_append(&j->out, " (", 2); /* the items may hold NUL: not printf */
        petrel_buf_append(&j->out, petrel_buf_head(&items), items.len);
        petrel_buf_append(&j->out, ")\r\n", 3);
    }
    petrel_buf_free(&items);
    if (err != 0)
        imap_job_storage_error(j, err, verb);
    else if (g.longest > 0)
        imap_job_ok(j, "[METADATA LONGENTRIES %zu] GETMETADATA completed", g.longest);
    else
        imap_job_ok(j, "GETMETADATA completed");
}

/* --- parsing --- */

static char *mailbox_arg(const struct imap_session *s, const struct imap_arg *arg,
                         const char **error_r)
{
    const char *str = imap_arg_astring(arg);
    if (str != NULL && !arg->spooled && arg->len == 0)
        return petrel_strdup("");
    return imap_folder_from_wire(s, arg, error_r);
}

/* (MAXSIZE n DEPTH d), either or both, any order. */
static const char *get_options(struct meta_arg *a, const struct imap_arg *list)
{
    if (list->count == 0 || list->count % 2 != 0)
        return "GETMETADATA options are MAXSIZE n and DEPTH 0, 1 or infinity";
    for (size_t i = 0; i < list->count; i += 2) {
        const struct imap_arg *v = &list->list[i + 1];
        if (imap_arg_atom_is(&list->list[i], "MAXSIZE") && v->type == IMAP_ARG_ATOM && v->len > 0 &&
            v->len < 10 && strspn(v->str, "0123456789") == v->len)
            a->maxsize = strtoull(v->str, NULL, 10);
        else if (imap_arg_atom_is(&list->list[i], "DEPTH") &&
                 (imap_arg_atom_is(v, "0") || imap_arg_atom_is(v, "1") ||
                  imap_arg_atom_is(v, "infinity")))
            a->depth = v->str[0] == '0' ? 0 : v->str[0] == '1' ? 1 : DEPTH_INFINITY;
        else
            return "GETMETADATA options are MAXSIZE n and DEPTH 0, 1 or infinity";
    }
    return NULL;
}

static const char *get_parse(const struct imap_session *s, struct meta_arg *a,
                             const struct imap_command *cmd)
{
    size_t i = 0;
    const char *error = "GETMETADATA takes [options] a mailbox and entries";
    if (cmd->count == 3 && cmd->args[0].type == IMAP_ARG_LIST) {
        if ((error = get_options(a, &cmd->args[0])) != NULL)
            return error;
        i = 1;
    }
    if (cmd->count != i + 2 || (a->mailbox = mailbox_arg(s, &cmd->args[i], &error)) == NULL)
        return error;
    const struct imap_arg *e = &cmd->args[i + 1];
    const struct imap_arg *one[1] = {e};
    const struct imap_arg *many[GET_ENTRIES_MAX];
    size_t n = 1;
    if (e->type == IMAP_ARG_LIST) {
        if (e->count == 0 || e->count > GET_ENTRIES_MAX)
            return "GETMETADATA takes 1 to 64 entry names";
        for (n = 0; n < e->count; n++)
            many[n] = &e->list[n];
    }
    const struct imap_arg *const *args = e->type == IMAP_ARG_LIST ? many : one;
    for (size_t k = 0; k < n; k++)
        if (!entry_ok(args[k], true))
            return "Bad entry name (RFC 5464: /private/... or /shared/...)";
    keep(a, args, n);
    return NULL;
}

static const char *set_parse(const struct imap_session *s, struct meta_arg *a,
                             const struct imap_command *cmd, bool *too_big_r)
{
    const char *error = "SETMETADATA takes a mailbox and a list of entries and values";
    if (cmd->count != 2 || cmd->args[1].type != IMAP_ARG_LIST || cmd->args[1].count == 0 ||
        cmd->args[1].count % 2 != 0 || cmd->args[1].count > 2 * SET_PAIRS_MAX)
        return error;
    if ((a->mailbox = mailbox_arg(s, &cmd->args[0], &error)) == NULL)
        return error;
    const struct imap_arg *l = cmd->args[1].list;
    const struct imap_arg *args[2 * SET_PAIRS_MAX];
    for (size_t k = 0; k < cmd->args[1].count; k++) {
        const struct imap_arg *v = &l[k];
        if (k % 2 == 0 && !entry_ok(v, false))
            return "Bad entry name (RFC 5464: /private/... or /shared/...)";
        if (k % 2 == 1 && v->type != IMAP_ARG_NIL && v->type != IMAP_ARG_STRING)
            return "A metadata value is a string, a literal or NIL";
        if (k % 2 == 1 && v->type == IMAP_ARG_STRING && (v->spooled || v->len > METADATA_VALUE_MAX))
            *too_big_r = true;
        args[k] = v;
    }
    if (!*too_big_r)
        keep(a, args, cmd->args[1].count);
    return NULL;
}

void imap_cmd_metadata(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd, bool set)
{
    struct meta_arg *a = petrel_calloc(1, sizeof(*a));
    a->set = set;
    bool too_big = false;
    const char *error = set ? set_parse(s, a, cmd, &too_big) : get_parse(s, a, cmd);
    if (error != NULL || too_big || imap_metadata_dir[0] == '\0') {
        meta_arg_free(a);
        if (error != NULL)
            imap_bad(conn, s, "%s", error);
        else if (too_big)
            imap_no(conn, s, "[METADATA MAXSIZE %u] A value is at most %u bytes",
                    METADATA_VALUE_MAX, METADATA_VALUE_MAX);
        else
            imap_no(conn, s, "[UNAVAILABLE] No metadata store here");
        return;
    }
    struct imap_job *j = imap_job_new(s, meta_work);
    j->arg = a;
    j->free_arg = meta_arg_free;
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}

/* --- a folder deleted or renamed --- */

struct folder_change {
    const char *from, *to; /* to NULL: deleted */
};

static int folder_fn(void *arg, struct imap_metadata *m, bool *changed_r)
{
    struct folder_change *c = arg;
    size_t flen = strlen(c->from);
    for (size_t k = 0; k < m->n;) {
        char *mb = m->v[k].mailbox;
        bool exact = strcmp(mb, c->from) == 0;
        bool child = strncmp(mb, c->from, flen) == 0 && mb[flen] == PETREL_STORAGE_SEPARATOR;
        if (c->to == NULL && exact) {
            free(m->v[k].mailbox);
            free(m->v[k].entry);
            free(m->v[k].value);
            m->v[k] = m->v[--m->n];
            *changed_r = true;
            continue;
        }
        if (c->to != NULL && (exact || child)) {
            size_t tlen = strlen(c->to), rest = strlen(mb + flen);
            char *name = petrel_malloc(tlen + rest + 1);
            memcpy(name, c->to, tlen);
            memcpy(name + tlen, mb + flen, rest + 1);
            free(mb);
            m->v[k].mailbox = name;
            *changed_r = true;
        }
        k++;
    }
    return 0;
}

void imap_metadata_folder(const struct imap_session *s, const char *from, const char *to)
{
    /* INBOX renamed stays INBOX (its messages move): its entries stay. */
    if (imap_metadata_dir[0] == '\0' || strcasecmp(from, "INBOX") == 0)
        return;
    struct folder_change c = {from, to};
    if (imap_metadata_change(s->user, folder_fn, &c) != 0)
        petrel_log(PETREL_LOG_WARNING, IMAP_LOG, "metadata of %s not %s with the folder", from,
                   to == NULL ? "removed" : "moved");
}
