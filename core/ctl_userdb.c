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

#define FILE_MAX (1024L * 1024 * 1024)

static int read_conf(config_t *lc, const char *path)
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

static int conf_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

/* The `file` setting of the enabled userdb_file conf.d file, into out
 * (left alone when there is none or it does not set one). */
static void confd_file_setting(const char *conf, char *out, size_t size)
{
    char dir[PATH_MAX];
    petrel_strlcpy(dir, conf, sizeof(dir));
    char confd[PATH_MAX + 16];
    petrel_snprintf(confd, sizeof(confd), "%s/conf.d", dirname(dir));
    struct dirent **names;
    int n = scandir(confd, &names, conf_filter, alphasort);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX * 2];
        petrel_snprintf(path, sizeof(path), "%s/%s", confd, names[i]->d_name);
        free(names[i]);
        config_t lc;
        config_init(&lc);
        const char *module = NULL, *file = NULL;
        int enabled = 1;
        if (config_read_file(&lc, path) == CONFIG_TRUE &&
            config_lookup_string(&lc, "module", &module) == CONFIG_TRUE &&
            strcmp(module, "userdb_file") == 0) {
            config_lookup_bool(&lc, "enabled", &enabled);
            if (enabled && config_lookup_string(&lc, "settings.file", &file) == CONFIG_TRUE)
                petrel_strlcpy(out, file, size);
        }
        config_destroy(&lc);
    }
    if (n >= 0)
        free(names);
}

int ctl_userdb_path(const char *conf, char *out, size_t size)
{
    config_t lc;
    if (read_conf(&lc, conf) < 0)
        return -1;
    const char *data = PETREL_LOCALSTATEDIR "/lib/petrel";
    config_lookup_string(&lc, "server.data_dir", &data);
    char file[PATH_MAX] = "users";
    confd_file_setting(conf, file, sizeof(file));
    bool ok = file[0] == '/' ? petrel_strlcpy(out, file, size)
                             : petrel_snprintf(out, size, "%s/%s", data, file);
    config_destroy(&lc);
    if (!ok)
        fprintf(stderr, "petrelctl: account file path too long\n");
    return ok ? 0 : -1;
}

static char *read_all(const char *path, size_t *len_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        if (errno != ENOENT)
            fprintf(stderr, "petrelctl: %s: %s\n", path, strerror(errno));
        *len_r = 0;
        return errno == ENOENT ? petrel_strdup("") : NULL;
    }
    if (fstat(fd, &st) < 0 || st.st_size > FILE_MAX) {
        fprintf(stderr, "petrelctl: %s: cannot read\n", path);
        close(fd);
        return NULL;
    }
    char *text = petrel_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    ssize_t n;
    while (got < (size_t)st.st_size &&
           ((n = read(fd, text + got, (size_t)st.st_size - got)) > 0 || (n < 0 && errno == EINTR)))
        got += n > 0 ? (size_t)n : 0;
    close(fd);
    text[got] = '\0';
    *len_r = got;
    return text;
}

int ctl_userdb_open(struct ctl_userdb *u, const char *conf)
{
    memset(u, 0, sizeof(*u));
    u->lock_fd = -1;
    if (ctl_userdb_path(conf, u->path, sizeof(u->path)) < 0)
        return -1;
    /* A lock file beside the data, not the data itself: the data file is
     * replaced by rename, so a lock on it would be on the old inode. */
    char lock[PATH_MAX + 8];
    petrel_snprintf(lock, sizeof(lock), "%s.lock", u->path);
    u->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (u->lock_fd < 0 || flock(u->lock_fd, LOCK_EX) < 0) {
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

/* A new file keeps the old one's mode and group; a first file is 0640 in
 * the group of its directory, so the daemon's group can read it. */
static void copy_owner(int fd, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        fchmod(fd, st.st_mode & 07777);
        if (fchown(fd, (uid_t)-1, st.st_gid) < 0) { /* not in that group: keep ours */
        }
        return;
    }
    char dir[PATH_MAX];
    petrel_strlcpy(dir, path, sizeof(dir));
    fchmod(fd, 0640);
    if (stat(dirname(dir), &st) == 0 && fchown(fd, (uid_t)-1, st.st_gid) < 0) {
    }
}

int ctl_userdb_commit(struct ctl_userdb *u)
{
    if (!u->edit.changed)
        return 0;
    char tmp[PATH_MAX + 8], dir[PATH_MAX];
    petrel_snprintf(tmp, sizeof(tmp), "%s.tmp", u->path);
    size_t len;
    char *text = userdb_edit_text(&u->edit, &len);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    if (ok) {
        copy_owner(fd, u->path);
        ok = write_fd(fd, text, len) == 0 && fsync(fd) == 0;
    }
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    free(text);
    if (!ok || rename(tmp, u->path) < 0) {
        fprintf(stderr, "petrelctl: cannot write %s: %s\n", u->path, strerror(errno));
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
