/* Becoming a daemon: detaching, the pid file, dropping privileges. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "cfg_error.h"
#include "log.h"
#include "runas.h"
#include "server.h"

int petrel_daemon_lookup_user(const struct petrel_config *cfg, uid_t *uid_r, gid_t *gid_r,
                              const char **error_r)
{
    struct passwd *pw = getpwnam(cfg->server.user);
    if (pw == NULL) {
        *error_r =
            petrel_cfg_error("%s: server.user '%s' does not exist", cfg->path, cfg->server.user);
        return -1;
    }
    *uid_r = pw->pw_uid;
    *gid_r = pw->pw_gid;
    if (cfg->server.group != NULL) {
        struct group *gr = getgrnam(cfg->server.group);
        if (gr == NULL) {
            *error_r = petrel_cfg_error("%s: server.group '%s' does not exist", cfg->path,
                                        cfg->server.group);
            return -1;
        }
        *gid_r = gr->gr_gid;
    }
    const char *why = petrel_runas_refusal(cfg->server.user, *uid_r, *gid_r);
    if (why != NULL) {
        *error_r = petrel_cfg_error("%s: server.user '%s' (uid %u, gid %u) %s", cfg->path,
                                    cfg->server.user, (unsigned)*uid_r, (unsigned)*gid_r, why);
        return -1;
    }
    return 0;
}

/* A directory owned by uid:gid with mode, created if missing. It is
 * opened without following a symbolic link, so a link planted in its
 * place cannot hand some other directory to the daemon. */
static int own_dir(const char *path, uid_t uid, gid_t gid, mode_t mode, const char **error_r)
{
    if (mkdir(path, mode & 0777) < 0 && errno != EEXIST) {
        *error_r = petrel_cfg_error("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
        *error_r =
            petrel_cfg_error("cannot set the owner and mode of %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int petrel_daemon_drop(const struct petrel_config *cfg, const char **error_r)
{
    uid_t uid;
    gid_t gid;
    if (geteuid() != 0) {
        petrel_log(PETREL_LOG_INFO, "core", "not started as root: running as uid %u",
                   (unsigned)geteuid());
        return 0;
    }
    if (petrel_daemon_lookup_user(cfg, &uid, &gid, error_r) < 0)
        return -1;
    /* The run directory is the daemon's. data_dir is root's, writable by
     * the group with the sticky bit (as /var/spool/cron/crontabs): the
     * daemon makes its store and queue there and owns them, but cannot
     * remove or rename over what root put there, such as the account
     * file; nobody outside the group gets in at all. */
    if (own_dir(cfg->server.run_dir, uid, gid, 0750, error_r) < 0 ||
        own_dir(cfg->server.data_dir, 0, gid, 01770, error_r) < 0)
        return -1;
    /* The run directory is the daemon's to change from now on: lchown,
     * so a socket swapped for a link changes only the link. */
    if (lchown(cfg->server.control_socket, uid, gid) < 0) {
        *error_r = petrel_cfg_error("cannot chown control socket %s: %s",
                                    cfg->server.control_socket, strerror(errno));
        return -1;
    }
    petrel_log_chown(uid, gid);
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        *error_r =
            petrel_cfg_error("cannot drop privileges to %s: %s", cfg->server.user, strerror(errno));
        return -1;
    }
    /* Make sure there is no way back. */
    if (setuid(0) == 0) {
        *error_r = "privileges could be regained after dropping them";
        return -1;
    }
    petrel_log(PETREL_LOG_INFO, "core", "running as %s (uid %u, gid %u)", cfg->server.user,
               (unsigned)uid, (unsigned)gid);
    return 0;
}

/* Written as root into a directory the daemon user may own: the
 * temporary name is created afresh (O_EXCL, no link followed) and given
 * to that user through its descriptor, then renamed over the old file,
 * so nothing planted under either name is written to or chowned. */
int petrel_daemon_pidfile(const struct petrel_config *cfg, const char **error_r)
{
    const char *path = cfg->server.pid_file;
    char tmp[4096 + 8], buf[32];
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    if (geteuid() == 0 && petrel_daemon_lookup_user(cfg, &uid, &gid, error_r) < 0)
        return -1;
    if (!petrel_snprintf(tmp, sizeof(tmp), "%s.tmp", path)) {
        *error_r = petrel_cfg_error("pid file path %s is too long", path);
        return -1;
    }
    if (unlink(tmp) < 0 && errno != ENOENT)
        goto fail;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (fd < 0)
        goto fail;
    if ((uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) || write(fd, buf, (size_t)len) != len) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        goto fail;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        goto fail;
    }
    return 0;
fail:
    *error_r = petrel_cfg_error("cannot write pid file %s: %s", path, strerror(errno));
    return -1;
}

static int ready_fd = -1; /* to the waiting command, until ready */

/* The command's side: exit 0 once the daemon says it is ready, 1 if it
 * exits first (its error is on our stderr, which it shares until then). */
static void wait_ready(int fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* Ctrl-C stops the waiting, not the daemon */
    unsigned char status = 1;
    ssize_t n;
    do {
        n = read(fd, &status, 1);
    } while (n < 0 && errno == EINTR);
    _exit(n == 1 ? status : 1);
}

int petrel_daemon_detach(const char **error_r)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        *error_r = petrel_cfg_error("pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *error_r = petrel_cfg_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        close(fds[1]);
        wait_ready(fds[0]);
    }
    close(fds[0]);
    setsid();
    pid = fork();
    if (pid < 0) {
        *error_r = petrel_cfg_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        _exit(0);
    ready_fd = fds[1];
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

void petrel_daemon_ready(void)
{
    if (ready_fd < 0)
        return;
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    unsigned char ok = 0;
    if (write(ready_fd, &ok, 1) != 1) {
        /* The command is gone (killed while waiting): nobody to tell. */
    }
    close(ready_fd);
    ready_fd = -1;
}
