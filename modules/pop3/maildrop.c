/* The maildrop: the lock (one session per maildrop, RFC 1939 section 8)
 * and LOGIN-DELAY (RFC 2449 section 6.5), both kept in pop3_registry.c,
 * the snapshot taken at login, the TRANSACTION state's commands, and the
 * UPDATE state, where the messages marked deleted, and with EXPIRE 0 the
 * ones retrieved, are expunged (so IMAP sees them gone). Messages
 * delivered during a session appear at the next login; the lock goes
 * with the session, however it ends. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "pop3.h"
#include "pop3_registry.h"

/* LOGIN-DELAY's clock: the registry is per process, so the monotonic
 * clock, which a change of the date does not move. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the snapshot, on a worker --- */

struct open_job {
    struct pop3_session *s;
    char user[POP3_USER_MAX + 1];
    struct petrel_mailbox *mbox;
    struct petrel_folder *folder;
    struct pop3_msg *msgs;
    uint32_t n, cap, max, uidvalidity;
    int err;
};

static int add_msg(void *arg, const struct petrel_storage_msg *m)
{
    struct open_job *j = arg;
    if (j->n == j->max)
        return 1; /* the oldest max_messages are shown */
    if (j->n == j->cap) {
        j->cap = j->cap == 0 ? 64 : j->cap * 2;
        j->msgs = petrel_reallocarray(j->msgs, j->cap, sizeof(*j->msgs));
    }
    j->msgs[j->n++] = (struct pop3_msg){.uid = m->uid, .size = m->size};
    return 0;
}

static void open_work(void *arg)
{
    struct open_job *j = arg;
    struct petrel_storage_status st;
    j->err = pop3_storage->mailbox_open(j->user, &j->mbox);
    if (j->err == 0)
        j->err = pop3_storage->folder_open(j->mbox, "INBOX", &j->folder);
    if (j->err == 0)
        j->err = pop3_storage->status(j->folder, &st);
    if (j->err == 0) {
        j->uidvalidity = st.uidvalidity;
        int r = pop3_storage->messages(j->folder, NULL, add_msg, j);
        j->err = r == 1 ? 0 : r;
    }
}

/* Handles are closed on a worker: closing a folder may write its index. */
struct close_job {
    struct petrel_mailbox *mbox;
    struct petrel_folder *folder;
    char user[POP3_USER_MAX + 1]; /* the lock to release after, or "" */
};

static void close_work(void *arg)
{
    struct close_job *j = arg;
    if (j->folder != NULL)
        pop3_storage->folder_close(j->folder);
    if (j->mbox != NULL)
        pop3_storage->mailbox_close(j->mbox);
    if (j->user[0] != '\0')
        pop3_registry_release(j->user);
    free(j);
}

static void close_later(struct petrel_mailbox *mbox, struct petrel_folder *folder, const char *user)
{
    struct close_job *j = petrel_calloc(1, sizeof(*j));
    j->mbox = mbox;
    j->folder = folder;
    if (user != NULL)
        petrel_strlcpy(j->user, user, sizeof(j->user));
    /* With the pool's queue full, or gone at shutdown, here. */
    if (!petrel_worker_submit(close_work, j))
        close_work(j);
}

static void open_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct open_job *j = arg;
    struct pop3_session *s = petrel_conn_session(conn);
    if (closing || j->err != 0) {
        if (!closing) {
            petrel_conn_log(conn, PETREL_LOG_WARNING, "cannot open the maildrop of %s: %s", j->user,
                            pop3_storage->strerror(j->err));
            pop3_error(conn, "[SYS/TEMP] Cannot open the mailbox, try again later");
        }
        close_later(j->mbox, j->folder, j->user);
        s->locked = false;
        s->state = POP3_ST_AUTH;
        free(j->msgs);
        free(j);
        return;
    }
    s->mbox = j->mbox;
    s->folder = j->folder;
    s->uidvalidity = j->uidvalidity;
    s->msgs = j->msgs;
    s->nmsgs = j->n;
    s->live = j->n;
    for (uint32_t i = 0; i < j->n; i++)
        s->live_bytes += j->msgs[i].size;
    petrel_strlcpy(s->user, j->user, sizeof(s->user));
    free(j);
    s->state = POP3_ST_TRANS;
    petrel_counter_add(pop3_counters.logins, 1);
    /* A login counts for LOGIN-DELAY once it has succeeded. */
    if (pop3_registry_login(s->user, now_ms(), s->cfg->login_delay * 1000) > 0)
        petrel_counter_add(pop3_counters.login_delay_forgotten, 1);
    if (s->nmsgs == (uint32_t)s->cfg->max_messages)
        petrel_conn_log(conn, PETREL_LOG_INFO, "maildrop of %s: showing the oldest %u messages",
                        s->user, s->nmsgs);
    pop3_ok(conn, "Logged in, %u messages (%llu octets)", s->live,
            (unsigned long long)s->live_bytes);
}

/* RFC 2449 section 8.1: after the password was checked, so the answer
 * tells nothing to someone who does not know it. */
static void refuse_delay(struct petrel_conn *conn, const struct pop3_session *s, const char *user,
                         int64_t wait_ms)
{
    long long wait = (long long)(wait_ms + 999) / 1000;
    petrel_conn_log(conn, PETREL_LOG_INFO, "login of %s refused: %llds left of login_delay %llds",
                    user, wait, s->cfg->login_delay);
    petrel_conn_printf(conn,
                       "-ERR [LOGIN-DELAY] One login every %lld seconds: try again in %lld "
                       "seconds\r\n",
                       s->cfg->login_delay, wait);
    petrel_counter_add(pop3_counters.login_delayed, 1);
}

void pop3_maildrop_open(struct petrel_conn *conn, struct pop3_session *s, const char *user)
{
    int64_t wait_ms = 0;
    switch (pop3_registry_take(user, now_ms(), s->cfg->login_delay * 1000, &wait_ms)) {
    case POP3_REGISTRY_IN_USE:
        petrel_conn_log(conn, PETREL_LOG_INFO, "maildrop of %s in use by another session", user);
        petrel_conn_printf(conn, "-ERR [IN-USE] Mailbox in use by another session\r\n");
        petrel_counter_add(pop3_counters.in_use, 1);
        return;
    case POP3_REGISTRY_DELAY:
        refuse_delay(conn, s, user, wait_ms);
        return;
    case POP3_REGISTRY_TAKEN:
        break;
    }
    s->locked = true;
    struct open_job *j = petrel_calloc(1, sizeof(*j));
    j->s = s;
    j->max = (uint32_t)s->cfg->max_messages;
    petrel_strlcpy(j->user, user, sizeof(j->user));
    s->state = POP3_ST_SASL; /* no command until the snapshot is there */
    if (!petrel_conn_submit(conn, open_work, open_done, j)) {
        s->state = POP3_ST_AUTH;
        pop3_registry_release(user);
        s->locked = false;
        free(j);
        petrel_conn_printf(conn, "-ERR [SYS/TEMP] Server busy, try again later\r\n");
    }
}

void pop3_maildrop_close(struct pop3_session *s)
{
    if (s->mbox != NULL || s->locked)
        close_later(s->mbox, s->folder, s->locked ? s->user : NULL);
    s->mbox = NULL;
    s->folder = NULL;
    s->locked = false;
    free(s->msgs);
    s->msgs = NULL;
    s->nmsgs = 0;
}

/* --- TRANSACTION --- */

struct pop3_msg *pop3_msg_get(struct petrel_conn *conn, struct pop3_session *s, uint32_t n)
{
    if (n == 0 || n > s->nmsgs) {
        pop3_error(conn, "No such message");
        return NULL;
    }
    if (s->msgs[n - 1].deleted) {
        pop3_error(conn, "Message %u already deleted", n);
        return NULL;
    }
    return &s->msgs[n - 1];
}

/* The UIDL of a message: "UIDVALIDITY.UID" in decimal (docs/pop3.md).
 * Both come from the store, which keeps them across restarts and index
 * rebuilds, and IMAP sees the same pair. */
static void uidl_line(struct petrel_conn *conn, const struct pop3_session *s, uint32_t n,
                      bool multi)
{
    petrel_conn_printf(conn, "%s%u %u.%u\r\n", multi ? "" : "+OK ", n, s->uidvalidity,
                       s->msgs[n - 1].uid);
}

static void list_line(struct petrel_conn *conn, const struct pop3_session *s, uint32_t n,
                      bool multi)
{
    petrel_conn_printf(conn, "%s%u %llu\r\n", multi ? "" : "+OK ", n,
                       (unsigned long long)s->msgs[n - 1].size);
}

/* A batch of a LIST or UIDL answer; the next when it has gone out, so a
 * maildrop of any size is listed in bounded memory. */
void pop3_list_more(struct petrel_conn *conn, struct pop3_session *s)
{
    unsigned lines = 0;
    while (s->cursor < s->nmsgs && lines < POP3_LIST_BATCH) {
        uint32_t n = ++s->cursor;
        if (s->msgs[n - 1].deleted)
            continue;
        if (s->stream == POP3_STREAM_UIDL)
            uidl_line(conn, s, n, true);
        else
            list_line(conn, s, n, true);
        lines++;
    }
    if (s->cursor < s->nmsgs) {
        petrel_conn_want_drained(conn);
        return;
    }
    petrel_conn_write(conn, ".\r\n", 3);
    s->stream = POP3_STREAM_NONE;
    pop3_resume(conn);
}

static void cmd_list(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd)
{
    bool uidl = cmd->verb == POP3_UIDL;
    if (cmd->nargs == 1) {
        if (pop3_msg_get(conn, s, cmd->msg) == NULL)
            return;
        (uidl ? uidl_line : list_line)(conn, s, cmd->msg, false);
        return;
    }
    if (uidl)
        pop3_ok(conn, "Unique-ID listing follows");
    else
        pop3_ok(conn, "%u messages (%llu octets)", s->live, (unsigned long long)s->live_bytes);
    s->stream = uidl ? POP3_STREAM_UIDL : POP3_STREAM_LIST;
    s->cursor = 0;
    pop3_list_more(conn, s);
}

static void cmd_dele(struct petrel_conn *conn, struct pop3_session *s, uint32_t n)
{
    struct pop3_msg *m = pop3_msg_get(conn, s, n);
    if (m == NULL)
        return;
    m->deleted = true;
    s->live--;
    s->live_bytes -= m->size;
    pop3_ok(conn, "Message %u deleted", n);
}

static void cmd_rset(struct petrel_conn *conn, struct pop3_session *s)
{
    s->live = s->nmsgs;
    s->live_bytes = 0;
    for (uint32_t i = 0; i < s->nmsgs; i++) {
        s->msgs[i].deleted = false;
        s->live_bytes += s->msgs[i].size;
    }
    pop3_ok(conn, "%u messages (%llu octets)", s->live, (unsigned long long)s->live_bytes);
}

/* --- UPDATE: QUIT expunges what was marked --- */

struct update_job {
    struct petrel_folder *folder;
    struct petrel_storage_uid_range *ranges;
    size_t nranges;
    uint32_t retrieved; /* of them, taken for EXPIRE 0 alone */
    uint32_t removed;
    int err;
};

static void count_expunged(void *arg, uint32_t uid)
{
    (void)uid;
    ((struct update_job *)arg)->removed++;
}

static void update_work(void *arg)
{
    struct update_job *j = arg;
    struct petrel_storage_uid_set set = {j->ranges, j->nranges};
    struct petrel_storage_store req = {.mode = PETREL_STORAGE_FLAGS_ADD,
                                       .flags = PETREL_STORAGE_DELETED};
    j->err = pop3_storage->store(j->folder, &set, &req, NULL, NULL);
    if (j->err == 0)
        j->err = pop3_storage->expunge(j->folder, &set, count_expunged, j);
}

static void update_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct update_job *j = arg;
    if (!closing && j->err != 0) {
        petrel_conn_log(conn, PETREL_LOG_WARNING, "cannot expunge the deleted messages: %s",
                        pop3_storage->strerror(j->err));
        petrel_conn_printf(conn, "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
    } else if (!closing) {
        if (j->retrieved > 0)
            petrel_conn_log(conn, PETREL_LOG_INFO,
                            "logout: %u messages expunged (%u retrieved with EXPIRE 0)", j->removed,
                            j->retrieved);
        else
            petrel_conn_log(conn, PETREL_LOG_INFO, "logout: %u messages expunged", j->removed);
        petrel_counter_add(pop3_counters.deleted, j->removed);
        petrel_conn_printf(conn, "+OK Bye, %u messages deleted\r\n", j->removed);
    }
    free(j->ranges);
    free(j);
    if (!closing)
        petrel_conn_close(conn);
}

/* RFC 2449 section 6.7: "EXPIRE 0" says a message retrieved is not
 * kept, so the messages sent whole by RETR go at QUIT with the deleted
 * ones (TOP is a look, not a retrieval; RSET does not undo one). */
static bool expire_zero(const struct pop3_config *cfg)
{
    return cfg->expire[0] != '\0' && strspn(cfg->expire, "0") == strlen(cfg->expire);
}

/* The messages to expunge as UID ranges (the snapshot is in UID order). */
static struct update_job *update_job(const struct pop3_session *s)
{
    struct update_job *j = petrel_calloc(1, sizeof(*j));
    bool expire = expire_zero(s->cfg);
    j->folder = s->folder;
    for (uint32_t i = 0; i < s->nmsgs; i++) {
        if (!s->msgs[i].deleted && !(expire && s->msgs[i].retrieved))
            continue;
        if (!s->msgs[i].deleted)
            j->retrieved++;
        uint32_t uid = s->msgs[i].uid;
        if (j->nranges > 0 && j->ranges[j->nranges - 1].hi + 1 == uid) {
            j->ranges[j->nranges - 1].hi = uid;
            continue;
        }
        j->ranges = petrel_reallocarray(j->ranges, j->nranges + 1, sizeof(*j->ranges));
        j->ranges[j->nranges++] = (struct petrel_storage_uid_range){uid, uid};
    }
    return j;
}

static void cmd_quit(struct petrel_conn *conn, struct pop3_session *s)
{
    s->state = POP3_ST_QUIT;
    struct update_job *j = update_job(s);
    if (j->nranges == 0) {
        free(j);
        petrel_conn_log(conn, PETREL_LOG_INFO, "logout: nothing deleted");
        pop3_ok(conn, "Bye");
        petrel_conn_close(conn);
        return;
    }
    if (!petrel_conn_submit(conn, update_work, update_done, j)) {
        free(j->ranges);
        free(j);
        petrel_conn_printf(conn, "-ERR [SYS/TEMP] Server busy, nothing deleted\r\n");
        petrel_conn_close(conn);
    }
}

void pop3_transaction(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd)
{
    switch (cmd->verb) {
    case POP3_STAT:
        pop3_ok(conn, "%u %llu", s->live, (unsigned long long)s->live_bytes);
        break;
    case POP3_LIST:
    case POP3_UIDL:
        cmd_list(conn, s, cmd);
        break;
    case POP3_RETR:
    case POP3_TOP:
        pop3_cmd_retr(conn, s, cmd);
        break;
    case POP3_DELE:
        cmd_dele(conn, s, cmd->msg);
        break;
    case POP3_NOOP:
        petrel_conn_printf(conn, "+OK\r\n");
        break;
    case POP3_RSET:
        cmd_rset(conn, s);
        break;
    case POP3_QUIT:
        cmd_quit(conn, s);
        break;
    default:
        pop3_error(conn, "Not valid after login");
        break;
    }
}
