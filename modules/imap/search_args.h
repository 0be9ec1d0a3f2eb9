/* A small builder of SEARCH argument trees from text, for the unit test
 * and the fuzzer: atoms, "quoted strings" with \ escapes, {n}\r\n literals
 * and parenthesised lists, separated by blanks. Not the command reader:
 * only what exercising the SEARCH compiler needs. */
#ifndef PETREL_IMAP_SEARCH_ARGS_H
#define PETREL_IMAP_SEARCH_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "imap_arg.h"

#define SEARCH_ARGS_MAX_DEPTH 64u
#define SEARCH_ARGS_MAX_ITEMS 10000u

struct search_args {
    struct imap_arg *args;
    size_t count;
    size_t items; /* built so far, against SEARCH_ARGS_MAX_ITEMS */
};

/* False on a syntax error (unbalanced, bad escape, too deep or large). */
bool search_args_build(const char *text, size_t len, struct search_args *out);
void search_args_free(struct search_args *a);

#endif
