/* petrelctl domain|account|alias|forward: administration of the account
 * file of userdb_file. Every change locks the file, edits only the lines
 * it concerns and replaces the file atomically; a running petreld sees
 * the change within its check interval, so these work the same with the
 * daemon running or not. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/password.h>

#include "ctl_accounts.h"
#include "ctl_password.h"
#include "ctl_userdb.h"

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

typedef int edit_fn(struct userdb_edit *e, const struct cmd_args *c);

static int usage_error(const char *text)
{
    fprintf(stderr, "usage: petrelctl [--config FILE] %s\n", text);
    return 2;
}

/* Lock, edit, write, unlock. A read-only command takes a shared lock. */
static int run(const char *conf, edit_fn *fn, const struct cmd_args *c, bool write)
{
    struct ctl_userdb u;
    if (ctl_userdb_open(&u, conf, write) < 0) {
        ctl_userdb_close(&u);
        return 1;
    }
    int rc = fn(&u.edit, c);
    if (rc < 0)
        fprintf(stderr, "petrelctl: %s\n", u.edit.error);
    else if (write && ctl_userdb_commit(&u) < 0)
        rc = -1;
    ctl_userdb_close(&u);
    return rc < 0 ? 1 : rc;
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

/* --- domain --- */

static int domain_list(struct userdb_edit *e, const struct cmd_args *c)
{
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *r = &e->db.records[i];
        if (r->kind == USERDB_DOMAIN)
            printf("%s%s%s\n", r->key, r->catchall ? " catchall=" : "",
                   r->catchall ? r->catchall : "");
    }
    return 0;
}

static int domain_add(struct userdb_edit *e, const struct cmd_args *c)
{
    if (userdb_edit_domain_add(e, c->argv[0]) < 0 ||
        (c->argc == 3 && userdb_edit_domain_catchall(e, c->argv[0], c->argv[2]) < 0))
        return -1;
    printf("domain %s added\n", c->argv[0]);
    return 0;
}

static int domain_del(struct userdb_edit *e, const struct cmd_args *c)
{
    return userdb_edit_domain_del(e, c->argv[0]);
}

static int domain_catchall(struct userdb_edit *e, const struct cmd_args *c)
{
    return userdb_edit_domain_catchall(e, c->argv[0],
                                       strcmp(c->argv[1], "none") == 0 ? NULL : c->argv[1]);
}

static int cmd_domain(const char *conf, int argc, char **argv)
{
    const char *use = "domain add DOMAIN [--catchall ADDRESS] | del DOMAIN | list | "
                      "catchall DOMAIN ADDRESS|none";
    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return run(conf, domain_list, WORDS(0, NULL), false);
    if (argc == 2 && strcmp(argv[0], "add") == 0)
        return run(conf, domain_add, WORDS(1, argv + 1), true);
    if (argc == 4 && strcmp(argv[0], "add") == 0 && strcmp(argv[2], "--catchall") == 0)
        return run(conf, domain_add, WORDS(3, argv + 1), true);
    if (argc == 2 && strcmp(argv[0], "del") == 0)
        return run(conf, domain_del, WORDS(1, argv + 1), true);
    if (argc == 3 && strcmp(argv[0], "catchall") == 0)
        return run(conf, domain_catchall, WORDS(2, argv + 1), true);
    return usage_error(use);
}

/* --- account --- */

static bool in_domain(const char *key, const char *domain)
{
    const char *at = strrchr(key, '@');
    return domain == NULL || (at != NULL && strcasecmp(at + 1, domain) == 0);
}

static int account_list(struct userdb_edit *e, const struct cmd_args *c)
{
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *r = &e->db.records[i];
        if (r->kind != USERDB_ACCOUNT || !in_domain(r->key, c->argc ? c->argv[0] : NULL))
            continue;
        printf("%s quota=", r->key);
        printf(r->quota_bytes ? "%lld" : "none", r->quota_bytes);
        printf(" messages=");
        printf(r->quota_messages ? "%lld" : "none", r->quota_messages);
        const struct userdb_record *f = userdb_find(&e->db, USERDB_FORWARD, r->key);
        for (size_t k = 0; f != NULL && k < f->ntargets; k++)
            printf("%s%s", k == 0 ? " forward=" : ",", f->targets[k]);
        printf("%s%s\n", f != NULL && f->keep ? " keep" : "", r->disabled ? " disabled" : "");
    }
    return 0;
}

static int account_add(struct userdb_edit *e, const struct cmd_args *c)
{
    const struct account_args *a = &c->account;
    return userdb_edit_account_add(e, a->address, a->hash, a->quota, a->messages);
}

static int account_set(struct userdb_edit *e, const struct cmd_args *c)
{
    const struct account_args *a = &c->account;
    return userdb_edit_account_set(e, a->address, a->hash, a->quota, a->messages, a->disabled);
}

static int account_del(struct userdb_edit *e, const struct cmd_args *c)
{
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

/* Asks for the password, hashes it, runs fn with the hash. */
static int with_new_password(const char *conf, edit_fn *fn, struct account_args *a)
{
    /* Check everything but the password first: no prompt for a typo. */
    a->hash = CHECK_HASH;
    int rc = run(conf, fn, &(struct cmd_args){.account = *a}, false);
    if (rc != 0)
        return rc;
    const char *error;
    char *pw = ctl_password_read(&error);
    if (pw == NULL) {
        fprintf(stderr, "petrelctl: %s\n", error);
        return 1;
    }
    char *hash = petrel_password_hash(pw, PETREL_PASSWORD_YESCRYPT, &error);
    ctl_password_free(pw);
    if (hash == NULL) {
        fprintf(stderr, "petrelctl: %s\n", error);
        return 1;
    }
    a->hash = hash;
    rc = run(conf, fn, &(struct cmd_args){.account = *a}, true);
    free(hash);
    return rc;
}

static int cmd_account(const char *conf, int argc, char **argv)
{
    const char *use = "account add ADDRESS [--quota SIZE] [--messages N] | del ADDRESS | "
                      "list [DOMAIN] | passwd ADDRESS | quota ADDRESS SIZE|none [N|none] | "
                      "disable ADDRESS | enable ADDRESS";
    struct account_args a = {.quota = -1, .messages = -1, .disabled = -1};
    const char *sub = argc > 0 ? argv[0] : "";
    a.address = argc > 1 ? argv[1] : NULL;
    if (strcmp(sub, "list") == 0 && argc <= 2)
        return run(conf, account_list, WORDS(argc - 1, argv + 1), false);
    if (strcmp(sub, "add") == 0 && argc >= 2) {
        a.quota = a.messages = 0;
        if (add_options(&a, argc - 2, argv + 2) < 0)
            return usage_error(use);
        int rc = with_new_password(conf, account_add, &a);
        if (rc == 0)
            printf("account %s added\n", a.address);
        return rc;
    }
    if (strcmp(sub, "passwd") == 0 && argc == 2)
        return with_new_password(conf, account_set, &a);
    if (strcmp(sub, "del") == 0 && argc == 2) {
        int rc = run(conf, account_del, WORDS(1, argv + 1), true);
        if (rc == 0)
            printf("account %s deleted; its mail stays on disk (remove it by hand if wanted)\n",
                   a.address);
        return rc;
    }
    if (strcmp(sub, "quota") == 0 && (argc == 3 || argc == 4)) {
        a.quota = parse_amount(argv[2], true);
        a.messages = argc == 4 ? parse_amount(argv[3], false) : -1;
        if (a.quota < 0 || (argc == 4 && a.messages < 0))
            return usage_error(use);
        return run(conf, account_set, &(struct cmd_args){.account = a}, true);
    }
    if ((strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) && argc == 2) {
        a.disabled = strcmp(sub, "disable") == 0;
        return run(conf, account_set, &(struct cmd_args){.account = a}, true);
    }
    return usage_error(use);
}

/* --- alias, forward --- */

static int alias_list(struct userdb_edit *e, const struct cmd_args *c)
{
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *r = &e->db.records[i];
        if (r->kind != USERDB_ALIAS || !in_domain(r->key, c->argc ? c->argv[0] : NULL))
            continue;
        printf("%s", r->key);
        for (size_t k = 0; k < r->ntargets; k++)
            printf(" %s", r->targets[k]);
        printf("\n");
    }
    return 0;
}

static int alias_add(struct userdb_edit *e, const struct cmd_args *c)
{
    return userdb_edit_alias_add(e, c->argv[0], c->argv + 1, (size_t)c->argc - 1);
}

static int alias_del(struct userdb_edit *e, const struct cmd_args *c)
{
    return userdb_edit_alias_del(e, c->argv[0], c->argv + 1, (size_t)c->argc - 1);
}

static int cmd_alias(const char *conf, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "list") == 0 && argc <= 2)
        return run(conf, alias_list, WORDS(argc - 1, argv + 1), false);
    if (strcmp(sub, "add") == 0 && argc >= 3)
        return run(conf, alias_add, WORDS(argc - 1, argv + 1), true);
    if (strcmp(sub, "del") == 0 && argc >= 2)
        return run(conf, alias_del, WORDS(argc - 1, argv + 1), true);
    return usage_error("alias add ADDRESS TARGET... | del ADDRESS [TARGET...] | list [DOMAIN]");
}

static int forward_set(struct userdb_edit *e, const struct cmd_args *c)
{
    bool keep = strcmp(c->argv[c->argc - 1], "--keep") == 0;
    return userdb_edit_forward_set(e, c->argv[0], c->argv + 1, (size_t)(c->argc - 1 - keep), keep);
}

static int forward_clear(struct userdb_edit *e, const struct cmd_args *c)
{
    return userdb_edit_forward_clear(e, c->argv[0]);
}

static int cmd_forward(const char *conf, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    if (strcmp(sub, "set") == 0 && argc >= 3 && !(argc == 3 && strcmp(argv[2], "--keep") == 0))
        return run(conf, forward_set, WORDS(argc - 1, argv + 1), true);
    if (strcmp(sub, "clear") == 0 && argc == 2)
        return run(conf, forward_clear, WORDS(1, argv + 1), true);
    return usage_error("forward set ADDRESS TARGET... [--keep] | clear ADDRESS");
}

int ctl_accounts_main(const char *conf, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const char *conf, int argc, char **argv);
    } groups[] = {
        {"domain", cmd_domain},
        {"account", cmd_account},
        {"alias", cmd_alias},
        {"forward", cmd_forward},
    };
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (strcmp(argv[0], groups[i].name) == 0)
            return groups[i].fn(conf, argc - 1, argv + 1);
    }
    return -1;
}
