/* The folder commands (RFC 3501 sections 6.3.3 to 6.3.10): CREATE,
 * DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST and LSUB with CHILDREN
 * (RFC 3348) and SPECIAL-USE (RFC 6154) attributes, and STATUS. Each runs
 * as one job; LIST filters the store's folder list there. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap.h"
#include "imap_list.h"
#include "imap_mutf7.h"

struct folder_arg {
    char *name, *name2; /* RENAME's target */
    struct imap_list_pattern *pattern;
    const char *verb;
    bool lsub;
    unsigned items; /* STATUS */
};

static void folder_arg_free(void *arg)
{
    struct folder_arg *a = arg;
    free(a->name);
    free(a->name2);
    imap_list_pattern_free(a->pattern);
    free(a);
}

static struct imap_job *folder_job(struct imap_session *s, imap_job_fn *work, struct folder_arg *a)
{
    struct imap_job *j = imap_job_new(s, work);
    j->arg = a;
    j->free_arg = folder_arg_free;
    j->sync = true;
    j->expunges = true;
    return j;
}

/* --- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE --- */

static void folder_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    struct petrel_mailbox *m = j->s->mbox;
    int err;
    if (strcmp(a->verb, "CREATE") == 0)
        err = imap_storage->folder_create(m, a->name, 0);
    else if (strcmp(a->verb, "DELETE") == 0)
        err = j->s->folder_name != NULL && strcmp(j->s->folder_name, a->name) == 0
                  ? PETREL_STORAGE_NOT_ALLOWED
                  : imap_storage->folder_delete(m, a->name);
    else if (strcmp(a->verb, "RENAME") == 0)
        err = imap_storage->folder_rename(m, a->name, a->name2);
    else
        err = imap_storage->folder_subscribe(m, a->name, a->verb[0] == 'S');
    if (err != 0)
        imap_job_storage_error(j, err, a->verb);
    else
        imap_job_ok(j, "%s completed", a->verb);
}

void imap_cmd_folder(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    bool rename = strcmp(cmd->name, "RENAME") == 0;
    const char *error = rename ? "RENAME takes two mailbox names" : "Takes a mailbox name";
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->verb = cmd->name[0] == 'C'   ? "CREATE"
              : cmd->name[0] == 'D' ? "DELETE"
              : cmd->name[0] == 'R' ? "RENAME"
              : cmd->name[0] == 'S' ? "SUBSCRIBE"
                                    : "UNSUBSCRIBE";
    if (cmd->count == (rename ? 2u : 1u)) {
        a->name = imap_folder_from_wire(&cmd->args[0], &error);
        if (a->name != NULL && rename)
            a->name2 = imap_folder_from_wire(&cmd->args[1], &error);
    }
    if (a->name == NULL || (rename && a->name2 == NULL)) {
        folder_arg_free(a);
        imap_bad(conn, s, "%s", error);
        return;
    }
    /* A trailing separator only says the name will have children. */
    size_t len = strlen(a->name);
    if (a->verb[0] == 'C' && len > 1 && a->name[len - 1] == PETREL_STORAGE_SEPARATOR)
        a->name[len - 1] = '\0';
    imap_job_submit(conn, folder_job(s, folder_work, a));
}

/* --- LIST, LSUB --- */

static const struct {
    unsigned bit;
    const char *name;
} special[] = {
    {PETREL_STORAGE_FOLDER_ALL, "\\All"},       {PETREL_STORAGE_FOLDER_ARCHIVE, "\\Archive"},
    {PETREL_STORAGE_FOLDER_DRAFTS, "\\Drafts"}, {PETREL_STORAGE_FOLDER_FLAGGED, "\\Flagged"},
    {PETREL_STORAGE_FOLDER_JUNK, "\\Junk"},     {PETREL_STORAGE_FOLDER_SENT, "\\Sent"},
    {PETREL_STORAGE_FOLDER_TRASH, "\\Trash"},
};

static void list_one(void *arg, const struct petrel_storage_folder_info *info)
{
    struct imap_job *j = arg;
    struct folder_arg *a = j->arg;
    bool missing = (info->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT) != 0;
    if (a->lsub ? !(info->attrs & PETREL_STORAGE_FOLDER_SUBSCRIBED) && !missing : missing)
        return;
    if (!imap_list_match(a->pattern, info->name, strlen(info->name)))
        return;
    struct petrel_buf *o = &j->out;
    petrel_buf_printf(o, "* %s (", a->lsub ? "LSUB" : "LIST");
    const char *sep = "";
    if (missing) {
        petrel_buf_printf(o, "\\Noselect");
        sep = " ";
    } else if (!a->lsub) {
        petrel_buf_printf(o, "%s",
                          info->attrs & PETREL_STORAGE_FOLDER_HAS_CHILDREN ? "\\HasChildren"
                                                                           : "\\HasNoChildren");
        sep = " ";
        if (info->attrs & PETREL_STORAGE_FOLDER_SUBSCRIBED)
            petrel_buf_printf(o, " \\Subscribed");
    }
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        if (info->attrs & special[i].bit) {
            petrel_buf_printf(o, "%s%s", sep, special[i].name);
            sep = " ";
        }
    petrel_buf_printf(o, ") \"/\" ");
    imap_put_folder(o, info->name);
    petrel_buf_append(o, "\r\n", 2);
}

static void list_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    const char *verb = a->lsub ? "LSUB" : "LIST";
    if (a->pattern == NULL) { /* the hierarchy's root and separator */
        petrel_buf_printf(&j->out, "* %s (\\Noselect) \"/\" \"\"\r\n", verb);
        imap_job_ok(j, "%s completed", verb);
        return;
    }
    int err = imap_storage->folder_list(j->s->mbox, list_one, j);
    if (err != 0)
        imap_job_storage_error(j, err, verb);
    else
        imap_job_ok(j, "%s completed", verb);
}

void imap_cmd_list(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   bool lsub)
{
    const char *ref = cmd->count == 2 ? imap_arg_astring(&cmd->args[0]) : NULL;
    const char *pat = cmd->count == 2 ? imap_arg_astring(&cmd->args[1]) : NULL;
    if (ref == NULL || pat == NULL || cmd->args[0].spooled || cmd->args[1].spooled) {
        imap_bad(conn, s, "%s takes a reference and a pattern", cmd->name);
        return;
    }
    struct petrel_buf r, p;
    petrel_buf_init(&r, 4096);
    petrel_buf_init(&p, 4096);
    /* '*' and '%' pass through modified UTF-7 unchanged. */
    bool ok = imap_mutf7_decode(ref, strlen(ref), &r) && imap_mutf7_decode(pat, strlen(pat), &p);
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->lsub = lsub;
    if (ok && pat[0] != '\0') {
        a->pattern = imap_list_pattern_new(petrel_buf_head(&r), r.len, petrel_buf_head(&p), p.len);
        ok = a->pattern != NULL;
    }
    petrel_buf_free(&r);
    petrel_buf_free(&p);
    if (!ok) {
        folder_arg_free(a);
        imap_bad(conn, s, "Bad reference or pattern");
        return;
    }
    imap_job_submit(conn, folder_job(s, list_work, a));
}

/* --- STATUS --- */

#define ST_MESSAGES 1u
#define ST_RECENT 2u
#define ST_UIDNEXT 4u
#define ST_UIDVALIDITY 8u
#define ST_UNSEEN 16u

static void status_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    struct petrel_storage_status st;
    int err = imap_storage->folder_status(j->s->mbox, a->name, &st);
    if (err != 0) {
        imap_job_storage_error(j, err, "STATUS");
        return;
    }
    struct petrel_buf *o = &j->out;
    petrel_buf_printf(o, "* STATUS ");
    imap_put_folder(o, a->name);
    petrel_buf_printf(o, " (");
    const char *sep = "";
    const struct {
        unsigned bit;
        const char *name;
        uint32_t value;
    } items[] = {
        {ST_MESSAGES, "MESSAGES", st.messages}, {ST_RECENT, "RECENT", 0}, /* never \Recent */
        {ST_UIDNEXT, "UIDNEXT", st.uidnext},    {ST_UIDVALIDITY, "UIDVALIDITY", st.uidvalidity},
        {ST_UNSEEN, "UNSEEN", st.unseen},
    };
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        if (a->items & items[i].bit) {
            petrel_buf_printf(o, "%s%s %u", sep, items[i].name, items[i].value);
            sep = " ";
        }
    petrel_buf_printf(o, ")\r\n");
    imap_job_ok(j, "STATUS completed");
}

static unsigned status_items(const struct imap_arg *list)
{
    static const char *const names[] = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"};
    unsigned items = 0;
    if (list->type != IMAP_ARG_LIST || list->count == 0)
        return 0;
    for (size_t i = 0; i < list->count; i++) {
        unsigned bit = 0;
        for (size_t k = 0; k < 5; k++)
            if (imap_arg_atom_is(&list->list[i], names[k]))
                bit = 1u << k;
        if (bit == 0)
            return 0;
        items |= bit;
    }
    return items;
}

void imap_cmd_status(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    const char *error = "STATUS takes a mailbox and a list of items";
    char *name = cmd->count == 2 ? imap_folder_from_wire(&cmd->args[0], &error) : NULL;
    unsigned items = cmd->count == 2 ? status_items(&cmd->args[1]) : 0;
    if (name == NULL || items == 0) {
        free(name);
        imap_bad(conn, s, "%s", error);
        return;
    }
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->name = name;
    a->items = items;
    imap_job_submit(conn, folder_job(s, status_work, a));
}
