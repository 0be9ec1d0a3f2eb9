/* COMPRESS (RFC 4978): the session's side is the command; the connection
 * does the compressing (petrel_conn_start_deflate). */
#include <string.h>
#include <strings.h>

#include <petrel/conn.h>

#include "imap.h"

void imap_cmd_compress(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd)
{
    const char *alg = cmd->count == 1 ? imap_arg_astring(&cmd->args[0]) : NULL;
    if (alg == NULL || strcasecmp(alg, "DEFLATE") != 0) {
        imap_bad(conn, s, "COMPRESS takes DEFLATE");
        return;
    }
    if (petrel_conn_deflating(conn)) {
        imap_no(conn, s, "[COMPRESSIONACTIVE] DEFLATE is already active");
        return;
    }
    /* The tagged OK is queued first: it goes out uncompressed. */
    imap_tagged(conn, s, "OK", "DEFLATE active");
    /* Lines held behind the command (pipelined while an answer went out)
     * were compressed bytes: the connection inflates them first. */
    bool ok = petrel_conn_start_deflate(conn, petrel_buf_head(&s->pending), s->pending.len);
    if (s->pending.data != NULL)
        explicit_bzero(s->pending.data, s->pending.cap); /* may have held a password */
    petrel_buf_reset(&s->pending);
    petrel_buf_release(&s->pending);
    if (!ok) {
        petrel_conn_log(conn, PETREL_LOG_WARNING, "COMPRESS: the connection cannot compress");
        s->state = IMAP_ST_LOGOUT;
        petrel_conn_close(conn);
    }
}
