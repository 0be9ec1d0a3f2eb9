/* The DNS answer parser: a reply in wire form (RFC 1035) to typed records,
 * with no I/O. Everything read is bounds-checked against the message;
 * compression pointers must point strictly backwards, so a name can never
 * loop; counts that promise more than the message holds are refused. The
 * fuzzer (tests/fuzz/fuzz_dns.c) drives it directly. */
#include "config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "dns_private.h"

#define WIRE_NAME_MAX 255

enum section { ANSWER, AUTHORITY, ADDITIONAL };

/* One resource record as found in the message (offsets into it). */
struct rr {
    size_t owner;
    uint16_t type, class;
    uint32_t ttl;
    size_t rdata, rdlen;
};

struct msg {
    const unsigned char *p;
    size_t len;
};

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 2181 s.8: a TTL with the top bit set means zero. */
static uint32_t ttl_of(uint32_t wire) { return wire > 0x7fffffffu ? 0 : wire; }

static bool plain_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Append one label in presentation form; out has room (checked by caller
 * through the wire length: 4 bytes per octet at most). */
static size_t put_label(char *out, size_t o, const unsigned char *label, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = label[i];
        if (plain_char(c)) {
            out[o++] = (char)c;
        } else if (c == '.' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = (char)('0' + c / 100);
            out[o++] = (char)('0' + c / 10 % 10);
            out[o++] = (char)('0' + c % 10);
        }
    }
    return o;
}

/* Expand the name at off into out (PETREL_DNS_NAME_MAX bytes), "" for the
 * root; *end_r is where the name ends in place. Each pointer must point
 * before the start of the stretch being read, so offsets strictly decrease
 * from jump to jump and expansion always ends. */
static bool read_name(const struct msg *m, size_t off, char *out, size_t *end_r)
{
    size_t pos = off, limit = off, wire = 1, o = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= m->len)
            return false;
        unsigned char b = m->p[pos];
        if ((b & 0xc0) == 0xc0) {
            if (pos + 1 >= m->len)
                return false;
            size_t ptr = (size_t)(b & 0x3f) << 8 | m->p[pos + 1];
            if (ptr >= limit || ptr < DNS_HEADER_LEN)
                return false;
            if (!jumped)
                *end_r = pos + 2;
            jumped = true;
            pos = limit = ptr;
            continue;
        }
        if (b & 0xc0) /* the 0x40 and 0x80 label types are obsolete */
            return false;
        if (b == 0)
            break;
        wire += 1u + b;
        if (wire > WIRE_NAME_MAX || pos + 1 + b > m->len)
            return false;
        if (o > 0)
            out[o++] = '.';
        o = put_label(out, o, m->p + pos + 1, b);
        pos += 1u + b;
    }
    if (!jumped)
        *end_r = pos + 1;
    out[o] = '\0';
    return true;
}

/* The record header at *pos; *pos moves past its data. */
static bool read_rr(const struct msg *m, size_t *pos, struct rr *rr)
{
    char scratch[PETREL_DNS_NAME_MAX];
    size_t p;
    rr->owner = *pos;
    if (!read_name(m, *pos, scratch, &p) || m->len - p < 10)
        return false;
    rr->type = get16(m->p + p);
    rr->class = get16(m->p + p + 2);
    rr->ttl = ttl_of(get32(m->p + p + 4));
    rr->rdlen = get16(m->p + p + 8);
    rr->rdata = p + 10;
    if (m->len - rr->rdata < rr->rdlen)
        return false;
    *pos = rr->rdata + rr->rdlen;
    return true;
}

/* A name that must fill the record data exactly (MX after the preference,
 * PTR, CNAME). */
static bool rdata_name(const struct msg *m, const struct rr *rr, size_t skip, char *out)
{
    size_t end;
    return rr->rdlen >= skip && read_name(m, rr->rdata + skip, out, &end) &&
           end == rr->rdata + rr->rdlen;
}

static bool owner_is(const struct msg *m, const struct rr *rr, const char *name)
{
    char owner[PETREL_DNS_NAME_MAX];
    size_t end;
    return read_name(m, rr->owner, owner, &end) && strcasecmp(owner, name) == 0;
}

/* What one pass over the message found. */
struct scan {
    size_t answers; /* offset of the answer section */
    uint16_t ancount;
    int rcode;
    bool ad;
    bool has_soa;
    uint32_t soa_ttl;
};

/* SOA data: two names then serial, refresh, retry, expire, minimum. The
 * negative TTL is the smaller of the record's TTL and its minimum. */
static bool read_soa(const struct msg *m, const struct rr *rr, uint32_t *neg_ttl_r)
{
    char name[PETREL_DNS_NAME_MAX];
    size_t p;
    if (!read_name(m, rr->rdata, name, &p) || p > rr->rdata + rr->rdlen ||
        !read_name(m, p, name, &p) || rr->rdata + rr->rdlen - p != 20 || p > m->len)
        return false;
    uint32_t minimum = ttl_of(get32(m->p + p + 16));
    *neg_ttl_r = rr->ttl < minimum ? rr->ttl : minimum;
    return true;
}

/* Walk every record of the three sections, checking their bounds; note
 * the first SOA of the authority section and the OPT record's extended
 * rcode. */
static bool scan_sections(const struct msg *m, size_t pos, struct scan *s, const char **error_r)
{
    const uint16_t counts[3] = {s->ancount, get16(m->p + 8), get16(m->p + 10)};
    s->answers = pos;
    for (int sec = ANSWER; sec <= ADDITIONAL; sec++) {
        for (unsigned i = 0; i < counts[sec]; i++) {
            struct rr rr;
            if (!read_rr(m, &pos, &rr)) {
                *error_r = "malformed or truncated record";
                return false;
            }
            if (sec == AUTHORITY && rr.type == DNS_TYPE_SOA && !s->has_soa) {
                if (!read_soa(m, &rr, &s->soa_ttl)) {
                    *error_r = "malformed SOA record";
                    return false;
                }
                s->has_soa = true;
            } else if (sec == ADDITIONAL && rr.type == DNS_TYPE_OPT) {
                s->rcode |= (int)(rr.ttl >> 24 & 0xff) << 4;
            }
        }
    }
    return true;
}

/* Header and question: a reply to a standard query for (qname, qtype, IN),
 * not truncated. *pos ends after the question. */
static bool read_question(const struct msg *m, uint16_t qtype, const char *qname, size_t *pos,
                          struct scan *s, const char **error_r)
{
    if (m->len < DNS_HEADER_LEN) {
        *error_r = "shorter than a DNS header";
        return false;
    }
    const unsigned char *h = m->p;
    if (!(h[2] & 0x80) || (h[2] & 0x78) != 0) {
        *error_r = "not a reply to a standard query";
        return false;
    }
    if (h[2] & 0x02) {
        *error_r = "truncated reply";
        return false;
    }
    s->rcode = h[3] & 0x0f;
    s->ad = (h[3] & 0x20) != 0;
    s->ancount = get16(h + 6);
    uint16_t qdcount = get16(h + 4);
    *pos = DNS_HEADER_LEN;
    /* Some servers drop the question from an error reply. */
    if (qdcount == 0 && s->rcode != PETREL_DNS_RCODE_NOERROR && s->ancount == 0)
        return true;
    char name[PETREL_DNS_NAME_MAX];
    if (qdcount != 1 || !read_name(m, *pos, name, pos) || m->len - *pos < 4) {
        *error_r = "malformed question";
        return false;
    }
    if (get16(m->p + *pos) != qtype || get16(m->p + *pos + 2) != DNS_CLASS_IN ||
        (qname != NULL && strcasecmp(name, qname) != 0)) {
        *error_r = "reply to another question";
        return false;
    }
    *pos += 4;
    return true;
}

/* Follow the CNAMEs from qname within the answer section into canon
 * (PETREL_DNS_NAME_MAX bytes), lowering *ttl to theirs. */
static bool follow_cnames(const struct msg *m, const struct scan *s, const char *qname, char *canon,
                          uint32_t *ttl, const char **error_r)
{
    petrel_strlcpy(canon, qname, PETREL_DNS_NAME_MAX);
    for (int hops = 0;; hops++) {
        bool moved = false;
        size_t pos = s->answers;
        for (unsigned i = 0; i < s->ancount && !moved; i++) {
            struct rr rr;
            read_rr(m, &pos, &rr); /* cannot fail: scan_sections checked */
            if (rr.type != DNS_TYPE_CNAME || rr.class != DNS_CLASS_IN || !owner_is(m, &rr, canon))
                continue;
            if (hops == DNS_MAX_CNAMES) {
                *error_r = "CNAME chain too long";
                return false;
            }
            if (!rdata_name(m, &rr, 0, canon)) {
                *error_r = "malformed CNAME record";
                return false;
            }
            if (rr.ttl < *ttl)
                *ttl = rr.ttl;
            moved = true;
        }
        if (!moved)
            return true;
    }
}

/* Bytes a record needs after the record array, -1 if its data is
 * malformed for its type. */
static long record_size(const struct msg *m, const struct rr *rr, uint16_t type)
{
    char name[PETREL_DNS_NAME_MAX];
    switch (type) {
    case PETREL_DNS_A:
        return rr->rdlen == 4 ? 0 : -1;
    case PETREL_DNS_AAAA:
        return rr->rdlen == 16 ? 0 : -1;
    case PETREL_DNS_MX:
        return rdata_name(m, rr, 2, name) ? (long)strlen(name) + 1 : -1;
    case PETREL_DNS_PTR:
        return rdata_name(m, rr, 0, name) ? (long)strlen(name) + 1 : -1;
    case PETREL_DNS_TLSA:
        return rr->rdlen >= 3 ? (long)rr->rdlen - 3 + 1 : -1;
    case PETREL_DNS_TXT: {
        /* Character-strings filling the data exactly; joined. */
        size_t p = 0, n = 0;
        while (p < rr->rdlen) {
            size_t l = m->p[rr->rdata + p];
            if (rr->rdlen - p - 1 < l)
                return -1;
            p += 1 + l;
            n += l;
        }
        return rr->rdlen > 0 ? (long)n + 1 : -1;
    }
    }
    return -1;
}

/* Fill rec from rr, its strings at *arena (moved on). */
static void fill_record(const struct msg *m, const struct rr *rr, uint16_t type,
                        struct petrel_dns_record *rec, char **arena)
{
    const unsigned char *d = m->p + rr->rdata;
    char *a = *arena;
    switch (type) {
    case PETREL_DNS_A:
        rec->a.family = AF_INET;
        memcpy(&rec->a.u.v4, d, 4);
        return;
    case PETREL_DNS_AAAA:
        rec->a.family = AF_INET6;
        memcpy(&rec->a.u.v6, d, 16);
        return;
    case PETREL_DNS_MX:
        rec->mx.preference = get16(d);
        rdata_name(m, rr, 2, a);
        rec->mx.exchange = a;
        *arena = a + strlen(a) + 1;
        return;
    case PETREL_DNS_PTR:
        rdata_name(m, rr, 0, a);
        rec->ptr = a;
        *arena = a + strlen(a) + 1;
        return;
    case PETREL_DNS_TLSA:
        rec->tlsa.usage = d[0];
        rec->tlsa.selector = d[1];
        rec->tlsa.matching = d[2];
        rec->tlsa.len = rr->rdlen - 3;
        memcpy(a, d + 3, rec->tlsa.len);
        a[rec->tlsa.len] = '\0';
        rec->tlsa.data = (const unsigned char *)a;
        *arena = a + rec->tlsa.len + 1;
        return;
    case PETREL_DNS_TXT: {
        size_t n = 0;
        for (size_t p = 0; p < rr->rdlen; p += 1u + d[p]) {
            memcpy(a + n, d + p + 1, d[p]);
            n += d[p];
        }
        a[n] = '\0';
        rec->txt.data = (const unsigned char *)a;
        rec->txt.len = n;
        *arena = a + n + 1;
        return;
    }
    }
}

/* Stable, so that equal preferences keep the answer's order. */
static void sort_mx(struct petrel_dns_record *r, size_t n, struct petrel_dns_record *tmp)
{
    if (n < 2)
        return;
    size_t half = n / 2;
    sort_mx(r, half, tmp);
    sort_mx(r + half, n - half, tmp);
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n)
        tmp[k++] = r[j].mx.preference < r[i].mx.preference ? r[j++] : r[i++];
    while (i < half)
        tmp[k++] = r[i++];
    while (j < n)
        tmp[k++] = r[j++];
    memcpy(r, tmp, n * sizeof(*r));
}

/* The records of the type asked for owned by canon: first sized (and
 * checked), then copied into one allocation. */
static struct dns_answer *collect(const struct msg *m, const struct scan *s, uint16_t qtype,
                                  const char *canon, uint32_t *ttl, const char **error_r)
{
    size_t count = 0, bytes = strlen(canon) + 1;
    size_t pos = s->answers;
    for (unsigned i = 0; i < s->ancount; i++) {
        struct rr rr;
        read_rr(m, &pos, &rr);
        if (rr.type != qtype || rr.class != DNS_CLASS_IN || !owner_is(m, &rr, canon))
            continue;
        long need = record_size(m, &rr, qtype);
        if (need < 0) {
            *error_r = "malformed record data";
            return NULL;
        }
        bytes += (size_t)need;
        count++;
        if (rr.ttl < *ttl)
            *ttl = rr.ttl;
    }
    struct dns_answer *a =
        petrel_calloc(1, sizeof(*a) + count * sizeof(struct petrel_dns_record) + bytes);
    a->records = (struct petrel_dns_record *)(a + 1);
    char *arena = (char *)(a->records + count);
    memcpy(arena, canon, strlen(canon) + 1);
    a->canonical = arena;
    arena += strlen(canon) + 1;
    pos = s->answers;
    for (unsigned i = 0; i < s->ancount; i++) {
        struct rr rr;
        read_rr(m, &pos, &rr);
        if (rr.type == qtype && rr.class == DNS_CLASS_IN && owner_is(m, &rr, canon))
            fill_record(m, &rr, qtype, &a->records[a->count++], &arena);
    }
    if (qtype == PETREL_DNS_MX && count > 1) {
        struct petrel_dns_record *tmp = petrel_malloc(count * sizeof(*tmp));
        sort_mx(a->records, count, tmp);
        free(tmp);
    }
    return a;
}

struct dns_answer *petrel_dns_parse_answer(const unsigned char *msg, size_t len, uint16_t qtype,
                                           const char *qname, const char **error_r)
{
    struct msg m = {msg, len};
    struct scan s = {0};
    size_t pos;
    if (!read_question(&m, qtype, qname, &pos, &s, error_r) || !scan_sections(&m, pos, &s, error_r))
        return NULL;
    char asked[PETREL_DNS_NAME_MAX], canon[PETREL_DNS_NAME_MAX];
    size_t end;
    /* The question as the server wrote it (qname may be NULL). */
    if (get16(msg + 4) == 0)
        asked[0] = '\0';
    else
        read_name(&m, DNS_HEADER_LEN, asked, &end);
    uint32_t ttl = UINT32_MAX;
    if (!follow_cnames(&m, &s, asked, canon, &ttl, error_r))
        return NULL;
    struct dns_answer *a = collect(&m, &s, qtype, canon, &ttl, error_r);
    if (a == NULL)
        return NULL;
    atomic_init(&a->refs, 1);
    a->type = qtype;
    a->rcode = s.rcode;
    a->ad = s.ad;
    a->has_soa = s.has_soa;
    if (a->count == 0)
        ttl = s.has_soa ? s.soa_ttl : 0;
    a->ttl = ttl;
    return a;
}

struct dns_answer *petrel_dns_answer_ref(struct dns_answer *a)
{
    atomic_fetch_add(&a->refs, 1);
    return a;
}

void petrel_dns_answer_unref(struct dns_answer *a)
{
    if (a != NULL && atomic_fetch_sub(&a->refs, 1) == 1)
        free(a);
}

enum petrel_dns_status petrel_dns_answer_status(const struct dns_answer *a)
{
    switch (a->rcode) {
    case PETREL_DNS_RCODE_NOERROR:
        return a->count > 0 ? PETREL_DNS_OK : PETREL_DNS_NODATA;
    case PETREL_DNS_RCODE_NXDOMAIN:
        return PETREL_DNS_NXDOMAIN;
    default:
        return PETREL_DNS_SERVFAIL;
    }
}
