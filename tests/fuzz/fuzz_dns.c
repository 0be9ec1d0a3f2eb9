/* libFuzzer target for core/dns_parse.c: the input is a DNS reply. It is
 * parsed as an answer to each record type (the question's own type is
 * the one that gets past the question check), without a name to compare,
 * and every accepted answer is read back whole: names are NUL-terminated
 * presentation text of bounded length, data lengths stay in bounds, MX
 * preferences are sorted. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
    if (strlen(s) >= PETREL_DNS_NAME_MAX)
        abort();
}

static void check(const struct dns_answer *a)
{
    check_name(a->canonical);
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < a->count; i++) {
        const struct petrel_dns_record *r = &a->records[i];
        switch (a->type) {
        case PETREL_DNS_MX:
            check_name(r->mx.exchange);
            if (i > 0 && r->mx.preference < a->records[i - 1].mx.preference)
                abort();
            break;
        case PETREL_DNS_PTR:
            check_name(r->ptr);
            break;
        case PETREL_DNS_TXT:
            for (size_t j = 0; j < r->txt.len; j++)
                sink ^= r->txt.data[j];
            if (r->txt.data[r->txt.len] != 0 || r->txt.len > 65535)
                abort();
            break;
        case PETREL_DNS_TLSA:
            for (size_t j = 0; j < r->tlsa.len; j++)
                sink ^= r->tlsa.data[j];
            break;
        default:
            sink ^= (unsigned char)r->a.family;
        }
    }
    (void)sink;
    (void)petrel_dns_answer_status(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint16_t types[] = {PETREL_DNS_A,   PETREL_DNS_AAAA, PETREL_DNS_MX,
                                     PETREL_DNS_TXT, PETREL_DNS_PTR,  PETREL_DNS_TLSA};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        const char *error = NULL;
        struct dns_answer *a = petrel_dns_parse_answer(data, size, types[i], NULL, &error);
        if (a == NULL) {
            if (error == NULL)
                abort();
            continue;
        }
        check(a);
        petrel_dns_answer_unref(a);
    }
    return 0;
}
