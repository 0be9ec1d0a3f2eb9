/* Allocation that aborts on failure, and bounded string helpers. */
#include "config.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>

static void out_of_memory(size_t size)
{
    petrel_log(PETREL_LOG_ERROR, "core", "out of memory allocating %zu bytes", size);
    abort();
}

void *petrel_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *petrel_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        out_of_memory(nmemb * size);
    return p;
}

void *petrel_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *petrel_reallocarray(void *ptr, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        out_of_memory(SIZE_MAX);
    return petrel_realloc(ptr, nmemb * size);
}

char *petrel_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = petrel_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *petrel_strdup(const char *s) { return petrel_strndup(s, SIZE_MAX); }

bool petrel_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size == 0)
        return false;
    if (len >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

bool petrel_snprintf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < size;
}

int petrel_memeq_const(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

static atomic_size_t budget_used, budget_limit = 64u << 20;

_Bool petrel_membudget_take(size_t n)
{
    size_t used = atomic_load(&budget_used);
    do {
        if (n > atomic_load(&budget_limit) || used > atomic_load(&budget_limit) - n)
            return false;
    } while (!atomic_compare_exchange_weak(&budget_used, &used, used + n));
    return true;
}

void petrel_membudget_release(size_t n) { atomic_fetch_sub(&budget_used, n); }

size_t petrel_membudget_used(void) { return atomic_load(&budget_used); }

#define BUDGET_STEP 65536u

_Bool petrel_membudget_hold(size_t *held, size_t want, size_t free_bytes)
{
    if (want <= *held + free_bytes)
        return 1;
    size_t need = want - free_bytes - *held;
    size_t step = (need + BUDGET_STEP - 1) / BUDGET_STEP * BUDGET_STEP;
    if (!petrel_membudget_take(step))
        return 0;
    *held += step;
    return 1;
}

void petrel_membudget_drop(size_t *held, size_t keep)
{
    if (*held > keep) {
        petrel_membudget_release(*held - keep);
        *held = keep;
    }
}

void petrel_membudget_set(size_t limit) { atomic_store(&budget_limit, limit); }
