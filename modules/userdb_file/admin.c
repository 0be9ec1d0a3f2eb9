/* petrelctl domain|account|alias|forward: administration of the account
 * file, as admin commands of the module. The file is root's and only
 * readable by the daemon's group, so every command runs in petrelctl with
 * the administrator's rights (PETREL_ADMIN_LOCAL), daemon or not. A change
 * locks the file, edits only the lines it concerns and replaces the file
 * atomically (lockedfile.c), then has a running daemon re-read it (`userdb_file
 * reload`, the one command that runs inside the daemon), so it is in force
 * when petrelctl returns. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/admin.h>
#include <petrel/password.h>

#include "userdb_file.h"

/* A valid hash used to check an account add before asking for the
 * password, so a typo in the address fails before the prompt. */
#define CHECK_HASH                                                                                 \
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq."    \
    "H91p5hVO1"

struct account_args {
    const char *address, *hash;
    long long quota, messages; /* -1: leave as it is */
    int disabled;              /* -1: leave as it is */
};

/* What a command hands to its edit: its words, or an account's fields. */
struct cmd_args {
    int argc;
    char **argv;
    struct account_args account;
};

typedef int edit_fn(struct petrel_admin_call *call, struct userdb_edit *e,
                    const struct cmd_args *c);

/* Lock, edit, write, unlock. A read-only command takes a shared lock.
 * 0 done, 1 refused (said); *changed_r: the file was rewritten. */
static int run(struct petrel_admin_call *call, edit_fn *fn, const struct cmd_args *c, bool write,
               bool *changed_r)
{
    char path[PATH_MAX], why[PATH_MAX + 200];
    struct userdb_locked u;
    *changed_r = false;
    if (!userdb_file_path(petrel_admin_config(call), path, sizeof(path)))
        return petrel_admin_fail(
            call, "%s: path too long",
            ((const struct userdb_file_config *)petrel_admin_config(call))->file);
    if (userdb_locked_open(&u, path, write, why, sizeof(why)) < 0) {
        userdb_locked_close(&u);
        return petrel_admin_fail(call, "%s", why);
    }
    int rc = fn(call, &u.edit, c);
    if (rc < 0)
        rc = petrel_admin_fail(call, "%s", u.edit.error);
    else if (write) {
        int w = userdb_locked_commit(&u, why, sizeof(why));
        if (w < 0)
            rc = petrel_admin_fail(call, "%s", why);
        *changed_r = w > 0;
    }
    userdb_locked_close(&u);
    return rc;
}

/* After a change: the running daemon re-reads the file before petrelctl
 * returns (no daemon: nothing to do). Run with the lock let go, so other
 * administrators do not wait for the daemon. */
static int follow(struct petrel_admin_call *call, int rc, bool changed)
{
    if (rc != 0 || !changed)
        return rc;
    if (petrel_admin_daemon(call, 2, (const char *const[]){"userdb_file", "reload"}) < 0)
        return petrel_admin_fail(call,
                                 "the account file was changed, but the running petreld did not "
                                 "take it up (see its log; it retries every check_interval)");
    return 0;
}

/* What a change says once the file holds it: "NOUN ADDRESS DONE". */
struct said {
    const char *noun, *done;
};

static void say(struct petrel_admin_call *call, const struct said *said, const char *arg)
{
    if (said != NULL)
        petrel_admin_print(call, "%s %s %s\n", said->noun, arg, said->done);
}

/* Edit with a write lock, say so (said, of argv[0]: or NULL), then have
 * the daemon follow. */
static int change(struct petrel_admin_call *call, edit_fn *fn, const struct cmd_args *c,
                  const struct said *said)
{
    bool changed;
    int rc = run(call, fn, c, true, &changed);
    if (rc == 0)
        say(call, said, c->argv != NULL ? c->argv[0] : c->account.address);
    return follow(call, rc, changed);
}

static int read_only(struct petrel_admin_call *call, edit_fn *fn, const struct cmd_args *c)
{
    bool changed;
    return run(call, fn, c, false, &changed);
}

/* A command's words, for run. */
#define WORDS(n, v) (&(struct cmd_args){.argc = (n), .argv = (v)})

/* "none", "0", 1000, 10M, 1G... (-1 if invalid): the file's own syntax. */
static long long parse_amount(const char *s, bool size)
{
    long long v;
    if (strcmp(s, "none") == 0 || strcmp(s, "unlimited") == 0)
        return 0;
    return userdb_parse_count(s, &v, size) ? v : -1;
}

static bool in_domain(const char *key, const char *domain)
{
    const char *at = strrchr(key, '@');
    return domain == NULL || (at != NULL && strcasecmp(at + 1, domain) == 0);
}

/* --- domain --- */

static int domain_list(struct petrel_admin_call *call, struct userdb_edit *e,
                       const struct cmd_args *c)
{
    (void)c;
    bool json = petrel_admin_json(call);
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *r = &e->db.records[i];
        if (r->kind != USERDB_DOMAIN)
            continue;
        if (json) {
            petrel_admin_str(call, "domain", r->key);
            petrel_admin_str(call, "catchall", r->catchall);
            petrel_admin_row_end(call);
        } else {
            petrel_admin_print(call, "%s%s%s\n", r->key, r->catchall ? " catchall=" : "",
                               r->catchall ? r->catchall : "");
        }
    }
    return 0;
}

static int domain_add(struct petrel_admin_call *call, struct userdb_edit *e,
                      const struct cmd_args *c)
{
    (void)call;
    if (userdb_edit_domain_add(e, c->argv[0]) < 0 ||
        (c->argc == 3 && userdb_edit_domain_catchall(e, c->argv[0], c->argv[2]) < 0))
        return -1;
    return 0;
}

static int domain_del(struct petrel_admin_call *call, struct userdb_edit *e,
                      const struct cmd_args *c)
{
    (void)call;
    return userdb_edit_domain_del(e, c->argv[0]);
}

static int domain_catchall(struct petrel_admin_call *call, struct userdb_edit *e,
                           const struct cmd_args *c)
{
    (void)call;
    return userdb_edit_domain_catchall(e, c->argv[0],
                                       strcmp(c->argv[1], "none") == 0 ? NULL : c->argv[1]);
}

static int cmd_domain_list(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return petrel_admin_usage(call);
    return read_only(call, domain_list, WORDS(0, NULL));
}

static int cmd_domain_add(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 1 && !(argc == 3 && strcmp(argv[1], "--catchall") == 0))
        return petrel_admin_usage(call);
    return change(call, domain_add, WORDS(argc, argv), &(struct said){"domain", "added"});
}

static int cmd_domain_del(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 1)
        return petrel_admin_usage(call);
    return change(call, domain_del, WORDS(1, argv), NULL);
}

static int cmd_domain_catchall(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 2)
        return petrel_admin_usage(call);
    return change(call, domain_catchall, WORDS(2, argv), NULL);
}

/* --- account --- */

static int account_list(struct petrel_admin_call *call, struct userdb_edit *e,
                        const struct cmd_args *c)
{
    bool json = petrel_admin_json(call);
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *r = &e->db.records[i];
        if (r->kind != USERDB_ACCOUNT || !in_domain(r->key, c->argc ? c->argv[0] : NULL))
            continue;
        const struct userdb_record *f = userdb_find(&e->db, USERDB_FORWARD, r->key);
        if (json) {
            petrel_admin_str(call, "address", r->key);
            if (r->quota_bytes)
                petrel_admin_int(call, "quota", r->quota_bytes);
            else
                petrel_admin_str(call, "quota", NULL);
            if (r->quota_messages)
                petrel_admin_int(call, "messages", r->quota_messages);
            else
                petrel_admin_str(call, "messages", NULL);
            static const char *const none[] = {NULL};
            petrel_admin_list(call, "forward", f != NULL ? (const char *const *)f->targets : none,
                              f != NULL ? f->ntargets : 0);
            petrel_admin_bool(call, "keep", f != NULL && f->keep);
            petrel_admin_bool(call, "disabled", r->disabled);
            petrel_admin_row_end(call);
            continue;
        }
        char quota[32] = "none", messages[32] = "none";
        if (r->quota_bytes)
            snprintf(quota, sizeof(quota), "%lld", r->quota_bytes);
        if (r->quota_messages)
            snprintf(messages, sizeof(messages), "%lld", r->quota_messages);
        petrel_admin_print(call, "%s quota=%s messages=%s", r->key, quota, messages);
        for (size_t k = 0; f != NULL && k < f->ntargets; k++)
            petrel_admin_print(call, "%s%s", k == 0 ? " forward=" : ",", f->targets[k]);
        petrel_admin_print(call, "%s%s\n", f != NULL && f->keep ? " keep" : "",
                           r->disabled ? " disabled" : "");
    }
    return 0;
}

static int account_add(struct petrel_admin_call *call, struct userdb_edit *e,
                       const struct cmd_args *c)
{
    (void)call;
    const struct account_args *a = &c->account;
    return userdb_edit_account_add(e, a->address, a->hash, a->quota, a->messages);
}

static int account_set(struct petrel_admin_call *call, struct userdb_edit *e,
                       const struct cmd_args *c)
{
    (void)call;
    const struct account_args *a = &c->account;
    return userdb_edit_account_set(e, a->address, a->hash, a->quota, a->messages, a->disabled);
}

static int account_del(struct petrel_admin_call *call, struct userdb_edit *e,
                       const struct cmd_args *c)
{
    (void)call;
    return userdb_edit_account_del(e, c->argv[0]);
}

/* Options of account add: --quota SIZE, --messages N. */
static int add_options(struct account_args *a, int argc, char **argv)
{
    for (int i = 0; i < argc; i += 2) {
        long long v =
            i + 1 < argc ? parse_amount(argv[i + 1], strcmp(argv[i], "--quota") == 0) : -1;
        if (v < 0)
            return -1;
        if (strcmp(argv[i], "--quota") == 0)
            a->quota = v;
        else if (strcmp(argv[i], "--messages") == 0)
            a->messages = v;
        else
            return -1;
    }
    return 0;
}

/* Asks for the password, hashes it, runs fn with the hash (as change). */
static int with_new_password(struct petrel_admin_call *call, edit_fn *fn, struct account_args *a,
                             const struct said *said)
{
    /* Check everything but the password first: no prompt for a typo. */
    a->hash = CHECK_HASH;
    int rc = read_only(call, fn, &(struct cmd_args){.account = *a});
    if (rc != 0)
        return rc;
    const char *pw = petrel_admin_secret(call), *error;
    if (pw == NULL)
        return 1;
    char *hash = petrel_password_hash(pw, PETREL_PASSWORD_YESCRYPT, &error);
    if (hash == NULL)
        return petrel_admin_fail(call, "%s", error);
    a->hash = hash;
    bool changed;
    rc = run(call, fn, &(struct cmd_args){.account = *a}, true, &changed);
    free(hash);
    if (rc == 0)
        say(call, said, a->address);
    return follow(call, rc, changed);
}

static int cmd_account_list(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc > 1)
        return petrel_admin_usage(call);
    return read_only(call, account_list, WORDS(argc, argv));
}

static int cmd_account_add(struct petrel_admin_call *call, int argc, char **argv)
{
    struct account_args a = {.quota = 0, .messages = 0, .disabled = -1};
    if (argc < 1 || add_options(&a, argc - 1, argv + 1) < 0)
        return petrel_admin_usage(call);
    a.address = argv[0];
    return with_new_password(call, account_add, &a, &(struct said){"account", "added"});
}

static int cmd_account_passwd(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 1)
        return petrel_admin_usage(call);
    struct account_args a = {.address = argv[0], .quota = -1, .messages = -1, .disabled = -1};
    return with_new_password(call, account_set, &a, NULL);
}

static int cmd_account_del(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 1)
        return petrel_admin_usage(call);
    return change(call, account_del, WORDS(1, argv),
                  &(struct said){"account", "deleted; its mail stays on disk (remove it by "
                                            "hand if wanted)"});
}

static int cmd_account_quota(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 2 && argc != 3)
        return petrel_admin_usage(call);
    struct account_args a = {.address = argv[0],
                             .quota = parse_amount(argv[1], true),
                             .messages = argc == 3 ? parse_amount(argv[2], false) : -1,
                             .disabled = -1};
    if (a.quota < 0 || (argc == 3 && a.messages < 0))
        return petrel_admin_usage(call);
    return change(call, account_set, &(struct cmd_args){.account = a}, NULL);
}

static int set_disabled(struct petrel_admin_call *call, int argc, char **argv, int disabled)
{
    if (argc != 1)
        return petrel_admin_usage(call);
    struct account_args a = {.address = argv[0], .quota = -1, .messages = -1, .disabled = disabled};
    return change(call, account_set, &(struct cmd_args){.account = a}, NULL);
}

static int cmd_account_disable(struct petrel_admin_call *call, int argc, char **argv)
{
    return set_disabled(call, argc, argv, 1);
}

static int cmd_account_enable(struct petrel_admin_call *call, int argc, char **argv)
{
    return set_disabled(call, argc, argv, 0);
}

/* --- alias, forward --- */

static int alias_list(struct petrel_admin_call *call, struct userdb_edit *e,
                      const struct cmd_args *c)
{
    bool json = petrel_admin_json(call);
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *r = &e->db.records[i];
        if (r->kind != USERDB_ALIAS || !in_domain(r->key, c->argc ? c->argv[0] : NULL))
            continue;
        if (json) {
            petrel_admin_str(call, "address", r->key);
            petrel_admin_list(call, "targets", (const char *const *)r->targets, r->ntargets);
            petrel_admin_row_end(call);
            continue;
        }
        petrel_admin_print(call, "%s", r->key);
        for (size_t k = 0; k < r->ntargets; k++)
            petrel_admin_print(call, " %s", r->targets[k]);
        petrel_admin_print(call, "\n");
    }
    return 0;
}

static int alias_add(struct petrel_admin_call *call, struct userdb_edit *e,
                     const struct cmd_args *c)
{
    (void)call;
    return userdb_edit_alias_add(e, c->argv[0], c->argv + 1, (size_t)c->argc - 1);
}

static int alias_del(struct petrel_admin_call *call, struct userdb_edit *e,
                     const struct cmd_args *c)
{
    (void)call;
    return userdb_edit_alias_del(e, c->argv[0], c->argv + 1, (size_t)c->argc - 1);
}

static int cmd_alias_add(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc < 2)
        return petrel_admin_usage(call);
    return change(call, alias_add, WORDS(argc, argv), NULL);
}

static int cmd_alias_del(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc < 1)
        return petrel_admin_usage(call);
    return change(call, alias_del, WORDS(argc, argv), NULL);
}

static int cmd_alias_list(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc > 1)
        return petrel_admin_usage(call);
    return read_only(call, alias_list, WORDS(argc, argv));
}

static int forward_set(struct petrel_admin_call *call, struct userdb_edit *e,
                       const struct cmd_args *c)
{
    (void)call;
    bool keep = strcmp(c->argv[c->argc - 1], "--keep") == 0;
    return userdb_edit_forward_set(e, c->argv[0], c->argv + 1, (size_t)(c->argc - 1 - keep), keep);
}

static int forward_clear(struct petrel_admin_call *call, struct userdb_edit *e,
                         const struct cmd_args *c)
{
    (void)call;
    return userdb_edit_forward_clear(e, c->argv[0]);
}

static int cmd_forward_set(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc < 2 || (argc == 2 && strcmp(argv[1], "--keep") == 0))
        return petrel_admin_usage(call);
    return change(call, forward_set, WORDS(argc, argv), NULL);
}

static int cmd_forward_clear(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 1)
        return petrel_admin_usage(call);
    return change(call, forward_clear, WORDS(1, argv), NULL);
}

/* --- inside the daemon --- */

static int cmd_reload(struct petrel_admin_call *call, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return petrel_admin_usage(call);
    /* The module's data exists only in the daemon (init). */
    if (!petrel_admin_online(call))
        return petrel_admin_fail(call, "userdb_file reload runs in the running petreld only");
    char why[300];
    size_t entries, bad;
    if (userdb_file_reload_now(why, sizeof(why), &entries, &bad) < 0)
        return petrel_admin_fail(call, "reload failed, the old data stays in force: %s", why);
    petrel_admin_print(call, "reloaded: %zu entries, %zu bad lines\n", entries, bad);
    return 0;
}

#define LIST (PETREL_ADMIN_LOCAL | PETREL_ADMIN_OWN_TEXT)
#define CHANGE PETREL_ADMIN_LOCAL
#define SECRET (PETREL_ADMIN_LOCAL | PETREL_ADMIN_SECRET)

/* In usage order: a group's usage line lists its commands as here. */
const struct petrel_admin_command userdb_file_admin[] = {
    {"domain add", "DOMAIN [--catchall ADDRESS]", "add a local domain", CHANGE, cmd_domain_add},
    {"domain del", "DOMAIN", "remove a domain that has no accounts, aliases or forwards", CHANGE,
     cmd_domain_del},
    {"domain list", "", "list the domains and their catch-alls", LIST, cmd_domain_list},
    {"domain catchall", "DOMAIN ADDRESS|none", "set or remove a domain's catch-all address", CHANGE,
     cmd_domain_catchall},
    {"account add", "ADDRESS [--quota SIZE] [--messages N]",
     "add an account (the password is asked for)", SECRET, cmd_account_add},
    {"account del", "ADDRESS", "remove an account (its mail stays on disk)", CHANGE,
     cmd_account_del},
    {"account list", "[DOMAIN]", "list the accounts with quotas, forwarding and state", LIST,
     cmd_account_list},
    {"account passwd", "ADDRESS", "set an account's password (asked for)", SECRET,
     cmd_account_passwd},
    {"account quota", "ADDRESS SIZE|none [N|none]", "set an account's quota", CHANGE,
     cmd_account_quota},
    {"account disable", "ADDRESS", "refuse an account's logins", CHANGE, cmd_account_disable},
    {"account enable", "ADDRESS", "let a disabled account in again", CHANGE, cmd_account_enable},
    {"alias add", "ADDRESS TARGET...", "create an alias or add targets to it", CHANGE,
     cmd_alias_add},
    {"alias del", "ADDRESS [TARGET...]", "remove targets of an alias, or the alias", CHANGE,
     cmd_alias_del},
    {"alias list", "[DOMAIN]", "list the aliases and their targets", LIST, cmd_alias_list},
    {"forward set", "ADDRESS TARGET... [--keep]", "forward an account's mail", CHANGE,
     cmd_forward_set},
    {"forward clear", "ADDRESS", "stop forwarding an account's mail", CHANGE, cmd_forward_clear},
    {"userdb_file reload", "", "re-read the account file now", PETREL_ADMIN_ONLINE, cmd_reload},
    {.name = NULL},
};
