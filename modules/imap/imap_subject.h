/* The base subject of RFC 5256 section 2.1, which SORT SUBJECT orders by
 * and THREAD groups by. */
#ifndef PETREL_IMAP_SUBJECT_H
#define PETREL_IMAP_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of a Subject value decoded (RFC 2047) before the rules apply. */
#define IMAP_SUBJECT_MAX 4096u

/* The base subject of a Subject field's value as written (len bytes, may
 * be folded and hold encoded words): UTF-8, malloc'ed, free() it. *reply_r
 * says whether a reply or forward marker went: "re:", "fw:", "fwd:", a
 * "(fwd)" trailer or a "[fwd: ...]" wrapper. */
char *imap_base_subject(const char *value, size_t len, bool *reply_r);

/* i;ascii-casemap (RFC 4790): bytes compared with ASCII letters upper. */
int imap_casemap_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
