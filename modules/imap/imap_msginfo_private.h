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
