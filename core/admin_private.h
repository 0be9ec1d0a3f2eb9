/* The core's side of admin commands (petrel/admin.h): finding a command
 * among the loaded modules and running it with output going wherever the
 * caller says (petrelctl's terminal, or frames on the control socket). */
#ifndef PETREL_CORE_ADMIN_PRIVATE_H
#define PETREL_CORE_ADMIN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/admin.h>
#include <petrel/module.h>

#define PETREL_ADMIN_STDOUT 1
#define PETREL_ADMIN_STDERR 2

/* Where a call's output goes, and what only the caller can do. */
struct petrel_admin_io {
    void (*write)(void *arg, int stream, const char *data, size_t len);
    /* petrelctl: ask for the secret (malloc'd), or NULL with error_r. */
    char *(*read_secret)(void *arg, const char **error_r);
    /* petrelctl: run words in the running daemon, as petrel_admin_daemon()
     * returns (1, 0 or -1, a failure said on stderr through write). */
    int (*daemon)(void *arg, int argc, const char *const *argv);
    void *arg;
};

struct petrel_admin_found {
    struct petrel_ctx *ctx; /* NULL for the core's own commands */
    const struct petrel_admin_command *cmd;
    int words; /* how many words of argv its name took */
};

/* The command argv names among the loaded modules: 1 found; 0 argv[0]
 * names a group of ctx's commands but no command of it (ctx set, cmd
 * NULL: show the group's usage); -1 no module has it. */
int petrel_admin_find(int argc, char **argv, struct petrel_admin_found *f);
/* Run f's command on argv (the words after its name). secret: sent with
 * an online request, else NULL (asked through io when wanted). Returns
 * the exit status. */
int petrel_admin_exec(const struct petrel_admin_found *f, int argc, char **argv, bool json,
                      bool online, const char *secret, const struct petrel_admin_io *io);
/* The usage of ctx's command group on io's stderr; returns 2. */
int petrel_admin_group_usage(const struct petrel_ctx *ctx, const char *group,
                             const struct petrel_admin_io *io);
/* Whether a module descriptor has admin commands (they are read only from
 * modules built for ABI minor 7 or later). */
const struct petrel_admin_command *petrel_admin_table(const struct petrel_module *mod);
/* Whether table has the command argv names, or a group named argv[0]. */
bool petrel_admin_table_has(const struct petrel_admin_command *table, int argc, char **argv);

#endif
