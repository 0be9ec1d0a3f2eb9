/* The imap module's private interfaces: settings, the session, and the
 * command groups in their own files. */
#ifndef PETREL_IMAP_H
#define PETREL_IMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/conn.h>
#include <petrel/stats.h>
#include <petrel/storage.h>

#include "imap_arg.h"
#include "imap_modseq.h"
#include "imap_modseq.h"
#include "imap_parse.h"

#define IMAP_LOG "imap"
#define IMAP_SERVICE "imap"
/* Bytes of a file read per worker job while sending a FETCH body; the
 * session fuzzer makes it small so that answers span many turns. */
#ifndef IMAP_READ_BYTES
#define IMAP_READ_BYTES (64u * 1024u)
#endif
/* Untagged and tagged text one job builds (FETCH of many messages is cut
 * in batches well below it). */
#define IMAP_OUT_MAX (16u * 1024u * 1024u)
/* A job's buffer takes this much beyond the max_answer setting, more than
 * any one line, so an answer that grows past it is seen to, never cut
 * silently (job.c answers NO [LIMIT]). imap_sync stops reporting at half
 * of max_answer and leaves the rest for the next command, so updates
 * alone never make an answer too large. */
#define IMAP_OUT_SLACK (1024u * 1024u)
#define IMAP_OWN_MAX 16u
/* Commands a pipelining client sends while an answer is still going out:
 * they wait here, in order. */
#define IMAP_PENDING_MAX (256u * 1024u)
#define IMAP_TAG_MAX 64u
#define IMAP_USER_MAX 255u
#define IMAP_AUTH_TIMEOUT (30u * 60u)

struct imap_config {
    long long max_connections_per_user;
    long long max_command; /* bytes of one command in memory */
    long long max_literal; /* bytes of an APPENDed message */
    long long max_answer;  /* bytes of one job's answer, at most IMAP_OUT_MAX */
};

extern const struct petrel_storage_ops *imap_storage;
extern char imap_hostname[256];
/* data_dir/imap-spool: APPEND's spool files (module.c creates it). */
extern char imap_spool_dir[4096];

/* petrelctl stats: imap.logins, imap.per_user_refused, imap.fetched_bytes,
 * imap.appended. */
struct imap_counters {
    struct petrel_counter *logins, *per_user_refused, *fetched_bytes, *appended;
};
extern struct imap_counters imap_counters;

enum imap_state {
    IMAP_ST_NOAUTH,
    IMAP_ST_AUTH,
    IMAP_ST_SELECTED,
    IMAP_ST_LOGOUT,
};

/* What the connection's input is for besides commands. */
enum imap_mode {
    IMAP_MODE_CMD,
    IMAP_MODE_SASL, /* an AUTHENTICATE exchange or a login being checked */
    IMAP_MODE_IDLE, /* waiting for DONE */
    IMAP_MODE_BUSY, /* an answer goes out over several turns */
};

/* The selected mailbox's messages: sequence number i + 1 is uid[i].
 * Five bytes a message; keywords are read from the store when asked. */
/* In a table entry's flags beside the system flags: the message has
 * keywords, so that a change of them alone is noticed. */
#define IMAP_MSG_KEYWORDS 0x80u
/* The table's byte for a message. */
#define IMAP_MSG_BYTE(m)                                                                           \
    ((uint8_t)((m)->flags | ((m)->keywords[0] != '\0' ? IMAP_MSG_KEYWORDS : 0)))

struct imap_msgs {
    uint32_t *uid;
    uint8_t *flags;
    uint32_t n, cap;
};

/* What a storage watcher shares with the session: the waker and a
 * "something changed" mark, both safe from any thread. */
struct imap_watch_arg {
    struct petrel_conn_waker *waker;
    atomic_bool changed;
};

struct imap_fetch;

struct imap_session {
    const struct imap_config *cfg;
    enum imap_state state;
    enum imap_mode mode;
    unsigned errors;
    unsigned refusals_logged;
    struct imap_parser *parser; /* only while a command is being read */
    char tag[IMAP_TAG_MAX + 1]; /* of the running command */
    char *user;
    bool counted; /* in the per-user registry */
    bool logout;  /* LOGOUT answered: no more updates */

    struct petrel_mailbox *mbox;
    /* The selected folder. */
    struct petrel_folder *folder;
    char *folder_name;
    bool readonly;
    uint32_t uidvalidity, uidnext;
    uint64_t modseq; /* changes up to here are known */
    struct imap_msgs msgs;
    /* Changes this session's STORE made and reported (or was told not
     * to): the next sync does not report them again. Bounded: past
     * IMAP_OWN_MAX a change is simply reported again, which is harmless. */
    struct imap_own_change {
        uint32_t uid;
        uint64_t modseq;
    } own[IMAP_OWN_MAX];
    size_t nown;
    struct imap_watch_arg *watch_arg;
    struct petrel_storage_watch *watch;

    /* APPEND's literal spool (the parser's sink). */
    int spool_fd;
    uint64_t spool_size;
    struct imap_literal_sink sink;

    struct imap_fetch *fetch; /* a FETCH going out */
    struct petrel_buf spill;  /* answer text beyond what the output queue takes */
    struct petrel_buf pending;
    uint64_t literal_left; /* of a held literal still to hand over */
    bool draining;
    bool refusing; /* a refused command's literals are being swallowed */
    /* A command read ahead while an answer went out, to run (or answer
     * BAD) when it is complete: its reader status. */
    bool ready;
    enum imap_parse_status ready_status;

    /* S: the last SEARCH ... SAVE result (RFC 5182) as UID ranges,
     * ascending; emptied when a folder is selected or closed. */
    struct petrel_storage_uid_range *saved;
    size_t nsaved;

    /* Q: what ENABLE or a CONDSTORE-enabling command turned on
     * (IMAP_EN_*, condstore.c). */
    unsigned enabled;
};

/* Z: COMPRESS=DEFLATE (RFC 4978), compress.c. After login, once. */
void imap_cmd_compress(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd);

/* session.c */
/* An untagged or continuation line, text printable. */
void imap_tagged(struct petrel_conn *conn, struct imap_session *s, const char *status,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A log line (info) for a BAD or NO the session sent: the first
 * IMAP_LOG_REFUSALS_MAX of a session, then one saying the rest are not. */
#define IMAP_LOG_REFUSALS_MAX 16u
void imap_log_refusal(struct petrel_conn *conn, struct imap_session *s, const char *status,
                      const char *text);
/* BAD / NO counting against the listener's max_errors. */
void imap_bad(struct petrel_conn *conn, struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void imap_no(struct petrel_conn *conn, struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A command that went over several turns is complete. */
void imap_command_end(struct petrel_conn *conn, struct imap_session *s);
void imap_set_timeout(struct petrel_conn *conn, const struct imap_session *s);
/* Send an answer: whole when the output queue takes it, else a part at a
 * time as the client reads (output_drained), after what is still spilled. */
void imap_send(struct petrel_conn *conn, struct imap_session *s, struct petrel_buf *text);

/* job.c: a command's blocking part on a worker. work fills out with the
 * untagged answers and the tagged line; after runs on the I/O thread
 * before out is sent (may be NULL). */
struct imap_job;
typedef void imap_job_fn(struct imap_job *j);
struct imap_job {
    struct imap_session *s;
    imap_job_fn *work;
    void (*after)(struct petrel_conn *conn, struct imap_job *j);
    struct petrel_buf out;
    bool sync;     /* report other sessions' changes before the tagged line */
    bool expunges; /* ... including EXPUNGE (not during FETCH, STORE, SEARCH) */
    void *arg;     /* the command's own data */
    void (*free_arg)(void *arg);
    int err;
    char tag[IMAP_TAG_MAX + 1];
    char status[4]; /* OK, NO, BAD; "" when work wrote its own end */
    char text[512];
    bool too_big;       /* the answer passed IMAP_OUT_MAX: dropped for NO [LIMIT] */
    bool bye;           /* ... and the client's view of the folder is lost */
    bool untagged_only; /* a full pool refuses it without a tagged line */
};
struct imap_job *imap_job_new(struct imap_session *s, imap_job_fn *work);
/* Submit; answers NO [UNAVAILABLE] when the pool is full. */
bool imap_job_submit(struct petrel_conn *conn, struct imap_job *j);
/* A job not submitted after all (the command was refused). */
void imap_job_free(struct imap_job *j);
void imap_job_ok(struct imap_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_job_no(struct imap_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_job_bad(struct imap_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "NO [code] text" for a storage error. */
void imap_job_storage_error(struct imap_job *j, int err, const char *what);

/* util.c: the wire forms. */
/* A string as an atom-safe quoted string or a literal. */
void imap_put_string(struct petrel_buf *out, const char *s, size_t len);
/* astring with NIL for NULL. */
void imap_put_nstring(struct petrel_buf *out, const char *s);
void imap_put_flags(struct petrel_buf *out, uint32_t flags, const char *keywords);
/* Flags of a list or an atom: system flags to bits, keywords to a
 * space-separated list (malloc'ed, NULL when none). False: a bad flag. */
bool imap_parse_flags(const struct imap_arg *arg, uint32_t *flags_r, char **keywords_r,
                      const char **error_r);
/* A folder name from the wire (mUTF-7 decoded, or UTF-8 checked once
 * IMAP_UTF8_NAMES; INBOX canonical), malloc'ed, or NULL with *error_r. */
char *imap_folder_from_wire(const struct imap_session *s, const struct imap_arg *arg,
                            const char **error_r);
/* The name as it goes on the wire to this session. */
void imap_put_folder(const struct imap_session *s, struct petrel_buf *out, const char *name);

/* auth.c */
void imap_cmd_capability(struct petrel_conn *conn, struct imap_session *s);
void imap_cmd_starttls(struct petrel_conn *conn, struct imap_session *s);
void imap_cmd_login(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd);
void imap_cmd_authenticate(struct petrel_conn *conn, struct imap_session *s,
                           const struct imap_command *cmd);
void imap_put_capabilities(struct petrel_conn *conn, const struct imap_session *s,
                           struct petrel_buf *out);
void imap_session_end_user(struct imap_session *s);

/* mailbox.c: folders and the AUTH state's commands; list.c: LIST, LSUB. */
void imap_cmd_folder(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd);
void imap_cmd_list(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   bool lsub);
/* On a worker: "* LIST (attributes) "/" name" for one existing folder
 * (nothing if it is gone); a storage error. */
int imap_list_put_one(struct imap_job *j, const char *name);
void imap_cmd_status(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd);

/* L (LIST-EXTENDED, LIST-STATUS, STATUS=SIZE, QUOTA). */
/* mailbox.c: STATUS items of a list to a bit set, 0 for a bad list; on a
 * worker, a "* STATUS" line of those items to out (a storage error). */
unsigned imap_status_items(const struct imap_arg *list);
int imap_status_put(struct imap_session *s, struct petrel_buf *out, const char *name,
                    unsigned items);
/* quota.c: GETQUOTAROOT, GETQUOTA, SETQUOTA. On a worker: the account's
 * limits (0: none) from the user database, and whether copying uids of
 * the selected folder stays within them (OVER_QUOTA if not). */
void imap_cmd_getquotaroot(struct petrel_conn *conn, struct imap_session *s,
                           const struct imap_command *cmd);
void imap_cmd_getquota(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd);
void imap_cmd_setquota(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd);
int imap_quota_limits(const struct imap_session *s, struct petrel_storage_quota *q_r);
int imap_quota_check_copy(struct imap_session *s, const struct petrel_storage_uid_set *uids);
/* metadata.c: GETMETADATA, SETMETADATA (RFC 5464); on a worker, after a
 * folder was deleted (to NULL) or renamed, its entries follow. */
void imap_cmd_metadata(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd, bool set);
void imap_metadata_folder(const struct imap_session *s, const char *from, const char *to);

/* select.c: SELECT/EXAMINE, CLOSE/UNSELECT, and the message table. */
void imap_cmd_select(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, bool readonly);
void imap_cmd_close(struct petrel_conn *conn, struct imap_session *s, bool expunge);
/* Drop the selected folder (handles closed on a worker). */
void imap_unselect(struct imap_session *s);
/* The connection ends: every storage handle closed on a worker. */
void imap_session_release(struct imap_session *s);
/* On a worker: add the changes since s->modseq to out (EXISTS, RECENT,
 * FETCH FLAGS, and EXPUNGE when expunges). */
int imap_sync(struct imap_session *s, struct petrel_buf *out, bool expunges);
/* Sequence number of uid (1-based), or 0. */
uint32_t imap_msgs_seq(const struct imap_msgs *m, uint32_t uid);
/* The same for UIDs asked in ascending order: *at (0 at first) keeps the
 * place of the last one, so a walk over a whole run reads the table
 * forward once instead of searching it per message. */
uint32_t imap_msgs_seq_walk(const struct imap_msgs *m, uint32_t uid, uint32_t *at);
void imap_msgs_remove(struct imap_msgs *m, uint32_t seq);
void imap_msgs_add(struct imap_msgs *m, uint32_t uid, uint8_t flags);
/* A sequence set argument to UIDs (uid: the set is of UIDs). NULL ranges
 * with count 0 means nothing; false with *error_r for a bad set. */
bool imap_set_to_uids(const struct imap_session *s, const struct imap_arg *arg, bool uid,
                      struct petrel_storage_uid_set *set_r, const char **error_r);

/* store.c: STORE, COPY, MOVE, EXPUNGE, CHECK, NOOP. */
void imap_cmd_store(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd, size_t argi, bool uid);
void imap_cmd_copy(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   size_t argi, bool uid, bool move);
void imap_cmd_expunge(struct petrel_conn *conn, struct imap_session *s,
                      const struct imap_command *cmd, size_t argi, bool uid);
void imap_cmd_noop(struct petrel_conn *conn, struct imap_session *s);

/* fetch.c */
void imap_cmd_fetch(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd, size_t argi, bool uid);
void imap_fetch_more(struct petrel_conn *conn, struct imap_session *s);
void imap_fetch_free(struct imap_session *s);

/* --- S: SEARCH, ESEARCH, SEARCHRES, SORT, THREAD --- */
/* search.c */
void imap_cmd_search(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, size_t argi, bool uid);
/* The matching that SEARCH, SORT and THREAD share. */
struct imap_search;
struct imap_search_run {
    struct imap_search *search;
    unsigned needs;
    uint32_t *uids; /* matched, ascending */
    size_t n, cap;
    struct petrel_buf header;
    /* meta: each match's INTERNALDATE and size kept too (SORT, THREAD) */
    bool meta;
    int64_t *internal_date;
    uint64_t *size;
    uint64_t max_modseq; /* Q: the greatest MODSEQ of the matches (RFC 7162 3.1.5) */
};
/* On the I/O thread: compile the keys (a leading CHARSET included) and
 * bind "$"; false when the command was answered BAD or NO. */
bool imap_search_begin(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_arg *args, size_t count, struct imap_search_run *run);
/* In the job: match every message the client knows. */
int imap_search_run(struct imap_job *j, struct imap_search_run *run);
void imap_search_run_free(struct imap_search_run *run);
/* RETURN (...) of SEARCH (RFC 4731, RFC 5182) and SORT (RFC 5267): the
 * options as bits; RETURN () is ALL. False with *error_r for a bad one. */
#define IMAP_RET_MIN 1u
#define IMAP_RET_MAX 2u
#define IMAP_RET_ALL 4u
#define IMAP_RET_COUNT 8u
#define IMAP_RET_SAVE 16u
bool imap_search_parse_return(const struct imap_arg *list, unsigned *ret_r, const char **error_r);
/* "* ESEARCH (TAG ...) [UID] MIN MAX ALL COUNT [MODSEQ m]" of numbers in
 * answer order; modseq 0 leaves MODSEQ out. */
void imap_esearch_put(struct imap_job *j, bool uid, unsigned ret, const uint32_t *v, size_t n,
                      uint64_t modseq);
/* The MODSEQ an answer names (RFC 7162 section 3.1.5): the greatest of the
 * matches when a MODSEQ key was used, else 0. */
uint64_t imap_search_answer_modseq(const struct imap_search_run *run);
/* SAVE: the UIDs (in answer order) kept as RFC 5182 section 2.4 says. */
void imap_saved_keep(struct imap_session *s, unsigned ret, const uint32_t *uids, size_t n);
/* The saved result: set (UIDs ascending), emptied, and read as the UIDs
 * still in the folder (malloc'ed ranges, free() them). */
void imap_saved_set(struct imap_session *s, const uint32_t *uids, size_t n);
void imap_saved_clear(struct imap_session *s);
size_t imap_saved_uids(const struct imap_session *s, struct petrel_storage_uid_range **out_r);
/* sort.c: SORT and THREAD (RFC 5256). */
void imap_cmd_sort(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd,
                   size_t argi, bool uid);
void imap_cmd_thread(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd, size_t argi, bool uid);

/* append.c */
void imap_cmd_append(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd);
const struct imap_literal_sink *imap_append_sink(struct imap_session *s);
void imap_spool_close(struct imap_session *s);

/* idle.c: IDLE and the storage watcher. */
void imap_cmd_idle(struct petrel_conn *conn, struct imap_session *s);
void imap_idle_line(struct petrel_conn *conn, struct imap_session *s, const char *line, size_t len);
void imap_wakeup(struct petrel_conn *conn);
/* On the I/O thread, before a SELECT job: the waker the watcher uses. */
void imap_watch_prepare(struct petrel_conn *conn, struct imap_session *s);
/* On a worker: watch folder; stop: unwatch. */
int imap_watch_start(struct imap_session *s, const char *folder);
void imap_watch_free(struct imap_watch_arg *wa);
void imap_watch_stop(struct imap_session *s);
/* Whether a watcher saw a change since the last sync (clears it). */
bool imap_watch_changed(struct imap_session *s);

/* --- Q: CONDSTORE and QRESYNC (RFC 7162), condstore.c --- */
#define IMAP_EN_CONDSTORE 1u
#define IMAP_EN_QRESYNC 2u
/* IMAP4rev2 (RFC 9051) semantics and UTF8=ACCEPT (RFC 6855): docs/imap.md. */
#define IMAP_EN_REV2 4u
#define IMAP_EN_UTF8 8u
/* Folder names go both ways as UTF-8 rather than modified UTF-7. */
#define IMAP_UTF8_NAMES(s) (((s)->enabled & (IMAP_EN_REV2 | IMAP_EN_UTF8)) != 0)
/* ENABLE (RFC 5161): a table of what can be enabled. */
void imap_cmd_enable(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd);
/* A UID set resolved against UIDNEXT - 1 rather than the last UID left:
 * for UIDs a client knew that may since have vanished. */
bool imap_uid_set_wide(const struct imap_session *s, const struct imap_arg *arg,
                       struct petrel_storage_uid_set *set_r, const char **error_r);

#endif
