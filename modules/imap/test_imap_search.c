/* SEARCH: every key, AND/OR/NOT, sequence sets, errors, and text matches
 * on the messages in tests/search (decoded bodies and headers, charsets,
 * case folding, a match across the 64 KiB read boundary). */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <petrel/storage.h>

#include "imap_search.h"
#include "imap_search_private.h"
#include "search_args.h"

#ifndef SEARCH_MSG_DIR
#define SEARCH_MSG_DIR "modules/imap/tests/search"
#endif

/* 2003-07-01 00:00:00 UTC */
#define JUL1 1057017600

static struct imap_search_msg base_msg(void)
{
    struct imap_search_msg m = {
        .seq = 3,
        .uid = 30,
        .max_seq = 5,
        .max_uid = 50,
        .keywords = "",
        .size = 1000,
        .internal_date = JUL1 + 3600,
        .fd = -1,
    };
    return m;
}

static enum imap_search_error compile(const char *text, struct imap_search **s_r,
                                      const char **error_r)
{
    struct search_args a;
    assert_true(search_args_build(text, strlen(text), &a));
    enum imap_search_error r = imap_search_compile(a.args, a.count, s_r, error_r);
    search_args_free(&a);
    return r;
}

/* 1 or 0 for a search that must compile. */
static int match(const char *text, const struct imap_search_msg *m)
{
    struct imap_search *s;
    const char *error = NULL;
    enum imap_search_error r = compile(text, &s, &error);
    if (r != IMAP_SEARCH_OK)
        fail_msg("%s: %s", text, error);
    int res = imap_search_match(s, m);
    imap_search_free(s);
    return res;
}

static void expect_error(const char *text, enum imap_search_error want)
{
    struct imap_search *s = NULL;
    const char *error = NULL;
    enum imap_search_error r = compile(text, &s, &error);
    if (r != want)
        fail_msg("%s: got %d", text, (int)r);
    assert_null(s);
    assert_non_null(error);
}

static void test_flags(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    static const struct {
        const char *set, *clear;
        uint32_t flag;
    } f[] = {
        {"ANSWERED", "UNANSWERED", PETREL_STORAGE_ANSWERED},
        {"DELETED", "UNDELETED", PETREL_STORAGE_DELETED},
        {"DRAFT", "UNDRAFT", PETREL_STORAGE_DRAFT},
        {"FLAGGED", "UNFLAGGED", PETREL_STORAGE_FLAGGED},
        {"SEEN", "UNSEEN", PETREL_STORAGE_SEEN},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        m.flags = 0;
        assert_int_equal(match(f[i].set, &m), 0);
        assert_int_equal(match(f[i].clear, &m), 1);
        m.flags = f[i].flag;
        assert_int_equal(match(f[i].set, &m), 1);
        assert_int_equal(match(f[i].clear, &m), 0);
        m.flags = ~f[i].flag & 0x1Fu;
        assert_int_equal(match(f[i].set, &m), 0);
    }
    assert_int_equal(match("ALL", &m), 1);
    assert_int_equal(match("all seen", &m), 0); /* keys are not case-sensitive */
}

static void test_keywords(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    m.keywords = "$Forwarded Work $Junk";
    assert_int_equal(match("KEYWORD work", &m), 1);
    assert_int_equal(match("KEYWORD $junk", &m), 1);
    assert_int_equal(match("KEYWORD Wor", &m), 0);
    assert_int_equal(match("UNKEYWORD Work", &m), 0);
    assert_int_equal(match("UNKEYWORD Home", &m), 1);
    m.keywords = "";
    assert_int_equal(match("KEYWORD Work", &m), 0);
    m.keywords = NULL;
    assert_int_equal(match("UNKEYWORD Work", &m), 1);
}

static void test_recent(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    m.recent = true;
    assert_int_equal(match("RECENT", &m), 1);
    assert_int_equal(match("NEW", &m), 1);
    assert_int_equal(match("OLD", &m), 0);
    m.flags = PETREL_STORAGE_SEEN;
    assert_int_equal(match("NEW", &m), 0);
    m.recent = false;
    assert_int_equal(match("RECENT", &m), 0);
    assert_int_equal(match("OLD", &m), 1);
    m.flags = 0;
    assert_int_equal(match("NEW", &m), 0);
}

static void test_sizes(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    assert_int_equal(match("LARGER 999", &m), 1);
    assert_int_equal(match("LARGER 1000", &m), 0);
    assert_int_equal(match("SMALLER 1001", &m), 1);
    assert_int_equal(match("SMALLER 1000", &m), 0);
    assert_int_equal(match("LARGER 4294967295", &m), 0);
    expect_error("LARGER 4294967296", IMAP_SEARCH_BAD);
    expect_error("LARGER -1", IMAP_SEARCH_BAD);
    expect_error("SMALLER", IMAP_SEARCH_BAD);
    expect_error("SMALLER \"10\"", IMAP_SEARCH_BAD);
}

static void test_internal_dates(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    m.internal_date = JUL1; /* the first second of the UTC day */
    assert_int_equal(match("ON 1-Jul-2003", &m), 1);
    assert_int_equal(match("SINCE 1-Jul-2003", &m), 1);
    assert_int_equal(match("BEFORE 1-Jul-2003", &m), 0);
    assert_int_equal(match("BEFORE 2-Jul-2003", &m), 1);
    m.internal_date = JUL1 - 1;
    assert_int_equal(match("ON 30-Jun-2003", &m), 1);
    assert_int_equal(match("BEFORE 1-Jul-2003", &m), 1);
    assert_int_equal(match("SINCE 1-Jul-2003", &m), 0);
    m.internal_date = JUL1 + 86399;
    assert_int_equal(match("ON \"1-Jul-2003\"", &m), 1);
    m.internal_date = -1; /* 1969-12-31 */
    assert_int_equal(match("ON 31-Dec-1969", &m), 1);
    expect_error("ON 31-Foo-2003", IMAP_SEARCH_BAD);
    expect_error("SINCE yesterday", IMAP_SEARCH_BAD);
    expect_error("BEFORE", IMAP_SEARCH_BAD);
}

static void test_sequence_sets(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg(); /* seq 3 of 5, uid 30 of 50 */
    assert_int_equal(match("3", &m), 1);
    assert_int_equal(match("1:2", &m), 0);
    assert_int_equal(match("1,3", &m), 1);
    assert_int_equal(match("4:*", &m), 0);
    assert_int_equal(match("*:2", &m), 1); /* 2:5 */
    assert_int_equal(match("5:*", &m), 0);
    assert_int_equal(match("*", &m), 0);
    m.seq = 5;
    assert_int_equal(match("*", &m), 1);
    assert_int_equal(match("4:*", &m), 1);
    assert_int_equal(match("UID 30", &m), 1);
    assert_int_equal(match("UID 31:*", &m), 0);
    assert_int_equal(match("UID 1:29,31", &m), 0);
    assert_int_equal(match("uid 29:31", &m), 1);
    m.uid = 50;
    assert_int_equal(match("UID *", &m), 1);
    assert_int_equal(match("UID 60:*", &m), 1); /* n:* always holds the last */
    expect_error("0", IMAP_SEARCH_BAD);
    expect_error("1:", IMAP_SEARCH_BAD);
    expect_error("UID", IMAP_SEARCH_BAD);
    expect_error("UID foo", IMAP_SEARCH_BAD);
    expect_error("UID \"1\"", IMAP_SEARCH_BAD);
}

/* RFC 5182 "$" and RFC 5032 OLDER / YOUNGER: UID sets bound after the
 * compile; unbound they match nothing. */
static int match_bound(const char *text, const struct imap_search_msg *m,
                       const struct petrel_storage_uid_range *saved, size_t nsaved,
                       const struct imap_search_date *dates, size_t ndates, int64_t now)
{
    struct imap_search *s;
    const char *error = NULL;
    if (compile(text, &s, &error) != IMAP_SEARCH_OK)
        fail_msg("%s: %s", text, error);
    if (saved != NULL)
        imap_search_bind_saved(s, saved, nsaved);
    if (dates != NULL)
        imap_search_bind_within(s, now, dates, ndates);
    int res = imap_search_match(s, m);
    imap_search_free(s);
    return res;
}

static void test_late_sets(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg(); /* UID 30 */
    const struct petrel_storage_uid_range with[] = {{1, 3}, {10, 12}, {29, 31}, {40, 40}};
    const struct petrel_storage_uid_range without[] = {{1, 29}, {31, 50}};
    assert_int_equal(match("$", &m), 0);
    assert_int_equal(match_bound("$", &m, with, 4, NULL, 0, 0), 1);
    assert_int_equal(match_bound("UID $", &m, with, 4, NULL, 0, 0), 1);
    assert_int_equal(match_bound("$", &m, without, 2, NULL, 0, 0), 0);
    assert_int_equal(match_bound("NOT $", &m, without, 2, NULL, 0, 0), 1);
    assert_int_equal(match_bound("$", &m, with, 0, NULL, 0, 0), 0);
    const struct imap_search_date dates[] = {{10, 1000}, {30, 5000}, {40, 9000}};
    assert_int_equal(match_bound("OLDER 5000", &m, NULL, 0, dates, 3, 10000), 1);
    assert_int_equal(match_bound("OLDER 5001", &m, NULL, 0, dates, 3, 10000), 0);
    assert_int_equal(match_bound("YOUNGER 5001", &m, NULL, 0, dates, 3, 10000), 1);
    assert_int_equal(match_bound("YOUNGER 5000", &m, NULL, 0, dates, 3, 10000), 0);
    assert_int_equal(match_bound("OR OLDER 1 $", &m, without, 2, dates, 3, 10000), 1);
    expect_error("OLDER 0", IMAP_SEARCH_BAD);
    expect_error("YOUNGER", IMAP_SEARCH_BAD);
    expect_error("OLDER -1", IMAP_SEARCH_BAD);
    expect_error("YOUNGER 4294967296", IMAP_SEARCH_BAD);
}

static void test_logic(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    m.flags = PETREL_STORAGE_SEEN;
    assert_int_equal(match("SEEN FLAGGED", &m), 0);
    assert_int_equal(match("SEEN UNFLAGGED", &m), 1);
    assert_int_equal(match("OR FLAGGED SEEN", &m), 1);
    assert_int_equal(match("OR FLAGGED DELETED", &m), 0);
    assert_int_equal(match("NOT SEEN", &m), 0);
    assert_int_equal(match("NOT NOT SEEN", &m), 1);
    assert_int_equal(match("(SEEN UNDELETED) (LARGER 10)", &m), 1);
    assert_int_equal(match("OR (SEEN FLAGGED) (UNSEEN 3)", &m), 0);
    assert_int_equal(match("OR (SEEN FLAGGED) NOT (UNSEEN 4)", &m), 1);
    assert_int_equal(match("NOT OR FLAGGED ((DELETED))", &m), 1);
    assert_int_equal(match("OR OR DRAFT DELETED OR FLAGGED 3", &m), 1);
    expect_error("OR SEEN", IMAP_SEARCH_BAD);
    expect_error("NOT", IMAP_SEARCH_BAD);
    expect_error("()", IMAP_SEARCH_BAD);
    expect_error("SEEN ()", IMAP_SEARCH_BAD);
}

static void test_bad_syntax(void **state)
{
    (void)state;
    expect_error("", IMAP_SEARCH_BAD);
    expect_error("FOO", IMAP_SEARCH_BAD);
    expect_error("SEEN FOO", IMAP_SEARCH_BAD);
    expect_error("\"SEEN\"", IMAP_SEARCH_BAD);
    expect_error("NIL", IMAP_SEARCH_BAD);
    expect_error("FROM", IMAP_SEARCH_BAD);
    expect_error("FROM (a)", IMAP_SEARCH_BAD);
    expect_error("HEADER Subject", IMAP_SEARCH_BAD);
    expect_error("HEADER \"\" x", IMAP_SEARCH_BAD);
    expect_error("KEYWORD", IMAP_SEARCH_BAD);
    expect_error("KEYWORD \"two words\"", IMAP_SEARCH_BAD);
    expect_error("KEYWORD (x)", IMAP_SEARCH_BAD);
    /* Nesting and size are bounded. */
    char deep[200];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        deep[n++] = '(';
    memcpy(deep + n, "SEEN", 4);
    n += 4;
    for (int i = 0; i < 40; i++)
        deep[n++] = ')';
    deep[n] = '\0';
    expect_error(deep, IMAP_SEARCH_BAD);
    char many[65 * 12 + 1];
    n = 0;
    for (int i = 0; i < 65; i++) {
        memcpy(many + n, "BODY xx ", 8);
        n += 8;
    }
    many[n] = '\0';
    expect_error(many, IMAP_SEARCH_BAD);
    char *long_needle = malloc(1100);
    memcpy(long_needle, "BODY ", 5);
    memset(long_needle + 5, 'a', 1030);
    long_needle[1035] = '\0';
    expect_error(long_needle, IMAP_SEARCH_BAD);
    free(long_needle);
    struct imap_search_msg m = base_msg();
    assert_int_equal(match("((((SEEN))))", &m), 0);
}

static void test_charset(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    assert_int_equal(match("CHARSET UTF-8 ALL", &m), 1);
    assert_int_equal(match("CHARSET us-ascii ALL", &m), 1);
    assert_int_equal(match("CHARSET \"utf-8\" SEEN", &m), 0);
    expect_error("CHARSET ISO-8859-1 ALL", IMAP_SEARCH_BADCHARSET);
    expect_error("CHARSET KOI8-R BODY x", IMAP_SEARCH_BADCHARSET);
    expect_error("CHARSET", IMAP_SEARCH_BAD);
    expect_error("CHARSET UTF-8", IMAP_SEARCH_BAD);
    expect_error("ALL CHARSET UTF-8", IMAP_SEARCH_BAD);
}

static unsigned needs(const char *text)
{
    struct imap_search *s;
    const char *error;
    assert_int_equal(compile(text, &s, &error), IMAP_SEARCH_OK);
    unsigned n = imap_search_needs(s);
    imap_search_free(s);
    return n;
}

static void test_needs(void **state)
{
    (void)state;
    assert_int_equal(needs("SEEN OR 1:3 UID 5 LARGER 3 KEYWORD x SINCE 1-Jan-2000"), 0);
    assert_int_equal(needs("FROM x"), IMAP_SEARCH_NEEDS_HEADER);
    assert_int_equal(needs("NOT HEADER X-Foo y"), IMAP_SEARCH_NEEDS_HEADER);
    assert_int_equal(needs("SENTON 1-Jan-2000"), IMAP_SEARCH_NEEDS_HEADER);
    assert_int_equal(needs("OR SEEN (BODY x)"), IMAP_SEARCH_NEEDS_HEADER | IMAP_SEARCH_NEEDS_FILE);
    assert_int_equal(needs("TEXT x"), IMAP_SEARCH_NEEDS_HEADER | IMAP_SEARCH_NEEDS_FILE);
}

/* ---- text keys on the messages of tests/search ---- */

struct loaded {
    struct imap_search_msg m;
    char header[256 * 1024];
};

/* The message's file, and its header as the caller would pass it. */
static struct loaded *load(const char *name, bool with_header)
{
    struct loaded *l = calloc(1, sizeof(*l));
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", SEARCH_MSG_DIR, name);
    l->m = base_msg();
    l->m.fd = open(path, O_RDONLY);
    assert_true(l->m.fd >= 0);
    ssize_t n = pread(l->m.fd, l->header, sizeof(l->header) - 1, 0);
    assert_true(n > 0);
    char *end = memmem(l->header, (size_t)n, "\r\n\r\n", 4);
    assert_non_null(end);
    if (with_header) {
        l->m.header = l->header;
        l->m.header_len = (size_t)(end + 4 - l->header);
    }
    return l;
}

static void unload(struct loaded *l)
{
    close(l->m.fd);
    free(l);
}

/* The same answer with the header given and with the file only. */
static int text_match(const char *file, const char *text)
{
    struct loaded *a = load(file, true), *b = load(file, false);
    int ra = match(text, &a->m), rb = match(text, &b->m);
    if (ra != rb)
        fail_msg("%s on %s: %d with header, %d without", text, file, ra, rb);
    unload(a);
    unload(b);
    return ra;
}

static void test_headers_plain(void **state)
{
    (void)state;
    assert_int_equal(text_match("plain.eml", "FROM alice"), 1);
    assert_int_equal(text_match("plain.eml", "FROM \"ALICE EXAMPLE\""), 1);
    assert_int_equal(text_match("plain.eml", "FROM bob"), 0);
    assert_int_equal(text_match("plain.eml", "TO carol@example.net"), 1); /* folded */
    assert_int_equal(text_match("plain.eml", "CC dave"), 1);
    assert_int_equal(text_match("plain.eml", "BCC eve@"), 1);
    assert_int_equal(text_match("plain.eml", "BCC dave"), 0);
    assert_int_equal(text_match("plain.eml", "SUBJECT \"report about the  pelican\""), 1);
    assert_int_equal(text_match("plain.eml", "SUBJECT landed"), 0);
    assert_int_equal(text_match("plain.eml", "HEADER X-Priority 3"), 1);
    assert_int_equal(text_match("plain.eml", "HEADER x-priority \"\""), 1);
    assert_int_equal(text_match("plain.eml", "HEADER X-Missing \"\""), 0);
    assert_int_equal(text_match("plain.eml", "HEADER Message-ID plain-1"), 1);
    assert_int_equal(text_match("plain.eml", "BODY pelicans"), 1);
    assert_int_equal(text_match("plain.eml", "BODY quarterly"), 0); /* header only */
    assert_int_equal(text_match("plain.eml", "TEXT quarterly"), 1);
    assert_int_equal(text_match("plain.eml", "TEXT \"have landed\""), 1);
    assert_int_equal(text_match("plain.eml", "TEXT \"x-priority: 3\""), 1);
    assert_int_equal(text_match("plain.eml", "TEXT albatross"), 0);
    assert_int_equal(text_match("plain.eml", "NOT BODY pelicans"), 0);
    assert_int_equal(text_match("plain.eml", "OR BODY nothing FROM alice"), 1);
    assert_int_equal(text_match("plain.eml", "BODY \"\""), 1);
}

static void test_sent_dates(void **state)
{
    (void)state;
    /* 1 Jul 23:52 -0700 is 2 Jul in UTC: SENT* use the day as written. */
    assert_int_equal(text_match("plain.eml", "SENTON 1-Jul-2003"), 1);
    assert_int_equal(text_match("plain.eml", "SENTON 2-Jul-2003"), 0);
    assert_int_equal(text_match("plain.eml", "SENTBEFORE 2-Jul-2003"), 1);
    assert_int_equal(text_match("plain.eml", "SENTBEFORE 1-Jul-2003"), 0);
    assert_int_equal(text_match("plain.eml", "SENTSINCE 1-Jul-2003"), 1);
    assert_int_equal(text_match("plain.eml", "SENTSINCE 2-Jul-2003"), 0);
    /* No day name, a two-digit day. */
    assert_int_equal(text_match("b64-latin1.eml", "SENTON 2-Jul-2003"), 1);
    assert_int_equal(text_match("qp-1252.eml", "SENTON 3-Jul-2003"), 1);
    assert_int_equal(text_match("rfc2047.eml", "SENTON 6-Jul-2003"), 1);
}

static void test_base64_latin1(void **state)
{
    (void)state;
    assert_int_equal(text_match("b64-latin1.eml", "BODY \"crème brûlée\""), 1);
    assert_int_equal(text_match("b64-latin1.eml", "BODY \"CRÈME BRÛLÉE À LA FRANÇAISE\""), 1);
    assert_int_equal(text_match("b64-latin1.eml", "BODY amour"), 1);
    /* The raw base64 is no text: its first line must not match. */
    assert_int_equal(text_match("b64-latin1.eml", "BODY UmVjZXR0ZTog"), 0);
    assert_int_equal(text_match("b64-latin1.eml", "TEXT UmVjZXR0ZTog"), 0);
    assert_int_equal(text_match("b64-latin1.eml", "BODY \"cr\xE8me\""), 0); /* Latin-1 bytes */
}

static void test_qp_1252(void **state)
{
    (void)state;
    assert_int_equal(text_match("qp-1252.eml", "BODY zusammenfassung"), 1); /* soft break */
    assert_int_equal(text_match("qp-1252.eml", "BODY \"€ 100\""), 1);
    assert_int_equal(text_match("qp-1252.eml", "BODY \"“wirklich”\""), 1);
    assert_int_equal(text_match("qp-1252.eml", "BODY \"GRÜßE\""), 1);
    assert_int_equal(text_match("qp-1252.eml", "BODY \"=80\""), 0);
    assert_int_equal(text_match("qp-1252.eml", "FROM françois"), 1);
    assert_int_equal(text_match("qp-1252.eml", "FROM Fran=E7ois"), 0);
}

static void test_koi8r(void **state)
{
    (void)state;
    assert_int_equal(text_match("koi8r.eml", "BODY \"привет, мир\""), 1);
    assert_int_equal(text_match("koi8r.eml", "BODY \"ПРИВЕТ\""), 1);
    assert_int_equal(text_match("koi8r.eml", "BODY \"ЭТО ТЕСТ\""), 1);
    assert_int_equal(text_match("koi8r.eml", "SUBJECT \"важное СООБЩЕНИЕ\""), 1);
    assert_int_equal(text_match("koi8r.eml", "TEXT \"сообщение\""), 1);
    assert_int_equal(text_match("koi8r.eml", "BODY \"сообщение\""), 0);
}

static void test_multipart(void **state)
{
    (void)state;
    assert_int_equal(text_match("multipart.eml", "BODY \"kalimera kosmos — naïve\""), 1);
    assert_int_equal(text_match("multipart.eml", "BODY \"NAÏVE CAFÉ\""), 1);
    /* The HTML part, decoded from base64; Greek folded. */
    assert_int_equal(text_match("multipart.eml", "BODY \"ΚΑΛΗΜΈΡΑ\""), 1);
    assert_int_equal(text_match("multipart.eml", "BODY \"<b>καλημέρα</b>\""), 1);
    assert_int_equal(text_match("multipart.eml", "BODY κόσμε"), 1);
    /* Not text: the attachment, the preamble, the boundaries. */
    assert_int_equal(text_match("multipart.eml", "BODY secretword"), 0);
    assert_int_equal(text_match("multipart.eml", "BODY preamble"), 0);
    assert_int_equal(text_match("multipart.eml", "BODY --outer"), 0);
    /* The attached message: its header and body are body text. */
    assert_int_equal(text_match("multipart.eml", "BODY marmalade"), 1);
    assert_int_equal(text_match("multipart.eml", "BODY \"inner über\""), 1);
    assert_int_equal(text_match("multipart.eml", "BODY \"Inner Sender\""), 1);
    assert_int_equal(text_match("multipart.eml", "FROM inner"), 0);
    assert_int_equal(text_match("multipart.eml", "SUBJECT alternatives"), 1);
}

static void test_rfc2047(void **state)
{
    (void)state;
    assert_int_equal(text_match("rfc2047.eml", "FROM \"jörg müller\""), 1);
    assert_int_equal(text_match("rfc2047.eml", "FROM \"JÖRG MÜLLER <joerg@\""), 1);
    assert_int_equal(text_match("rfc2047.eml", "FROM J=C3=B6rg"), 0);
    assert_int_equal(text_match("rfc2047.eml", "TO renée"), 1);
    assert_int_equal(text_match("rfc2047.eml", "TO plain@example.net"), 1);
    /* Encoded words across a fold join without the blank between them. */
    assert_int_equal(text_match("rfc2047.eml", "SUBJECT \"café crème and\""), 1);
    assert_int_equal(text_match("rfc2047.eml", "SUBJECT \"ΑΡΧ\""), 1);
    assert_int_equal(text_match("rfc2047.eml", "TEXT \"subject: café\""), 1);
}

static void test_large(void **state)
{
    (void)state;
    assert_int_equal(text_match("big.eml", "BODY spanningneedleacrosschunks"), 1);
    assert_int_equal(text_match("big.eml", "BODY albatross"), 1);
    assert_int_equal(text_match("big.eml", "BODY \"albatross penguin\""), 0);
    assert_int_equal(text_match("big-b64.eml", "BODY decodedboundaryword"), 1);
    assert_int_equal(text_match("big-b64.eml", "BODY \"qqqqDECODEDBOUNDARYWORDyyyy\""), 1);
    assert_int_equal(text_match("big-b64.eml", "BODY zzz"), 0);
}

/* The decoding pipeline fed in pieces of every size from 1 byte: the
 * same answer as in one piece (base64 quanta, QP escapes, multi-byte
 * charsets, UTF-8 folding all cut anywhere). */
static bool pipeline_finds(const char *needle, const char *encoding, const char *charset,
                           const char *data, size_t step)
{
    struct imap_search *s;
    const char *error;
    char key[256];
    snprintf(key, sizeof(key), "BODY \"%s\"", needle);
    assert_int_equal(compile(key, &s, &error), IMAP_SEARCH_OK);
    uint64_t hits = 0;
    struct search_matcher *mt = malloc(sizeof(*mt));
    search_matcher_init(mt, s, 1, &hits);
    struct search_part *p = search_part_new(encoding, charset, mt);
    size_t len = strlen(data);
    for (size_t i = 0; i < len; i += step)
        search_part_feed(p, data + i, len - i < step ? len - i : step);
    search_part_free(p);
    free(mt);
    imap_search_free(s);
    return hits == 1;
}

static void test_pieces(void **state)
{
    (void)state;
    /* "Grüße, Ärger!" in Latin-1, base64 */
    static const char b64[] = "R3L832UsIMRyZ2VyIQ==";
    /* windows-1252 QP with a soft break inside a word and a euro sign */
    static const char qp[] = "Zusam=\r\nmen =80 =E4rger=3D";
    /* KOI8-R "Привет" */
    static const char koi[] = "\xF0\xD2\xC9\xD7\xC5\xD4 \xCD\xC9\xD2";
    /* UTF-8 Greek and Cyrillic capitals */
    static const char utf[] = "\xCE\x9A\xCE\x91\xCE\x9B\xCE\x97 \xD0\x96\xD0\x81";
    for (size_t step = 1; step <= 9; step++) {
        assert_true(pipeline_finds("grüße, ärger", "base64", "iso-8859-1", b64, step));
        assert_false(pipeline_finds("R3L8", "base64", "iso-8859-1", b64, step));
        assert_true(
            pipeline_finds("zusammen € ärger=", "quoted-printable", "windows-1252", qp, step));
        assert_true(pipeline_finds("ПРИВЕТ МИР", "8bit", "KOI8-R", koi, step));
        assert_true(pipeline_finds("καλη жё", NULL, "utf-8", utf, step));
        assert_false(pipeline_finds("καλα", NULL, "utf-8", utf, step));
    }
    /* An unknown charset is matched as its bytes (ASCII still folded). */
    assert_true(pipeline_finds("abc\xC9", "7bit", "x-unknown", "ABC\xC9", 1));
    assert_false(pipeline_finds("abc\xE9", "7bit", "x-unknown", "ABC\xC9", 1));
}

/* Flags that decide the answer spare the file: none is given here. */
static void test_lazy(void **state)
{
    (void)state;
    struct imap_search_msg m = base_msg();
    assert_int_equal(match("SEEN BODY x", &m), 0);
    assert_int_equal(match("OR UNSEEN FROM x", &m), 1);
    assert_int_equal(match("FROM x", &m), -1);
    struct loaded *l = load("plain.eml", true);
    close(l->m.fd);
    l->m.fd = -1;
    assert_int_equal(match("FROM alice", &l->m), 1); /* the header is enough */
    assert_int_equal(match("BODY pelicans", &l->m), -1);
    assert_int_equal(match("OR FROM alice BODY pelicans", &l->m), 1);
    l->m.fd = open(SEARCH_MSG_DIR, O_RDONLY); /* a directory: read fails */
    assert_true(l->m.fd >= 0);
    assert_int_equal(match("BODY pelicans", &l->m), -1);
    unload(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),          cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_recent),         cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_internal_dates), cmocka_unit_test(test_sequence_sets),
        cmocka_unit_test(test_late_sets),      cmocka_unit_test(test_logic),
        cmocka_unit_test(test_bad_syntax),     cmocka_unit_test(test_charset),
        cmocka_unit_test(test_needs),          cmocka_unit_test(test_headers_plain),
        cmocka_unit_test(test_sent_dates),     cmocka_unit_test(test_base64_latin1),
        cmocka_unit_test(test_qp_1252),        cmocka_unit_test(test_koi8r),
        cmocka_unit_test(test_multipart),      cmocka_unit_test(test_rfc2047),
        cmocka_unit_test(test_large),          cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_lazy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
