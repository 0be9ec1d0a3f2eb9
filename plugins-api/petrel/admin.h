/* Administration commands of modules (the doveadm model): a module lists
 * named commands ("queue list", "account add") in its descriptor
 * (struct petrel_module.admin), and petrelctl runs them:
 *
 *   - online, inside the running petreld, on a worker thread: petrelctl
 *     sends the words over the control socket and prints what comes back;
 *   - offline, in petrelctl itself when no daemon answers: petrelctl reads
 *     the configuration with the same settings tables and defaults, loads
 *     the module without calling its init (nothing is started, bound or
 *     created) and calls the same run function.
 *
 * A command writes rows of key/value fields. petrelctl prints them as an
 * aligned table (a header line of the keys, then one line a row), or with
 * --json as one JSON object a line, the keys as given (they are part of
 * the command's contract: keep them stable, and give every row of a
 * command the same keys). A command whose text form is documented some
 * other way sets PETREL_ADMIN_OWN_TEXT and prints its text itself; its
 * rows are then for --json only.
 *
 * Every call below takes the call its run was given, on the thread that
 * runs it; none blocks. Since ABI minor 7. */
#ifndef PETREL_ADMIN_H
#define PETREL_ADMIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct petrel_ctx;
struct petrel_admin_call;

/* Where a command may run. */
#define PETREL_ADMIN_ONLINE 0x01u  /* in the running daemon, on a worker */
#define PETREL_ADMIN_OFFLINE 0x02u /* in petrelctl when no daemon answers */
/* Always in petrelctl, daemon or not: the command needs the rights of the
 * administrator who runs petrelctl (it writes files the daemon may only
 * read). After a change it asks a running daemon to follow with
 * petrel_admin_daemon(). */
#define PETREL_ADMIN_LOCAL 0x04u
/* Reads a secret (a new password), never from the command line: see
 * petrel_admin_secret(). */
#define PETREL_ADMIN_SECRET 0x08u
/* Text mode prints only what the command prints (petrel_admin_print); its
 * rows appear with --json alone. */
#define PETREL_ADMIN_OWN_TEXT 0x10u

struct petrel_admin_command {
    /* The words that select it, one space apart: "queue list". Commands
     * sharing a first word are a group: a usage error shows the group. */
    const char *name;
    /* What follows the name in a usage line: "ID", "ADDRESS [--quota
     * SIZE]", "" for nothing. */
    const char *usage;
    /* One line for petrelctl help. */
    const char *help;
    unsigned flags;
    /* argv holds the words after the name (argc of them; argv[argc] is
     * NULL). Returns the exit status: 0 done, 1 failed (said with
     * petrel_admin_fail), 2 bad arguments (petrel_admin_usage). */
    int (*run)(struct petrel_admin_call *call, int argc, char **argv);
};

/* --- the call's context ------------------------------------------------ */

struct petrel_ctx *petrel_admin_ctx(const struct petrel_admin_call *call);
/* The module's settings of the configuration the call runs under (held
 * for the whole call; online the daemon's current generation). */
const void *petrel_admin_config(const struct petrel_admin_call *call);
/* Whether the call runs inside the daemon (else in petrelctl). */
bool petrel_admin_online(const struct petrel_admin_call *call);
/* Whether the output is JSON (a command may skip work only text needs). */
bool petrel_admin_json(const struct petrel_admin_call *call);

/* The secret of a PETREL_ADMIN_SECRET command, or NULL after saying why
 * (the call then returns 1). In petrelctl it is asked for when first
 * wanted: on the terminal, twice, without echo, or one line of standard
 * input; so a command checks its arguments first and asks last. Online,
 * petrelctl reads it before sending the command. Wiped when the call
 * ends. */
const char *petrel_admin_secret(struct petrel_admin_call *call);

/* Have the running daemon of this configuration run another command of the
 * module (words as on the command line) and wait for it; its output is
 * not shown unless it fails. For a PETREL_ADMIN_LOCAL command that changed
 * something the daemon reads: the change takes effect before petrelctl
 * returns. 1 done, 0 no daemon is running (nothing to do), -1 it failed
 * (said). Online it runs the command in place. */
int petrel_admin_daemon(struct petrel_admin_call *call, int argc, const char *const *argv);

/* --- output -------------------------------------------------------------- */

/* Fields of the current row. A NULL string is JSON null ("none" in the
 * table). Text is shown safely: control bytes and invalid UTF-8 as \xNN
 * in the table, escaped in JSON. */
void petrel_admin_str(struct petrel_admin_call *call, const char *key, const char *value);
void petrel_admin_int(struct petrel_admin_call *call, const char *key, int64_t value);
void petrel_admin_bool(struct petrel_admin_call *call, const char *key, bool value);
void petrel_admin_list(struct petrel_admin_call *call, const char *key, const char *const *values,
                       size_t n);
/* The row is complete. */
void petrel_admin_row_end(struct petrel_admin_call *call);

/* Text for a human, in text mode only (--json drops it), as is: for the
 * OWN_TEXT form and for what an action says ("account a@b added"). */
void petrel_admin_print(struct petrel_admin_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same for text that came from outside (a client's words, a message
 * header): control bytes and invalid UTF-8 as \xNN, tabs kept. */
void petrel_admin_print_safe(struct petrel_admin_call *call, const char *text, size_t len);

/* "petrelctl: MESSAGE" on standard error, shown safely; returns 1, the
 * exit status of a refusal: `return petrel_admin_fail(call, ...);` */
int petrel_admin_fail(struct petrel_admin_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The usage of the command's group on standard error; returns 2. */
int petrel_admin_usage(struct petrel_admin_call *call);

#endif
