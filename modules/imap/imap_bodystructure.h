/* BODY and BODYSTRUCTURE (RFC 3501 section 7.4.2) of a parsed message, and
 * the part table that matches them part for part. */
#ifndef PETREL_IMAP_BODYSTRUCTURE_H
#define PETREL_IMAP_BODYSTRUCTURE_H

#include <stdbool.h>

#include <petrel/mime.h>

#include "imap_mime_str.h"
#include "imap_msginfo_private.h"

/* Write the structure of root; ext adds the extension data
 * (BODYSTRUCTURE). */
void imap_bodystructure_write(struct imap_mime_writer *w, const struct petrel_mime_part *root,
                              bool ext);
/* The part table of root in pre-order; *count_r entries, free() it. */
struct imap_msginfo_part *imap_bodystructure_parts(const struct petrel_mime_part *root,
                                                   uint32_t *count_r);

#endif
