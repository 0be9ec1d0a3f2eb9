/* The control socket petrelctl talks to (frames: ctl_frame.h). The socket
 * is served on the first I/O thread: a request is read into a bounded
 * buffer under a timeout, run (a module's command on a worker; the
 * core's status, modules, reload and stop on the main thread, which owns
 * the listeners and reloads), and its reply, gathered in memory, is sent
 * back by the I/O thread, again under a timeout. Nothing here blocks. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <petrel/buf.h>
#include <petrel/log.h>
#include <petrel/loop.h>
#include <petrel/mem.h>
#include <petrel/stats.h>

#include "admin_private.h"
#include "cfg_error.h"
#include "ctl_frame.h"
#include "iothread.h"
#include "server.h"

#define CTL_READ_TIMEOUT_MS 5000   /* for the whole request */
#define CTL_WRITE_TIMEOUT_MS 30000 /* without progress on the reply */
#define CTL_REPLY_MAX (64 * 1024 * 1024)
#define CTL_CLIENTS_MAX 64

struct ctl_client {
    int fd;
    struct petrel_io *io;
    struct petrel_timer *timer;
    struct petrel_buf in, out;
    struct petrel_ctl_request req;
    bool cut; /* the reply outgrew CTL_REPLY_MAX */
    struct ctl_client *prev, *next, *next_main;
};

static int ctl_fd = -1;
static char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct petrel_io *ctl_io;
static atomic_bool ctl_closing;
/* On the first loop's thread only. */
static struct ctl_client *clients;
static unsigned nclients;
/* Commands for the main thread, and the eventfd that wakes it. */
static pthread_mutex_t main_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ctl_client *main_queue;
static int main_fd = -1;

/* --- the socket ------------------------------------------------------------ */

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
    if (r < 0 || listen(ctl_fd, CTL_CLIENTS_MAX) < 0) {
        *error_r = petrel_cfg_error("control socket %s: %s", sun.sun_path, strerror(errno));
        if (ctl_fd >= 0)
            close(ctl_fd);
        ctl_fd = -1;
        return -1;
    }
    petrel_strlcpy(ctl_path, sun.sun_path, sizeof(ctl_path));
    main_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (main_fd < 0) {
        *error_r = petrel_cfg_error("eventfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* --- clients on the first loop --------------------------------------------- */

static void client_unwatch(struct ctl_client *c);

static void client_free(struct ctl_client *c)
{
    if (c->io != NULL)
        client_unwatch(c);
    close(c->fd);
    petrel_buf_free(&c->in);
    petrel_buf_free(&c->out);
    petrel_ctl_request_free(&c->req);
    free(c);
}

/* Watch c's socket for events, with a deadline. */
static bool client_watch(struct ctl_client *c, unsigned events, petrel_io_fn *fn,
                         petrel_timer_fn *expired, unsigned ms)
{
    c->io = petrel_io_add(c->fd, events, fn, c);
    if (c->io == NULL)
        return false;
    c->timer = petrel_timer_add(NULL, ms, false, expired, c);
    c->prev = NULL;
    c->next = clients;
    if (clients != NULL)
        clients->prev = c;
    clients = c;
    nclients++;
    return true;
}

static void client_unwatch(struct ctl_client *c)
{
    petrel_io_remove(c->io);
    c->io = NULL;
    petrel_timer_remove(c->timer);
    c->timer = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    nclients--;
}

static void send_expired(void *arg)
{
    petrel_log(PETREL_LOG_WARNING, "core", "control: petrelctl did not read its reply; dropped");
    client_free(arg);
}

/* Write what is left of the reply; true when all of it is gone (or the
 * peer is). */
static bool send_some(struct ctl_client *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, petrel_buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        if (n <= 0)
            return true;
        petrel_buf_consume(&c->out, (size_t)n);
    }
    return true;
}

static void on_writable(struct petrel_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    struct ctl_client *c = arg;
    if (send_some(c))
        client_free(c);
    else
        petrel_timer_reset(c->timer, CTL_WRITE_TIMEOUT_MS);
}

/* On the first loop: send the rest of a reply. */
static void send_rest(void *arg)
{
    struct ctl_client *c = arg;
    if (atomic_load(&ctl_closing) ||
        !client_watch(c, PETREL_IO_OUT, on_writable, send_expired, CTL_WRITE_TIMEOUT_MS))
        client_free(c);
}

/* The reply is complete: most fit in the socket's buffer at once; the rest
 * goes out from the first loop. Any thread. */
static void reply_done(struct ctl_client *c, int status)
{
    if (c->cut) {
        static const char why[] = "petrelctl: the reply was cut: run the command with the "
                                  "server stopped, or narrow it\n";
        c->out.max = SIZE_MAX; /* room for the last frames */
        petrel_ctl_frame_put(&c->out, PETREL_CTL_STDERR, why, sizeof(why) - 1);
        status = status == 0 ? 1 : status;
    }
    unsigned char st = (unsigned char)status;
    c->out.max = SIZE_MAX;
    petrel_ctl_frame_put(&c->out, PETREL_CTL_EXIT, &st, 1);
    if (send_some(c))
        client_free(c);
    else
        petrel_loop_post(petrel_loop_get(0), send_rest, c);
}

/* --- running a command --------------------------------------------------- */

static void reply_write(void *arg, int stream, const char *data, size_t len)
{
    struct ctl_client *c = arg;
    int type = stream == PETREL_ADMIN_STDERR ? PETREL_CTL_STDERR : PETREL_CTL_STDOUT;
    while (len > 0 && !c->cut) {
        size_t n = len < PETREL_CTL_REPLY_FRAME_MAX - 1 ? len : PETREL_CTL_REPLY_FRAME_MAX - 1;
        if (!petrel_ctl_frame_put(&c->out, type, data, n))
            c->cut = true;
        data += n;
        len -= n;
    }
}

/* The core's own commands (docs/petrelctl.md): their text is the
 * documented "name value" lines ending in OK. None takes arguments
 * (checked before they run). */

static void stat_line(const char *name, int64_t value, void *arg)
{
    struct petrel_admin_call *call = arg;
    petrel_admin_print(call, "%s %lld\n", name, (long long)value);
    petrel_admin_str(call, "name", name);
    petrel_admin_int(call, "value", value);
    petrel_admin_row_end(call);
}

static int run_stats(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    petrel_stats_foreach(stat_line, call);
    petrel_admin_print(call, "OK\n");
    return 0;
}

static int run_status(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    size_t conns = 0, queued, running, nlisteners = 0;
    for (unsigned i = 0; i < petrel_server.nthreads; i++)
        conns += atomic_load(&petrel_server.threads[i].nconns);
    petrel_workers_load(&queued, &running);
    for (struct petrel_listener *l = petrel_server.listeners; l != NULL; l = l->next)
        nlisteners++;
    long long uptime = (long long)(time(NULL) - petrel_server.started);
    petrel_admin_print(call,
                       "version %s\npid %d\nuptime %lld\nconfig %s\nio_threads %u\n"
                       "workers %lld\njobs_queued %zu\njobs_running %zu\nlisteners %zu\n"
                       "connections %zu\nOK\n",
                       PACKAGE_VERSION, (int)getpid(), uptime, petrel_server.cfg->path,
                       petrel_server.nthreads, petrel_server.cfg->server.workers, queued, running,
                       nlisteners, conns);
    petrel_admin_str(call, "version", PACKAGE_VERSION);
    petrel_admin_int(call, "pid", getpid());
    petrel_admin_int(call, "uptime", uptime);
    petrel_admin_str(call, "config", petrel_server.cfg->path);
    petrel_admin_int(call, "io_threads", petrel_server.nthreads);
    petrel_admin_int(call, "workers", petrel_server.cfg->server.workers);
    petrel_admin_int(call, "jobs_queued", (int64_t)queued);
    petrel_admin_int(call, "jobs_running", (int64_t)running);
    petrel_admin_int(call, "listeners", (int64_t)nlisteners);
    petrel_admin_int(call, "connections", (int64_t)conns);
    petrel_admin_row_end(call);
    return 0;
}

static int run_modules(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next) {
        const char *version = m->mod->version ? m->mod->version : "-";
        long conns = atomic_load(&m->connections);
        petrel_admin_print(call, "module %s %s %s connections=%ld\n", m->name, version, m->path,
                           conns);
        const char *addrs[64];
        size_t n = 0;
        for (struct petrel_listener *l = petrel_server.listeners; l != NULL; l = l->next) {
            if (l->module != m)
                continue;
            petrel_admin_print(call, "  listener %s protocol=%s tls=%s\n", l->address,
                               l->proto->name, l->cfg->tls);
            if (n < sizeof(addrs) / sizeof(addrs[0]))
                addrs[n++] = l->address;
        }
        petrel_admin_str(call, "module", m->name);
        petrel_admin_str(call, "version", m->mod->version);
        petrel_admin_str(call, "path", m->path);
        petrel_admin_int(call, "connections", conns);
        petrel_admin_list(call, "listeners", addrs, n);
        petrel_admin_row_end(call);
    }
    petrel_admin_print(call, "OK\n");
    return 0;
}

static int run_reload(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *error = NULL;
    if (petrel_server_reload(&error) < 0) {
        if (petrel_admin_json(call))
            return petrel_admin_fail(call, "reload refused: %s", error);
        petrel_admin_print(call, "ERR reload refused: %s\n", error);
        return 1;
    }
    petrel_admin_print(call, "OK\n");
    return 0;
}

static int run_stop(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    petrel_server_request_stop();
    petrel_admin_print(call, "OK\n");
    return 0;
}

#define CORE (PETREL_ADMIN_ONLINE | PETREL_ADMIN_OWN_TEXT)
static const struct petrel_admin_command core_commands[] = {
    {"status", "", "version, uptime, connections, worker load", CORE, run_status},
    {"reload", "", "re-read the configuration (refused if it is broken)", CORE, run_reload},
    {"stop", "", "stop gracefully", CORE, run_stop},
    {"modules", "", "loaded modules, their versions and listeners", CORE, run_modules},
    {"stats", "", "core and module counters", CORE, run_stats},
    {NULL, NULL, NULL, 0, NULL},
};

static const struct petrel_admin_command *core_command(const char *word)
{
    for (const struct petrel_admin_command *c = core_commands; c->name != NULL; c++)
        if (strcmp(c->name, word) == 0)
            return c;
    return NULL;
}

/* Run c's request and reply: on a worker, or the main thread. */
static void run_request(void *arg)
{
    struct ctl_client *c = arg;
    struct petrel_ctl_request *r = &c->req;
    struct petrel_admin_io io = {.write = reply_write, .arg = c};
    struct petrel_admin_found f = {.cmd = core_command(r->argv[0]), .words = 1};
    int found = f.cmd != NULL ? 1 : petrel_admin_find(r->argc, r->argv, &f);
    int status;
    if (f.ctx == NULL && f.cmd != NULL && r->argc != 1) {
        static const char use[] = "petrelctl: the server's own commands take no arguments\n";
        reply_write(c, PETREL_ADMIN_STDERR, use, sizeof(use) - 1);
        status = 2;
    } else if (found == 0) {
        status = petrel_admin_group_usage(f.ctx, r->argv[0], &io);
    } else if (found < 0 || !(f.cmd->flags & PETREL_ADMIN_ONLINE)) {
        /* petrelctl found it in the configuration on disk. */
        struct petrel_buf b;
        petrel_buf_init(&b, 4096);
        petrel_buf_printf(&b,
                          "petrelctl: the running server has no command '%.100s' (is its "
                          "configuration older than the files? petrelctl reload)\n",
                          found < 0 ? r->argv[0] : f.cmd->name);
        reply_write(c, PETREL_ADMIN_STDERR, petrel_buf_head(&b), b.len);
        petrel_buf_free(&b);
        status = 1;
    } else {
        status = petrel_admin_exec(&f, r->argc - f.words, r->argv + f.words, r->json, true,
                                   r->secret, &io);
    }
    reply_done(c, status);
}

/* --- reading a request ------------------------------------------------------ */

static void read_expired(void *arg)
{
    petrel_log(PETREL_LOG_WARNING, "core", "control: no complete request within %d s: dropped",
               CTL_READ_TIMEOUT_MS / 1000);
    client_free(arg);
}

static void refuse(struct ctl_client *c, const char *why)
{
    petrel_log(PETREL_LOG_WARNING, "core", "control: %s: dropped", why);
    char line[128];
    int n = snprintf(line, sizeof(line), "petrelctl: petreld refused the request: %s\n", why);
    reply_write(c, PETREL_ADMIN_STDERR, line, (size_t)n);
    reply_done(c, 1);
}

/* Whether the main thread runs it: what touches listeners and reloads. */
static bool on_main_thread(const char *word)
{
    const struct petrel_admin_command *cmd = core_command(word);
    return cmd != NULL && cmd->run != run_stats;
}

static void log_request(const struct petrel_ctl_request *r)
{
    char line[512];
    size_t len = 0;
    line[0] = '\0';
    for (int i = 0; i < r->argc && len < sizeof(line) - 1; i++) {
        int n = snprintf(line + len, sizeof(line) - len, "%s%s", i ? " " : "", r->argv[i]);
        len = n < 0 ? len : len + (size_t)n;
    }
    petrel_log(PETREL_LOG_INFO, "core", "control: %s%s", line, r->json ? " (json)" : "");
}

static void dispatch(struct ctl_client *c)
{
    client_unwatch(c);
    log_request(&c->req);
    if (on_main_thread(c->req.argv[0])) {
        pthread_mutex_lock(&main_lock);
        bool closing = main_fd < 0;
        if (!closing) {
            c->next_main = main_queue;
            main_queue = c;
            uint64_t one = 1;
            if (write(main_fd, &one, sizeof(one)) < 0) { /* already signalled */
            }
        }
        pthread_mutex_unlock(&main_lock);
        if (closing)
            refuse(c, "the server is stopping");
    } else if (!petrel_worker_submit(run_request, c)) {
        static const char busy[] = "petrelctl: petreld is too busy (no worker free): try "
                                   "again\n";
        reply_write(c, PETREL_ADMIN_STDERR, busy, sizeof(busy) - 1);
        reply_done(c, 1);
    }
}

static void on_readable(struct petrel_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    struct ctl_client *c = arg;
    size_t room;
    char *space = petrel_buf_space(&c->in, 4096, &room);
    ssize_t n = room > 0 ? recv(c->fd, space, room, 0) : 0;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 && room > 0) {
        client_free(c); /* gone before asking */
        return;
    }
    petrel_buf_commit(&c->in, (size_t)n);
    const char *why;
    int r = petrel_ctl_request_parse(petrel_buf_head(&c->in), c->in.len, &c->req, &why);
    if (r > 0) {
        dispatch(c);
    } else if (r < 0 || room == 0) {
        client_unwatch(c);
        refuse(c, r < 0 ? why : "request too long");
    }
}

static void on_accept(struct petrel_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    (void)arg;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (nclients >= CTL_CLIENTS_MAX) {
            petrel_log(PETREL_LOG_WARNING, "core",
                       "control: %d requests waiting already: one more refused", CTL_CLIENTS_MAX);
            close(fd);
            continue;
        }
        struct ctl_client *c = petrel_calloc(1, sizeof(*c));
        c->fd = fd;
        petrel_buf_init(&c->in, PETREL_CTL_REQUEST_MAX);
        petrel_buf_init(&c->out, CTL_REPLY_MAX);
        if (!client_watch(c, PETREL_IO_IN, on_readable, read_expired, CTL_READ_TIMEOUT_MS)) {
            petrel_log(PETREL_LOG_ERROR, "core", "control: cannot watch a client: %s",
                       strerror(errno));
            client_free(c);
        }
    }
}

static void watch_socket(void *arg)
{
    (void)arg;
    if (atomic_load(&ctl_closing))
        return;
    ctl_io = petrel_io_add(ctl_fd, PETREL_IO_IN, on_accept, NULL);
    if (ctl_io == NULL)
        petrel_log(PETREL_LOG_ERROR, "core", "control socket: cannot watch it: %s",
                   strerror(errno));
}

void petrel_ctl_serve(void) { petrel_loop_post(petrel_loop_get(0), watch_socket, NULL); }

int petrel_ctl_main_fd(void) { return main_fd; }

/* The main thread's requests, oldest first (the queue is built newest
 * first); with closing, the main fd is closed under the lock, so no
 * request can be queued after. */
static struct ctl_client *main_take(bool closing)
{
    pthread_mutex_lock(&main_lock);
    uint64_t n;
    if (main_fd >= 0 && read(main_fd, &n, sizeof(n)) < 0) { /* nothing pending */
    }
    struct ctl_client *list = main_queue, *rev = NULL;
    main_queue = NULL;
    if (closing && main_fd >= 0) {
        close(main_fd);
        main_fd = -1;
    }
    pthread_mutex_unlock(&main_lock);
    while (list != NULL) {
        struct ctl_client *next = list->next_main;
        list->next_main = rev;
        rev = list;
        list = next;
    }
    return rev;
}

void petrel_ctl_main_run(void)
{
    for (struct ctl_client *c = main_take(false), *next; c != NULL; c = next) {
        next = c->next_main;
        run_request(c);
    }
}

/* On the first loop: stop accepting and drop what is waiting there. */
static void unwatch_socket(void *arg)
{
    (void)arg;
    if (ctl_io != NULL)
        petrel_io_remove(ctl_io);
    ctl_io = NULL;
    while (clients != NULL)
        client_free(clients);
    close(ctl_fd);
    ctl_fd = -1;
}

void petrel_ctl_close(void)
{
    if (ctl_fd < 0)
        return;
    atomic_store(&ctl_closing, true);
    unlink(ctl_path);
    for (struct ctl_client *c = main_take(true), *next; c != NULL; c = next) {
        next = c->next_main;
        static const char why[] = "petrelctl: petreld is stopping\n";
        reply_write(c, PETREL_ADMIN_STDERR, why, sizeof(why) - 1);
        reply_done(c, 1);
    }
    struct petrel_loop *first = petrel_loop_get(0);
    if (first != NULL) {
        petrel_loop_post(first, unwatch_socket, NULL);
    } else {
        close(ctl_fd);
        ctl_fd = -1;
    }
}
