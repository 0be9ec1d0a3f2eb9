/* The folder commands (RFC 3501 sections 6.3.3 to 6.3.10): CREATE,
 * DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, and STATUS with SIZE (RFC 8438),
 * DELETED and DELETED-STORAGE (RFC 9208). Each runs as one job. LIST and
 * LSUB are in list.c. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "imap.h"

struct folder_arg {
    char *name, *name2; /* RENAME's target */
    const char *verb;
    unsigned items; /* STATUS */
};

static void folder_arg_free(void *arg)
{
    struct folder_arg *a = arg;
    free(a->name);
    free(a->name2);
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
    if (err == 0 && (a->verb[0] == 'D' || a->verb[0] == 'R'))
        imap_metadata_folder(j->s, a->name, a->verb[0] == 'R' ? a->name2 : NULL);
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
        a->name = imap_folder_from_wire(s, &cmd->args[0], &error);
        if (a->name != NULL && rename)
            a->name2 = imap_folder_from_wire(s, &cmd->args[1], &error);
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

/* --- STATUS --- */

/* What STATUS reports of a folder: the index's figures, and the \Deleted
 * messages counted only when DELETED or DELETED-STORAGE is asked for. */
struct status_values {
    struct petrel_storage_status st;
    uint64_t deleted, deleted_kib;
};

/* One row per item, in the order they are sent; "messages": the value
 * needs a pass over the folder's message index. */
#define STATUS_ITEM(name, field, messages)                                                         \
    {                                                                                              \
        name, offsetof(struct status_values, field), sizeof(((struct status_values *)0)->field),   \
            messages                                                                               \
    }
static const struct {
    const char *name;
    size_t offset, size;
    bool messages;
} status_table[] = {
    STATUS_ITEM("MESSAGES", st.messages, false),
    STATUS_ITEM("RECENT", st.recent, false),
    STATUS_ITEM("UIDNEXT", st.uidnext, false),
    STATUS_ITEM("UIDVALIDITY", st.uidvalidity, false),
    STATUS_ITEM("UNSEEN", st.unseen, false),
    STATUS_ITEM("SIZE", st.size, false),
    STATUS_ITEM("DELETED", deleted, true),
    STATUS_ITEM("DELETED-STORAGE", deleted_kib, true),
    STATUS_ITEM("HIGHESTMODSEQ", st.highestmodseq, false), /* RFC 7162 (part Q) */
};
#define STATUS_NITEMS (sizeof(status_table) / sizeof(status_table[0]))
/* HIGHESTMODSEQ's bit: asking for it turns CONDSTORE on (RFC 7162 3.1). */
#define STATUS_HIGHESTMODSEQ (1u << (STATUS_NITEMS - 1))

static uint64_t status_value(const struct status_values *v, size_t i)
{
    const char *p = (const char *)v + status_table[i].offset;
    if (status_table[i].size == sizeof(uint32_t)) {
        uint32_t x;
        memcpy(&x, p, sizeof(x));
        return x;
    }
    uint64_t x;
    memcpy(&x, p, sizeof(x));
    return x;
}

struct deleted_sum {
    uint64_t messages, bytes;
};

static int add_deleted(void *arg, const struct petrel_storage_msg *msg)
{
    struct deleted_sum *d = arg;
    if (msg->flags & PETREL_STORAGE_DELETED) {
        d->messages++;
        d->bytes += msg->size;
    }
    return 0;
}

/* The \Deleted messages from the folder's index (no message file read). */
static int count_deleted(struct petrel_mailbox *mbox, const char *name, struct status_values *v)
{
    struct petrel_folder *f;
    int err = imap_storage->folder_open(mbox, name, &f);
    if (err != 0)
        return err;
    struct deleted_sum d = {0, 0};
    err = imap_storage->messages(f, NULL, add_deleted, &d);
    imap_storage->folder_close(f);
    v->deleted = d.messages;
    /* RFC 9208 counts storage in units of 1024 octets, as STORAGE. */
    v->deleted_kib = (d.bytes + 1023) / 1024;
    return err;
}

int imap_status_put(struct imap_session *s, struct petrel_buf *out, const char *name,
                    unsigned items)
{
    struct status_values v = {0};
    int err = imap_storage->folder_status(s->mbox, name, &v.st);
    bool messages = false;
    for (size_t i = 0; i < STATUS_NITEMS; i++)
        messages |= (items & (1u << i)) && status_table[i].messages;
    if (err == 0 && messages)
        err = count_deleted(s->mbox, name, &v);
    if (err != 0)
        return err;
    v.st.recent = 0; /* this server never reports \Recent */
    petrel_buf_printf(out, "* STATUS ");
    imap_put_folder(s, out, name);
    petrel_buf_printf(out, " (");
    const char *sep = "";
    for (size_t i = 0; i < STATUS_NITEMS; i++)
        if (items & (1u << i)) {
            petrel_buf_printf(out, "%s%s %llu", sep, status_table[i].name,
                              (unsigned long long)status_value(&v, i));
            sep = " ";
        }
    petrel_buf_printf(out, ")\r\n");
    return 0;
}

unsigned imap_status_items(const struct imap_arg *list)
{
    unsigned items = 0;
    if (list->type != IMAP_ARG_LIST || list->count == 0)
        return 0;
    for (size_t i = 0; i < list->count; i++) {
        unsigned bit = 0;
        for (size_t k = 0; k < STATUS_NITEMS; k++)
            if (imap_arg_atom_is(&list->list[i], status_table[k].name))
                bit = 1u << k;
        if (bit == 0)
            return 0;
        items |= bit;
    }
    return items;
}

static void status_work(struct imap_job *j)
{
    struct folder_arg *a = j->arg;
    int err = imap_status_put(j->s, &j->out, a->name, a->items);
    if (err != 0)
        imap_job_storage_error(j, err, "STATUS");
    else
        imap_job_ok(j, "STATUS completed");
}

void imap_cmd_status(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    const char *error = "STATUS takes a mailbox and a list of items";
    char *name = cmd->count == 2 ? imap_folder_from_wire(s, &cmd->args[0], &error) : NULL;
    unsigned items = cmd->count == 2 ? imap_status_items(&cmd->args[1]) : 0;
    if (name == NULL || items == 0) {
        free(name);
        imap_bad(conn, s, "%s", error);
        return;
    }
    if (items & STATUS_HIGHESTMODSEQ)
        s->enabled |= IMAP_EN_CONDSTORE;
    struct folder_arg *a = petrel_calloc(1, sizeof(*a));
    a->name = name;
    a->items = items;
    imap_job_submit(conn, folder_job(s, status_work, a));
}
