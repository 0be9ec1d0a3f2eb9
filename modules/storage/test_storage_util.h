/* Shared helpers of the storage tests: a scratch root, messages, file
 * listings. Tests call the backend through its ops table, the contract. */
#ifndef TEST_STORAGE_UTIL_H
#define TEST_STORAGE_UTIL_H

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "storage_private.h"

static const struct petrel_storage_ops *ops = &storage_ops;
static char test_root[PATH_MAX];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_root_make(bool do_fsync)
{
    char tmpl[] = "/tmp/petrel-storage-XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        abort();
    petrel_strlcpy(test_root, tmpl, sizeof(test_root));
    storage_configure(test_root, "example.test", do_fsync, STORAGE_SYNC_NORMAL);
}

static void test_root_remove(void)
{
    if (test_root[0] != '\0')
        nftw(test_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A small message numbered n; returns its length. */
static size_t test_message(char *buf, size_t size, unsigned n)
{
    int len = snprintf(buf, size,
                       "From: Sender %u <s%u@example.org>\r\nTo: rcpt@example.test\r\n"
                       "Subject: message number %u\r\n\tfolded part\r\n\r\nBody of message %u.\r\n",
                       n, n, n, n);
    return (size_t)len;
}

static int test_deliver(struct petrel_mailbox *m, const char *folder, unsigned n, uint32_t *uid)
{
    char buf[512];
    uint32_t v;
    struct petrel_storage_source src = {buf, test_message(buf, sizeof(buf), n), -1, 0};
    return ops->deliver(m, folder, &src, NULL, uid, &v);
}

/* Path of a folder's Maildir of user@example.test. */
static void test_folder_dir(const char *user, const char *sub, char *out, size_t size)
{
    petrel_snprintf(out, size, "%s/example.test/%s%s%s", test_root, user, sub[0] ? "/" : "", sub);
}

/* Count the message files of a Maildir and check each carries a UID. */
static size_t test_count_files(const char *dir, uint32_t *uids, size_t max)
{
    static const char *const subs[] = {"new", "cur"};
    char path[PATH_MAX];
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        petrel_snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
        DIR *d = opendir(path);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            struct storage_mdname md;
            if (!storage_maildir_parse(de->d_name, &md))
                continue;
            if (uids != NULL && n < max)
                uids[n] = md.uid;
            n++;
        }
        if (d != NULL)
            closedir(d);
    }
    return n;
}

struct test_msgs {
    uint32_t uid[4096];
    uint32_t flags[4096];
    size_t n;
};

static int test_collect(void *arg, const struct petrel_storage_msg *m)
{
    struct test_msgs *t = arg;
    if (t->n < 4096) {
        t->uid[t->n] = m->uid;
        t->flags[t->n++] = m->flags;
    }
    return 0;
}

#endif
