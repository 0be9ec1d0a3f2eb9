/* Builds DNS messages in wire form for the resolver's unit tests: names
 * written in full or as compression pointers, records with their length
 * patched in when they end. Every write is bounded by the buffer. */
#ifndef PETREL_TEST_DNS_MSG_H
#define PETREL_TEST_DNS_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dmsg {
    unsigned char b[8192];
    size_t len;
};

static inline void dm_byte(struct dmsg *m, unsigned v)
{
    if (m->len >= sizeof(m->b))
        abort();
    m->b[m->len++] = (unsigned char)v;
}

static inline void dm_u16(struct dmsg *m, unsigned v)
{
    dm_byte(m, v >> 8 & 0xff);
    dm_byte(m, v & 0xff);
}

static inline void dm_u32(struct dmsg *m, uint32_t v)
{
    dm_u16(m, v >> 16);
    dm_u16(m, v & 0xffff);
}

static inline void dm_bytes(struct dmsg *m, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dm_byte(m, ((const unsigned char *)p)[i]);
}

/* "a.b.c" as labels; "" is the root. */
static inline void dm_name(struct dmsg *m, const char *name)
{
    while (*name != '\0') {
        const char *dot = strchr(name, '.');
        size_t n = dot != NULL ? (size_t)(dot - name) : strlen(name);
        dm_byte(m, (unsigned)n);
        dm_bytes(m, name, n);
        name += n + (dot != NULL);
    }
    dm_byte(m, 0);
}

static inline void dm_ptr(struct dmsg *m, size_t off) { dm_u16(m, 0xc000u | (unsigned)off); }

/* Header: flags as the 16 bits after the ID (0x8180: reply, RD, RA). */
static inline void dm_header(struct dmsg *m, unsigned flags, unsigned qd, unsigned an, unsigned ns,
                             unsigned ar)
{
    m->len = 0;
    dm_u16(m, 0x1234);
    dm_u16(m, flags);
    dm_u16(m, qd);
    dm_u16(m, an);
    dm_u16(m, ns);
    dm_u16(m, ar);
}

#define DM_QNAME_OFF 12 /* where the question's name starts */

static inline void dm_question(struct dmsg *m, const char *name, unsigned type)
{
    dm_name(m, name);
    dm_u16(m, type);
    dm_u16(m, 1);
}

/* Type, class IN, TTL and a length to patch; the owner is written before
 * (dm_name or dm_ptr). Returns where the length sits. */
static inline size_t dm_rr(struct dmsg *m, unsigned type, uint32_t ttl)
{
    dm_u16(m, type);
    dm_u16(m, 1);
    dm_u32(m, ttl);
    size_t at = m->len;
    dm_u16(m, 0);
    return at;
}

static inline void dm_end(struct dmsg *m, size_t at)
{
    size_t n = m->len - at - 2;
    m->b[at] = (unsigned char)(n >> 8);
    m->b[at + 1] = (unsigned char)(n & 0xff);
}

#endif
