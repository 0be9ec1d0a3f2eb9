/* libFuzzer target for core/ipset.c. Each input line is one set entry. It
 * checks that an accepted entry contains its own ends, and that formatting
 * an address and parsing the text back gives the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const struct petrel_ipaddr *a)
{
    char text[PETREL_IPADDR_STRLEN];
    struct petrel_ipaddr b;

    petrel_ipaddr_format(a, text, sizeof(text));
    if (!petrel_ipaddr_parse(text, &b) || petrel_ipaddr_cmp(a, &b) != 0)
        abort();
}

static void check_entry(struct petrel_ipset *set, const char *text)
{
    const char *error = NULL;
    struct petrel_ipaddr a;
    struct petrel_iprange r;
    size_t before = set->count;

    if (petrel_ipaddr_parse(text, &a))
        check_roundtrip(&a);
    bool range_ok = petrel_iprange_parse(text, &r, &error);
    if (!petrel_ipset_add(set, text, &error)) {
        if (error == NULL || range_ok || set->count != before)
            abort();
        return;
    }
    if (!range_ok || set->count == before || petrel_ipaddr_cmp(&r.lo, &r.hi) > 0)
        abort();
    for (size_t i = before; i < set->count; i++) {
        const struct petrel_iprange *e = &set->ranges[i];
        if (!petrel_ipset_contains(set, &e->lo) || !petrel_ipset_contains(set, &e->hi))
            abort();
        check_roundtrip(&e->lo);
        check_roundtrip(&e->hi);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct petrel_ipset set = {0};
    char *text = malloc(size + 1);

    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *line = text, *next; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        check_entry(&set, line);
    }
    petrel_ipset_free(&set);
    free(text);
    return 0;
}
