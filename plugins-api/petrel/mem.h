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

/* The server-wide budget for message data held in memory
 * (server.message_memory): a module takes bytes before it buffers message
 * content and gives them back when they leave memory. When take fails the
 * budget is spent: write to disk (or flush) instead of buffering, so a
 * crowd of clients parked in DATA cannot exhaust the server's memory.
 * Thread-safe. Since ABI minor 4. */
_Bool petrel_membudget_take(size_t n);
void petrel_membudget_release(size_t n);
size_t petrel_membudget_used(void);
/* For a buffer that grows: *held is what its owner took so far. Make it
 * cover want bytes beyond the first free_bytes (which every holder may
 * keep without the budget), taking in 64 KiB steps; false when the budget
 * is spent. drop gives back all of *held beyond keep. */
_Bool petrel_membudget_hold(size_t *held, size_t want, size_t free_bytes);
void petrel_membudget_drop(size_t *held, size_t keep);
/* The core sets the budget from the configuration (main thread, core
 * only: not for modules). */
void petrel_membudget_set(size_t limit);

#endif
