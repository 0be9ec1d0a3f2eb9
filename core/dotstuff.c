/* SMTP dot-stuffing of outgoing DATA (see petrel/dotstuff.h). */
#include "config.h"

#include <string.h>

#include <petrel/dotstuff.h>

void petrel_dotstuff_init(struct petrel_dotstuff *d)
{
    *d = (struct petrel_dotstuff){.line_start = true, .crlf = true};
}

bool petrel_dotstuff_add(struct petrel_dotstuff *d, const char *data, size_t len,
                         struct petrel_buf *out)
{
    while (len > 0) {
        if (d->line_start && data[0] == '.' && !petrel_buf_append(out, ".", 1))
            return false;
        const char *nl = memchr(data, '\n', len);
        size_t n = nl != NULL ? (size_t)(nl - data) + 1 : len;
        if (!petrel_buf_append(out, data, n))
            return false;
        d->line_start = nl != NULL;
        d->crlf = nl != NULL && (n >= 2 ? data[n - 2] == '\r' : d->last_cr);
        d->last_cr = data[n - 1] == '\r';
        data += n, len -= n;
    }
    return true;
}

bool petrel_dotstuff_end(struct petrel_dotstuff *d, struct petrel_buf *out)
{
    if (!d->crlf && !petrel_buf_append(out, "\r\n", 2))
        return false;
    return petrel_buf_append(out, ".\r\n", 3);
}
