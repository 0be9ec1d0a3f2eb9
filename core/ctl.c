/* The control socket petrelctl talks to: one command line in, a reply out,
 * ending with "OK" or "ERR reason". Served on the main thread: commands are
 * rare and short, and reload must run there anyway. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <petrel/buf.h>
#include <petrel/log.h>
#include <petrel/mem.h>

#include "cfg_error.h"
#include "iothread.h"
#include "server.h"
#include "stats_core.h"

#define CTL_LINE_MAX 1024
#define CTL_REPLY_MAX (1024 * 1024)
#define CTL_IO_TIMEOUT_MS 2000

static int ctl_fd = -1;
static char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

int petrel_ctl_fd(void) { return ctl_fd; }

static bool socket_in_use(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool used = fd >= 0 && connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    if (fd >= 0)
        close(fd);
    return used;
}

static int ctl_address(const struct petrel_config *cfg, struct sockaddr_un *sun,
                       const char **error_r)
{
    *sun = (struct sockaddr_un){.sun_family = AF_UNIX};
    if (!petrel_strlcpy(sun->sun_path, cfg->server.control_socket, sizeof(sun->sun_path))) {
        *error_r =
            petrel_cfg_error("control socket path %s is too long", cfg->server.control_socket);
        return -1;
    }
    if (socket_in_use(sun)) {
        *error_r = petrel_cfg_error("%s: another petreld is already running with this "
                                    "configuration",
                                    sun->sun_path);
        return -1;
    }
    return 0;
}

int petrel_ctl_check(const struct petrel_config *cfg, const char **error_r)
{
    struct sockaddr_un sun;
    return ctl_address(cfg, &sun, error_r);
}

int petrel_ctl_open(const struct petrel_config *cfg, const char **error_r)
{
    struct sockaddr_un sun;
    if (ctl_address(cfg, &sun, error_r) < 0)
        return -1;
    unlink(sun.sun_path); /* left over from a crash */
    ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0177); /* created 0600: the socket is the admin's door */
    int r = ctl_fd < 0 ? -1 : bind(ctl_fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (r < 0 || listen(ctl_fd, 16) < 0) {
        *error_r = petrel_cfg_error("control socket %s: %s", sun.sun_path, strerror(errno));
        if (ctl_fd >= 0)
            close(ctl_fd);
        ctl_fd = -1;
        return -1;
    }
    petrel_strlcpy(ctl_path, sun.sun_path, sizeof(ctl_path));
    return 0;
}

void petrel_ctl_close(void)
{
    if (ctl_fd < 0)
        return;
    close(ctl_fd);
    unlink(ctl_path);
    ctl_fd = -1;
}

static void reply_status(struct petrel_buf *out)
{
    size_t conns = 0, queued, running;
    for (unsigned i = 0; i < petrel_server.nthreads; i++)
        conns += atomic_load(&petrel_server.threads[i].nconns);
    petrel_workers_load(&queued, &running);
    size_t nlisteners = 0;
    for (struct petrel_listener *l = petrel_server.listeners; l != NULL; l = l->next)
        nlisteners++;
    petrel_buf_printf(out,
                      "version %s\npid %d\nuptime %lld\nconfig %s\nio_threads %u\n"
                      "workers %lld\njobs_queued %zu\njobs_running %zu\nlisteners %zu\n"
                      "connections %zu\n",
                      PACKAGE_VERSION, (int)getpid(),
                      (long long)(time(NULL) - petrel_server.started), petrel_server.cfg->path,
                      petrel_server.nthreads, petrel_server.cfg->server.workers, queued, running,
                      nlisteners, conns);
}

static void reply_modules(struct petrel_buf *out)
{
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        petrel_buf_printf(out, "module %s %s %s connections=%ld\n", m->name,
                          m->mod->version ? m->mod->version : "-", m->path,
                          atomic_load(&m->connections));
        for (struct petrel_listener *l = petrel_server.listeners; l != NULL; l = l->next) {
            if (l->module == m)
                petrel_buf_printf(out, "  listener %s protocol=%s tls=%s\n", l->address,
                                  l->proto->name, l->cfg->tls);
        }
    }
}

static void stat_line(const char *name, int64_t value, void *ctx)
{
    petrel_buf_printf(ctx, "%s %lld\n", name, (long long)value);
}

static void run_command(const char *cmd, struct petrel_buf *out)
{
    const char *error = NULL;
    if (strcmp(cmd, "status") == 0) {
        reply_status(out);
    } else if (strcmp(cmd, "modules") == 0) {
        reply_modules(out);
    } else if (strcmp(cmd, "stats") == 0) {
        petrel_stats_foreach(stat_line, out);
    } else if (strcmp(cmd, "reload") == 0) {
        if (petrel_server_reload(&error) < 0) {
            petrel_buf_printf(out, "ERR reload refused: %s\n", error);
            return;
        }
    } else if (strcmp(cmd, "stop") == 0) {
        petrel_server_request_stop();
    } else {
        petrel_buf_printf(out,
                          "ERR unknown command '%.64s' (status, reload, stop, modules, "
                          "stats)\n",
                          cmd);
        return;
    }
    petrel_buf_printf(out, "OK\n");
}

static bool wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, CTL_IO_TIMEOUT_MS) == 1;
}

static void serve(int fd)
{
    char line[CTL_LINE_MAX + 1];
    size_t len = 0;
    while (len < CTL_LINE_MAX && memchr(line, '\n', len) == NULL) {
        if (!wait_fd(fd, POLLIN))
            return;
        ssize_t n = read(fd, line + len, CTL_LINE_MAX - len);
        if (n <= 0)
            return;
        len += (size_t)n;
    }
    char *nl = memchr(line, '\n', len);
    if (nl == NULL)
        return;
    *nl = '\0';
    if (nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
    petrel_log(PETREL_LOG_INFO, "core", "control: %s", line);
    struct petrel_buf out;
    petrel_buf_init(&out, CTL_REPLY_MAX);
    run_command(line, &out);
    while (out.len > 0 && wait_fd(fd, POLLOUT)) {
        ssize_t n = write(fd, petrel_buf_head(&out), out.len);
        if (n <= 0)
            break;
        petrel_buf_consume(&out, (size_t)n);
    }
    petrel_buf_free(&out);
}

void petrel_ctl_accept(void)
{
    for (int i = 0; i < 16; i++) {
        int fd = accept4(ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        serve(fd);
        close(fd);
    }
}
