/* THREAD (RFC 5256 section 3): ORDEREDSUBJECT and REFERENCES over the
 * sort keys of the matched messages, written as the THREAD answer's
 * thread lists. No I/O: the session feeds it, the unit test and the
 * fuzzer too. */
#ifndef PETREL_IMAP_THREAD_H
#define PETREL_IMAP_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

enum imap_thread_alg {
    IMAP_THREAD_ORDEREDSUBJECT,
    IMAP_THREAD_REFERENCES,
};

struct imap_thread_msg {
    uint32_t number;     /* sequence number or UID: ascending from one add to the next */
    int64_t date;        /* the sent date (INTERNALDATE when Date: is missing) */
    const char *subject; /* the base subject */
    size_t subject_len;
    bool reply;        /* the subject had a reply or forward marker */
    const char *msgid; /* without brackets; NULL or "" when none */
    size_t msgid_len;
    const char *refs; /* References (or In-Reply-To) ids, blank-separated */
    size_t refs_len;
};

struct imap_thread;
struct imap_thread *imap_thread_new(enum imap_thread_alg alg);
void imap_thread_add(struct imap_thread *t, const struct imap_thread_msg *m);
/* The threads (thread-list ...) appended to out, without "* THREAD". */
void imap_thread_write(struct imap_thread *t, struct petrel_buf *out);
void imap_thread_free(struct imap_thread *t);

#endif
