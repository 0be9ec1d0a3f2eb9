/* IMAP dates (RFC 3501 section 9): date-time for APPEND and INTERNALDATE
 * ("17-Jul-1996 02:44:25 -0700", the day may be space-padded, the whole
 * quoted on the wire) and date for SEARCH ("1-Feb-1994"). */
#ifndef PETREL_IMAP_DATE_H
#define PETREL_IMAP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "dd-Mon-yyyy hh:mm:ss +zzzz" without the quotes, to seconds since the
 * epoch (UTC). False for anything else, or an impossible date. */
bool imap_datetime_parse(const char *s, size_t len, int64_t *t_r);
/* t as date-time with the zone +0000, without quotes: 26 bytes. */
#define IMAP_DATETIME_LEN 26
void imap_datetime_format(int64_t t, char out[IMAP_DATETIME_LEN + 1]);
/* "d-Mon-yyyy" or "dd-Mon-yyyy" to days since 1970-01-01 (negative
 * before). False for anything else. */
bool imap_date_parse(const char *s, size_t len, int64_t *days_r);

#endif
