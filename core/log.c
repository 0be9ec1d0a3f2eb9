/* Logging to stderr, a file or syslog, with a level per module. A line is
 * written with one write() so lines from several threads never interleave. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_INITIALIZER;
static enum petrel_log_target log_target = PETREL_LOG_TO_STDERR;
static enum petrel_log_level log_default = PETREL_LOG_INFO;
static struct petrel_log_module_level *log_modules;
static size_t log_module_count;
static char *log_file;
static int log_fd = -1;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

bool petrel_log_level_parse(const char *text, enum petrel_log_level *r)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *r = (enum petrel_log_level)i;
            return true;
        }
    }
    return false;
}

static enum petrel_log_level level_for(const char *module)
{
    for (size_t i = 0; i < log_module_count; i++) {
        if (strcmp(log_modules[i].module, module) == 0)
            return log_modules[i].level;
    }
    return log_default;
}

bool petrel_log_enabled(enum petrel_log_level level, const char *module)
{
    pthread_rwlock_rdlock(&log_lock);
    bool on = level <= level_for(module);
    pthread_rwlock_unlock(&log_lock);
    return on;
}

/* Opened as root before the daemon drops privileges and then given to
 * it, so never through a link or to a file with a second name that a
 * user could have planted in a log directory it can write. */
static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    return fd;
}

static void free_modules(void)
{
    for (size_t i = 0; i < log_module_count; i++)
        free(log_modules[i].module);
    free(log_modules);
    log_modules = NULL;
    log_module_count = 0;
}

int petrel_log_configure(enum petrel_log_target target, const char *file,
                         enum petrel_log_level level, const struct petrel_log_module_level *modules,
                         size_t count, const char **error_r)
{
    int fd = -1;
    if (target == PETREL_LOG_TO_FILE) {
        fd = open_log_file(file);
        if (fd < 0) {
            *error_r = strerror(errno);
            return -1;
        }
    }
    pthread_rwlock_wrlock(&log_lock);
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    free(log_file);
    log_file = target == PETREL_LOG_TO_FILE ? petrel_strdup(file) : NULL;
    if (target == PETREL_LOG_TO_SYSLOG && log_target != PETREL_LOG_TO_SYSLOG)
        openlog("petreld", LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_target = target;
    log_default = level;
    free_modules();
    log_modules = petrel_calloc(count, sizeof(*log_modules));
    for (size_t i = 0; i < count; i++) {
        log_modules[i].module = petrel_strdup(modules[i].module);
        log_modules[i].level = modules[i].level;
    }
    log_module_count = count;
    pthread_rwlock_unlock(&log_lock);
    return 0;
}

int petrel_log_reopen(void)
{
    int ret = 0;
    pthread_rwlock_wrlock(&log_lock);
    if (log_target == PETREL_LOG_TO_FILE) {
        int fd = open_log_file(log_file);
        if (fd < 0) {
            ret = -1;
        } else {
            dup2(fd, log_fd);
            close(fd);
        }
    }
    pthread_rwlock_unlock(&log_lock);
    return ret;
}

void petrel_log_chown(unsigned uid, unsigned gid)
{
    pthread_rwlock_rdlock(&log_lock);
    if (log_target == PETREL_LOG_TO_FILE && fchown(log_fd, uid, gid) < 0) {
        /* Reopen after logrotate would then fail; say so now. */
        fprintf(stderr, "petreld: cannot chown log file %s: %s\n", log_file, strerror(errno));
    }
    pthread_rwlock_unlock(&log_lock);
}

void petrel_log_shutdown(void)
{
    pthread_rwlock_wrlock(&log_lock);
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    free(log_file);
    log_file = NULL;
    free_modules();
    log_target = PETREL_LOG_TO_STDERR;
    pthread_rwlock_unlock(&log_lock);
}

static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

void petrel_vlog(enum petrel_log_level level, const char *module, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX];
    pthread_rwlock_rdlock(&log_lock);
    if (level > level_for(module)) {
        pthread_rwlock_unlock(&log_lock);
        return;
    }
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        petrel_strlcpy(msg, "(unformattable log message)", sizeof(msg));
    /* Control characters from clients must not forge log lines. */
    for (char *p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    if (log_target == PETREL_LOG_TO_SYSLOG) {
        syslog(syslog_prio[level], "%s: %s: %s", level_names[level], module, msg);
    } else {
        char line[LOG_LINE_MAX + 128];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        int len = snprintf(
            line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ petreld[%d]: %s: %s: %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, (int)getpid(), level_names[level], module, msg);
        if (len < 0 || len > (int)sizeof(line) - 1) {
            len = (int)sizeof(line) - 1;
            line[len - 1] = '\n';
        }
        int fd = log_target == PETREL_LOG_TO_FILE ? log_fd : STDERR_FILENO;
        if (write(fd, line, (size_t)len) < 0) {
            /* Nowhere left to report a logging failure. */
        }
    }
    pthread_rwlock_unlock(&log_lock);
}

void petrel_log(enum petrel_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    petrel_vlog(level, module, fmt, ap);
    va_end(ap);
}
