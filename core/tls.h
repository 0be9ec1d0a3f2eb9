/* TLS contexts built from a configuration generation: the default
 * certificate, one per listener that names its own, and one per domain for
 * SNI. A reload builds new ones, so a renewed certificate takes effect on
 * SIGHUP without dropping connections. */
#ifndef PETREL_CORE_TLS_H
#define PETREL_CORE_TLS_H

#include <openssl/ssl.h>

#include "cfg.h"

void petrel_tls_global_init(void);
/* Fill cfg->tls_state and each TLS listener's ssl_ctx. */
int petrel_tls_prepare(struct petrel_config *cfg, const char **error_r);
void petrel_tls_state_free(struct petrel_tls_state *st);
void petrel_tls_ctx_free(void *ssl_ctx);
/* The shared client context for outbound connections trusting ca_file
 * (NULL: the system's store); NULL with *error_r if it cannot be made. */
SSL_CTX *petrel_tls_client_ctx(const char *ca_file, const char **error_r);
void petrel_tls_client_free(void);
/* Text of the last OpenSSL error of this thread (clears the queue). */
const char *petrel_tls_error(void);

#endif
