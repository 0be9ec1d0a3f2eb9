/* libFuzzer target for the line reader: the input is split into reads of
 * sizes taken from its first bytes, fed through a capped buffer the way a
 * connection does, with chunk requests sprinkled in. Checks: nothing is read
 * past the input, lines never exceed the limit, consumption always moves. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>

#include "linereader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_line = 1 + data[0] % 64;
    size_t step = 1 + data[1] % 32;
    data += 2;
    size -= 2;
    struct petrel_linereader lr;
    petrel_linereader_init(&lr, max_line);
    struct petrel_buf in;
    petrel_buf_init(&in, max_line + 2 < 256 ? 256 : max_line + 2);
    size_t fed = 0;
    while (fed < size || in.len > 0) {
        size_t room;
        char *p = petrel_buf_space(&in, step, &room);
        size_t n = size - fed < room ? size - fed : room;
        memcpy(p, data + fed, n);
        petrel_buf_commit(&in, n);
        fed += n;
        for (;;) {
            struct petrel_lr_item it;
            enum petrel_lr_event ev =
                petrel_linereader_next(&lr, (char *)petrel_buf_head(&in), in.len, &it);
            if (it.consumed > in.len)
                abort();
            if (ev == PETREL_LR_LINE) {
                if (it.len > max_line || it.data[it.len] != '\0')
                    abort();
                /* A line starting with a digit asks for a chunk of that size. */
                if (it.len > 0 && it.data[0] >= '1' && it.data[0] <= '9')
                    petrel_linereader_chunk(&lr, (size_t)(it.data[0] - '0'));
            } else if (ev == PETREL_LR_CHUNK && it.len == 0) {
                abort();
            }
            petrel_buf_consume(&in, it.consumed);
            if (ev == PETREL_LR_MORE)
                break;
        }
        /* A full buffer with no progress would be a hang in the server. */
        if (n == 0 && in.len >= in.max)
            abort();
        if (n == 0)
            break;
    }
    petrel_buf_free(&in);
    return 0;
}
