/* libFuzzer target for the text extractor (petrel/mimetext.h). The first
 * byte picks the part options and a split point; the rest is (a) one
 * part's bytes, fed whole and in two pieces, which must give the same
 * text, and (b) a whole message through petrel_mimetext_header and
 * petrel_mimetext_body. Checks: every text is valid UTF-8, folding it
 * again changes nothing, each text ends once, header texts carry a field
 * and a value offset inside the text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/mimetext.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    char *text; /* the whole output, each text followed by a marker line */
    size_t len, cap;
    size_t current; /* bytes of the open text */
};

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        size_t k = b < 0x80                 ? 1
                   : b >= 0xC2 && b <= 0xDF ? 2
                   : b >= 0xE0 && b <= 0xEF ? 3
                   : b >= 0xF0 && b <= 0xF4 ? 4
                                            : 0;
        if (k == 0 || i + k > n || b == 0)
            return false;
        for (size_t j = 1; j < k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF)
                return false;
        i += k;
    }
    return true;
}

static void sink_add(struct sink *s, const char *data, size_t len)
{
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->text = petrel_realloc(s->text, s->cap);
    }
    memcpy(s->text + s->len, data, len);
    s->len += len;
}

static bool take(void *ctx, const struct petrel_mimetext_info *info, const char *data, size_t len,
                 bool last)
{
    struct sink *s = ctx;
    if (info->kind == PETREL_MIMETEXT_FIELD &&
        (info->field == NULL || !last || info->value_offset > len))
        abort();
    sink_add(s, data, len);
    s->current += len;
    if (last) {
        /* A text ends whole: valid UTF-8, and already folded. */
        const char *t = s->text + s->len - s->current;
        if (!valid_utf8((const unsigned char *)t, s->current))
            abort();
        char *again = petrel_fold_str(t, s->current);
        if (memcmp(again, t, s->current) != 0)
            abort();
        free(again);
        s->current = 0;
        sink_add(s, "\n|\n", 3);
    }
    return true;
}

static char *part_run(const uint8_t *data, size_t size, size_t split, unsigned opts, size_t *len_r)
{
    static const char *const encodings[] = {NULL, "base64", "quoted-printable", "8bit"};
    static const char *const charsets[] = {NULL, "iso-8859-1", "koi8-r", "shift_jis"};
    struct sink s = {0};
    struct petrel_mimetext_part *p = petrel_mimetext_part_new(
        encodings[opts & 3], charsets[(opts >> 2) & 3], (opts >> 4) & 1, take, &s);
    /* Exact-size copies so that AddressSanitizer sees any overread. */
    char *a = petrel_malloc(split + 1), *b = petrel_malloc(size - split + 1);
    memcpy(a, data, split);
    memcpy(b, data + split, size - split);
    petrel_mimetext_part_feed(p, a, split);
    petrel_mimetext_part_feed(p, b, size - split);
    free(a);
    free(b);
    petrel_mimetext_part_free(p);
    *len_r = s.len;
    return s.text;
}

static void message_run(const uint8_t *data, size_t size)
{
    struct sink s = {0};
    petrel_mimetext_header((const char *)data, size, take, &s);
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return;
    if (size == 0 || write(fd, data, size) == (ssize_t)size)
        petrel_mimetext_body(fd, NULL, 0, take, &s);
    close(fd);
    free(s.text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned opts = data[0];
    data++;
    size--;
    size_t split = size == 0 ? 0 : (opts * 7u) % (size + 1);
    size_t whole_len, split_len;
    char *whole = part_run(data, size, 0, opts, &whole_len);
    char *pieces = part_run(data, size, split, opts, &split_len);
    if (whole_len != split_len || (whole_len > 0 && memcmp(whole, pieces, whole_len) != 0))
        abort();
    free(whole);
    free(pieces);
    message_run(data, size);
    return 0;
}
