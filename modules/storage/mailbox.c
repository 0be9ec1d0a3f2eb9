/* Accounts: a process-wide registry shares one struct storage_account per
 * account directory among all handles, so that every thread sees the same
 * folder states, quota figures and watchers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "storage_private.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct storage_account *registry;
/* Accounts in the registry without a handle (cache_accounts). */
static size_t idle_accounts;
/* The process the registry belongs to. A child of fork() must not touch
 * the SQLite connections it inherited (SQLite forbids it, and POSIX locks
 * are per process): it forgets them, on purpose without closing them
 * (sqlite3_close would checkpoint and release the parent's locks), and
 * opens its own. Accounts are freed with their last handle, so a parent
 * that closed its handles before fork() passes nothing on. */
static pid_t registry_pid;

/* registry_lock held. */
static void registry_check_fork(void)
{
    pid_t pid = getpid();
    if (registry_pid != pid) {
        if (registry != NULL)
            petrel_log(PETREL_LOG_WARNING, STORAGE_LOG,
                       "storage handles inherited across fork() are not used in the child");
        registry = NULL; /* inherited states are leaked, never used */
        registry_pid = pid;
        idle_accounts = 0;
    }
}

void storage_mailbox_path(const struct storage_account *acct, const char *name, char *out,
                          size_t size)
{
    char dir[STORAGE_MAX_FILENAME + 1];
    if (!storage_foldername_to_dir(name, dir, sizeof(dir)) ||
        !petrel_snprintf(out, size, "%s%s%s", acct->path, dir[0] ? "/" : "", dir))
        out[0] = '\0';
}

static void account_free(struct storage_account *a);

static struct storage_account *account_get(const char *path)
{
    struct storage_account *a;
    pthread_mutex_lock(&registry_lock);
    registry_check_fork();
    for (a = registry; a != NULL; a = a->next)
        if (strcmp(a->path, path) == 0)
            break;
    if (a != NULL && a->refs == 0) {
        idle_accounts--;
        if (access(a->path, F_OK) != 0) { /* removed behind our back: start afresh */
            for (struct storage_account **p = &registry; *p != NULL; p = &(*p)->next)
                if (*p == a) {
                    *p = a->next;
                    break;
                }
            account_free(a);
            a = NULL;
        }
    }
    if (a == NULL) {
        a = petrel_calloc(1, sizeof(*a));
        a->path = petrel_strdup(path);
        a->pid = getpid();
        pthread_mutex_init(&a->lock, NULL);
        pthread_mutex_init(&a->quota_lock, NULL);
        pthread_mutex_init(&a->watch_lock, NULL);
        a->next = registry;
        registry = a;
    }
    a->refs++;
    pthread_mutex_unlock(&registry_lock);
    return a;
}

static void account_free(struct storage_account *a)
{
    while (a->folders != NULL) {
        struct storage_fstate *fs = a->folders;
        a->folders = fs->next;
        if (fs->refs != 0)
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "%s: closed with folder %s still open",
                       a->path, fs->name);
        storage_index_close(fs);
        pthread_mutex_destroy(&fs->lock);
        free(fs->name);
        free(fs->dir);
        free(fs);
    }
    if (a->db != NULL)
        sqlite3_close(a->db);
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->quota_lock);
    pthread_mutex_destroy(&a->watch_lock);
    free(a->path);
    free(a);
}

static void account_put(struct storage_account *a)
{
    pthread_mutex_lock(&registry_lock);
    if (a->pid != getpid()) {
        /* A handle from before fork(): the parent's, left alone. */
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    if (--a->refs > 0) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    if (storage_env.cache_accounts > 0) {
        /* Stays open for the next handle; the account idle the longest
         * goes when the cache is full. */
        static uint64_t seq;
        a->idle_seq = ++seq;
        if (++idle_accounts <= storage_env.cache_accounts) {
            pthread_mutex_unlock(&registry_lock);
            return;
        }
        for (struct storage_account *o = registry; o != NULL; o = o->next)
            if (o->refs == 0 && o->idle_seq < a->idle_seq)
                a = o;
        idle_accounts--;
    }
    for (struct storage_account **p = &registry; *p != NULL; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
    account_free(a);
}

void storage_mailbox_flush_cache(void)
{
    struct storage_account *idle = NULL;
    pthread_mutex_lock(&registry_lock);
    for (struct storage_account **p = &registry; *p != NULL;) {
        struct storage_account *a = *p;
        if (a->refs == 0 && a->pid == getpid()) {
            *p = a->next;
            a->next = idle;
            idle = a;
        } else {
            p = &a->next;
        }
    }
    idle_accounts = 0;
    pthread_mutex_unlock(&registry_lock);
    while (idle != NULL) {
        struct storage_account *a = idle;
        idle = a->next;
        account_free(a);
    }
}

/* mkdir -p for the levels below the root (root/domain). */
static int make_parents(const char *path)
{
    char tmp[PATH_MAX];
    if (!petrel_strlcpy(tmp, path, sizeof(tmp)))
        return PETREL_STORAGE_INVALID_NAME;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) == 0) {
            /* The new entry is durable once its parent is. */
            int ret = storage_maildir_fsync_parent(tmp);
            if (ret != PETREL_STORAGE_OK)
                return ret;
        } else if (errno != EEXIST) {
            petrel_log(PETREL_LOG_ERROR, STORAGE_LOG, "mkdir %s: %s", tmp, strerror(errno));
            return errno == ENAMETOOLONG ? PETREL_STORAGE_INVALID_NAME : PETREL_STORAGE_TEMPFAIL;
        }
        *p = '/';
    }
    return PETREL_STORAGE_OK;
}

void storage_mailbox_hold(struct storage_account *acct)
{
    pthread_mutex_lock(&registry_lock);
    if (acct->pid == getpid())
        acct->refs++;
    pthread_mutex_unlock(&registry_lock);
}

void storage_mailbox_release(struct storage_account *acct) { account_put(acct); }

int storage_mailbox_open(const char *user, struct petrel_mailbox **mbox_r)
{
    char rel[PATH_MAX], path[PATH_MAX];
    int ret;
    if (user == NULL || !storage_foldername_user_path(user, storage_env.domain, rel, sizeof(rel)) ||
        !petrel_snprintf(path, sizeof(path), "%s/%s", storage_env.root, rel))
        return PETREL_STORAGE_INVALID_NAME;
    if ((ret = make_parents(path)) != PETREL_STORAGE_OK)
        return ret;
    struct storage_account *a = account_get(path);
    pthread_mutex_lock(&a->lock);
    ret = a->db != NULL ? PETREL_STORAGE_OK : storage_folder_init_account(a);
    pthread_mutex_unlock(&a->lock);
    if (ret != PETREL_STORAGE_OK) {
        account_put(a);
        return ret;
    }
    struct petrel_mailbox *m = petrel_calloc(1, sizeof(*m));
    m->acct = a;
    *mbox_r = m;
    return PETREL_STORAGE_OK;
}

void storage_mailbox_close(struct petrel_mailbox *mbox)
{
    if (mbox == NULL)
        return;
    account_put(mbox->acct);
    free(mbox);
}
