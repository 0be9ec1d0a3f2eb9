/* libFuzzer: SEARCH arguments compiled and matched against a message.
 * The input is the arguments (search_args.h syntax), a line feed, then the
 * message; the message's first byte also picks its flags and whether the
 * caller hands over the header or only the file. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "imap_search.h"
#include "search_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int message_fd(const uint8_t *msg, size_t len)
{
    int fd = memfd_create("fuzz_imap_search", 0);
    if (fd < 0)
        abort();
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, msg + done, len - done);
        if (n <= 0)
            abort();
        done += (size_t)n;
    }
    return fd;
}

static size_t header_len(const uint8_t *msg, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (msg[i] == '\n' && msg[i + 1] == '\n')
            return i + 2;
        if (msg[i] == '\n' && msg[i + 1] == '\r' && i + 2 < len && msg[i + 2] == '\n')
            return i + 3;
    }
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    size_t args_len = (size_t)(nl - data);
    const uint8_t *msg = nl + 1;
    size_t msg_len = size - args_len - 1;
    struct search_args a;
    if (!search_args_build((const char *)data, args_len, &a))
        return 0;
    struct imap_search *s = NULL;
    const char *error = NULL;
    enum imap_search_error r = imap_search_compile(a.args, a.count, &s, &error);
    search_args_free(&a);
    if (r != IMAP_SEARCH_OK) {
        if (s != NULL || error == NULL)
            abort();
        return 0;
    }
    unsigned needs = imap_search_needs(s);
    uint8_t pick = msg_len > 0 ? msg[0] : 0;
    struct imap_search_msg m = {
        .seq = 1u + (pick & 7u),
        .uid = 10u + pick,
        .max_seq = 8,
        .max_uid = 300,
        .flags = pick & 0x1Fu,
        .keywords = (pick & 0x20u) ? "$Junk work" : "",
        .recent = (pick & 0x40u) != 0,
        .size = msg_len,
        .internal_date = (int64_t)pick * 86400 * 97 - 86400 * 365,
        .fd = -1,
    };
    if ((needs & IMAP_SEARCH_NEEDS_HEADER) && !(pick & 0x80u)) {
        m.header = (const char *)msg;
        m.header_len = header_len(msg, msg_len);
    }
    if (needs & IMAP_SEARCH_NEEDS_FILE)
        m.fd = message_fd(msg, msg_len);
    int res = imap_search_match(s, &m);
    /* Every read is of a good file: -1 only when the caller gave nothing. */
    if (res == -1 && (m.fd >= 0 || m.header != NULL))
        abort();
    if (m.fd >= 0)
        close(m.fd);
    imap_search_free(s);
    return 0;
}
