/* Writing a record back as one line of the account database file, for
 * the atomic rewrite after an administrative change. */
#include <stdio.h>
#include <string.h>

#include <petrel/buf.h>

#include "userdb_file.h"

static const char *const kind_names[] = {"domain", "account", "alias", "forward"};

bool userdb_format(const struct userdb_record *r, char *buf, size_t size)
{
    struct petrel_buf b;
    petrel_buf_init(&b, size > 0 ? size - 1 : 0);
    bool ok = petrel_buf_printf(&b, "%s %s", kind_names[r->kind], r->key);
    switch (r->kind) {
    case USERDB_DOMAIN:
        if (r->catchall != NULL)
            ok = ok && petrel_buf_printf(&b, " catchall=%s", r->catchall);
        break;
    case USERDB_ACCOUNT:
        ok = ok && petrel_buf_printf(&b, " %s", r->hash);
        if (r->quota_bytes > 0)
            ok = ok && petrel_buf_printf(&b, " quota=%lld", r->quota_bytes);
        if (r->quota_messages > 0)
            ok = ok && petrel_buf_printf(&b, " messages=%lld", r->quota_messages);
        if (r->disabled)
            ok = ok && petrel_buf_printf(&b, " disabled");
        break;
    case USERDB_ALIAS:
    case USERDB_FORWARD:
        for (size_t i = 0; i < r->ntargets; i++)
            ok = ok && petrel_buf_printf(&b, " %s", r->targets[i]);
        if (r->keep)
            ok = ok && petrel_buf_printf(&b, " keep");
        break;
    }
    if (ok && size > 0) {
        memcpy(buf, petrel_buf_head(&b), b.len);
        buf[b.len] = '\0';
    }
    petrel_buf_free(&b);
    return ok && size > 0;
}
