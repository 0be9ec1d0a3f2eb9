/* LIST and LSUB patterns (RFC 3501 section 6.3.8): the reference and the
 * mailbox pattern joined, '*' matching anything, '%' anything but the
 * hierarchy separator, the name INBOX in any case. Names and patterns are
 * compared as bytes: decode both from modified UTF-7 first
 * (imap_mutf7.h), since '*' and '%' pass through it unchanged. */
#ifndef PETREL_IMAP_LIST_H
#define PETREL_IMAP_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define IMAP_LIST_SEP '/'
/* The joined pattern, at most; a longer one is refused. */
#define IMAP_LIST_PATTERN_MAX 1024u
/* Names longer than this, and the empty name, match nothing. */
#define IMAP_LIST_NAME_MAX 4096u

struct imap_list_pattern;

/* reference + mailbox; a separator at the end of the one and the start of
 * the other counts once. NULL when the result is longer than
 * IMAP_LIST_PATTERN_MAX. An empty result matches nothing (LIST "" ""
 * asks for the separator: the session's case). */
struct imap_list_pattern *imap_list_pattern_new(const char *ref, size_t ref_len,
                                                const char *mailbox, size_t mailbox_len);
void imap_list_pattern_free(struct imap_list_pattern *pat);
/* Whether the folder name matches, in time proportional to the product
 * of the two lengths at worst (no backtracking). */
bool imap_list_match(const struct imap_list_pattern *pat, const char *name, size_t len);

#endif
