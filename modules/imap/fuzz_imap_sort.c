/* libFuzzer: SORT and THREAD's parsers over fuzzed headers. The input's
 * first byte picks the threading algorithm; the rest is header blocks
 * separated by NUL bytes. Each block goes through the sort key builder
 * (fields, dates, addresses, Message-IDs, the base subject) and its
 * record back through the record parser; the keys then feed the thread
 * builder. The raw input is also parsed as a record and as a subject. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>

#include "imap_sortkey.h"
#include "imap_subject.h"
#include "imap_thread.h"

/* Messages one input makes: enough for deep and wide trees. */
#define FUZZ_MAX_MESSAGES 2000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct imap_sortkey k;
    (void)imap_sortkey_parse((const char *)data, size, &k);
    bool reply;
    free(imap_base_subject((const char *)data, size, &reply));

    enum imap_thread_alg alg =
        (data[0] & 1) != 0 ? IMAP_THREAD_REFERENCES : IMAP_THREAD_ORDEREDSUBJECT;
    struct imap_thread *t = imap_thread_new(alg);
    struct petrel_buf rec;
    petrel_buf_init(&rec, 1u << 20);
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    uint32_t n = 0;
    while (p < end && n < FUZZ_MAX_MESSAGES) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        const char *block_end = z != NULL ? z : end;
        petrel_buf_reset(&rec);
        imap_sortkey_build(p, (size_t)(block_end - p), &rec);
        if (!imap_sortkey_parse(petrel_buf_head(&rec), rec.len, &k))
            abort(); /* every record built must read back */
        n++;
        struct imap_thread_msg m = {
            .number = n,
            .date = k.has_date ? k.date : (int64_t)n,
            .subject = k.str[IMAP_SK_SUBJECT],
            .subject_len = k.len[IMAP_SK_SUBJECT],
            .reply = k.reply,
            .msgid = k.str[IMAP_SK_MSGID],
            .msgid_len = k.len[IMAP_SK_MSGID],
            .refs = k.str[IMAP_SK_REFS],
            .refs_len = k.len[IMAP_SK_REFS],
        };
        imap_thread_add(t, &m);
        p = block_end + 1;
    }
    struct petrel_buf out;
    petrel_buf_init(&out, 1u << 26);
    imap_thread_write(t, &out);
    /* Every message appears in the answer exactly once: count numbers. */
    size_t numbers = 0;
    const char *o = petrel_buf_head(&out);
    for (size_t i = 0; i < out.len; i++)
        if (o[i] >= '0' && o[i] <= '9' && (i + 1 == out.len || o[i + 1] < '0' || o[i + 1] > '9'))
            numbers++;
    if (numbers != n)
        abort();
    petrel_buf_free(&out);
    petrel_buf_free(&rec);
    imap_thread_free(t);
    return 0;
}
