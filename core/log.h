/* Core side of logging: where lines go and which levels pass. */
#ifndef PETREL_CORE_LOG_H
#define PETREL_CORE_LOG_H

#include <petrel/log.h>

enum petrel_log_target { PETREL_LOG_TO_STDERR, PETREL_LOG_TO_FILE, PETREL_LOG_TO_SYSLOG };

struct petrel_log_module_level {
    char *module;
    enum petrel_log_level level;
};

/* Switch target and levels. On failure (file cannot be opened) nothing
 * changes and error_r says why. */
int petrel_log_configure(enum petrel_log_target target, const char *file,
                         enum petrel_log_level level, const struct petrel_log_module_level *modules,
                         size_t count, const char **error_r);
/* Reopen the log file (SIGHUP, after logrotate moved it). */
int petrel_log_reopen(void);
/* Make the log file owned by the user the daemon will run as. */
void petrel_log_chown(unsigned uid, unsigned gid);
bool petrel_log_level_parse(const char *text, enum petrel_log_level *r);
void petrel_log_shutdown(void);

#endif
