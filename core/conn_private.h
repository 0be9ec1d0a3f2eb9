/* The connection as the core sees it. */
#ifndef PETREL_CORE_CONN_PRIVATE_H
#define PETREL_CORE_CONN_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include <petrel/buf.h>
#include <petrel/conn.h>

#include "iothread.h"
#include "ipset.h"
#include "linereader.h"
#include "rules.h"
#include "worker.h"

enum petrel_conn_state {
    PETREL_CONN_PROXY,      /* waiting for the PROXY protocol header */
    PETREL_CONN_CONNECTING, /* outbound: resolving or connecting */
    PETREL_CONN_HANDSHAKE,  /* TLS handshake (implicit or STARTTLS) */
    PETREL_CONN_OPEN,       /* talking to the protocol module */
    PETREL_CONN_CLOSING,    /* sending what is queued, then closing */
};

struct petrel_conn {
    struct petrel_evsrc ev;
    uint64_t id;
    int fd;
    enum petrel_conn_state state;
    struct petrel_loop *thread;
    struct petrel_conn *prev, *next;
    /* What it was accepted under (listener NULL for an outbound one,
     * whose limits are in outbound): stable for its whole life. */
    struct petrel_listener *listener;
    struct petrel_outbound *outbound;
    struct petrel_config *cfg;
    const struct petrel_listener_cfg *lcfg;
    const struct petrel_service_cfg *scfg;
    const struct petrel_protocol *proto;
    struct petrel_ctx *module;
    void *session;
    struct petrel_buf in, out;
    struct petrel_linereader lr;
    SSL *ssl;
    unsigned events; /* epoll interest now registered */
    /* The flags together: an idle connection is mostly this struct. */
    bool proto_open;           /* connect (or refuse) was called: close must be */
    bool starttls;             /* STARTTLS asked: handshake once output is sent */
    bool job_pending;          /* a worker job or a delay */
    bool delaying;             /* job_pending is a petrel_conn_delay(), not a worker job */
    bool eof;                  /* the peer closed its side */
    bool partial;              /* the input buffer ends inside a line */
    bool line_crlf;            /* the line being delivered ended in CRLF */
    bool dead;                 /* destroy as soon as the pending job returns */
    bool destroyed;            /* closed; memory waits in the thread's graveyard */
    bool tls_want_write;       /* TLS needs the socket writable to go on reading */
    bool transfer;             /* petrel_conn_transfer(): answers do not renew the time */
    bool drain_wanted;         /* petrel_conn_want_drained() */
    bool wake_pending;         /* a wake arrived: call wakeup when the module may act */
    bool service_counted;      /* counted in the module's connections */
    bool in_run;               /* petrel_conn_run() is on the stack */
    bool scheduled;            /* in the loop's scheduled list (next_scheduled) */
    uint16_t login_errors;     /* failed logins (login.c) */
    struct petrel_tnode timer; /* timer.when: the deadline, monotonic ms */
    uint64_t slow_bytes;       /* read since the last answer (min_data_rate) */
    int64_t slow_since;
    int64_t delay_until; /* monotonic milliseconds */
    int idle_timeout;    /* seconds: the listener's or petrel_conn_set_timeout() */
    int peer_port, local_port;
    struct petrel_ipaddr peer_ip;
    char peer[PETREL_IPADDR_STRLEN];
    char local[PETREL_IPADDR_STRLEN];
    struct petrel_flow_hold holds[2]; /* the deciding rule, the listener */
    struct petrel_job job;
    petrel_done_fn *done;
    struct petrel_conn_waker *waker;
    struct petrel_conn *next_scheduled;
    struct petrel_conn *relay;  /* petrel_conn_relay(): bytes go to and from it */
    struct petrel_login *login; /* waiting for the client's next SASL line */
    struct petrel_conn_z *z;    /* petrel_conn_start_deflate(): NULL until then */
};

/* For conn_connect.c: a connection with no socket yet; its socket then
 * registered; its addresses; one turn of its life; the handshake and the
 * session start. */
struct petrel_conn *petrel_conn_new(struct petrel_loop *t, struct petrel_ctx *module,
                                    const struct petrel_protocol *proto,
                                    const struct petrel_listener_cfg *lcfg,
                                    const struct petrel_service_cfg *scfg,
                                    struct petrel_config *cfg);
bool petrel_conn_watch(struct petrel_conn *c, unsigned events);
void petrel_conn_nodelay(struct petrel_conn *c);
void petrel_conn_set_addresses(struct petrel_conn *c, const struct sockaddr *peer,
                               const struct sockaddr *local);
void petrel_conn_set_deadline(struct petrel_conn *c, long long seconds);
void petrel_conn_run(struct petrel_conn *c);
bool petrel_conn_tls_begin(struct petrel_conn *c);
void petrel_conn_open_session(struct petrel_conn *c);

/* conn_connect.c: the outbound side. */
void petrel_outbound_event(struct petrel_conn *c, unsigned events);
void petrel_outbound_timeout(struct petrel_conn *c);
void petrel_outbound_note(struct petrel_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
SSL *petrel_outbound_ssl(struct petrel_conn *c);
bool petrel_outbound_verified(struct petrel_conn *c);
void petrel_outbound_ending(struct petrel_conn *c);
void petrel_outbound_free(struct petrel_outbound *out);
void petrel_conn_stats_init(void);

/* Bytes read (after TLS): as conn.c's reads, -1 when the socket has
 * nothing now, -2 on error. */
ssize_t petrel_conn_recv(struct petrel_conn *c, char *buf, size_t size);

/* conn_deflate.c: compression (petrel_conn_start_deflate). fill reads
 * and inflates one step: 1 if it moved bytes, 0 if nothing came now, -1
 * to close. compress moves queued output into the wire buffer; rest gives
 * memory back once nothing is in flight. */
void petrel_conn_z_takeover(struct petrel_conn *c);
bool petrel_conn_z_starting(const struct petrel_conn *c);
int petrel_conn_z_fill(struct petrel_conn *c, size_t *got_r);
bool petrel_conn_z_input_waiting(const struct petrel_conn *c);
bool petrel_conn_z_compress(struct petrel_conn *c);
struct petrel_buf *petrel_conn_z_wire(struct petrel_conn *c);
void petrel_conn_z_rest(struct petrel_conn *c);
void petrel_conn_z_free(struct petrel_conn *c);

#endif
