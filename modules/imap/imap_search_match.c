/* Matching one message: the tree is evaluated with what is known for
 * free (flags, sizes, dates, numbers); only when that leaves the answer
 * open is the header read, and only then the body. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/storage.h>

#include "imap_search_private.h"

enum { NO = 0, YES = 1, UNKNOWN = 2 };

struct match_ctx {
    const struct imap_search *s;
    const struct imap_search_msg *m;
    uint64_t known; /* needles whose answer is final */
    uint64_t hits;
    bool header_read;
    bool have_sent;
    int64_t sent_days;
};

/* Keywords are compared without case, like flags. */
static bool has_keyword(const char *keywords, const char *kw)
{
    size_t kl = strlen(kw);
    const char *p = keywords != NULL ? keywords : "";
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == kl && n > 0 && strncasecmp(p, kw, n) == 0)
            return true;
        p += n;
    }
    return false;
}

static int eval(const struct match_ctx *x, const struct search_node *n);

static int eval_logic(const struct match_ctx *x, const struct search_node *n)
{
    if (n->kind == SK_NOT) {
        int r = eval(x, n->kids[0]);
        return r == UNKNOWN ? UNKNOWN : !r;
    }
    /* AND: NO decides; OR: YES decides. */
    int decides = n->kind == SK_AND ? NO : YES;
    int result = !decides;
    for (size_t i = 0; i < n->kid_count; i++) {
        int r = eval(x, n->kids[i]);
        if (r == decides)
            return decides;
        if (r == UNKNOWN)
            result = UNKNOWN;
    }
    return result;
}

static int eval_sent(const struct match_ctx *x, const struct search_node *n)
{
    if (!x->header_read)
        return UNKNOWN;
    if (!x->have_sent)
        return NO; /* no usable Date: field */
    if (n->kind == SK_SENTBEFORE)
        return x->sent_days < n->days;
    if (n->kind == SK_SENTON)
        return x->sent_days == n->days;
    return x->sent_days >= n->days;
}

/* The internal date's day is its UTC day. */
static int64_t internal_day(int64_t t) { return t >= 0 ? t / 86400 : -((-t + 86399) / 86400); }

static int eval(const struct match_ctx *x, const struct search_node *n)
{
    const struct imap_search_msg *m = x->m;
    switch (n->kind) {
    case SK_ALL:
        return YES;
    case SK_FLAG:
        return (m->flags & n->flag) != 0;
    case SK_UNFLAG:
        return (m->flags & n->flag) == 0;
    case SK_KEYWORD:
        return has_keyword(m->keywords, n->keyword);
    case SK_UNKEYWORD:
        return !has_keyword(m->keywords, n->keyword);
    case SK_RECENT:
        return m->recent;
    case SK_NEW:
        return m->recent && (m->flags & PETREL_STORAGE_SEEN) == 0;
    case SK_OLD:
        return !m->recent;
    case SK_LARGER:
        return m->size > n->num;
    case SK_SMALLER:
        return m->size < n->num;
    case SK_MODSEQ:
        return m->modseq >= n->num;
    case SK_BEFORE:
        return internal_day(m->internal_date) < n->days;
    case SK_ON:
        return internal_day(m->internal_date) == n->days;
    case SK_SINCE:
        return internal_day(m->internal_date) >= n->days;
    case SK_SENTBEFORE:
    case SK_SENTON:
    case SK_SENTSINCE:
        return eval_sent(x, n);
    case SK_SEQ:
        return imap_seqset_contains(&n->set, m->seq, m->max_seq);
    case SK_UID:
        return imap_seqset_contains(&n->set, m->uid, m->max_uid);
    case SK_TEXT:
        if ((x->hits >> n->needle) & 1u)
            return YES;
        return (x->known >> n->needle) & 1u ? NO : UNKNOWN;
    case SK_AND:
    case SK_OR:
    case SK_NOT:
        return eval_logic(x, n);
    }
    return NO;
}

static bool take_date(const char *name, size_t name_len, const char *value, size_t value_len,
                      void *ctx)
{
    struct match_ctx *x = ctx;
    if (name_len != 4 || strncasecmp(name, "date", 4) != 0)
        return true;
    x->have_sent = search_sent_day(value, value_len, &x->sent_days);
    return false; /* the first Date: field counts */
}

/* The header block from the file, when the caller did not give it. */
static char *read_header(int fd, size_t *len_r)
{
    char *buf = petrel_malloc(SEARCH_MAX_HEADER_BYTES + 1);
    size_t len = 0;
    while (len < SEARCH_MAX_HEADER_BYTES) {
        ssize_t n = pread(fd, buf + len, SEARCH_MAX_HEADER_BYTES - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    /* Cut after the empty line; petrel_header_fields stops there anyway. */
    for (size_t i = 0; i + 1 < len; i++)
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
            len = i + (buf[i + 1] == '\n' ? 2 : 3);
            break;
        }
    *len_r = len;
    return buf;
}

static uint64_t needles_of(const struct imap_search *s, enum search_where where)
{
    uint64_t mask = 0;
    for (unsigned i = 0; i < s->needle_count; i++)
        if (s->needles[i].where == where)
            mask |= 1ull << i;
    return mask;
}

/* Field needles answered, TEXT ones found there answered, SENT* known. */
static void match_header(struct match_ctx *x, const char *hdr, size_t len)
{
    uint64_t fields = needles_of(x->s, SW_FIELD);
    /* Needles the index decided are not looked for again. */
    uint64_t want = (fields | needles_of(x->s, SW_TEXT)) & ~x->known;
    search_header_match(x->s, hdr, len, want, &x->hits);
    x->known |= fields;
    if (x->s->sent_keys)
        petrel_header_fields(hdr, len, take_date, x);
    x->header_read = true;
}

int imap_search_match(const struct imap_search *s, const struct imap_search_msg *m)
{
    struct match_ctx x = {.s = s, .m = m};
    if (s->fts != NULL)
        search_fts_apply(s->fts, m->uid, &x.known, &x.hits);
    int r = eval(&x, s->root);
    if (r != UNKNOWN)
        return r;
    const char *hdr = m->header;
    size_t hdr_len = m->header_len;
    char *own = NULL;
    if (hdr == NULL && m->fd >= 0) {
        own = read_header(m->fd, &hdr_len);
        if (own == NULL)
            return -1;
        hdr = own;
    }
    if (hdr == NULL)
        return -1;
    match_header(&x, hdr, hdr_len);
    r = eval(&x, s->root);
    if (r == UNKNOWN) {
        uint64_t body = (needles_of(s, SW_BODY) | needles_of(s, SW_TEXT)) & ~x.hits & ~x.known;
        /* A header read here may be cut short: let the body code parse. */
        const char *given = own == NULL ? hdr : NULL;
        if (m->fd < 0 || search_body_match(s, m->fd, given, hdr_len, body, &x.hits) < 0)
            r = -1;
        else {
            x.known = ~0ull;
            r = eval(&x, s->root);
        }
    }
    free(own);
    return r;
}
