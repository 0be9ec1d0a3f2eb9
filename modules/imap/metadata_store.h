/* METADATA (RFC 5464) entries of one account, kept in a file of their own
 * (metadata_store.c): a mailbox name ("" for the server), an entry name
 * ("/private/..." or "/shared/...") and a value of bytes. Blocking: call
 * from a worker. */
#ifndef PETREL_IMAP_METADATA_STORE_H
#define PETREL_IMAP_METADATA_STORE_H

#include <stdbool.h>
#include <stddef.h>

/* Entries of one account, server and mailboxes together. */
#define METADATA_ENTRIES_MAX 128u
/* Bytes of one value. */
#define METADATA_VALUE_MAX (16u * 1024u)
/* Bytes of an entry name. */
#define METADATA_NAME_MAX 256u

struct imap_metadata_entry {
    char *mailbox, *entry;
    char *value; /* NUL-terminated for convenience; may hold NUL: use len */
    size_t len;
};

struct imap_metadata {
    struct imap_metadata_entry *v;
    size_t n;
};

/* data_dir/imap-metadata, made at start; empty: no store (NO [UNAVAILABLE]). */
extern char imap_metadata_dir[4096];
int imap_metadata_start(const char *data_dir, const char **error_r);

void imap_metadata_put(struct imap_metadata *m, const char *mailbox, const char *entry,
                       const char *value, size_t len);
void imap_metadata_free(struct imap_metadata *m);

/* Read user's entries, let fn look or change them (setting *changed_r),
 * and write them back when changed, all under one lock. fn returns 0 or
 * an error that is passed on (nothing written). */
typedef int imap_metadata_fn(void *arg, struct imap_metadata *m, bool *changed_r);
int imap_metadata_change(const char *user, imap_metadata_fn *fn, void *arg);

#endif
