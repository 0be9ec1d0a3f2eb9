/* Connections as a protocol module sees them. The core owns the socket, the
 * buffers, TLS and the timeouts; a module receives complete lines (or chunks
 * of a size it asked for) and answers by queueing output. Every callback runs
 * on the connection's I/O thread and must not block: blocking work goes to
 * the worker pool with petrel_conn_submit(). */
#ifndef PETREL_CONN_H
#define PETREL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/log.h>

struct petrel_conn;

struct petrel_protocol {
    const char *name;
    /* Bytes of per-connection state the core allocates (zeroed) for the
     * module: petrel_conn_session(). */
    size_t session_size;
    /* A client passed the rules: send the greeting. */
    void (*connect)(struct petrel_conn *conn);
    /* One input line, terminator (LF or CRLF) removed, NUL-terminated. */
    void (*line)(struct petrel_conn *conn, char *line, size_t len);
    /* Part of a chunk asked for with petrel_conn_read_chunk(); last is true
     * on its final part, after which input is lines again. */
    void (*chunk)(struct petrel_conn *conn, const char *data, size_t len, bool last);
    /* A line longer than the listener's limit was read and thrown away. */
    void (*line_too_long)(struct petrel_conn *conn);
    /* The idle timeout expired: queue a goodbye; the core then closes. */
    void (*timeout)(struct petrel_conn *conn);
    /* The rules refused the client: queue the protocol's refusal; the core
     * closes after it is sent. Without this callback the core just closes. */
    void (*refuse)(struct petrel_conn *conn, const char *reason);
    /* TLS started by petrel_conn_starttls() is up (or failed: ok false, and
     * the core closes the connection after this returns). */
    void (*tls_ready)(struct petrel_conn *conn, bool ok);
    /* The connection is going away: free what the session holds. */
    void (*close)(struct petrel_conn *conn);
    /* The server is stopping: queue a goodbye; the core closes after it is
     * sent. Called between commands, never while a job is pending. */
    void (*shutdown)(struct petrel_conn *conn);
    /* Another thread woke the connection with petrel_conn_wake() (new mail
     * for an IDLE session, say). Runs on the connection's I/O thread when
     * the module may act: not during a job, a delay or a STARTTLS. Since
     * ABI minor 1. */
    void (*wakeup)(struct petrel_conn *conn);
    /* An outbound connection (petrel_conn_connect) could not be opened:
     * the name did not resolve, every address refused or timed out, or the
     * TLS handshake or certificate check failed. close follows. Since ABI
     * minor 6. */
    void (*connect_failed)(struct petrel_conn *conn, const char *reason);
    /* Everything queued has been sent, after petrel_conn_want_drained():
     * queue the next part of a large body. Since ABI minor 6. */
    void (*output_drained)(struct petrel_conn *conn);
    void *reserved[2];
};

/* Output. Writes are queued and sent as the socket allows; a module that
 * queues more than the listener's output limit has its input paused until
 * the peer reads (back-pressure). False means the connection is closing. */
bool petrel_conn_write(struct petrel_conn *conn, const void *data, size_t len);
bool petrel_conn_printf(struct petrel_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Close after everything queued has been sent. */
void petrel_conn_close(struct petrel_conn *conn);

/* Start TLS on a plaintext connection after the queued reply is sent. Input
 * the client sent before the handshake is discarded (RFC 3207 section 4.2,
 * the STARTTLS injection attack). tls_ready is called when done. */
bool petrel_conn_starttls(struct petrel_conn *conn);
bool petrel_conn_is_tls(const struct petrel_conn *conn);
/* Whether the listener offers STARTTLS (a certificate is configured and the
 * listener's tls setting is "starttls"). */
bool petrel_conn_can_starttls(const struct petrel_conn *conn);
/* Server name the client asked for with SNI, or NULL. */
const char *petrel_conn_tls_sni(const struct petrel_conn *conn);
/* The negotiated protocol ("TLSv1.3") and cipher suite
 * ("TLS_AES_256_GCM_SHA384") for trace headers and logs, or NULL before
 * TLS. Since ABI minor 3. */
const char *petrel_conn_tls_version(const struct petrel_conn *conn);
const char *petrel_conn_tls_cipher(const struct petrel_conn *conn);

/* In the line and line_too_long callbacks: whether the line ended with
 * CRLF rather than a bare LF (SMTP DATA must tell them apart: RFC 5321
 * section 4.1.1.4).
 * Since ABI minor 2. */
bool petrel_conn_line_crlf(const struct petrel_conn *conn);

/* Whether the client has sent anything not yet handed to the module
 * (read or still in the socket). SMTP refuses clients that talk before
 * the greeting. Since ABI minor 2. */
bool petrel_conn_has_input(const struct petrel_conn *conn);

/* A transfer made of many exchanges, such as a message sent in BDAT
 * chunks: while on, the server's answers do not give the client a fresh
 * idle_timeout, so the whole transfer is held to min_data_rate, not each
 * exchange. Turn it off before the answer that ends the transfer. Since
 * ABI minor 5. */
void petrel_conn_transfer(struct petrel_conn *conn, bool on);

/* The idle timeout of this connection from now on, in seconds (IMAP: short
 * before login, 30 minutes in IDLE). Since ABI minor 6. */
void petrel_conn_set_timeout(struct petrel_conn *conn, unsigned seconds);

/* Call output_drained once everything queued so far has been sent, so a
 * large body goes out a part at a time instead of whole into memory.
 * Since ABI minor 6. */
void petrel_conn_want_drained(struct petrel_conn *conn);
/* The output the connection queues before back-pressure (its listener's
 * max_output): a module that streams writes pieces no larger, since
 * output queued beyond four times it closes the connection. Since ABI
 * minor 8. */
size_t petrel_conn_max_output(const struct petrel_conn *conn);

/* Compression (RFC 4978 COMPRESS=DEFLATE; any protocol may use it): from
 * now on the connection sends raw deflate (RFC 1951, no zlib header) and
 * inflates what it receives, below the module and above TLS. Output queued
 * before the call (the answer that accepts compression) goes out as it
 * is; output queued after is compressed, with a sync flush at the end of
 * each batch so the peer sees whole answers. Input after the line being
 * handled is inflated, including what the client pipelined behind the
 * command: held (held_len bytes, may be NULL) is what of it the module
 * already took and kept unparsed, lines rejoined with their terminators,
 * and is inflated first. Call it from the line callback of that command
 * or between commands. Corrupt input, or a stream the client ends, closes the
 * connection with a log line; inflated input is held to the same line and
 * buffer limits as plain input. Between exchanges zlib's memory is given
 * back but for the client's history. False if compression is already on,
 * or the connection is relayed, starting TLS, closing or not open. Since
 * ABI minor 9. */
bool petrel_conn_start_deflate(struct petrel_conn *conn, const void *held, size_t held_len);
bool petrel_conn_deflating(const struct petrel_conn *conn);

/* --- outbound connections (since ABI minor 6) --- */

struct petrel_connect {
    const char *host; /* an IP address, or a name resolved on a worker */
    int port;
    const char *bind_address; /* local address to connect from; NULL: any */
    int family;               /* AF_UNSPEC (both, as resolved), AF_INET or AF_INET6 */
    unsigned connect_timeout; /* seconds per address, TLS handshake included; 0: 30 */
    unsigned idle_timeout;    /* seconds once open, at most a day; 0: 300 */
    size_t max_line;          /* longest line read; 0: 8192 */
    size_t max_output;        /* output queued before back-pressure; 0: 256 KiB */
    bool tls;                 /* TLS from the start; else petrel_conn_starttls() later */
    const char *tls_name;     /* SNI and the name checked; NULL: host, if a name */
    const char *tls_ca_file;  /* PEM trust anchors; NULL: the system's store */
    bool tls_verify;          /* fail on a bad certificate; false: only record it */
};

/* Open a client connection from the current I/O thread. It lives like an
 * accepted one, with the same protocol callbacks: connect when it is open
 * (after the TLS handshake for tls), then line, chunk, ... and close; or
 * connect_failed(reason) and close if it cannot be opened. Addresses of a
 * name are tried in turn. The session (proto->session_size bytes, zeroed)
 * may be filled as soon as this returns: no callback runs before. NULL
 * with *error_r for bad arguments or off an I/O thread. */
struct petrel_ctx;
struct petrel_conn *petrel_conn_connect(struct petrel_ctx *module,
                                        const struct petrel_protocol *proto,
                                        const struct petrel_connect *how, const char **error_r);
/* Relay bytes both ways between two open connections of the same I/O
 * thread (a proxy: the client's and the back-end's), as they are, with
 * back-pressure; the module's line and chunk callbacks are not called for
 * them again. When either side closes, the other sends what it holds and
 * closes too; close is called for both. False if either is busy, closing,
 * not open, already relayed, or on another thread. */
bool petrel_conn_relay(struct petrel_conn *a, struct petrel_conn *b);

/* Whether the peer's certificate chain verified against the trust anchors
 * and the expected name; the reason when not ("self-signed certificate",
 * "hostname mismatch"). A verified STARTTLS or tls connection only. */
bool petrel_conn_tls_verified(const struct petrel_conn *conn, const char **reason_r);
/* The peer's certificate at depth (0: its own, then the chain it sent) in
 * DER, appended to der; false past the end. For DANE (RFC 7672). */
struct petrel_buf;
bool petrel_conn_tls_peer_cert(const struct petrel_conn *conn, size_t depth,
                               struct petrel_buf *der);

/* Deliver the next len bytes through the chunk callback (a literal, a BDAT
 * chunk), in parts as they arrive, then go back to lines. */
void petrel_conn_read_chunk(struct petrel_conn *conn, size_t len);

/* State and identity. */
void *petrel_conn_session(struct petrel_conn *conn);
uint64_t petrel_conn_id(const struct petrel_conn *conn);
/* Client address as text ("192.0.2.1", "2001:db8::1"), after the PROXY
 * protocol if the listener takes it. */
const char *petrel_conn_peer(const struct petrel_conn *conn);
int petrel_conn_peer_port(const struct petrel_conn *conn);
const char *petrel_conn_local(const struct petrel_conn *conn);
int petrel_conn_local_port(const struct petrel_conn *conn);
/* The module's settings struct of the configuration generation this
 * connection was accepted under: stable for the connection's whole life. */
const void *petrel_conn_config(const struct petrel_conn *conn);
/* What the module's derive built from those settings (petrel/module.h), or
 * NULL. Since ABI minor 6. */
void *petrel_conn_derived(const struct petrel_conn *conn);

/* Error control of the service (seed 3.3.2): the limits the administrator
 * set, for the protocol to enforce. A value of 0 means no limit. */
struct petrel_error_limits {
    unsigned max_errors;
    unsigned max_auth_errors;
};
void petrel_conn_error_limits(const struct petrel_conn *conn, struct petrel_error_limits *r);

void petrel_conn_log(struct petrel_conn *conn, enum petrel_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Blocking work. work runs on a worker thread and must not touch conn; done
 * then runs on the connection's I/O thread. While a job is pending no input
 * reaches the module (one handler at a time per connection). done is always
 * called, with closing true if the connection went away meanwhile (free arg
 * and do not write). Returns false when the pool's queue is full: answer with
 * a temporary failure. */
typedef void petrel_work_fn(void *arg);
typedef void petrel_done_fn(struct petrel_conn *conn, void *arg, bool closing);
bool petrel_conn_submit(struct petrel_conn *conn, petrel_work_fn *work, petrel_done_fn *done,
                        void *arg);

/* Hold the connection for ms milliseconds (at most 60000): no input reaches
 * the module and the idle timer does not run. Then done(conn, arg, closing)
 * runs on the connection's I/O thread, as after petrel_conn_submit(). For
 * delays that must not cost a thread, such as after a failed login. False
 * if a job or another delay is pending or the connection is closing. */
bool petrel_conn_delay(struct petrel_conn *conn, unsigned ms, petrel_done_fn *done, void *arg);

/* Waking a connection from another thread. A session asks for its waker on
 * its I/O thread and hands it to whatever may wake it (a storage watcher);
 * petrel_conn_wake() may then be called from any thread, any number of
 * times: wakes are coalesced and reach the protocol's wakeup callback. The
 * waker stays valid, and harmless, after the connection is gone, until every
 * holder has released it. */
struct petrel_conn_waker;
struct petrel_conn_waker *petrel_conn_waker_get(struct petrel_conn *conn);
void petrel_conn_wake(struct petrel_conn_waker *waker);
void petrel_conn_waker_release(struct petrel_conn_waker *waker);

#endif
