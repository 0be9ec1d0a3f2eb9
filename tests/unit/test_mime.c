/* Unit tests for the MIME parser (core/mime.c) and its header helpers
 * (core/mime_header.c). Every message is parsed whole, a byte at a time and
 * in random chunks, and the printed trees must be identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>
#include <petrel/mem.h>
#include <petrel/mime.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#endif
#ifdef HAVE_ASAN
/* From <sanitizer/allocator_interface.h>, which not every compiler ships. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* ---- helpers ---- */

static void print_addresses(struct petrel_buf *out, const char *label,
                            const struct petrel_mime_address *a)
{
    petrel_buf_printf(out, " %s[", label);
    for (; a != NULL; a = a->next)
        petrel_buf_printf(out, "(%s|%s|%s|%s)", a->name ? a->name : "NIL",
                          a->route ? a->route : "NIL", a->mailbox ? a->mailbox : "NIL",
                          a->host ? a->host : "NIL");
    petrel_buf_printf(out, "]");
}

static void print_params(struct petrel_buf *out, const struct petrel_mime_param *params,
                         unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        petrel_buf_printf(out, " %s=%s", params[i].name, params[i].value);
}

static void print_part(struct petrel_buf *out, const struct petrel_mime_part *p)
{
    petrel_buf_printf(out, "%*s%s/%s", (int)p->depth * 2, "", p->type, p->subtype);
    print_params(out, p->params, p->param_count);
    petrel_buf_printf(out, " enc=%s id=%s desc=%s disp=%s", p->encoding, p->id ? p->id : "-",
                      p->description ? p->description : "-", p->disposition ? p->disposition : "-");
    print_params(out, p->disposition_params, p->disposition_param_count);
    petrel_buf_printf(out, " h=%llu+%llu b=%llu+%llu l=%llu\n",
                      (unsigned long long)p->header_offset, (unsigned long long)p->header_size,
                      (unsigned long long)p->body_offset, (unsigned long long)p->body_size,
                      (unsigned long long)p->body_lines);
    const struct petrel_mime_envelope *e = p->envelope;
    if (e != NULL) {
        petrel_buf_printf(out, "%*s env subject=%s date=%s", (int)p->depth * 2, "",
                          e->subject ? e->subject : "NIL", e->date ? e->date : "NIL");
        print_addresses(out, "from", e->from_list);
        print_addresses(out, "sender", e->sender_list);
        print_addresses(out, "to", e->to_list);
        petrel_buf_printf(out, "\n");
    }
    for (const struct petrel_mime_part *c = p->children; c != NULL; c = c->next)
        print_part(out, c);
}

static char *print_tree(const struct petrel_mime_part *root)
{
    struct petrel_buf out;
    petrel_buf_init(&out, 64 * 1024 * 1024);
    print_part(&out, root);
    petrel_buf_printf(&out, "limits=%d\n", root->limits_hit);
    char *s = petrel_strndup(petrel_buf_head(&out), out.len);
    petrel_buf_free(&out);
    return s;
}

/* Feed in pieces: step 0 means random sizes from seed. */
static struct petrel_mime_part *parse_split(const char *msg, size_t len, size_t step,
                                            unsigned int seed,
                                            const struct petrel_mime_limits *limits)
{
    struct petrel_mime_parser *p = petrel_mime_parser_new(limits);
    size_t off = 0;
    while (off < len) {
        size_t n = step;
        if (n == 0) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 97;
        }
        if (n > len - off)
            n = len - off;
        /* An exact-size copy, so that ASan catches reads past the piece. */
        char *piece = petrel_malloc(n);
        memcpy(piece, msg + off, n);
        petrel_mime_parser_feed(p, piece, n);
        free(piece);
        off += n;
    }
    struct petrel_mime_part *root = NULL;
    const char *error = NULL;
    assert_int_equal(petrel_mime_parser_finish(p, &root, &error), 0);
    petrel_mime_parser_free(p);
    assert_non_null(root);
    return root;
}

/* Parse whole and compare with other splits; large inputs skip the
 * byte-at-a-time run only when asked (quick). */
static struct petrel_mime_part *parse_len(const char *msg, size_t len,
                                          const struct petrel_mime_limits *limits, bool quick)
{
    struct petrel_mime_part *root = parse_split(msg, len, len ? len : 1, 0, limits);
    char *expect = print_tree(root);
    const size_t steps[] = {1, 2, 3, 7, 0, 0, 0};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (quick && steps[i] != 0 && steps[i] < 7)
            continue;
        struct petrel_mime_part *other = parse_split(msg, len, steps[i], (unsigned int)i, limits);
        char *got = print_tree(other);
        if (strcmp(got, expect) != 0)
            fail_msg("step %zu differs:\n%s\nvs one-shot:\n%s", steps[i], got, expect);
        free(got);
        petrel_mime_part_free(other);
    }
    free(expect);
    return root;
}

static struct petrel_mime_part *parse(const char *msg)
{
    return parse_len(msg, strlen(msg), NULL, false);
}

static size_t pos_of(const char *msg, const char *needle)
{
    const char *p = strstr(msg, needle);
    if (p == NULL)
        fail_msg("'%s' not in message", needle);
    return (size_t)(p - msg);
}

static void assert_part(const struct petrel_mime_part *p, size_t hoff, size_t hsize, size_t boff,
                        size_t bsize, size_t lines)
{
    assert_int_equal(p->header_offset, hoff);
    assert_int_equal(p->header_size, hsize);
    assert_int_equal(p->body_offset, boff);
    assert_int_equal(p->body_size, bsize);
    assert_int_equal(p->body_lines, lines);
}

static void assert_type(const struct petrel_mime_part *p, const char *type, const char *subtype)
{
    assert_string_equal(p->type, type);
    assert_string_equal(p->subtype, subtype);
}

static const char *param(const struct petrel_mime_part *p, const char *name)
{
    return petrel_mime_param_find(p->params, p->param_count, name);
}

static unsigned int count_children(const struct petrel_mime_part *p)
{
    unsigned int n = 0;
    for (const struct petrel_mime_part *c = p->children; c != NULL; c = c->next)
        n++;
    return n;
}

static const struct petrel_mime_part *child(const struct petrel_mime_part *p, unsigned int i)
{
    const struct petrel_mime_part *c = p->children;
    while (c != NULL && i-- > 0)
        c = c->next;
    assert_non_null(c);
    return c;
}

/* ---- structure ---- */

static void test_simple(void **state)
{
    const char *msg = "From: Alice <alice@example.com>\r\n"
                      "To: bob@example.org\r\n"
                      "Subject:  Hello\r\n"
                      " world \r\n"
                      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                      "Message-ID: <1@example.com>\r\n"
                      "\r\n"
                      "Hello\r\nWorld\r\n";
    struct petrel_mime_part *root = parse(msg);
    size_t hs = pos_of(msg, "Hello\r\nWorld");
    assert_part(root, 0, hs, hs, 14, 2);
    assert_type(root, "text", "plain");
    assert_string_equal(root->encoding, "7bit");
    assert_null(root->children);
    assert_false(root->limits_hit);
    const struct petrel_mime_envelope *e = root->envelope;
    assert_non_null(e);
    assert_string_equal(e->subject, "Hello world");
    assert_string_equal(e->from, "Alice <alice@example.com>");
    assert_string_equal(e->message_id, "<1@example.com>");
    assert_null(e->sender);
    assert_null(e->cc);
    assert_string_equal(e->from_list->name, "Alice");
    assert_string_equal(e->from_list->mailbox, "alice");
    assert_string_equal(e->from_list->host, "example.com");
    /* IMAP: absent Sender and Reply-To are From. */
    assert_string_equal(e->sender_list->mailbox, "alice");
    assert_string_equal(e->reply_to_list->host, "example.com");
    assert_null(e->cc_list);
    assert_string_equal(e->to_list->mailbox, "bob");
    petrel_mime_part_free(root);
}

static void test_body_lines(void **state)
{
    struct petrel_mime_part *root = parse("Subject: x\n\na\nb");
    assert_part(root, 0, 12, 12, 3, 2);
    petrel_mime_part_free(root);
    root = parse("Subject: x\n\n");
    assert_part(root, 0, 12, 12, 0, 0);
    petrel_mime_part_free(root);
    root = parse("Subject: x\n\n\n\n");
    assert_part(root, 0, 12, 12, 2, 2);
    petrel_mime_part_free(root);
    /* No empty line: all header. */
    root = parse("Subject: x\r\nTo: y");
    assert_part(root, 0, 17, 17, 0, 0);
    petrel_mime_part_free(root);
    root = parse("");
    assert_part(root, 0, 0, 0, 0, 0);
    assert_type(root, "text", "plain");
    petrel_mime_part_free(root);
}

/* RFC 2046 section 5.1.1's example, with preamble and epilogue. */
static void test_rfc2046_example(void **state)
{
    const char *msg = "From: Nathaniel Borenstein <nsb@bellcore.com>\r\n"
                      "To: Ned Freed <ned@innosoft.com>\r\n"
                      "Date: Sun, 21 Mar 1993 23:56:48 -0800 (PST)\r\n"
                      "Subject: Sample message\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-type: multipart/mixed; boundary=\"simple boundary\"\r\n"
                      "\r\n"
                      "This is the preamble.  It is to be ignored, though it\r\n"
                      "is a handy place for composition agents to include an\r\n"
                      "explanatory note to non-MIME conformant readers.\r\n"
                      "\r\n"
                      "--simple boundary\r\n"
                      "\r\n"
                      "This is implicitly typed plain US-ASCII text.\r\n"
                      "It does NOT end with a linebreak.\r\n"
                      "--simple boundary\r\n"
                      "Content-type: text/plain; charset=us-ascii\r\n"
                      "\r\n"
                      "This is explicitly typed plain US-ASCII text.\r\n"
                      "It DOES end with a linebreak.\r\n"
                      "\r\n"
                      "--simple boundary--\r\n"
                      "\r\n"
                      "This is the epilogue.  It is also to be ignored.\r\n";
    struct petrel_mime_part *root = parse(msg);
    assert_type(root, "multipart", "mixed");
    assert_string_equal(param(root, "boundary"), "simple boundary");
    assert_int_equal(count_children(root), 2);
    const struct petrel_mime_part *a = child(root, 0), *b = child(root, 1);
    size_t a_start = pos_of(msg, "--simple boundary\r\n\r\nThis") + 19;
    size_t a_body = a_start + 2;
    size_t a_end = pos_of(msg, "linebreak.\r\n--simple") + 10;
    assert_part(a, a_start, 2, a_body, a_end - a_body, 2);
    assert_type(a, "text", "plain");
    assert_null(a->params);
    size_t b_start = a_end + 2 + 19;
    size_t b_body = pos_of(msg, "This is explicitly");
    size_t b_end = pos_of(msg, "\r\n--simple boundary--");
    assert_part(b, b_start, b_body - b_start, b_body, b_end - b_body, 2);
    assert_string_equal(param(b, "charset"), "us-ascii");
    assert_int_equal(root->body_size, strlen(msg) - root->body_offset);
    assert_int_equal(root->body_lines, 17);
    petrel_mime_part_free(root);
}

static const char nested[] = "From: Alice <alice@example.com>\r\n"
                             "To: Bob <bob@example.org>\r\n"
                             "Subject: nested\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
                             "\r\n"
                             "preamble\r\n"
                             "--outer\r\n"
                             "Content-Type: multipart/alternative; boundary=inner\r\n"
                             "\r\n"
                             "--inner\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "\r\n"
                             "plain line 1\r\n"
                             "plain line 2\r\n"
                             "--inner\r\n"
                             "Content-Type: text/html\r\n"
                             "Content-Transfer-Encoding: Quoted-Printable\r\n"
                             "\r\n"
                             "<p>html</p>\r\n"
                             "\r\n"
                             "--inner--\r\n"
                             "inner epilogue\r\n"
                             "--outer\r\n"
                             "Content-Type: message/rfc822\r\n"
                             "Content-Description: =?utf-8?q?forwarded_=E2=82=AC?=\r\n"
                             "\r\n"
                             "From: Carol <carol@example.net>\r\n"
                             "Subject: inside\r\n"
                             "\r\n"
                             "inner body\r\n"
                             "--outer--\r\n"
                             "epilogue\r\n";

/* Expected offsets of the nested message, for CRLF (nl = 2) or LF. */
static void check_nested(const char *msg, size_t nl)
{
    struct petrel_mime_part *root = parse(msg);
    size_t len = strlen(msg);
    assert_type(root, "multipart", "mixed");
    size_t root_body = pos_of(msg, "preamble");
    assert_part(root, 0, root_body, root_body, len - root_body, 27);
    assert_int_equal(count_children(root), 2);

    const struct petrel_mime_part *alt = child(root, 0);
    assert_type(alt, "multipart", "alternative");
    size_t alt_hdr = pos_of(msg, "Content-Type: multipart/alt");
    size_t alt_body = pos_of(msg, "--inner");
    size_t alt_end = pos_of(msg, "inner epilogue") + 14;
    assert_part(alt, alt_hdr, alt_body - alt_hdr, alt_body, alt_end - alt_body, 13);
    assert_int_equal(count_children(alt), 2);

    const struct petrel_mime_part *plain = child(alt, 0);
    assert_type(plain, "text", "plain");
    assert_string_equal(param(plain, "charset"), "utf-8");
    size_t plain_hdr = pos_of(msg, "Content-Type: text/plain");
    size_t plain_body = pos_of(msg, "plain line 1");
    assert_part(plain, plain_hdr, plain_body - plain_hdr, plain_body, 24 + nl, 2);

    const struct petrel_mime_part *html = child(alt, 1);
    assert_type(html, "text", "html");
    assert_string_equal(html->encoding, "quoted-printable");
    size_t html_body = pos_of(msg, "<p>");
    assert_part(html, pos_of(msg, "Content-Type: text/html"),
                html_body - pos_of(msg, "Content-Type: text/html"), html_body, 11 + nl, 1);

    const struct petrel_mime_part *rfc = child(root, 1);
    assert_type(rfc, "message", "rfc822");
    assert_string_equal(rfc->description, "forwarded \xE2\x82\xAC");
    size_t rfc_hdr = pos_of(msg, "Content-Type: message");
    size_t rfc_body = pos_of(msg, "From: Carol");
    size_t rfc_end = pos_of(msg, "inner body") + 10;
    assert_part(rfc, rfc_hdr, rfc_body - rfc_hdr, rfc_body, rfc_end - rfc_body, 4);
    assert_null(rfc->envelope);
    assert_string_equal(petrel_mime_part_embedded_envelope(rfc)->subject, "inside");
    assert_string_equal(petrel_mime_part_embedded_envelope(rfc)->from_list->mailbox, "carol");
    assert_int_equal(count_children(rfc), 1);

    const struct petrel_mime_part *inner = child(rfc, 0);
    assert_type(inner, "text", "plain");
    assert_ptr_equal(inner->envelope, petrel_mime_part_embedded_envelope(rfc));
    size_t inner_body = pos_of(msg, "inner body");
    assert_part(inner, rfc_body, inner_body - rfc_body, inner_body, 10, 1);
    assert_int_equal(inner->depth, 2);
    assert_string_equal(root->envelope->subject, "nested");
    petrel_mime_part_free(root);
}

static char *crlf_to_lf(const char *s)
{
    char *r = petrel_strdup(s), *w = r;
    for (; *s != '\0'; s++) {
        if (*s != '\r')
            *w++ = *s;
    }
    *w = '\0';
    return r;
}

static void test_nested_crlf(void **state) { check_nested(nested, 2); }

static void test_nested_lf(void **state)
{
    char *lf = crlf_to_lf(nested);
    check_nested(lf, 1);
    free(lf);
}

static void test_digest(void **state)
{
    const char *msg = "Content-Type: multipart/digest; boundary=d\n"
                      "\n"
                      "--d\n"
                      "\n"
                      "Subject: one\n"
                      "\n"
                      "first\n"
                      "--d\n"
                      "Content-Type: text/plain\n"
                      "\n"
                      "second\n"
                      "--d--\n";
    struct petrel_mime_part *root = parse(msg);
    assert_int_equal(count_children(root), 2);
    const struct petrel_mime_part *one = child(root, 0);
    assert_type(one, "message", "rfc822");
    assert_string_equal(petrel_mime_part_embedded_envelope(one)->subject, "one");
    assert_int_equal(count_children(one), 1);
    assert_type(child(one, 0), "text", "plain");
    assert_int_equal(child(one, 0)->body_size, 5);
    assert_type(child(root, 1), "text", "plain");
    petrel_mime_part_free(root);
}

static void test_missing_close(void **state)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n"
                      "\r\n"
                      "--b\r\n"
                      "\r\n"
                      "one\r\n"
                      "--b\r\n"
                      "Content-Type: multipart/related; boundary=c\r\n"
                      "\r\n"
                      "--c\r\n"
                      "\r\n"
                      "two\r\n"
                      "no end";
    struct petrel_mime_part *root = parse(msg);
    assert_int_equal(count_children(root), 2);
    const struct petrel_mime_part *rel = child(root, 1);
    assert_int_equal(count_children(rel), 1);
    const struct petrel_mime_part *two = child(rel, 0);
    assert_int_equal(two->body_size, 11);
    assert_int_equal(two->body_lines, 2);
    assert_int_equal(two->body_offset + two->body_size, strlen(msg));
    assert_int_equal(rel->body_offset + rel->body_size, strlen(msg));
    petrel_mime_part_free(root);

    /* A multipart without its boundary parameter is one leaf. */
    root = parse("Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n");
    assert_null(root->children);
    assert_int_equal(root->body_lines, 4);
    petrel_mime_part_free(root);

    /* Nor is a boundary never seen an error. */
    root = parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\nhello\r\n");
    assert_null(root->children);
    petrel_mime_part_free(root);
}

static void test_close_at_eof(void **state)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--";
    struct petrel_mime_part *root = parse(msg);
    assert_int_equal(count_children(root), 1);
    assert_int_equal(child(root, 0)->body_size, 1);
    assert_int_equal(root->body_size, strlen(msg) - root->body_offset);
    petrel_mime_part_free(root);
}

static void test_padding_and_prefix(void **state)
{
    /* Outer "abc" is a prefix of inner "abcdef", then the other way round.
     * Transport padding after a boundary is allowed. */
    const char *msg = "Content-Type: multipart/mixed; boundary=abc\r\n"
                      "\r\n"
                      "--abc  \r\n"
                      "Content-Type: multipart/mixed; boundary=abcdef\r\n"
                      "\r\n"
                      "--abcdef\t\r\n"
                      "\r\n"
                      "inner one\r\n"
                      "--abcdef\r\n"
                      "\r\n"
                      "inner two\r\n"
                      "--abcdef--\r\n"
                      "--abc\r\n"
                      "Content-Type: multipart/mixed; boundary=ab\r\n"
                      "\r\n"
                      "--ab\r\n"
                      "\r\n"
                      "x\r\n"
                      "--abc--\r\n";
    struct petrel_mime_part *root = parse(msg);
    assert_int_equal(count_children(root), 2);
    const struct petrel_mime_part *first = child(root, 0);
    assert_int_equal(count_children(first), 2);
    assert_int_equal(child(first, 1)->body_size, 9);
    const struct petrel_mime_part *second = child(root, 1);
    /* "--abc--" closes the outer one, not a part of "ab". */
    assert_int_equal(count_children(second), 1);
    assert_int_equal(child(second, 0)->body_size, 1);
    petrel_mime_part_free(root);
}

static void test_same_boundary_nested(void **state)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=b\n\n"
                      "--b\n"
                      "Content-Type: multipart/mixed; boundary=b\n\n"
                      "--b\n\nx\n"
                      "--b--\n"
                      "--b\n\ny\n"
                      "--b--\n";
    struct petrel_mime_part *root = parse(msg);
    assert_int_equal(count_children(root), 2);
    assert_int_equal(count_children(child(root, 0)), 1);
    petrel_mime_part_free(root);
}

static void test_boundary_in_header(void **state)
{
    /* A part whose header is cut by the next boundary has an empty body. */
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\n"
                      "Content-Type: text/html\r\n"
                      "--b\r\n"
                      "--b--\r\n";
    struct petrel_mime_part *root = parse(msg);
    assert_int_equal(count_children(root), 2);
    const struct petrel_mime_part *a = child(root, 0), *b = child(root, 1);
    assert_type(a, "text", "html");
    assert_int_equal(a->header_size, 23);
    assert_int_equal(a->body_size, 0);
    assert_int_equal(b->header_size, 0);
    assert_int_equal(b->body_size, 0);
    petrel_mime_part_free(root);
}

static void test_rfc822_root(void **state)
{
    struct petrel_mime_part *root = parse("Subject: outer\r\n"
                                          "Content-Type: message/rfc822\r\n\r\n"
                                          "Subject: inner\r\n\r\nx\r\n");
    assert_string_equal(root->envelope->subject, "outer");
    assert_string_equal(petrel_mime_part_embedded_envelope(root)->subject, "inner");
    assert_int_equal(count_children(root), 1);
    assert_int_equal(root->children->body_size, 3);
    assert_string_equal(root->children->envelope->subject, "inner");
    assert_null(petrel_mime_part_embedded_envelope(root->children));
    petrel_mime_part_free(root);

    root = parse(nested);
    assert_null(petrel_mime_part_embedded_envelope(root));
    assert_string_equal(petrel_mime_part_embedded_envelope(child(root, 1))->subject, "inside");
    petrel_mime_part_free(root);
}

static void test_rfc822_encoded_is_leaf(void **state)
{
    struct petrel_mime_part *root = parse("Content-Type: message/rfc822\r\n"
                                          "Content-Transfer-Encoding: base64\r\n\r\n"
                                          "U3ViamVjdDogeA0KDQp4\r\n");
    assert_null(root->children);
    assert_string_equal(root->encoding, "base64");
    petrel_mime_part_free(root);
}

static void test_content_fields(void **state)
{
    const char *msg = "Content-Type: Text/HTML (comment); CHARSET=\"ISO-8859-1\"\r\n"
                      "Content-Type: image/png\r\n"
                      "Content-ID: <part1@example>\r\n"
                      "Content-Transfer-Encoding: (c) BASE64 (x)\r\n"
                      "Content-Disposition: Attachment; FileName=\"a b.html\";\r\n"
                      "  size=42\r\n"
                      "Content-Language: en, de\r\n"
                      "Content-Location: http://example.com/a\r\n"
                      "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
                      "Content-Description: =?iso-8859-1?q?caf=E9?=\r\n"
                      "\r\n";
    struct petrel_mime_part *root = parse(msg);
    assert_type(root, "text", "html");
    assert_string_equal(param(root, "charset"), "ISO-8859-1");
    assert_string_equal(root->id, "<part1@example>");
    assert_string_equal(root->encoding, "base64");
    assert_string_equal(root->disposition, "attachment");
    assert_int_equal(root->disposition_param_count, 2);
    assert_string_equal(root->disposition_params[0].name, "filename");
    assert_string_equal(root->disposition_params[0].value, "a b.html");
    assert_string_equal(root->disposition_params[1].value, "42");
    assert_string_equal(root->language, "en, de");
    assert_string_equal(root->location, "http://example.com/a");
    assert_string_equal(root->md5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
    assert_string_equal(root->description, "caf\xC3\xA9");
    petrel_mime_part_free(root);

    /* An invalid Content-Type means text/plain (RFC 2045 section 5.2). */
    root = parse("Content-Type: garbage\r\n\r\nx");
    assert_type(root, "text", "plain");
    petrel_mime_part_free(root);
}

static void test_malformed(void **state)
{
    static const char msg[] = "From \x00 junk\r\n"
                              "::::\r\n"
                              " continuation first\r\n"
                              "Subj\xE9\xFF: 8bit \xE9\r\n"
                              "Subject: a\x00"
                              "b\r\n"
                              "Content-Type: multipart/mixed; boundary=\"x\xE9y\"\r\n"
                              "\r\n"
                              "--x\xE9y\r\n"
                              "Content-Type: ;;;===\r\n"
                              "\r\n"
                              "\x00\x00\r\n"
                              "--x\xE9y--\r\n";
    struct petrel_mime_part *root = parse_len(msg, sizeof(msg) - 1, NULL, false);
    assert_string_equal(root->envelope->subject, "a b");
    assert_int_equal(count_children(root), 1);
    assert_type(child(root, 0), "text", "plain");
    assert_int_equal(child(root, 0)->body_size, 2);
    petrel_mime_part_free(root);

    /* Binary garbage never fails. */
    char junk[4096];
    unsigned int seed = 7;
    for (size_t i = 0; i < sizeof(junk); i++) {
        seed = seed * 1103515245u + 12345u;
        junk[i] = (char)(seed >> 16);
    }
    root = parse_len(junk, sizeof(junk), NULL, false);
    petrel_mime_part_free(root);
}

static void test_finish_twice(void **state)
{
    struct petrel_mime_parser *p = petrel_mime_parser_new(NULL);
    petrel_mime_parser_feed(p, "x", 1);
    struct petrel_mime_part *root, *again = NULL;
    const char *error = NULL;
    assert_int_equal(petrel_mime_parser_finish(p, &root, &error), 0);
    assert_int_equal(petrel_mime_parser_finish(p, &again, &error), -1);
    assert_non_null(error);
    assert_null(again);
    petrel_mime_parser_feed(p, "y", 1); /* ignored */
    petrel_mime_parser_free(p);
    petrel_mime_part_free(root);

    /* Freed without finishing: the tree goes with the parser. */
    p = petrel_mime_parser_new(NULL);
    petrel_mime_parser_feed(p, nested, sizeof(nested) - 1);
    petrel_mime_parser_free(p);
}

/* ---- limits ---- */

static void append(struct petrel_buf *b, const char *s)
{
    assert_true(petrel_buf_append(b, s, strlen(s)));
}

static void test_limit_depth(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 1024 * 1024);
    for (int i = 0; i < 100; i++) {
        petrel_buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i,
                          i);
    }
    append(&b, "\r\ndeep\r\n");
    for (int i = 99; i >= 0; i--)
        petrel_buf_printf(&b, "--b%d--\r\n", i);
    struct petrel_mime_part *root = parse_len(petrel_buf_head(&b), b.len, NULL, true);
    assert_true(root->limits_hit);
    unsigned int depth = 0;
    const struct petrel_mime_part *p = root;
    while (p->children != NULL) {
        assert_int_equal(count_children(p), 1);
        p = p->children;
        depth++;
    }
    assert_int_equal(depth, PETREL_MIME_DEFAULT_MAX_DEPTH);
    assert_type(p, "multipart", "mixed");
    /* The leaf holds the deeper levels; the outer ones still close. */
    assert_true(p->body_lines > 100);
    assert_int_equal(root->body_offset + root->body_size, b.len);
    petrel_mime_part_free(root);

    struct petrel_mime_limits lim = {.max_depth = 2};
    root = parse_len(petrel_buf_head(&b), b.len, &lim, true);
    assert_true(root->limits_hit);
    assert_int_equal(root->children->children->depth, 2);
    assert_null(root->children->children->children);
    petrel_mime_part_free(root);
    petrel_buf_free(&b);
}

static void test_limit_parts(void **state)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 1024 * 1024);
    append(&b, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
    for (int i = 0; i < 5000; i++)
        petrel_buf_printf(&b, "--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i);
    append(&b, "--p--\r\n");
    struct petrel_mime_part *root = parse_len(petrel_buf_head(&b), b.len, NULL, true);
    assert_true(root->limits_hit);
    assert_int_equal(count_children(root), PETREL_MIME_DEFAULT_MAX_PARTS - 1);
    assert_int_equal(root->body_offset + root->body_size, b.len);
    petrel_mime_part_free(root);
    petrel_buf_free(&b);
}

/* Bytes the parser holds while reading 1 MB of header: bounded by the
 * header cap, not by the input. Measured where AddressSanitizer counts. */
static void check_header_memory(const char *msg, size_t len)
{
#ifdef HAVE_ASAN
    size_t before = __sanitizer_get_current_allocated_bytes();
    struct petrel_mime_parser *p = petrel_mime_parser_new(NULL);
    for (size_t off = 0; off < len; off += 4096)
        petrel_mime_parser_feed(p, msg + off, len - off < 4096 ? len - off : 4096);
    size_t during = __sanitizer_get_current_allocated_bytes() - before;
    petrel_mime_parser_free(p);
    if (during > PETREL_MIME_DEFAULT_MAX_HEADER_SIZE + 16 * 1024)
        fail_msg("parser holds %zu bytes", during);
#else
    (void)msg;
    (void)len;
#endif
}

static void test_limit_header(void **state)
{
    /* One 1 MB field: cut to the field cap, later fields still seen. */
    size_t big = 1024 * 1024;
    struct petrel_buf b;
    petrel_buf_init(&b, 3 * big);
    append(&b, "Subject: ");
    for (size_t i = 0; i < big / 64; i++)
        append(&b, "0123456789012345678901234567890123456789012345678901234567890\r\n ");
    append(&b, "end\r\nContent-Type: text/html\r\n\r\nbody\r\n");
    check_header_memory(petrel_buf_head(&b), b.len);
    struct petrel_mime_part *root = parse_len(petrel_buf_head(&b), b.len, NULL, true);
    assert_true(root->limits_hit);
    assert_type(root, "text", "html");
    assert_true(strlen(root->envelope->subject) <= PETREL_MIME_DEFAULT_MAX_FIELD_SIZE);
    assert_int_equal(root->body_size, 6);
    assert_int_equal(root->header_size, b.len - 6);
    petrel_mime_part_free(root);

    /* 1 MB of fields: the header cap drops the rest, offsets stay exact. */
    petrel_buf_reset(&b);
    for (size_t i = 0; i < big / 32; i++)
        append(&b, "X-Filler: 0123456789abcdefghij\r\n");
    append(&b, "Content-Type: text/html\r\n\r\nbody");
    check_header_memory(petrel_buf_head(&b), b.len);
    root = parse_len(petrel_buf_head(&b), b.len, NULL, true);
    assert_true(root->limits_hit);
    assert_type(root, "text", "plain");
    assert_int_equal(root->body_size, 4);
    assert_int_equal(root->body_offset, b.len - 4);
    petrel_mime_part_free(root);

    /* A long line with no line feed at all. */
    petrel_buf_reset(&b);
    for (size_t i = 0; i < big / 32; i++)
        append(&b, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    root = parse_len(petrel_buf_head(&b), b.len, NULL, true);
    assert_true(root->limits_hit);
    assert_int_equal(root->header_size, b.len);
    petrel_mime_part_free(root);
    petrel_buf_free(&b);
}

static void test_limit_addresses(void **state)
{
    /* Address lists cost more than their bytes: a budget per parse. */
    struct petrel_buf b;
    petrel_buf_init(&b, 1024 * 1024);
    append(&b, "To: ");
    for (int i = 0; i < 20000; i++)
        append(&b, "a@b,");
    append(&b, "\r\nCc: c@d\r\n\r\n");
    struct petrel_mime_part *root = parse_len(petrel_buf_head(&b), b.len, NULL, true);
    assert_true(root->limits_hit);
    unsigned int n = 0;
    for (const struct petrel_mime_address *a = root->envelope->to_list; a != NULL; a = a->next)
        n++;
    assert_int_equal(n, 10000);
    assert_null(root->envelope->cc_list);
    assert_string_equal(root->envelope->cc, "c@d");
    petrel_mime_part_free(root);
    petrel_buf_free(&b);

    /* Tight limits: a cut field drops its continuation lines. */
    struct petrel_mime_limits lim = {.max_field_size = 12, .max_header_size = 64};
    root = parse_len("Subject: 0123456789\r\n more\r\nTo: a@b\r\n\r\nx", 40, &lim, false);
    assert_true(root->limits_hit);
    assert_string_equal(root->envelope->subject, "012");
    assert_string_equal(root->envelope->to, "a@b");
    assert_int_equal(root->body_offset, 39);
    petrel_mime_part_free(root);
}

/* ---- RFC 2047 ---- */

static void check_decode(const char *in, const char *expect)
{
    char *out = petrel_mime_decode_header(in, 1024);
    if (strcmp(out, expect) != 0)
        fail_msg("decode '%s': got '%s', expected '%s'", in, out, expect);
    free(out);
}

static void test_rfc2047_section8(void **state)
{
    check_decode("(=?ISO-8859-1?Q?a?=)", "(a)");
    check_decode("(=?ISO-8859-1?Q?a?= b)", "(a b)");
    check_decode("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)");
    check_decode("(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)");
    check_decode("(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)");
    check_decode("(=?ISO-8859-1?Q?a_b?=)", "(a b)");
    check_decode("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)");
    check_decode("=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", "Keith Moore <moore@cs.utk.edu>");
    check_decode("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>",
                 "Keld J\xC3\xB8rn Simonsen <keld@dkuug.dk>");
    check_decode("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
                 "Andr\xC3\xA9 Pirard <PIRARD@vm1.ulg.ac.be>");
    check_decode("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
                 "    =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
                 "If you can read this you understand the example.");
    check_decode("Nathaniel Borenstein <nsb@thumper.bellcore.com>\r\n"
                 "    (=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)",
                 "Nathaniel Borenstein <nsb@thumper.bellcore.com>\r\n    ("
                 "\xd7\x9d\xd7\x95\xd7\x9c\xd7\xa9 \xd7\x9f\xd7\x91 "
                 "\xd7\x99\xd7\x9c\xd7\x98\xd7\xa4\xd7\xa0)");
}

static void test_rfc2047_edge(void **state)
{
    /* Unknown charset and broken encodings stay as written. */
    check_decode("=?x-unknown?Q?a?= b", "=?x-unknown?Q?a?= b");
    check_decode("=?utf-8?B?@@@@?=", "=?utf-8?B?@@@@?=");
    check_decode("=?utf-8?Q?bad=ZZ?=", "=?utf-8?Q?bad=ZZ?=");
    check_decode("=?utf-8?X?abc?=", "=?utf-8?X?abc?=");
    check_decode("=?utf-8?Q?no end", "=?utf-8?Q?no end");
    check_decode("=?utf-8//TRANSLIT?Q?a?=", "=?utf-8//TRANSLIT?Q?a?=");
    check_decode("plain text", "plain text");
    check_decode("", "");
    /* A character split across two words, and a language tag. */
    check_decode("=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "\xE2\x82\xAC");
    check_decode("=?utf-8*en?Q?hi?=", "hi");
    check_decode("=?utf-8?Q?a?= b =?utf-8?Q?c?=", "a b c");
    check_decode("=?utf-8?q?"
                 "?=x",
                 "x");
    /* Raw 8-bit that is not UTF-8 becomes U+FFFD; UTF-8 stays. */
    check_decode("caf\xE9 \xC3\xA9", "caf\xEF\xBF\xBD \xC3\xA9");
    /* The cap keeps whole characters. */
    char *out = petrel_mime_decode_header("=?utf-8?B?4oKs4oKs?=", 4);
    assert_string_equal(out, "\xE2\x82\xAC");
    free(out);
    out = petrel_mime_decode_header("abcdef", 3);
    assert_string_equal(out, "abc");
    free(out);
}

/* ---- RFC 2231 ---- */

static void test_rfc2231(void **state)
{
    struct petrel_mime_part *root =
        parse("Content-Type: message/external-body; access-type=URL;\r\n"
              "  URL*0=\"ftp://\";\r\n"
              "  URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\"\r\n\r\n");
    assert_string_equal(param(root, "access-type"), "URL");
    assert_string_equal(param(root, "url"),
                        "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar");
    assert_int_equal(root->param_count, 2);
    petrel_mime_part_free(root);

    root = parse("Content-Type: application/x-stuff;\r\n"
                 "  title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A\r\n\r\n");
    assert_string_equal(param(root, "title"), "This is ***fun***");
    petrel_mime_part_free(root);

    root = parse("Content-Type: application/x-stuff;\r\n"
                 "  title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
                 "  title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
                 "  title*2=\"isn't it!\"\r\n\r\n");
    assert_string_equal(param(root, "title"), "This is even more ***fun*** isn't it!");
    petrel_mime_part_free(root);

    root = parse("Content-Type: text/plain; name=\"old.txt\"; name*=utf-8''%E2%82%AC.txt\r\n"
                 "Content-Disposition: attachment; filename*0*=iso-8859-1''caf%E9;\r\n"
                 " filename*1=\".txt\"; x*=unknown-cs''%E9\r\n\r\n");
    assert_string_equal(param(root, "name"), "\xE2\x82\xAC.txt");
    assert_int_equal(root->param_count, 1);
    assert_string_equal(root->disposition_params[0].value, "caf\xC3\xA9.txt");
    /* Unknown charset: the raw bytes are kept. */
    assert_string_equal(root->disposition_params[1].value, "\xE9");
    petrel_mime_part_free(root);

    /* Encoded words in a plain parameter (common though not allowed). */
    root = parse("Content-Type: text/plain; name=\"=?utf-8?B?4oKs?=.txt\"\r\n\r\n");
    assert_string_equal(param(root, "name"), "\xE2\x82\xAC.txt");
    petrel_mime_part_free(root);
}

/* ---- addresses ---- */

static char *addresses(const char *value)
{
    struct petrel_mime_address *list = petrel_mime_parse_addresses(value, 0);
    struct petrel_buf out;
    petrel_buf_init(&out, 64 * 1024);
    print_addresses(&out, "", list);
    petrel_mime_addresses_free(list);
    char *s = petrel_strndup(petrel_buf_head(&out), out.len);
    petrel_buf_free(&out);
    return s;
}

static void check_addresses(const char *value, const char *expect)
{
    char *got = addresses(value);
    if (strcmp(got, expect) != 0)
        fail_msg("addresses '%s': got '%s', expected '%s'", value, got, expect);
    free(got);
}

static void test_addresses(void **state)
{
    check_addresses("a@b.c", " [(NIL|NIL|a|b.c)]");
    check_addresses("John Doe <john.doe@example.com>, jane@example.org (Jane)",
                    " [(John Doe|NIL|john.doe|example.com)(NIL|NIL|jane|example.org)]");
    check_addresses("\"Doe, John\" <jd@x.y>", " [(Doe, John|NIL|jd|x.y)]");
    check_addresses("\"q\\\"x\" <a@b>", " [(q\"x|NIL|a|b)]");
    check_addresses("<@route1,@route2:user@host>", " [(NIL|@route1,@route2|user|host)]");
    check_addresses("undisclosed-recipients:;", " [(NIL|NIL|undisclosed-recipients|NIL)"
                                                "(NIL|NIL|NIL|NIL)]");
    check_addresses("Team: a@b, \"C\" <c@d>; e@f",
                    " [(NIL|NIL|Team|NIL)(NIL|NIL|a|b)(C|NIL|c|d)(NIL|NIL|NIL|NIL)"
                    "(NIL|NIL|e|f)]");
    check_addresses("Group: a@b", " [(NIL|NIL|Group|NIL)(NIL|NIL|a|b)(NIL|NIL|NIL|NIL)]");
    check_addresses("=?utf-8?Q?J=C3=B6rg?= Doe <j@x>", " [(J\xC3\xB6rg Doe|NIL|j|x)]");
    check_addresses("\"=?iso-8859-1?q?Andr=E9?=\" <a@x>", " [(Andr\xC3\xA9|NIL|a|x)]");
    check_addresses("=?utf-8?B?4oKs?= =?utf-8?B?4oKs?= <e@x>",
                    " [(\xE2\x82\xAC\xE2\x82\xAC|NIL|e|x)]");
    check_addresses("(comment) a (c2) @ (c3) b . c (c4)", " [(NIL|NIL|a|b.c)]");
    check_addresses("\"john doe\"@example.com", " [(NIL|NIL|john doe|example.com)]");
    check_addresses("user@[192.0.2.1]", " [(NIL|NIL|user|[192.0.2.1])]");
    check_addresses("root", " [(NIL|NIL|root|)]");
    check_addresses("<>", " [(NIL|NIL||)]");
    check_addresses(": a@b;", " [(NIL|NIL||NIL)(NIL|NIL|a|b)(NIL|NIL|NIL|NIL)]");
    check_addresses("", " []");
    check_addresses(",,,", " []");
    /* Garbage: anything, as long as it does not crash or stall. */
    const char *junk[] = {"<<<>>>",  "\"unterminated", "(unterminated", "a@",
                          "@",       "@@@:;;<",        "a:b:c;d;",      "<a@b",
                          "x <@r:>", "[a@b]",          "\\\\",          "a\"b\"@c d\"e"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        free(addresses(junk[i]));
    struct petrel_mime_address *l = petrel_mime_parse_addresses("a@b, c@d, e@f", 2);
    assert_non_null(l->next);
    assert_null(l->next->next);
    petrel_mime_addresses_free(l);
}

/* ---- charsets ---- */

static void check_charset(const char *cs, const char *in, size_t len, const char *expect)
{
    char *out = petrel_charset_to_utf8(cs, in, len, 1024);
    assert_non_null(out);
    if (strcmp(out, expect) != 0)
        fail_msg("%s: got '%s', expected '%s'", cs, out, expect);
    free(out);
}

static void test_charsets(void **state)
{
    check_charset("ISO-8859-1", "caf\xE9", 4, "caf\xC3\xA9");
    check_charset("iso-8859-15", "\xA4", 1, "\xE2\x82\xAC");
    check_charset("windows-1252", "\x80 \x93q\x94", 5, "\xE2\x82\xAC \xE2\x80\x9Cq\xE2\x80\x9D");
    check_charset("koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", 6,
                  "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    check_charset("utf-8",
                  "a\xFF"
                  "b\xC3",
                  4,
                  "a\xEF\xBF\xBD"
                  "b\xEF\xBF\xBD");
    check_charset("UTF-8", "\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    check_charset("us-ascii", "plain", 5, "plain");
    /* Invalid bytes in a multibyte charset are replaced, not fatal. */
    char *out = petrel_charset_to_utf8("shift_jis", "a\x81", 2, 1024);
    assert_non_null(out);
    assert_string_equal(out, "a\xEF\xBF\xBD");
    free(out);
    /* Unknown, or names that could steer iconv: NULL. */
    assert_null(petrel_charset_to_utf8("x-no-such-charset", "a", 1, 1024));
    assert_null(petrel_charset_to_utf8("utf-8//TRANSLIT", "a", 1, 1024));
    assert_null(petrel_charset_to_utf8("", "a", 1, 1024));
    /* The cap. */
    out = petrel_charset_to_utf8("iso-8859-1", "\xE9\xE9\xE9", 3, 5);
    assert_string_equal(out, "\xC3\xA9\xC3\xA9");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_body_lines),
        cmocka_unit_test(test_rfc2046_example),
        cmocka_unit_test(test_nested_crlf),
        cmocka_unit_test(test_nested_lf),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_missing_close),
        cmocka_unit_test(test_close_at_eof),
        cmocka_unit_test(test_padding_and_prefix),
        cmocka_unit_test(test_same_boundary_nested),
        cmocka_unit_test(test_boundary_in_header),
        cmocka_unit_test(test_rfc822_root),
        cmocka_unit_test(test_rfc822_encoded_is_leaf),
        cmocka_unit_test(test_content_fields),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_finish_twice),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_parts),
        cmocka_unit_test(test_limit_header),
        cmocka_unit_test(test_limit_addresses),
        cmocka_unit_test(test_rfc2047_section8),
        cmocka_unit_test(test_rfc2047_edge),
        cmocka_unit_test(test_rfc2231),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_charsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
