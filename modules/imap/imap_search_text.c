/* The text side of SEARCH: the sliding-window matcher that the texts of
 * petrel_mimetext (plugins-api/petrel/mimetext.h) stream through. The
 * decoding and folding are the core's, shared with the full-text index,
 * so a scan and an index lookup see the same text. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "imap_search_private.h"

char *search_fold_str(const char *s, size_t len) { return petrel_fold_str(s, len); }

void search_matcher_init(struct search_matcher *mt, const struct imap_search *s, uint64_t want,
                         uint64_t *hits)
{
    mt->s = s;
    mt->want = want & ~*hits;
    mt->hits = hits;
    mt->keep = 0;
    mt->len = 0;
    for (unsigned i = 0; i < s->needle_count; i++)
        if ((mt->want >> i) & 1u && s->needles[i].len > mt->keep + 1)
            mt->keep = s->needles[i].len - 1;
}

static void matcher_scan(struct search_matcher *mt)
{
    for (unsigned i = 0; i < mt->s->needle_count; i++) {
        const struct search_needle *nd = &mt->s->needles[i];
        if (!((mt->want >> i) & 1u))
            continue;
        if (nd->len == 0 || memmem(mt->buf, mt->len, nd->text, nd->len) != NULL) {
            *mt->hits |= 1ull << i;
            mt->want &= ~(1ull << i);
        }
    }
}

void search_matcher_feed(struct search_matcher *mt, const char *data, size_t len)
{
    while (len > 0 && mt->want != 0) {
        size_t room = sizeof(mt->buf) - mt->len;
        size_t n = len < room ? len : room;
        memcpy(mt->buf + mt->len, data, n);
        mt->len += n;
        data += n;
        len -= n;
        if (mt->len < sizeof(mt->buf))
            break;
        matcher_scan(mt);
        /* Keep the tail a needle may still complete. */
        memmove(mt->buf, mt->buf + mt->len - mt->keep, mt->keep);
        mt->len = mt->keep;
    }
}

void search_matcher_end(struct search_matcher *mt)
{
    if (mt->want != 0 && mt->len > 0)
        matcher_scan(mt);
    mt->len = 0;
}

bool search_matcher_done(const struct search_matcher *mt) { return mt->want == 0; }

bool search_matcher_text(void *ctx, const struct petrel_mimetext_info *info, const char *data,
                         size_t len, bool last)
{
    struct search_matcher *mt = ctx;
    (void)info;
    search_matcher_feed(mt, data, len);
    if (last)
        search_matcher_end(mt);
    return !search_matcher_done(mt);
}
