/* The processing module's private interfaces: the message being received,
 * the pipeline every message goes through (pipeline.c), the queue files on
 * disk, expansion of aliases and forwards, local delivery, the queue
 * runner and delivery status notifications. */
#ifndef PETREL_PROCESSING_H
#define PETREL_PROCESSING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <petrel/admin.h>
#include <petrel/buf.h>
#include <petrel/queue.h>
#include <petrel/storage.h>
#include <petrel/transport.h>
#include <petrel/userdb.h>

#include "envelope.h"
#include "srs.h"

#define PROC_LOG "processing"
/* The header block a hook sees and the scanner keeps (the rest streams). */
#define PROC_HEADER_MAX 65536

/* Settings, fixed at start (the queue directory) or refreshed on reload. */
struct proc_config {
    char *queue_dir;
    long long memory_limit;
    long long max_hops;
    long long max_expansion;
    char *quota_failure; /* "temporary" | "permanent" */
    bool direct_delivery;
    bool fsync;
    long long retry_min, retry_max, lifetime;
    long long delay_warning; /* 0: no delay notices */
    long long runner_jobs;
    long long min_free_space;
    bool srs;
    char *srs_domain;      /* "": the server's primary domain */
    char *srs_secret_file; /* "": srs.secret in the queue directory */
    long long srs_max_age;
};

/* The settings as the pipeline uses them, derived (module.c) once per
 * configuration generation. */
struct proc_settings {
    size_t memory_limit;
    unsigned max_hops, max_expansion, runner_jobs;
    bool quota_permanent, direct_delivery, fsync;
    long long retry_min, retry_max, lifetime, min_free_space;
    long long delay_warning;
    bool srs;
    char srs_domain[256]; /* "": the primary domain (srs_proc.c knows it) */
    unsigned srs_max_days;
};

/* What the running module keeps: set at init, fixed after. */
struct proc_env {
    char queue[PATH_MAX - 64]; /* absolute queue directory */
    char hostname[256];
    const struct petrel_storage_ops *storage;
    const struct petrel_userdb_ops *userdb;
    /* The transport for remote recipients (smtp_out), or NULL: looked up
     * at start, once every module has registered what it provides. */
    const struct petrel_transport_ops *transport;
    struct petrel_ctx *ctx;
    /* Unit tests drive the pipeline without a daemon, so without a
     * generation: their settings come from here (NULL in the daemon). */
    const struct proc_settings *unit_settings;
};
extern struct proc_env proc_env;

/* One piece of work's settings (a message from begin to commit or abort,
 * one attempt at a queue entry, one scan): those of the generation current
 * when it starts, held to its end (petrel_config_unref(*gen_r)), so a
 * reload never mixes old and new values in it. Any thread. */
struct petrel_config;
const struct proc_settings *proc_settings_ref(struct petrel_config **gen_r);

/* The absolute queue directory of these settings (queue_dir under the
 * server's data_dir unless absolute), for the daemon and for petrelctl
 * alike (module.c). False if it does not fit in size. */
bool proc_queue_root(const struct proc_config *c, char *out, size_t size);

/* petrelctl queue ... (admin.c). */
extern const struct petrel_admin_command proc_admin_commands[];

/* --- the header (header.c): no I/O --- */

/* The scanner's state at the start of a message: as after a CRLF, so an
 * empty first line ends an empty header. */
#define PROC_HEADER_START 2
/* Feed the next len bytes: how many of them belong to the header (all
 * unless it ends within them); *ended_r once its empty line was seen. */
size_t proc_header_end(unsigned char *state, const char *p, size_t len, bool *ended_r);
/* Whether a header line is field name (case-insensitive, blanks allowed
 * before the colon). */
bool proc_field_is(const char *line, size_t len, const char *name);
struct proc_header_facts {
    bool has_id, has_date;
};
void proc_header_facts(const char *h, size_t len, struct proc_header_facts *f);

/* Every byte of a message goes through the filter, which passes the
 * header less its Return-Path fields (and their folded lines: only the
 * final delivery may add one, RFC 5321 section 4.4, and one from the
 * client would lie about the envelope sender), counts its Received
 * fields, and passes the rest as it is, however long the header. A line
 * is a field as proc_field_is says, or when its first PROC_FIELD_PEEK
 * bytes are the name and blanks only. emit gets the output in order, in
 * pieces. */
#define PROC_FIELD_PEEK 128
typedef void proc_emit_fn(void *arg, const char *p, size_t len);
struct proc_header_filter {
    unsigned hops; /* Received fields so far */
    unsigned char end, line, cand;
    bool done, skipping;
    unsigned char peek_len;
    char peek[PROC_FIELD_PEEK]; /* the start of a line until its name tells */
};
void proc_header_filter_init(struct proc_header_filter *f);
void proc_header_filter(struct proc_header_filter *f, const char *p, size_t len, proc_emit_fn *emit,
                        void *arg);
/* The message ended: what is held goes on. */
void proc_header_filter_finish(struct proc_header_filter *f, proc_emit_fn *emit, void *arg);

/* --- free space in the spool (space.c) --- */

/* MAIL: room for a message of size bytes (0: undeclared) above
 * min_free_space. Any thread: it answers from the last look and has a
 * worker look again (every 250 ms at most). */
bool proc_has_room(uint64_t size);
/* The first look, at start (main thread). */
void proc_space_prime(void);
/* A data file of len bytes was removed: they count as free again, and
 * the next look comes soon. */
void proc_space_changed(uint64_t len);
/* Counts len bytes about to be written to a spool file, for every
 * message: true if they leave half of min_free_space; false with errno
 * ENOSPC (and not counted) otherwise. Worker thread: it may statvfs. */
bool proc_write_room(const struct proc_settings *set, uint64_t len);
/* Counts len bytes about to be written that the floor must not cut. */
void proc_space_used(uint64_t len);

/* --- the message being received (message.c) --- */

struct petrel_queue_msg {
    char id[QUEUE_ID_LEN + 1];
    struct queue_envelope env; /* recipients as received */
    time_t arrival;
    /* The header block as received, until it ends (or fills). */
    struct petrel_buf header;
    bool header_done;
    bool header_ended;    /* saw the empty line (else the header filled up) */
    unsigned char hstate; /* scanner state across writes: bytes of "\r\n\r\n" seen */
    /* Output: trace headers + header + body, in memory until memory_limit,
     * then in the data file. */
    struct petrel_buf mem;
    int fd;
    uint64_t out_len;          /* bytes in mem or the file */
    size_t memory_limit;       /* set's: a message keeps one generation's settings */
    struct petrel_config *gen; /* held from begin to commit or abort */
    const struct proc_settings *set;
    size_t budget;                    /* of the server's message memory, held for header and mem */
    uint64_t size;                    /* bytes received */
    struct proc_header_filter filter; /* what goes out, header to end */
    bool io_error;
    bool no_space;                     /* io_error: the spool fell short of min_free_space */
    struct petrel_smtp_origin *origin; /* for the smtp.data event, or NULL */
};

/* --- a message ready for delivery: a queue entry or a fresh one --- */

struct proc_content {
    const struct proc_settings *set; /* of the work delivering it */
    const char *id;
    const struct queue_envelope *env;
    const void *data; /* in memory, or NULL */
    int fd;           /* the data file, or -1 */
    uint64_t len;
    const char *header; /* original header block for hooks and bounces */
    size_t header_len;
};

/* The public view of a queue envelope for hooks: fills out, returns the
 * recipient array it points to (free it). */
struct petrel_envelope_rcpt *proc_public_env(const struct queue_envelope *env,
                                             struct petrel_envelope *out);

/* expand.c: turn the pending 'E' recipients of env into final recipients
 * (local accounts 'P' with route L, remote addresses 'P' with route R,
 * failures 'F' with a status). Temporary lookup failures stay 'E'. A local
 * account's recipient carries what the lookup said (r->account), so that
 * delivery does not ask the userdb again. */
void proc_expand(const struct proc_settings *set, struct queue_envelope *env);
/* Keep what the userdb said of an account on its recipient. */
void proc_account_learn(struct queue_rcpt *r, const struct petrel_userdb_entry *e);

/* deliver.c: deliver every pending local recipient (route L, state P or
 * T) of content into the store, updating states and reasons. dedupe: look
 * for an earlier delivery of the same queue id first (after a crash). */
void proc_deliver_local(const struct proc_content *content, struct queue_envelope *env,
                        bool dedupe);

/* dsn.c: queue a delivery status notification to the sender for the
 * recipients in state F that were not reported yet (marked 'B' after), or
 * for successful ones that asked for it. Returns false if the report
 * could not be queued (the caller keeps the entry and retries). */
bool proc_dsn(const struct proc_content *content, struct queue_envelope *env);
/* Once per message: a notice that delivery is delayed (RFC 3464 Action:
 * delayed) for the recipients still being retried delay_warning after
 * arrival, to a sender whose NOTIFY allows it. */
void proc_dsn_delay(const struct proc_content *content, struct queue_envelope *env, time_t now);

/* message.c: inject a message made here (a bounce) as if received. */
bool proc_inject(const struct petrel_envelope *env, const void *data, size_t len,
                 struct petrel_queue_reply *reply);

/* runner.c: prepare at init (before connections), start at start. */
void proc_runner_prepare(void);
int proc_runner_start(const char **error_r);
void proc_runner_stop(void);
/* A new queue entry exists (or became due): look at the queue now. */
void proc_runner_kick(void);

/* queue ops (message.c) */
struct petrel_queue_msg *proc_begin(const struct petrel_envelope *env);
bool proc_write(struct petrel_queue_msg *msg, const void *data, size_t len);
void proc_commit(struct petrel_queue_msg *msg, struct petrel_queue_reply *reply);
void proc_abort(struct petrel_queue_msg *msg);

/* What the pipeline asks of a message being committed (message.c). */
/* Put header fields (a hook's) on top of the output; false on an I/O error. */
bool proc_message_prepend(struct petrel_queue_msg *msg, struct petrel_buf *add);
/* The message as a synced data file in the queue (spilled first if in memory). */
bool proc_message_durable(struct petrel_queue_msg *msg);
/* The message as delivery, reports and hooks read it (again after a change). */
void proc_message_content(struct petrel_queue_msg *msg, struct proc_content *c);
/* The data file belongs to the queue now: proc_abort must not remove it. */
void proc_message_keep_data(struct petrel_queue_msg *msg);

/* pipeline.c: the one way through processing, a sequence of stages.
 * A message SMTP commits: reply is what the client hears. */
void proc_pipeline_commit(struct petrel_queue_msg *msg, struct petrel_queue_reply *reply);
/* One attempt at a queue entry (the runner holds its lock): env as read
 * from active/, data_fd its data file; dedupe: look for deliveries a crash
 * left unrecorded. finished(arg, recorded) is called once the attempt has
 * ended: before this returns, or later from a worker when its remote
 * recipients went to the transport (env, data_fd and the lock must live
 * until then); recorded is false when the envelope could not be
 * rewritten. */
void proc_pipeline_retry(const struct proc_settings *set, struct queue_envelope *env, int data_fd,
                         bool dedupe, void (*finished)(void *arg, bool recorded), void *arg);

/* srs_proc.c: SRS for forwarded copies. init: where the secret is, and
 * read it if it is there (before privileges drop); start: make it when
 * it is not. */
int proc_srs_init(const struct proc_config *c, const char **error_r);
int proc_srs_start(const char **error_r);
/* The sender env's forwarded copies go out with (into out, at least
 * SRS_ADDRESS_MAX + 1 bytes): true when it is rewritten, false to keep
 * env->from (the null sender, one of our domains, srs off, or too long:
 * logged). */
bool proc_srs_sender(const struct proc_settings *set, const struct queue_envelope *env, char *out,
                     size_t size);
/* An SRS address of ours turned back (SRS_OK, out set), or why not. */
enum srs_result proc_srs_reverse(const struct proc_settings *set, const char *address, char *out,
                                 size_t size);
/* The queue service's local_address: SRS addresses of ours. */
enum petrel_queue_address proc_local_address(const char *address, struct petrel_queue_reply *reply);

/* outbound.c: hand env's due remote recipients to the transport, one
 * message a domain (two when some are forwarded copies whose sender set
 * rewrites with SRS); resume(arg, busy) runs on a worker once all are back,
 * with their states and reasons set in env (busy: the transport took
 * none, which is no attempt). False (resume not called) when there are
 * none or no transport module is enabled. */
bool proc_outbound_start(const struct proc_settings *set, struct queue_envelope *env, int data_fd,
                         void (*resume)(void *arg, bool busy), void *arg);

/* sentlog.c: note the recipients msg's next hop took, at once; mark open
 * remote recipients of env that a note names as delivered (an attempt
 * that may follow a kill); drop the note once the envelope says it all. */
void proc_sent_note(const char *id, const struct petrel_transport_msg *msg);
void proc_sent_apply(struct queue_envelope *env);
void proc_sent_clear(const char *id);

/* Read the whole header block (up to the empty line, at most
 * PROC_HEADER_MAX bytes) of content into out. */
bool proc_read_header(const struct proc_content *c, struct petrel_buf *out);

#endif
