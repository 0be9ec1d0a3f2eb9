/* Unit tests of the Maildir++ store: names, the index (UIDs, flags,
 * keywords, MODSEQ, expunge records, changes since), folders, quota,
 * copy/move maps, fetch streaming, search, adoption and rebuild. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <cmocka.h>

#include <petrel/mem.h>

#include "test_storage_util.h"

static int setup(void **state)
{
    (void)state;
    test_root_make(false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_root_remove();
    return 0;
}

/* --- names --- */

static void test_foldername(void **state)
{
    char canon[300], dir[300], back[300];
    (void)state;
    assert_true(storage_foldername_valid("inbox", canon, sizeof(canon)));
    assert_string_equal(canon, "INBOX");
    assert_true(storage_foldername_valid("Inbox/Sub", canon, sizeof(canon)));
    assert_string_equal(canon, "INBOX/Sub");
    assert_true(storage_foldername_to_dir("INBOX", dir, sizeof(dir)));
    assert_string_equal(dir, "");
    assert_true(storage_foldername_to_dir("A/B.c", dir, sizeof(dir)));
    assert_string_equal(dir, ".A.B~2Ec");
    assert_true(storage_foldername_from_dir(dir, back, sizeof(back)));
    assert_string_equal(back, "A/B.c");
    assert_true(storage_foldername_to_dir("~x:y", dir, sizeof(dir)));
    assert_string_equal(dir, ".~7Ex~3Ay");
    assert_true(storage_foldername_from_dir(dir, back, sizeof(back)));
    assert_string_equal(back, "~x:y");
    assert_true(storage_foldername_valid("Entw\xc3\xbcrfe", canon, sizeof(canon)));
    assert_true(storage_foldername_to_dir(canon, dir, sizeof(dir)));
    assert_string_equal(dir, ".Entw\xc3\xbcrfe");
    /* Refused: empty levels, wildcards, control bytes, bad UTF-8, depth. */
    const char *bad[] = {"", "/a", "a/", "a//b", "a*", "b%", "a\tb", "\xc3", "\xff", "a\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(storage_foldername_valid(bad[i], canon, sizeof(canon)));
    char deep[300] = "a";
    for (int i = 1; i < PETREL_STORAGE_MAX_DEPTH; i++)
        petrel_strlcpy(deep + strlen(deep), "/a", sizeof(deep) - strlen(deep));
    assert_true(storage_foldername_valid(deep, canon, sizeof(canon)));
    petrel_strlcpy(deep + strlen(deep), "/a", sizeof(deep) - strlen(deep));
    assert_false(storage_foldername_valid(deep, canon, sizeof(canon)));
    char longname[400];
    memset(longname, 'x', 256);
    longname[256] = '\0';
    assert_false(storage_foldername_valid(longname, canon, sizeof(canon)));
    /* Not folder directories. */
    assert_false(storage_foldername_from_dir("cur", back, sizeof(back)));
    assert_false(storage_foldername_from_dir(".", back, sizeof(back)));
    assert_false(storage_foldername_from_dir("..", back, sizeof(back)));
    assert_false(storage_foldername_from_dir(".INBOX", back, sizeof(back)));
    assert_false(storage_foldername_from_dir(".a~zz", back, sizeof(back)));
}

static void test_user_path(void **state)
{
    char p[300];
    (void)state;
    assert_true(storage_foldername_user_path("Joe.User@Example.COM", "x", p, sizeof(p)));
    assert_string_equal(p, "example.com/Joe.User");
    assert_true(storage_foldername_user_path("joe", "example.test", p, sizeof(p)));
    assert_string_equal(p, "example.test/joe");
    assert_true(storage_foldername_user_path("../../etc@..", "x", p, sizeof(p)));
    assert_null(strstr(p, "/.."));
    assert_int_not_equal(p[0], '.');
    assert_false(storage_foldername_user_path("", "x", p, sizeof(p)));
    assert_false(storage_foldername_user_path("a@", "x", p, sizeof(p)));
}

static void test_maildir_names(void **state)
{
    struct storage_mdname md;
    char base[256], name[256];
    (void)state;
    assert_true(storage_maildir_parse("1700000000.M1P2Q3.host,S=1234,U=42:2,FRS", &md));
    assert_string_equal(md.base, "1700000000.M1P2Q3.host,S=1234,U=42");
    assert_int_equal(md.uid, 42);
    assert_int_equal(md.size, 1234);
    assert_true(md.has_info);
    assert_int_equal(md.flags,
                     PETREL_STORAGE_FLAGGED | PETREL_STORAGE_ANSWERED | PETREL_STORAGE_SEEN);
    assert_true(storage_maildir_parse("plain", &md));
    assert_int_equal(md.uid, 0);
    assert_false(md.has_info);
    assert_false(storage_maildir_parse(".hidden", &md));
    assert_true(storage_maildir_parse("x,U=99999999999", &md)); /* over 32 bits: ignored */
    assert_int_equal(md.uid, 0);
    assert_true(storage_maildir_set_uid("a.b,S=5,U=3", 77, base, sizeof(base)));
    assert_string_equal(base, "a.b,S=5,U=77");
    assert_true(storage_maildir_set_uid("a.b,S=5", 8, base, sizeof(base)));
    assert_string_equal(base, "a.b,S=5,U=8");
    assert_true(storage_maildir_name(base, PETREL_STORAGE_DELETED | PETREL_STORAGE_DRAFT, false,
                                     name, sizeof(name)));
    assert_string_equal(name, "a.b,S=5,U=8:2,DT");
    assert_true(storage_maildir_new_base(10, 5, base, sizeof(base)));
    assert_true(storage_maildir_parse(base, &md));
    assert_int_equal(md.uid, 5);
    assert_int_equal(md.size, 10);
    char b2[256];
    assert_true(storage_maildir_new_base(10, 5, b2, sizeof(b2)));
    assert_string_not_equal(base, b2); /* unique */
}

static void test_keywords(void **state)
{
    char out[8192];
    (void)state;
    assert_true(storage_message_keywords("b $Junk  a B", out, sizeof(out)));
    assert_string_equal(out, "$Junk a b");
    assert_false(storage_message_keywords("\\Seen", out, sizeof(out)));
    assert_false(storage_message_keywords("a(b", out, sizeof(out)));
    char many[8192] = "";
    for (int i = 0; i <= PETREL_STORAGE_MAX_KEYWORDS; i++)
        petrel_snprintf(many + strlen(many), sizeof(many) - strlen(many), "k%d ", i);
    assert_false(storage_message_keywords(many, out, sizeof(out)));
    struct petrel_storage_store add = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_SEEN, "x", 0};
    uint32_t flags = 0;
    char *kw = petrel_strdup("a");
    assert_true(storage_message_apply(&add, "x", &flags, &kw));
    assert_string_equal(kw, "a x");
    assert_false(storage_message_apply(&add, "x", &flags, &kw)); /* no change */
    struct petrel_storage_store rm = {PETREL_STORAGE_FLAGS_REMOVE, PETREL_STORAGE_SEEN, "A", 0};
    assert_true(storage_message_apply(&rm, "A", &flags, &kw));
    assert_string_equal(kw, "x");
    assert_int_equal(flags, 0);
    free(kw);
}

/* --- accounts, delivery, status --- */

struct listing {
    char names[32][64];
    unsigned attrs[32];
    int n;
};

static void list_fn(void *arg, const struct petrel_storage_folder_info *info)
{
    struct listing *l = arg;
    if (l->n < 32) {
        petrel_strlcpy(l->names[l->n], info->name, 64);
        l->attrs[l->n++] = info->attrs;
    }
}

static int find(const struct listing *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return i;
    return -1;
}

static void test_new_account(void **state)
{
    struct petrel_mailbox *m;
    struct listing l = {.n = 0};
    (void)state;
    assert_int_equal(ops->mailbox_open("alice", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_list(m, list_fn, &l), PETREL_STORAGE_OK);
    assert_int_equal(l.n, 6);
    assert_string_equal(l.names[0], "INBOX");
    static const struct {
        const char *name;
        unsigned attr;
    } su[] = {{"Drafts", PETREL_STORAGE_FOLDER_DRAFTS},
              {"Sent", PETREL_STORAGE_FOLDER_SENT},
              {"Trash", PETREL_STORAGE_FOLDER_TRASH},
              {"Junk", PETREL_STORAGE_FOLDER_JUNK},
              {"Archive", PETREL_STORAGE_FOLDER_ARCHIVE}};
    for (size_t i = 0; i < 5; i++) {
        int k = find(&l, su[i].name);
        assert_true(k >= 0);
        assert_int_equal(l.attrs[k], su[i].attr | PETREL_STORAGE_FOLDER_SUBSCRIBED);
    }
    ops->mailbox_close(m);
    /* Reopening does not create anything twice. */
    assert_int_equal(ops->mailbox_open("alice@example.test", &m), PETREL_STORAGE_OK);
    l.n = 0;
    ops->folder_list(m, list_fn, &l);
    assert_int_equal(l.n, 6);
    ops->mailbox_close(m);
    assert_int_equal(ops->mailbox_open("", &m), PETREL_STORAGE_INVALID_NAME);
}

static void test_deliver_status(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_storage_status st;
    uint32_t uid[5], v, v2;
    char buf[512];
    (void)state;
    assert_int_equal(ops->mailbox_open("bob", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 3; i++) {
        struct petrel_storage_source src = {buf, test_message(buf, sizeof(buf), i), -1, 0};
        assert_int_equal(ops->deliver(m, NULL, &src, NULL, &uid[i], &v), PETREL_STORAGE_OK);
        if (i > 0) {
            assert_int_equal(uid[i], uid[i - 1] + 1);
            assert_int_equal(v, v2);
        }
        v2 = v;
    }
    assert_int_equal(uid[0], 1);
    assert_int_not_equal(v, 0);
    /* From a file descriptor, at its current offset. */
    char path[PATH_MAX];
    petrel_snprintf(path, sizeof(path), "%s/spool", test_root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    size_t len = test_message(buf, sizeof(buf), 9);
    assert_int_equal(write(fd, "JUNK", 4), 4);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    lseek(fd, 4, SEEK_SET);
    struct petrel_storage_source fsrc = {NULL, 0, fd, len};
    assert_int_equal(ops->deliver(m, "inbox", &fsrc, NULL, &uid[3], &v), PETREL_STORAGE_OK);
    /* Short input is refused and leaves nothing behind. */
    lseek(fd, 4, SEEK_SET);
    fsrc.fd_len = len + 100;
    assert_int_equal(ops->deliver(m, NULL, &fsrc, NULL, &uid[4], &v), PETREL_STORAGE_INVALID_ARG);
    close(fd);
    assert_int_equal(uid[3], 4);
    assert_int_equal(ops->folder_status(m, "INBOX", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 4);
    assert_int_equal(st.recent, 4);
    assert_int_equal(st.unseen, 4);
    assert_int_equal(st.uidnext, 5);
    assert_int_equal(st.uidvalidity, v);
    assert_true(st.size > 4 * 50);
    char dir[PATH_MAX];
    test_folder_dir("bob", "", dir, sizeof(dir));
    assert_int_equal(test_count_files(dir, NULL, 0), 4);
    assert_int_equal(test_deliver(m, "Nope", 1, &uid[4]), PETREL_STORAGE_NOT_FOUND);
    assert_int_equal(test_deliver(m, "Drafts", 1, &uid[4]), PETREL_STORAGE_OK);
    assert_int_equal(uid[4], 1); /* UIDs are per folder */
    ops->mailbox_close(m);
}

/* --- fetch --- */

struct sink {
    struct petrel_buf b;
    unsigned pieces;
};

static int sink_fn(void *arg, const void *data, size_t len)
{
    struct sink *s = arg;
    s->pieces++;
    assert_true(len <= 65536);
    return petrel_buf_append(&s->b, data, len) ? 0 : 1;
}

static void test_fetch(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    uint32_t uid, v;
    (void)state;
    /* A 200 KB message: comes back in pieces, byte for byte. */
    size_t len = 200 * 1024;
    char *big = petrel_malloc(len);
    int hl = snprintf(big, len, "Subject: big\r\n\r\n");
    for (size_t i = (size_t)hl; i < len; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(ops->mailbox_open("carol", &m), PETREL_STORAGE_OK);
    struct petrel_storage_source src = {big, len, -1, 0};
    assert_int_equal(ops->deliver(m, NULL, &src, NULL, &uid, &v), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    struct sink s = {.pieces = 0};
    petrel_buf_init(&s.b, 1 << 20);
    assert_int_equal(ops->fetch_stream(f, uid, sink_fn, &s), PETREL_STORAGE_OK);
    assert_int_equal(s.b.len, len);
    assert_memory_equal(petrel_buf_head(&s.b), big, len);
    assert_true(s.pieces >= 4);
    petrel_buf_reset(&s.b);
    assert_int_equal(ops->fetch_header(f, uid, &s.b), PETREL_STORAGE_OK);
    assert_int_equal(s.b.len, (size_t)hl);
    int fd;
    uint64_t size;
    assert_int_equal(ops->fetch_fd(f, uid, &fd, &size), PETREL_STORAGE_OK);
    assert_int_equal(size, len);
    /* The fd stays good after the message is flagged and expunged. */
    struct petrel_storage_store del = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_DELETED, NULL, 0};
    assert_int_equal(ops->store(f, NULL, &del, NULL, NULL), PETREL_STORAGE_OK);
    assert_int_equal(ops->expunge(f, NULL, NULL, NULL), PETREL_STORAGE_OK);
    char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)len - 1), 1);
    assert_int_equal(c, big[len - 1]);
    close(fd);
    assert_int_equal(ops->fetch_fd(f, uid, &fd, &size), PETREL_STORAGE_NOT_FOUND);
    assert_int_equal(ops->fetch_stream(f, 999, sink_fn, &s), PETREL_STORAGE_NOT_FOUND);
    petrel_buf_free(&s.b);
    free(big);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* --- flags, keywords, MODSEQ, expunge, changes --- */

static void collect_uid(void *arg, uint32_t uid)
{
    struct test_msgs *t = arg;
    t->uid[t->n++] = uid;
}

struct changes {
    struct test_msgs changed;
    struct petrel_storage_uid_range vanished[16];
    size_t nv;
};

static int changed_fn(void *arg, const struct petrel_storage_msg *m)
{
    return test_collect(&((struct changes *)arg)->changed, m);
}

static void vanished_fn(void *arg, uint32_t lo, uint32_t hi)
{
    struct changes *c = arg;
    if (c->nv < 16)
        c->vanished[c->nv++] = (struct petrel_storage_uid_range){lo, hi};
}

/* Expunge message uid (flag it \Deleted first). */
static void expunge_one(struct petrel_folder *f, uint32_t uid)
{
    struct petrel_storage_store del = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_DELETED, NULL, 0};
    struct petrel_storage_uid_range r = {uid, uid};
    struct petrel_storage_uid_set s = {&r, 1};
    assert_int_equal(ops->store(f, &s, &del, NULL, NULL), PETREL_STORAGE_OK);
    assert_int_equal(ops->expunge(f, &s, NULL, NULL), PETREL_STORAGE_OK);
}

/* The expunged window: at most expunged_max rows and expunged_days of
 * age are remembered; a MODSEQ older than what was pruned gets every
 * missing UID as vanished, a newer one exactly what vanished since. */
static void test_expunged_window(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    struct petrel_storage_status st0, st3, st5;
    uint32_t uid;
    (void)state;
    storage_configure_expunged(30, 2);
    assert_int_equal(ops->mailbox_open("erin", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(test_deliver(m, NULL, i, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &st0), PETREL_STORAGE_OK);
    for (uint32_t u = 1; u <= 3; u++)
        expunge_one(f, u);
    assert_int_equal(ops->status(f, &st3), PETREL_STORAGE_OK);
    expunge_one(f, 5);
    expunge_one(f, 7);
    assert_int_equal(ops->status(f, &st5), PETREL_STORAGE_OK);
    /* Rows for 5 and 7 only: a client at st3 still gets exactly them. */
    struct changes c = {.nv = 0};
    assert_int_equal(ops->changes_since(f, st3.highestmodseq, NULL, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.nv, 2);
    assert_int_equal(c.vanished[0].lo, 5);
    assert_int_equal(c.vanished[0].hi, 5);
    assert_int_equal(c.vanished[1].lo, 7);
    /* A client at st0 is older than the window: every missing UID. */
    c.nv = 0;
    assert_int_equal(ops->changes_since(f, st0.highestmodseq, NULL, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.nv, 3);
    assert_int_equal(c.vanished[0].lo, 1);
    assert_int_equal(c.vanished[0].hi, 3);
    assert_int_equal(c.vanished[1].lo, 5);
    assert_int_equal(c.vanished[2].lo, 7);
    assert_int_equal(c.vanished[2].hi, 7);
    /* Age: two days on, with a one-day window, everything goes; a client
     * at st3 then gets the gaps too, one at st5 nothing. */
    storage_configure_expunged(1, 100);
    sqlite3 *db = f->fs->db;
    assert_int_equal(storage_index_begin(db), PETREL_STORAGE_OK);
    assert_int_equal(storage_expunged_prune(db, (int64_t)time(NULL) + 2 * 86400),
                     PETREL_STORAGE_OK);
    assert_int_equal(storage_index_commit(db), PETREL_STORAGE_OK);
    c.nv = 0;
    assert_int_equal(ops->changes_since(f, st3.highestmodseq, NULL, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.nv, 3);
    c.nv = 0;
    assert_int_equal(ops->changes_since(f, st5.highestmodseq, NULL, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.nv, 0);
    /* Within the window nothing is pruned by age. */
    expunge_one(f, 8);
    c.nv = 0;
    assert_int_equal(ops->changes_since(f, st5.highestmodseq, NULL, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.nv, 1);
    assert_int_equal(c.vanished[0].lo, 8);
    storage_configure_expunged(30, 100000);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

static int kw_fn(void *arg, const struct petrel_storage_msg *m)
{
    petrel_strlcpy(arg, m->keywords, 256);
    return 0;
}

static void test_flags_modseq(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    struct petrel_storage_status st0, st1;
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("dave", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(test_deliver(m, NULL, i, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &st0), PETREL_STORAGE_OK);
    struct petrel_storage_uid_range r13 = {1, 3}, r2 = {2, 2};
    struct petrel_storage_uid_set s13 = {&r13, 1}, s2 = {&r2, 1};
    struct petrel_storage_store seen = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_SEEN,
                                        "$Label1 work", 0};
    assert_int_equal(ops->store(f, &s13, &seen, NULL, NULL), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &st1), PETREL_STORAGE_OK);
    assert_true(st1.highestmodseq > st0.highestmodseq);
    assert_int_equal(st1.unseen, 2);
    assert_int_equal(st1.recent, 2); /* flagged messages left new/ */
    char kw[256];
    assert_int_equal(ops->messages(f, &s2, kw_fn, kw), PETREL_STORAGE_OK);
    assert_string_equal(kw, "$Label1 work");
    /* The Maildir name carries the standard flags. */
    char dir[PATH_MAX], path[PATH_MAX];
    test_folder_dir("dave", "", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/cur", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    int with_s = 0;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ":2,S") != NULL)
            with_s++;
    closedir(d);
    assert_int_equal(with_s, 3);
    /* Same flags again: nothing changes, MODSEQ stays. */
    assert_int_equal(ops->store(f, &s13, &seen, NULL, NULL), PETREL_STORAGE_OK);
    struct petrel_storage_status st2;
    ops->status(f, &st2);
    assert_int_equal(st2.highestmodseq, st1.highestmodseq);
    /* UNCHANGEDSINCE: message 2 changed after st0, so it is refused. */
    struct changes c = {.nv = 0};
    c.changed.n = 0;
    struct petrel_storage_store cond = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_FLAGGED, NULL,
                                        st0.highestmodseq};
    struct test_msgs mod = {.n = 0};
    assert_int_equal(ops->store(f, NULL, &cond, collect_uid, &mod), PETREL_STORAGE_OK);
    assert_int_equal(mod.n, 3);
    assert_int_equal(mod.uid[0], 1);
    /* Changes since st1: messages 4 and 5 got \Flagged. */
    assert_int_equal(ops->changes_since(f, st1.highestmodseq, changed_fn, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.changed.n, 2);
    assert_int_equal(c.changed.uid[0], 4);
    assert_int_equal(c.nv, 0);
    /* Expunge: only \Deleted ones, recorded with their MODSEQ. */
    struct petrel_storage_store del = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_DELETED, NULL, 0};
    struct petrel_storage_uid_range r24[] = {{2, 2}, {4, 4}};
    struct petrel_storage_uid_set s24 = {r24, 2};
    assert_int_equal(ops->store(f, &s24, &del, NULL, NULL), PETREL_STORAGE_OK);
    ops->status(f, &st2);
    struct test_msgs gone = {.n = 0};
    struct petrel_storage_uid_range r4 = {4, 5};
    struct petrel_storage_uid_set s4 = {&r4, 1};
    assert_int_equal(ops->expunge(f, &s4, collect_uid, &gone), PETREL_STORAGE_OK);
    assert_int_equal(gone.n, 1);
    assert_int_equal(gone.uid[0], 4);
    assert_int_equal(ops->expunge(f, NULL, collect_uid, &gone), PETREL_STORAGE_OK);
    assert_int_equal(gone.n, 2);
    assert_int_equal(gone.uid[1], 2);
    c.changed.n = 0;
    c.nv = 0;
    assert_int_equal(ops->changes_since(f, st2.highestmodseq, changed_fn, vanished_fn, &c),
                     PETREL_STORAGE_OK);
    assert_int_equal(c.changed.n, 0);
    assert_int_equal(c.nv, 2);
    assert_int_equal(c.vanished[0].lo, 2);
    assert_int_equal(c.vanished[1].lo, 4);
    assert_int_equal(test_count_files(dir, NULL, 0), 3);
    /* REPLACE and REMOVE. */
    struct petrel_storage_store rep = {PETREL_STORAGE_FLAGS_REPLACE, PETREL_STORAGE_ANSWERED,
                                       "only", 0};
    assert_int_equal(ops->store(f, NULL, &rep, NULL, NULL), PETREL_STORAGE_OK);
    struct petrel_storage_uid_range r1 = {1, 1};
    struct petrel_storage_uid_set s1 = {&r1, 1};
    assert_int_equal(ops->messages(f, &s1, kw_fn, kw), PETREL_STORAGE_OK);
    assert_string_equal(kw, "only");
    struct petrel_storage_store bad = {PETREL_STORAGE_FLAGS_ADD, 1u << 9, NULL, 0};
    assert_int_equal(ops->store(f, NULL, &bad, NULL, NULL), PETREL_STORAGE_INVALID_ARG);
    bad = (struct petrel_storage_store){PETREL_STORAGE_FLAGS_ADD, 0, "\\Bad", 0};
    assert_int_equal(ops->store(f, NULL, &bad, NULL, NULL), PETREL_STORAGE_INVALID_ARG);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* --- append, copy, move, cache --- */

struct map {
    uint32_t src[16], dst[16];
    int n;
};

static void map_fn(void *arg, uint32_t s, uint32_t d)
{
    struct map *mp = arg;
    mp->src[mp->n] = s;
    mp->dst[mp->n++] = d;
}

static void test_copy_move(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f, *arch;
    uint32_t uid, v, dv;
    char buf[512];
    (void)state;
    assert_int_equal(ops->mailbox_open("erin", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 4; i++) {
        struct petrel_storage_source src = {buf, test_message(buf, sizeof(buf), i), -1, 0};
        struct petrel_storage_append a = {PETREL_STORAGE_SEEN, "$Important", 1000000 + i, {0, 0}};
        assert_int_equal(ops->append(m, "Sent", &src, &a, &uid, &v), PETREL_STORAGE_OK);
    }
    assert_int_equal(ops->folder_open(m, "Sent", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->cache_set(f, 2, "bodystructure", "(\"text\")", 8), PETREL_STORAGE_OK);
    assert_int_equal(ops->cache_set(f, 99, "bodystructure", "x", 1), PETREL_STORAGE_NOT_FOUND);
    assert_int_equal(ops->cache_set(f, 2, "", "x", 1), PETREL_STORAGE_INVALID_ARG);
    assert_int_equal(ops->cache_set(f, 2, "k", "x", PETREL_STORAGE_MAX_CACHE + 1),
                     PETREL_STORAGE_TOO_LARGE);
    /* Archive already has one message, so UIDs differ from the source. */
    assert_int_equal(test_deliver(m, "Archive", 1, &uid), PETREL_STORAGE_OK);
    struct petrel_storage_uid_range r[] = {{4, 2}};
    struct petrel_storage_uid_set set = {r, 1};
    struct map mp = {.n = 0};
    assert_int_equal(ops->copy(f, &set, "Archive", map_fn, &mp, &dv), PETREL_STORAGE_OK);
    assert_int_equal(mp.n, 3);
    assert_int_equal(mp.src[0], 2);
    assert_int_equal(mp.dst[0], 2);
    assert_int_equal(mp.src[2], 4);
    assert_int_equal(mp.dst[2], 4);
    struct petrel_storage_status st;
    assert_int_equal(ops->folder_status(m, "Archive", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.uidvalidity, dv);
    assert_int_equal(st.messages, 4);
    assert_int_equal(st.unseen, 1);
    assert_int_equal(ops->folder_open(m, "Archive", &arch), PETREL_STORAGE_OK);
    struct petrel_buf b;
    petrel_buf_init(&b, 1024);
    assert_int_equal(ops->cache_get(arch, 2, "bodystructure", &b), PETREL_STORAGE_OK);
    assert_int_equal(b.len, 8);
    petrel_buf_reset(&b);
    assert_int_equal(ops->fetch_header(arch, 3, &b), PETREL_STORAGE_OK);
    assert_non_null(memmem(petrel_buf_head(&b), b.len, "message number 2", 16));
    petrel_buf_free(&b);
    /* Move: mapping reported, sources gone (VANISHED), destination grows. */
    struct petrel_storage_status before;
    ops->status(f, &before);
    mp.n = 0;
    struct petrel_storage_uid_range r1[] = {{1, 1}, {3, 3}};
    struct petrel_storage_uid_set s1 = {r1, 2};
    assert_int_equal(ops->move(f, &s1, "Archive", map_fn, &mp, &dv), PETREL_STORAGE_OK);
    assert_int_equal(mp.n, 2);
    assert_int_equal(mp.dst[0], 5);
    assert_int_equal(mp.dst[1], 6);
    struct changes c = {.nv = 0};
    c.changed.n = 0;
    ops->changes_since(f, before.highestmodseq, changed_fn, vanished_fn, &c);
    assert_int_equal(c.nv, 2);
    assert_int_equal(ops->folder_status(m, "Sent", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 2);
    char dir[PATH_MAX];
    test_folder_dir("erin", ".Archive", dir, sizeof(dir));
    assert_int_equal(test_count_files(dir, NULL, 0), 6);
    assert_int_equal(ops->copy(f, NULL, "Nope", NULL, NULL, &dv), PETREL_STORAGE_NOT_FOUND);
    ops->folder_close(arch);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* --- folders --- */

/* cache_scan: one key of many messages in UID order, other keys and
 * messages without one skipped, a range honoured, across chunks (more
 * rows than one query reads), and a stop from the callback returned. */
struct scan_seen {
    uint32_t uid[3000];
    size_t n;
    bool bad;
    uint32_t stop_at;
};

static int scan_fn(void *arg, uint32_t uid, const void *data, size_t len)
{
    struct scan_seen *c = arg;
    char want[32];
    int n = snprintf(want, sizeof(want), "v%u", uid);
    if (len != (size_t)n || memcmp(data, want, len) != 0 || c->n == 3000)
        c->bad = true;
    else
        c->uid[c->n++] = uid;
    return uid == c->stop_at ? 7 : 0;
}

static void test_cache_scan(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    uint32_t uid;
    char v[32];
    (void)state;
    assert_int_equal(ops->mailbox_open("scanner", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 2500; i++)
        assert_int_equal(test_deliver(m, NULL, i, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    for (uint32_t u = 1; u <= 2500; u++) {
        int n = snprintf(v, sizeof(v), "v%u", u);
        if (u % 10 != 0) /* 2,250 rows: more than one chunk */
            assert_int_equal(ops->cache_set(f, u, "sk", v, (size_t)n), PETREL_STORAGE_OK);
        assert_int_equal(ops->cache_set(f, u, "other", "x", 1), PETREL_STORAGE_OK);
    }
    struct scan_seen *c = petrel_calloc(1, sizeof(*c));
    assert_int_equal(ops->cache_scan(f, NULL, "sk", scan_fn, c), PETREL_STORAGE_OK);
    assert_false(c->bad);
    assert_int_equal(c->n, 2250);
    for (size_t i = 0; i < c->n; i++)
        assert_int_equal(c->uid[i], (uint32_t)(i + 1 + i / 9));
    struct petrel_storage_uid_range r[2] = {{3, 6}, {2496, 4000}};
    struct petrel_storage_uid_set set = {r, 2};
    memset(c, 0, sizeof(*c));
    assert_int_equal(ops->cache_scan(f, &set, "sk", scan_fn, c), PETREL_STORAGE_OK);
    assert_int_equal(c->n, 8); /* 3 to 6, 2496 to 2499 */
    assert_int_equal(c->uid[3], 6);
    assert_int_equal(c->uid[4], 2496);
    memset(c, 0, sizeof(*c));
    c->stop_at = 12;
    assert_int_equal(ops->cache_scan(f, NULL, "sk", scan_fn, c), 7);
    assert_int_equal(c->n, 11); /* 1 to 9, 11, 12 */
    assert_int_equal(ops->cache_scan(f, NULL, "", scan_fn, c), PETREL_STORAGE_INVALID_ARG);
    free(c);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

static void test_folders(void **state)
{
    struct petrel_mailbox *m;
    struct listing l = {.n = 0};
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("frank", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_create(m, "Work/2024/Q1", 0), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_create(m, "Work", 0), PETREL_STORAGE_EXISTS);
    assert_int_equal(ops->folder_create(m, "inbox", 0), PETREL_STORAGE_EXISTS);
    assert_int_equal(ops->folder_create(m, "a*b", 0), PETREL_STORAGE_INVALID_NAME);
    assert_int_equal(ops->folder_create(m, "Dots.in.name", PETREL_STORAGE_FOLDER_FLAGGED),
                     PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, "Work/2024", 1, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_delete(m, "Work"), PETREL_STORAGE_NOT_ALLOWED);
    assert_int_equal(ops->folder_delete(m, "INBOX"), PETREL_STORAGE_NOT_ALLOWED);
    assert_int_equal(ops->folder_subscribe(m, "Work/2024", true), PETREL_STORAGE_OK);
    /* A watcher of the renamed folder's children keeps working by name. */
    assert_int_equal(ops->folder_rename(m, "Work", "Job"), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_rename(m, "Job", "Job/Sub"), PETREL_STORAGE_NOT_ALLOWED);
    assert_int_equal(ops->folder_rename(m, "Nope", "X"), PETREL_STORAGE_NOT_FOUND);
    assert_int_equal(ops->folder_rename(m, "Drafts", "Sent"), PETREL_STORAGE_EXISTS);
    struct petrel_storage_status st;
    assert_int_equal(ops->folder_status(m, "Job/2024", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 1);
    assert_int_equal(ops->folder_status(m, "Work/2024", &st), PETREL_STORAGE_NOT_FOUND);
    ops->folder_list(m, list_fn, &l);
    int k = find(&l, "Job");
    assert_true(k >= 0);
    assert_true(l.attrs[k] & PETREL_STORAGE_FOLDER_HAS_CHILDREN);
    k = find(&l, "Job/2024");
    assert_true(k >= 0);
    assert_true(l.attrs[k] & PETREL_STORAGE_FOLDER_SUBSCRIBED);
    assert_true(find(&l, "Job/2024/Q1") >= 0);
    k = find(&l, "Dots.in.name");
    assert_true(k >= 0);
    assert_int_equal(l.attrs[k], PETREL_STORAGE_FOLDER_FLAGGED);
    char dir[PATH_MAX];
    struct stat sb;
    test_folder_dir("frank", ".Dots~2Ein~2Ename", dir, sizeof(dir));
    assert_int_equal(stat(dir, &sb), 0);
    /* Delete leaves the subscription (RFC 9051), shown as nonexistent. */
    assert_int_equal(ops->folder_delete(m, "Job/2024/Q1"), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_delete(m, "Job/2024/Q1"), PETREL_STORAGE_NOT_FOUND);
    assert_int_equal(ops->folder_subscribe(m, "Job/2024/Q1", true), PETREL_STORAGE_OK);
    l.n = 0;
    ops->folder_list(m, list_fn, &l);
    k = find(&l, "Job/2024/Q1");
    assert_true(k >= 0);
    assert_int_equal(l.attrs[k],
                     PETREL_STORAGE_FOLDER_NONEXISTENT | PETREL_STORAGE_FOLDER_SUBSCRIBED);
    assert_false(l.attrs[find(&l, "Job/2024")] & PETREL_STORAGE_FOLDER_HAS_CHILDREN);
    /* RENAME INBOX moves its messages and leaves it empty. */
    for (unsigned i = 0; i < 3; i++)
        test_deliver(m, NULL, i, &uid);
    assert_int_equal(ops->folder_rename(m, "INBOX", "Old"), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_status(m, "INBOX", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.uidnext, 4);
    assert_int_equal(ops->folder_status(m, "Old", &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 3);
    ops->mailbox_close(m);
}

/* --- quota --- */

static void test_quota(void **state)
{
    struct petrel_mailbox *m;
    uint64_t bytes, msgs;
    uint32_t uid, v;
    char buf[512];
    (void)state;
    assert_int_equal(ops->mailbox_open("grace", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->quota_usage(m, &bytes, &msgs), PETREL_STORAGE_OK);
    assert_int_equal(bytes, 0);
    size_t len = test_message(buf, sizeof(buf), 1);
    struct petrel_storage_source src = {buf, len, -1, 0};
    struct petrel_storage_quota q = {0, 3};
    for (int i = 0; i < 3; i++)
        assert_int_equal(ops->deliver(m, i == 2 ? "Junk" : NULL, &src, &q, &uid, &v),
                         PETREL_STORAGE_OK);
    assert_int_equal(ops->deliver(m, NULL, &src, &q, &uid, &v), PETREL_STORAGE_OVER_QUOTA);
    assert_int_equal(ops->quota_usage(m, &bytes, &msgs), PETREL_STORAGE_OK);
    assert_int_equal(msgs, 3);
    assert_int_equal(bytes, 3 * len);
    struct petrel_storage_quota qb = {3 * len + len - 1, 0};
    assert_int_equal(ops->deliver(m, NULL, &src, &qb, &uid, &v), PETREL_STORAGE_OVER_QUOTA);
    qb.bytes++;
    assert_int_equal(ops->deliver(m, NULL, &src, &qb, &uid, &v), PETREL_STORAGE_OK);
    struct petrel_folder *f;
    ops->folder_open(m, "INBOX", &f);
    struct petrel_storage_store del = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_DELETED, NULL, 0};
    ops->store(f, NULL, &del, NULL, NULL);
    ops->expunge(f, NULL, NULL, NULL);
    ops->folder_close(f);
    assert_int_equal(ops->quota_usage(m, &bytes, &msgs), PETREL_STORAGE_OK);
    assert_int_equal(msgs, 1);
    /* A fresh account handle sums from the indexes: the same figures. */
    ops->mailbox_close(m);
    assert_int_equal(ops->mailbox_open("grace", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->quota_usage(m, &bytes, &msgs), PETREL_STORAGE_OK);
    assert_int_equal(msgs, 1);
    assert_int_equal(bytes, len);
    ops->mailbox_close(m);
}

/* --- search --- */

static void test_matcher(void **state)
{
    struct storage_matcher mt;
    const char *text = "The Quick brown FOX jumps";
    (void)state;
    /* Fed one byte at a time, the match spans every boundary. */
    storage_search_init(&mt, "quick BROWN fox");
    for (size_t i = 0; text[i] != '\0'; i++)
        storage_search_feed(&mt, text + i, 1);
    assert_true(mt.found);
    storage_search_init(&mt, "foxes");
    storage_search_feed(&mt, text, strlen(text));
    assert_false(mt.found);
    const char *h = "Subject: hello\r\n  World\r\nX-Other: world\r\n\r\nbody";
    assert_true(storage_search_header_field(h, strlen(h), "subject", "hello  world"));
    assert_false(storage_search_header_field(h, strlen(h), "subject", "other"));
    assert_true(storage_search_header_field(h, strlen(h), "x-other", "WORLD"));
    assert_false(storage_search_header_field(h, strlen(h), "body", ""));
    assert_true(storage_search_header_field(h, strlen(h), "Subject", ""));
}

static void test_search(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    uint32_t uid, v;
    (void)state;
    assert_int_equal(ops->mailbox_open("heidi", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 3; i++)
        test_deliver(m, NULL, i, &uid);
    /* The needle straddles the 64 KiB read boundary. */
    size_t len = 70000;
    char *big = petrel_malloc(len);
    int hl = snprintf(big, len, "Subject: big one\r\n\r\n");
    memset(big + hl, 'z', len - (size_t)hl);
    memcpy(big + 65536 - 4, "NeedleInBody", 12);
    struct petrel_storage_source src = {big, len, -1, 0};
    assert_int_equal(ops->deliver(m, NULL, &src, NULL, &uid, &v), PETREL_STORAGE_OK);
    free(big);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    struct test_msgs hits = {.n = 0};
    struct petrel_storage_search q = {PETREL_STORAGE_SEARCH_HEADER, "subject", "NUMBER 1"};
    assert_int_equal(ops->search(f, NULL, &q, collect_uid, &hits), PETREL_STORAGE_OK);
    assert_int_equal(hits.n, 1);
    assert_int_equal(hits.uid[0], 2);
    hits.n = 0;
    q = (struct petrel_storage_search){PETREL_STORAGE_SEARCH_HEADER, "Subject", "folded part"};
    ops->search(f, NULL, &q, collect_uid, &hits);
    assert_int_equal(hits.n, 3);
    hits.n = 0;
    q = (struct petrel_storage_search){PETREL_STORAGE_SEARCH_BODY, NULL, "needleinbody"};
    ops->search(f, NULL, &q, collect_uid, &hits);
    assert_int_equal(hits.n, 1);
    assert_int_equal(hits.uid[0], 4);
    hits.n = 0;
    q = (struct petrel_storage_search){PETREL_STORAGE_SEARCH_BODY, NULL, "subject"};
    ops->search(f, NULL, &q, collect_uid, &hits);
    assert_int_equal(hits.n, 0); /* the header is not the body */
    q = (struct petrel_storage_search){PETREL_STORAGE_SEARCH_TEXT, NULL, "big one"};
    struct petrel_storage_uid_range r = {2, 4};
    struct petrel_storage_uid_set set = {&r, 1};
    ops->search(f, &set, &q, collect_uid, &hits);
    assert_int_equal(hits.n, 1);
    q = (struct petrel_storage_search){PETREL_STORAGE_SEARCH_HEADER, NULL, "x"};
    assert_int_equal(ops->search(f, NULL, &q, collect_uid, &hits), PETREL_STORAGE_INVALID_ARG);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* --- notifications --- */

static void count_fn(void *arg) { (*(int *)arg)++; }

static void test_watch(void **state)
{
    struct petrel_mailbox *m, *m2;
    struct petrel_storage_watch *w_inbox, *w_all, *w_junk;
    int inbox = 0, all = 0, junk = 0;
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("ivan", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->mailbox_open("ivan", &m2), PETREL_STORAGE_OK);
    assert_int_equal(ops->watch(m, "inbox", count_fn, &inbox, &w_inbox), PETREL_STORAGE_OK);
    assert_int_equal(ops->watch(m, NULL, count_fn, &all, &w_all), PETREL_STORAGE_OK);
    assert_int_equal(ops->watch(m, "Junk", count_fn, &junk, &w_junk), PETREL_STORAGE_OK);
    /* A change through another handle reaches the watchers. */
    test_deliver(m2, NULL, 1, &uid);
    assert_int_equal(inbox, 1);
    assert_int_equal(all, 1);
    assert_int_equal(junk, 0);
    test_deliver(m2, "Junk", 1, &uid);
    assert_int_equal(junk, 1);
    assert_int_equal(all, 2);
    ops->unwatch(w_inbox);
    test_deliver(m2, NULL, 2, &uid);
    assert_int_equal(inbox, 1);
    assert_int_equal(all, 3);
    ops->mailbox_close(m);
    /* Watchers keep the account alive after its handle closed. */
    test_deliver(m2, "Junk", 3, &uid);
    assert_int_equal(junk, 2);
    ops->unwatch(w_all);
    ops->unwatch(w_junk);
    ops->mailbox_close(m2);
    assert_string_equal(ops->strerror(PETREL_STORAGE_OVER_QUOTA), "over quota");
    assert_string_equal(ops->strerror(1000), "unknown error");
}

/* --- adoption and rebuild --- */

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_adopt(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    struct petrel_storage_status st;
    uint32_t uid;
    char dir[PATH_MAX], path[PATH_MAX];
    (void)state;
    assert_int_equal(ops->mailbox_open("judy", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 3; i++)
        test_deliver(m, NULL, i, &uid);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    test_folder_dir("judy", "", dir, sizeof(dir));
    /* Another program drops files: one plain, one with a U= above UIDNEXT,
     * one with a U= already used; and marks message 1 seen by renaming. */
    petrel_snprintf(path, sizeof(path), "%s/new/outside.1", dir);
    write_file(path, "Subject: outside\r\n\r\nx\r\n");
    petrel_snprintf(path, sizeof(path), "%s/cur/outside.2,U=10:2,F", dir);
    write_file(path, "Subject: ten\r\n\r\nx\r\n");
    petrel_snprintf(path, sizeof(path), "%s/new/outside.3,U=2", dir);
    write_file(path, "Subject: dup\r\n\r\nx\r\n");
    struct test_msgs t = {.n = 0};
    ops->messages(f, NULL, test_collect, &t);
    char from[PATH_MAX], to[PATH_MAX];
    DIR *d;
    struct dirent *de;
    petrel_snprintf(from, sizeof(from), "%s/new", dir);
    d = opendir(from);
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ",U=1") != NULL && strstr(de->d_name, ",U=10") == NULL) {
            petrel_snprintf(from, sizeof(from), "%s/new/%s", dir, de->d_name);
            petrel_snprintf(to, sizeof(to), "%s/cur/%s:2,S", dir, de->d_name);
            assert_int_equal(rename(from, to), 0);
            break;
        }
    closedir(d);
    assert_int_equal(ops->sync(f), PETREL_STORAGE_OK);
    t.n = 0;
    ops->messages(f, NULL, test_collect, &t);
    assert_int_equal(t.n, 6);
    assert_int_equal(t.uid[0], 1);
    assert_int_equal(t.flags[0], PETREL_STORAGE_SEEN);
    assert_int_equal(t.uid[3], 10); /* kept its U= */
    assert_int_equal(t.flags[3], PETREL_STORAGE_FLAGGED);
    assert_int_equal(t.uid[4], 11); /* U=2 was taken: new UID */
    assert_int_equal(t.uid[5], 12);
    ops->status(f, &st);
    assert_int_equal(st.uidnext, 13);
    /* Every file now carries its UID. */
    uint32_t uids[16];
    size_t n = test_count_files(dir, uids, 16);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_true(uids[i] != 0);
    /* A file removed outside becomes an expunge. */
    struct petrel_storage_status before = st;
    petrel_snprintf(from, sizeof(from), "%s/cur", dir);
    d = opendir(from);
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ",U=10") != NULL) {
            petrel_snprintf(path, sizeof(path), "%s/cur/%s", dir, de->d_name);
            unlink(path);
        }
    closedir(d);
    ops->sync(f);
    struct changes c = {.nv = 0};
    c.changed.n = 0;
    ops->changes_since(f, before.highestmodseq, changed_fn, vanished_fn, &c);
    assert_int_equal(c.nv, 1);
    assert_int_equal(c.vanished[0].lo, 10);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

static void index_path(const char *user, char *out, size_t size)
{
    char dir[PATH_MAX];
    test_folder_dir(user, "", dir, sizeof(dir));
    petrel_snprintf(out, size, "%s/" STORAGE_INDEX_FILE, dir);
}

static void remove_index(const char *user)
{
    char p[PATH_MAX], q[PATH_MAX + 8];
    index_path(user, p, sizeof(p));
    unlink(p);
    petrel_snprintf(q, sizeof(q), "%s-wal", p);
    unlink(q);
    petrel_snprintf(q, sizeof(q), "%s-shm", p);
    unlink(q);
}

static void test_rebuild(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    struct petrel_storage_status st0, st1;
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("ken", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 6; i++)
        test_deliver(m, NULL, i, &uid);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    struct petrel_storage_uid_range r = {2, 3};
    struct petrel_storage_uid_set set = {&r, 1};
    struct petrel_storage_store seen = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_SEEN, NULL, 0};
    ops->store(f, &set, &seen, NULL, NULL);
    struct petrel_storage_store del = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_DELETED, NULL, 0};
    struct petrel_storage_uid_range r6 = {6, 6};
    struct petrel_storage_uid_set s6 = {&r6, 1};
    ops->store(f, &s6, &del, NULL, NULL);
    ops->expunge(f, NULL, NULL, NULL);
    ops->status(f, &st0);
    struct test_msgs t0 = {.n = 0}, t1 = {.n = 0};
    ops->messages(f, NULL, test_collect, &t0);
    ops->folder_close(f);
    ops->mailbox_close(m);

    /* (1) index deleted: same UIDs, flags, UIDVALIDITY; the expunged
     * highest UID is never handed out again. */
    remove_index("ken");
    assert_int_equal(ops->mailbox_open("ken", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    ops->status(f, &st1);
    ops->messages(f, NULL, test_collect, &t1);
    assert_int_equal(st1.uidvalidity, st0.uidvalidity);
    assert_true(st1.uidnext >= st0.uidnext);
    assert_true(st1.highestmodseq > st0.highestmodseq);
    assert_int_equal(t1.n, t0.n);
    assert_memory_equal(t1.uid, t0.uid, t0.n * sizeof(uint32_t));
    assert_memory_equal(t1.flags, t0.flags, t0.n * sizeof(uint32_t));
    /* A client that knew MODSEQ st0 is told every missing UID vanished. */
    struct changes c = {.nv = 0};
    c.changed.n = 0;
    ops->changes_since(f, st0.highestmodseq, changed_fn, vanished_fn, &c);
    assert_true(c.nv >= 1);
    assert_int_equal(c.vanished[c.nv - 1].hi, st1.uidnext - 1);
    assert_int_equal(test_deliver(m, NULL, 7, &uid), PETREL_STORAGE_OK);
    assert_true(uid > 6);
    ops->folder_close(f);
    ops->mailbox_close(m);

    /* (2) garbage instead of an index: moved aside, rebuilt. */
    char p[PATH_MAX];
    remove_index("ken");
    index_path("ken", p, sizeof(p));
    write_file(p, "this is not a database, just garbage bytes that go on and on........"
                  "................................................................");
    assert_int_equal(ops->mailbox_open("ken", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    struct petrel_storage_status st2;
    ops->status(f, &st2);
    assert_int_equal(st2.uidvalidity, st0.uidvalidity);
    assert_int_equal(st2.messages, t0.n + 1);
    ops->folder_close(f);
    ops->mailbox_close(m);

    /* (3) two files claim the same UID: no UID can be trusted, so a new
     * UIDVALIDITY and unique UIDs. */
    char dir[PATH_MAX], path[PATH_MAX];
    test_folder_dir("ken", "", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/cur/clash.1,U=2:2,S", dir);
    write_file(path, "Subject: clash\r\n\r\n");
    remove_index("ken");
    assert_int_equal(ops->mailbox_open("ken", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    struct petrel_storage_status st3;
    ops->status(f, &st3);
    assert_true(st3.uidvalidity > st0.uidvalidity);
    assert_int_equal(st3.messages, t0.n + 2);
    struct test_msgs t3 = {.n = 0};
    ops->messages(f, NULL, test_collect, &t3);
    for (size_t i = 1; i < t3.n; i++)
        assert_true(t3.uid[i] > t3.uid[i - 1]);
    uint32_t uids[32];
    size_t n = test_count_files(dir, uids, 32);
    assert_int_equal(n, t3.n);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* --- review fixes --- */

/* Fault injection: fail the nth call (1-based) of one point, or all. */
static const char *fault_point;
static int fault_nth, fault_calls;
static void (*fault_action)(void);

static bool fault_fn(const char *point)
{
    if (fault_point == NULL || strcmp(point, fault_point) != 0)
        return false;
    fault_calls++;
    if (fault_action != NULL) {
        void (*a)(void) = fault_action;
        fault_action = NULL; /* once */
        a();
        return false;
    }
    return fault_nth == 0 || fault_calls == fault_nth;
}

static void fault_set(const char *point, int nth)
{
    fault_point = point;
    fault_nth = nth;
    fault_calls = 0;
    storage_test_fault = fault_fn;
}

static void fault_clear(void)
{
    storage_test_fault = NULL;
    fault_point = NULL;
    fault_action = NULL;
}

static uint32_t folder_count_msgs(struct petrel_mailbox *m, const char *name)
{
    struct petrel_storage_status st;
    assert_int_equal(ops->folder_status(m, name, &st), PETREL_STORAGE_OK);
    return st.messages;
}

/* Item 5: a U= at the top of the UID space is ignored, UIDNEXT never wraps. */
static void test_huge_uid_hint(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    struct petrel_storage_status st;
    char dir[PATH_MAX], path[PATH_MAX];
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("hint", &m), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    test_folder_dir("hint", "", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/new/outside.9,U=4294967295", dir);
    write_file(path, "Subject: max\r\n\r\nx\r\n");
    petrel_snprintf(path, sizeof(path), "%s/new/outside.8,U=4294967000", dir);
    write_file(path, "Subject: near max\r\n\r\nx\r\n");
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->sync(f), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 3);
    assert_true(st.uidnext > 1 && st.uidnext < 100);
    assert_int_equal(test_deliver(m, NULL, 2, &uid), PETREL_STORAGE_OK);
    assert_true(uid < 100);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* Item 12: non-canonical folder directory names are not folders. */
static void test_foldername_canonical(void **state)
{
    char name[300];
    (void)state;
    assert_true(storage_foldername_from_dir(".A.B~2Ec", name, sizeof(name)));
    const char *bad[] = {".A~2fB", ".A~2eB", ".~41", ".a~00b", ".A~2FB", ".inbox.x", ".A~7e"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(storage_foldername_from_dir(bad[i], name, sizeof(name)));
    /* Item 13: every name up to PETREL_STORAGE_MAX_NAME fits on disk. */
    char longest[PETREL_STORAGE_MAX_NAME + 2], dir[STORAGE_MAX_FILENAME + 1];
    memset(longest, '~', PETREL_STORAGE_MAX_NAME);
    longest[PETREL_STORAGE_MAX_NAME] = '\0';
    assert_true(storage_foldername_valid(longest, name, sizeof(name)));
    assert_true(storage_foldername_to_dir(name, dir, sizeof(dir)));
    assert_true(storage_foldername_from_dir(dir, name, sizeof(name)));
    assert_string_equal(name, longest);
    longest[PETREL_STORAGE_MAX_NAME] = '~';
    longest[PETREL_STORAGE_MAX_NAME + 1] = '\0';
    assert_false(storage_foldername_valid(longest, name, sizeof(name)));
}

/* Item 12: FIFOs, symlinks and directories in new/ are not adopted (and a
 * FIFO does not hang the scan); a symlinked folder is not a folder; an
 * over-long user is an invalid name. */
static void test_path_safety(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
    (void)state;
    assert_int_equal(ops->mailbox_open("safe", &m), PETREL_STORAGE_OK);
    test_folder_dir("safe", "", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/new/fifo.1", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    petrel_snprintf(target, sizeof(target), "%s/outside-file", test_root);
    write_file(target, "Subject: secret\r\n\r\nx\r\n");
    petrel_snprintf(path, sizeof(path), "%s/new/link.2", dir);
    assert_int_equal(symlink(target, path), 0);
    petrel_snprintf(path, sizeof(path), "%s/new/dir.3", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    struct petrel_storage_status st;
    assert_int_equal(ops->status(f, &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 0);
    ops->folder_close(f);
    /* A ".Evil" symlink to another account's Maildir is no folder. */
    char other[PATH_MAX];
    struct petrel_mailbox *m2;
    assert_int_equal(ops->mailbox_open("victim", &m2), PETREL_STORAGE_OK);
    test_folder_dir("victim", "", other, sizeof(other));
    petrel_snprintf(path, sizeof(path), "%s/.Evil", dir);
    assert_int_equal(symlink(other, path), 0);
    assert_int_equal(ops->folder_open(m, "Evil", &f), PETREL_STORAGE_NOT_FOUND);
    ops->mailbox_close(m2);
    ops->mailbox_close(m);
    char user[400];
    memset(user, 'a', 200);
    petrel_strlcpy(user + 200, "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%", sizeof(user) - 200);
    assert_int_equal(ops->mailbox_open(user, &m), PETREL_STORAGE_INVALID_NAME);
}

/* Item 13: STORE beyond PETREL_STORAGE_MAX_KEYWORDS is refused whole. */
static void test_keyword_limit(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    char kw[PETREL_STORAGE_MAX_KEYWORDS * 8];
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("kwl", &m), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    kw[0] = '\0';
    for (int i = 0; i < PETREL_STORAGE_MAX_KEYWORDS; i++) {
        size_t o = strlen(kw);
        petrel_snprintf(kw + o, sizeof(kw) - o, "%sk%d", i ? " " : "", i);
    }
    struct petrel_storage_store add = {PETREL_STORAGE_FLAGS_ADD, 0, kw, 0};
    assert_int_equal(ops->store(f, NULL, &add, NULL, NULL), PETREL_STORAGE_OK);
    struct petrel_storage_store one = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_SEEN, "extra", 0};
    assert_int_equal(ops->store(f, NULL, &one, NULL, NULL), PETREL_STORAGE_INVALID_ARG);
    struct test_msgs t = {.n = 0};
    assert_int_equal(ops->messages(f, NULL, test_collect, &t), PETREL_STORAGE_OK);
    assert_int_equal(t.flags[0], 0); /* nothing changed */
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* Item 13: a delivery whose directory sync fails is not left behind. */
static void test_deliver_fsync_fails(void **state)
{
    struct petrel_mailbox *m;
    char dir[PATH_MAX];
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("dsync", &m), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    fault_set("fsync_dir", 1);
    assert_int_equal(test_deliver(m, NULL, 2, &uid), PETREL_STORAGE_TEMPFAIL);
    fault_clear();
    assert_int_equal(folder_count_msgs(m, "INBOX"), 1);
    test_folder_dir("dsync", "", dir, sizeof(dir));
    assert_int_equal(test_count_files(dir, NULL, 0), 1);
    /* Item 10: creating a folder syncs the new directory entries. */
    fault_set("fsync_dir", 0);
    assert_int_equal(ops->folder_create(m, "Fresh", 0), PETREL_STORAGE_TEMPFAIL);
    fault_clear();
    ops->mailbox_close(m);
    /* ... and so does creating an account. */
    fault_set("fsync_dir", 0);
    assert_int_equal(ops->mailbox_open("brandnew", &m), PETREL_STORAGE_TEMPFAIL);
    fault_clear();
}

/* Item 4: a failed COPY leaves nothing in the destination, not even files
 * that a later scan would adopt; across batches too. MOVE never leaves a
 * message in both folders, and a retry completes it without duplicates. */
static void test_copy_failure(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    char dir[PATH_MAX];
    uint32_t uid, dv;
    (void)state;
    assert_int_equal(ops->mailbox_open("cfail", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 130; i++)
        assert_int_equal(test_deliver(m, NULL, i, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    test_folder_dir("cfail", ".Archive", dir, sizeof(dir));
    struct petrel_storage_uid_range r[] = {{1, 3}};
    struct petrel_storage_uid_set set = {r, 1};
    fault_set("copy_rename", 2);
    assert_int_equal(ops->copy(f, &set, "Archive", NULL, NULL, &dv), PETREL_STORAGE_TEMPFAIL);
    assert_int_equal(test_count_files(dir, NULL, 0), 0);
    /* Second batch fails: the first is taken back. */
    fault_set("copy_rename", 130);
    assert_int_equal(ops->copy(f, NULL, "Archive", NULL, NULL, &dv), PETREL_STORAGE_TEMPFAIL);
    fault_clear();
    assert_int_equal(test_count_files(dir, NULL, 0), 0);
    struct petrel_folder *a;
    assert_int_equal(ops->folder_open(m, "Archive", &a), PETREL_STORAGE_OK);
    assert_int_equal(ops->sync(a), PETREL_STORAGE_OK);
    assert_int_equal(folder_count_msgs(m, "Archive"), 0);
    ops->folder_close(a);
    /* MOVE failing in its second batch: the first batch moved, no message
     * in both; the retry moves the rest. */
    fault_set("copy_rename", 130);
    assert_int_equal(ops->move(f, NULL, "Archive", NULL, NULL, &dv), PETREL_STORAGE_TEMPFAIL);
    fault_clear();
    uint32_t in_src = folder_count_msgs(m, "INBOX"), in_dst = folder_count_msgs(m, "Archive");
    assert_int_equal(in_src + in_dst, 130);
    assert_int_equal(in_dst, 128);
    assert_int_equal(ops->move(f, NULL, "Archive", NULL, NULL, &dv), PETREL_STORAGE_OK);
    assert_int_equal(folder_count_msgs(m, "INBOX"), 0);
    assert_int_equal(folder_count_msgs(m, "Archive"), 130);
    assert_int_equal(test_count_files(dir, NULL, 0), 130);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* Item 2: a STORE between the UID listing and the copy renames the file:
 * the copy still happens, with the current flags. */
static struct petrel_folder *race_folder;

static void race_store(void)
{
    struct petrel_storage_store st = {PETREL_STORAGE_FLAGS_ADD, PETREL_STORAGE_FLAGGED, NULL, 0};
    assert_int_equal(ops->store(race_folder, NULL, &st, NULL, NULL), PETREL_STORAGE_OK);
}

static void test_copy_sees_store(void **state)
{
    struct petrel_mailbox *m;
    uint32_t uid, dv;
    (void)state;
    assert_int_equal(ops->mailbox_open("cstore", &m), PETREL_STORAGE_OK);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(test_deliver(m, NULL, i, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &race_folder), PETREL_STORAGE_OK);
    fault_set("copy_listed", 0);
    fault_action = race_store;
    struct map mp = {.n = 0};
    assert_int_equal(ops->copy(race_folder, NULL, "Trash", map_fn, &mp, &dv), PETREL_STORAGE_OK);
    fault_clear();
    assert_int_equal(mp.n, 3);
    struct petrel_folder *t;
    struct test_msgs msgs = {.n = 0};
    assert_int_equal(ops->folder_open(m, "Trash", &t), PETREL_STORAGE_OK);
    assert_int_equal(ops->messages(t, NULL, test_collect, &msgs), PETREL_STORAGE_OK);
    assert_int_equal(msgs.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(msgs.flags[i], PETREL_STORAGE_FLAGGED);
    ops->folder_close(t);
    ops->folder_close(race_folder);
    ops->mailbox_close(m);
}

/* Item 8: a file moved from new/ to cur/ while the scan read the
 * directories is not recorded as expunged. */
static char moving_from[PATH_MAX], moving_to[PATH_MAX];

static void move_during_scan(void) { assert_int_equal(rename(moving_from, moving_to), 0); }

static void test_scan_rename_race(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    char dir[PATH_MAX], path[PATH_MAX];
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("srace", &m), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    test_folder_dir("srace", "", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/new", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            break;
    assert_non_null(de);
    petrel_snprintf(moving_from, sizeof(moving_from), "%s/new/%s", dir, de->d_name);
    petrel_snprintf(moving_to, sizeof(moving_to), "%s/cur/%s:2,", dir, de->d_name);
    closedir(d);
    fault_set("scan_listed", 0);
    fault_action = move_during_scan;
    assert_int_equal(ops->sync(f), PETREL_STORAGE_OK);
    fault_clear();
    assert_int_equal(folder_count_msgs(m, "INBOX"), 1);
    assert_int_equal(ops->sync(f), PETREL_STORAGE_OK); /* picks up the new place */
    int fd;
    uint64_t size;
    assert_int_equal(ops->fetch_fd(f, uid, &fd, &size), PETREL_STORAGE_OK);
    close(fd);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

/* Item 3: a rename retires the old state; handles on it get NOT_FOUND,
 * the folder works under its new name. */
static void test_rename_open_handle(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f, *g;
    struct petrel_storage_status st;
    uint32_t uid;
    (void)state;
    assert_int_equal(ops->mailbox_open("ren", &m), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_create(m, "Old", 0), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, "Old", 1, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "Old", &f), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_rename(m, "Old", "New"), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(f, &st), PETREL_STORAGE_NOT_FOUND);
    assert_int_equal(ops->folder_open(m, "New", &g), PETREL_STORAGE_OK);
    assert_int_equal(ops->status(g, &st), PETREL_STORAGE_OK);
    assert_int_equal(st.messages, 1);
    assert_string_equal(g->fs->name, "New");
    assert_string_equal(f->fs->name, "Old"); /* never changed under a reader */
    ops->folder_close(f);
    ops->folder_close(g);
    ops->mailbox_close(m);
}

/* Item 11: folder_create is bounded by the folder limit. */
static void test_folder_limit(void **state)
{
    struct petrel_mailbox *m;
    size_t saved = storage_env.max_folders;
    (void)state;
    assert_int_equal(ops->mailbox_open("many", &m), PETREL_STORAGE_OK);
    storage_env.max_folders = 7; /* 5 initial folders */
    assert_int_equal(ops->folder_create(m, "A/B/C", 0), PETREL_STORAGE_TOO_LARGE);
    assert_int_equal(ops->folder_create(m, "A/B", 0), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_create(m, "C", 0), PETREL_STORAGE_TOO_LARGE);
    storage_env.max_folders = saved;
    assert_int_equal(ops->folder_create(m, "C", 0), PETREL_STORAGE_OK);
    ops->mailbox_close(m);
}

/* Item 6: an unreadable UIDNEXT is an error, never UIDNEXT = 1. */
static void test_meta_error(void **state)
{
    struct petrel_mailbox *m;
    struct petrel_folder *f;
    struct petrel_storage_status st;
    char dir[PATH_MAX], path[PATH_MAX + 32];
    uint32_t uid;
    sqlite3 *db;
    (void)state;
    assert_int_equal(ops->mailbox_open("meta", &m), PETREL_STORAGE_OK);
    assert_int_equal(test_deliver(m, NULL, 1, &uid), PETREL_STORAGE_OK);
    assert_int_equal(ops->folder_open(m, "INBOX", &f), PETREL_STORAGE_OK);
    test_folder_dir("meta", "", dir, sizeof(dir));
    petrel_snprintf(path, sizeof(path), "%s/" STORAGE_INDEX_FILE, dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE meta RENAME TO gone", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(ops->status(f, &st), PETREL_STORAGE_TEMPFAIL);
    assert_int_equal(test_deliver(m, NULL, 2, &uid), PETREL_STORAGE_TEMPFAIL);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE gone RENAME TO meta", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(test_deliver(m, NULL, 3, &uid), PETREL_STORAGE_OK);
    assert_int_equal(uid, 2);
    ops->folder_close(f);
    ops->mailbox_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foldername),
        cmocka_unit_test(test_user_path),
        cmocka_unit_test(test_maildir_names),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_matcher),
        cmocka_unit_test_setup_teardown(test_new_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags_modseq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test(test_foldername_canonical),
        cmocka_unit_test_setup_teardown(test_huge_uid_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_safety, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyword_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_fsync_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_sees_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_rename_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_open_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expunged_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
