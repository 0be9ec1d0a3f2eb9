/* SEARCH on the storage's full-text index (docs/fts.md): before the
 * messages are matched, each text key the index can answer is looked up
 * once; matching then takes the answer from the UID lists and reads only
 * what the remaining keys need. BODY and TEXT keys are answered exactly
 * (the index holds the very texts the scan reads), header-field keys only
 * narrowed (their rows are "Field: value", and a needle may match in
 * "Field: "), so a listed message still has its header checked. */
#include "config.h"

#include <stdlib.h>

#include <petrel/mem.h>
#include <petrel/storage.h>

#include "imap_search_private.h"

struct uid_acc {
    uint32_t *v;
    size_t n, cap;
};

static void take_uid(void *arg, uint32_t uid)
{
    struct uid_acc *a = arg;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = petrel_reallocarray(a->v, a->cap, sizeof(*a->v));
    }
    a->v[a->n++] = uid;
}

static enum petrel_storage_fts_where fts_where(enum search_where w)
{
    if (w == SW_FIELD)
        return PETREL_STORAGE_FTS_FIELD;
    return w == SW_BODY ? PETREL_STORAGE_FTS_BODY : PETREL_STORAGE_FTS_TEXT;
}

unsigned imap_search_fts(struct imap_search *s, const struct petrel_storage_ops *ops,
                         struct petrel_folder *folder)
{
    unsigned all = imap_search_needs(s);
    if (ops->size < offsetof(struct petrel_storage_ops, fts_search) + sizeof(ops->fts_search) ||
        ops->fts_search == NULL || s->needle_count == 0)
        return all;
    struct search_fts *f = petrel_calloc(1, sizeof(*f));
    for (unsigned i = 0; i < s->needle_count; i++) {
        const struct search_needle *nd = &s->needles[i];
        struct uid_acc acc = {0};
        if (ops->fts_search(folder, fts_where(nd->where), nd->field, nd->text, nd->len, take_uid,
                            &acc) != PETREL_STORAGE_OK) {
            free(acc.v);
            continue; /* this key scans */
        }
        f->uids[i] = acc.v;
        f->count[i] = acc.n;
        if (nd->where == SW_FIELD)
            f->filter |= 1ull << i;
        else
            f->exact |= 1ull << i;
    }
    s->fts = f;
    /* What the keys the index did not answer still read. */
    unsigned needs = s->sent_keys ? IMAP_SEARCH_NEEDS_HEADER : 0;
    for (unsigned i = 0; i < s->needle_count; i++) {
        if ((f->exact >> i) & 1u)
            continue;
        needs |= s->needles[i].where == SW_FIELD
                     ? IMAP_SEARCH_NEEDS_HEADER
                     : IMAP_SEARCH_NEEDS_HEADER | IMAP_SEARCH_NEEDS_FILE;
    }
    return needs & all;
}

/* The shortest UID list of an indexed needle that every match needs:
 * the root itself, or a child of a top-level AND (nested ANDs too). */
static void shortest_required(const struct search_fts *f, const struct search_node *n, int *best)
{
    if (n->kind == SK_AND) {
        for (size_t k = 0; k < n->kid_count; k++)
            shortest_required(f, n->kids[k], best);
    } else if (n->kind == SK_TEXT && (((f->exact | f->filter) >> n->needle) & 1u) &&
               (*best < 0 || f->count[n->needle] < f->count[*best])) {
        *best = (int)n->needle;
    }
}

bool imap_search_fts_narrow(const struct imap_search *s, struct petrel_storage_uid_range **ranges_r,
                            size_t *count_r)
{
    int best = -1;
    if (s->fts == NULL || s->root == NULL)
        return false;
    shortest_required(s->fts, s->root, &best);
    if (best < 0)
        return false;
    const uint32_t *v = s->fts->uids[best];
    size_t n = s->fts->count[best], out = 0;
    struct petrel_storage_uid_range *r = n ? petrel_reallocarray(NULL, n, sizeof(*r)) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && r[out - 1].hi + 1 == v[i])
            r[out - 1].hi = v[i];
        else
            r[out++] = (struct petrel_storage_uid_range){v[i], v[i]};
    }
    *ranges_r = r;
    *count_r = out;
    return true;
}

void imap_search_fts_free(struct imap_search *s)
{
    if (s == NULL || s->fts == NULL)
        return;
    for (unsigned i = 0; i < SEARCH_MAX_NEEDLES; i++)
        free(s->fts->uids[i]);
    free(s->fts);
    s->fts = NULL;
}

static bool listed(const uint32_t *v, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == uid)
            return true;
        if (v[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void search_fts_apply(const struct search_fts *f, uint32_t uid, uint64_t *known, uint64_t *hits)
{
    uint64_t asked = f->exact | f->filter;
    for (unsigned i = 0; asked != 0 && i < SEARCH_MAX_NEEDLES; i++) {
        uint64_t bit = 1ull << i;
        if (!(asked & bit))
            continue;
        asked &= ~bit;
        bool in = listed(f->uids[i], f->count[i], uid);
        if (f->exact & bit) {
            *known |= bit;
            if (in)
                *hits |= bit;
        } else if (!in) {
            *known |= bit; /* not even a candidate */
        }
    }
}
