/* QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA and SETQUOTA over the
 * account's limits in the user database (quota_bytes, quota_messages) and
 * the store's usage. An account with a limit has one quota root, "",
 * holding every folder; one without has none. The limits are read again
 * for each command, so a change by the administrator (petrelctl account
 * quota) holds from the next one. APPEND passes them to the store, which
 * refuses with OVER_QUOTA ([OVERQUOTA]); COPY is checked here first, since
 * the store counts copies only once made. MOVE within the account changes
 * no usage, so it is never refused for quota. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/userdb.h>

#include "imap.h"

#define QUOTA_ROOT ""

int imap_quota_limits(const struct imap_session *s, struct petrel_storage_quota *q_r)
{
    *q_r = (struct petrel_storage_quota){0, 0};
    const struct petrel_userdb_ops *db = petrel_service_lookup(PETREL_USERDB_SERVICE, 1);
    if (db == NULL)
        return 0; /* no account database: no limits to report */
    struct petrel_userdb_entry *e = NULL;
    const char *error = NULL;
    int r = db->lookup(s->user, &e, &error);
    if (r == PETREL_USERDB_TEMPFAIL)
        return PETREL_STORAGE_TEMPFAIL;
    if (r == PETREL_USERDB_FOUND && e->kind == PETREL_USERDB_ACCOUNT) {
        q_r->bytes = e->quota_bytes > 0 ? (uint64_t)e->quota_bytes : 0;
        q_r->messages = e->quota_messages > 0 ? (uint64_t)e->quota_messages : 0;
    }
    if (e != NULL)
        db->entry_free(e);
    return 0;
}

static bool has_usage(void)
{
    return imap_storage->size > offsetof(struct petrel_storage_ops, quota_usage) &&
           imap_storage->quota_usage != NULL;
}

/* The "* QUOTA" line: only the resources that have a limit (RFC 9208
 * section 5.1); STORAGE in units of 1024 octets, usage rounded up. */
static int put_quota(struct imap_job *j, const struct petrel_storage_quota *q)
{
    uint64_t bytes = 0, messages = 0;
    int err = imap_storage->quota_usage(j->s->mbox, &bytes, &messages);
    if (err != 0)
        return err;
    petrel_buf_printf(&j->out, "* QUOTA \"%s\" (", QUOTA_ROOT);
    if (q->bytes > 0)
        petrel_buf_printf(&j->out, "STORAGE %llu %llu", (unsigned long long)((bytes + 1023) / 1024),
                          (unsigned long long)(q->bytes / 1024));
    if (q->messages > 0)
        petrel_buf_printf(&j->out, "%sMESSAGE %llu %llu", q->bytes > 0 ? " " : "",
                          (unsigned long long)messages, (unsigned long long)q->messages);
    petrel_buf_printf(&j->out, ")\r\n");
    return 0;
}

struct quota_arg {
    char *name; /* GETQUOTAROOT's mailbox, GETQUOTA's root */
    bool root_query;
};

static void quota_arg_free(void *arg)
{
    struct quota_arg *a = arg;
    free(a->name);
    free(a);
}

static void quota_work(struct imap_job *j)
{
    struct quota_arg *a = j->arg;
    const char *verb = a->root_query ? "GETQUOTAROOT" : "GETQUOTA";
    struct petrel_storage_quota q;
    int err = imap_quota_limits(j->s, &q);
    bool limited = err == 0 && has_usage() && (q.bytes > 0 || q.messages > 0);
    if (err == 0 && a->root_query) {
        struct petrel_storage_status st;
        err = imap_storage->folder_status(j->s->mbox, a->name, &st);
        if (err == 0) {
            petrel_buf_printf(&j->out, "* QUOTAROOT ");
            imap_put_folder(j->s, &j->out, a->name);
            petrel_buf_printf(&j->out, limited ? " \"%s\"\r\n" : "\r\n", QUOTA_ROOT);
        }
    } else if (err == 0 && (!limited || strcmp(a->name, QUOTA_ROOT) != 0)) {
        imap_job_no(j, "[NONEXISTENT] No such quota root");
        return;
    }
    if (err == 0 && limited)
        err = put_quota(j, &q);
    if (err != 0)
        imap_job_storage_error(j, err, verb);
    else
        imap_job_ok(j, "%s completed", verb);
}

static void quota_submit(struct petrel_conn *conn, struct imap_session *s, char *name,
                         bool root_query)
{
    struct quota_arg *a = petrel_calloc(1, sizeof(*a));
    a->name = name;
    a->root_query = root_query;
    struct imap_job *j = imap_job_new(s, quota_work);
    j->arg = a;
    j->free_arg = quota_arg_free;
    j->sync = true;
    j->expunges = true;
    imap_job_submit(conn, j);
}

void imap_cmd_getquotaroot(struct petrel_conn *conn, struct imap_session *s,
                           const struct imap_command *cmd)
{
    const char *error = "GETQUOTAROOT takes a mailbox name";
    char *name = cmd->count == 1 ? imap_folder_from_wire(s, &cmd->args[0], &error) : NULL;
    if (name == NULL) {
        imap_bad(conn, s, "%s", error);
        return;
    }
    quota_submit(conn, s, name, true);
}

void imap_cmd_getquota(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd)
{
    const char *root = cmd->count == 1 ? imap_arg_astring(&cmd->args[0]) : NULL;
    if (root == NULL || cmd->args[0].spooled || memchr(root, '\0', cmd->args[0].len) != NULL) {
        imap_bad(conn, s, "GETQUOTA takes a quota root");
        return;
    }
    quota_submit(conn, s, petrel_strdup(root), false);
}

/* SETQUOTA root (resource limit ...): checked, then refused: the limits
 * are the administrator's (the QUOTASET capability is not offered). */
void imap_cmd_setquota(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd)
{
    const struct imap_arg *list = cmd->count == 2 ? &cmd->args[1] : NULL;
    bool ok = list != NULL && imap_arg_astring(&cmd->args[0]) != NULL &&
              list->type == IMAP_ARG_LIST && list->count % 2 == 0;
    for (size_t i = 0; ok && i < list->count; i += 2) {
        const struct imap_arg *limit = &list->list[i + 1];
        ok = list->list[i].type == IMAP_ARG_ATOM && limit->type == IMAP_ARG_ATOM &&
             limit->len > 0 && limit->len <= 20 && strspn(limit->str, "0123456789") == limit->len;
    }
    if (!ok) {
        imap_bad(conn, s, "SETQUOTA takes a quota root and a list of resources and limits");
        return;
    }
    imap_no(conn, s, "[NOPERM] Quotas are set by the administrator, not over IMAP");
}

/* A COPY that would pass the account's limits: OVER_QUOTA. */
struct copy_sum {
    uint64_t bytes, messages;
};

static int add_message(void *arg, const struct petrel_storage_msg *msg)
{
    struct copy_sum *c = arg;
    c->bytes += msg->size;
    c->messages++;
    return 0;
}

int imap_quota_check_copy(struct imap_session *s, const struct petrel_storage_uid_set *uids)
{
    struct petrel_storage_quota q;
    int err = imap_quota_limits(s, &q);
    if (err != 0 || (q.bytes == 0 && q.messages == 0) || !has_usage())
        return err;
    struct copy_sum c = {0, 0};
    uint64_t bytes, messages;
    if ((err = imap_storage->messages(s->folder, uids, add_message, &c)) != 0 ||
        (err = imap_storage->quota_usage(s->mbox, &bytes, &messages)) != 0)
        return err;
    if ((q.bytes > 0 && bytes + c.bytes > q.bytes) ||
        (q.messages > 0 && messages + c.messages > q.messages))
        return PETREL_STORAGE_OVER_QUOTA;
    return 0;
}
