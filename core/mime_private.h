/* Header field helpers shared by the MIME parser (core/mime.c) and
 * implemented in core/mime_header.c. Not installed. */
#ifndef PETREL_CORE_MIME_PRIVATE_H
#define PETREL_CORE_MIME_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/mime.h>

/* Parameters kept per field: more are dropped. */
#define PETREL_MIME_MAX_PARAMS 64

/* Parse "type/subtype *(; param)" (subtype_r non-NULL) or "type *(; param)"
 * (Content-Disposition). Returns false, with nothing allocated, when the
 * value has no valid type; parameters are parsed only on success. */
bool petrel_mime_parse_type_params(const char *value, char **type_r, char **subtype_r,
                                   struct petrel_mime_param **params_r, unsigned int *count_r);
/* The first token of a structured value, comments skipped, lower-cased;
 * NULL when there is none (Content-Transfer-Encoding). */
char *petrel_mime_first_token(const char *value);
void petrel_mime_params_free(struct petrel_mime_param *params, unsigned int count);

#endif
