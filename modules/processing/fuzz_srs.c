/* libFuzzer target for the SRS address parser (srs.c): RCPT TO addresses
 * from anyone reach it at smtp_in's RCPT. Whatever the input: no crash,
 * a result that fits, and what it accepts is checked again from its
 * output: an accepted SRS0 address turns back into something shorter;
 * an address rewritten for forwarding turns back into the sender. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "srs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW ((time_t)1714564800)

static const char *const key_list[] = {"fuzz-key", "older-key"};
static const struct srs_keys keys = {key_list, 2};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char in[1025], out[SRS_ADDRESS_MAX + 1], again[SRS_ADDRESS_MAX + 1];
    memcpy(in, data, size);
    in[size] = '\0';
    enum srs_result r = srs_reverse(&keys, in, "fwd.test", 21, NOW, out, sizeof(out));
    if (r == SRS_OK && (strlen(out) >= strlen(in) || strchr(out, '@') == NULL))
        abort();
    /* As a sender to forward: if it is rewritten, it comes back as it was
     * (an SRS0 or SRS1 of another forwarder comes back as SRS0 of it). */
    if (srs_forward(&keys, in, "fwd.test", NOW, out, sizeof(out)) != SRS_OK)
        return 0;
    if (strlen(out) > SRS_ADDRESS_MAX || !srs_is_srs(out))
        abort();
    r = srs_reverse(&keys, out, "fwd.test", 21, NOW, again, sizeof(again));
    if (r != SRS_OK && r != SRS_MALFORMED)
        abort();
    if (r == SRS_OK && !srs_is_srs(in) && strcmp(again, in) != 0)
        abort();
    return 0;
}
