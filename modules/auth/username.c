/* The name a client logs in with, as the account database knows it: no
 * I/O, so the fuzzer drives it directly (modules/auth/fuzz_auth_user.c). */
#include <string.h>

#include <petrel/mem.h>

#include "auth_private.h"

bool auth_username_canonical(const char *in, const char *primary, char *out, size_t size)
{
    char full[PETREL_AUTH_USER_MAX + 2];
    if (strchr(in, '@') == NULL) {
        if (!petrel_snprintf(full, sizeof(full), "%s@%s", in, primary))
            return false;
        in = full;
    }
    size_t n = strlen(in);
    if (n >= size || n > PETREL_AUTH_USER_MAX || in[0] == '@' || in[n - 1] == '@')
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c != '\0' && (c <= 0x20 || c == 0x7f))
            return false;
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return true;
}
