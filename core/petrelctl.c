/* petrelctl: administers a running petreld over its control socket,
 * writes new instances (`petrelctl init`) and edits the account file
 * (domain, account, alias and forward commands: ctl_accounts.c). */
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
#include <petrel/mem.h>

#include "ctl_accounts.h"
#include "ctl_queue.h"
#include "instance.h"

#define REPLY_TIMEOUT_MS 30000 /* a reload may load certificates and modules */
#define REPLY_MAX (1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: petrelctl [--config FILE] COMMAND\n"
            "commands for the running server:\n"
            "  status     version, uptime, connections, worker load\n"
            "  reload     re-read the configuration (refused if it is broken)\n"
            "  stop       stop gracefully\n"
            "  modules    loaded modules, their versions and listeners\n"
            "  stats      core and module counters\n"
            "commands that work offline:\n"
            "  init DIR [--domain D] [--port-base N] [--module-path P] [--user U]\n"
            "             write a ready instance into DIR; the daemon runs as U, by\n"
            "             default as petrel when run as root (created if missing),\n"
            "             else as you\n"
            "account commands (edit the userdb_file account file; a running server\n"
            "picks the change up by itself):\n"
            "  domain add DOMAIN [--catchall ADDRESS] | del DOMAIN | list\n"
            "  domain catchall DOMAIN ADDRESS|none\n"
            "  account add ADDRESS [--quota SIZE] [--messages N]\n"
            "  account del ADDRESS | list [DOMAIN] | passwd ADDRESS\n"
            "  account quota ADDRESS SIZE|none [N|none] | disable ADDRESS | enable ADDRESS\n"
            "  alias add ADDRESS TARGET... | del ADDRESS [TARGET...] | list [DOMAIN]\n"
            "  forward set ADDRESS TARGET... [--keep] | clear ADDRESS\n"
            "  Passwords are asked for on the terminal, or read as one line from\n"
            "  standard input; never given on the command line.\n"
            "queue commands (act on the queue files; a running server follows\n"
            "within a second):\n"
            "  queue list | show ID | flush [ID] | delete ID | hold ID | release ID\n"
            "default FILE: %s\n",
            PETREL_SYSCONFDIR "/petrel.conf");
}

/* Only the control socket's path is needed, so a conf.d mistake does not
 * stop the administrator from talking to the running daemon. */
static int socket_path(const char *conf, char *out, size_t size)
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

static int send_command(const char *conf, const char *cmd)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (socket_path(conf, sun.sun_path, sizeof(sun.sun_path)) < 0)
        return 1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        fprintf(stderr, "petrelctl: cannot reach petreld at %s: %s\n", sun.sun_path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char line[256];
    int len = snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(fd, line, (size_t)len) != len) {
        fprintf(stderr, "petrelctl: write: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    /* The reply ends with a line "OK" or "ERR reason". */
    struct petrel_buf reply;
    petrel_buf_init(&reply, REPLY_MAX);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        size_t room;
        char *space = petrel_buf_space(&reply, 4096, &room);
        if (room == 0 || poll(&p, 1, REPLY_TIMEOUT_MS) != 1) {
            fprintf(stderr, "petrelctl: no complete reply from petreld\n");
            break;
        }
        ssize_t n = read(fd, space, room);
        if (n <= 0)
            break;
        petrel_buf_commit(&reply, (size_t)n);
    }
    close(fd);
    fwrite(petrel_buf_head(&reply), 1, reply.len, stdout);
    const char *text = petrel_buf_head(&reply);
    bool ok = reply.len >= 3 && memcmp(text + reply.len - 3, "OK\n", 3) == 0 &&
              (reply.len == 3 || text[reply.len - 4] == '\n');
    petrel_buf_free(&reply);
    return ok ? 0 : 1;
}

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
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
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

int main(int argc, char **argv)
{
    const char *conf = PETREL_SYSCONFDIR "/petrel.conf";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            conf = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[i], "init") == 0)
        return cmd_init(argc - i, argv + i);
    int rc = ctl_accounts_main(conf, argc - i, argv + i);
    if (rc < 0)
        rc = ctl_queue_main(conf, argc - i, argv + i);
    if (rc >= 0)
        return rc;
    static const char *const commands[] = {"status", "reload", "stop", "modules", "stats"};
    for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
        if (strcmp(argv[i], commands[k]) == 0 && i == argc - 1)
            return send_command(conf, commands[k]);
    }
    fprintf(stderr, "petrelctl: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
