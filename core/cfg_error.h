/* Thread-local error text for configuration errors. */
#ifndef PETREL_CORE_CFG_ERROR_H
#define PETREL_CORE_CFG_ERROR_H

const char *petrel_cfg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
