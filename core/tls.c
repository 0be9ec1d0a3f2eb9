/* OpenSSL server contexts with safe defaults. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "cfg_error.h"
#include "tls.h"

struct sni_entry {
    char *name; /* lower case; "*.example.com" matches one label */
    SSL_CTX *ctx;
};

struct petrel_tls_state {
    SSL_CTX *def;
    struct sni_entry *sni;
    size_t nsni;
};

void petrel_tls_global_init(void)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}

const char *petrel_tls_error(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_get_error();
    if (e == 0)
        return "unknown TLS error";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

static bool sni_match(const char *pattern, const char *name)
{
    if (strncmp(pattern, "*.", 2) == 0) {
        const char *dot = strchr(name, '.');
        return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct petrel_tls_state *st = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < st->nsni; i++) {
        if (sni_match(st->sni[i].name, name)) {
            SSL_set_SSL_CTX(ssl, st->sni[i].ctx);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    /* Unknown name: go on with the listener's certificate. */
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *ctx_new(const struct petrel_config *cfg, const char *cert, const char *key,
                        const char **error_r)
{
    const struct petrel_tls_cfg *t = &cfg->tls;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        *error_r = petrel_cfg_error("TLS: %s", petrel_tls_error());
        return NULL;
    }
    int minv = strcmp(t->min_protocol, "TLSv1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Idle connections give their TLS buffers back (kilobytes, not tens). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"petrel", 6);
    const char *what = NULL;
    if (SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1)
        what = "tls.ciphers";
    else if (SSL_CTX_set_ciphersuites(ctx, t->ciphersuites) != 1)
        what = "tls.ciphersuites";
    else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        what = cert;
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        what = key;
    else if (SSL_CTX_check_private_key(ctx) != 1)
        what = key;
    if (what != NULL) {
        *error_r = petrel_cfg_error("TLS: %s: %s", what, petrel_tls_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, cfg->tls_state);
    return ctx;
}

void petrel_tls_ctx_free(void *ssl_ctx) { SSL_CTX_free(ssl_ctx); }

void petrel_tls_state_free(struct petrel_tls_state *st)
{
    if (st == NULL)
        return;
    SSL_CTX_free(st->def);
    for (size_t i = 0; i < st->nsni; i++) {
        free(st->sni[i].name);
        SSL_CTX_free(st->sni[i].ctx);
    }
    free(st->sni);
    free(st);
}

/* The error text lives in the buffer petrel_cfg_error() writes: copy first. */
static int prefix_error(const char *where, const char **error_r)
{
    char tmp[512];
    petrel_strlcpy(tmp, *error_r, sizeof(tmp));
    *error_r = petrel_cfg_error("%s: %s", where, tmp);
    return -1;
}

static int prepare_listeners(struct petrel_config *cfg, const char **error_r)
{
    struct petrel_tls_state *st = cfg->tls_state;
    for (size_t i = 0; i < cfg->nservices; i++) {
        for (size_t j = 0; j < cfg->services[i].nlisteners; j++) {
            struct petrel_listener_cfg *l = &cfg->services[i].listeners[j];
            if (l->tls_mode == PETREL_TLS_NONE)
                continue;
            if (l->certificate != NULL) {
                l->ssl_ctx = ctx_new(cfg, l->certificate, l->key, error_r);
                if (l->ssl_ctx == NULL)
                    return prefix_error(l->where, error_r);
            } else if (st->def != NULL) {
                SSL_CTX_up_ref(st->def);
                l->ssl_ctx = st->def;
            } else {
                *error_r = petrel_cfg_error("%s: tls = \"%s\" needs a certificate: set "
                                            "tls.certificate and tls.key in petrel.conf, or "
                                            "certificate and key in the listener",
                                            l->where, l->tls);
                return -1;
            }
        }
    }
    return 0;
}

int petrel_tls_prepare(struct petrel_config *cfg, const char **error_r)
{
    const struct petrel_tls_cfg *t = &cfg->tls;
    if (t->random_file != NULL && RAND_load_file(t->random_file, 1024) <= 0) {
        *error_r =
            petrel_cfg_error("%s: tls.random_file '%s' cannot be read", cfg->path, t->random_file);
        return -1;
    }
    struct petrel_tls_state *st = petrel_calloc(1, sizeof(*st));
    cfg->tls_state = st;
    if (t->certificate != NULL) {
        st->def = ctx_new(cfg, t->certificate, t->key, error_r);
        if (st->def == NULL)
            return -1;
    }
    st->sni = petrel_calloc(t->ndomains, sizeof(*st->sni));
    for (size_t i = 0; i < t->ndomains; i++) {
        SSL_CTX *ctx = ctx_new(cfg, t->domains[i].certificate, t->domains[i].key, error_r);
        if (ctx == NULL)
            return prefix_error(t->domains[i].name, error_r);
        st->sni[i].ctx = ctx;
        st->sni[i].name = petrel_strdup(t->domains[i].name);
        st->nsni++;
    }
    return prepare_listeners(cfg, error_r);
}
