/* userdb_file: the account database file, its records and its index.
 * Private to the module. */
#ifndef PETREL_USERDB_FILE_H
#define PETREL_USERDB_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USERDB_ADDRESS_MAX 254 /* RFC 5321 path limit less the brackets */
#define USERDB_TARGETS_MAX 1000
#define USERDB_LINE_MAX 65536

enum userdb_kind { USERDB_DOMAIN, USERDB_ACCOUNT, USERDB_ALIAS, USERDB_FORWARD };

struct userdb_record {
    enum userdb_kind kind;
    unsigned line;            /* 1-based line in the file */
    char *key;                /* domain name, or address; lower case */
    char *hash;               /* account: crypt(3) hash */
    long long quota_bytes;    /* account: 0 = no limit */
    long long quota_messages; /* account: 0 = no limit */
    bool disabled;            /* account */
    bool keep;                /* forward: keep a copy in the mailbox */
    char *catchall;           /* domain: address for unknown local parts */
    char **targets;           /* alias, forward: NULL-terminated */
    size_t ntargets;
};

/* One problem found while reading, reported with its line. */
struct userdb_error {
    unsigned line;
    char message[160];
};

struct userdb_file {
    struct userdb_record *records;
    size_t count, capacity;
    struct userdb_error *errors; /* lines that were skipped */
    size_t nerrors;
    /* index: open addressing over records, by kind and key */
    size_t *slots;
    size_t nslots;
};

/* Parse a whole file's text. Bad lines are skipped and listed in errors;
 * the rest loads. Never fails on content. */
void userdb_parse(const char *text, size_t len, struct userdb_file *db);
void userdb_free(struct userdb_file *db);
/* The record of that kind and key (already lower case), or NULL. */
const struct userdb_record *userdb_find(const struct userdb_file *db, enum userdb_kind kind,
                                        const char *key);
/* The file text for a record, one line without its newline, into buf.
 * False if it does not fit. */
bool userdb_format(const struct userdb_record *r, char *buf, size_t size);
/* Lower-case and check an address (local@domain); false if invalid. */
bool userdb_address_normalise(const char *in, char *out, size_t size);
bool userdb_domain_valid(const char *domain);

#endif
