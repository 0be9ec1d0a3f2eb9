/* libFuzzer target for the FETCH structure: the input is a message, fed
 * to the builder in pieces whose size its length picks (so that the seeds
 * are plain messages). The three
 * answers must be IMAP syntax (checked here: balanced parentheses outside
 * strings, quoted strings closed and free of CR/LF and 8-bit bytes,
 * literals whose count matches, only atoms NIL, numbers and strings);
 * every part the table has, by its number, must resolve to its body, and
 * with every section text inside the message, and filter and partial stay inside
 * their input; the cache value must come back the same, and a damaged
 * one must be refused. BINARY of every part (read from a memfd holding
 * the message): the measured size is what streaming gives in small
 * pieces from any start, byte for byte what one decode of the whole part
 * gives; and the decoder itself gives the same bytes for any split. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include <petrel/buf.h>
#include <petrel/cte.h>
#include <petrel/storage.h>

#include "imap_binary.h"
#include "imap_msginfo.h"
#include "imap_msginfo_private.h"
#include "imap_section.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One string at s[*i]: quoted or literal; false when malformed. */
static bool check_string(const char *s, size_t len, size_t *i)
{
    if (s[*i] == '"') {
        for (size_t k = *i + 1; k < len; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c == '\\') {
                if (k + 1 >= len || (s[k + 1] != '"' && s[k + 1] != '\\'))
                    return false;
                k++;
            } else if (c == '"') {
                *i = k + 1;
                return true;
            } else if (c < 0x20 || c > 0x7E) {
                return false;
            }
        }
        return false;
    }
    size_t k = *i + 1, n = 0;
    for (; k < len && s[k] >= '0' && s[k] <= '9' && k - *i < 12; k++)
        n = n * 10 + (size_t)(s[k] - '0');
    if (k == *i + 1 || k + 3 > len || s[k] != '}' || s[k + 1] != '\r' || s[k + 2] != '\n' ||
        n > len - (k + 3) || memchr(s + k + 3, '\0', n) != NULL)
        return false;
    *i = k + 3 + n;
    return true;
}

/* A whole answer: one parenthesized list of NIL, numbers, strings and
 * lists, items separated by one space or abutting lists. */
static bool check_syntax(const char *s, size_t len)
{
    int depth = 0;
    size_t i = 0;
    if (len == 0 || s[0] != '(')
        return false;
    while (i < len) {
        char c = s[i];
        if (c == '(') {
            depth++;
            i++;
        } else if (c == ')') {
            if (--depth < 0)
                return false;
            i++;
            if (depth == 0 && i != len)
                return false;
        } else if (c == ' ') {
            i++;
        } else if (c == '"' || c == '{') {
            if (!check_string(s, len, &i))
                return false;
        } else if (len - i >= 3 && memcmp(s + i, "NIL", 3) == 0) {
            i += 3;
        } else if (c >= '0' && c <= '9') {
            while (i < len && s[i] >= '0' && s[i] <= '9')
                i++;
        } else {
            return false;
        }
    }
    return depth == 0;
}

static void check_answers(const struct imap_msginfo *mi)
{
    size_t len;
    const char *s = imap_msginfo_envelope(mi, &len);
    if (!check_syntax(s, len))
        abort();
    s = imap_msginfo_body(mi, &len);
    if (!check_syntax(s, len))
        abort();
    s = imap_msginfo_bodystructure(mi, &len);
    if (!check_syntax(s, len))
        abort();
}

static const char *const texts[] = {
    "", ".MIME", ".HEADER", ".TEXT", ".HEADER.FIELDS (From TO)", ".HEADER.FIELDS.NOT (subject)"};

/* The plan of a FETCH item that must parse; the caller frees the section. */
static struct imap_section *resolve(const struct imap_msginfo *mi, const char *item,
                                    struct imap_section_plan *plan)
{
    struct imap_section *sec = NULL;
    const char *error = NULL;
    if (imap_section_parse(item, strlen(item), &sec, &error) != IMAP_SECTION_OK)
        abort();
    imap_section_resolve(sec, mi, plan);
    return sec;
}

static void check_item(const struct imap_msginfo *mi, const uint8_t *msg, size_t size,
                       const char *item)
{
    struct imap_section_plan plan;
    struct imap_section *sec = resolve(mi, item, &plan);
    if (plan.kind != IMAP_SECTION_EMPTY && (plan.offset > size || plan.length > size - plan.offset))
        abort();
    uint64_t len = plan.length;
    if (plan.kind == IMAP_SECTION_FILTER) {
        struct petrel_buf out;
        petrel_buf_init(&out, (size_t)plan.length + 2);
        imap_section_filter(sec, msg + plan.offset, (size_t)plan.length, &out);
        if (out.len > plan.length + 2)
            abort();
        len = out.len;
        petrel_buf_free(&out);
    }
    uint64_t start, count;
    imap_section_partial(sec, len, &start, &count);
    if (start > len || count > len - start)
        abort();
    imap_section_free(sec);
}

/* Every part the table has, by its dotted number (RFC 3501 numbering,
 * worked out here from the table on its own): BODY[number] must be that
 * part's body, and every section text after it must resolve inside the
 * message. Bounded: the first MAX_PARTS_CHECKED parts. */
#define MAX_PARTS_CHECKED 200

struct walk {
    const struct imap_msginfo *mi;
    const struct imap_msginfo_part *t;
    const uint8_t *msg;
    size_t size;
    unsigned int checked;
    int fd;
};

/* The first part numbered below a message: its parts if multipart, else
 * itself (part 1 of a message that is not multipart is its body). */
static uint32_t first_of_message(const struct imap_msginfo_part *t, uint32_t m)
{
    return (t[m].flags & IMAP_PART_MULTIPART) != 0 ? t[m].first_child : m;
}

/* The message in a file, for imap_binary.h's pread. */
static int msg_fd(const uint8_t *msg, size_t size)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("fuzz_imap_fetch", 0);
    if (fd < 0 || ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, msg, size, 0) != (ssize_t)size))
        abort();
    return fd;
}

/* The plan's bytes decoded in one go. */
static void decode_once(const struct imap_section_plan *plan, const uint8_t *msg,
                        struct petrel_buf *out)
{
    struct petrel_cte d;
    char end[2];
    size_t n;
    petrel_cte_init(&d, NULL);
    d.kind = plan->cte;
    if (!petrel_cte_decode_buf(&d, (const char *)msg + plan->offset, (size_t)plan->length, out))
        abort();
    petrel_cte_end(&d, end, &n);
    if (!petrel_buf_append(out, end, n))
        abort();
}

static void check_binary(struct walk *w, const char *item)
{
    struct imap_section_plan plan;
    imap_section_free(resolve(w->mi, item, &plan));
    if (plan.kind != IMAP_SECTION_DECODE || plan.unknown_cte)
        return;
    if (plan.offset + plan.length > w->size)
        abort();
    uint64_t size;
    bool nul;
    imap_binary_measure(w->fd, &plan, &size, &nul);
    struct petrel_buf once, streamed;
    petrel_buf_init(&once, (size_t)plan.length + 3);
    decode_once(&plan, w->msg, &once);
    if (once.len != size || nul != (memchr(petrel_buf_head(&once), '\0', once.len) != NULL))
        abort();
    uint64_t start = size / 3, max = size % 7 + 1;
    struct imap_binary b;
    petrel_buf_init(&streamed, (size_t)size + 1);
    imap_binary_start(&b, w->fd, &plan, start, size - start);
    while (imap_binary_put(&b, max, &streamed) > 0)
        ;
    if (streamed.len != size - start ||
        memcmp(petrel_buf_head(&streamed), petrel_buf_head(&once) + start, streamed.len) != 0)
        abort();
    petrel_buf_free(&once);
    petrel_buf_free(&streamed);
}

/* Any split of the input decodes as the whole does, with each encoding. */
static void check_decoder(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"base64", "quoted-printable", "8bit"};
    size_t step = size % 5 + 1;
    char *one = malloc(size + 4), *many = malloc(size + 4);
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        struct petrel_cte a, b;
        size_t na = 0, nb = 0, e;
        if (!petrel_cte_init(&a, names[k]) || !petrel_cte_init(&b, names[k]))
            abort();
        na = petrel_cte_decode(&a, (const char *)data, size, one);
        bool clean_a = petrel_cte_end(&a, one + na, &e);
        na += e;
        for (size_t i = 0; i < size; i += step) {
            size_t n = size - i < step ? size - i : step;
            size_t got = petrel_cte_decode(&b, (const char *)data + i, n, many + nb);
            if (got > n + 2)
                abort();
            nb += got;
        }
        bool clean_b = petrel_cte_end(&b, many + nb, &e);
        nb += e;
        if (na != nb || na > size || memcmp(one, many, na) != 0 || clean_a != clean_b)
            abort();
    }
    free(one);
    free(many);
}

static void check_part(struct walk *w, uint32_t p, const char *number)
{
    char item[512];
    snprintf(item, sizeof(item), "BODY[%s]", number);
    struct imap_section_plan plan;
    imap_section_free(resolve(w->mi, item, &plan));
    if (plan.kind != IMAP_SECTION_RANGE || plan.offset != w->t[p].body_offset ||
        plan.length != w->t[p].body_size)
        abort();
    for (size_t i = 1; i < sizeof(texts) / sizeof(texts[0]); i++) {
        snprintf(item, sizeof(item), "BODY.PEEK[%s%s]<2.9>", number, texts[i]);
        check_item(w->mi, w->msg, w->size, item);
    }
    snprintf(item, sizeof(item), "BINARY.PEEK[%s]", number);
    check_binary(w, item);
}

static void walk_parts(struct walk *w, uint32_t first, const char *prefix, unsigned int depth)
{
    unsigned int n = 1;
    for (uint32_t p = first; p != IMAP_PART_NONE && w->checked < MAX_PARTS_CHECKED;
         p = w->t[p].next, n++) {
        char number[256];
        int k = snprintf(number, sizeof(number), "%s%s%u", prefix, depth > 0 ? "." : "", n);
        if (k < 0 || (size_t)k >= sizeof(number))
            return;
        w->checked++;
        check_part(w, p, number);
        uint32_t below = IMAP_PART_NONE;
        if ((w->t[p].flags & IMAP_PART_MULTIPART) != 0)
            below = w->t[p].first_child;
        else if ((w->t[p].flags & IMAP_PART_MESSAGE) != 0)
            below = first_of_message(w->t, w->t[p].first_child);
        if (below != IMAP_PART_NONE)
            walk_parts(w, below, number, depth + 1);
    }
}

static void check_sections(const struct imap_msginfo *mi, const uint8_t *msg, size_t size)
{
    uint32_t count;
    struct walk w = {mi, imap_msginfo_parts(mi, &count), msg, size, 0, msg_fd(msg, size)};
    check_binary(&w, "BINARY[]");
    walk_parts(&w, first_of_message(w.t, 0), "", 0);
    char item[128];
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        if (t == 1)
            continue; /* MIME needs a part number */
        snprintf(item, sizeof(item), "BODY.PEEK[%s]<1.7>", texts[t][0] == '.' ? texts[t] + 1 : "");
        check_item(mi, msg, size, item);
        snprintf(item, sizeof(item), "BODY[9.9%s]", texts[t]);
        check_item(mi, msg, size, item);
    }
    check_item(mi, msg, size, "RFC822");
    check_item(mi, msg, size, "RFC822.HEADER");
    check_item(mi, msg, size, "RFC822.TEXT");
}

static void check_cache(const struct imap_msginfo *mi)
{
    struct petrel_buf v;
    petrel_buf_init(&v, PETREL_STORAGE_MAX_CACHE);
    imap_msginfo_serialize(mi, &v);
    struct imap_msginfo *back = imap_msginfo_deserialize(petrel_buf_head(&v), v.len);
    if (back == NULL)
        abort();
    size_t a, b;
    const char *sa = imap_msginfo_bodystructure(mi, &a), *sb = imap_msginfo_bodystructure(back, &b);
    if (a != b || memcmp(sa, sb, a) != 0)
        abort();
    imap_msginfo_free(back);
    char *bad = malloc(v.len);
    memcpy(bad, petrel_buf_head(&v), v.len);
    bad[v.len / 2] ^= 1;
    if (imap_msginfo_deserialize(bad, v.len) != NULL)
        abort();
    free(bad);
    petrel_buf_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step = size % 13 + 1;
    struct imap_msginfo_builder *b = imap_msginfo_builder_new();
    for (size_t i = 0; i < size; i += step)
        imap_msginfo_feed(b, data + i, size - i < step ? size - i : step);
    struct imap_msginfo *mi = imap_msginfo_finish(b);
    check_answers(mi);
    check_sections(mi, data, size);
    check_cache(mi);
    check_decoder(data, size);
    imap_msginfo_free(mi);
    return 0;
}
