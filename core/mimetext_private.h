/* The stages of petrel_mimetext (core only): the HTML reducer that sits
 * between charset conversion and folding. */
#ifndef PETREL_MIMETEXT_PRIVATE_H
#define PETREL_MIMETEXT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

/* Where reduced text goes; false stops. */
typedef bool mimetext_out_fn(void *ctx, const char *data, size_t len);

#define MIMETEXT_HTML_NAME 16u
#define MIMETEXT_HTML_ENTITY 40u

enum mimetext_html_state {
    HTML_TEXT,
    HTML_LT,      /* after '<' */
    HTML_TAGNAME, /* reading the tag's name */
    HTML_TAG,     /* in a tag, after its name */
    HTML_QUOTE,   /* in a quoted attribute value */
    HTML_BANG,    /* "<!": a comment or a declaration */
    HTML_COMMENT, /* in "<!-- ... -->" */
    HTML_ENTITY,  /* after '&' */
};

/* A resumable HTML-to-text state machine over UTF-8: tags and comments
 * dropped, script and style content dropped, entities decoded, blanks
 * collapsed, block-level tags a blank. */
struct mimetext_html {
    enum mimetext_html_state state;
    char quote;
    bool closing;       /* "</name" */
    bool skip;          /* inside script or style */
    bool blank_pending; /* blanks seen since the last text byte */
    bool any_text;
    unsigned dashes; /* '-' run in a comment or after "<!" */
    char name[MIMETEXT_HTML_NAME];
    size_t name_len;
    char skip_name[MIMETEXT_HTML_NAME]; /* the element whose end ends skip */
    char entity[MIMETEXT_HTML_ENTITY];
    size_t entity_len;
};

void mimetext_html_init(struct mimetext_html *h);
bool mimetext_html_feed(struct mimetext_html *h, const char *in, size_t len, mimetext_out_fn *out,
                        void *ctx);
/* The end of the part: an entity cut short goes through as written. */
bool mimetext_html_end(struct mimetext_html *h, mimetext_out_fn *out, void *ctx);

/* Code point to UTF-8 (out: 4 bytes); invalid ones become U+FFFD. */
size_t mimetext_utf8_put(unsigned long c, char *out);

#endif
