/* libFuzzer target for the POP3 command grammar and the RETR/TOP output.
 * The input is one command line; the same bytes are then sent as a
 * message through the output converter in pieces whose sizes the first
 * byte picks, as RETR and as TOP. Whatever the client sends: a parsed
 * command has the arity its verb allows, numbers in range, arguments
 * inside the line; a refusal has a text. The output has CRLF line ends
 * only, no line that starts with a lone "." before the end, and ends in
 * "." CRLF; TOP's output is a prefix of RETR's (less its end). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_body.h"
#include "pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_command(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    struct pop3_cmd cmd;
    const char *error = NULL;
    if (pop3_parse(line, size, &cmd, &error)) {
        if (cmd.verb == POP3_UNKNOWN || cmd.nargs > 2)
            abort();
        for (unsigned i = 0; i < cmd.nargs; i++)
            if (cmd.arg[i] < line || cmd.arg[i] > line + size || cmd.arg[i][0] == '\0')
                abort();
        if ((cmd.verb == POP3_RETR || cmd.verb == POP3_DELE || cmd.verb == POP3_TOP) &&
            cmd.msg == 0)
            abort();
    } else if (error == NULL || error[0] == '\0') {
        abort();
    }
    free(line);
}

static void convert(const uint8_t *data, size_t size, size_t piece, bool top, uint32_t lines,
                    struct petrel_buf *out)
{
    struct pop3_body b;
    pop3_body_init(&b, top, lines);
    size_t i = 0;
    while (i < size && !b.done) {
        size_t n = size - i < piece ? size - i : piece;
        size_t taken = pop3_body_feed(&b, (const char *)data + i, n, out);
        if (taken > n || (taken < n && !b.done))
            abort();
        i += taken;
    }
    pop3_body_end(&b, out);
}

static void check_output(const struct petrel_buf *out)
{
    const char *p = petrel_buf_head(out);
    size_t n = out->len;
    if (n < 3 || memcmp(p + n - 3, ".\r\n", 3) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            abort();
        /* a line "." CRLF only at the very end */
        bool start = i == 0 || p[i - 1] == '\n';
        if (start && i + 3 <= n && memcmp(p + i, ".\r\n", 3) == 0 && i + 3 != n)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    check_command(data + 1, size - 1);
    size_t piece = 1 + data[0] % 17;
    struct petrel_buf whole, top;
    petrel_buf_init(&whole, 4 * size + 16);
    petrel_buf_init(&top, 4 * size + 16);
    convert(data + 1, size - 1, piece, false, 0, &whole);
    convert(data + 1, size - 1, 1 + data[0] % 5, true, data[0] % 4, &top);
    check_output(&whole);
    check_output(&top);
    /* TOP is RETR cut short at a line end, then the end line. */
    if (top.len > whole.len ||
        memcmp(petrel_buf_head(&top), petrel_buf_head(&whole), top.len - 3) != 0)
        abort();
    petrel_buf_free(&whole);
    petrel_buf_free(&top);
    return 0;
}
