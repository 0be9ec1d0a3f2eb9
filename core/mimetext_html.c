/* HTML reduced to its text for search: what a reader sees, not the
 * markup. Tags, comments and declarations go; the content of script and
 * style goes; character references are decoded; runs of blanks become one
 * space, and block-level tags count as a blank so that the words of two
 * paragraphs do not run together. A resumable state machine over UTF-8. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alphabet.h"
#include "mimetext_private.h"

struct entity {
    const char *name;
    unsigned long cp;
};

/* The named references mail is written with (the full HTML list is over
 * two thousand; these cover Latin text and punctuation). */
static const struct entity entities[] = {
    {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},    {"copy", 0xA9},     {"reg", 0xAE},     {"trade", 0x2122}, {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013},  {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C},
    {"rdquo", 0x201D}, {"laquo", 0xAB},    {"raquo", 0xBB},   {"euro", 0x20AC},  {"pound", 0xA3},
    {"yen", 0xA5},     {"cent", 0xA2},     {"sect", 0xA7},    {"deg", 0xB0},     {"plusmn", 0xB1},
    {"times", 0xD7},   {"divide", 0xF7},   {"middot", 0xB7},  {"bull", 0x2022},  {"para", 0xB6},
    {"shy", 0xAD},     {"iexcl", 0xA1},    {"iquest", 0xBF},  {"szlig", 0xDF},   {"auml", 0xE4},
    {"ouml", 0xF6},    {"uuml", 0xFC},     {"Auml", 0xC4},    {"Ouml", 0xD6},    {"Uuml", 0xDC},
    {"aacute", 0xE1},  {"eacute", 0xE9},   {"iacute", 0xED},  {"oacute", 0xF3},  {"uacute", 0xFA},
    {"Aacute", 0xC1},  {"Eacute", 0xC9},   {"Iacute", 0xCD},  {"Oacute", 0xD3},  {"Uacute", 0xDA},
    {"agrave", 0xE0},  {"egrave", 0xE8},   {"igrave", 0xEC},  {"ograve", 0xF2},  {"ugrave", 0xF9},
    {"Agrave", 0xC0},  {"Egrave", 0xC8},   {"acirc", 0xE2},   {"ecirc", 0xEA},   {"icirc", 0xEE},
    {"ocirc", 0xF4},   {"ucirc", 0xFB},    {"ccedil", 0xE7},  {"Ccedil", 0xC7},  {"ntilde", 0xF1},
    {"Ntilde", 0xD1},  {"atilde", 0xE3},   {"otilde", 0xF5},  {"aring", 0xE5},   {"Aring", 0xC5},
    {"aelig", 0xE6},   {"AElig", 0xC6},    {"oslash", 0xF8},  {"Oslash", 0xD8},  {"euml", 0xEB},
    {"iuml", 0xEF},    {"yuml", 0xFF},     {"thorn", 0xFE},   {"eth", 0xF0},     {"zwnj", 0x200C},
    {"zwj", 0x200D},   {"thinsp", 0x2009}, {"ensp", 0x2002},  {"emsp", 0x2003},
};

/* Elements that end a line where they start or end. */
static const char *const blocks[] = {
    "br", "p",     "div", "li", "tr", "td", "th", "h1",  "h2",         "h3",    "h4",   "h5",
    "h6", "table", "ul",  "ol", "hr", "dd", "dt", "pre", "blockquote", "title", "body", "head"};

void mimetext_html_init(struct mimetext_html *h)
{
    memset(h, 0, sizeof(*h));
    h->state = HTML_TEXT;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Text out, with the blanks before it collapsed to one space. */
static bool text_out(struct mimetext_html *h, const char *s, size_t len, mimetext_out_fn *out,
                     void *ctx)
{
    if (h->skip)
        return true;
    if (h->blank_pending && h->any_text && !out(ctx, " ", 1))
        return false;
    h->blank_pending = false;
    h->any_text = true;
    return out(ctx, s, len);
}

static bool entity_value(const char *e, size_t len, unsigned long *cp_r)
{
    if (len >= 2 && e[0] == '#') {
        bool hex = e[1] == 'x' || e[1] == 'X';
        size_t i = hex ? 2 : 1;
        if (i >= len)
            return false;
        unsigned long v = 0;
        for (; i < len; i++) {
            char c = e[i];
            int d = hex ? petrel_hex_value((unsigned char)c) : c >= '0' && c <= '9' ? c - '0' : -1;
            if (d < 0)
                return false;
            if (v <= 0x10FFFF)
                v = v * (hex ? 16u : 10u) + (unsigned long)d;
        }
        *cp_r = v; /* out of range becomes U+FFFD */
        return true;
    }
    for (size_t i = 0; i < sizeof(entities) / sizeof(entities[0]); i++)
        if (strlen(entities[i].name) == len && memcmp(entities[i].name, e, len) == 0) {
            *cp_r = entities[i].cp;
            return true;
        }
    return false;
}

/* The reference ended by c (';' consumed, anything else given back). */
static bool entity_end(struct mimetext_html *h, bool semicolon, mimetext_out_fn *out, void *ctx)
{
    unsigned long cp;
    h->state = HTML_TEXT;
    if (semicolon && entity_value(h->entity, h->entity_len, &cp)) {
        char u[4];
        size_t n = mimetext_utf8_put(cp, u);
        if (cp == 0xA0 || cp == 0x2002 || cp == 0x2003 || cp == 0x2009) {
            h->blank_pending = true; /* a space to the reader */
            return true;
        }
        return text_out(h, u, n, out, ctx);
    }
    /* Not a reference: the text as written. */
    if (!text_out(h, "&", 1, out, ctx))
        return false;
    if (h->entity_len > 0 && !out(ctx, h->entity, h->entity_len))
        return false;
    return !semicolon || out(ctx, ";", 1);
}

static void tag_done(struct mimetext_html *h)
{
    h->name[h->name_len] = '\0';
    if (h->skip) {
        if (h->closing && strcasecmp(h->name, h->skip_name) == 0)
            h->skip = false;
        return;
    }
    if (!h->closing && (strcasecmp(h->name, "script") == 0 || strcasecmp(h->name, "style") == 0)) {
        memcpy(h->skip_name, h->name, h->name_len + 1);
        h->skip = true;
    }
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
        if (strcasecmp(h->name, blocks[i]) == 0)
            h->blank_pending = true;
}

/* '<' then c: a tag, an end tag, a comment or declaration, or text. */
static bool after_lt(struct mimetext_html *h, char c, mimetext_out_fn *out, void *ctx)
{
    h->name_len = 0;
    h->closing = false;
    if (c == '/') {
        h->closing = true;
        h->state = HTML_TAGNAME;
    } else if (c == '!') {
        h->dashes = 0;
        h->state = HTML_BANG;
    } else if (c == '?') {
        h->state = HTML_TAG; /* a processing instruction, up to '>' */
    } else if (is_alpha(c)) {
        h->name[h->name_len++] = c;
        h->state = HTML_TAGNAME;
    } else {
        h->state = HTML_TEXT;
        if (!text_out(h, "<", 1, out, ctx))
            return false;
        if (is_blank(c)) {
            h->blank_pending = h->blank_pending || !h->skip;
            return true;
        }
        if (c == '&') {
            h->entity_len = 0;
            h->state = HTML_ENTITY;
            return true;
        }
        return text_out(h, &c, 1, out, ctx);
    }
    return true;
}

static bool step(struct mimetext_html *h, char c, mimetext_out_fn *out, void *ctx)
{
    switch (h->state) {
    case HTML_TEXT:
        if (c == '<')
            h->state = HTML_LT;
        else if (c == '&' && !h->skip) {
            h->entity_len = 0;
            h->state = HTML_ENTITY;
        } else if (is_blank(c))
            h->blank_pending = h->blank_pending || !h->skip;
        else
            return text_out(h, &c, 1, out, ctx);
        return true;
    case HTML_LT:
        return after_lt(h, c, out, ctx);
    case HTML_TAGNAME:
        if (is_alpha(c) || (c >= '0' && c <= '9') || c == '-') {
            if (h->name_len + 1 < MIMETEXT_HTML_NAME)
                h->name[h->name_len++] = c;
            return true;
        }
        tag_done(h);
        h->state = c == '>' ? HTML_TEXT : HTML_TAG;
        return true;
    case HTML_TAG:
        if (c == '"' || c == '\'') {
            h->quote = c;
            h->state = HTML_QUOTE;
        } else if (c == '>')
            h->state = HTML_TEXT;
        return true;
    case HTML_QUOTE:
        if (c == h->quote)
            h->state = HTML_TAG;
        return true;
    case HTML_BANG:
        if (c == '-' && ++h->dashes == 2) {
            h->dashes = 0;
            h->state = HTML_COMMENT;
        } else if (c != '-')
            h->state = c == '>' ? HTML_TEXT : HTML_TAG;
        return true;
    case HTML_COMMENT:
        if (c == '>' && h->dashes >= 2)
            h->state = HTML_TEXT;
        h->dashes = c == '-' ? h->dashes + 1 : 0;
        return true;
    case HTML_ENTITY:
        if (c == ';')
            return entity_end(h, true, out, ctx);
        if ((is_alpha(c) || (c >= '0' && c <= '9') || c == '#') &&
            h->entity_len < MIMETEXT_HTML_ENTITY) {
            h->entity[h->entity_len++] = c;
            return true;
        }
        if (!entity_end(h, false, out, ctx))
            return false;
        return step(h, c, out, ctx); /* c is the text's again */
    }
    return true;
}

bool mimetext_html_feed(struct mimetext_html *h, const char *in, size_t len, mimetext_out_fn *out,
                        void *ctx)
{
    for (size_t i = 0; i < len; i++)
        if (!step(h, in[i], out, ctx))
            return false;
    return true;
}

bool mimetext_html_end(struct mimetext_html *h, mimetext_out_fn *out, void *ctx)
{
    if (h->state == HTML_ENTITY)
        return entity_end(h, false, out, ctx);
    if (h->state == HTML_LT)
        return text_out(h, "<", 1, out, ctx);
    return true;
}
