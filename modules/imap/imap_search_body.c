/* The body side of SEARCH: the body texts of petrel_mimetext_body (text
 * parts decoded, HTML reduced to text, attached messages' header fields,
 * attachments' file names) streamed into the matcher, which stops the
 * extraction once every needle it looks for is found. */
#include "config.h"

#include <stdlib.h>

#include <petrel/mem.h>

#include "imap_search_private.h"

int search_body_match(const struct imap_search *s, int fd, const char *header, size_t header_len,
                      uint64_t want, uint64_t *hits)
{
    struct search_matcher *mt = petrel_malloc(sizeof(*mt));
    search_matcher_init(mt, s, want, hits);
    int r = 0;
    if (!search_matcher_done(mt))
        r = petrel_mimetext_body(fd, header, header_len, search_matcher_text, mt);
    free(mt);
    return r;
}
