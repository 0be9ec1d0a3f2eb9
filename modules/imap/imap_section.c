/* FETCH section items: see imap_section.h. Parsing is by hand over the
 * item's bytes; every list and number is bounded. */
#include "imap_section.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap_msginfo_private.h"

/* Deeper part numbers than the MIME parser keeps can name nothing. */
#define SECTION_MAX_DEPTH 64
#define SECTION_MAX_FIELDS 64
#define SECTION_MAX_FIELD_NAME 128

enum section_item {
    ITEM_BODY,
    ITEM_RFC822,
    ITEM_RFC822_HEADER,
    ITEM_RFC822_TEXT,
    ITEM_BINARY,      /* BINARY[...] and BINARY.PEEK[...], RFC 3516 */
    ITEM_BINARY_SIZE, /* BINARY.SIZE[...] */
};

enum section_text {
    TEXT_NONE, /* the whole part (or message) */
    TEXT_HEADER,
    TEXT_FIELDS,
    TEXT_FIELDS_NOT,
    TEXT_TEXT,
    TEXT_MIME,
};

struct imap_section {
    enum section_item item;
    bool peek;
    uint32_t path[SECTION_MAX_DEPTH];
    unsigned int path_len;
    enum section_text text;
    char *fields[SECTION_MAX_FIELDS];
    unsigned int field_count;
    bool partial;
    uint64_t start, count;
    struct petrel_buf name;
};

struct cursor {
    const char *s;
    size_t len, pos;
    const char *error;
};

static bool at_word(struct cursor *c, const char *word)
{
    size_t n = strlen(word);
    if (c->len - c->pos < n || strncasecmp(c->s + c->pos, word, n) != 0)
        return false;
    c->pos += n;
    return true;
}

static bool at_char(struct cursor *c, char ch)
{
    if (c->pos >= c->len || c->s[c->pos] != ch)
        return false;
    c->pos++;
    return true;
}

static bool fail(struct cursor *c, const char *why)
{
    if (c->error == NULL)
        c->error = why;
    return false;
}

/* A decimal number of at most max (nz: no zero); no sign, no blanks. */
static bool number(struct cursor *c, bool nz, uint64_t max, uint64_t *n_r)
{
    size_t start = c->pos;
    uint64_t n = 0;
    while (c->pos < c->len && isdigit((unsigned char)c->s[c->pos])) {
        n = n * 10 + (uint64_t)(c->s[c->pos] - '0');
        if (n > max)
            return fail(c, "Number too large");
        c->pos++;
    }
    if (c->pos == start || (nz && n == 0))
        return fail(c, "Bad number");
    *n_r = n;
    return true;
}

/* header-fld-name: an atom (ASTRING-CHAR) or a quoted string. */
static bool field_name(struct cursor *c, struct imap_section *sec)
{
    char name[SECTION_MAX_FIELD_NAME];
    size_t n = 0;
    if (at_char(c, '"')) {
        for (;;) {
            if (c->pos >= c->len)
                return fail(c, "Unterminated quoted string");
            char ch = c->s[c->pos++];
            if (ch == '"')
                break;
            if (ch == '\\' && c->pos < c->len)
                ch = c->s[c->pos++];
            if (n + 1 >= sizeof(name) || ch == '\r' || ch == '\n')
                return fail(c, "Bad header field name");
            name[n++] = ch;
        }
    } else {
        while (c->pos < c->len) {
            unsigned char ch = (unsigned char)c->s[c->pos];
            if (ch <= ' ' || ch >= 0x7F || strchr("(){%*\"\\]", ch) != NULL)
                break;
            if (n + 1 >= sizeof(name))
                return fail(c, "Header field name too long");
            name[n++] = (char)ch;
            c->pos++;
        }
    }
    if (n == 0)
        return fail(c, "Bad header field name");
    if (sec->field_count == SECTION_MAX_FIELDS)
        return fail(c, "Too many header field names");
    name[n] = '\0';
    for (size_t i = 0; i < n; i++)
        name[i] = (char)toupper((unsigned char)name[i]);
    sec->fields[sec->field_count++] = petrel_strdup(name);
    return true;
}

/* SP "(" header-fld-name *(SP header-fld-name) ")" */
static bool header_list(struct cursor *c, struct imap_section *sec)
{
    if (!at_char(c, ' ') || !at_char(c, '('))
        return fail(c, "Header field list expected");
    do {
        if (!field_name(c, sec))
            return false;
    } while (at_char(c, ' '));
    return at_char(c, ')') || fail(c, "Missing ) after header field names");
}

/* section-msgtext, or "MIME" after a part number. */
static bool section_text(struct cursor *c, struct imap_section *sec)
{
    if (at_word(c, "HEADER.FIELDS.NOT")) {
        sec->text = TEXT_FIELDS_NOT;
        return header_list(c, sec);
    }
    if (at_word(c, "HEADER.FIELDS")) {
        sec->text = TEXT_FIELDS;
        return header_list(c, sec);
    }
    if (at_word(c, "HEADER"))
        sec->text = TEXT_HEADER;
    else if (at_word(c, "TEXT"))
        sec->text = TEXT_TEXT;
    else if (sec->path_len > 0 && at_word(c, "MIME"))
        sec->text = TEXT_MIME;
    else
        return fail(c, "Unknown section text");
    return true;
}

/* section-spec inside the brackets. */
static bool section_spec(struct cursor *c, struct imap_section *sec)
{
    if (c->pos < c->len && c->s[c->pos] == ']')
        return true;
    while (c->pos < c->len && isdigit((unsigned char)c->s[c->pos])) {
        uint64_t n;
        if (sec->path_len == SECTION_MAX_DEPTH)
            return fail(c, "Section part number too deep");
        if (!number(c, true, UINT32_MAX, &n))
            return false;
        sec->path[sec->path_len++] = (uint32_t)n;
        if (!at_char(c, '.'))
            return true;
    }
    return section_text(c, sec);
}

/* "<" number "." nz-number ">" */
static bool partial(struct cursor *c, struct imap_section *sec)
{
    if (!at_char(c, '<'))
        return true;
    sec->partial = true;
    if (!number(c, false, UINT32_MAX, &sec->start) || !at_char(c, '.') ||
        !number(c, true, UINT32_MAX, &sec->count) || !at_char(c, '>'))
        return fail(c, "Bad partial <start.count>");
    return true;
}

/* section-binary: "[" [section-part] "]", part numbers only. */
static bool binary_item(struct cursor *c, struct imap_section *sec)
{
    while (c->pos < c->len && c->s[c->pos] != ']') {
        uint64_t n;
        if (sec->path_len == SECTION_MAX_DEPTH)
            return fail(c, "Section part number too deep");
        if (!number(c, true, UINT32_MAX, &n))
            return fail(c, "BINARY takes part numbers only");
        sec->path[sec->path_len++] = (uint32_t)n;
        if (!at_char(c, '.'))
            break;
        if (c->pos >= c->len || !isdigit((unsigned char)c->s[c->pos]))
            return fail(c, "BINARY takes part numbers only");
    }
    if (!at_char(c, ']'))
        return fail(c, "Missing ] after section");
    return sec->item == ITEM_BINARY_SIZE || partial(c, sec);
}

static bool body_item(struct cursor *c, struct imap_section *sec)
{
    if (!section_spec(c, sec))
        return false;
    if (!at_char(c, ']'))
        return fail(c, "Missing ] after section");
    return partial(c, sec);
}

static void put_upper(struct petrel_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = (char)toupper((unsigned char)s[i]);
        petrel_buf_append(b, &ch, 1);
    }
}

/* The answer's name: BODY[...] whether PEEK or not, field names as
 * upper-cased atoms when they are atoms, quoted otherwise. */
static void make_name(struct imap_section *sec)
{
    static const char *const fixed[] = {"BODY",        "RFC822", "RFC822.HEADER",
                                        "RFC822.TEXT", "BINARY", "BINARY.SIZE"};
    static const char *const texts[] = {"",     "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                        "TEXT", "MIME"};
    struct petrel_buf *b = &sec->name;
    petrel_buf_init(b, 64 + SECTION_MAX_DEPTH * 11 +
                           SECTION_MAX_FIELDS * (SECTION_MAX_FIELD_NAME * 2 + 3));
    petrel_buf_printf(b, "%s", fixed[sec->item]);
    if (sec->item != ITEM_BODY && sec->item != ITEM_BINARY && sec->item != ITEM_BINARY_SIZE) {
        petrel_buf_append(b, "", 1);
        return;
    }
    petrel_buf_append(b, "[", 1);
    for (unsigned int i = 0; i < sec->path_len; i++)
        petrel_buf_printf(b, "%s%u", i > 0 ? "." : "", (unsigned int)sec->path[i]);
    if (sec->path_len > 0 && sec->text != TEXT_NONE)
        petrel_buf_append(b, ".", 1);
    petrel_buf_printf(b, "%s", texts[sec->text]);
    for (unsigned int i = 0; i < sec->field_count; i++) {
        const char *f = sec->fields[i];
        petrel_buf_append(b, i == 0 ? " (" : " ", i == 0 ? 2 : 1);
        if (strcspn(f, " \"\\(){%*]") == strlen(f)) {
            put_upper(b, f, strlen(f));
            continue;
        }
        petrel_buf_append(b, "\"", 1);
        for (const char *p = f; *p != '\0'; p++) {
            if (*p == '"' || *p == '\\')
                petrel_buf_append(b, "\\", 1);
            petrel_buf_append(b, p, 1);
        }
        petrel_buf_append(b, "\"", 1);
    }
    if (sec->field_count > 0)
        petrel_buf_append(b, ")", 1);
    petrel_buf_append(b, "]", 1);
    if (sec->partial)
        petrel_buf_printf(b, "<%llu>", (unsigned long long)sec->start);
    petrel_buf_append(b, "", 1); /* the name is a C string */
}

/* Which item it is; false for another FETCH item. */
static bool item_kind(struct cursor *c, struct imap_section *sec)
{
    if (at_word(c, "BINARY.PEEK[")) {
        sec->item = ITEM_BINARY;
        sec->peek = true;
    } else if (at_word(c, "BINARY.SIZE[")) {
        sec->item = ITEM_BINARY_SIZE;
    } else if (at_word(c, "BINARY[")) {
        sec->item = ITEM_BINARY;
    } else if (at_word(c, "BODY.PEEK[")) {
        sec->item = ITEM_BODY;
        sec->peek = true;
    } else if (at_word(c, "BODY[")) {
        sec->item = ITEM_BODY;
    } else if (c->len == 6 && at_word(c, "RFC822")) {
        sec->item = ITEM_RFC822;
    } else if (c->len == 13 && at_word(c, "RFC822.HEADER")) {
        sec->item = ITEM_RFC822_HEADER;
    } else if (c->len == 11 && at_word(c, "RFC822.TEXT")) {
        sec->item = ITEM_RFC822_TEXT;
    } else {
        return false;
    }
    return true;
}

enum imap_section_result imap_section_parse(const char *item, size_t len,
                                            struct imap_section **sec_r, const char **error_r)
{
    struct cursor c = {.s = item, .len = len};
    struct imap_section *sec = petrel_calloc(1, sizeof(*sec));
    *sec_r = NULL;
    if (!item_kind(&c, sec)) {
        free(sec);
        return IMAP_SECTION_NOT_SECTION;
    }
    bool binary = sec->item == ITEM_BINARY || sec->item == ITEM_BINARY_SIZE;
    if (sec->item == ITEM_BODY && body_item(&c, sec) && c.pos != len)
        fail(&c, "Unexpected bytes after the section");
    if (binary && binary_item(&c, sec) && c.pos != len)
        fail(&c, "Unexpected bytes after the section");
    if (c.error != NULL) {
        *error_r = c.error;
        imap_section_free(sec);
        return IMAP_SECTION_BAD;
    }
    make_name(sec);
    *sec_r = sec;
    return IMAP_SECTION_OK;
}

void imap_section_free(struct imap_section *sec)
{
    if (sec == NULL)
        return;
    for (unsigned int i = 0; i < sec->field_count; i++)
        free(sec->fields[i]);
    petrel_buf_free(&sec->name);
    free(sec);
}

bool imap_section_sets_seen(const struct imap_section *sec)
{
    return sec->item != ITEM_RFC822_HEADER && sec->item != ITEM_BINARY_SIZE && !sec->peek;
}

bool imap_section_is_binary(const struct imap_section *sec)
{
    return sec->item == ITEM_BINARY || sec->item == ITEM_BINARY_SIZE;
}

bool imap_section_is_size(const struct imap_section *sec) { return sec->item == ITEM_BINARY_SIZE; }

const char *imap_section_name(const struct imap_section *sec)
{
    return petrel_buf_head(&sec->name);
}

/* ---- where the bytes are (RFC 3501 section 6.4.5) ---- */

static void plan_set(struct imap_section_plan *plan, enum imap_section_kind kind, uint64_t offset,
                     uint64_t length)
{
    plan->kind = kind;
    plan->offset = offset;
    plan->length = length;
    plan->cte = PETREL_CTE_IDENTITY;
    plan->unknown_cte = false;
}

/* The parts numbered 1, 2, ... below a message (a message that is not
 * multipart has one part: itself, whose body is its text). */
static uint32_t message_parts(const struct imap_msginfo_part *t, uint32_t msg)
{
    return (t[msg].flags & IMAP_PART_MULTIPART) != 0 ? t[msg].first_child : msg;
}

/* The first of the parts numbered below part i, or NONE. */
static uint32_t numbered_below(const struct imap_msginfo_part *t, uint32_t i)
{
    if ((t[i].flags & IMAP_PART_MULTIPART) != 0)
        return t[i].first_child;
    if ((t[i].flags & IMAP_PART_MESSAGE) != 0 && t[i].first_child != IMAP_PART_NONE)
        return message_parts(t, t[i].first_child);
    return IMAP_PART_NONE;
}

/* The part the numbers name, or NONE. */
static uint32_t walk(const struct imap_section *sec, const struct imap_msginfo_part *t,
                     uint32_t count)
{
    uint32_t cur = IMAP_PART_NONE;
    for (unsigned int d = 0; d < sec->path_len; d++) {
        uint32_t p = d == 0 ? message_parts(t, 0) : numbered_below(t, cur);
        for (uint32_t n = 1; p != IMAP_PART_NONE && p < count && n < sec->path[d]; n++)
            p = t[p].next; /* a message's only part has no next */
        if (p == IMAP_PART_NONE || p >= count)
            return IMAP_PART_NONE;
        cur = p;
    }
    return cur;
}

/* HEADER, HEADER.FIELDS (.NOT), TEXT, or the whole, of message msg. */
static void message_text(const struct imap_section *sec, const struct imap_msginfo_part *m,
                         struct imap_section_plan *plan)
{
    switch (sec->text) {
    case TEXT_HEADER:
        plan_set(plan, IMAP_SECTION_RANGE, m->header_offset, m->header_size);
        break;
    case TEXT_FIELDS:
    case TEXT_FIELDS_NOT:
        plan_set(plan, IMAP_SECTION_FILTER, m->header_offset, m->header_size);
        break;
    case TEXT_TEXT:
        plan_set(plan, IMAP_SECTION_RANGE, m->body_offset, m->body_size);
        break;
    default:
        plan_set(plan, IMAP_SECTION_RANGE, m->header_offset,
                 m->body_offset + m->body_size - m->header_offset);
        break;
    }
}

static void body_plan(const struct imap_section *sec, const struct imap_msginfo_part *t,
                      uint32_t count, struct imap_section_plan *plan)
{
    if (sec->path_len == 0) {
        message_text(sec, &t[0], plan);
        return;
    }
    uint32_t p = walk(sec, t, count);
    if (p == IMAP_PART_NONE)
        return;
    if (sec->text == TEXT_NONE) {
        plan_set(plan, IMAP_SECTION_RANGE, t[p].body_offset, t[p].body_size);
    } else if (sec->text == TEXT_MIME) {
        plan_set(plan, IMAP_SECTION_RANGE, t[p].header_offset, t[p].header_size);
    } else if ((t[p].flags & IMAP_PART_MESSAGE) != 0 && t[p].first_child != IMAP_PART_NONE) {
        /* HEADER and TEXT of a part name those of the message it holds. */
        message_text(sec, &t[t[p].first_child], plan);
    }
}

/* BINARY: a part's body decoded by its own CTE (a multipart's or an
 * attached message's is identity, RFC 2046 allows no other), or the whole
 * message as it is (a message as such has no CTE). */
static void binary_plan(const struct imap_section *sec, const struct imap_msginfo *mi,
                        const struct imap_msginfo_part *t, uint32_t count,
                        struct imap_section_plan *plan)
{
    if (sec->path_len == 0) {
        plan_set(plan, IMAP_SECTION_DECODE, 0, imap_msginfo_size(mi));
        return;
    }
    uint32_t p = walk(sec, t, count);
    if (p == IMAP_PART_NONE)
        return;
    plan_set(plan, IMAP_SECTION_DECODE, t[p].body_offset, t[p].body_size);
    switch (IMAP_PART_CTE(t[p].flags)) {
    case IMAP_CTE_BASE64:
        plan->cte = PETREL_CTE_BASE64;
        break;
    case IMAP_CTE_QP:
        plan->cte = PETREL_CTE_QP;
        break;
    case IMAP_CTE_UNKNOWN:
        plan->unknown_cte = true;
        break;
    default:
        break;
    }
}

void imap_section_resolve(const struct imap_section *sec, const struct imap_msginfo *mi,
                          struct imap_section_plan *plan_r)
{
    uint32_t count;
    const struct imap_msginfo_part *t = imap_msginfo_parts(mi, &count);
    plan_set(plan_r, IMAP_SECTION_EMPTY, 0, 0);
    switch (sec->item) {
    case ITEM_RFC822:
        plan_set(plan_r, IMAP_SECTION_RANGE, 0, imap_msginfo_size(mi));
        break;
    case ITEM_RFC822_HEADER:
        plan_set(plan_r, IMAP_SECTION_RANGE, t[0].header_offset, t[0].header_size);
        break;
    case ITEM_RFC822_TEXT:
        plan_set(plan_r, IMAP_SECTION_RANGE, t[0].body_offset, t[0].body_size);
        break;
    case ITEM_BINARY:
    case ITEM_BINARY_SIZE:
        binary_plan(sec, mi, t, count, plan_r);
        break;
    case ITEM_BODY:
        if (sec->path_len == 0 && sec->text == TEXT_NONE)
            plan_set(plan_r, IMAP_SECTION_RANGE, 0, imap_msginfo_size(mi));
        else
            body_plan(sec, t, count, plan_r);
        break;
    }
}

/* ---- HEADER.FIELDS filtering ---- */

static bool wanted(const struct imap_section *sec, const char *name, size_t n)
{
    bool listed = false;
    for (unsigned int i = 0; i < sec->field_count && !listed; i++)
        listed = strlen(sec->fields[i]) == n && strncasecmp(sec->fields[i], name, n) == 0;
    return sec->text == TEXT_FIELDS_NOT ? !listed : listed;
}

/* The name of the field starting at s (up to the colon, blanks before it
 * dropped); 0 when the line is not a field. */
static size_t name_len(const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return 0;
    size_t n = (size_t)(colon - s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

void imap_section_filter(const struct imap_section *sec, const void *header, size_t len,
                         struct petrel_buf *out)
{
    const char *h = header, *end = h + len;
    /* The closing empty line ends as the header's lines do. */
    const char *lf0 = memchr(h, '\n', len);
    const char *eol = lf0 != NULL && (lf0 == h || lf0[-1] != '\r') ? "\n" : "\r\n";
    bool keep = false;
    for (const char *line = h; line < end;) {
        const char *lf = memchr(line, '\n', (size_t)(end - line));
        const char *next = lf != NULL ? lf + 1 : end;
        if (lf == line || (lf == line + 1 && *line == '\r'))
            break; /* the empty line that ends the header */
        if (*line != ' ' && *line != '\t') {
            size_t n = name_len(line, (size_t)(next - line));
            keep = n > 0 && wanted(sec, line, n);
        }
        if (keep)
            petrel_buf_append(out, line, (size_t)(next - line));
        line = next;
    }
    petrel_buf_append(out, eol, strlen(eol));
}

void imap_section_partial(const struct imap_section *sec, uint64_t len, uint64_t *start_r,
                          uint64_t *count_r)
{
    if (!sec->partial) {
        *start_r = 0;
        *count_r = len;
        return;
    }
    uint64_t start = sec->start < len ? sec->start : len;
    uint64_t left = len - start;
    *start_r = start;
    *count_r = sec->count < left ? sec->count : left;
}
