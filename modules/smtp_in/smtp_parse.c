/* The SMTP command grammar (RFC 5321 section 4.1 and the ESMTP parameters
 * listed in smtp_parse.h). Pure functions over one NUL-terminated command
 * line: no I/O, no allocation, every output bounded. A refusal is the reply
 * the client gets:
 *   501 5.5.2  the command's shape (no "FROM:", no "TO:")
 *   501 5.1.7  a bad reverse-path (sender), 501 5.1.3 a bad forward-path
 *   501 5.5.4  too long, bad parameter values, duplicates, BDAT
 *   501 5.5.2  a HELO/EHLO argument that is not a host name or literal
 *   555 5.5.4  a parameter that is unknown or whose extension is not offered
 *   553 5.6.7  a non-ASCII address without SMTPUTF8
 *   552 5.3.4  SIZE= beyond what 64 bits hold
 *   530 5.7.10 REQUIRETLS outside TLS (RFC 8689 section 4.1) */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

#define VERB_MAX 16        /* longest verb accepted by smtp_parse_verb */
#define PARAMS_MAX 16      /* ESMTP parameters on one MAIL or RCPT */
#define PARAM_LEN_MAX 1000 /* octets of one keyword=value */
#define LABEL_MAX 63       /* octets of an ASCII domain label (RFC 1035) */
#define SIZE_DIGITS_MAX 20 /* RFC 1870 size-value */
#define LITERAL_MAX 64     /* longer than "IPv6:" + INET6_ADDRSTRLEN */

#define SENDER_BAD "5.1.7"
#define RCPT_BAD "5.1.3"
#define ARGS_BAD "5.5.4"
#define HELO_BAD "5.5.2" /* as Postfix answers a HELO it refuses */

static bool fail(struct smtp_reply *err, int code, const char *enhanced, const char *text)
{
    err->code = code;
    err->enhanced = enhanced;
    err->text = text;
    return false;
}

static bool bad_args(struct smtp_reply *err, const char *text)
{
    return fail(err, 501, ARGS_BAD, text);
}

static bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}
static char to_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c; }

/* RFC 5322 atext, ASCII part. */
static bool is_atext(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool word_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

/* Octets of the UTF-8 sequence starting at the non-ASCII octet *s, or 0 if
 * it is not valid (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). C1 controls are refused too: they have no place in an
 * address. Stops at the first octet that does not fit, so never reads past
 * the NUL of the string. */
static size_t utf8_len(const unsigned char *s)
{
    size_t len;
    uint32_t cp, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu, min = 0xa0; /* 0x80-0x9f: C1 controls */
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* ---- verbs ----------------------------------------------------------- */

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"HELO", SMTP_HELO}, {"EHLO", SMTP_EHLO},         {"MAIL", SMTP_MAIL}, {"RCPT", SMTP_RCPT},
    {"DATA", SMTP_DATA}, {"BDAT", SMTP_BDAT},         {"RSET", SMTP_RSET}, {"NOOP", SMTP_NOOP},
    {"QUIT", SMTP_QUIT}, {"VRFY", SMTP_VRFY},         {"EXPN", SMTP_EXPN}, {"HELP", SMTP_HELP},
    {"AUTH", SMTP_AUTH}, {"STARTTLS", SMTP_STARTTLS},
};

enum smtp_verb smtp_parse_verb(const char *line, size_t len, const char **args_r)
{
    *args_r = "";
    if (memchr(line, '\0', len) != NULL)
        return SMTP_UNKNOWN;
    size_t n = 0;
    while (n < len && line[n] != ' ') {
        if (!is_alpha((unsigned char)line[n]) || ++n > VERB_MAX)
            return SMTP_UNKNOWN;
    }
    enum smtp_verb verb = SMTP_UNKNOWN;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (word_is(line, n, verbs[i].name))
            verb = verbs[i].verb;
    }
    if (verb == SMTP_UNKNOWN)
        return SMTP_UNKNOWN;
    size_t a = n;
    while (a < len && line[a] == ' ')
        a++;
    if (a < len)
        *args_r = line + a;
    return verb;
}

/* ---- mailboxes ------------------------------------------------------- */

/* The local part as received, unquoted: content holds the octets between
 * the quotes with the backslashes of quoted pairs removed. */
struct local_part {
    char content[SMTP_LOCAL_MAX + 1];
    size_t len;     /* octets of content */
    size_t raw_len; /* octets as received, quotes and backslashes included */
    bool quoted;    /* received as a quoted string */
    bool utf8;
};

/* A dot-string: atoms of atext (or UTF-8, RFC 6531) joined by single dots. */
static bool is_dot_string(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' ? s[i + 1] == '.' : !(is_atext(c) || c >= 0x80))
            return false;
    }
    return true;
}

/* One octet (or UTF-8 sequence) of a local part into lp; p advances. */
static bool local_take(struct local_part *lp, const unsigned char **p, const unsigned char *start,
                       const char *bad, struct smtp_reply *err)
{
    size_t n = 1;
    if (**p >= 0x80) {
        n = utf8_len(*p);
        if (n == 0)
            return fail(err, 501, bad, "invalid utf-8 in address");
        lp->utf8 = true;
    }
    /* The raw form is never shorter than the content: checking it keeps
     * content within its buffer. */
    if ((size_t)(*p + n - start) > SMTP_LOCAL_MAX)
        return bad_args(err, "local part too long");
    memcpy(lp->content + lp->len, *p, n);
    lp->len += n;
    *p += n;
    return true;
}

static bool parse_quoted(const unsigned char **pp, struct local_part *lp, const char *bad,
                         struct smtp_reply *err)
{
    const unsigned char *start = *pp, *p = start + 1;
    while (*p != '"') {
        if (*p == '\\') {
            p++;
            if (*p < 0x20 || *p > 0x7e) /* quoted-pairSMTP: %d92 %d32-126 */
                return fail(err, 501, bad, "syntax error in mailbox address");
            if ((size_t)(p + 1 - start) > SMTP_LOCAL_MAX)
                return bad_args(err, "local part too long");
            lp->content[lp->len++] = (char)*p++;
        } else if (*p < 0x20 || *p == 0x7f) { /* controls, or the end: unbalanced */
            return fail(err, 501, bad, "syntax error in mailbox address");
        } else if (!local_take(lp, &p, start, bad, err)) {
            return false;
        }
    }
    p++;
    if ((size_t)(p - start) > SMTP_LOCAL_MAX)
        return bad_args(err, "local part too long");
    lp->quoted = true;
    lp->raw_len = (size_t)(p - start);
    *pp = p;
    return true;
}

static bool parse_local(const char **pp, struct local_part *lp, const char *bad,
                        struct smtp_reply *err)
{
    const unsigned char *start = (const unsigned char *)*pp, *p = start;
    memset(lp, 0, sizeof(*lp));
    if (*p == '"') {
        if (!parse_quoted(&p, lp, bad, err))
            return false;
    } else {
        while (is_atext(*p) || *p == '.' || *p >= 0x80) {
            if (!local_take(lp, &p, start, bad, err))
                return false;
        }
        if (!is_dot_string(lp->content, lp->len))
            return fail(err, 501, bad, "syntax error in mailbox address");
        lp->raw_len = lp->len;
    }
    lp->content[lp->len] = '\0';
    *pp = (const char *)p;
    return true;
}

/* The canonical local part into out (room for raw_len octets): unquoted
 * when the content is a dot-string, else quoted with a backslash before
 * each '"' and '\' only. Never longer than the form received. */
static size_t write_local(const struct local_part *lp, char *out, bool *quoted_r)
{
    *quoted_r = !is_dot_string(lp->content, lp->len);
    if (!*quoted_r) {
        memcpy(out, lp->content, lp->len);
        return lp->len;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < lp->len; i++) {
        if (lp->content[i] == '"' || lp->content[i] == '\\')
            out[o++] = '\\';
        out[o++] = lp->content[i];
    }
    out[o++] = '"';
    return o;
}

/* What parse_domain found; the domain itself is [start, start + len). */
struct domain_info {
    size_t len;
    bool literal;
    bool ipv6;
    bool utf8;
};

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]", checked by inet_pton. General
 * address literals ("[tag:...]") have no registered tag but IPv6: refused. */
static bool parse_literal(const char *s, struct domain_info *d)
{
    size_t n = 0;
    while (s[1 + n] != ']' && s[1 + n] != '\0' && n < LITERAL_MAX)
        n++;
    if (s[1 + n] != ']' || n == 0 || n >= LITERAL_MAX)
        return false;
    char text[LITERAL_MAX];
    memcpy(text, s + 1, n);
    text[n] = '\0';
    unsigned char addr[16];
    d->ipv6 = n > 5 && strncasecmp(text, "IPv6:", 5) == 0;
    for (size_t i = d->ipv6 ? 5 : 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!(is_digit(c) || c == '.' || (d->ipv6 && (is_hex(c) || c == ':'))))
            return false;
    }
    if (inet_pton(d->ipv6 ? AF_INET6 : AF_INET, text + (d->ipv6 ? 5 : 0), addr) != 1)
        return false;
    d->literal = true;
    d->len = n + 2;
    return true;
}

/* A domain (RFC 5321 Domain, with U-labels when ascii_only is false) or an
 * address literal at s; stops at the first octet that cannot continue it. */
static bool parse_domain(const char *s, bool ascii_only, struct domain_info *d, const char *bad,
                         struct smtp_reply *err)
{
    memset(d, 0, sizeof(*d));
    if (*s == '[')
        return parse_literal(s, d) ? true : fail(err, 501, bad, "invalid address literal");
    const unsigned char *start = (const unsigned char *)s, *p = start;
    for (;;) {
        const unsigned char *label = p;
        bool label_utf8 = false;
        while (is_alpha(*p) || is_digit(*p) || *p == '-' || (*p >= 0x80 && !ascii_only)) {
            size_t n = *p >= 0x80 ? utf8_len(p) : 1;
            if (n == 0)
                return fail(err, 501, bad, "invalid utf-8 in domain");
            label_utf8 |= n > 1;
            p += n;
            if ((size_t)(p - start) > SMTP_DOMAIN_MAX)
                return bad_args(err, "domain too long");
        }
        /* Let-dig [Ldh-str]: no hyphen at either end; no empty label, so
         * no trailing dot either. */
        if (p == label || *label == '-' || p[-1] == '-' ||
            (!label_utf8 && (size_t)(p - label) > LABEL_MAX))
            return fail(err, 501, bad, "invalid domain name");
        d->utf8 |= label_utf8;
        if (*p != '.')
            break;
        p++;
    }
    d->len = (size_t)(p - start);
    return true;
}

/* The domain in canonical form into out: ASCII letters lower-cased, the
 * IPv6 tag spelt "IPv6:". */
static void write_domain(const char *s, const struct domain_info *d, char *out)
{
    for (size_t i = 0; i < d->len; i++)
        out[i] = to_lower(s[i]);
    if (d->ipv6)
        memcpy(out + 1, "IPv6:", 5);
}

/* "<" [source route refused] mailbox ">" at *pp, into a. */
static bool parse_path(const char **pp, bool rcpt, struct smtp_address *a, struct smtp_reply *err)
{
    const char *bad = rcpt ? RCPT_BAD : SENDER_BAD;
    const char *start = *pp, *p = start + 1;
    if (*start != '<')
        return fail(err, 501, bad, "address must be in angle brackets");
    if (*p == '>') {
        if (rcpt)
            return fail(err, 501, bad, "null recipient address");
        a->null = true;
        *pp = p + 1;
        return true;
    }
    if (*p == '@')
        return fail(err, 501, bad, "source routes are not accepted");
    struct local_part lp;
    if (!parse_local(&p, &lp, bad, err))
        return false;
    if (rcpt && *p == '>' && !lp.quoted && word_is(lp.content, lp.len, "postmaster")) {
        memcpy(a->address, "postmaster", sizeof("postmaster"));
        a->local_len = sizeof("postmaster") - 1;
        a->postmaster = true;
        *pp = p + 1;
        return true;
    }
    if (*p != '@')
        return fail(err, 501, bad, "syntax error in mailbox address");
    const char *domain = ++p;
    struct domain_info d;
    if (!parse_domain(domain, false, &d, bad, err))
        return false;
    p += d.len;
    if (*p != '>')
        return fail(err, 501, bad, "syntax error in mailbox address");
    if ((size_t)(p + 1 - start) > SMTP_PATH_MAX)
        return bad_args(err, "path too long");
    /* local + '@' + domain <= SMTP_PATH_MAX - 2: fits in address. */
    a->local_len = write_local(&lp, a->address, &a->quoted);
    a->address[a->local_len] = '@';
    write_domain(domain, &d, a->address + a->local_len + 1);
    a->address[a->local_len + 1 + d.len] = '\0';
    a->domain_literal = d.literal;
    a->utf8 = lp.utf8 || d.utf8;
    *pp = p + 1;
    return true;
}

/* ---- ESMTP parameters ------------------------------------------------ */

enum param_id {
    P_SIZE,
    P_BODY,
    P_SMTPUTF8,
    P_RET,
    P_ENVID,
    P_AUTH,
    P_REQUIRETLS,
    P_NOTIFY,
    P_ORCPT
};

static const struct {
    const char *name;
    bool rcpt; /* a RCPT parameter, else MAIL */
} params[] = {
    [P_SIZE] = {"SIZE", false},
    [P_BODY] = {"BODY", false},
    [P_SMTPUTF8] = {"SMTPUTF8", false},
    [P_RET] = {"RET", false},
    [P_ENVID] = {"ENVID", false},
    [P_AUTH] = {"AUTH", false},
    [P_REQUIRETLS] = {"REQUIRETLS", false},
    [P_NOTIFY] = {"NOTIFY", true},
    [P_ORCPT] = {"ORCPT", true},
};

static bool param_offered(enum param_id id, const struct smtp_parse_opts *opts)
{
    switch (id) {
    case P_SIZE:
    case P_BODY: /* BODY=7BIT always; the other values check opts */
    case P_AUTH:
        return true;
    case P_SMTPUTF8:
        return opts->smtputf8;
    case P_REQUIRETLS:
        return opts->requiretls;
    default:
        return opts->dsn;
    }
}

/* One parameter: the keyword, and the value after '=' (NULL when none). */
struct param {
    enum param_id id;
    const char *value;
    size_t vlen;
};

/* Where parameters land, and what decides them. */
struct param_ctx {
    const struct smtp_parse_opts *opts;
    struct smtp_mail *mail;
    struct smtp_rcpt *rcpt;
    bool utf8_ok;
};

static int hex_value(char c)
{
    if (is_digit((unsigned char)c))
        return c - '0';
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; /* RFC 3461: upper case */
}

/* xtext (RFC 3461 section 4) into out, at most max octets and a NUL.
 * raw_utf8 lets UTF-8 through undecoded (RFC 6533 utf-8-addr-unitext). */
static bool xtext_decode(const char *v, size_t n, bool raw_utf8, char *out, size_t max,
                         size_t *len_r)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        size_t step = 1, octets = 1;
        if (c == '+') {
            int hi = n - i >= 3 ? hex_value(v[i + 1]) : -1, lo = hi >= 0 ? hex_value(v[i + 2]) : -1;
            if (lo < 0)
                return false;
            c = (unsigned char)(hi << 4 | lo);
            step = 3;
        } else if (c >= 0x80) {
            if (!raw_utf8 || (octets = step = utf8_len((const unsigned char *)v + i)) == 0 ||
                step > n - i)
                return false;
        } else if (c < 33 || c > 126 || c == '=') {
            return false;
        }
        if (o + octets > max)
            return false;
        if (octets == 1)
            out[o] = (char)c;
        else
            memcpy(out + o, v + i, octets);
        o += octets;
        i += step;
    }
    out[o] = '\0';
    *len_r = o;
    return true;
}

/* Decoded text that is safe to log and to write back out: no NULs, no
 * controls, valid UTF-8 (non-ASCII only when allowed). */
static bool text_ok(const char *s, size_t n, bool allow_utf8)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t step = 1;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c >= 0x80 &&
            (!allow_utf8 || (step = utf8_len((const unsigned char *)s + i)) == 0 || step > n - i))
            return false;
        i += step;
    }
    return true;
}

static bool param_size(const struct param *pa, struct smtp_mail *m, struct smtp_reply *err)
{
    if (pa->value == NULL || pa->vlen > SIZE_DIGITS_MAX)
        return bad_args(err, "invalid SIZE value");
    uint64_t v = 0;
    for (size_t i = 0; i < pa->vlen; i++) {
        unsigned d = (unsigned)(pa->value[i] - '0');
        if (!is_digit((unsigned char)pa->value[i]))
            return bad_args(err, "invalid SIZE value");
        if (v > (UINT64_MAX - d) / 10)
            return fail(err, 552, "5.3.4", "message size exceeds fixed maximum message size");
        v = v * 10 + d;
    }
    m->size = v;
    return true;
}

static bool param_body(const struct param *pa, const struct smtp_parse_opts *opts,
                       struct smtp_mail *m, struct smtp_reply *err)
{
    if (pa->value != NULL && word_is(pa->value, pa->vlen, "7BIT")) {
        m->body = SMTP_BODY_7BIT;
    } else if (pa->value != NULL && word_is(pa->value, pa->vlen, "8BITMIME")) {
        if (!opts->eightbit)
            return fail(err, 555, ARGS_BAD, "unsupported parameter");
        m->body = SMTP_BODY_8BITMIME;
    } else if (pa->value != NULL && word_is(pa->value, pa->vlen, "BINARYMIME")) {
        if (!opts->eightbit || !opts->chunking)
            return fail(err, 555, ARGS_BAD, "unsupported parameter");
        m->body = SMTP_BODY_BINARYMIME;
    } else {
        return bad_args(err, "invalid BODY value");
    }
    return true;
}

static bool param_ret(const struct param *pa, struct smtp_mail *m, struct smtp_reply *err)
{
    if (pa->value != NULL && word_is(pa->value, pa->vlen, "FULL"))
        m->ret = SMTP_RET_FULL;
    else if (pa->value != NULL && word_is(pa->value, pa->vlen, "HDRS"))
        m->ret = SMTP_RET_HDRS;
    else
        return bad_args(err, "invalid RET value");
    return true;
}

static bool param_envid(const struct param *pa, struct smtp_mail *m, struct smtp_reply *err)
{
    size_t n;
    if (pa->value == NULL ||
        !xtext_decode(pa->value, pa->vlen, false, m->envid, SMTP_ENVID_MAX, &n) ||
        !text_ok(m->envid, n, false)) {
        m->envid[0] = '\0';
        return bad_args(err, "invalid ENVID value");
    }
    m->has_envid = true;
    return true;
}

/* AUTH=<mailbox> or AUTH=<> (RFC 4954 section 5): kept, not trusted. */
static bool param_auth(const struct param *pa, struct smtp_mail *m, struct smtp_reply *err)
{
    size_t n;
    if (pa->value == NULL ||
        !xtext_decode(pa->value, pa->vlen, false, m->auth, SMTP_PATH_MAX, &n) ||
        !text_ok(m->auth, n, true)) {
        m->auth[0] = '\0';
        return bad_args(err, "invalid AUTH value");
    }
    m->has_auth = true;
    return true;
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static bool param_notify(const struct param *pa, struct smtp_rcpt *r, struct smtp_reply *err)
{
    static const char *const names[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
    unsigned bits = 0;
    for (size_t i = 0; pa->value != NULL && i <= pa->vlen;) {
        const char *comma = memchr(pa->value + i, ',', pa->vlen - i);
        size_t n = comma != NULL ? (size_t)(comma - pa->value) - i : pa->vlen - i;
        unsigned bit = 0;
        for (size_t k = 0; k < 4; k++) {
            if (word_is(pa->value + i, n, names[k]))
                bit = 1u << k;
        }
        if (bit == 0 || (bits & bit) != 0)
            return bad_args(err, "invalid NOTIFY value");
        bits |= bit;
        i += n + 1;
    }
    if (bits == 0 || ((bits & SMTP_NOTIFY_NEVER) != 0 && bits != SMTP_NOTIFY_NEVER))
        return bad_args(err, "invalid NOTIFY value");
    r->notify = bits;
    return true;
}

/* ORCPT=addr-type;xtext (RFC 3461 4.2); raw UTF-8 only for the utf-8 type
 * of RFC 6533 in an SMTPUTF8 transaction. */
static bool param_orcpt(const struct param *pa, bool utf8_ok, struct smtp_rcpt *r,
                        struct smtp_reply *err)
{
    const char *semi = pa->value != NULL ? memchr(pa->value, ';', pa->vlen) : NULL;
    size_t tlen = semi != NULL ? (size_t)(semi - pa->value) : 0, n;
    if (tlen == 0 || tlen >= sizeof(r->orcpt_type))
        return bad_args(err, "invalid ORCPT value");
    for (size_t i = 0; i < tlen; i++) {
        if (!is_atext((unsigned char)pa->value[i]))
            return bad_args(err, "invalid ORCPT value");
        r->orcpt_type[i] = to_lower(pa->value[i]);
    }
    r->orcpt_type[tlen] = '\0';
    bool raw_utf8 = utf8_ok && strcmp(r->orcpt_type, "utf-8") == 0;
    if (!xtext_decode(semi + 1, pa->vlen - tlen - 1, raw_utf8, r->orcpt, SMTP_ORCPT_MAX, &n) ||
        n == 0 || !text_ok(r->orcpt, n, true)) {
        r->orcpt_type[0] = r->orcpt[0] = '\0';
        return bad_args(err, "invalid ORCPT value");
    }
    return true;
}

static bool param_apply(const struct param *pa, const struct param_ctx *c, struct smtp_reply *err)
{
    switch (pa->id) {
    case P_SIZE:
        return param_size(pa, c->mail, err);
    case P_BODY:
        return param_body(pa, c->opts, c->mail, err);
    case P_SMTPUTF8:
        if (pa->value != NULL)
            return bad_args(err, "SMTPUTF8 takes no value");
        c->mail->smtputf8 = true;
        return true;
    case P_REQUIRETLS:
        if (pa->value != NULL)
            return bad_args(err, "REQUIRETLS takes no value");
        /* The promise of TLS all the way is void if this hop was not. */
        if (!c->opts->tls)
            return fail(err, 530, "5.7.10", "REQUIRETLS needs TLS");
        c->mail->requiretls = true;
        return true;
    case P_RET:
        return param_ret(pa, c->mail, err);
    case P_ENVID:
        return param_envid(pa, c->mail, err);
    case P_AUTH:
        return param_auth(pa, c->mail, err);
    case P_NOTIFY:
        return param_notify(pa, c->rcpt, err);
    case P_ORCPT:
        return param_orcpt(pa, c->utf8_ok, c->rcpt, err);
    }
    return bad_args(err, "syntax error in parameters");
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value] in [tok, tok + len). */
static bool param_split(const char *tok, size_t len, bool rcpt, const struct smtp_parse_opts *opts,
                        struct param *pa, struct smtp_reply *err)
{
    const char *eq = memchr(tok, '=', len);
    size_t klen = eq != NULL ? (size_t)(eq - tok) : len;
    if (klen == 0 || tok[0] == '-')
        return bad_args(err, "syntax error in parameters");
    for (size_t i = 0; i < klen; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-')
            return bad_args(err, "syntax error in parameters");
    }
    size_t id = sizeof(params) / sizeof(params[0]);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        if (params[i].rcpt == rcpt && word_is(tok, klen, params[i].name))
            id = i;
    }
    if (id == sizeof(params) / sizeof(params[0]) || !param_offered((enum param_id)id, opts))
        return fail(err, 555, ARGS_BAD, "unsupported parameter");
    pa->id = (enum param_id)id;
    pa->value = eq != NULL ? eq + 1 : NULL;
    pa->vlen = eq != NULL ? len - klen - 1 : 0;
    /* esmtp-value = 1*(%d33-60 / %d62-126), and UTF-8 (RFC 6531). */
    if (eq != NULL && pa->vlen == 0)
        return bad_args(err, "syntax error in parameters");
    for (size_t i = 0, n; i < pa->vlen; i += n) {
        unsigned char c = (unsigned char)pa->value[i];
        n = c >= 0x80 ? utf8_len((const unsigned char *)pa->value + i) : 1;
        if (c < 33 || c == '=' || c == 0x7f || n == 0 || n > pa->vlen - i)
            return bad_args(err, "syntax error in parameters");
    }
    return true;
}

/* The parameters after a path: SP-separated (extra spaces tolerated). */
static bool parse_params(const char *p, bool rcpt, const struct param_ctx *c,
                         struct smtp_reply *err)
{
    unsigned seen = 0;
    if (*p != ' ' && *p != '\0')
        return bad_args(err, "syntax error in parameters");
    /* The limits first, so that they hold whatever the parameters are. */
    size_t count = 0;
    for (const char *q = skip_spaces(p); *q != '\0'; q = skip_spaces(q)) {
        size_t len = strcspn(q, " ");
        if (++count > PARAMS_MAX)
            return bad_args(err, "too many parameters");
        if (len > PARAM_LEN_MAX)
            return bad_args(err, "parameter too long");
        q += len;
    }
    for (p = skip_spaces(p); *p != '\0'; p = skip_spaces(p)) {
        const char *tok = p;
        p += strcspn(p, " ");
        struct param pa;
        if (!param_split(tok, (size_t)(p - tok), rcpt, c->opts, &pa, err))
            return false;
        if ((seen & 1u << pa.id) != 0)
            return bad_args(err, "duplicate parameter");
        seen |= 1u << pa.id;
        if (!param_apply(&pa, c, err))
            return false;
    }
    return true;
}

/* ---- commands -------------------------------------------------------- */

static const struct smtp_parse_opts no_opts;

bool smtp_parse_mail(const char *args, const struct smtp_parse_opts *opts, struct smtp_mail *out,
                     struct smtp_reply *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = skip_spaces(args);
    if (strncasecmp(p, "FROM:", 5) != 0)
        return fail(err, 501, "5.5.2", "syntax is MAIL FROM:<address>");
    p = skip_spaces(p + 5);
    struct param_ctx c = {.opts = opts != NULL ? opts : &no_opts, .mail = out};
    if (!parse_path(&p, false, &out->from, err) || !parse_params(p, false, &c, err))
        return false;
    if (out->from.utf8 && !out->smtputf8)
        return fail(err, 553, "5.6.7", "non-ascii address requires SMTPUTF8");
    return true;
}

bool smtp_parse_rcpt(const char *args, const struct smtp_parse_opts *opts, bool utf8_ok,
                     struct smtp_rcpt *out, struct smtp_reply *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = skip_spaces(args);
    if (strncasecmp(p, "TO:", 3) != 0)
        return fail(err, 501, "5.5.2", "syntax is RCPT TO:<address>");
    p = skip_spaces(p + 3);
    struct param_ctx c = {.opts = opts != NULL ? opts : &no_opts, .rcpt = out, .utf8_ok = utf8_ok};
    if (!parse_path(&p, true, &out->to, err) || !parse_params(p, true, &c, err))
        return false;
    if (out->to.utf8 && !utf8_ok)
        return fail(err, 553, "5.6.7", "non-ascii address requires SMTPUTF8");
    return true;
}

bool smtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r, struct smtp_reply *err)
{
    const char *p = skip_spaces(args);
    uint64_t v = 0;
    *size_r = 0;
    *last_r = false;
    if (!is_digit((unsigned char)*p))
        return bad_args(err, "syntax is BDAT <size> [LAST]");
    for (; is_digit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return bad_args(err, "chunk size out of range");
        v = v * 10 + d;
    }
    const char *q = skip_spaces(p);
    bool last = q != p && strncasecmp(q, "LAST", 4) == 0 && (q[4] == ' ' || q[4] == '\0');
    if (last)
        q = skip_spaces(q + 4);
    if (*q != '\0')
        return bad_args(err, "syntax is BDAT <size> [LAST]");
    *size_r = v;
    *last_r = last;
    return true;
}

/* A host name as real-world clients send it: labels of letters, digits,
 * hyphens and underscores (the underscore is not in RFC 5321's grammar, but
 * hosts named "mail_1" exist), no hyphen at either end of a label, no empty
 * label (so no trailing dot). Nothing that could close a comment or start a
 * clause in a Received: field gets through. */
static bool helo_name_ok(const char *s, size_t n)
{
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)s[i] : '.';
        if (c == '.') {
            if (label == 0 || label > LABEL_MAX || s[i - label] == '-' || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

bool smtp_parse_helo(const char *args, bool ehlo, char *out, size_t size, struct smtp_reply *err)
{
    const char *word = skip_spaces(args), *p = word;
    if (size > 0)
        out[0] = '\0';
    while (*p != ' ' && *p != '\0')
        p++;
    size_t n = (size_t)(p - word);
    if (n == 0 || *skip_spaces(p) != '\0')
        return fail(err, 501, HELO_BAD,
                    ehlo ? "syntax is EHLO <domain>" : "syntax is HELO <domain>");
    if (n > SMTP_DOMAIN_MAX || n >= size)
        return fail(err, 501, HELO_BAD, "domain too long");
    struct domain_info d;
    bool ok = word[0] == '[' ? parse_literal(word, &d) && d.len == n : helo_name_ok(word, n);
    if (!ok)
        return fail(err, 501, HELO_BAD, "invalid domain name or address literal");
    memcpy(out, word, n);
    out[n] = '\0';
    return true;
}

bool smtp_xtext_encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (size == 0)
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = c >= 33 && c <= 126 && c != '+' && c != '=';
        if (o + (plain ? 1 : 3) >= size) {
            out[0] = '\0';
            return false;
        }
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '+';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return true;
}
