/* The account file under an administrator's lock, for the admin commands
 * that petrelctl runs with the administrator's rights (the file is
 * root's; the daemon may only read it): locked against other petrelctl
 * runs, read whole, rewritten atomically. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "userdb_file.h"

/* The group a new file beside path should have: the data file's, else its
 * directory's. -1 if neither can be found. */
static gid_t file_group(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return st.st_gid;
    char dir[PATH_MAX];
    petrel_strlcpy(dir, path, sizeof(dir));
    return stat(dirname(dir), &st) == 0 ? st.st_gid : (gid_t)-1;
}

/* The lock file, never through a symbolic link (the daemon's user owns the
 * directory and could plant one for root to follow). A new one is 0660 in
 * the file's group, so an administrator running as the daemon's user can
 * lock it too; an existing one we cannot write is opened read-only, which
 * flock(2) accepts as well. -2: not a regular file. */
static int open_lock(const char *lock, const char *path)
{
    int fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
    if (fd >= 0) {
        gid_t gid = file_group(path);
        if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) { /* not our group: keep ours */
        }
        if (fchmod(fd, 0660) < 0) { /* the umask's mode still locks */
        }
    } else if (errno == EEXIST) {
        fd = open(lock, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == EACCES)
            fd = open(lock, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    }
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        return -2;
    }
    return fd;
}

int userdb_locked_open(struct userdb_locked *u, const char *path, bool write, char *why,
                       size_t why_size)
{
    memset(u, 0, sizeof(*u));
    u->lock_fd = -1;
    if (!petrel_strlcpy(u->path, path, sizeof(u->path))) {
        petrel_snprintf(why, why_size, "account file path too long");
        return -1;
    }
    /* A lock file beside the data, not the data itself: the data file is
     * replaced by rename, so a lock on it would be on the old inode. */
    char lock[sizeof(u->path) + 8];
    petrel_snprintf(lock, sizeof(lock), "%s.lock", u->path);
    int fd = open_lock(lock, u->path);
    if (fd == -2) {
        petrel_snprintf(why, why_size, "cannot lock %s: not a regular file", lock);
        return -1;
    }
    u->lock_fd = fd;
    /* Readers share the lock; a change excludes everyone else. */
    if (u->lock_fd < 0 || flock(u->lock_fd, write ? LOCK_EX : LOCK_SH) < 0) {
        petrel_snprintf(why, why_size, "cannot lock %s: %s", lock, strerror(errno));
        return -1;
    }
    /* Only a regular file is read, and only all of it: a short read must
     * not be taken for the whole file and written back truncated. */
    char *text;
    size_t len = 0;
    struct stat st;
    int r = userdb_read_file(u->path, &text, &len, &st, why, why_size);
    if (r < 0)
        return -1;
    userdb_edit_load(&u->edit, r > 0 ? text : "", len);
    if (r > 0)
        free(text);
    return 0;
}

static int write_fd(int fd, const char *text, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* A new file keeps the old one's mode, group and (when we are root, who
 * may) owner; a first file is 0640 in the group of its directory, so the
 * daemon's group can read it. False if that cannot be done. */
static bool copy_owner(int fd, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (fchmod(fd, st.st_mode & 07777) < 0)
            return false;
        if (geteuid() == 0)
            return fchown(fd, st.st_uid, st.st_gid) == 0;
        if (fchown(fd, (uid_t)-1, st.st_gid) < 0) { /* not in that group: keep ours */
        }
        return true;
    }
    gid_t gid = file_group(path);
    if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) {
    }
    return fchmod(fd, 0640) == 0;
}

int userdb_locked_commit(struct userdb_locked *u, char *why, size_t why_size)
{
    if (!u->edit.changed)
        return 0;
    char tmp[sizeof(u->path) + 16], dir[sizeof(u->path)];
    /* A fresh name, created exclusively in the same directory: a name
     * planted there in advance (a link to /etc/...) is never opened. */
    petrel_snprintf(tmp, sizeof(tmp), "%s.XXXXXX", u->path);
    size_t len;
    char *text = userdb_edit_text(&u->edit, &len);
    int fd = mkostemp(tmp, O_CLOEXEC);
    bool ok = fd >= 0;
    if (ok)
        ok = copy_owner(fd, u->path) && write_fd(fd, text, len) == 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    free(text);
    if (!ok || rename(tmp, u->path) < 0) {
        petrel_snprintf(why, why_size, "cannot write %s: %s", u->path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
        return -1;
    }
    /* The rename is durable once the directory is. */
    petrel_strlcpy(dir, u->path, sizeof(dir));
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 1;
}

void userdb_locked_close(struct userdb_locked *u)
{
    userdb_edit_free(&u->edit);
    if (u->lock_fd >= 0)
        close(u->lock_fd); /* releases the lock */
    u->lock_fd = -1;
}
