/* What FETCH ENVELOPE, BODY and BODYSTRUCTURE answer, and where each MIME
 * part of a message lies (for BODY[section]), built from one pass over the
 * message with the core MIME parser and kept in the store's per-message
 * cache, so that a client fetching them for 10,000 messages makes the
 * server read each file once, ever. */
#ifndef PETREL_IMAP_MSGINFO_H
#define PETREL_IMAP_MSGINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

/* The store cache key (petrel_storage_ops.cache_get/cache_set). */
#define IMAP_MSGINFO_CACHE_KEY "imap.msginfo"

struct imap_msginfo;
struct imap_msginfo_builder;

/* Feed the message's bytes in order, in pieces of any size, then finish:
 * finish frees the builder and always gives a msginfo (a message that is
 * not valid MIME still has a structure: RFC 3501 asks for one). */
struct imap_msginfo_builder *imap_msginfo_builder_new(void);
void imap_msginfo_feed(struct imap_msginfo_builder *b, const void *data, size_t len);
struct imap_msginfo *imap_msginfo_finish(struct imap_msginfo_builder *b);
void imap_msginfo_free(struct imap_msginfo *mi);

/* The values as they go on the wire after "ENVELOPE ", "BODY " and
 * "BODYSTRUCTURE ": complete IMAP syntax, strings quoted or as literals. */
const char *imap_msginfo_envelope(const struct imap_msginfo *mi, size_t *len_r);
const char *imap_msginfo_body(const struct imap_msginfo *mi, size_t *len_r);
const char *imap_msginfo_bodystructure(const struct imap_msginfo *mi, size_t *len_r);

/* For the cache: serialize appends to out; deserialize gives NULL for a
 * value that is not one of ours, of another version or damaged (the
 * caller rebuilds it from the message). */
void imap_msginfo_serialize(const struct imap_msginfo *mi, struct petrel_buf *out);
struct imap_msginfo *imap_msginfo_deserialize(const void *data, size_t len);

#endif
