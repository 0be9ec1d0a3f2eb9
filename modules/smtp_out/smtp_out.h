/* smtp_out's private header: never installed, never included from outside
 * this folder. One job (struct smtp_job) is one transport.h attempt: a
 * message and its recipients of one domain, carried through the next-hop
 * lookup (nexthop.c) and SMTP sessions (session.c, body.c) on one I/O
 * loop, handed out and counted against the limits by dispatch.c, and
 * reported by result.c. */
#ifndef SMTP_OUT_H
#define SMTP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/dns.h>
#include <petrel/dotstuff.h>
#include <petrel/loop.h>
#include <petrel/module.h>
#include <petrel/setting.h>
#include <petrel/stats.h>
#include <petrel/transport.h>

#include "smtp_reply.h"
#include "tlspolicy.h"

#define SMTP_OUT_MX_MAX 32       /* MX records considered (max_mx caps further) */
#define SMTP_OUT_ADDRS_MAX 8     /* addresses tried per host */
#define SMTP_OUT_ATTEMPTS_MAX 10 /* connections per job, all hosts together */
#define SMTP_OUT_RCPTS_MAX 100   /* recipients sent in one session (RFC 5321 4.5.3.1.8) */
#define SMTP_OUT_CHUNK 65536     /* bytes of the message read per output_drained */
#define SMTP_OUT_HOST_MAX 256

struct smtp_out_config {
    long long port;
    char *helo_name;
    char *tls; /* none | may | encrypt | verify */
    char *tls_ca_file;
    char *address_family;     /* any | ipv4 | ipv6 */
    char *address_preference; /* any | ipv4 | ipv6 */
    char *bind_address;
    char *bind_address6;
    long long connect_timeout, command_timeout, data_timeout;
    long long max_connections, max_per_destination, max_mx;
    long long destination_rate_delay;              /* seconds; 0: none */
    struct petrel_setting_list destination_limits; /* struct smtp_dest_limit_conf */
    long long connection_reuse_time, connection_reuse_limit;
    char *relay_host;                         /* "" or unset: by MX */
    char *relay_tls;                          /* starttls | implicit */
    char *relay_auth_file;                    /* read once, at init */
    struct petrel_setting_list relay_domains; /* struct smtp_relay_domain */
    /* TLS policy (tlspolicy.c, docs/smtp_out.md "TLS policy") */
    struct petrel_setting_list tls_policies; /* struct smtp_tls_policy_conf */
    bool mta_sts;
    long long mta_sts_port;
};

/* relay_domains = ( { domain = "example.org"; host = "[mx.internal]:2525"; }, ... ) */
struct smtp_relay_domain {
    char *domain;
    char *host;
    char *tls; /* starttls | implicit */
};

struct smtp_tls_policy_conf {
    char *domain;
    char *policy; /* none | may | encrypt | verify | dane */
};

/* destination_limits = ( { domain = "example.com"; max_connections = 5;
 * rate_delay = "1s"; }, ... ): unset members take the global setting. */
struct smtp_dest_limit_conf {
    char *domain;              /* exact, or ".example.com" for the names below it */
    long long max_connections; /* 0 (unset): max_per_destination */
    char *rate_delay;          /* NULL (unset): destination_rate_delay */
};

/* --- per-destination limits (limits.c): no I/O, unit-tested --- */

struct smtp_dest_limits {
    long long max;   /* sessions and idle connections at once */
    long long delay; /* seconds between the starts of two deliveries; 0: none */
};
/* The limits of dest (a domain, or a relay host's name): its
 * destination_limits entry (the exact name, else the longest ".suffix"),
 * else max_per_destination and destination_rate_delay. */
void smtp_limits_for(const struct smtp_out_config *cfg, const char *dest,
                     struct smtp_dest_limits *out);
/* A rate_delay text: digits with an optional s, m or h, at most 1h. */
bool smtp_limits_parse_delay(const char *s, long long *secs_r);
/* The settings check of destination_limits: -1 with err filled. */
int smtp_limits_check(const struct smtp_out_config *cfg, bool (*valid_name)(const char *),
                      char *err, size_t errsize);

/* In order of strength: from ENCRYPT on, TLS is required. DANE as a
 * setting is opportunistic DANE; a host with usable TLSA records gets DANE
 * (a match required), one with an MTA-STS policy in enforce mode STS (the
 * certificate verified for the MX host name). */
enum smtp_tls_level {
    SMTP_TLS_NONE,
    SMTP_TLS_MAY,
    SMTP_TLS_ENCRYPT,
    SMTP_TLS_VERIFY,
    SMTP_TLS_DANE,
    SMTP_TLS_STS,
};
enum smtp_family { SMTP_FAMILY_ANY, SMTP_FAMILY_IPV4, SMTP_FAMILY_IPV6 };
enum smtp_tls_level smtp_out_tls_parse(const char *setting);
enum smtp_family smtp_out_family(const char *setting);

/* module.c: what init keeps for every thread. */
extern struct petrel_ctx *smtp_out_ctx;
extern char smtp_out_hostname[SMTP_OUT_HOST_MAX];
extern struct petrel_counter *smtp_out_sent, *smtp_out_deferred, *smtp_out_bounced,
    *smtp_out_connections, *smtp_out_reused;

/* --- relay hosts (relay.c): parsing without I/O, unit-tested --- */

#define SMTP_OUT_CRED_MAX 256

/* "host", "host:port", "[host]" or "[host]:port" (Postfix's relayhost):
 * mx says whether host's MX records are looked up (no brackets); port 0
 * when none is given. False for anything else. */
struct smtp_relay_addr {
    char host[SMTP_OUT_HOST_MAX];
    int port;
    bool mx;
};
bool smtp_relay_parse(const char *s, struct smtp_relay_addr *out);

struct smtp_credentials {
    char user[SMTP_OUT_CRED_MAX];
    char pass[SMTP_OUT_CRED_MAX];
};
/* The relay_auth_file text: one line "username password" (the password is
 * the rest of the line, spaces included); blank lines and lines starting
 * with '#' are skipped. False with *error_r otherwise. */
bool smtp_credentials_parse(const char *text, size_t len, struct smtp_credentials *c,
                            const char **error_r);
/* Read and check path (a regular file, not readable or writable by group
 * or others, owned by root when we run as root), then parse it. False
 * with err filled (never the file's content). */
bool smtp_credentials_load(const char *path, struct smtp_credentials *c, char *err, size_t errsize);

/* Base64 (RFC 4648) of in into out, NUL-terminated; false if out is too
 * small. */
bool smtp_base64(char *out, size_t size, const unsigned char *in, size_t len);

/* Where a domain's mail goes: its MX hosts, or a relay host. */
struct smtp_route {
    struct smtp_relay_addr addr; /* host: the domain itself when by MX */
    bool relay;
    bool implicit_tls; /* TLS from the first byte (port 465 style) */
    bool auth;         /* send the relay_auth_file credentials */
    /* Whose limits apply: the domain, or the relay host's name. */
    char dest[SMTP_OUT_HOST_MAX];
    /* The connection cache's key: the next hop and how it is reached. */
    char key[SMTP_OUT_HOST_MAX + 32];
};
void smtp_route_for(const struct smtp_out_config *cfg, const char *domain, bool have_creds,
                    struct smtp_route *r);

/* --- next-hop ordering (mx.c): no I/O, unit-tested --- */

struct smtp_mx {
    uint16_t preference;
    char host[SMTP_OUT_HOST_MAX];
};
/* Sort by preference, shuffling hosts of equal preference (RFC 5321
 * section 5.1) with rnd(ctx) giving random numbers. */
void smtp_mx_order(struct smtp_mx *mx, size_t n, uint32_t (*rnd)(void *ctx), void *ctx);
/* RFC 5321 section 5.1: when we are one of the MX hosts, only hosts more
 * preferred than ourselves may be tried. Returns how many are left (in
 * front); *self_r says whether we were listed. */
size_t smtp_mx_trim_self(struct smtp_mx *mx, size_t n, const char *myname, const char *helo_name,
                         bool *self_r);
/* Fill out (room max) with v4 and v6 addresses in the order to try:
 * the preferred family first, or for "any" the two interleaved starting
 * with v6 when v6_first (Postfix's smtp_address_preference = any with
 * smtp_balance_inet_protocols). Returns the count. */
size_t smtp_addr_order(struct petrel_dns_addr *out, size_t max, const struct petrel_dns_addr *v4,
                       size_t n4, const struct petrel_dns_addr *v6, size_t n6,
                       enum smtp_family preference, bool v6_first);
/* Whether name is ours (the server's host name or helo_name). */
bool smtp_is_myself(const char *name, const char *myname, const char *helo_name);

/* --- one attempt --- */

enum smtp_state {
    SMTP_S_CONNECTING,
    SMTP_S_GREETING,
    SMTP_S_EHLO,
    SMTP_S_HELO,
    SMTP_S_STARTTLS,
    SMTP_S_HANDSHAKE,
    SMTP_S_EHLO_TLS,
    SMTP_S_AUTH,      /* the final reply to AUTH */
    SMTP_S_AUTH_USER, /* LOGIN: 334 for the user name */
    SMTP_S_AUTH_PASS, /* LOGIN: 334 for the password */
    SMTP_S_RSET,      /* a cached connection after a failed transaction */
    SMTP_S_MAIL,      /* MAIL and RCPT replies */
    SMTP_S_DATA,
    SMTP_S_BODY,
    SMTP_S_DOT, /* the final reply */
    SMTP_S_QUIT,
};

struct smtp_rcpt_state {
    bool decided; /* status final for this attempt */
    bool sent;    /* RCPT sent in this session */
    bool accepted;
};

struct smtp_job;
struct smtp_dest;

/* What a connection is, whichever job has it: where it goes, how it was
 * made and how its TLS was checked. The connection cache keeps it with an
 * idle connection to judge, without touching the connection (it lives on
 * another loop), whether a job to another destination may use it. */
struct smtp_conn_info {
    struct petrel_dns_addr addr;
    int port;
    bool implicit_tls, auth;
    char helo[SMTP_OUT_HOST_MAX]; /* the EHLO name */
    char bind[64];                /* the local address asked for, "" for none */
    char host[SMTP_OUT_HOST_MAX]; /* the MX host (the TLS name) */
    enum smtp_tls_level level;    /* the TLS level it was made under */
    bool tls, ca_verified, dane;  /* set when the connection is kept */
};

/* TLS policy of one job (tlspolicy.c, dane.c, mtasts.c). */
enum smtp_tlsa_state {
    SMTP_TLSA_NOT_ASKED, /* DANE does not apply: no lookup */
    SMTP_TLSA_ASKED,
    SMTP_TLSA_NONE,     /* validated NODATA / NXDOMAIN */
    SMTP_TLSA_RECORDS,  /* validated records (usable or not) */
    SMTP_TLSA_INSECURE, /* an answer without AD */
    SMTP_TLSA_FAILED,   /* SERVFAIL, timeout, malformed */
};

struct smtp_tls_state {
    enum smtp_tls_level domain_level; /* tls_policies' entry, else tls */
    bool explicit_policy;             /* from tls_policies: MTA-STS is not looked up */
    bool tls_optional;                /* "TLS-Required: No": no MTA-STS, no DANE */
    bool mx_ad;                       /* the MX answer (or NODATA) was DNSSEC-validated */
    bool sts;                         /* an MTA-STS policy (testing or enforce) applies */
    struct smtp_sts_policy policy;
    void (*cont)(struct smtp_job *job); /* what comes after the MTA-STS lookups */
    /* the host being tried */
    enum smtp_tls_level level;
    bool host_ad; /* an address answer of the host was validated */
    enum smtp_tlsa_state tlsa_state;
    size_t ntlsa;
    struct smtp_tlsa tlsa[SMTP_TLSA_MAX];
    char tlsa_error[128];
};

struct smtp_job {
    struct smtp_job *next;                /* dispatch.c's waiting list */
    struct smtp_job *reg_prev, *reg_next; /* every job not yet done */
    struct petrel_transport_msg *msg;
    struct petrel_config *gen; /* held from submit to done */
    const struct smtp_out_config *cfg;
    struct timespec started;
    bool active;     /* counted against the limits */
    bool tls_waived; /* "TLS-Required: No" in its header (read in submit) */
    struct smtp_route route;
    struct smtp_dest *dest; /* dispatch.c's state of route.dest */
    struct smtp_dest_limits limits;
    bool rate_logged;         /* the wait for the rate delay is logged */
    struct petrel_loop *loop; /* the loop of a cached connection reserved for it */

    /* next hop (nexthop.c) */
    struct smtp_mx *mx; /* SMTP_OUT_MX_MAX of them, from the start (smtp_nexthop_start) */
    size_t nmx, imx;    /* imx: the host being tried, nmx: none left */
    struct petrel_dns_addr addrs[SMTP_OUT_ADDRS_MAX];
    size_t naddrs, iaddr;
    struct petrel_dns_addr got4[SMTP_OUT_ADDRS_MAX], got6[SMTP_OUT_ADDRS_MAX];
    size_t n4, n6;
    unsigned dns_pending;
    bool dns_soft;    /* an address lookup failed temporarily */
    bool plain_retry; /* TLS (may) failed at this address: once more without */
    bool no_tls;      /* this session does not try STARTTLS */
    unsigned attempts;
    char last_reason[PETREL_TRANSPORT_REASON_MAX];

    /* the session (session.c, body.c) */
    struct petrel_conn *conn;
    char peer[SMTP_OUT_HOST_MAX + 64]; /* "mx.example.org[192.0.2.1]" */
    enum smtp_state state;
    struct smtp_reply reply;
    struct smtp_ehlo ehlo;
    bool timed_out;
    bool dot_sent; /* the message may be complete at the peer */
    bool mail_refused;
    bool reused;      /* this session came from the connection cache by name */
    bool addr_reused; /* ... by address: the next try at that address is a new connection */
    struct smtp_conn_info info; /* the connection's */
    bool saw_421;               /* the server is closing: never cache the connection */
    unsigned conn_msgs;         /* transactions on this connection before this one */
    size_t *sent;               /* indexes of the recipients sent, in order */
    size_t nsent, nreplied, naccepted;
    bool replied_mail;
    uint64_t body_off;
    struct petrel_dotstuff stuff;
    struct petrel_buf out;
    char *chunk;
    struct smtp_rcpt_state *rs;

    /* TLS policy (tlspolicy.c), from the start: a waiting job is small. */
    struct smtp_tls_state *tlsp;
};

/* dispatch.c */
bool smtp_out_submit(struct petrel_transport_msg *msg);
/* The job is over: report, count, call done, free, and start waiting ones. */
void smtp_dispatch_finish(struct smtp_job *job);
/* The server is stopping: what is not done by now stays in the queue. */
void smtp_dispatch_stop(void);
/* After stop: nothing may be touched (the queue has stopped). */
bool smtp_dispatch_stopped(void);
extern _Atomic bool smtp_out_stopping;

/* dispatch.c, for the connection cache (cache.c): the lock over the
 * limits and the cache; a cached connection counts against the limits
 * like a job (cached_add +1/-1 under the lock), and when one goes away
 * waiting jobs may start (slot_freed, without the lock). */
void smtp_dispatch_lock(void);
void smtp_dispatch_unlock(void);
void smtp_dispatch_cached_add(const char *dest, int delta);
void smtp_dispatch_slot_freed(void);

/* cache.c: idle connections kept for the next message to the same next
 * hop (key) or the same server (address), each on its own loop. */
struct smtp_cached;
/* Under the lock: an idle connection for key, not reserved; reserve it
 * for job (its slot becomes the job's). */
struct petrel_loop *smtp_cache_reserve_locked(const char *key, struct smtp_job *job);
/* Under the lock: the oldest idle connection, not reserved, reserved for
 * job, which takes its slot: its loop, or NULL if there is none. The job
 * uses it if its server is the job's (smtp_cache_take_addr), else it is
 * closed when the job opens a connection or ends. */
struct petrel_loop *smtp_cache_claim_locked(struct smtp_job *job);
/* Under the lock: close the idle connections reserved for job. */
void smtp_cache_unreserve_locked(struct smtp_job *job);
/* Under the lock: close one idle connection (of dest, if not NULL) to
 * make room; false if there is none. */
bool smtp_cache_evict_locked(const char *dest);
/* Close every idle connection (reload with new settings, stop). */
void smtp_cache_flush(void);
/* On the job's loop, at the end of a transaction: keep job's connection
 * idle in the cache; false if it may not be kept (then QUIT). */
bool smtp_cache_put(struct smtp_job *job, bool rset);
/* On the job's loop: a connection for job->route.key; NULL if none. */
struct smtp_cached *smtp_cache_take(struct smtp_job *job);
/* On the job's loop, its addresses known: an idle connection to the
 * server want describes (job->addrs[job->iaddr]) that the job may use (same port, way
 * of connecting, EHLO name and local address; TLS that satisfies its
 * policy: smtp_tlspolicy_reuse_ok; an EHLO reply that takes its message).
 * NULL if none; NULL with *there set when the one found is on another
 * loop: it is reserved for the job, which goes there and takes it with
 * smtp_cache_take_reserved. */
struct smtp_cached *smtp_cache_take_addr(struct smtp_job *job, const struct smtp_conn_info *want,
                                         struct petrel_loop **there);
/* On the job's loop: the connection reserved for it there; NULL if gone. */
struct smtp_cached *smtp_cache_take_reserved(struct smtp_job *job);
/* For session.c: what an entry kept, and the idle connection's events. */
struct smtp_cached_session {
    struct petrel_conn *conn;
    struct smtp_ehlo ehlo;
    struct smtp_conn_info info;
    bool rset;
    unsigned messages;
    char peer[SMTP_OUT_HOST_MAX + 64];
    char relay[300];
    char tls[200];
};
const struct smtp_cached_session *smtp_cache_session(const struct smtp_cached *c);
void smtp_cache_free(struct smtp_cached *c);
/* The idle connection closed (or must): remove it from the cache. */
void smtp_cache_closed(struct smtp_cached *c);

/* nexthop.c (on the job's loop) */
void smtp_nexthop_start(void *job);
/* Try the next address or host, or finish: posted after every session. */
void smtp_nexthop_next(struct smtp_job *job);
void smtp_nexthop_post_next(struct smtp_job *job);

/* session.c */
/* Open a session to job->addrs[job->iaddr]; false (last_reason set) if it
 * could not even be started. */
bool smtp_session_open(struct smtp_job *job, const char *host);
/* The session is over as far as the job is concerned: QUIT and close. */
void smtp_session_end(struct smtp_job *job, bool quit);
/* A transaction is over (rset: it failed and the server still holds its
 * state): keep the connection for the next message, or QUIT. */
void smtp_session_done(struct smtp_job *job, bool rset);
/* Continue on a cached connection for job->route.key; false if none. */
bool smtp_session_resume(struct smtp_job *job);
/* Before connecting to job->addrs[job->iaddr]: continue on an idle
 * connection to that server instead (smtp_cache_take_addr), here or on
 * its loop; false if there is none. */
bool smtp_session_reuse_addr(struct smtp_job *job);
/* Whether a server that answered EHLO so takes msg at all (SMTPUTF8,
 * SIZE, BINARYMIME): a cached connection is used only then. */
bool smtp_session_fits(const struct smtp_ehlo *ehlo, const struct petrel_transport_msg *msg);
/* For cache.c: attach a connection to an entry (job NULL) or a job. */
void smtp_session_attach(struct petrel_conn *conn, struct smtp_job *job, struct smtp_cached *c);
/* The credentials of relay_auth_file, read at init (module.c). */
extern struct smtp_credentials smtp_out_creds;
extern bool smtp_out_have_creds;
void smtp_session_write(struct smtp_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- TLS policy (tlspolicy.c, dane.c, mtasts.c) --- */

/* The domain's policy: its tls_policies entry, else the tls setting. */
void smtp_tlspolicy_init(struct smtp_job *job);
/* Whether the message says "TLS-Required: No" (and not REQUIRETLS): read
 * from its file, so on a worker (submit). */
bool smtp_tlspolicy_header_waives(const struct petrel_transport_msg *m);
/* Before the MX lookup: MTA-STS (mtasts.c) looks up the domain's TXT
 * record and, when needed, fetches its policy on a worker; then cont. */
void smtp_mtasts_begin(struct smtp_job *job, void (*cont)(struct smtp_job *job));
/* Forget every cached policy (stop). */
void smtp_mtasts_free(void);
/* The MX answer: its AD bit decides whether DANE applies. */
void smtp_tlspolicy_mx_answer(struct smtp_job *job, const struct petrel_dns_result *res);
/* Before looking up host job->mx[job->imx]: false (last_reason set) when
 * an MTA-STS policy in enforce mode does not list it. */
bool smtp_tlspolicy_host_allowed(struct smtp_job *job);
/* Start the host's TLSA lookup when DANE applies, with fn as the callback
 * (nexthop.c's address callback, which hands TLSA answers to
 * smtp_dane_tlsa_done); 1 if a lookup was started, else 0. */
unsigned smtp_dane_start(struct smtp_job *job, petrel_dns_fn *fn);
void smtp_dane_tlsa_done(struct smtp_job *job, const struct petrel_dns_result *res);
/* Every lookup of the host is in: settle its level; false (last_reason
 * set) when the host must be skipped (a failed TLSA lookup). */
bool smtp_tlspolicy_host_ready(struct smtp_job *job);
/* The level of the session being opened. */
enum smtp_tls_level smtp_tlspolicy_level(const struct smtp_job *job);
/* Why TLS is required (for the 451 4.7.4 reason), or NULL when it is
 * not; with MTA-STS testing, logs what enforce would have refused. */
const char *smtp_tlspolicy_required(struct smtp_job *job);
/* TLS is up: record msg->tls and check the peer by the level; false (the
 * recipients soft-failed) when the session must end. */
bool smtp_tlspolicy_peer_ok(struct smtp_job *job, struct petrel_conn *conn);
/* tlsreuse.c: whether a connection made as info says (for another
 * destination, perhaps under another policy) is good enough for job's
 * level at host job->mx[job->imx]; never for a REQUIRETLS message. */
bool smtp_tlspolicy_reuse_ok(const struct smtp_job *job, const struct smtp_conn_info *info);

/* body.c */
/* 354 (or BDAT): start sending the message. */
void smtp_body_start(struct smtp_job *job, bool bdat);
void smtp_body_drained(struct smtp_job *job);

/* result.c */
/* Decide recipient i for this attempt. */
void smtp_result_decide(struct smtp_job *job, size_t i, enum petrel_transport_status status,
                        const char *reason);
/* A temporary failure for every undecided recipient (a later server may
 * still take them). */
void smtp_result_soft_all(struct smtp_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A final status for every undecided recipient. */
void smtp_result_decide_all(struct smtp_job *job, enum petrel_transport_status status,
                            const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A reply to a transaction command for recipient i (RCPT, DATA, dot):
 * 2xx is not decided here; 4xx soft (before the dot) or deferred; 5xx
 * failed. */
void smtp_result_reply(struct smtp_job *job, size_t i, const struct smtp_reply *r,
                       const char *command);
bool smtp_result_all_decided(const struct smtp_job *job);
/* Log each recipient and count them (before done). */
void smtp_result_report(struct smtp_job *job);

#endif
