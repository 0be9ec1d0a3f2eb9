/* `petrelctl init DIR`: a ready-to-run instance in one directory, used by
 * the quick start, the tests and the benchmarks. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <petrel/buf.h>
#include <petrel/mem.h>
#include <petrel/password.h>

#include "cfg_error.h"
#include "instance.h"
#include "runas.h"
#include "selfsigned.h"

#define CONF_MAX 65536
#define DEMO_PASSWORD_LEN 16

static int make_dir(const char *path, const char **error_r)
{
    if (mkdir(path, 0750) < 0 && errno != EEXIST) {
        *error_r = petrel_cfg_error("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Write the whole file under a temporary name, fsync, rename. */
static int write_file(const char *path, const struct petrel_buf *content, mode_t mode,
                      const char **error_r)
{
    char tmp[PATH_MAX + 8];
    petrel_snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    bool ok = fd >= 0 &&
              write(fd, petrel_buf_head(content), content->len) == (ssize_t)content->len &&
              fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0) {
        *error_r = petrel_cfg_error("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The account the daemon drops to: --user; as root the petrel account
 * (ensure_run_user creates it); otherwise the caller, as whom a daemon
 * not started as root keeps running. */
static const char *run_user(const struct petrel_instance_opts *o)
{
    if (o->user != NULL)
        return o->user;
    if (geteuid() != 0) {
        struct passwd *pw = getpwuid(geteuid());
        return pw != NULL ? pw->pw_name : PETREL_RUNAS_USER;
    }
    return PETREL_RUNAS_USER;
}

/* The first of two paths that is an executable, else fallback. */
static const char *executable(const char *a, const char *b, const char *fallback)
{
    return access(a, X_OK) == 0 ? a : access(b, X_OK) == 0 ? b : fallback;
}

/* As Debian's postinsts make their daemons' accounts: a system user with
 * a group of its own, no home and no login shell. */
static int create_system_user(const char *name, const char **error_r)
{
    const char *tool = executable("/usr/sbin/useradd", "/sbin/useradd", NULL);
    const char *shell = executable("/usr/sbin/nologin", "/sbin/nologin", "/bin/false");
    if (tool == NULL) {
        *error_r = petrel_cfg_error("no useradd to create the system user %s: create it, or "
                                    "give --user",
                                    name);
        return -1;
    }
    char *const argv[] = {
        (char *)tool,   "--system", "--user-group", "--no-create-home", "--home-dir",
        "/nonexistent", "--shell",  (char *)shell,  (char *)name,       NULL};
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(tool, argv);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    /* Another init may have made it meanwhile: what counts is that it is there. */
    struct passwd *pw = getpwnam(name);
    if (pw == NULL) {
        *error_r = petrel_cfg_error("cannot create the system user %s (%s exited with status "
                                    "%d): create it, or give --user",
                                    name, tool, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    printf("Created the system user %s (uid %u) for the daemon\n", name, (unsigned)pw->pw_uid);
    return 0;
}

/* As root, the run user must exist (the instance is shared with its group)
 * and be an account petreld accepts; the default one is created. The
 * caller's own account is not checked: as itself the daemon drops nothing. */
static int ensure_run_user(const struct petrel_instance_opts *o, const char **error_r)
{
    const char *user = run_user(o);
    struct passwd *pw = getpwnam(user);
    if (pw == NULL && geteuid() == 0 && o->user == NULL)
        return create_system_user(user, error_r);
    if (pw == NULL && geteuid() == 0) {
        *error_r = petrel_cfg_error("--user %s: no such user", user);
        return -1;
    }
    const char *why = pw != NULL && (geteuid() == 0 || o->user != NULL)
                          ? petrel_runas_refusal(user, pw->pw_uid, pw->pw_gid)
                          : NULL;
    if (why != NULL) {
        *error_r = petrel_cfg_error("user %s %s", user, why);
        return -1;
    }
    return 0;
}

static void write_conf(struct petrel_buf *b, const struct petrel_instance_opts *o, const char *dir)
{
    petrel_buf_printf(
        b,
        "# Petrel instance written by `petrelctl init` (port base %ld).\n"
        "# Run it: petreld --config %s/petrel.conf --foreground\n"
        "# Modules are enabled by the files in conf.d/, read in name order.\n"
        "\n"
        "server: {\n"
        "  primary_domain = \"%s\";\n"
        "  user = \"%s\";\n"
        "  data_dir = \"%s/data\";\n"
        "  run_dir = \"%s/run\";\n"
        "  module_path = \"%s\";\n"
        "  shutdown_timeout = \"10s\";\n"
        "  # Limits against a crowd of clients (docs/limits.md). Every listener\n"
        "  # also takes at most 50 connections at once and 300 a minute from one\n"
        "  # address (an IPv6 client counts by its /64): peer_max_connections and\n"
        "  # peer_max_interval_connections. exempt_networks are free of those two.\n"
        "  max_connections = 0;           # in all; 0: what the open-file limit allows\n"
        "  exempt_networks = [ \"127.0.0.1\", \"::1\" ];\n"
        "  message_memory = \"64M\";       # message data held in memory, server-wide\n"
        "};\n"
        "\n"
        "log: {\n"
        "  target = \"stderr\";\n"
        "  level = \"info\";\n"
        "};\n"
        "\n"
        "tls: {\n"
        "  certificate = \"%s/tls/cert.pem\";\n"
        "  key = \"%s/tls/key.pem\";\n"
        "  min_protocol = \"TLSv1.2\";\n"
        "};\n"
        "\n"
        "# Global access rules; services and listeners may add their own.\n"
        "rules = (\n"
        "  { action = \"allow\"; ips = [\"127.0.0.0/8\", \"::1\"]; priority = 100; }\n"
        ");\n",
        o->port_base, dir, o->domain, run_user(o), dir, dir, o->module_path, dir, dir);
}

/* --- conf.d: one file per in-tree module, in start order --- */

/* The shipped snippets listen on every address at standard ports (up to
 * 1024); an instance listens on loopback at port_base + the standard port.
 * Other listeners are left as they are. */
static void localize(const char *text, long port_base, struct petrel_buf *b)
{
    static const char key[] = "address = \"";
    const char *p = text, *a;
    while ((a = strstr(p, key)) != NULL) {
        const char *v = a + sizeof(key) - 1, *q = strchr(v, '"'), *colon = NULL;
        for (const char *c = v; q != NULL && c < q; c++)
            if (*c == ':')
                colon = c;
        long port = colon != NULL ? strtol(colon + 1, NULL, 10) : -1;
        petrel_buf_append(b, p, (size_t)(v - p));
        if (port > 0 && port <= 1024) {
            petrel_buf_printf(b, "127.0.0.1:%ld", port_base + port);
            p = q;
        } else {
            p = v;
        }
    }
    petrel_buf_append(b, p, strlen(p));
}

static int write_confd(const char *dir, long port_base, const char **error_r)
{
    for (const struct petrel_confd_snippet *c = petrel_confd_snippets; c->name != NULL; c++) {
        char path[PATH_MAX + 64];
        petrel_snprintf(path, sizeof(path), "%s/conf.d/%s", dir, c->name);
        struct petrel_buf b;
        petrel_buf_init(&b, CONF_MAX);
        localize(c->text, port_base, &b);
        int r = write_file(path, &b, 0644, error_r);
        petrel_buf_free(&b);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* --- the account file with the demo account --- */

/* Letters and digits that cannot be misread for each other. */
static int demo_password(char *out, size_t len, const char **error_r)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char rnd[DEMO_PASSWORD_LEN];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        *error_r = petrel_cfg_error("no random bytes: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < len; i++) /* 256 % 56 bias: negligible for a demo */
        out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    out[len] = '\0';
    return 0;
}

static int write_users(const char *dir, const struct petrel_instance_opts *o, char *password,
                       const char **error_r)
{
    if (demo_password(password, DEMO_PASSWORD_LEN, error_r) < 0)
        return -1;
    char *hash = petrel_password_hash(password, PETREL_PASSWORD_YESCRYPT, error_r);
    if (hash == NULL)
        return -1;
    struct petrel_buf b;
    petrel_buf_init(&b, CONF_MAX);
    petrel_buf_printf(&b,
                      "# Petrel accounts (docs/userdb_file.md). Edit with petrelctl, or by "
                      "hand:\n"
                      "# one entry a line; the server reloads the file when it changes.\n"
                      "domain %s\n"
                      "account demo@%s %s\n"
                      "# RFC 5321 section 4.5.1: every mail domain has a postmaster.\n"
                      "alias postmaster@%s demo@%s\n",
                      o->domain, o->domain, hash, o->domain, o->domain);
    free(hash);
    char path[PATH_MAX + 64];
    petrel_snprintf(path, sizeof(path), "%s/data/users", dir);
    /* Root gives it to the run user's group below; otherwise the daemon
     * runs as its owner. */
    int r = write_file(path, &b, geteuid() == 0 ? 0640 : 0600, error_r);
    petrel_buf_free(&b);
    return r;
}

/* Started as root, petreld reads its configuration, key and accounts
 * again after dropping to the run user: root owns them, the run user's
 * group reads them, nobody else. data_dir is root's too, writable by the
 * group with the sticky bit (as petreld keeps it): the daemon makes its
 * store and queue there, but cannot replace the account file. */
static int share_with_run_group(const char *dir, const char *user, const char **error_r)
{
    struct passwd *pw = getpwnam(user);
    if (geteuid() != 0 || pw == NULL)
        return 0;
    static const struct {
        const char *path;
        mode_t mode;
    } files[] = {
        {"", 0750},
        {"/conf.d", 0750},
        {"/tls", 0750},
        {"/tls/key.pem", 0640},
        {"/tls/cert.pem", 0640},
        {"/petrel.conf", 0640},
        {"/data", 01770},
        {"/data/users", 0640},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[PATH_MAX + 64];
        petrel_snprintf(path, sizeof(path), "%s%s", dir, files[i].path);
        if (chown(path, 0, pw->pw_gid) < 0 || chmod(path, files[i].mode) < 0) {
            *error_r = petrel_cfg_error("cannot share %s with group %u: %s", path,
                                        (unsigned)pw->pw_gid, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int petrel_instance_init(const struct petrel_instance_opts *o, const char **error_r)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], key[PATH_MAX + 64], host[300];
    if (o->port_base < 0 || o->port_base > 65535 - 1024) {
        *error_r = petrel_cfg_error("--port-base must be between 0 and %d", 65535 - 1024);
        return -1;
    }
    if (make_dir(o->dir, error_r) < 0)
        return -1;
    if (realpath(o->dir, dir) == NULL) {
        *error_r = petrel_cfg_error("%s: %s", o->dir, strerror(errno));
        return -1;
    }
    petrel_snprintf(path, sizeof(path), "%s/petrel.conf", dir);
    if (access(path, F_OK) == 0) {
        *error_r = petrel_cfg_error("%s already exists: not overwriting an instance", path);
        return -1;
    }
    if (ensure_run_user(o, error_r) < 0)
        return -1;
    static const char *const subdirs[] = {"conf.d", "data", "run", "tls"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        petrel_snprintf(key, sizeof(key), "%s/%s", dir, subdirs[i]);
        if (make_dir(key, error_r) < 0)
            return -1;
    }
    petrel_snprintf(host, sizeof(host), "mail.%s", o->domain);
    petrel_snprintf(key, sizeof(key), "%s/tls/key.pem", dir);
    char cert[PATH_MAX + 64];
    petrel_snprintf(cert, sizeof(cert), "%s/tls/cert.pem", dir);
    if (petrel_selfsigned_write(host, cert, key, error_r) < 0)
        return -1;
    struct petrel_buf conf;
    petrel_buf_init(&conf, CONF_MAX);
    write_conf(&conf, o, dir);
    char password[DEMO_PASSWORD_LEN + 1];
    int r = write_confd(dir, o->port_base, error_r);
    if (r == 0)
        r = write_users(dir, o, password, error_r);
    if (r == 0)
        r = write_file(path, &conf, 0644, error_r);
    petrel_buf_free(&conf);
    if (r == 0)
        r = share_with_run_group(dir, run_user(o), error_r);
    if (r == 0)
        printf("Instance written to %s\n"
               "  configuration: %s\n"
               "  certificate:   %s (self-signed for %s)\n"
               "  demo account:  demo@%s  password: %s\n"
               "  (change it: petrelctl --config %s account passwd demo@%s)\n"
               "Start it with:   petreld --config %s --foreground\n",
               dir, path, cert, host, o->domain, password, path, o->domain, path);
    explicit_bzero(password, sizeof(password));
    return r;
}
