/* Outbound connections (petrel_conn_connect): resolve the host on a
 * worker, connect to its addresses in turn without blocking, optionally
 * start TLS and check the peer's certificate, then the connection lives
 * like an accepted one (conn.c). Whatever stops it before it opens is
 * reported once, through connect_failed. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include <petrel/buf.h>
#include <petrel/log.h>
#include <petrel/loop.h>
#include <petrel/mem.h>

#include "conn_private.h"
#include "server.h"
#include "tls.h"

#define CONNECT_TIMEOUT 30
#define IDLE_TIMEOUT 300
#define MAX_LINE 8192
#define MAX_OUTPUT (256 * 1024)
#define MAX_ADDRS 16 /* addresses of a name tried, at most */

struct petrel_outbound {
    struct petrel_listener_cfg cfg; /* its limits, shaped as a listener's */
    char *host;
    char *tls_name; /* SNI and the name checked; NULL for an address */
    char *ca_file;
    bool tls, verify, name_is_ip;
    bool started; /* the first step has run */
    int port, family;
    unsigned connect_timeout;
    struct sockaddr_storage bind;
    socklen_t bindlen;
    struct sockaddr_storage addrs[MAX_ADDRS];
    socklen_t addrlens[MAX_ADDRS];
    size_t naddrs, next; /* next: the address to try after this one */
    const char *resolve_error;
    char current[INET6_ADDRSTRLEN]; /* the address being tried */
    char why[256];                  /* why the last attempt failed */
};

void petrel_outbound_note(struct petrel_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->outbound->why, sizeof(c->outbound->why), fmt, ap);
    va_end(ap);
}

void petrel_outbound_free(struct petrel_outbound *out)
{
    if (out == NULL)
        return;
    free(out->host);
    free(out->tls_name);
    free(out->ca_file);
    free(out);
}

/* The connection is going away: if it never opened (connect was not
 * called), say why; close follows either way. */
void petrel_outbound_ending(struct petrel_conn *c)
{
    struct petrel_outbound *out = c->outbound;
    if (c->proto_open)
        return;
    c->proto_open = true;
    if (out->why[0] == '\0')
        petrel_outbound_note(c, "closed before it was open");
    petrel_conn_log(c, PETREL_LOG_INFO, "connection to %s port %d failed: %s", out->host, out->port,
                    out->why);
    if (c->proto->connect_failed != NULL)
        c->proto->connect_failed(c, out->why);
}

static void fail(struct petrel_conn *c)
{
    c->dead = true;
    petrel_conn_run(c);
}

static void opened(struct petrel_conn *c)
{
    struct sockaddr_storage peer, local;
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    if (getpeername(c->fd, (struct sockaddr *)&peer, &plen) < 0)
        memset(&peer, 0, sizeof(peer));
    if (getsockname(c->fd, (struct sockaddr *)&local, &llen) < 0)
        memset(&local, 0, sizeof(local));
    petrel_conn_set_addresses(c, (struct sockaddr *)&peer, (struct sockaddr *)&local);
    petrel_conn_log(c, PETREL_LOG_DEBUG, "connected to %s port %d", c->outbound->host,
                    c->outbound->port);
    if (c->outbound->tls) {
        if (!petrel_conn_tls_begin(c)) {
            petrel_outbound_note(c, "TLS setup failed");
            fail(c);
            return;
        }
        petrel_conn_set_deadline(c, c->outbound->connect_timeout);
    } else {
        petrel_conn_open_session(c);
    }
    petrel_conn_run(c);
}

/* Try the next address; when none is left, fail with the last reason. */
static void attempt(struct petrel_conn *c)
{
    struct petrel_outbound *out = c->outbound;
    while (out->next < out->naddrs) {
        const struct sockaddr *sa = (const struct sockaddr *)&out->addrs[out->next];
        socklen_t len = out->addrlens[out->next++];
        const void *a = sa->sa_family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
        if (inet_ntop(sa->sa_family, a, out->current, sizeof(out->current)) == NULL)
            petrel_strlcpy(out->current, "?", sizeof(out->current));
        if (c->fd >= 0)
            close(c->fd); /* the last address's socket, and its epoll entry */
        c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            petrel_outbound_note(c, "socket: %s", strerror(errno));
            continue;
        }
        if (out->bindlen > 0 && out->bind.ss_family != sa->sa_family) {
            /* Never from another source than the one asked for (SPF). */
            petrel_outbound_note(c, "%s port %d: not of the bind address's family", out->current,
                                 out->port);
            continue;
        }
        if (out->bindlen > 0 && bind(c->fd, (struct sockaddr *)&out->bind, out->bindlen) < 0) {
            petrel_outbound_note(c, "bind to the local address: %s", strerror(errno));
            continue;
        }
        petrel_conn_nodelay(c);
        if (connect(c->fd, sa, len) < 0 && errno != EINPROGRESS) {
            petrel_outbound_note(c, "%s port %d: %s", out->current, out->port, strerror(errno));
            continue;
        }
        if (!petrel_conn_watch(c, EPOLLOUT)) {
            petrel_outbound_note(c, "cannot watch the socket");
            break;
        }
        petrel_conn_set_deadline(c, out->connect_timeout);
        return;
    }
    fail(c);
}

static void start(struct petrel_conn *c);

void petrel_outbound_event(struct petrel_conn *c, unsigned events)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0 && !(events & (EPOLLERR | EPOLLHUP))) {
        c->state = PETREL_CONN_OPEN; /* from now on, the usual life */
        opened(c);
        return;
    }
    petrel_outbound_note(c, "%s port %d: %s", c->outbound->current, c->outbound->port,
                         strerror(err != 0 ? err : ECONNREFUSED));
    attempt(c);
}

void petrel_outbound_timeout(struct petrel_conn *c)
{
    if (!c->outbound->started) {
        c->outbound->started = true;
        start(c);
    } else if (c->job_pending) {
        petrel_conn_set_deadline(c, c->outbound->connect_timeout); /* the worker is slow */
    } else {
        petrel_outbound_note(c, "%s port %d: connection timed out", c->outbound->current,
                             c->outbound->port);
        attempt(c);
    }
}

/* --- resolving a name on a worker --- */

static void resolve_work(void *arg)
{
    struct petrel_outbound *out = arg;
    struct addrinfo hints = {.ai_family = out->family, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", out->port);
    int r = getaddrinfo(out->host, port, &hints, &res);
    if (r != 0) {
        out->resolve_error = gai_strerror(r);
        return;
    }
    for (struct addrinfo *ai = res; ai != NULL && out->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(out->addrs[0]))
            continue;
        memcpy(&out->addrs[out->naddrs], ai->ai_addr, ai->ai_addrlen);
        out->addrlens[out->naddrs++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (out->naddrs == 0)
        out->resolve_error = "no address of a usable family";
}

static void resolve_done(struct petrel_conn *c, void *arg, bool closing)
{
    struct petrel_outbound *out = arg;
    if (closing)
        return;
    if (out->resolve_error != NULL) {
        petrel_outbound_note(c, "cannot resolve %s: %s", out->host, out->resolve_error);
        fail(c);
        return;
    }
    attempt(c);
}

/* --- TLS as the client --- */

static bool parse_address(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len);

/* Every certificate problem is recorded, not fatal here: the result is
 * judged after the handshake (tls_verify) or left to the module (DANE). */
static int keep_going(int ok, X509_STORE_CTX *ctx)
{
    (void)ok;
    (void)ctx;
    return 1;
}

SSL *petrel_outbound_ssl(struct petrel_conn *c)
{
    struct petrel_outbound *out = c->outbound;
    const char *error = NULL;
    SSL_CTX *ctx = petrel_tls_client_ctx(out->ca_file, &error);
    if (ctx == NULL) {
        petrel_conn_log(c, PETREL_LOG_ERROR, "TLS client setup: %s", error);
        return NULL;
    }
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    SSL_set_connect_state(ssl);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, keep_going);
    const char *name = out->tls_name != NULL ? out->tls_name : out->host;
    bool ok = true;
    struct sockaddr_storage ignored;
    socklen_t ignored_len;
    if (parse_address(name, 0, &ignored, &ignored_len)) {
        /* An address: checked against the certificate's IP addresses, and
         * never sent as SNI (RFC 6066 section 3). */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

bool petrel_outbound_verified(struct petrel_conn *c)
{
    const char *why;
    if (!c->outbound->verify || petrel_conn_tls_verified(c, &why))
        return true;
    petrel_outbound_note(c, "TLS certificate of %s not trusted: %s", c->outbound->host, why);
    petrel_conn_log(c, PETREL_LOG_INFO, "%s", c->outbound->why);
    return false;
}

bool petrel_conn_tls_verified(const struct petrel_conn *c, const char **reason_r)
{
    if (c->ssl == NULL || !SSL_is_init_finished(c->ssl)) {
        *reason_r = "no TLS";
        return false;
    }
    if (SSL_get0_peer_certificate(c->ssl) == NULL) {
        *reason_r = "no certificate";
        return false;
    }
    long r = SSL_get_verify_result(c->ssl);
    *reason_r = r == X509_V_OK ? NULL : X509_verify_cert_error_string(r);
    return r == X509_V_OK;
}

bool petrel_conn_tls_peer_cert(const struct petrel_conn *c, size_t depth, struct petrel_buf *der)
{
    if (c->ssl == NULL)
        return false;
    /* The chain the peer sent starts with its own certificate on the
     * client side only; a server's omits the client's. */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c->ssl);
    size_t skip = c->outbound != NULL ? 0 : 1;
    X509 *cert = NULL;
    if (depth == 0 && skip == 1)
        cert = SSL_get0_peer_certificate(c->ssl);
    else if (chain != NULL && depth - skip < (size_t)sk_X509_num(chain))
        cert = sk_X509_value(chain, (int)(depth - skip));
    int len = cert != NULL ? i2d_X509(cert, NULL) : -1;
    if (len <= 0)
        return false;
    size_t room;
    unsigned char *p = (unsigned char *)petrel_buf_space(der, (size_t)len, &room);
    if (p == NULL || room < (size_t)len)
        return false;
    i2d_X509(cert, &p);
    petrel_buf_commit(der, (size_t)len);
    return true;
}

/* --- opening --- */

static bool parse_address(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof(*in);
        return true;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
        return true;
    }
    return false;
}

static const struct petrel_service_cfg *service_of(const struct petrel_config *cfg,
                                                   const struct petrel_ctx *module)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        if (strcmp(cfg->services[i].module, module->name) == 0)
            return &cfg->services[i];
    }
    return NULL;
}

struct petrel_conn *petrel_conn_connect(struct petrel_ctx *module,
                                        const struct petrel_protocol *proto,
                                        const struct petrel_connect *how, const char **error_r)
{
    struct petrel_loop *t = petrel_loop_current();
    if (t == NULL) {
        *error_r = "petrel_conn_connect() is called on an I/O thread";
        return NULL;
    }
    if (t->stopping) {
        *error_r = "the server is stopping";
        return NULL;
    }
    if (how->host == NULL || how->host[0] == '\0' || strlen(how->host) > 253 || how->port <= 0 ||
        how->port > 65535) {
        *error_r = "a host and a port from 1 to 65535 are needed";
        return NULL;
    }
    if (how->family != AF_UNSPEC && how->family != AF_INET && how->family != AF_INET6) {
        *error_r = "family is AF_UNSPEC, AF_INET or AF_INET6";
        return NULL;
    }
    struct petrel_outbound *out = petrel_calloc(1, sizeof(*out));
    if (how->bind_address != NULL &&
        !parse_address(how->bind_address, 0, &out->bind, &out->bindlen)) {
        free(out);
        *error_r = "bind_address is not an IP address";
        return NULL;
    }
    out->host = petrel_strdup(how->host);
    out->tls_name = how->tls_name != NULL ? petrel_strdup(how->tls_name) : NULL;
    out->ca_file = how->tls_ca_file != NULL ? petrel_strdup(how->tls_ca_file) : NULL;
    out->tls = how->tls;
    out->verify = how->tls_verify;
    out->port = how->port;
    out->family = how->family;
    out->connect_timeout = how->connect_timeout ? how->connect_timeout : CONNECT_TIMEOUT;
    out->cfg.max_line = how->max_line ? (long long)how->max_line : MAX_LINE;
    out->cfg.max_output = how->max_output ? (long long)how->max_output : MAX_OUTPUT;
    out->cfg.idle_timeout = how->idle_timeout == 0      ? IDLE_TIMEOUT
                            : how->idle_timeout > 86400 ? 86400
                                                        : how->idle_timeout;
    out->name_is_ip = parse_address(how->host, how->port, &out->addrs[0], &out->addrlens[0]);
    if (out->name_is_ip) {
        out->naddrs = 1;
        if (how->family != AF_UNSPEC && out->addrs[0].ss_family != how->family) {
            petrel_outbound_free(out);
            *error_r = "host is an address of the other family";
            return NULL;
        }
    }

    pthread_rwlock_rdlock(&petrel_server.gen_lock);
    struct petrel_config *cfg = petrel_config_ref(petrel_server.cfg);
    pthread_rwlock_unlock(&petrel_server.gen_lock);
    const struct petrel_service_cfg *scfg = service_of(cfg, module);
    if (scfg == NULL) {
        petrel_config_unref(cfg);
        petrel_outbound_free(out);
        *error_r = "the module is not a configured service";
        return NULL;
    }
    struct petrel_conn *c = petrel_conn_new(t, module, proto, &out->cfg, scfg, cfg);
    c->outbound = out;
    c->state = PETREL_CONN_CONNECTING;
    /* The first step runs from the loop, so no callback comes before the
     * caller has its handle and filled the session. */
    petrel_conn_set_deadline(c, 0);
    return c;
}

/* The deadline of 0 set at creation lands here first: resolve the name,
 * or try the address. */
static void start(struct petrel_conn *c)
{
    if (c->outbound->naddrs > 0) {
        attempt(c);
        return;
    }
    if (!petrel_conn_submit(c, resolve_work, resolve_done, c->outbound)) {
        petrel_outbound_note(c, "cannot resolve %s: no worker free", c->outbound->host);
        fail(c);
        return;
    }
    petrel_outbound_note(c, "cannot resolve %s: timed out", c->outbound->host);
    petrel_conn_set_deadline(c, c->outbound->connect_timeout);
}
