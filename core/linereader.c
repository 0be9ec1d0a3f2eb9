/* Lines end at LF; a CR before it is dropped too. An over-long line is
 * consumed as it arrives, so memory stays bounded, and reported once when
 * its LF finally comes, so the protocol answers in step with the client. */
#include "config.h"

#include <string.h>

#include "linereader.h"

void petrel_linereader_init(struct petrel_linereader *lr, size_t max_line)
{
    memset(lr, 0, sizeof(*lr));
    lr->max_line = max_line;
}

void petrel_linereader_chunk(struct petrel_linereader *lr, size_t len) { lr->chunk_left = len; }

static enum petrel_lr_event next_chunk(struct petrel_linereader *lr, char *data, size_t len,
                                       struct petrel_lr_item *item)
{
    size_t n = len < lr->chunk_left ? len : lr->chunk_left;
    if (n == 0)
        return PETREL_LR_MORE;
    lr->chunk_left -= n;
    item->data = data;
    item->len = n;
    item->last = lr->chunk_left == 0;
    item->consumed = n;
    return PETREL_LR_CHUNK;
}

enum petrel_lr_event petrel_linereader_next(struct petrel_linereader *lr, char *data, size_t len,
                                            struct petrel_lr_item *item)
{
    memset(item, 0, sizeof(*item));
    if (lr->chunk_left > 0)
        return next_chunk(lr, data, len, item);
    char *lf = memchr(data, '\n', len);
    if (lf == NULL) {
        /* max_line bytes and a CR may still be a valid line; more may not. */
        if (lr->discarding || len >= lr->max_line + 2) {
            lr->discarding = true;
            lr->dropped_cr = len > 0 && data[len - 1] == '\r';
            item->consumed = len;
        }
        return PETREL_LR_MORE;
    }
    size_t n = (size_t)(lf - data);
    item->consumed = n + 1;
    if (n > 0 && data[n - 1] == '\r') {
        n--;
        item->crlf = true;
    } else if (n == 0 && lr->discarding) {
        item->crlf = lr->dropped_cr; /* the CR went with the dropped part */
    }
    if (lr->discarding || n > lr->max_line) {
        lr->discarding = false;
        return PETREL_LR_TOO_LONG;
    }
    data[n] = '\0';
    item->data = data;
    item->len = n;
    return PETREL_LR_LINE;
}
