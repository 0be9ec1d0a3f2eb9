/* ENABLE (RFC 5161) with its table of what a client can enable (also
 * IMAP4rev2 and UTF8=ACCEPT, whose switches are listed in docs/imap.md),
 * and the
 * UID sets of QRESYNC (RFC 7162) resolved against the selected folder;
 * the session-free pieces are in imap_modseq.c. docs/imap-sync.md
 * describes how the store keeps MODSEQ and the expunged window. */
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "imap_seqset.h"

/* What ENABLE knows: the name's own bit and what it turns on with it
 * (QRESYNC implies CONDSTORE, RFC 7162 3.2.3). */
static const struct {
    const char *name;
    unsigned own, bits;
} enable_table[] = {
    {"CONDSTORE", IMAP_EN_CONDSTORE, IMAP_EN_CONDSTORE},
    {"QRESYNC", IMAP_EN_QRESYNC, IMAP_EN_CONDSTORE | IMAP_EN_QRESYNC},
    {"IMAP4rev2", IMAP_EN_REV2, IMAP_EN_REV2},
    {"UTF8=ACCEPT", IMAP_EN_UTF8, IMAP_EN_UTF8},
};

void imap_cmd_enable(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    if (cmd->count == 0) {
        imap_bad(conn, s, "ENABLE needs a capability");
        return;
    }
    for (size_t i = 0; i < cmd->count; i++)
        if (cmd->args[i].type != IMAP_ARG_ATOM) {
            imap_bad(conn, s, "ENABLE takes capability names");
            return;
        }
    struct petrel_buf out;
    petrel_buf_init(&out, 4096);
    petrel_buf_append(&out, "* ENABLED", 9);
    /* Only what this command turned on is listed; unknown names and
     * what was on before are left out (RFC 5161 3.1). */
    for (size_t i = 0; i < cmd->count; i++)
        for (size_t k = 0; k < sizeof(enable_table) / sizeof(enable_table[0]); k++) {
            if (!imap_arg_atom_is(&cmd->args[i], enable_table[k].name) ||
                (s->enabled & enable_table[k].own))
                continue;
            s->enabled |= enable_table[k].bits;
            petrel_buf_printf(&out, " %s", enable_table[k].name);
        }
    petrel_buf_append(&out, "\r\n", 2);
    petrel_conn_write(conn, petrel_buf_head(&out), out.len);
    petrel_buf_free(&out);
    imap_tagged(conn, s, "OK", "ENABLE completed");
}

bool imap_uid_set_wide(const struct imap_session *s, const struct imap_arg *arg,
                       struct petrel_storage_uid_set *set_r, const char **error_r)
{
    /* UIDs a client knew may lie above the last one left: "*" and the
     * cut are UIDNEXT - 1 here, not the last message's UID. */
    struct imap_seqset set;
    *set_r = (struct petrel_storage_uid_set){0};
    if (arg->type != IMAP_ARG_ATOM) {
        *error_r = "Bad UID set";
        return false;
    }
    enum imap_seqset_result r = imap_seqset_parse(arg->str, arg->len, &set);
    if (r != IMAP_SEQSET_OK || set.saved) {
        if (r == IMAP_SEQSET_OK)
            imap_seqset_free(&set);
        *error_r = r == IMAP_SEQSET_LIMIT ? "[LIMIT] Too many ranges" : "Bad UID set";
        return false;
    }
    struct petrel_storage_uid_range *ranges = NULL;
    set_r->count = imap_seqset_resolve(&set, s->uidnext > 0 ? s->uidnext - 1 : 0, &ranges);
    set_r->ranges = ranges;
    imap_seqset_free(&set);
    return true;
}
