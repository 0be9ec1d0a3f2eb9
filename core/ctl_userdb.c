/* Finding and rewriting the account file for petrelctl. The path comes
 * from the instance configuration: server.data_dir in petrel.conf and the
 * `file` setting of the conf.d file that enables userdb_file. Only those
 * values are read, so another module's broken conf.d file does not stop
 * account administration. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "ctl_userdb.h"

int ctl_read_conf(config_t *lc, const char *path)
{
    config_init(lc);
    if (config_read_file(lc, path) == CONFIG_TRUE)
        return 0;
    if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
        fprintf(stderr, "petrelctl: %s: %s\n", path, strerror(errno));
    else
        fprintf(stderr, "petrelctl: %s:%d: %s\n", path, config_error_line(lc),
                config_error_text(lc));
    config_destroy(lc);
    return -1;
}

int ctl_conf_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

int ctl_confd_setting(const char *conf, const char *module, const char *name, char *out,
                      size_t size, bool warn)
{
    int r = 0;
    char dir[PATH_MAX], confd[PATH_MAX + 16], key[128];
    petrel_strlcpy(dir, conf, sizeof(dir));
    petrel_snprintf(confd, sizeof(confd), "%s/conf.d", dirname(dir));
    petrel_snprintf(key, sizeof(key), "settings.%s", name);
    struct dirent **names;
    int n = scandir(confd, &names, ctl_conf_filter, alphasort);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX * 2];
        petrel_snprintf(path, sizeof(path), "%s/%s", confd, names[i]->d_name);
        free(names[i]);
        config_t lc;
        config_init(&lc);
        const char *m = NULL, *value = NULL;
        int enabled = 1;
        if (config_read_file(&lc, path) != CONFIG_TRUE) {
            if (warn)
                fprintf(stderr, "petrelctl: warning: %s:%d: %s (not read)\n", path,
                        config_error_line(&lc),
                        config_error_type(&lc) == CONFIG_ERR_FILE_IO ? strerror(errno)
                                                                     : config_error_text(&lc));
        } else if (config_lookup_string(&lc, "module", &m) == CONFIG_TRUE &&
                   strcmp(m, module) == 0) {
            config_lookup_bool(&lc, "enabled", &enabled);
            if (enabled && config_lookup_string(&lc, key, &value) == CONFIG_TRUE &&
                !petrel_strlcpy(out, value, size))
                r = -1;
        }
        config_destroy(&lc);
    }
    if (n >= 0)
        free(names);
    return r;
}

int ctl_data_path(const char *conf, const char *rel, char *out, size_t size)
{
    config_t lc;
    if (ctl_read_conf(&lc, conf) < 0)
        return -1;
    const char *data = PETREL_LOCALSTATEDIR "/lib/petrel";
    config_lookup_string(&lc, "server.data_dir", &data);
    bool ok = rel[0] == '/' ? petrel_strlcpy(out, rel, size)
                            : petrel_snprintf(out, size, "%s/%s", data, rel);
    config_destroy(&lc);
    if (!ok)
        fprintf(stderr, "petrelctl: %s: path too long\n", rel);
    return ok ? 0 : -1;
}

int ctl_userdb_path(const char *conf, char *out, size_t size)
{
    char file[PATH_MAX] = "users";
    ctl_confd_setting(conf, "userdb_file", "file", file, sizeof(file), false);
    return ctl_data_path(conf, file, out, size);
}

/* The whole file, or NULL (printed). Only a regular file is read, and
 * only all of it: a short read must not be taken for the whole file and
 * written back truncated. */
static char *read_all(const char *path, size_t *len_r)
{
    char *text, why[PATH_MAX + 100];
    struct stat st;
    *len_r = 0;
    int r = userdb_read_file(path, &text, len_r, &st, why, sizeof(why));
    if (r == 0)
        return petrel_strdup("");
    if (r < 0)
        fprintf(stderr, "petrelctl: %s\n", why);
    return r > 0 ? text : NULL;
}

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
 * flock(2) accepts as well. */
static int open_lock(const char *lock, const char *path)
{
    int fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
    if (fd >= 0) {
        gid_t gid = file_group(path);
        if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) { /* not our group: keep ours */
        }
        fchmod(fd, 0660);
    } else if (errno == EEXIST) {
        fd = open(lock, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == EACCES)
            fd = open(lock, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    }
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        errno = EINVAL; /* reported as "not a regular file" below */
        return -2;
    }
    return fd;
}

int ctl_userdb_open(struct ctl_userdb *u, const char *conf, bool write)
{
    memset(u, 0, sizeof(*u));
    u->lock_fd = -1;
    if (ctl_userdb_path(conf, u->path, sizeof(u->path)) < 0)
        return -1;
    /* A lock file beside the data, not the data itself: the data file is
     * replaced by rename, so a lock on it would be on the old inode. */
    char lock[PATH_MAX + 8];
    petrel_snprintf(lock, sizeof(lock), "%s.lock", u->path);
    int fd = open_lock(lock, u->path);
    if (fd == -2) {
        fprintf(stderr, "petrelctl: cannot lock %s: not a regular file\n", lock);
        return -1;
    }
    u->lock_fd = fd;
    /* Readers share the lock; a change excludes everyone else. */
    if (u->lock_fd < 0 || flock(u->lock_fd, write ? LOCK_EX : LOCK_SH) < 0) {
        fprintf(stderr, "petrelctl: cannot lock %s: %s\n", lock, strerror(errno));
        return -1;
    }
    size_t len;
    char *text = read_all(u->path, &len);
    if (text == NULL)
        return -1;
    userdb_edit_load(&u->edit, text, len);
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

int ctl_userdb_commit(struct ctl_userdb *u)
{
    if (!u->edit.changed)
        return 0;
    char tmp[PATH_MAX + 16], dir[PATH_MAX];
    /* A fresh name, created exclusively in the same directory: a name
     * planted there in advance (a link to /etc/...) is never opened. */
    if (!petrel_snprintf(tmp, sizeof(tmp), "%s.XXXXXX", u->path)) {
        fprintf(stderr, "petrelctl: account file path too long\n");
        return -1;
    }
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
        fprintf(stderr, "petrelctl: cannot write %s: %s\n", u->path, strerror(errno));
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
    return 0;
}

void ctl_userdb_close(struct ctl_userdb *u)
{
    userdb_edit_free(&u->edit);
    if (u->lock_fd >= 0)
        close(u->lock_fd); /* releases the lock */
    u->lock_fd = -1;
}
