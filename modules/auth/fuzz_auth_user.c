/* libFuzzer target for the auth module's user-name normalisation (the
 * authcid and authzid a client sends, after SASL). The first byte splits
 * the input into the name and the primary domain. Whatever comes in: a
 * refused name yields nothing; an accepted one is NUL-terminated within
 * the buffer and PETREL_AUTH_USER_MAX, holds an '@' with something on
 * both sides, has no control, space or upper-case ASCII, is its own
 * normal form, and the same name in other ASCII case normalises to the
 * same account. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_text(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] < size - 1 ? data[0] : size - 1;
    char *name = dup_text(data + 1, split);
    char *primary = dup_text(data + 1 + split, size - 1 - split);
    char out[PETREL_AUTH_USER_MAX + 1], again[PETREL_AUTH_USER_MAX + 1];
    if (auth_username_canonical(name, primary, out, sizeof(out))) {
        size_t n = strnlen(out, sizeof(out));
        const char *at = strchr(out, '@');
        if (n == sizeof(out) || n > PETREL_AUTH_USER_MAX || at == NULL || at == out ||
            out[n - 1] == '@')
            abort();
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)out[i];
            if (c <= 0x20 || c == 0x7f || (c >= 'A' && c <= 'Z'))
                abort();
        }
        if (!auth_username_canonical(out, primary, again, sizeof(again)) || strcmp(out, again) != 0)
            abort(); /* not its own normal form */
        for (char *p = name; *p != '\0'; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
        if (!auth_username_canonical(name, primary, again, sizeof(again)) ||
            strcmp(out, again) != 0)
            abort(); /* case made another account */
    }
    free(name);
    free(primary);
    return 0;
}
