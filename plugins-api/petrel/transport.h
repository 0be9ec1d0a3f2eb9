/* The "transport" service: how the queue (the processing module) hands a
 * message to whatever carries it off the server: smtp_out to MX hosts or
 * a relay host; later LMTP or a cluster proxy. The queue alone owns the
 * queue files, the retry schedule and the bounces. A transport makes one
 * attempt at the recipients it is given, all of one domain (one next
 * hop), and says per recipient what became of them; it never keeps the
 * message, retries later on its own, or writes a report.
 *
 *     const struct petrel_transport_ops *t =
 *         petrel_service_lookup(PETREL_TRANSPORT_SERVICE, PETREL_TRANSPORT_VERSION);
 *     if (!t->submit(msg)) ... busy: try again later
 *     ... later, on any thread: msg->done(msg) with every rcpt's status set
 *
 * Since ABI minor 7. */
#ifndef PETREL_TRANSPORT_H
#define PETREL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/queue.h>

#define PETREL_TRANSPORT_SERVICE "transport"
#define PETREL_TRANSPORT_VERSION 1u

#define PETREL_TRANSPORT_REASON_MAX 512

enum petrel_transport_status {
    PETREL_TRANSPORT_DEFERRED = 0, /* not delivered now: the queue tries again */
    PETREL_TRANSPORT_DELIVERED,    /* the next hop took responsibility (250) */
    PETREL_TRANSPORT_FAILED,       /* permanently refused: the queue bounces it */
};

struct petrel_transport_rcpt {
    const char *address; /* "local@domain" */
    const char *orcpt;   /* DSN ORCPT as received ("rfc822;a@b"), or NULL */
    unsigned notify;     /* enum petrel_dsn_notify bits; 0: not given */
    /* Set by the transport before done. */
    enum petrel_transport_status status;
    /* What happened, SMTP-shaped so it can go into a DSN and the queue
     * listing as is: the remote server's reply where there was one
     * ("550 5.1.1 <a@b>: no such user (in reply to RCPT TO, from
     * mx.example.org[192.0.2.1])"), else the transport's own ("451 4.4.1
     * connection refused by mx.example.org[192.0.2.1]"). */
    char reason[PETREL_TRANSPORT_REASON_MAX];
    /* With DELIVERED: the next hop offered no DSN, so the recipient's
     * NOTIFY did not go with it, and the queue owes the sender what
     * NOTIFY=SUCCESS asked for (a "relayed" report, RFC 3461 section
     * 4.2). */
    bool notify_not_passed;
};

struct petrel_transport_msg {
    /* Set by the queue; valid until done returns. */
    const char *queue_id;
    const char *domain; /* every recipient's domain, lower case */
    const char *from;   /* the envelope sender; "" for the null sender */
    const char *envid;  /* DSN ENVID, or NULL */
    enum petrel_dsn_ret ret;
    enum petrel_body body; /* as it was received */
    bool smtputf8;         /* the sender asked for SMTPUTF8 */
    /* The sender asked for REQUIRETLS (RFC 8689): send only over TLS to a
     * server whose certificate is verified for its name (found through
     * DNSSEC or MTA-STS, or by DANE) and which offers REQUIRETLS, with
     * the parameter on MAIL; else fail. Since ABI minor 7. */
    bool requiretls;
    unsigned attempts; /* earlier attempts at this message */
    int data_fd;       /* the message (pread only: others share it) */
    uint64_t size;     /* its bytes, CRLF line ends, not dot-stuffed */
    struct petrel_transport_rcpt *rcpts;
    size_t nrcpts;
    /* Set by the transport before done, for the queue's log and listing:
     * where it went ("mx1.example.org[192.0.2.1]:25", "" if nowhere) and
     * how ("TLSv1.3 TLS_AES_256_GCM_SHA384, verified (mta-sts)", "" for
     * plaintext). */
    char relay[300];
    char tls[200];
    /* Called once by the transport when every recipient has its status,
     * from any thread, perhaps before submit returns. */
    void (*done)(struct petrel_transport_msg *msg);
    void *owner; /* the queue's */
};

struct petrel_transport_ops {
    /* Take msg and try it once. Any thread (the queue calls it from a
     * worker); never blocks. False, without calling done, when the
     * transport cannot take more work now: the queue tries again later. */
    bool (*submit)(struct petrel_transport_msg *msg);
};

#endif
