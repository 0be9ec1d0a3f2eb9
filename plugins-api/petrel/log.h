/* Logging. Each line carries a level and the name of the module that wrote
 * it; the administrator sets a level per module in petrel.conf. */
#ifndef PETREL_LOG_H
#define PETREL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum petrel_log_level {
    PETREL_LOG_ERROR = 0,
    PETREL_LOG_WARNING,
    PETREL_LOG_INFO,
    PETREL_LOG_DEBUG,
};

void petrel_log(enum petrel_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void petrel_vlog(enum petrel_log_level level, const char *module, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* True when a line at this level for this module would be written. */
bool petrel_log_enabled(enum petrel_log_level level, const char *module);

#endif
