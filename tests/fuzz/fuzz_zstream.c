/* libFuzzer target for the inflating side of a connection's compression:
 * the client's bytes fed in steps and with output room taken from the
 * first bytes, with rests in between as a connection takes them. Checks:
 * output never exceeds the room given, progress is always made or the
 * input is done, memory stays within zlib's window and state. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "zstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t step = 1 + data[0] % 64;
    size_t room = 1 + (size_t)data[1] * 17;
    unsigned rest_every = data[2] % 8;
    data += 3;
    size -= 3;
    struct petrel_zstream *z = petrel_zstream_new();
    char *out = malloc(room);
    size_t off = 0, total = 0;
    unsigned turns = 0;
    /* Each turn takes input or gives output, so this ends. */
    for (;;) {
        size_t n = size - off < step ? size - off : step;
        size_t used = 0, made = 0;
        const char *why = NULL;
        if (!petrel_zstream_inflate(z, data + off, n, &used, out, room, &made, &why)) {
            if (why == NULL)
                abort();
            break;
        }
        if (made > room || used > n)
            abort();
        off += used;
        total += made;
        if (total > ((size_t)8 << 20))
            break; /* enough of a bomb: the bound per call is what counts */
        if (petrel_zstream_memory(z) > 128 * 1024)
            abort();
        if (rest_every != 0 && ++turns % rest_every == 0 && !petrel_zstream_inflate_pending(z))
            petrel_zstream_rest(z);
        if (used == 0 && made == 0 && (off == size || !petrel_zstream_inflate_pending(z))) {
            if (off < size && n > 0)
                abort(); /* input offered, room given, nothing happened */
            break;
        }
    }
    free(out);
    petrel_zstream_free(z);
    return 0;
}
