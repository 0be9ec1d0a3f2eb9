/* SEARCH keys compiled into a tree (RFC 3501 section 6.4.4): every key of
 * the RFC, sequence sets, parenthesised lists (AND), OR and NOT, with the
 * depth and size of the tree bounded. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>
#include <petrel/storage.h>

#include "imap_date.h"
#include "imap_search_private.h"

struct compiler {
    struct imap_search *s;
    const struct imap_arg *args;
    size_t count, pos;
    const char *error;
};

static bool is_atom(const struct imap_arg *a, const char *word)
{
    return a->type == IMAP_ARG_ATOM && a->str != NULL && strcasecmp(a->str, word) == 0;
}

/* The next argument as an astring, or NULL (error set). */
static const struct imap_arg *next_astring(struct compiler *c)
{
    if (c->pos >= c->count) {
        c->error = "Missing argument to a search key";
        return NULL;
    }
    const struct imap_arg *a = &c->args[c->pos++];
    if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING) || a->str == NULL) {
        c->error = "Search key argument is not a string";
        return NULL;
    }
    return a;
}

static struct search_node *node_new(struct compiler *c, enum search_kind kind)
{
    if (++c->s->node_count > SEARCH_MAX_NODES) {
        c->error = "[LIMIT] Too many search keys";
        return NULL;
    }
    struct search_node *n = petrel_calloc(1, sizeof(*n));
    n->kind = kind;
    return n;
}

static void node_free(struct search_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->kid_count; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->keyword);
    imap_seqset_free(&n->set);
    free(n);
}

static void node_add_kid(struct search_node *n, struct search_node *kid)
{
    n->kids = petrel_realloc(n->kids, (n->kid_count + 1) * sizeof(*n->kids));
    n->kids[n->kid_count++] = kid;
}

/* A text key: its needle folded once, here. */
static struct search_node *text_key(struct compiler *c, enum search_where where, const char *field)
{
    const struct imap_arg *a = next_astring(c);
    if (a == NULL)
        return NULL;
    if (a->len > SEARCH_MAX_NEEDLE_LEN) {
        c->error = "[LIMIT] Search string too long";
        return NULL;
    }
    if (c->s->needle_count >= SEARCH_MAX_NEEDLES) {
        c->error = "[LIMIT] Too many text search keys";
        return NULL;
    }
    struct search_node *n = node_new(c, SK_TEXT);
    if (n == NULL)
        return NULL;
    struct search_needle *nd = &c->s->needles[c->s->needle_count];
    nd->where = where;
    nd->field = field != NULL ? petrel_strdup(field) : NULL;
    nd->text = search_fold_str(a->str, a->len);
    nd->len = a->len;
    n->needle = c->s->needle_count++;
    return n;
}

static struct search_node *header_key(struct compiler *c)
{
    const struct imap_arg *name = next_astring(c);
    if (name == NULL)
        return NULL;
    if (name->len == 0 || name->len >= 256 || memchr(name->str, '\0', name->len) != NULL ||
        memchr(name->str, ':', name->len) != NULL) {
        c->error = "Bad header field name";
        return NULL;
    }
    return text_key(c, SW_FIELD, name->str);
}

static struct search_node *date_key(struct compiler *c, enum search_kind kind)
{
    const struct imap_arg *a = next_astring(c);
    if (a == NULL)
        return NULL;
    int64_t days;
    if (!imap_date_parse(a->str, a->len, &days)) {
        c->error = "Bad date in search key";
        return NULL;
    }
    struct search_node *n = node_new(c, kind);
    if (n != NULL)
        n->days = days;
    if (n != NULL && kind >= SK_SENTBEFORE && kind <= SK_SENTSINCE)
        c->s->sent_keys = true;
    return n;
}

/* number (RFC 3501): 32 bits unsigned. */
static struct search_node *size_key(struct compiler *c, enum search_kind kind)
{
    const struct imap_arg *a = next_astring(c);
    if (a == NULL)
        return NULL;
    uint64_t v = 0;
    bool ok = a->type == IMAP_ARG_ATOM && a->len > 0 && a->len <= 10;
    for (size_t i = 0; ok && i < a->len; i++) {
        ok = a->str[i] >= '0' && a->str[i] <= '9';
        v = v * 10 + (uint64_t)(a->str[i] - '0');
    }
    if (!ok || v > UINT32_MAX) {
        c->error = "Bad number in search key";
        return NULL;
    }
    struct search_node *n = node_new(c, kind);
    if (n != NULL)
        n->num = v;
    return n;
}

/* OLDER / YOUNGER interval (RFC 5032): a non-zero number of seconds. */
static struct search_node *within_key(struct compiler *c, enum search_late late)
{
    struct search_node *n = size_key(c, SK_UID);
    if (n == NULL)
        return NULL;
    if (n->num == 0) {
        c->error = "WITHIN interval must be positive";
        node_free(n);
        return NULL;
    }
    n->late = late;
    n->set.sorted = true;
    c->s->uses_within = true;
    return n;
}

static struct search_node *keyword_key(struct compiler *c, enum search_kind kind)
{
    const struct imap_arg *a = next_astring(c);
    if (a == NULL)
        return NULL;
    if (a->type != IMAP_ARG_ATOM || a->len == 0 || strpbrk(a->str, " (){%*\"\\]") != NULL) {
        c->error = "Bad keyword in search key";
        return NULL;
    }
    struct search_node *n = node_new(c, kind);
    if (n != NULL)
        n->keyword = petrel_strdup(a->str);
    return n;
}

static struct search_node *set_key(struct compiler *c, enum search_kind kind,
                                   const struct imap_arg *a)
{
    if (a->len == 1 && a->str[0] == '$') {
        /* The saved result is of messages, so "$" and "UID $" alike are
         * its UIDs. */
        struct search_node *n = node_new(c, SK_UID);
        if (n != NULL) {
            n->late = SL_SAVED;
            n->set.sorted = true;
            c->s->uses_saved = true;
        }
        return n;
    }
    struct search_node *n = node_new(c, kind);
    if (n == NULL)
        return NULL;
    enum imap_seqset_result r = imap_seqset_parse(a->str, a->len, &n->set);
    if (r != IMAP_SEQSET_OK || n->set.saved) {
        c->error = r == IMAP_SEQSET_LIMIT ? "[LIMIT] Sequence set too large" : "Bad sequence set";
        node_free(n);
        return NULL;
    }
    return n;
}

struct simple_key {
    const char *name;
    enum search_kind kind;
    uint32_t flag;
};

static const struct simple_key simple_keys[] = {
    {"ALL", SK_ALL, 0},
    {"ANSWERED", SK_FLAG, PETREL_STORAGE_ANSWERED},
    {"DELETED", SK_FLAG, PETREL_STORAGE_DELETED},
    {"DRAFT", SK_FLAG, PETREL_STORAGE_DRAFT},
    {"FLAGGED", SK_FLAG, PETREL_STORAGE_FLAGGED},
    {"SEEN", SK_FLAG, PETREL_STORAGE_SEEN},
    {"UNANSWERED", SK_UNFLAG, PETREL_STORAGE_ANSWERED},
    {"UNDELETED", SK_UNFLAG, PETREL_STORAGE_DELETED},
    {"UNDRAFT", SK_UNFLAG, PETREL_STORAGE_DRAFT},
    {"UNFLAGGED", SK_UNFLAG, PETREL_STORAGE_FLAGGED},
    {"UNSEEN", SK_UNFLAG, PETREL_STORAGE_SEEN},
    {"RECENT", SK_RECENT, 0},
    {"NEW", SK_NEW, 0},
    {"OLD", SK_OLD, 0},
};

static const struct {
    const char *name;
    enum search_kind kind;
} date_keys[] = {
    {"BEFORE", SK_BEFORE},         {"ON", SK_ON},         {"SINCE", SK_SINCE},
    {"SENTBEFORE", SK_SENTBEFORE}, {"SENTON", SK_SENTON}, {"SENTSINCE", SK_SENTSINCE},
};

/* FROM, TO, ... : the header field each one searches. */
static const char *const field_keys[] = {"FROM", "TO", "CC", "BCC", "SUBJECT"};

static struct search_node *parse_key(struct compiler *c, unsigned depth);

static struct search_node *parse_list(struct compiler *c, const struct imap_arg *list, size_t count,
                                      unsigned depth)
{
    struct compiler sub = {.s = c->s, .args = list, .count = count};
    struct search_node *and = node_new(c, SK_AND);
    if (and == NULL)
        return NULL;
    if (count == 0)
        sub.error = "Empty search key list";
    while (sub.error == NULL && sub.pos < sub.count) {
        struct search_node *k = parse_key(&sub, depth);
        if (k == NULL)
            break;
        node_add_kid(and, k);
    }
    if (sub.error != NULL) {
        c->error = sub.error;
        node_free(and);
        return NULL;
    }
    return and;
}

static struct search_node *parse_logic(struct compiler *c, enum search_kind kind, unsigned depth)
{
    struct search_node *n = node_new(c, kind);
    if (n == NULL)
        return NULL;
    unsigned want = kind == SK_OR ? 2 : 1;
    for (unsigned i = 0; i < want; i++) {
        struct search_node *k = parse_key(c, depth);
        if (k == NULL) {
            node_free(n);
            return NULL;
        }
        node_add_kid(n, k);
    }
    return n;
}

static struct search_node *parse_atom_key(struct compiler *c, const struct imap_arg *a,
                                          unsigned depth)
{
    for (size_t i = 0; i < sizeof(simple_keys) / sizeof(simple_keys[0]); i++)
        if (is_atom(a, simple_keys[i].name)) {
            struct search_node *n = node_new(c, simple_keys[i].kind);
            if (n != NULL)
                n->flag = simple_keys[i].flag;
            return n;
        }
    for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++)
        if (is_atom(a, date_keys[i].name))
            return date_key(c, date_keys[i].kind);
    for (size_t i = 0; i < sizeof(field_keys) / sizeof(field_keys[0]); i++)
        if (is_atom(a, field_keys[i]))
            return text_key(c, SW_FIELD, field_keys[i]);
    if (is_atom(a, "BODY"))
        return text_key(c, SW_BODY, NULL);
    if (is_atom(a, "TEXT"))
        return text_key(c, SW_TEXT, NULL);
    if (is_atom(a, "HEADER"))
        return header_key(c);
    if (is_atom(a, "KEYWORD"))
        return keyword_key(c, SK_KEYWORD);
    if (is_atom(a, "UNKEYWORD"))
        return keyword_key(c, SK_UNKEYWORD);
    if (is_atom(a, "LARGER"))
        return size_key(c, SK_LARGER);
    if (is_atom(a, "SMALLER"))
        return size_key(c, SK_SMALLER);
    if (is_atom(a, "OLDER"))
        return within_key(c, SL_OLDER);
    if (is_atom(a, "YOUNGER"))
        return within_key(c, SL_YOUNGER);
    if (is_atom(a, "NOT"))
        return parse_logic(c, SK_NOT, depth);
    if (is_atom(a, "OR"))
        return parse_logic(c, SK_OR, depth);
    if (is_atom(a, "UID")) {
        const struct imap_arg *set = next_astring(c);
        if (set == NULL || set->type != IMAP_ARG_ATOM) {
            c->error = "UID needs a sequence set";
            return NULL;
        }
        return set_key(c, SK_UID, set);
    }
    char first = a->len > 0 ? a->str[0] : '\0';
    if ((first >= '0' && first <= '9') || first == '*' || first == '$')
        return set_key(c, SK_SEQ, a);
    c->error = "Unknown search key";
    return NULL;
}

static struct search_node *parse_key(struct compiler *c, unsigned depth)
{
    if (depth >= SEARCH_MAX_DEPTH) {
        c->error = "[LIMIT] Search keys nested too deep";
        return NULL;
    }
    if (c->pos >= c->count) {
        c->error = "Missing search key";
        return NULL;
    }
    const struct imap_arg *a = &c->args[c->pos++];
    if (a->type == IMAP_ARG_LIST)
        return parse_list(c, a->list, a->count, depth + 1);
    if (a->type != IMAP_ARG_ATOM || a->str == NULL) {
        c->error = "Search key is not an atom";
        return NULL;
    }
    return parse_atom_key(c, a, depth + 1);
}

/* "CHARSET x" first: UTF-8 and US-ASCII (a subset) only. */
static enum imap_search_error parse_charset(struct compiler *c)
{
    if (c->count == 0 || !is_atom(&c->args[0], "CHARSET"))
        return IMAP_SEARCH_OK;
    c->pos = 1;
    const struct imap_arg *cs = next_astring(c);
    if (cs == NULL)
        return IMAP_SEARCH_BAD;
    if (strcasecmp(cs->str, "UTF-8") != 0 && strcasecmp(cs->str, "US-ASCII") != 0) {
        c->error = "Unsupported charset";
        return IMAP_SEARCH_BADCHARSET;
    }
    return IMAP_SEARCH_OK;
}

void imap_search_free(struct imap_search *s)
{
    if (s == NULL)
        return;
    node_free(s->root);
    for (unsigned i = 0; i < s->needle_count; i++) {
        free(s->needles[i].field);
        free(s->needles[i].text);
    }
    free(s);
}

enum imap_search_error imap_search_compile(const struct imap_arg *args, size_t count,
                                           struct imap_search **s_r, const char **error_r)
{
    struct compiler c = {.args = args, .count = count};
    c.s = petrel_calloc(1, sizeof(*c.s));
    *s_r = NULL;
    enum imap_search_error r = parse_charset(&c);
    if (r == IMAP_SEARCH_OK && c.pos >= c.count) {
        c.error = "Missing search key";
        r = IMAP_SEARCH_BAD;
    }
    if (r == IMAP_SEARCH_OK) {
        c.s->root = parse_list(&c, args + c.pos, count - c.pos, 0);
        if (c.s->root == NULL)
            r = IMAP_SEARCH_BAD;
    }
    if (r != IMAP_SEARCH_OK) {
        *error_r = c.error;
        imap_search_free(c.s);
        return r;
    }
    *s_r = c.s;
    return IMAP_SEARCH_OK;
}

static unsigned node_needs(const struct imap_search *s, const struct search_node *n)
{
    unsigned needs = 0;
    if (n->kind >= SK_SENTBEFORE && n->kind <= SK_SENTSINCE)
        needs |= IMAP_SEARCH_NEEDS_HEADER;
    if (n->kind == SK_TEXT)
        needs |= s->needles[n->needle].where == SW_FIELD
                     ? IMAP_SEARCH_NEEDS_HEADER
                     : IMAP_SEARCH_NEEDS_HEADER | IMAP_SEARCH_NEEDS_FILE;
    for (size_t i = 0; i < n->kid_count; i++)
        needs |= node_needs(s, n->kids[i]);
    return needs;
}

unsigned imap_search_needs(const struct imap_search *s) { return node_needs(s, s->root); }

bool imap_search_uses_saved(const struct imap_search *s) { return s->uses_saved; }

bool imap_search_uses_within(const struct imap_search *s) { return s->uses_within; }

static void push_range(struct imap_seqset *set, size_t *cap, uint32_t lo, uint32_t hi)
{
    if (set->count > 0 && set->ranges[set->count - 1].hi + 1 == lo) {
        set->ranges[set->count - 1].hi = hi;
        return;
    }
    if (set->count == *cap) {
        *cap = *cap == 0 ? 16 : *cap * 2;
        set->ranges = petrel_reallocarray(set->ranges, *cap, sizeof(*set->ranges));
    }
    set->ranges[set->count++] = (struct imap_seq_range){lo, hi};
}

struct late_bind {
    const struct petrel_storage_uid_range *saved;
    size_t nsaved;
    int64_t now;
    const struct imap_search_date *msgs;
    size_t nmsgs;
    bool within; /* which kind this walk fills */
};

static void bind_node(struct search_node *n, const struct late_bind *b)
{
    for (size_t i = 0; i < n->kid_count; i++)
        bind_node(n->kids[i], b);
    bool mine = b->within ? (n->late == SL_OLDER || n->late == SL_YOUNGER) : n->late == SL_SAVED;
    if (!mine)
        return;
    imap_seqset_free(&n->set);
    n->set.sorted = true;
    size_t cap = 0;
    if (!b->within) {
        for (size_t i = 0; i < b->nsaved; i++)
            if (b->saved[i].lo != 0 && b->saved[i].lo <= b->saved[i].hi)
                push_range(&n->set, &cap, b->saved[i].lo, b->saved[i].hi);
        return;
    }
    /* OLDER n: at least n seconds old; YOUNGER n: less: each message is
     * in exactly one of the two. */
    int64_t limit = b->now - (int64_t)n->num;
    for (size_t i = 0; i < b->nmsgs; i++) {
        bool older = b->msgs[i].internal_date <= limit;
        if (older == (n->late == SL_OLDER) && b->msgs[i].uid != 0)
            push_range(&n->set, &cap, b->msgs[i].uid, b->msgs[i].uid);
    }
}

void imap_search_bind_saved(struct imap_search *s, const struct petrel_storage_uid_range *r,
                            size_t n)
{
    struct late_bind b = {.saved = r, .nsaved = n};
    bind_node(s->root, &b);
}

void imap_search_bind_within(struct imap_search *s, int64_t now,
                             const struct imap_search_date *msgs, size_t n)
{
    struct late_bind b = {.now = now, .msgs = msgs, .nmsgs = n, .within = true};
    bind_node(s->root, &b);
}
