/* Answers of the userdb service from one snapshot: copies the caller owns,
 * so the snapshot can go away as soon as the lookup returns. */
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/userdb.h>

#include "userdb_file.h"

bool userdb_canonical(const char *in, const char *primary, char *out, size_t size)
{
    char full[USERDB_ADDRESS_MAX + 2];
    if (strchr(in, '@') == NULL) {
        if (primary == NULL || !petrel_snprintf(full, sizeof(full), "%s@%s", in, primary))
            return false;
        in = full;
    }
    return userdb_address_normalise(in, out, size);
}

static void copy_targets(struct petrel_userdb_entry *e, char *const *targets, size_t n)
{
    e->targets = petrel_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        e->targets[i] = petrel_strdup(targets[i]);
    e->ntargets = n;
}

static struct petrel_userdb_entry *account_entry(const struct userdb_file *db,
                                                 const struct userdb_record *r, bool login)
{
    struct petrel_userdb_entry *e = petrel_calloc(1, sizeof(*e));
    e->kind = PETREL_USERDB_ACCOUNT;
    e->address = petrel_strdup(r->key);
    e->quota_bytes = r->quota_bytes;
    e->quota_messages = r->quota_messages;
    e->disabled = r->disabled;
    if (login) {
        e->hash = petrel_strdup(r->hash);
        return e;
    }
    const struct userdb_record *f = userdb_find(db, USERDB_FORWARD, r->key);
    if (f != NULL) {
        copy_targets(e, f->targets, f->ntargets);
        e->keep = f->keep;
    }
    return e;
}

static struct petrel_userdb_entry *alias_entry(const char *address, char *const *targets, size_t n)
{
    struct petrel_userdb_entry *e = petrel_calloc(1, sizeof(*e));
    e->kind = PETREL_USERDB_ALIAS;
    e->address = petrel_strdup(address);
    copy_targets(e, targets, n);
    return e;
}

int userdb_lookup_entry(const struct userdb_file *db, const char *address, bool login,
                        struct petrel_userdb_entry **entry_r)
{
    const struct userdb_record *r = userdb_find(db, USERDB_ACCOUNT, address);
    if (r != NULL) {
        *entry_r = account_entry(db, r, login);
        return PETREL_USERDB_FOUND;
    }
    if (login)
        return PETREL_USERDB_NOT_FOUND; /* aliases and catch-alls never log in */
    r = userdb_find(db, USERDB_ALIAS, address);
    if (r != NULL) {
        *entry_r = alias_entry(r->key, r->targets, r->ntargets);
        return PETREL_USERDB_FOUND;
    }
    const char *at = strrchr(address, '@');
    r = at != NULL ? userdb_find(db, USERDB_DOMAIN, at + 1) : NULL;
    if (r == NULL || r->catchall == NULL)
        return PETREL_USERDB_NOT_FOUND;
    char *target = r->catchall;
    *entry_r = alias_entry(address, &target, 1);
    (*entry_r)->catchall = true;
    return PETREL_USERDB_FOUND;
}

void userdb_entry_free(struct petrel_userdb_entry *e)
{
    if (e == NULL)
        return;
    free(e->address);
    for (size_t i = 0; i < e->ntargets; i++)
        free(e->targets[i]);
    free(e->targets);
    if (e->hash != NULL) {
        explicit_bzero(e->hash, strlen(e->hash));
        free(e->hash);
    }
    free(e);
}
