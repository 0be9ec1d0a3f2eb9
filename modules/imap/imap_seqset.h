/* IMAP sequence sets (RFC 3501 section 9 sequence-set; RFC 5182 "$"):
 * "1", "2:4", "7:*", "*:3", "1,3:5,9", "$". Numbers are message sequence
 * numbers or UIDs; '*' is the largest in use, known only when the set is
 * used, so a parsed set keeps it symbolic. */
#ifndef PETREL_IMAP_SEQSET_H
#define PETREL_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/storage.h>

/* Ranges one set may hold: a client that sends more gets BAD [LIMIT]. */
#define IMAP_SEQSET_MAX_RANGES 4096u
/* '*' inside a parsed range. */
#define IMAP_SEQ_STAR 0u

struct imap_seq_range {
    uint32_t lo, hi; /* as written: either order, IMAP_SEQ_STAR for '*' */
};

struct imap_seqset {
    struct imap_seq_range *ranges;
    size_t count;
    bool saved; /* "$": the result of the last SEARCH (RFC 5182) */
    /* Ranges ascending, apart and without '*' (a saved SEARCH result, a
     * WITHIN key's UIDs): looked up by bisection, as they can be many. */
    bool sorted;
};

enum imap_seqset_result {
    IMAP_SEQSET_OK = 0,
    IMAP_SEQSET_SYNTAX, /* not a sequence set (0, garbage, empty parts) */
    IMAP_SEQSET_LIMIT,  /* more than IMAP_SEQSET_MAX_RANGES ranges */
};

/* Parse len bytes of s. On OK the caller frees set->ranges with free(). */
enum imap_seqset_result imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set);
void imap_seqset_free(struct imap_seqset *set);

/* Whether n is in the set, '*' standing for star (the largest number in
 * use; 0 when there is none, which matches nothing). Not for a "$" set. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);

/* The set resolved against star, sorted, merged and cut to 1..star: the
 * ranges the storage calls take. Returns the number of ranges written to
 * *out_r (malloc'ed, free() it; NULL when 0). A range that lies wholly
 * above star is dropped, except that "n:*" always gives star (RFC 3501:
 * "*" is the last message even when n is larger). */
size_t imap_seqset_resolve(const struct imap_seqset *set, uint32_t star,
                           struct petrel_storage_uid_range **out_r);

#endif
