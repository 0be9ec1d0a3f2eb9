/* libFuzzer target for the IMAP session layer: whole sessions from fuzzed
 * byte streams through the real imap code (states, LOGIN and AUTHENTICATE
 * through the core's login flow and SASL, the command reader with
 * literals, SELECT, FETCH streamed in small reads, STORE, COPY/MOVE,
 * EXPUNGE, APPEND through the spool, SEARCH, IDLE, pipelining behind a
 * long answer), framed by the real line reader, with the connection faked
 * by tests/fuzz/conn_fake.c and the storage and auth services faked in
 * memory (messages are memfds).
 *
 * Input: two option bytes, then what the client sends.
 *   byte 0: messages in INBOX (3 bits), STARTTLS offered, plaintext
 *           logins without TLS, max_errors (2 bits: none, 3, 10, 50), a
 *           failing storage
 *   byte 1: where the stream is split into reads and when jobs end, and
 *           every Nth job finding the pool full (2 bits)
 * Invariants: no message is expunged unless \Deleted; at the end every
 * mailbox, folder and watch opened is closed, the spool is closed and
 * the per-user count is back to zero. */
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
#include "imap.h"
#include "imap_registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct petrel_protocol imap_protocol;

/* What module.c defines; the fuzzer links the session files only. */
const struct petrel_storage_ops *imap_storage;
char imap_hostname[256] = "mx.example.test";
char imap_spool_dir[4096] = "/tmp";
struct imap_counters imap_counters;
void petrel_counter_add(struct petrel_counter *c, int64_t delta) { (void)c, (void)delta; }

#define USER "alice@example.test"
#define MAX_MSGS 16
#define NFOLDERS 4

static const char *const texts[] = {
    "Subject: one\r\nFrom: a@b.c\r\n\r\nbody\r\n",
    "Subject: lf\n\nno end",
    "",
    "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart\r\n--x--\r\n",
    "X: \xff\xfe\r\n\r\n\x00\x01binary",
    "only header\r\n",
    "Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n",
    "To: x@y\r\n\r\n",
};
#define NTEXTS (sizeof(texts) / sizeof(texts[0]))
#define BINARY_TEXT 4u

/* The binary message holds NULs. */
static size_t text_len(unsigned i) { return i == BINARY_TEXT ? 17u : strlen(texts[i]); }

struct msg {
    uint32_t uid, flags;
    unsigned text;
};

static const char *const names[NFOLDERS] = {"INBOX", "Trash", "Sent", "Work"};

static struct {
    bool storage_fails;
    struct {
        struct msg msgs[MAX_MSGS];
        unsigned n;
        uint32_t uidnext;
        uint64_t modseq;
    } f[NFOLDERS];
    int open_mailboxes, open_folders, watches;
} h;

/* --- storage --- */

struct petrel_mailbox {
    int unused;
};
struct petrel_folder {
    int index;
};
struct petrel_storage_watch {
    int unused;
};

static int find(const char *name)
{
    for (int i = 0; i < NFOLDERS; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

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
    int i = find(name);
    if (i < 0)
        return PETREL_STORAGE_NOT_FOUND;
    *folder_r = petrel_calloc(1, sizeof(**folder_r));
    (*folder_r)->index = i;
    h.open_folders++;
    return 0;
}

static void s_folder_close(struct petrel_folder *folder)
{
    free(folder);
    h.open_folders--;
}

static void status_of(int i, struct petrel_storage_status *st)
{
    *st = (struct petrel_storage_status){.messages = h.f[i].n,
                                         .uidnext = h.f[i].uidnext,
                                         .uidvalidity = 1234,
                                         .highestmodseq = h.f[i].modseq};
}

static int s_status(struct petrel_folder *folder, struct petrel_storage_status *st)
{
    status_of(folder->index, st);
    return 0;
}

static int s_folder_status(struct petrel_mailbox *mbox, const char *name,
                           struct petrel_storage_status *st)
{
    (void)mbox;
    int i = find(name);
    if (i < 0)
        return PETREL_STORAGE_NOT_FOUND;
    status_of(i, st);
    return 0;
}

static bool in(const struct petrel_storage_uid_set *uids, uint32_t uid)
{
    if (uids == NULL)
        return true;
    for (size_t i = 0; i < uids->count; i++)
        if (uids->ranges[i].lo > uids->ranges[i].hi)
            abort(); /* ranges are resolved */
        else if (uid >= uids->ranges[i].lo && uid <= uids->ranges[i].hi)
            return true;
    return false;
}

static int s_messages(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                      petrel_storage_msg_fn *fn, void *arg)
{
    for (unsigned k = 0; k < h.f[folder->index].n; k++) {
        const struct msg *m = &h.f[folder->index].msgs[k];
        if (!in(uids, m->uid))
            continue;
        struct petrel_storage_msg pm = {.uid = m->uid,
                                        .flags = m->flags,
                                        .keywords = m->uid % 3 == 0 ? "$Work" : "",
                                        .modseq = h.f[folder->index].modseq,
                                        .size = text_len(m->text),
                                        .recent = m->uid % 2 == 0};
        int r = fn(arg, &pm);
        if (r != 0)
            return r;
    }
    return 0;
}

static const struct msg *msg_of(struct petrel_folder *folder, uint32_t uid)
{
    for (unsigned k = 0; k < h.f[folder->index].n; k++)
        if (h.f[folder->index].msgs[k].uid == uid)
            return &h.f[folder->index].msgs[k];
    return NULL;
}

static int s_fetch_fd(struct petrel_folder *folder, uint32_t uid, int *fd_r, uint64_t *size_r)
{
    const struct msg *m = msg_of(folder, uid);
    if (m == NULL)
        return PETREL_STORAGE_NOT_FOUND;
    const char *t = texts[m->text];
    size_t len = text_len(m->text);
    int fd = memfd_create("msg", MFD_CLOEXEC);
    if (fd < 0 || write(fd, t, len) != (ssize_t)len)
        abort();
    *fd_r = fd;
    *size_r = len;
    return 0;
}

static int s_fetch_stream(struct petrel_folder *folder, uint32_t uid, petrel_storage_data_fn *fn,
                          void *arg)
{
    const struct msg *m = msg_of(folder, uid);
    if (m == NULL)
        return PETREL_STORAGE_NOT_FOUND;
    return fn(arg, texts[m->text], text_len(m->text));
}

static int s_fetch_header(struct petrel_folder *folder, uint32_t uid, struct petrel_buf *out)
{
    const struct msg *m = msg_of(folder, uid);
    if (m == NULL)
        return PETREL_STORAGE_NOT_FOUND;
    const char *t = texts[m->text], *end = strstr(t, "\r\n\r\n");
    petrel_buf_append(out, t, end != NULL ? (size_t)(end - t) + 4 : strlen(t));
    return 0;
}

static int s_cache_get(struct petrel_folder *folder, uint32_t uid, const char *key,
                       struct petrel_buf *out)
{
    (void)folder, (void)uid, (void)key, (void)out;
    return PETREL_STORAGE_NOT_FOUND;
}

static int s_cache_set(struct petrel_folder *folder, uint32_t uid, const char *key,
                       const void *data, size_t len)
{
    (void)folder, (void)uid, (void)key, (void)data, (void)len;
    return 0;
}

static int s_store(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                   const struct petrel_storage_store *req, petrel_storage_uid_fn *modified,
                   void *arg)
{
    (void)modified, (void)arg;
    if (req->flags & ~PETREL_STORAGE_FLAGS_ALL)
        abort();
    for (unsigned k = 0; k < h.f[folder->index].n; k++) {
        struct msg *m = &h.f[folder->index].msgs[k];
        if (!in(uids, m->uid))
            continue;
        if (req->mode == PETREL_STORAGE_FLAGS_ADD)
            m->flags |= req->flags;
        else if (req->mode == PETREL_STORAGE_FLAGS_REMOVE)
            m->flags &= ~req->flags;
        else
            m->flags = req->flags;
    }
    h.f[folder->index].modseq++;
    return 0;
}

static void add(int i, unsigned text, uint32_t flags, uint32_t *uid_r)
{
    if (h.f[i].n == MAX_MSGS)
        return;
    *uid_r = h.f[i].uidnext++;
    h.f[i].msgs[h.f[i].n++] = (struct msg){*uid_r, flags, text % NTEXTS};
    h.f[i].modseq++;
}

static int copy_or_move(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                        const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                        uint32_t *uidvalidity_r, bool move)
{
    int d = find(dest);
    if (d < 0)
        return PETREL_STORAGE_NOT_FOUND;
    *uidvalidity_r = 1234;
    struct msg *src = h.f[folder->index].msgs;
    for (unsigned k = 0; k < h.f[folder->index].n; k++) {
        if (!in(uids, src[k].uid))
            continue;
        uint32_t uid = 0;
        add(d, src[k].text, src[k].flags, &uid);
        if (uid != 0 && map != NULL)
            map(arg, src[k].uid, uid);
        if (move && uid != 0 && d != folder->index) {
            memmove(&src[k], &src[k + 1], (h.f[folder->index].n - k - 1) * sizeof(src[0]));
            h.f[folder->index].n--;
            k--;
        }
    }
    h.f[folder->index].modseq++;
    return 0;
}

static int s_copy(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                  const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                  uint32_t *uidvalidity_r)
{
    return copy_or_move(folder, uids, dest, map, arg, uidvalidity_r, false);
}

static int s_move(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                  const char *dest, petrel_storage_uidmap_fn *map, void *arg,
                  uint32_t *uidvalidity_r)
{
    return copy_or_move(folder, uids, dest, map, arg, uidvalidity_r, true);
}

static int s_expunge(struct petrel_folder *folder, const struct petrel_storage_uid_set *uids,
                     petrel_storage_uid_fn *expunged, void *arg)
{
    struct msg *m = h.f[folder->index].msgs;
    for (unsigned k = 0; k < h.f[folder->index].n; k++) {
        if (!in(uids, m[k].uid) || !(m[k].flags & PETREL_STORAGE_DELETED))
            continue;
        if (expunged != NULL)
            expunged(arg, m[k].uid);
        memmove(&m[k], &m[k + 1], (h.f[folder->index].n - k - 1) * sizeof(m[0]));
        h.f[folder->index].n--;
        k--;
    }
    h.f[folder->index].modseq++;
    return 0;
}

/* Every message changed, the gaps below UIDNEXT vanished: what a store
 * that cannot tell reports. */
static int s_changes_since(struct petrel_folder *folder, uint64_t modseq,
                           petrel_storage_msg_fn *changed, petrel_storage_range_fn *vanished,
                           void *arg)
{
    (void)modseq;
    uint32_t next = 1;
    for (unsigned k = 0; k < h.f[folder->index].n; k++) {
        uint32_t uid = h.f[folder->index].msgs[k].uid;
        if (vanished != NULL && uid > next)
            vanished(arg, next, uid - 1);
        next = uid + 1;
    }
    if (vanished != NULL && next < h.f[folder->index].uidnext)
        vanished(arg, next, h.f[folder->index].uidnext - 1);
    return changed != NULL ? s_messages(folder, NULL, changed, arg) : 0;
}

static int s_append(struct petrel_mailbox *mbox, const char *folder,
                    const struct petrel_storage_source *src,
                    const struct petrel_storage_append *attrs, uint32_t *uid_r,
                    uint32_t *uidvalidity_r)
{
    (void)mbox;
    int i = find(folder);
    if (i < 0)
        return PETREL_STORAGE_NOT_FOUND;
    if (src->fd >= 0) {
        char b[64];
        uint64_t left = src->fd_len;
        while (left > 0) {
            ssize_t n = read(src->fd, b, left < sizeof(b) ? (size_t)left : sizeof(b));
            if (n <= 0)
                return PETREL_STORAGE_TEMPFAIL;
            left -= (uint64_t)n;
        }
    }
    *uid_r = 0;
    add(i, (unsigned)src->len, attrs->flags, uid_r);
    *uidvalidity_r = 1234;
    return *uid_r != 0 ? 0 : PETREL_STORAGE_OVER_QUOTA;
}

static int s_folder_list(struct petrel_mailbox *mbox, petrel_storage_folder_fn *fn, void *arg)
{
    (void)mbox;
    for (int i = 0; i < NFOLDERS; i++) {
        struct petrel_storage_folder_info info = {names[i],
                                                  i == 1 ? PETREL_STORAGE_FOLDER_TRASH : 0};
        fn(arg, &info);
    }
    return 0;
}

static int s_folder_create(struct petrel_mailbox *mbox, const char *name, unsigned special_use)
{
    (void)mbox, (void)special_use;
    return find(name) >= 0 ? PETREL_STORAGE_EXISTS : PETREL_STORAGE_TOO_LARGE;
}

static int s_folder_delete(struct petrel_mailbox *mbox, const char *name)
{
    (void)mbox;
    return find(name) >= 0 ? PETREL_STORAGE_NOT_ALLOWED : PETREL_STORAGE_NOT_FOUND;
}

static int s_folder_rename(struct petrel_mailbox *mbox, const char *from, const char *to)
{
    (void)mbox, (void)to;
    return find(from) >= 0 ? PETREL_STORAGE_NOT_ALLOWED : PETREL_STORAGE_NOT_FOUND;
}

static int s_folder_subscribe(struct petrel_mailbox *mbox, const char *name, bool subscribe)
{
    (void)mbox, (void)name, (void)subscribe;
    return 0;
}

static int s_sync(struct petrel_folder *folder)
{
    (void)folder;
    return 0;
}

static int s_watch(struct petrel_mailbox *mbox, const char *folder, petrel_storage_watch_fn *fn,
                   void *arg, struct petrel_storage_watch **watch_r)
{
    (void)mbox, (void)folder;
    fn(arg); /* the mark set: the next command reports */
    *watch_r = petrel_calloc(1, sizeof(**watch_r));
    h.watches++;
    return 0;
}

static void s_unwatch(struct petrel_storage_watch *watch)
{
    free(watch);
    h.watches--;
}

static const char *s_strerror(int error) { return error == 0 ? "ok" : "storage error"; }

static const struct petrel_storage_ops fake_storage = {
    .size = sizeof(fake_storage),
    .name = "fake",
    .mailbox_open = s_mailbox_open,
    .mailbox_close = s_mailbox_close,
    .append = s_append,
    .folder_create = s_folder_create,
    .folder_delete = s_folder_delete,
    .folder_rename = s_folder_rename,
    .folder_list = s_folder_list,
    .folder_subscribe = s_folder_subscribe,
    .folder_status = s_folder_status,
    .folder_open = s_folder_open,
    .folder_close = s_folder_close,
    .sync = s_sync,
    .status = s_status,
    .messages = s_messages,
    .fetch_fd = s_fetch_fd,
    .fetch_stream = s_fetch_stream,
    .fetch_header = s_fetch_header,
    .cache_get = s_cache_get,
    .cache_set = s_cache_set,
    .store = s_store,
    .copy = s_copy,
    .move = s_move,
    .expunge = s_expunge,
    .changes_since = s_changes_since,
    .watch = s_watch,
    .unwatch = s_unwatch,
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

static void on_after(struct petrel_conn *conn, void *ctx)
{
    (void)ctx;
    petrel_buf_reset(fuzz_conn_output(conn));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 18))
        return 0;
    static const unsigned max_errors[] = {0, 3, 10, 50};
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < NFOLDERS; i++)
        h.f[i].uidnext = 1;
    uint32_t uid;
    for (unsigned k = 0; k < (data[0] & 7u); k++)
        add(0, k, k % 4 == 1 ? PETREL_STORAGE_DELETED : 0, &uid);
    h.storage_fails = (data[0] & 0x80) != 0;
    plaintext_without_tls = (data[0] & 0x10) != 0;
    struct fuzz_conn_opts co = {
        .max_line = 2048,
        .max_errors = max_errors[(data[0] >> 5) & 3],
        .max_auth_errors = 3,
        .can_starttls = (data[0] & 8) != 0,
        .busy_every = (data[1] >> 6) != 0 ? 5u + (data[1] >> 6) : 0,
    };
    imap_storage = &fake_storage;
    static const struct imap_config cfg = {
        .max_connections_per_user = 2,
        .max_command = 4096,
        .max_literal = 100000,
        /* small, so that the too-large answer and partial updates run */
        .max_answer = 8192};
    uint32_t rnd = data[1] * 2654435761u + 1;
    const struct fuzz_conn_hooks hooks = {on_after, NULL, NULL};
    struct petrel_conn *conn = fuzz_conn_open(&imap_protocol, &cfg, &co, &hooks);
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
    fuzz_conn_free(conn);
    if (h.open_mailboxes != 0 || h.open_folders != 0 || h.watches != 0)
        abort(); /* a handle the session did not close */
    if (imap_registry_count(USER) != 0)
        abort(); /* the per-user count outlived its session */
    return 0;
}
