/* Threading (imap_thread.h). Containers live in one array and refer to
 * each other by index; node 0 is the root the RFC's root set hangs from.
 * Every walk over the tree uses an explicit stack, so a reply chain of
 * any depth costs heap, not the worker's stack. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "imap_subject.h"
#include "imap_thread.h"

#define NONE UINT32_MAX
#define ROOT 0u
/* Bytes of one Message-ID the table keeps. */
#define ID_MAX 1024u

struct msg {
    uint32_t number;
    int64_t date;
    char *subject;
    size_t subject_len;
    bool reply;
};

struct node {
    uint32_t parent, first, last, next;
    uint32_t msg; /* index into msgs, NONE for a dummy */
    char *id;     /* in the id table, or NULL */
    /* Step 6's order: the node's own date and number, a dummy's those of
     * its first child once sorted. */
    int64_t date;
    uint32_t number;
};

struct imap_thread {
    enum imap_thread_alg alg;
    struct node *nodes;
    uint32_t n, cap;
    struct msg *msgs;
    uint32_t nmsgs, msgcap;
    uint32_t *table; /* open addressing of node indices by id */
    uint32_t table_cap, table_used;
};

static uint32_t node_new(struct imap_thread *t, uint32_t msg)
{
    if (t->n == t->cap) {
        t->cap = t->cap == 0 ? 64 : t->cap * 2;
        t->nodes = petrel_reallocarray(t->nodes, t->cap, sizeof(*t->nodes));
    }
    t->nodes[t->n] = (struct node){NONE, NONE, NONE, NONE, msg, NULL, 0, 0};
    return t->n++;
}

struct imap_thread *imap_thread_new(enum imap_thread_alg alg)
{
    struct imap_thread *t = petrel_calloc(1, sizeof(*t));
    t->alg = alg;
    node_new(t, NONE); /* ROOT */
    return t;
}

void imap_thread_free(struct imap_thread *t)
{
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        free(t->nodes[i].id);
    for (uint32_t i = 0; i < t->nmsgs; i++)
        free(t->msgs[i].subject);
    free(t->nodes);
    free(t->msgs);
    free(t->table);
    free(t);
}

/* --- the tree --- */

static void link_child(struct imap_thread *t, uint32_t parent, uint32_t child)
{
    struct node *p = &t->nodes[parent], *c = &t->nodes[child];
    c->parent = parent;
    c->next = NONE;
    if (p->last == NONE)
        p->first = child;
    else
        t->nodes[p->last].next = child;
    p->last = child;
}

static void unlink_child(struct imap_thread *t, uint32_t child)
{
    struct node *c = &t->nodes[child];
    struct node *p = &t->nodes[c->parent];
    uint32_t prev = NONE;
    for (uint32_t k = p->first; k != NONE && k != child; k = t->nodes[k].next)
        prev = k;
    if (prev == NONE)
        p->first = c->next;
    else
        t->nodes[prev].next = c->next;
    if (p->last == child)
        p->last = prev;
    c->parent = NONE;
    c->next = NONE;
}

/* Whether a is b or one of b's ancestors. A node without children is
 * nobody's ancestor: the usual case, a new message, costs no walk. */
static bool is_ancestor(const struct imap_thread *t, uint32_t a, uint32_t b)
{
    if (a != b && t->nodes[a].first == NONE)
        return false;
    for (uint32_t k = b; k != NONE && k != ROOT; k = t->nodes[k].parent)
        if (k == a)
            return true;
    return false;
}

static uint32_t child_count(const struct imap_thread *t, uint32_t n)
{
    uint32_t c = 0;
    for (uint32_t k = t->nodes[n].first; k != NONE; k = t->nodes[k].next)
        c++;
    return c;
}

/* --- Message-IDs --- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void table_grow(struct imap_thread *t)
{
    uint32_t cap = t->table_cap == 0 ? 256 : t->table_cap * 2;
    uint32_t *table = petrel_reallocarray(NULL, cap, sizeof(*table));
    for (uint32_t i = 0; i < cap; i++)
        table[i] = NONE;
    for (uint32_t i = 0; i < t->table_cap; i++) {
        uint32_t k = t->table[i];
        if (k == NONE)
            continue;
        const char *id = t->nodes[k].id;
        uint32_t slot = (uint32_t)(hash_bytes(id, strlen(id)) & (cap - 1));
        while (table[slot] != NONE)
            slot = (slot + 1) & (cap - 1);
        table[slot] = k;
    }
    free(t->table);
    t->table = table;
    t->table_cap = cap;
}

/* The container of an id, made (a dummy) when new. */
static uint32_t id_node(struct imap_thread *t, const char *id, size_t len)
{
    if (len > ID_MAX)
        len = ID_MAX;
    if ((t->table_used + 1) * 2 > t->table_cap)
        table_grow(t);
    uint32_t slot = (uint32_t)(hash_bytes(id, len) & (t->table_cap - 1));
    for (; t->table[slot] != NONE; slot = (slot + 1) & (t->table_cap - 1)) {
        const char *have = t->nodes[t->table[slot]].id;
        if (strlen(have) == len && memcmp(have, id, len) == 0)
            return t->table[slot];
    }
    uint32_t k = node_new(t, NONE);
    t->nodes[k].id = petrel_strndup(id, len);
    t->table[slot] = k;
    t->table_used++;
    return k;
}

/* --- adding messages (REFERENCES step 1) --- */

static uint32_t msg_new(struct imap_thread *t, const struct imap_thread_msg *m)
{
    if (t->nmsgs == t->msgcap) {
        t->msgcap = t->msgcap == 0 ? 64 : t->msgcap * 2;
        t->msgs = petrel_reallocarray(t->msgs, t->msgcap, sizeof(*t->msgs));
    }
    struct msg *g = &t->msgs[t->nmsgs];
    g->number = m->number;
    g->date = m->date;
    g->subject = petrel_strndup(m->subject != NULL ? m->subject : "", m->subject_len);
    g->subject_len = m->subject != NULL ? m->subject_len : 0;
    g->reply = m->reply;
    return t->nmsgs++;
}

static bool next_ref(const char **p, const char *end, const char **id_r, size_t *len_r)
{
    while (*p < end && **p == ' ')
        (*p)++;
    if (*p >= end)
        return false;
    *id_r = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    *len_r = (size_t)(*p - *id_r);
    return true;
}

void imap_thread_add(struct imap_thread *t, const struct imap_thread_msg *m)
{
    uint32_t gi = msg_new(t, m);
    uint32_t self;
    if (t->alg == IMAP_THREAD_ORDEREDSUBJECT || m->msgid == NULL || m->msgid_len == 0) {
        self = node_new(t, gi);
    } else {
        self = id_node(t, m->msgid, m->msgid_len);
        /* A Message-ID seen on an earlier message: this one is apart. */
        if (t->nodes[self].msg != NONE)
            self = node_new(t, gi);
        else
            t->nodes[self].msg = gi;
    }
    if (t->alg == IMAP_THREAD_ORDEREDSUBJECT)
        return;
    /* Each reference the parent of the next, unless that one has a parent
     * already or the link would make a loop. */
    const char *p = m->refs != NULL ? m->refs : "", *end = p + (m->refs != NULL ? m->refs_len : 0);
    const char *id;
    size_t len;
    uint32_t prev = NONE;
    while (next_ref(&p, end, &id, &len)) {
        uint32_t cur = id_node(t, id, len);
        if (prev != NONE && cur != prev && t->nodes[cur].parent == NONE &&
            !is_ancestor(t, cur, prev))
            link_child(t, prev, cur);
        prev = cur;
    }
    /* The last reference is the parent: it overrides an earlier guess. */
    if (t->nodes[self].parent != NONE)
        unlink_child(t, self);
    if (prev != NONE && prev != self && !is_ancestor(t, self, prev))
        link_child(t, prev, self);
}

/* --- steps 2 to 6 --- */

static bool is_dummy(const struct imap_thread *t, uint32_t n) { return t->nodes[n].msg == NONE; }

/* Every node, children before their parent. */
static uint32_t *post_order(const struct imap_thread *t, uint32_t *count_r)
{
    uint32_t *order = petrel_reallocarray(NULL, t->n, sizeof(*order));
    uint32_t *stack = petrel_reallocarray(NULL, t->n, sizeof(*stack));
    uint32_t n = 0, sp = 0;
    stack[sp++] = ROOT;
    while (sp > 0) {
        uint32_t k = stack[--sp];
        order[n++] = k;
        for (uint32_t c = t->nodes[k].first; c != NONE; c = t->nodes[c].next)
            stack[sp++] = c;
    }
    free(stack);
    /* Pre-order reversed: children come before their parent. */
    for (uint32_t i = 0; i < n / 2; i++) {
        uint32_t x = order[i];
        order[i] = order[n - 1 - i];
        order[n - 1 - i] = x;
    }
    *count_r = n;
    return order;
}

/* Put child's children in its place under its parent. */
static void promote(struct imap_thread *t, uint32_t child)
{
    struct node *c = &t->nodes[child];
    uint32_t parent = c->parent;
    uint32_t prev = NONE;
    for (uint32_t k = t->nodes[parent].first; k != child; k = t->nodes[k].next)
        prev = k;
    uint32_t after = c->next;
    uint32_t first = c->first, last = c->last;
    for (uint32_t k = first; k != NONE; k = t->nodes[k].next)
        t->nodes[k].parent = parent;
    if (first == NONE) {
        first = after;
    } else {
        t->nodes[last].next = after;
    }
    if (prev == NONE)
        t->nodes[parent].first = first;
    else
        t->nodes[prev].next = first;
    if (t->nodes[parent].last == child)
        t->nodes[parent].last = last != NONE ? last : prev;
    c->parent = c->first = c->last = c->next = NONE;
}

/* Step 4: dummies go, their children moving up, except that a dummy
 * with several children stays under the root. */
static void prune(struct imap_thread *t)
{
    uint32_t count;
    uint32_t *order = post_order(t, &count);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t k = order[i];
        if (k == ROOT || !is_dummy(t, k) || t->nodes[k].parent == ROOT)
            continue;
        promote(t, k);
    }
    free(order);
    for (uint32_t k = t->nodes[ROOT].first, next; k != NONE; k = next) {
        next = t->nodes[k].next;
        if (is_dummy(t, k) && child_count(t, k) <= 1)
            promote(t, k);
    }
}

/* The message a root container stands for: itself, or a dummy's first
 * child. */
static const struct msg *subject_msg(const struct imap_thread *t, uint32_t k)
{
    if (!is_dummy(t, k))
        return &t->msgs[t->nodes[k].msg];
    uint32_t c = t->nodes[k].first;
    return c != NONE && !is_dummy(t, c) ? &t->msgs[t->nodes[c].msg] : NULL;
}

struct subject_table {
    uint32_t *slot;
    uint32_t cap;
};

static uint64_t hash_casemap(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        h = (h ^ (c >= 'a' && c <= 'z' ? c - 32u : c)) * 1099511628211ull;
    }
    return h;
}

/* The slot of a subject (empty: NONE there). */
static uint32_t *subject_slot(const struct imap_thread *t, struct subject_table *st,
                              const struct msg *m)
{
    uint32_t i = (uint32_t)(hash_casemap(m->subject, m->subject_len) & (st->cap - 1));
    for (; st->slot[i] != NONE; i = (i + 1) & (st->cap - 1)) {
        const struct msg *o = subject_msg(t, st->slot[i]);
        if (o != NULL &&
            imap_casemap_cmp(o->subject, o->subject_len, m->subject, m->subject_len) == 0)
            return &st->slot[i];
    }
    return &st->slot[i];
}

/* Step 5: root threads with the same base subject gathered. */
static void gather_subjects(struct imap_thread *t)
{
    uint32_t roots = child_count(t, ROOT);
    if (roots == 0)
        return;
    struct subject_table st = {.cap = 16};
    while (st.cap < roots * 2)
        st.cap *= 2;
    st.slot = petrel_reallocarray(NULL, st.cap, sizeof(*st.slot));
    for (uint32_t i = 0; i < st.cap; i++)
        st.slot[i] = NONE;
    uint32_t *list = petrel_reallocarray(NULL, roots, sizeof(*list));
    uint32_t n = 0;
    for (uint32_t k = t->nodes[ROOT].first; k != NONE; k = t->nodes[k].next)
        list[n++] = k;
    for (uint32_t i = 0; i < n; i++) {
        const struct msg *m = subject_msg(t, list[i]);
        if (m == NULL || m->subject_len == 0)
            continue;
        uint32_t *slot = subject_slot(t, &st, m);
        if (*slot == NONE) {
            *slot = list[i];
            continue;
        }
        const struct msg *o = subject_msg(t, *slot);
        /* A dummy in the table stays; else a dummy or a non-reply takes
         * the place of a reply. */
        if (!is_dummy(t, *slot) && (is_dummy(t, list[i]) || (o->reply && !m->reply)))
            *slot = list[i];
    }
    /* The root list is rebuilt at the end from the nodes still marked as
     * its children: taking one out of a long list is then free. */
    t->nodes[ROOT].first = t->nodes[ROOT].last = NONE;
    uint32_t *made = NULL;
    uint32_t nmade = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = list[i];
        const struct msg *m = subject_msg(t, k);
        if (m == NULL || m->subject_len == 0)
            continue;
        uint32_t *slot = subject_slot(t, &st, m);
        uint32_t c = *slot;
        if (c == k || c == NONE)
            continue;
        bool kd = is_dummy(t, k), cd = is_dummy(t, c);
        if (kd && cd) {
            for (uint32_t x = t->nodes[k].first, next; x != NONE; x = next) {
                next = t->nodes[x].next;
                link_child(t, c, x);
            }
            t->nodes[k].first = t->nodes[k].last = NONE;
            t->nodes[k].parent = NONE;
        } else if (cd) {
            link_child(t, c, k);
        } else if (kd) {
            link_child(t, k, c);
            *slot = k;
        } else if (m->reply && !subject_msg(t, c)->reply) {
            link_child(t, c, k);
        } else {
            /* A new dummy holding both. */
            uint32_t d = node_new(t, NONE);
            t->nodes[d].parent = ROOT;
            made = petrel_reallocarray(made, nmade + 1, sizeof(*made));
            made[nmade++] = d;
            link_child(t, d, c);
            link_child(t, d, k);
            *slot = d; /* looked up by its first child's subject */
        }
    }
    for (uint32_t i = 0; i < n + nmade; i++) {
        uint32_t k = i < n ? list[i] : made[i - n];
        if (t->nodes[k].parent == ROOT)
            link_child(t, ROOT, k);
    }
    free(made);
    free(list);
    free(st.slot);
}

static int cmp_node(const void *a, const void *b, const struct imap_thread *t)
{
    const struct node *x = &t->nodes[*(const uint32_t *)a], *y = &t->nodes[*(const uint32_t *)b];
    if (x->date != y->date)
        return x->date < y->date ? -1 : 1;
    return x->number < y->number ? -1 : x->number > y->number;
}

static _Thread_local const struct imap_thread *sort_tree;

static int cmp_node_q(const void *a, const void *b) { return cmp_node(a, b, sort_tree); }

/* Step 6: siblings by sent date, then number; a dummy goes by its first
 * child. */
static void sort_tree_children(struct imap_thread *t)
{
    uint32_t count;
    uint32_t *order = post_order(t, &count);
    uint32_t *kids = petrel_reallocarray(NULL, t->n, sizeof(*kids));
    sort_tree = t;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t k = order[i];
        uint32_t n = 0;
        for (uint32_t c = t->nodes[k].first; c != NONE; c = t->nodes[c].next)
            kids[n++] = c;
        if (n > 1)
            qsort(kids, n, sizeof(*kids), cmp_node_q);
        t->nodes[k].first = n > 0 ? kids[0] : NONE;
        t->nodes[k].last = n > 0 ? kids[n - 1] : NONE;
        for (uint32_t j = 0; j < n; j++)
            t->nodes[kids[j]].next = j + 1 < n ? kids[j + 1] : NONE;
        struct node *nd = &t->nodes[k];
        if (nd->msg != NONE) {
            nd->date = t->msgs[nd->msg].date;
            nd->number = t->msgs[nd->msg].number;
        } else if (n > 0) {
            nd->date = t->nodes[kids[0]].date;
            nd->number = t->nodes[kids[0]].number;
        }
    }
    sort_tree = NULL;
    free(kids);
    free(order);
}

/* ORDEREDSUBJECT: by base subject, then sent date; each subject's first
 * message the parent of the others. */
static _Thread_local const struct imap_thread *subject_tree;

static int cmp_subject(const void *a, const void *b)
{
    const struct imap_thread *t = subject_tree;
    const struct msg *x = &t->msgs[t->nodes[*(const uint32_t *)a].msg];
    const struct msg *y = &t->msgs[t->nodes[*(const uint32_t *)b].msg];
    int c = imap_casemap_cmp(x->subject, x->subject_len, y->subject, y->subject_len);
    if (c != 0)
        return c;
    if (x->date != y->date)
        return x->date < y->date ? -1 : 1;
    return x->number < y->number ? -1 : x->number > y->number;
}

static void ordered_subject(struct imap_thread *t)
{
    uint32_t n = t->n - 1;
    uint32_t *all = petrel_reallocarray(NULL, n > 0 ? n : 1, sizeof(*all));
    for (uint32_t i = 0; i < n; i++)
        all[i] = i + 1;
    subject_tree = t;
    qsort(all, n, sizeof(*all), cmp_subject);
    subject_tree = NULL;
    uint32_t head = NONE;
    for (uint32_t i = 0; i < n; i++) {
        const struct msg *m = &t->msgs[t->nodes[all[i]].msg];
        const struct msg *h = head != NONE ? &t->msgs[t->nodes[head].msg] : NULL;
        if (h != NULL &&
            imap_casemap_cmp(h->subject, h->subject_len, m->subject, m->subject_len) == 0) {
            link_child(t, head, all[i]);
        } else {
            head = all[i];
            link_child(t, ROOT, head);
        }
    }
    free(all);
}

/* --- step 7: the answer --- */

#define OPEN 0x80000000u

static void write_tree(const struct imap_thread *t, uint32_t top, struct petrel_buf *out)
{
    /* Entries: a node, a node to open with "(" (OPEN set), or NONE for
     * its ")". Each node goes on once, with at most one ")". */
    uint32_t *stack = petrel_reallocarray(NULL, (size_t)t->n * 2 + 2, sizeof(*stack));
    uint32_t sp = 0;
    stack[sp++] = top;
    while (sp > 0) {
        uint32_t k = stack[--sp];
        if (k == NONE) {
            petrel_buf_append(out, ")", 1);
            continue;
        }
        if (k & OPEN) {
            petrel_buf_append(out, "(", 1);
            k &= ~OPEN;
        }
        const struct node *nd = &t->nodes[k];
        bool real = nd->msg != NONE;
        if (real)
            petrel_buf_printf(out, "%u", t->msgs[nd->msg].number);
        uint32_t kids = child_count(t, k);
        if (kids == 0)
            continue;
        if (real)
            petrel_buf_append(out, " ", 1);
        if (kids == 1 && real) {
            stack[sp++] = nd->first; /* a chain: "a b c" */
            continue;
        }
        /* "(a)(b)": the first child's entries on top. */
        uint32_t i = 0;
        for (uint32_t c = nd->first; c != NONE; c = t->nodes[c].next, i++) {
            uint32_t pos = sp + 2 * (kids - 1 - i);
            stack[pos] = NONE;
            stack[pos + 1] = c | OPEN;
        }
        sp += 2 * kids;
    }
    free(stack);
}

void imap_thread_write(struct imap_thread *t, struct petrel_buf *out)
{
    if (t->alg == IMAP_THREAD_ORDEREDSUBJECT) {
        ordered_subject(t);
    } else {
        /* Step 2: the containers without a parent are the root set. */
        for (uint32_t k = 1; k < t->n; k++)
            if (t->nodes[k].parent == NONE)
                link_child(t, ROOT, k);
        prune(t);
        gather_subjects(t);
    }
    sort_tree_children(t);
    for (uint32_t k = t->nodes[ROOT].first; k != NONE; k = t->nodes[k].next) {
        petrel_buf_append(out, "(", 1);
        write_tree(t, k, out);
        petrel_buf_append(out, ")", 1);
    }
}
