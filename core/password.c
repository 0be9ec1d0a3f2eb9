/* crypt(3) password hashes through libxcrypt's reentrant interface. */
#include "config.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/password.h>

static const char *const prefixes[] = {"$y$", "$6$", "$2b$"};

/* Scheme prefixes other systems put before a crypt hash (Dovecot). */
static const char *const import_schemes[] = {"{CRYPT}", "{YESCRYPT}", "{SHA512-CRYPT}",
                                             "{BLF-CRYPT}"};

static bool known_prefix(const char *hash)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    }
    /* bcrypt's older variants are the same algorithm. */
    return strncmp(hash, "$2a$", 4) == 0 || strncmp(hash, "$2y$", 4) == 0;
}

bool petrel_password_hash_valid(const char *hash)
{
    /* A crypt hash is printable ASCII with no blanks or field separators;
     * SHA-512-crypt may name its cost ("$6$rounds=N$salt$..."). */
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./$";
    size_t len = strlen(hash);
    if (len < 10 || len > CRYPT_OUTPUT_SIZE - 1 || !known_prefix(hash))
        return false;
    size_t skip = 0;
    if (strncmp(hash, "$6$rounds=", 10) == 0) {
        skip = 10 + strspn(hash + 10, "0123456789");
        if (skip == 10 || hash[skip] != '$')
            return false;
    }
    return skip + strspn(hash + skip, chars) == len;
}

char *petrel_password_hash(const char *password, enum petrel_password_scheme scheme,
                           const char **error_r)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (strlen(password) > PETREL_PASSWORD_MAX) {
        *error_r = "password too long";
        return NULL;
    }
    /* count 0: the library's current default cost; NULL entropy: it reads
     * the kernel's random source itself. */
    if (crypt_gensalt_rn(prefixes[scheme], 0, NULL, 0, salt, sizeof(salt)) == NULL) {
        *error_r = "cannot make a salt";
        return NULL;
    }
    struct crypt_data *data = petrel_calloc(1, sizeof(*data));
    char *out = crypt_r(password, salt, data);
    char *hash = out != NULL && out[0] != '*' ? petrel_strdup(out) : NULL;
    explicit_bzero(data, sizeof(*data));
    free(data);
    if (hash == NULL)
        *error_r = "crypt failed";
    return hash;
}

char *petrel_password_import(const char *stored, const char **error_r)
{
    const char *hash = stored;
    if (stored[0] == '{') {
        hash = NULL;
        for (size_t i = 0; i < sizeof(import_schemes) / sizeof(import_schemes[0]); i++) {
            size_t n = strlen(import_schemes[i]);
            if (strncmp(stored, import_schemes[i], n) == 0)
                hash = stored + n;
        }
        if (hash == NULL) {
            *error_r = "unsupported password scheme (use yescrypt, SHA-512-crypt or bcrypt)";
            return NULL;
        }
    }
    if (!petrel_password_hash_valid(hash)) {
        *error_r = "not a yescrypt, SHA-512-crypt or bcrypt hash";
        return NULL;
    }
    return petrel_strdup(hash);
}

bool petrel_password_verify(const char *password, const char *hash)
{
    if (!petrel_password_hash_valid(hash) || strlen(password) > PETREL_PASSWORD_MAX)
        return false;
    struct crypt_data *data = petrel_calloc(1, sizeof(*data));
    const char *out = crypt_r(password, hash, data);
    size_t len = strlen(hash);
    bool ok = out != NULL && strlen(out) == len && petrel_memeq_const(out, hash, len);
    explicit_bzero(data, sizeof(*data));
    free(data);
    return ok;
}
