/* petreld: reads the configuration, loads modules, binds, drops privileges,
 * runs the I/O threads and worker pool, reloads on SIGHUP and stops cleanly
 * on SIGTERM. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "cfg_error.h"
#include "conn_private.h"
#include "dns_private.h"
#include "iothread.h"
#include "log.h"
#include "server.h"
#include "stats_core.h"
#include "tls.h"

#define LOG_MODULES_MAX 64

static const char *config_path = PETREL_SYSCONFDIR "/petrel.conf";
static bool stop_requested;
static bool pid_written; /* never remove another daemon's pid file */

static int apply_log(const struct petrel_config *cfg, const char **error_r)
{
    struct petrel_log_module_level mods[LOG_MODULES_MAX];
    char names[LOG_MODULES_MAX][64];
    size_t n = 0;
    enum petrel_log_level level;
    petrel_log_level_parse(cfg->log.level, &level);
    for (char **m = cfg->log.modules; m != NULL && *m != NULL; m++) {
        const char *eq = strchr(*m, '=');
        if (n == LOG_MODULES_MAX || eq == NULL || (size_t)(eq - *m) >= sizeof(names[0]) ||
            !petrel_log_level_parse(eq + 1, &mods[n].level)) {
            *error_r = petrel_cfg_error("%s: log.modules: '%s' is not module=level (error, "
                                        "warning, info, debug)",
                                        cfg->path, *m);
            return -1;
        }
        petrel_snprintf(names[n], sizeof(names[n]), "%.*s", (int)(eq - *m), *m);
        mods[n].module = names[n];
        n++;
    }
    enum petrel_log_target target = strcmp(cfg->log.target, "file") == 0     ? PETREL_LOG_TO_FILE
                                    : strcmp(cfg->log.target, "syslog") == 0 ? PETREL_LOG_TO_SYSLOG
                                                                             : PETREL_LOG_TO_STDERR;
    const char *why;
    if (petrel_log_configure(target, cfg->log.file, level, mods, n, &why) < 0) {
        *error_r = petrel_cfg_error("%s: log.file '%s': %s", cfg->path, cfg->log.file, why);
        return -1;
    }
    return 0;
}

/* Read, check and prepare a new generation without touching the running one. */
static struct petrel_config *load_next(const char **error_r)
{
    struct petrel_config *next = petrel_config_load(config_path, error_r);
    if (next == NULL)
        return NULL;
    const char *fixed = petrel_config_fixed_changed(petrel_server.cfg, next);
    if (fixed != NULL) {
        *error_r = petrel_cfg_error("%s: changing server.%s needs a restart", config_path, fixed);
    } else if (petrel_modules_check_needs(next, error_r) == 0 &&
               petrel_modules_apply_settings(next, error_r) == 0) {
        petrel_config_done_parsing(next);
        if (petrel_runtime_prepare(next, error_r) == 0)
            return next;
    }
    petrel_config_unref(next);
    return NULL;
}

int petrel_server_reload(const char **error_r)
{
    /* After logrotate renamed the file: a new one, whether or not the new
     * configuration turns out to be good. */
    if (petrel_log_reopen() < 0)
        petrel_log(PETREL_LOG_ERROR, "core", "cannot reopen log file: %s", strerror(errno));
    petrel_log(PETREL_LOG_INFO, "core", "reloading %s", config_path);
    struct petrel_config *next = load_next(error_r);
    if (next == NULL)
        goto refused;
    if (petrel_listeners_prepare(next, error_r) < 0) {
        petrel_config_unref(next);
        goto refused;
    }
    if (petrel_modules_reload(next, error_r) < 0) {
        petrel_listeners_abort();
        petrel_config_unref(next);
        goto refused;
    }
    pthread_rwlock_wrlock(&petrel_server.gen_lock);
    struct petrel_config *old = petrel_server.cfg;
    petrel_server.cfg = next;
    petrel_listeners_commit();
    petrel_server_apply_limits(next);
    pthread_rwlock_unlock(&petrel_server.gen_lock);
    petrel_dns_configure(&next->dnr);
    const char *why;
    if (apply_log(next, &why) < 0)
        petrel_log(PETREL_LOG_ERROR, "core", "%s", why);
    petrel_config_unref(old);
    petrel_log(PETREL_LOG_INFO, "core", "configuration reloaded");
    return 0;
refused:
    petrel_log(PETREL_LOG_ERROR, "core", "reload refused, the old configuration keeps running: %s",
               *error_r);
    return -1;
}

void petrel_server_request_stop(void) { stop_requested = true; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: petreld [--config FILE] [--foreground] [--check-config]\n"
            "  -c, --config FILE   configuration (default %s)\n"
            "  -f, --foreground    do not detach; log to stderr unless configured\n"
            "  -t, --check-config  validate the configuration and modules, then exit\n"
            "  -V, --version       print the version\n",
            PETREL_SYSCONFDIR "/petrel.conf");
}

/* Started as root, petreld drops to server.user: one that is missing,
 * root or shared is refused before anything else happens. */
static int user_check(const struct petrel_config *cfg, const char **error_r)
{
    uid_t uid;
    gid_t gid;
    return geteuid() == 0 ? petrel_daemon_lookup_user(cfg, &uid, &gid, error_r) : 0;
}

/* What start-up does up to binding: check the run user (as root), load
 * the modules, prepare the TLS contexts, and init the modules in
 * start-up's order, so a module whose needed service no enabled module
 * provides fails here as it would there. Then the modules are stopped
 * again; nothing is bound, no thread runs. */
static unsigned io_thread_count(const struct petrel_config *cfg)
{
    if (cfg->server.io_threads > 0)
        return (unsigned)cfg->server.io_threads;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? (unsigned)cpus : 1;
}

static int check_config(struct petrel_config *cfg)
{
    const char *error;
    /* Only warnings and errors: the verdict is the output. */
    if (petrel_log_configure(PETREL_LOG_TO_STDERR, NULL, PETREL_LOG_WARNING, NULL, 0, &error) < 0)
        petrel_log(PETREL_LOG_WARNING, "core", "%s", error);
    int r = 0;
    if (user_check(cfg, &error) < 0 || petrel_modules_load(cfg, false, &error) < 0 ||
        petrel_runtime_prepare(cfg, &error) < 0 ||
        /* Loops that never run: a module's init may add timers and
         * schedules to them, as in a real start. */
        petrel_iothreads_create(io_thread_count(cfg), &error) < 0 ||
        petrel_modules_init(cfg, &error) < 0) {
        fprintf(stderr, "petreld: %s\n", error);
        r = 1;
    }
    petrel_modules_stop();
    petrel_iothreads_free();
    if (r == 0)
        printf("petreld: configuration %s OK (%zu modules)\n", cfg->path, cfg->nservices);
    return r;
}

/* Connections, spool files and the store's open indexes all take
 * descriptors: use all the hard limit allows (the soft default, often
 * 1024, is for interactive programs). Then keep a reserve: a connection may
 * need a second descriptor for its message file, and the store, the log and
 * the listeners need theirs, so at most (limit - reserve) / 2 connections
 * are accepted and a message already in DATA never meets EMFILE. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            petrel_log(PETREL_LOG_WARNING, "core", "cannot raise the open file limit: %s",
                       strerror(errno));
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 100000000)
        return; /* no practical cap */
    long n = (long)rl.rlim_cur, reserve = 64 + n / 16;
    petrel_server.fd_conn_cap = n > 2 * reserve ? (n - reserve) / 2 : n / 4;
}

/* Everything up to the point where the server runs. */
static int start(struct petrel_config *cfg, bool foreground, const char **error_r)
{
    if (user_check(cfg, error_r) < 0 || petrel_ctl_check(cfg, error_r) < 0)
        return -1;
    if (!foreground && petrel_daemon_detach(error_r) < 0)
        return -1;
    petrel_server.started = time(NULL);
    raise_fd_limit();
    petrel_server_apply_limits(cfg);
    if (petrel_modules_load(cfg, true, error_r) < 0)
        return -1;
    petrel_config_done_parsing(cfg);
    if (petrel_runtime_prepare(cfg, error_r) < 0 ||
        petrel_iothreads_create(io_thread_count(cfg), error_r) < 0 ||
        petrel_dns_start(&cfg->dnr, error_r) < 0 || petrel_modules_init(cfg, error_r) < 0 ||
        petrel_listeners_prepare(cfg, error_r) < 0)
        return -1;
    petrel_listeners_commit();
    if (petrel_ctl_open(cfg, error_r) < 0 || petrel_daemon_pidfile(cfg, error_r) < 0)
        return -1;
    pid_written = true;
    if (petrel_daemon_drop(cfg, error_r) < 0)
        return -1;
    petrel_conn_stats_init();
    if (petrel_workers_start((unsigned)cfg->server.workers, (size_t)cfg->server.worker_queue,
                             error_r) < 0 ||
        petrel_iothreads_start(error_r) < 0 || petrel_modules_start(error_r) < 0)
        return -1;
    petrel_ctl_serve();
    petrel_log(PETREL_LOG_INFO, "core", "petreld %s started: %u I/O threads, %lld workers",
               PACKAGE_VERSION, petrel_server.nthreads, cfg->server.workers);
    return 0;
}

static void main_loop(int sigfd)
{
    while (!stop_requested) {
        struct pollfd fds[2] = {{.fd = sigfd, .events = POLLIN},
                                {.fd = petrel_ctl_main_fd(), .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            petrel_log(PETREL_LOG_ERROR, "core", "poll: %s", strerror(errno));
            break;
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof(si)) != sizeof(si))
                continue;
            if (si.ssi_signo == SIGHUP) {
                const char *error;
                petrel_server_reload(&error);
            } else {
                petrel_log(PETREL_LOG_INFO, "core", "signal %u: stopping", si.ssi_signo);
                stop_requested = true;
            }
        }
        if (fds[1].revents & POLLIN)
            petrel_ctl_main_run();
    }
}

static void shutdown_server(void)
{
    struct petrel_config *cfg = petrel_server.cfg;
    petrel_ctl_close();
    if (petrel_server.threads != NULL)
        petrel_iothreads_stop(cfg->server.shutdown_timeout);
    petrel_workers_stop();
    petrel_modules_stop();
    petrel_dns_stop();
    petrel_iothreads_free();
    petrel_tls_client_free();
    petrel_listeners_close_all();
    if (pid_written && unlink(cfg->server.pid_file) < 0 && errno != ENOENT)
        petrel_log(PETREL_LOG_WARNING, "core", "cannot remove %s: %s", cfg->server.pid_file,
                   strerror(errno));
    petrel_log(PETREL_LOG_INFO, "core", "petreld stopped");
    petrel_config_unref(cfg);
    petrel_server.cfg = NULL;
    petrel_modules_unload();
    petrel_stats_free();
    petrel_log_shutdown();
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"foreground", no_argument, NULL, 'f'},
        {"check-config", no_argument, NULL, 't'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    bool foreground = false, check = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:ftVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 't':
            check = true;
            break;
        case 'V':
            printf("petreld %s (module ABI %u.%u)\n", PACKAGE_VERSION, PETREL_ABI_MAJOR,
                   PETREL_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    petrel_tls_global_init();
    const char *error;
    struct petrel_config *cfg = petrel_config_load(config_path, &error);
    if (cfg == NULL) {
        fprintf(stderr, "petreld: %s\n", error);
        return 1;
    }
    petrel_server.cfg = cfg;
    if (check) {
        int r = check_config(cfg);
        petrel_config_unref(cfg);
        petrel_modules_unload();
        return r;
    }
    if (apply_log(cfg, &error) < 0) {
        fprintf(stderr, "petreld: %s\n", error);
        petrel_config_unref(cfg);
        return 1;
    }
    /* Signals are read from a signalfd on this thread; every thread created
     * later inherits the blocked mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    int status = 0;
    if (start(cfg, foreground, &error) < 0) {
        petrel_log(PETREL_LOG_ERROR, "core", "cannot start: %s", error);
        status = 1; /* a detached daemon's command sees it when we exit */
    } else {
        petrel_daemon_ready();
        main_loop(sigfd);
    }
    close(sigfd);
    shutdown_server();
    return status;
}
