/* BODY and BODYSTRUCTURE: one writer for both, the extension data only
 * with ext. Two cases where the core tree does not fit the grammar are
 * mapped here, and the part table follows the same mapping:
 * - a multipart with no parts (no boundary, or a boundary never found, or
 *   a limit reached) is shown with one text/plain part that is its body,
 *   since body-type-mpart needs at least one body;
 * - a message/rfc822 part whose message was not parsed (encoded, or a
 *   limit reached) is shown as a basic part, without envelope. */
#include "imap_bodystructure.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/cte.h>
#include <petrel/mem.h>

#include "imap_envelope.h"

static bool is_multipart(const struct petrel_mime_part *p)
{
    return strcmp(p->type, "multipart") == 0;
}

/* message/rfc822 holding a parsed message (message/global stays basic:
 * RFC 3501 knows only message/rfc822). */
static bool is_message(const struct petrel_mime_part *p)
{
    return strcmp(p->type, "message") == 0 && strcmp(p->subtype, "rfc822") == 0 &&
           p->children != NULL;
}

static void sp(struct imap_mime_writer *w) { imap_mime_put(w, " ", 1); }

/* body-fld-param: names upper-cased, values as decoded; text parts
 * without a charset get the RFC 2046 default. */
static void put_params(struct imap_mime_writer *w, const struct petrel_mime_param *params,
                       unsigned int count, bool text)
{
    bool charset = text && petrel_mime_param_find(params, count, "charset") == NULL;
    if (count == 0 && !charset) {
        imap_mime_put(w, "NIL", 3);
        return;
    }
    imap_mime_put(w, "(", 1);
    if (charset)
        imap_mime_put_cstr(w, count > 0 ? "\"CHARSET\" \"US-ASCII\" " : "\"CHARSET\" \"US-ASCII\"");
    for (unsigned int i = 0; i < count; i++) {
        if (i > 0)
            sp(w);
        imap_mime_put_upper(w, params[i].name);
        sp(w);
        imap_mime_put_nstring(w, params[i].value);
    }
    imap_mime_put(w, ")", 1);
}

static void put_disposition(struct imap_mime_writer *w, const struct petrel_mime_part *p)
{
    if (p->disposition == NULL) {
        imap_mime_put(w, "NIL", 3);
        return;
    }
    imap_mime_put(w, "(", 1);
    imap_mime_put_upper(w, p->disposition);
    sp(w);
    put_params(w, p->disposition_params, p->disposition_param_count, false);
    imap_mime_put(w, ")", 1);
}

/* body-fld-lang: one tag as a string, several as a list. */
static void put_language(struct imap_mime_writer *w, const char *lang)
{
    if (lang == NULL || strchr(lang, ',') == NULL) {
        imap_mime_put_nstring(w, lang);
        return;
    }
    imap_mime_put(w, "(", 1);
    bool first = true;
    for (const char *s = lang; *s != '\0';) {
        size_t n = strcspn(s, ",");
        char *tag = petrel_strndup(s, n);
        char *t = tag + strspn(tag, " \t");
        size_t tl = strlen(t);
        while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
            t[--tl] = '\0';
        if (tl > 0) {
            if (!first)
                sp(w);
            imap_mime_put_nstring(w, t);
            first = false;
        }
        free(tag);
        s += n + (s[n] == ',');
    }
    imap_mime_put(w, ")", 1);
}

/* The core hands Content-Description decoded to UTF-8; IMAP clients expect
 * it as the header had it (RFC 2047 words and all), so text that is not
 * ASCII goes back into UTF-8 encoded words of at most 75 characters
 * (45 bytes each, cut between characters). */
static void put_encoded_word(struct petrel_buf *out, const unsigned char *s, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    petrel_buf_append(out, "=?UTF-8?B?", 10);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=',
                     i + 2 < n ? b64[v & 63] : '='};
        petrel_buf_append(out, q, 4);
    }
    petrel_buf_append(out, "?=", 2);
}

static bool is_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s > 0x7E || (unsigned char)*s < 0x20)
            return false;
    }
    return true;
}

static void put_description(struct imap_mime_writer *w, const char *desc)
{
    if (desc == NULL || is_ascii(desc)) {
        imap_mime_put_nstring(w, desc);
        return;
    }
    size_t len = strlen(desc);
    struct petrel_buf enc;
    petrel_buf_init(&enc, len * 2 + 64);
    for (size_t i = 0; i < len;) {
        size_t n = len - i < 45 ? len - i : 45;
        while (i + n < len && n > 1 && ((unsigned char)desc[i + n] & 0xC0) == 0x80)
            n--;
        if (i > 0)
            petrel_buf_append(&enc, " ", 1);
        put_encoded_word(&enc, (const unsigned char *)desc + i, n);
        i += n;
    }
    petrel_buf_append(&enc, "", 1);
    imap_mime_put_nstring(w, petrel_buf_head(&enc));
    petrel_buf_free(&enc);
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void put_ext_tail(struct imap_mime_writer *w, const struct petrel_mime_part *p)
{
    sp(w);
    put_disposition(w, p);
    sp(w);
    put_language(w, p->language);
    sp(w);
    imap_mime_put_nstring(w, p->location);
}

/* The text/plain part standing for the body of a multipart without
 * parts. */
static void put_stand_in(struct imap_mime_writer *w, const struct petrel_mime_part *p, bool ext)
{
    imap_mime_put_cstr(w, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL ");
    imap_mime_put_upper(w, p->encoding);
    sp(w);
    imap_mime_put_u64(w, p->body_size);
    sp(w);
    imap_mime_put_u64(w, p->body_lines);
    if (ext)
        imap_mime_put_cstr(w, " NIL NIL NIL NIL");
    imap_mime_put(w, ")", 1);
}

static void put_part(struct imap_mime_writer *w, const struct petrel_mime_part *p, bool ext);

static void put_multipart(struct imap_mime_writer *w, const struct petrel_mime_part *p, bool ext)
{
    imap_mime_put(w, "(", 1);
    if (p->children == NULL)
        put_stand_in(w, p, ext);
    for (const struct petrel_mime_part *c = p->children; c != NULL; c = c->next)
        put_part(w, c, ext);
    sp(w);
    imap_mime_put_upper(w, p->subtype);
    if (ext) {
        sp(w);
        put_params(w, p->params, p->param_count, false);
        put_ext_tail(w, p);
    }
    imap_mime_put(w, ")", 1);
}

/* body-type-basic / -msg / -text with body-ext-1part. */
static void put_single(struct imap_mime_writer *w, const struct petrel_mime_part *p, bool ext)
{
    bool text = strcmp(p->type, "text") == 0;
    imap_mime_put(w, "(", 1);
    imap_mime_put_upper(w, p->type);
    sp(w);
    imap_mime_put_upper(w, p->subtype);
    sp(w);
    put_params(w, p->params, p->param_count, text);
    sp(w);
    imap_mime_put_nstring(w, p->id);
    sp(w);
    put_description(w, p->description);
    sp(w);
    imap_mime_put_upper(w, p->encoding);
    sp(w);
    imap_mime_put_u64(w, p->body_size);
    if (is_message(p)) {
        sp(w);
        imap_envelope_write(w, p->children->envelope);
        sp(w);
        put_part(w, p->children, ext);
    }
    if (text || is_message(p)) {
        sp(w);
        imap_mime_put_u64(w, p->body_lines);
    }
    if (ext) {
        sp(w);
        /* body-fld-md5: NIL always. A Content-MD5 field is the sender's
         * claim, never checked against the body here, so it is not
         * passed on as if it were the part's digest. */
        imap_mime_put(w, "NIL", 3);
        put_ext_tail(w, p);
    }
    imap_mime_put(w, ")", 1);
}

static void put_part(struct imap_mime_writer *w, const struct petrel_mime_part *p, bool ext)
{
    if (is_multipart(p))
        put_multipart(w, p, ext);
    else
        put_single(w, p, ext);
}

void imap_bodystructure_write(struct imap_mime_writer *w, const struct petrel_mime_part *root,
                              bool ext)
{
    put_part(w, root, ext);
}

/* ---- the part table ---- */

static uint32_t count_parts(const struct petrel_mime_part *p)
{
    uint32_t n = 1;
    if (is_multipart(p) && p->children == NULL)
        return 2;
    if (!is_multipart(p) && !is_message(p))
        return 1;
    for (const struct petrel_mime_part *c = p->children; c != NULL; c = c->next)
        n += count_parts(c);
    return n;
}

static uint32_t part_cte(const struct petrel_mime_part *p)
{
    struct petrel_cte d;
    enum imap_part_cte cte = IMAP_CTE_UNKNOWN;
    if (petrel_cte_init(&d, p->encoding))
        cte = d.kind == PETREL_CTE_BASE64 ? IMAP_CTE_BASE64
              : d.kind == PETREL_CTE_QP   ? IMAP_CTE_QP
                                          : IMAP_CTE_IDENTITY;
    return (uint32_t)cte << IMAP_PART_CTE_SHIFT;
}

static uint32_t add_entry(struct imap_msginfo_part *t, uint32_t *n,
                          const struct petrel_mime_part *p)
{
    uint32_t i = (*n)++;
    t[i] = (struct imap_msginfo_part){
        .header_offset = p->header_offset,
        .header_size = p->header_size,
        .body_offset = p->body_offset,
        .body_size = p->body_size,
        .first_child = IMAP_PART_NONE,
        .next = IMAP_PART_NONE,
        .flags = part_cte(p),
    };
    return i;
}

static uint32_t fill(struct imap_msginfo_part *t, uint32_t *n, const struct petrel_mime_part *p)
{
    uint32_t i = add_entry(t, n, p);
    if (is_multipart(p) && p->children == NULL) {
        /* The stand-in part: no MIME header, the multipart's body. */
        uint32_t c = add_entry(t, n, p);
        t[c].header_offset = p->body_offset;
        t[c].header_size = 0;
        t[i].first_child = c;
        t[i].flags |= IMAP_PART_MULTIPART;
        return i;
    }
    if (!is_multipart(p) && !is_message(p))
        return i;
    t[i].flags |= is_multipart(p) ? IMAP_PART_MULTIPART : IMAP_PART_MESSAGE;
    uint32_t prev = IMAP_PART_NONE;
    for (const struct petrel_mime_part *c = p->children; c != NULL; c = c->next) {
        uint32_t ci = fill(t, n, c);
        if (prev == IMAP_PART_NONE)
            t[i].first_child = ci;
        else
            t[prev].next = ci;
        prev = ci;
        if (!is_multipart(p))
            break; /* a message holds one message */
    }
    return i;
}

struct imap_msginfo_part *imap_bodystructure_parts(const struct petrel_mime_part *root,
                                                   uint32_t *count_r)
{
    uint32_t count = count_parts(root);
    struct imap_msginfo_part *t = petrel_reallocarray(NULL, count, sizeof(*t));
    uint32_t n = 0;
    fill(t, &n, root);
    *count_r = n;
    return t;
}
