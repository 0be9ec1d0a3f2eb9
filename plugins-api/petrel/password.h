/* Password hashes in crypt(3) form (libxcrypt). New hashes are yescrypt;
 * SHA-512-crypt and bcrypt hashes are accepted, so accounts can be imported
 * from Dovecot passwd-files and /etc/shadow-style sources. Hashing is slow
 * on purpose: call these from a worker thread, not an I/O thread. */
#ifndef PETREL_PASSWORD_H
#define PETREL_PASSWORD_H

#include <stdbool.h>

/* Longest password accepted (libxcrypt takes at most 511 bytes); longer
 * ones are refused and never verify. */
#define PETREL_PASSWORD_MAX 511

enum petrel_password_scheme {
    PETREL_PASSWORD_YESCRYPT = 0, /* "$y$": the default */
    PETREL_PASSWORD_SHA512,       /* "$6$" */
    PETREL_PASSWORD_BCRYPT,       /* "$2b$" */
};

/* A new hash of password with a fresh random salt, or NULL with error_r. */
char *petrel_password_hash(const char *password, enum petrel_password_scheme scheme,
                           const char **error_r);

/* A stored hash as found in another system's file, normalised: a Dovecot
 * scheme prefix ({CRYPT}, {YESCRYPT}, {SHA512-CRYPT}, {BLF-CRYPT}) is
 * removed, and anything that is not a yescrypt, SHA-512-crypt or bcrypt
 * hash ({PLAIN}, DES, MD5-crypt, garbage) is refused. The result is
 * allocated; NULL with error_r when refused. */
char *petrel_password_import(const char *stored, const char **error_r);

/* True if the hash is one petrel_password_import() would keep as it is. */
bool petrel_password_hash_valid(const char *hash);

/* True if password matches hash. The computed hash is compared in constant
 * time; an invalid hash never matches. */
bool petrel_password_verify(const char *password, const char *hash);

#endif
