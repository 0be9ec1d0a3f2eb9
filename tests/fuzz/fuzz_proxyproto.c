/* libFuzzer target for core/proxyproto.c. Besides memory errors it checks
 * the contract the connection code relies on: a header is accepted only
 * after every shorter prefix asked for more, consumed never exceeds the
 * input, and once a prefix is refused no longer input is accepted. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum petrel_proxy_result run(const uint8_t *data, size_t len, size_t *consumed_r)
{
    struct petrel_proxy_info info;
    const char *error = NULL;
    /* A block of exactly len bytes, so ASan sees any read past it. */
    uint8_t *copy = malloc(len > 0 ? len : 1);

    if (copy == NULL)
        abort();
    if (len > 0)
        memcpy(copy, data, len);
    *consumed_r = 0;
    enum petrel_proxy_result res = petrel_proxy_parse(copy, len, &info, consumed_r, &error);
    free(copy);
    if (res == PETREL_PROXY_ERROR && error == NULL)
        abort();
    if (res == PETREL_PROXY_DONE && (*consumed_r == 0 || *consumed_r > len))
        abort();
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t consumed, again;
    enum petrel_proxy_result res = run(data, size, &consumed);

    if (res == PETREL_PROXY_DONE) {
        for (size_t i = 0; i < consumed; i++) {
            if (run(data, i, &again) != PETREL_PROXY_AGAIN)
                abort();
        }
        /* The header alone parses the same. */
        if (run(data, consumed, &again) != PETREL_PROXY_DONE || again != consumed)
            abort();
    } else if (res == PETREL_PROXY_AGAIN && size > 0) {
        if (run(data, size - 1, &again) != PETREL_PROXY_AGAIN)
            abort();
    }
    return 0;
}
