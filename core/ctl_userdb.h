/* petrelctl's access to the account file of userdb_file: found from the
 * instance configuration, locked against other petrelctl runs, rewritten
 * atomically. A running petreld notices the new file by itself. */
#ifndef PETREL_CORE_CTL_USERDB_H
#define PETREL_CORE_CTL_USERDB_H

#include <dirent.h>
#include <libconfig.h>
#include <limits.h>
#include <stdbool.h>

#include "userdb_file.h"

struct ctl_userdb {
    char path[PATH_MAX];
    int lock_fd;
    struct userdb_edit edit;
};

/* Locate, lock and read the file (a missing file is empty): a shared lock
 * for reading, an exclusive one with write. Neither the lock file nor the
 * temporary file is ever opened through a symbolic link. Errors are
 * printed; returns -1 then. */
int ctl_userdb_open(struct ctl_userdb *u, const char *conf, bool write);
/* Write the edited text if it changed: a new temporary file (mkstemp)
 * with the old file's mode and, as root, its owner and group; fsync,
 * rename, fsync of the directory. -1 with the error printed. */
int ctl_userdb_commit(struct ctl_userdb *u);
/* Unlock and free. */
void ctl_userdb_close(struct ctl_userdb *u);

/* Shared by petrelctl's commands that read the instance configuration:
 * parse one file, printing a read or syntax error (0, or -1 with lc
 * destroyed); and the scandir() filter of conf.d ("*.conf", not hidden). */
int ctl_read_conf(config_t *lc, const char *path);
int ctl_conf_filter(const struct dirent *d);

/* The string setting settings.NAME of the enabled conf.d file of module,
 * into out (left alone when none sets it); -1 if it does not fit. warn:
 * name conf.d files that cannot be read (they might be the one). */
int ctl_confd_setting(const char *conf, const char *module, const char *name, char *out,
                      size_t size, bool warn);
/* rel below server.data_dir (absolute: as it is), into out. Errors are
 * printed; -1 then. */
int ctl_data_path(const char *conf, const char *rel, char *out, size_t size);

/* The file petrelctl would edit, for the given petrel.conf. */
int ctl_userdb_path(const char *conf, char *out, size_t size);

#endif
