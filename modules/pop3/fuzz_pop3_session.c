/* libFuzzer target for the POP3 session layer: whole sessions from fuzzed
 * byte streams through the real pop3 code (the states, USER/PASS and AUTH
 * through the core's login flow and SASL, STLS, the maildrop lock, LIST
 * and UIDL in batches, RETR and TOP streamed, commands pipelined behind a
 * long answer, DELE/RSET/QUIT), framed by the real line reader, with the
 * connection faked by tests/fuzz/conn_fake.c and the storage and auth
 * services faked in memory (messages are memfds).
 *
 * Input: two option bytes, then what the client sends.
 *   byte 0: messages in the maildrop (3 bits), STLS offered, plaintext
 *           logins without TLS, max_errors (2 bits: none, 3, 10, 50), a
 *           failing storage
 *   byte 1: where the stream is split into reads and when jobs end,
 *           "EXPIRE 0" (bit 5), and every Nth job finding the pool full
 *           (2 bits)
 * Invariants: every output line ends in CRLF and holds no other control
 * octet, and once the input is used up no answer is left half sent; messages are expunged only
 * after a QUIT in the TRANSACTION state, and only those marked \Deleted first; at the end every
 * mailbox and folder opened is closed and the maildrop lock is free again. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <petrel/auth.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "conn_fake.h"
#include "pop3.h"
#include "pop3_registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct petrel_protocol pop3_protocol;

/* What module.c defines; the fuzzer links the session files only. */
const struct petrel_storage_ops *pop3_storage;
char pop3_hostname[256] = "mx.example.test";
struct pop3_counters pop3_counters;
void petrel_counter_add(struct petrel_counter *c, int64_t delta) { (void)c, (void)delta; }

#define USER "alice@example.test"
#define MAX_MSGS 8

static const char *const texts[] = {
    "Subject: one\r\n\r\nbody\r\n.dot\r\n..two\r\n",
    "Subject: lf\n\n.x\nno end",
    "",
    "A: 1\r\nB: 2\r\n\r\n1\r\n2\r\n3\r\n",
    ".\r\n",
    "X: \r\n\r\n\r\n\r\n.\r\n",
    "Subject: cr\r",
    "only header\r\n",
};

static struct {
    unsigned nmsgs;
    bool storage_fails;
    bool expunged[MAX_MSGS + 1], marked[MAX_MSGS + 1];
    int open_mailboxes, open_folders;
    bool quit_in_transaction; /* a QUIT line reached a logged-in session */
    unsigned char last_out;   /* the last octet of output so far */
} h;

/* --- storage --- */

struct petrel_mailbox {
    int unused;
};
struct petrel_folder {
    int unused;
};

static int s_mailbox_open(const char *user, struct petrel_mailbox **mbox_r)
{
    if (strcmp(user, USER) != 0)
        abort(); /* the canonical user of the login */
    if (h.storage_fails)
        return PETREL_STORAGE_TEMPFAIL;
    *mbox_r = petrel_calloc(1, sizeof(**mbox_r));
    h.open_mailboxes++;
    return 0;
}

static void s_mailbox_close(struct petrel_mailbox *mbox)
{
    free(mbox);
    h.open_mailboxes--;
}

static int s_folder_open(struct petrel_mailbox *mbox, const char *name,
                         struct petrel_folder **folder_r)
{
    (void)mbox;
    if (strcmp(name, "INBOX") != 0)
        abort();
    *folder_r = petrel_calloc(1, sizeof(**folder_r));
    h.open_folders++;
    return 0;
}

static void s_folder_close(struct petrel_folder *folder)
{
    free(folder);
    h.open_folders--;
}

static int s_status(struct petrel_folder *folder, struct petrel_storage_status *st)
{
    (void)folder;
    *st = (struct petrel_storage_status){.messages = h.nmsgs, .uidvalidity = 1234};
    return 0;
}

static int s_messages(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                      petrel_storage_msg_fn *fn, void *arg)
{
    (void)folder;
    if (uids != NULL)
        abort();
    for (uint32_t uid = 1; uid <= h.nmsgs; uid++) {
        if (h.expunged[uid])
            continue;
        struct petrel_storage_msg m = {.uid = uid, .keywords = "", .size = strlen(texts[uid - 1])};
        int r = fn(arg, &m);
        if (r != 0)
            return r;
    }
    return 0;
}

static int s_fetch_fd(struct petrel_folder *folder, uint32_t uid, int *fd_r, uint64_t *size_r)
{
    (void)folder;
    if (uid == 0 || uid > h.nmsgs || h.expunged[uid])
        return PETREL_STORAGE_NOT_FOUND;
    const char *t = texts[uid - 1];
    int fd = memfd_create("msg", MFD_CLOEXEC);
    if (fd < 0 || write(fd, t, strlen(t)) != (ssize_t)strlen(t))
        abort();
    *fd_r = fd;
    *size_r = strlen(t);
    return 0;
}

static void each_uid(const struct petrel_storage_uid_set *uids, bool expunge)
{
    if (uids == NULL || !h.quit_in_transaction)
        abort(); /* deletions only at QUIT, never of the whole folder */
    for (size_t i = 0; i < uids->count; i++)
        for (uint32_t u = uids->ranges[i].lo; u <= uids->ranges[i].hi; u++) {
            if (u == 0 || u > h.nmsgs)
                abort();
            if (expunge && !h.marked[u])
                abort(); /* expunged what was not marked */
            h.marked[u] = true;
            if (expunge)
                h.expunged[u] = true;
        }
}

static int s_store(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                   const struct petrel_storage_store *req, petrel_storage_uid_fn *modified,
                   void *arg)
{
    (void)folder, (void)modified, (void)arg;
    if (req->mode != PETREL_STORAGE_FLAGS_ADD || req->flags != PETREL_STORAGE_DELETED)
        abort();
    each_uid(uids, false);
    return 0;
}

static int s_expunge(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                     petrel_storage_uid_fn *expunged, void *arg)
{
    (void)folder;
    each_uid(uids, true);
    for (size_t i = 0; i < uids->count; i++)
        for (uint32_t u = uids->ranges[i].lo; u <= uids->ranges[i].hi; u++)
            expunged(arg, u);
    return 0;
}

static const char *s_strerror(int error) { return error == 0 ? "ok" : "storage error"; }

static const struct petrel_storage_ops fake_storage = {
    .size = sizeof(fake_storage),
    .name = "fake",
    .mailbox_open = s_mailbox_open,
    .mailbox_close = s_mailbox_close,
    .folder_open = s_folder_open,
    .folder_close = s_folder_close,
    .status = s_status,
    .messages = s_messages,
    .fetch_fd = s_fetch_fd,
    .store = s_store,
    .expunge = s_expunge,
    .strerror = s_strerror,
};

/* --- auth: alice's password is "pw" --- */

static bool plaintext_without_tls;

static void a_authenticate(const struct petrel_auth_request *req, struct petrel_auth_result *r)
{
    memset(r, 0, sizeof(*r));
    if (strcasecmp(req->authcid, USER) == 0 && strcmp(req->password, "pw") == 0 &&
        (req->authzid == NULL || req->authzid[0] == '\0')) {
        r->status = PETREL_AUTH_OK;
        petrel_strlcpy(r->user, USER, sizeof(r->user));
        return;
    }
    r->status = PETREL_AUTH_FAILED;
    r->delay_ms = 10;
    petrel_strlcpy(r->reason, "wrong", sizeof(r->reason));
}

static bool a_plaintext_allowed(bool tls) { return tls || plaintext_without_tls; }

static const struct petrel_auth_ops fake_auth = {sizeof(fake_auth), a_authenticate,
                                                 a_plaintext_allowed};

const void *petrel_service_lookup(const char *name, uint32_t min_version)
{
    (void)min_version;
    return strcmp(name, PETREL_AUTH_SERVICE) == 0 ? (const void *)&fake_auth : NULL;
}

/* --- the harness --- */

static void on_unit(struct petrel_conn *conn, void *ctx, const char *p, size_t len, bool line,
                    bool crlf, bool last)
{
    (void)ctx, (void)crlf, (void)last;
    struct pop3_session *s = petrel_conn_session(conn);
    /* Run now, or queued behind a long answer and run later in TRANSACTION. */
    if (line && p != NULL && len >= 4 && strncasecmp(p, "QUIT", 4) == 0 &&
        (s->state == POP3_ST_TRANS || s->state == POP3_ST_SASL))
        h.quit_in_transaction = true;
}

/* Output comes in pieces (a body a few octets at a time): the checks
 * carry the last octet over. */
static void on_after(struct petrel_conn *conn, void *ctx)
{
    (void)ctx;
    struct petrel_buf *out = fuzz_conn_output(conn);
    const char *p = petrel_buf_head(out);
    for (size_t i = 0; i < out->len; i++) {
        unsigned char c = (unsigned char)p[i], prev = i == 0 ? h.last_out : (unsigned char)p[i - 1];
        if (c == '\n' && prev != '\r')
            abort(); /* a bare LF */
        if (prev == '\r' && c != '\n')
            abort(); /* a bare CR */
        if (c < 0x20 && c != '\r' && c != '\n')
            abort();
    }
    if (out->len > 0)
        h.last_out = (unsigned char)p[out->len - 1];
    petrel_buf_reset(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 18))
        return 0;
    static const unsigned max_errors[] = {0, 3, 10, 50};
    memset(&h, 0, sizeof(h));
    h.last_out = '\n';
    h.nmsgs = data[0] & 7;
    h.storage_fails = (data[0] & 0x80) != 0;
    plaintext_without_tls = (data[0] & 0x10) != 0;
    struct fuzz_conn_opts co = {
        .max_line = 2048,
        .max_errors = max_errors[(data[0] >> 5) & 3],
        .max_auth_errors = 3,
        .can_starttls = (data[0] & 8) != 0,
        .busy_every = (data[1] >> 6) != 0 ? 5u + (data[1] >> 6) : 0,
    };
    pop3_storage = &fake_storage;
    static struct pop3_config cfg = {.max_messages = 5, .expire = "", .login_delay = 0};
    cfg.expire = (data[1] & 0x20) != 0 ? "0" : "";
    uint32_t rnd = data[1] * 2654435761u + 1;
    const struct fuzz_conn_hooks hooks = {on_after, on_unit, NULL};
    struct petrel_conn *conn = fuzz_conn_open(&pop3_protocol, &cfg, &co, &hooks);
    data += 2, size -= 2;
    while (size > 0 && !fuzz_conn_closing(conn)) {
        rnd = rnd * 1103515245u + 12345u;
        size_t n = 1 + (rnd >> 16) % ((rnd & 0x100) != 0 ? 8 : 64);
        if (n > size)
            n = size;
        fuzz_conn_input(conn, data, n, (rnd & 0x600) != 0);
        data += n, size -= n;
    }
    fuzz_conn_input(conn, "", 0, true);
    if (!fuzz_conn_closing(conn) && h.last_out != '\n')
        abort(); /* an answer left half written with nothing pending */
    fuzz_conn_free(conn);
    if (h.open_mailboxes != 0 || h.open_folders != 0)
        abort(); /* a handle the session did not close */
    int64_t wait_ms;
    if (pop3_registry_take(USER, 0, 0, &wait_ms) != POP3_REGISTRY_TAKEN)
        abort(); /* the lock outlived its session */
    pop3_registry_release(USER);
    return 0;
}
