/* The streaming MIME parser: input is cut into lines as it comes, whatever
 * the split. Only the current part's header (bounded) and the start of the
 * current line (long enough to hold a boundary) are kept; bodies are only
 * counted. Open parts form a stack of frames from the root to the part
 * being read; a boundary line of any open multipart closes the frames above
 * it. Offsets are in the bytes given, so CRLF and bare LF both work. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/buf.h>
#include <petrel/mem.h>
#include <petrel/mime.h>

#include "mime_private.h"

/* RFC 2046 allows 70 characters; leave some slack for broken mailers. */
#define BOUNDARY_MAX 128
#define LINE_PREFIX_MAX (2 + BOUNDARY_MAX + 2)
/* Addresses kept per parse: a list costs far more than the header bytes it
 * comes from, so many recipients in many embedded messages add up. */
#define ADDRESSES_MAX 10000

/* A position in the input with what the line counts need to know there. */
struct mark {
    uint64_t offset;
    uint64_t lfs;  /* line feeds before offset */
    bool after_lf; /* the byte before offset is a line feed */
};

struct frame {
    struct petrel_mime_part *part;
    struct petrel_mime_part *last_child;
    char *boundary; /* set while this multipart is being split */
    size_t boundary_len;
    bool closed;     /* its close delimiter was seen: epilogue */
    bool digest;     /* children default to message/rfc822 */
    bool is_message; /* its header is a message header: keep an envelope */
    bool seen_content_type;
    struct mark header, body;
};

enum mime_state {
    MIME_HEADER,
    MIME_BODY,
};

struct petrel_mime_parser {
    struct petrel_mime_limits limits;
    struct petrel_mime_part *root;
    struct frame *stack;
    unsigned int depth; /* frames in use */
    unsigned int parts;
    unsigned int addresses_left;
    enum mime_state state;
    bool finished;

    uint64_t pos, lfs;
    char last_byte;

    /* The line being read. */
    uint64_t line_start, line_start_lfs, line_len;
    char line_last;
    char prefix[LINE_PREFIX_MAX];
    size_t prefix_len;
    bool tail_blank; /* nothing but blanks past the prefix */
    bool line_keep;  /* header state: the line is being stored */
    /* The line before it. */
    unsigned int prev_eol;
    bool prev_empty;

    /* The header of the top part, bounded. */
    struct petrel_buf header;
    size_t field_len;
    bool field_cut, header_full;
};

static struct frame *top(struct petrel_mime_parser *p) { return &p->stack[p->depth - 1]; }

static void limit_hit(struct petrel_mime_parser *p) { p->root->limits_hit = true; }

static struct mark mark_here(const struct petrel_mime_parser *p)
{
    struct mark m = {p->pos, p->lfs, p->pos == 0 || p->last_byte == '\n'};
    return m;
}

/* ---- parts and frames ---- */

static struct frame *push_frame(struct petrel_mime_parser *p, struct petrel_mime_part *part)
{
    p->stack = petrel_reallocarray(p->stack, p->depth + 1, sizeof(*p->stack));
    struct frame *f = &p->stack[p->depth++];
    memset(f, 0, sizeof(*f));
    f->part = part;
    f->header = mark_here(p);
    part->header_offset = p->pos;
    p->state = MIME_HEADER;
    return f;
}

static struct frame *new_child(struct petrel_mime_parser *p, struct frame *parent)
{
    struct petrel_mime_part *part = petrel_calloc(1, sizeof(*part));
    part->parent = parent->part;
    part->depth = parent->part->depth + 1;
    if (parent->last_child == NULL)
        parent->part->children = part;
    else
        parent->last_child->next = part;
    parent->last_child = part;
    p->parts++;
    return push_frame(p, part);
}

static void close_top(struct petrel_mime_parser *p, const struct mark *end)
{
    struct frame *f = top(p);
    struct petrel_mime_part *part = f->part;
    part->body_size = end->offset - f->body.offset;
    part->body_lines = end->lfs - f->body.lfs;
    if (end->offset > f->body.offset && !end->after_lf)
        part->body_lines++;
    free(f->boundary);
    p->depth--;
}

/* ---- header fields ---- */

struct field_slot {
    const char *name;
    size_t offset;
};

static const struct field_slot envelope_slots[] = {
    {"date", offsetof(struct petrel_mime_envelope, date)},
    {"subject", offsetof(struct petrel_mime_envelope, subject)},
    {"from", offsetof(struct petrel_mime_envelope, from)},
    {"sender", offsetof(struct petrel_mime_envelope, sender)},
    {"reply-to", offsetof(struct petrel_mime_envelope, reply_to)},
    {"to", offsetof(struct petrel_mime_envelope, to)},
    {"cc", offsetof(struct petrel_mime_envelope, cc)},
    {"bcc", offsetof(struct petrel_mime_envelope, bcc)},
    {"in-reply-to", offsetof(struct petrel_mime_envelope, in_reply_to)},
    {"message-id", offsetof(struct petrel_mime_envelope, message_id)},
};

static const struct field_slot part_slots[] = {
    {"content-id", offsetof(struct petrel_mime_part, id)},
    {"content-language", offsetof(struct petrel_mime_part, language)},
    {"content-location", offsetof(struct petrel_mime_part, location)},
    {"content-md5", offsetof(struct petrel_mime_part, md5)},
};

/* Store value in the slot named name (first occurrence wins); false when
 * there is no such slot. Takes value either way when true. */
static bool set_slot(const struct field_slot *slots, size_t n, void *base, const char *name,
                     char **value)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(slots[i].name, name) != 0)
            continue;
        char **slot = (char **)((char *)base + slots[i].offset);
        if (*slot == NULL) {
            *slot = *value;
            *value = NULL;
        }
        return true;
    }
    return false;
}

static void content_field(struct frame *f, const char *name, char **value)
{
    struct petrel_mime_part *part = f->part;
    if (strcasecmp(name, "content-type") == 0) {
        if (!f->seen_content_type)
            petrel_mime_parse_type_params(*value, &part->type, &part->subtype, &part->params,
                                          &part->param_count);
        f->seen_content_type = true;
    } else if (strcasecmp(name, "content-transfer-encoding") == 0) {
        if (part->encoding == NULL)
            part->encoding = petrel_mime_first_token(*value);
    } else if (strcasecmp(name, "content-disposition") == 0) {
        if (part->disposition == NULL)
            petrel_mime_parse_type_params(*value, &part->disposition, NULL,
                                          &part->disposition_params,
                                          &part->disposition_param_count);
    } else if (strcasecmp(name, "content-description") == 0) {
        if (part->description == NULL)
            part->description = petrel_mime_decode_header(*value, strlen(*value) * 3 + 16);
    } else {
        set_slot(part_slots, sizeof(part_slots) / sizeof(part_slots[0]), part, name, value);
    }
}

static bool is_wsp(char c) { return c == ' ' || c == '\t'; }

static bool is_blank(char c) { return is_wsp(c) || c == '\r'; }

/* The value of a field: folds removed, surrounding blanks trimmed. */
static char *unfold(const char *s, const char *end)
{
    char *v = petrel_malloc((size_t)(end - s) + 1);
    size_t n = 0;
    for (; s < end; s++) {
        if (*s != '\r' && *s != '\n')
            v[n++] = *s;
    }
    while (n > 0 && is_wsp(v[n - 1]))
        n--;
    v[n] = '\0';
    size_t lead = strspn(v, " \t");
    memmove(v, v + lead, n - lead + 1);
    return v;
}

/* One field [s, end) of the header, folds included. */
static void header_field(struct frame *f, struct petrel_mime_envelope *env, const char *s,
                         const char *end)
{
    const char *colon = memchr(s, ':', (size_t)(end - s));
    if (colon == NULL)
        return;
    size_t name_len = (size_t)(colon - s);
    while (name_len > 0 && is_wsp(s[name_len - 1]))
        name_len--;
    char name[32];
    if (name_len == 0 || name_len >= sizeof(name))
        return;
    memcpy(name, s, name_len);
    name[name_len] = '\0';
    char *value = unfold(colon + 1, end);
    if (strncasecmp(name, "content-", 8) == 0)
        content_field(f, name, &value);
    else if (env != NULL)
        set_slot(envelope_slots, sizeof(envelope_slots) / sizeof(envelope_slots[0]), env, name,
                 &value);
    free(value);
}

static struct petrel_mime_address *addresses(struct petrel_mime_parser *p, const char *value)
{
    if (value == NULL)
        return NULL;
    if (p->addresses_left == 0) {
        limit_hit(p);
        return NULL;
    }
    struct petrel_mime_address *list = petrel_mime_parse_addresses(value, p->addresses_left);
    unsigned int n = 0;
    for (struct petrel_mime_address *a = list; a != NULL; a = a->next)
        n++;
    /* n can pass the budget by one: a group's end marker is always kept. */
    if (n >= p->addresses_left)
        limit_hit(p);
    p->addresses_left -= n < p->addresses_left ? n : p->addresses_left;
    return list;
}

static char *dup_or_null(const char *s) { return s != NULL ? petrel_strdup(s) : NULL; }

static struct petrel_mime_address *copy_addresses(const struct petrel_mime_address *a)
{
    struct petrel_mime_address *head = NULL, **tail = &head;
    for (; a != NULL; a = a->next) {
        struct petrel_mime_address *c = petrel_calloc(1, sizeof(*c));
        c->name = dup_or_null(a->name);
        c->route = dup_or_null(a->route);
        c->mailbox = dup_or_null(a->mailbox);
        c->host = dup_or_null(a->host);
        *tail = c;
        tail = &c->next;
    }
    return head;
}

static void envelope_lists(struct petrel_mime_parser *p, struct petrel_mime_envelope *env)
{
    env->from_list = addresses(p, env->from);
    env->sender_list = addresses(p, env->sender);
    env->reply_to_list = addresses(p, env->reply_to);
    env->to_list = addresses(p, env->to);
    env->cc_list = addresses(p, env->cc);
    env->bcc_list = addresses(p, env->bcc);
    /* RFC 3501 ENVELOPE: absent or empty Sender and Reply-To are From. */
    if (env->sender_list == NULL)
        env->sender_list = copy_addresses(env->from_list);
    if (env->reply_to_list == NULL)
        env->reply_to_list = copy_addresses(env->from_list);
}

static void set_defaults(struct frame *f, struct frame *parent)
{
    struct petrel_mime_part *part = f->part;
    if (part->type == NULL) {
        bool digest = parent != NULL && parent->digest;
        part->type = petrel_strdup(digest ? "message" : "text");
        part->subtype = petrel_strdup(digest ? "rfc822" : "plain");
    }
    if (part->encoding == NULL)
        part->encoding = petrel_strdup("7bit");
}

static void parse_header(struct petrel_mime_parser *p, struct frame *f, struct frame *parent)
{
    struct petrel_mime_envelope *env = NULL;
    if (f->is_message)
        env = petrel_calloc(1, sizeof(*env));
    const char *h = p->header.len > 0 ? petrel_buf_head(&p->header) : "";
    const char *end = h + p->header.len, *field = NULL;
    for (const char *line = h; line < end;) {
        const char *lf = memchr(line, '\n', (size_t)(end - line));
        const char *next = lf != NULL ? lf + 1 : end;
        if (field != NULL && !is_wsp(*line)) {
            header_field(f, env, field, line);
            field = NULL;
        }
        if (field == NULL && !is_wsp(*line))
            field = line;
        line = next;
    }
    if (field != NULL)
        header_field(f, env, field, end);
    set_defaults(f, parent);
    if (env != NULL) {
        envelope_lists(p, env);
        f->part->envelope = env;
    }
}

/* ---- header end and body start ---- */

static bool encoding_is_identity(const char *encoding)
{
    return strcmp(encoding, "7bit") == 0 || strcmp(encoding, "8bit") == 0 ||
           strcmp(encoding, "binary") == 0;
}

static bool room_for_children(struct petrel_mime_parser *p, const struct frame *f)
{
    if (f->part->depth < p->limits.max_depth && p->parts < p->limits.max_parts)
        return true;
    limit_hit(p);
    return false;
}

static void open_body(struct petrel_mime_parser *p, struct frame *f)
{
    struct petrel_mime_part *part = f->part;
    if (strcmp(part->type, "multipart") == 0) {
        const char *b = petrel_mime_param_find(part->params, part->param_count, "boundary");
        size_t len = b != NULL ? strlen(b) : 0;
        while (len > 0 && is_blank(b[len - 1]))
            len--;
        if (len == 0 || len > BOUNDARY_MAX || !room_for_children(p, f))
            return;
        f->boundary = petrel_strndup(b, len);
        f->boundary_len = len;
        f->digest = strcmp(part->subtype, "digest") == 0;
    } else if (strcmp(part->type, "message") == 0 &&
               (strcmp(part->subtype, "rfc822") == 0 || strcmp(part->subtype, "global") == 0) &&
               encoding_is_identity(part->encoding) && room_for_children(p, f)) {
        new_child(p, f)->is_message = true;
    }
}

static void reset_header(struct petrel_mime_parser *p)
{
    petrel_buf_reset(&p->header);
    p->field_len = 0;
    p->field_cut = p->header_full = false;
}

/* The top part's header ends at end. With open_body its body is entered;
 * without, the part is about to be closed (boundary or end of input). */
static void header_done(struct petrel_mime_parser *p, struct mark end, bool open)
{
    struct frame *f = top(p);
    if (end.offset < f->header.offset)
        end = f->header;
    f->part->header_size = end.offset - f->header.offset;
    f->part->body_offset = end.offset;
    f->body = end;
    parse_header(p, f, p->depth > 1 ? &p->stack[p->depth - 2] : NULL);
    reset_header(p);
    p->state = MIME_BODY;
    if (open)
        open_body(p, f);
}

/* ---- lines ---- */

/* Where a part before a boundary line ends: before the line break that
 * precedes the boundary, which belongs to the boundary (RFC 2046 5.1.1). */
static struct mark mark_before_line(const struct petrel_mime_parser *p)
{
    struct mark m;
    m.offset = p->line_start - p->prev_eol;
    m.lfs = p->line_start_lfs - (p->prev_eol > 0 ? 1 : 0);
    m.after_lf = p->prev_empty;
    return m;
}

/* The open multipart whose delimiter the current line is: "--boundary" or
 * "--boundary--", then only transport padding (RFC 2046 5.1.1). Matching
 * the whole line means a boundary that is a prefix of another cannot take
 * its lines. On a tie (the same boundary nested) the innermost one wins. */
static struct frame *match_boundary(struct petrel_mime_parser *p, bool *close_r)
{
    size_t n = p->prefix_len;
    if (!p->tail_blank)
        return NULL;
    while (n > 0 && is_blank(p->prefix[n - 1]))
        n--;
    if (n < 3 || p->prefix[0] != '-' || p->prefix[1] != '-')
        return NULL;
    for (unsigned int i = p->depth; i-- > 0;) {
        struct frame *f = &p->stack[i];
        size_t b = f->boundary_len;
        if (f->boundary == NULL || f->closed || n < 2 + b ||
            memcmp(p->prefix + 2, f->boundary, b) != 0)
            continue;
        if (n == 2 + b) {
            *close_r = false;
            return f;
        }
        if (n == 4 + b && p->prefix[2 + b] == '-' && p->prefix[3 + b] == '-') {
            *close_r = true;
            return f;
        }
    }
    return NULL;
}

static void boundary_line(struct petrel_mime_parser *p, struct frame *f, bool close)
{
    struct mark end = mark_before_line(p);
    if (p->state == MIME_HEADER)
        header_done(p, end, false);
    while (top(p) != f) {
        /* Degenerate input can put the boundary before a part's body. */
        if (end.offset < top(p)->body.offset)
            end = top(p)->body;
        close_top(p, &end);
    }
    p->state = MIME_BODY;
    if (close)
        f->closed = true;
    else if (p->parts < p->limits.max_parts)
        new_child(p, f);
    else
        limit_hit(p);
}

/* Store header bytes of the current line within the field and header caps
 * (one byte is kept for the line feed). NULs become blanks so that values
 * stay C strings. */
static void store_header(struct petrel_mime_parser *p, const char *data, size_t n)
{
    size_t room = p->header.len + 1 < p->header.max ? p->header.max - p->header.len - 1 : 0;
    size_t field_room = p->limits.max_field_size - p->field_len;
    size_t k = n;
    if (k > field_room) {
        k = field_room;
        p->field_cut = true;
    }
    if (k > room) {
        k = room;
        p->header_full = true;
    }
    if (k < n)
        limit_hit(p);
    if (k == 0)
        return;
    size_t got;
    char *dst = petrel_buf_space(&p->header, k, &got);
    memcpy(dst, data, k);
    for (size_t i = 0; i < k; i++) {
        if (dst[i] == '\0')
            dst[i] = ' ';
    }
    petrel_buf_commit(&p->header, k);
    p->field_len += k;
}

static void header_line_start(struct petrel_mime_parser *p, char first)
{
    bool continuation = is_wsp(first);
    if (!continuation) {
        p->field_len = 0;
        p->field_cut = false;
    }
    p->line_keep = !p->header_full && !(continuation && p->field_cut);
}

static void line_bytes(struct petrel_mime_parser *p, const char *data, size_t n)
{
    if (n == 0)
        return;
    if (p->state == MIME_HEADER && p->line_len == 0)
        header_line_start(p, data[0]);
    size_t k = LINE_PREFIX_MAX - p->prefix_len;
    if (k > n)
        k = n;
    memcpy(p->prefix + p->prefix_len, data, k);
    p->prefix_len += k;
    for (size_t i = k; i < n && p->tail_blank; i++)
        p->tail_blank = is_blank(data[i]);
    if (p->state == MIME_HEADER && p->line_keep)
        store_header(p, data, n);
    p->line_len += n;
    p->line_last = data[n - 1];
    p->pos += n;
    p->last_byte = data[n - 1];
}

static void line_end(struct petrel_mime_parser *p, bool has_lf)
{
    bool cr = p->line_len > 0 && p->line_last == '\r';
    unsigned int eol = has_lf ? (cr ? 2 : 1) : 0;
    bool empty = p->line_len - (has_lf && cr ? 1 : 0) == 0;
    if (p->state == MIME_HEADER && p->line_keep && has_lf)
        petrel_buf_append(&p->header, "\n", 1);
    bool close = false;
    struct frame *f = match_boundary(p, &close);
    if (f != NULL)
        boundary_line(p, f, close);
    else if (p->state == MIME_HEADER && empty && has_lf)
        header_done(p, mark_here(p), true);
    p->prev_eol = eol;
    p->prev_empty = empty;
    p->line_start = p->pos;
    p->line_start_lfs = p->lfs;
    p->line_len = 0;
    p->prefix_len = 0;
    p->tail_blank = true;
    p->line_keep = false;
}

/* ---- API ---- */

static void apply_limits(struct petrel_mime_limits *l, const struct petrel_mime_limits *given)
{
    if (given != NULL)
        *l = *given;
    else
        memset(l, 0, sizeof(*l));
    if (l->max_depth == 0)
        l->max_depth = PETREL_MIME_DEFAULT_MAX_DEPTH;
    if (l->max_parts == 0)
        l->max_parts = PETREL_MIME_DEFAULT_MAX_PARTS;
    if (l->max_header_size == 0)
        l->max_header_size = PETREL_MIME_DEFAULT_MAX_HEADER_SIZE;
    if (l->max_field_size == 0)
        l->max_field_size = PETREL_MIME_DEFAULT_MAX_FIELD_SIZE;
}

struct petrel_mime_parser *petrel_mime_parser_new(const struct petrel_mime_limits *limits)
{
    struct petrel_mime_parser *p = petrel_calloc(1, sizeof(*p));
    apply_limits(&p->limits, limits);
    petrel_buf_init(&p->header, p->limits.max_header_size);
    p->prev_empty = true;
    p->tail_blank = true;
    p->root = petrel_calloc(1, sizeof(*p->root));
    p->parts = 1;
    p->addresses_left = ADDRESSES_MAX;
    push_frame(p, p->root)->is_message = true;
    return p;
}

void petrel_mime_parser_feed(struct petrel_mime_parser *p, const void *data, size_t len)
{
    const char *s = data;
    if (p->finished)
        return;
    while (len > 0) {
        const char *lf = memchr(s, '\n', len);
        size_t n = lf != NULL ? (size_t)(lf - s) : len;
        line_bytes(p, s, n);
        if (lf == NULL)
            return;
        p->pos++;
        p->lfs++;
        p->last_byte = '\n';
        line_end(p, true);
        s += n + 1;
        len -= n + 1;
    }
}

int petrel_mime_parser_finish(struct petrel_mime_parser *p, struct petrel_mime_part **root_r,
                              const char **error_r)
{
    if (p->finished) {
        *error_r = "MIME parser already finished";
        return -1;
    }
    /* A last line without a line feed can still be a close delimiter. */
    if (p->line_len > 0)
        line_end(p, false);
    struct mark end = mark_here(p);
    if (p->state == MIME_HEADER)
        header_done(p, end, false);
    while (p->depth > 0)
        close_top(p, &end);
    p->finished = true;
    *root_r = p->root;
    p->root = NULL;
    return 0;
}

void petrel_mime_parser_free(struct petrel_mime_parser *p)
{
    if (p == NULL)
        return;
    for (unsigned int i = 0; i < p->depth; i++)
        free(p->stack[i].boundary);
    free(p->stack);
    petrel_buf_free(&p->header);
    petrel_mime_part_free(p->root);
    free(p);
}

const struct petrel_mime_envelope *
petrel_mime_part_embedded_envelope(const struct petrel_mime_part *part)
{
    if (part->children == NULL || strcmp(part->type, "message") != 0)
        return NULL;
    return part->children->envelope;
}

static void envelope_free(struct petrel_mime_envelope *env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; i < sizeof(envelope_slots) / sizeof(envelope_slots[0]); i++)
        free(*(char **)((char *)env + envelope_slots[i].offset));
    petrel_mime_addresses_free(env->from_list);
    petrel_mime_addresses_free(env->sender_list);
    petrel_mime_addresses_free(env->reply_to_list);
    petrel_mime_addresses_free(env->to_list);
    petrel_mime_addresses_free(env->cc_list);
    petrel_mime_addresses_free(env->bcc_list);
    free(env);
}

static void part_free_one(struct petrel_mime_part *part)
{
    free(part->type);
    free(part->subtype);
    petrel_mime_params_free(part->params, part->param_count);
    free(part->id);
    free(part->description);
    free(part->encoding);
    free(part->disposition);
    petrel_mime_params_free(part->disposition_params, part->disposition_param_count);
    free(part->language);
    free(part->location);
    free(part->md5);
    envelope_free(part->envelope);
    free(part);
}

/* Iterative, so that a deep tree cannot exhaust the stack. */
void petrel_mime_part_free(struct petrel_mime_part *part)
{
    struct petrel_mime_part *cur = part;
    while (cur != NULL) {
        while (cur->children != NULL)
            cur = cur->children;
        struct petrel_mime_part *next = cur->next, *parent = cur->parent;
        bool last = cur == part;
        part_free_one(cur);
        if (last)
            return;
        if (next != NULL) {
            cur = next;
        } else {
            cur = parent;
            cur->children = NULL;
        }
    }
}
