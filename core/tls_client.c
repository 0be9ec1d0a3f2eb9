/* OpenSSL client contexts for outbound connections, one per trust anchor
 * file (NULL: the system's store), made on first use and shared by every
 * thread: loading a CA store per connection would cost milliseconds. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include <petrel/mem.h>

#include "tls.h"

#define MAX_CLIENT_CTX 32 /* distinct CA files; more is a module's mistake */

static struct {
    char *ca_file;
    SSL_CTX *ctx;
} cache[MAX_CLIENT_CTX];
static size_t ncache;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static SSL_CTX *make(const char *ca_file, const char **error_r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        *error_r = petrel_tls_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        *error_r = petrel_tls_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *petrel_tls_client_ctx(const char *ca_file, const char **error_r)
{
    SSL_CTX *ctx = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ncache && ctx == NULL; i++) {
        if (ca_file == NULL ? cache[i].ca_file == NULL
                            : cache[i].ca_file != NULL && strcmp(cache[i].ca_file, ca_file) == 0)
            ctx = cache[i].ctx;
    }
    if (ctx == NULL && ncache == MAX_CLIENT_CTX)
        *error_r = "too many distinct CA files";
    else if (ctx == NULL && (ctx = make(ca_file, error_r)) != NULL) {
        cache[ncache].ca_file = ca_file != NULL ? petrel_strdup(ca_file) : NULL;
        cache[ncache++].ctx = ctx;
    }
    pthread_mutex_unlock(&lock);
    return ctx;
}

void petrel_tls_client_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ncache; i++) {
        SSL_CTX_free(cache[i].ctx);
        free(cache[i].ca_file);
    }
    ncache = 0;
    pthread_mutex_unlock(&lock);
}
