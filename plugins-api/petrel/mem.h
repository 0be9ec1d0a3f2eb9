/* Memory helpers. Running out of memory aborts with a log line: overload is
 * refused earlier by limits, so thousands of untested NULL paths are not
 * worth having (Postfix mymalloc, Dovecot i_malloc). */
#ifndef PETREL_MEM_H
#define PETREL_MEM_H

#include <stddef.h>

void *petrel_malloc(size_t size);
void *petrel_calloc(size_t nmemb, size_t size);
void *petrel_realloc(void *ptr, size_t size);
/* Grow an array of nmemb elements of size bytes, checking for overflow. */
void *petrel_reallocarray(void *ptr, size_t nmemb, size_t size);
char *petrel_strdup(const char *s);
char *petrel_strndup(const char *s, size_t n);
/* Bounded formatted copy: always NUL-terminates, returns false on truncation. */
_Bool petrel_strlcpy(char *dst, const char *src, size_t size);
_Bool petrel_snprintf(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Compare two byte strings in time that depends only on len. */
int petrel_memeq_const(const void *a, const void *b, size_t len);

#endif
