/* The part table of a msginfo, for imap_section.c (not for the module). */
#ifndef PETREL_IMAP_MSGINFO_PRIVATE_H
#define PETREL_IMAP_MSGINFO_PRIVATE_H

#include <stdint.h>

#include "imap_msginfo.h"

#define IMAP_PART_NONE UINT32_MAX

enum imap_part_flags {
    IMAP_PART_MULTIPART = 1u, /* its children are its parts */
    IMAP_PART_MESSAGE = 2u,   /* message/rfc822 whose only child is the message it holds */
};

/* The part's Content-Transfer-Encoding, for BINARY: bits 8 and 9 of
 * flags, so the cached table keeps its layout. */
#define IMAP_PART_CTE_SHIFT 8u
#define IMAP_PART_CTE_MASK (3u << IMAP_PART_CTE_SHIFT)
enum imap_part_cte {
    IMAP_CTE_IDENTITY = 0u, /* 7bit, 8bit, binary (and the default) */
    IMAP_CTE_BASE64 = 1u,
    IMAP_CTE_QP = 2u,
    IMAP_CTE_UNKNOWN = 3u,
};
#define IMAP_PART_CTE(flags)                                                                       \
    ((enum imap_part_cte)(((flags)&IMAP_PART_CTE_MASK) >> IMAP_PART_CTE_SHIFT))

/* Parts in pre-order, the root (the whole message) first: a part's first
 * child and next sibling always come after it, so walking them ends. */
struct imap_msginfo_part {
    uint64_t header_offset, header_size;
    uint64_t body_offset, body_size;
    uint32_t first_child, next;
    uint32_t flags;
};

const struct imap_msginfo_part *imap_msginfo_parts(const struct imap_msginfo *mi,
                                                   uint32_t *count_r);
/* Bytes of the whole message as fed. */
uint64_t imap_msginfo_size(const struct imap_msginfo *mi);

#endif
