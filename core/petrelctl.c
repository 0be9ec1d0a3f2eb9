/* petrelctl: the administrator's command. The core's own commands talk to
 * the running petreld over its control socket; `init` writes a new
 * instance; every other command belongs to a module (petrel/admin.h) and
 * runs in the daemon when it runs and the command allows, else here, with
 * the configuration and the module loaded as the daemon loads them but
 * nothing started. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <petrel/buf.h>
#include <petrel/log.h>
#include <petrel/mem.h>

#include "admin_private.h"
#include "cfg.h"
#include "ctl_frame.h"
#include "ctl_password.h"
#include "instance.h"
#include "log.h"
#include "server.h"

#define REPLY_TIMEOUT_MS 60000 /* of silence: a reload may load certificates */

static const char *conf = PETREL_SYSCONFDIR "/petrel.conf";
static int connect_errno = ECONNREFUSED; /* why no daemon answered */

/* The core's own commands: they need the running server. */
static const struct {
    const char *name, *help;
} core_commands[] = {
    {"status", "version, uptime, connections, worker load"},
    {"reload", "re-read the configuration (refused if it is broken)"},
    {"stop", "stop gracefully"},
    {"modules", "loaded modules, their versions and listeners"},
    {"stats", "core and module counters"},
};
#define NCORE (sizeof(core_commands) / sizeof(core_commands[0]))

/* --- output ---------------------------------------------------------------- */

static void put(void *arg, int stream, const char *data, size_t len)
{
    (void)arg;
    FILE *f = stream == PETREL_ADMIN_STDERR ? stderr : stdout;
    if (f == stderr)
        fflush(stdout); /* in the order written */
    fwrite(data, 1, len, f);
}

/* --- the control socket ------------------------------------------------------ */

/* Only the control socket's path is needed here, so a conf.d mistake does
 * not stop the administrator from talking to the running daemon. */
static int socket_path(char *out, size_t size)
{
    config_t lc;
    config_init(&lc);
    if (config_read_file(&lc, conf) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            fprintf(stderr, "petrelctl: %s: %s\n", conf, strerror(errno));
        else
            fprintf(stderr, "petrelctl: %s:%d: %s\n", conf, config_error_line(&lc),
                    config_error_text(&lc));
        config_destroy(&lc);
        return -1;
    }
    const char *sock = NULL, *run = PETREL_RUNSTATEDIR "/petrel";
    config_lookup_string(&lc, "server.control_socket", &sock);
    config_lookup_string(&lc, "server.run_dir", &run);
    bool ok = sock != NULL ? petrel_strlcpy(out, sock, size)
                           : petrel_snprintf(out, size, "%s/control.sock", run);
    config_destroy(&lc);
    if (!ok)
        fprintf(stderr, "petrelctl: control socket path too long\n");
    return ok ? 0 : -1;
}

/* A connection to the daemon: the descriptor; -1 when none runs (no
 * socket, or nobody listening: petrelctl may work offline); -2 for any
 * other failure (said). */
static int daemon_connect(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (socket_path(sun.sun_path, sizeof(sun.sun_path)) < 0)
        return -2;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
        return fd;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (e == ENOENT || e == ECONNREFUSED) {
        connect_errno = e;
        return -1;
    }
    fprintf(stderr, "petrelctl: cannot reach petreld at %s: %s\n", sun.sun_path, strerror(e));
    return -2;
}

static void say_unreachable(void)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (socket_path(path, sizeof(path)) == 0)
        fprintf(stderr, "petrelctl: cannot reach petreld at %s: %s\n", path,
                strerror(connect_errno));
}

static bool write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Send words to the daemon on fd (closed here) and hand its output to
 * out. The command's exit status, or 1 if the exchange failed (said). */
static int daemon_run(int fd, int argc, char *const *argv, bool json, const char *secret,
                      void (*out)(void *arg, int stream, const char *data, size_t len), void *arg)
{
    struct petrel_buf b;
    petrel_buf_init(&b, PETREL_CTL_REQUEST_MAX);
    bool ok = true;
    for (int i = 0; i < argc; i++)
        ok = ok && petrel_ctl_frame_put(&b, PETREL_CTL_WORD, argv[i], strlen(argv[i]));
    if (json)
        ok = ok && petrel_ctl_frame_put(&b, PETREL_CTL_JSON, "", 0);
    if (secret != NULL)
        ok = ok && petrel_ctl_frame_put(&b, PETREL_CTL_SECRET, secret, strlen(secret));
    ok = ok && petrel_ctl_frame_put(&b, PETREL_CTL_END, "", 0);
    if (!ok || argc > PETREL_CTL_WORDS_MAX) {
        fprintf(stderr, "petrelctl: the command is too long to send\n");
        explicit_bzero(b.data, b.cap);
        petrel_buf_free(&b);
        close(fd);
        return 1;
    }
    ok = write_all(fd, petrel_buf_head(&b), b.len);
    explicit_bzero(b.data, b.cap);
    petrel_buf_free(&b);
    int status = -1;
    petrel_buf_init(&b, PETREL_CTL_REPLY_FRAME_MAX + 8);
    while (ok && status < 0) {
        int type;
        const char *p;
        size_t n;
        ssize_t used;
        while ((used = petrel_ctl_frame_next(petrel_buf_head(&b), b.len, PETREL_CTL_REPLY_FRAME_MAX,
                                             &type, &p, &n)) > 0) {
            if (type == PETREL_CTL_EXIT && n == 1)
                status = (unsigned char)p[0];
            else if (type == PETREL_CTL_STDOUT || type == PETREL_CTL_STDERR)
                out(arg, type == PETREL_CTL_STDERR ? PETREL_ADMIN_STDERR : PETREL_ADMIN_STDOUT, p,
                    n);
            petrel_buf_consume(&b, (size_t)used);
            if (status >= 0)
                break;
        }
        if (used < 0 || status >= 0)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        size_t room;
        char *space = petrel_buf_space(&b, 65536, &room);
        ssize_t got = poll(&pf, 1, REPLY_TIMEOUT_MS) == 1 ? read(fd, space, room) : -1;
        if (got <= 0)
            break;
        petrel_buf_commit(&b, (size_t)got);
    }
    petrel_buf_free(&b);
    close(fd);
    if (status < 0) {
        fprintf(stderr, "petrelctl: no complete reply from petreld\n");
        return 1;
    }
    return status;
}

/* --- module commands here ------------------------------------------------------ */

static char *read_secret(void *arg, const char **error_r)
{
    (void)arg;
    return ctl_password_read(error_r);
}

/* petrel_admin_daemon() from a command run here: the daemon's output is
 * kept and shown only if it fails. */
static void keep_stderr(void *arg, int stream, const char *data, size_t len)
{
    if (stream == PETREL_ADMIN_STDERR)
        petrel_buf_append(arg, data, len);
}

static int run_in_daemon(void *arg, int argc, const char *const *argv)
{
    (void)arg;
    int fd = daemon_connect();
    if (fd == -1)
        return 0;
    if (fd < 0)
        return -1;
    struct petrel_buf err;
    petrel_buf_init(&err, 1024 * 1024);
    int status = daemon_run(fd, argc, (char *const *)argv, false, NULL, keep_stderr, &err);
    if (status != 0)
        fwrite(petrel_buf_head(&err), 1, err.len, stderr);
    petrel_buf_free(&err);
    return status == 0 ? 1 : -1;
}

static const struct petrel_admin_io local_io = {
    .write = put, .read_secret = read_secret, .daemon = run_in_daemon};

/* The configuration and its modules, as the daemon loads them, without
 * init: nothing is started, bound or created. */
static struct petrel_config *load_config(void)
{
    const char *error;
    if (petrel_log_configure(PETREL_LOG_TO_STDERR, NULL, PETREL_LOG_WARNING, NULL, 0, &error) < 0)
        fprintf(stderr, "petrelctl: %s\n", error);
    struct petrel_config *cfg = petrel_config_load(conf, &error);
    if (cfg == NULL) {
        fprintf(stderr, "petrelctl: %s\n", error);
        return NULL;
    }
    petrel_server.cfg = cfg;
    if (petrel_modules_load(cfg, false, &error) < 0) {
        fprintf(stderr, "petrelctl: %s\n", error);
        return NULL;
    }
    return cfg;
}

static void unload_config(void)
{
    petrel_config_unref(petrel_server.cfg);
    petrel_server.cfg = NULL;
    petrel_modules_unload();
    petrel_log_shutdown();
}

static int unknown(int argc, char **argv)
{
    char module[64];
    if (petrel_server.cfg != NULL &&
        petrel_module_probe_admin(petrel_server.cfg, argc, argv, module, sizeof(module)) == 0) {
        fprintf(stderr,
                "petrelctl: '%s' is a command of the module %s, which is not enabled in %s "
                "(conf.d)\n",
                argv[0], module, conf);
        return 1;
    }
    fprintf(stderr, "petrelctl: unknown command '%s' (petrelctl help lists them)\n", argv[0]);
    return 2;
}

/* An ONLINE command sent to the daemon on fd (closed here), with its
 * secret read first. */
static int run_online(int fd, int argc, char **argv, bool json, unsigned flags)
{
    char *secret = NULL;
    if (flags & PETREL_ADMIN_SECRET) {
        const char *error;
        secret = read_secret(NULL, &error);
        if (secret == NULL) {
            fprintf(stderr, "petrelctl: %s\n", error);
            close(fd);
            return 1;
        }
    }
    int rc = daemon_run(fd, argc, argv, json, secret, put, NULL);
    if (secret != NULL)
        ctl_password_free(secret);
    return rc;
}

static int module_command(int argc, char **argv, bool json)
{
    if (load_config() == NULL) {
        unload_config();
        return 1;
    }
    struct petrel_admin_found f;
    int found = petrel_admin_find(argc, argv, &f), rc, fd = -1;
    unsigned flags = found == 1 ? f.cmd->flags : 0;
    if (found < 0)
        rc = unknown(argc, argv);
    else if (found == 0)
        rc = petrel_admin_group_usage(f.ctx, argv[0], &local_io);
    else if (!(flags & PETREL_ADMIN_LOCAL) && (flags & PETREL_ADMIN_ONLINE) &&
             (fd = daemon_connect()) != -1)
        rc = fd < 0 ? 1 : run_online(fd, argc, argv, json, flags);
    else if (flags & (PETREL_ADMIN_OFFLINE | PETREL_ADMIN_LOCAL))
        rc = petrel_admin_exec(&f, argc - f.words, argv + f.words, json, false, NULL, &local_io);
    else {
        fprintf(stderr, "petrelctl: '%s' needs the running server\n", f.cmd->name);
        say_unreachable();
        rc = 1;
    }
    fflush(stdout);
    unload_config();
    return rc;
}

/* --- help ------------------------------------------------------------------- */

static void help_line(FILE *f, const char *name, const char *usage, const char *text,
                      const char *module)
{
    char words[128];
    petrel_snprintf(words, sizeof(words), "%s%s%s", name, usage[0] != '\0' ? " " : "", usage);
    fprintf(f, "  %-40s %s%s%s%s\n", words, text, module ? " (" : "", module ? module : "",
            module ? ")" : "");
}

static void usage(FILE *f, bool modules)
{
    fprintf(f, "usage: petrelctl [--config FILE] [--json] COMMAND [ARGS]\n"
               "commands for the running server:\n");
    for (size_t k = 0; k < NCORE; k++)
        help_line(f, core_commands[k].name, "", core_commands[k].help, NULL);
    fprintf(f, "commands that work offline:\n");
    help_line(f, "init", "DIR [--domain D] [--port-base N] [--module-path P] [--user U]",
              "write a ready instance into DIR", NULL);
    help_line(f, "help", "", "this list, with the enabled modules' commands", NULL);
    if (modules && load_config() != NULL) {
        fprintf(f, "commands of the enabled modules (run in the server when it runs and the "
                   "command can, else here):\n");
        for (struct petrel_ctx *m = petrel_server.modules; m != NULL; m = m->next)
            for (const struct petrel_admin_command *c = petrel_admin_table(m->mod);
                 c != NULL && c->name != NULL; c++)
                help_line(f, c->name, c->usage, c->help, m->name);
        fprintf(f, "Secrets (passwords) are asked for on the terminal, or read as one line "
                   "from standard input; never given on the command line.\n");
    }
    if (modules)
        unload_config();
    fprintf(f, "--json prints listings as one JSON object a line.\ndefault FILE: %s\n",
            PETREL_SYSCONFDIR "/petrel.conf");
}

/* --- init -------------------------------------------------------------------- */

static int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"domain", required_argument, NULL, 'd'},
        {"port-base", required_argument, NULL, 'p'},
        {"module-path", required_argument, NULL, 'm'},
        {"user", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    struct petrel_instance_opts o = {
        .domain = "example.test", .port_base = 0, .module_path = PETREL_MODULEDIR};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:p:m:u:", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd':
            o.domain = optarg;
            break;
        case 'p':
            errno = 0;
            o.port_base = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0') {
                fprintf(stderr, "petrelctl: --port-base takes a number\n");
                return 2;
            }
            break;
        case 'm':
            o.module_path = optarg;
            break;
        case 'u':
            o.user = optarg;
            break;
        default:
            usage(stderr, false);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr, false);
        return 2;
    }
    o.dir = argv[optind];
    if (strlen(o.domain) > 253 ||
        strspn(o.domain, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(o.domain)) {
        fprintf(stderr, "petrelctl: --domain '%s' is not a domain name\n", o.domain);
        return 2;
    }
    const char *error;
    if (petrel_instance_init(&o, &error) < 0) {
        fprintf(stderr, "petrelctl: init: %s\n", error);
        return 1;
    }
    return 0;
}

/* --- main ----------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    bool json = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            conf = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, true);
            return 0;
        } else {
            usage(stderr, false);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr, false);
        return 2;
    }
    argc -= i;
    argv += i;
    if (strcmp(argv[0], "init") == 0) {
        if (!json)
            return cmd_init(argc, argv);
        fprintf(stderr, "petrelctl: init lists nothing: --json does not apply\n");
        return 2;
    }
    /* --json may also come last, as scripts often add it. */
    if (argc > 1 && strcmp(argv[argc - 1], "--json") == 0) {
        json = true;
        argv[--argc] = NULL;
    }
    if (strcmp(argv[0], "help") == 0 && argc == 1) {
        usage(stdout, true);
        return 0;
    }
    for (size_t k = 0; k < NCORE; k++) {
        if (strcmp(argv[0], core_commands[k].name) != 0)
            continue;
        if (argc != 1) {
            fprintf(stderr, "usage: petrelctl [--config FILE] [--json] %s\n", argv[0]);
            return 2;
        }
        int fd = daemon_connect();
        if (fd == -1)
            say_unreachable();
        return fd < 0 ? 1 : daemon_run(fd, argc, argv, json, NULL, put, NULL);
    }
    return module_command(argc, argv, json);
}
