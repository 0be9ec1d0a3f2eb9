#ifndef PETREL_CORE_SELFSIGNED_H
#define PETREL_CORE_SELFSIGNED_H

/* Write a new self-signed certificate for hostname (EC P-256, ten years,
 * subjectAltName DNS:hostname) and its key (mode 0600). */
int petrel_selfsigned_write(const char *hostname, const char *cert_path, const char *key_path,
                            const char **error_r);

#endif
