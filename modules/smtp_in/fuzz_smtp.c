/* libFuzzer target for the SMTP command grammar. The first byte picks the
 * extensions offered (bits 0-3: SMTPUTF8, DSN, CHUNKING, 8BITMIME), whether
 * the transaction has SMTPUTF8 (bit 4) and the size of the HELO buffer
 * (bits 5-7); the rest is one command line (the seeds are text lines behind
 * a printable option byte). Whatever the client sends: every output is
 * NUL-terminated within its limits; a canonical address holds no controls
 * and no unbalanced quotes, its local part ends at address[local_len] and
 * it parses back to itself; a refusal is a 4xx/5xx reply with an enhanced
 * code and a text; a HELO/EHLO name is a host name or an address literal
 * (HELO and EHLO alike) with nothing in it that could forge a Received:
 * clause; xtext decodes back to what was encoded. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct smtp_parse_opts all = {.smtputf8 = true,
                                           .dsn = true,
                                           .chunking = true,
                                           .eightbit = true,
                                           .requiretls = true,
                                           .tls = true};

static void check_reply(bool ok, const struct smtp_reply *err)
{
    if (ok)
        return;
    if (err->code < 400 || err->code > 599 || err->enhanced == NULL || err->text == NULL ||
        err->enhanced[0] != '0' + err->code / 100 || err->text[0] == '\0')
        abort();
}

/* NUL-terminated within size, at most max octets, no controls. */
static size_t check_text(const char *s, size_t size, size_t max)
{
    const char *nul = memchr(s, '\0', size);
    if (nul == NULL || (size_t)(nul - s) > max)
        abort();
    for (const char *p = s; p < nul; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
    }
    return (size_t)(nul - s);
}

/* The local part is a dot-string, or a quoted string whose only
 * backslashes escape '"' and '\'. */
static void check_local(const char *s, size_t n, bool quoted)
{
    if (!quoted) {
        if (memchr(s, '"', n) != NULL || memchr(s, '\\', n) != NULL || memchr(s, ' ', n) != NULL ||
            s[0] == '.' || s[n - 1] == '.')
            abort();
        return;
    }
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        abort();
    for (size_t i = 1; i < n - 1; i++) {
        if (s[i] == '"')
            abort();
        if (s[i] == '\\' && (++i == n - 1 || (s[i] != '"' && s[i] != '\\')))
            abort();
    }
}

static void check_address(const struct smtp_address *a, bool rcpt)
{
    size_t len = check_text(a->address, sizeof(a->address), SMTP_PATH_MAX - 2);
    if (a->null) {
        if (rcpt || len != 0 || a->local_len != 0 || a->postmaster)
            abort();
        return;
    }
    if (a->postmaster) {
        if (!rcpt || strcmp(a->address, "postmaster") != 0 || a->local_len != 10)
            abort();
        return;
    }
    if (a->local_len == 0 || a->local_len > SMTP_LOCAL_MAX || a->address[a->local_len] != '@')
        abort();
    check_local(a->address, a->local_len, a->quoted);
    const char *domain = a->address + a->local_len + 1;
    size_t dlen = strlen(domain);
    if (dlen == 0 || dlen > SMTP_DOMAIN_MAX || a->domain_literal != (domain[0] == '['))
        abort();
    for (size_t i = 0; i < dlen; i++) {
        if (domain[i] >= 'A' && domain[i] <= 'Z' && !(a->domain_literal && i >= 1 && i <= 4))
            abort();
    }
    bool high = false;
    for (size_t i = 0; i < len; i++)
        high |= (unsigned char)a->address[i] >= 0x80;
    if (high != a->utf8)
        abort();
    /* Canonical means a fixed point: the address parses to itself. */
    char args[SMTP_PATH_MAX + 16];
    snprintf(args, sizeof(args), "TO:<%s>", a->address);
    struct smtp_rcpt r;
    struct smtp_reply err;
    if (!smtp_parse_rcpt(args, &all, true, &r, &err) || strcmp(r.to.address, a->address) != 0 ||
        r.to.local_len != a->local_len || r.to.quoted != a->quoted || r.to.utf8 != a->utf8 ||
        r.to.domain_literal != a->domain_literal)
        abort();
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* smtp_xtext_encode's output decodes back to its input, and is xtext. */
static void check_xtext(const char *s, size_t size)
{
    char *enc = malloc(size > 0 ? size : 1);
    bool ok = smtp_xtext_encode(s, enc, size);
    size_t need = 1;
    for (const char *p = s; *p != '\0'; p++)
        need += (unsigned char)*p > 32 && (unsigned char)*p < 127 && *p != '+' && *p != '=' ? 1 : 3;
    if (ok != (need <= size))
        abort();
    if (ok) {
        size_t n = strlen(enc), o = 0;
        if (n + 1 != need)
            abort();
        for (size_t i = 0; i < n; i++, o++) {
            char c = enc[i];
            if (c == '+') {
                if (i + 2 >= n || hex_value(enc[i + 1]) < 0 || hex_value(enc[i + 2]) < 0)
                    abort();
                c = (char)(hex_value(enc[i + 1]) << 4 | hex_value(enc[i + 2]));
                i += 2;
            } else if ((unsigned char)c <= 32 || (unsigned char)c >= 127 || c == '=') {
                abort();
            }
            if (s[o] != c)
                abort();
        }
        if (s[o] != '\0')
            abort();
    }
    free(enc);
}

static void check_mail(const char *args, const struct smtp_parse_opts *opts)
{
    struct smtp_mail m;
    struct smtp_reply err;
    bool ok = smtp_parse_mail(args, opts, &m, &err);
    check_reply(ok, &err);
    if (!ok)
        return;
    check_address(&m.from, false);
    size_t elen = check_text(m.envid, sizeof(m.envid), SMTP_ENVID_MAX);
    check_text(m.auth, sizeof(m.auth), SMTP_PATH_MAX);
    if (m.has_envid != (elen > 0) || m.has_auth != (m.auth[0] != '\0'))
        abort();
    if (!opts->dsn && (m.ret != SMTP_RET_NONE || m.has_envid))
        abort();
    if ((m.smtputf8 && !opts->smtputf8) || (m.from.utf8 && !m.smtputf8))
        abort();
    if (m.requiretls && !(opts->requiretls && opts->tls)) /* never outside TLS */
        abort();
    if ((m.body == SMTP_BODY_8BITMIME && !opts->eightbit) ||
        (m.body == SMTP_BODY_BINARYMIME && !(opts->eightbit && opts->chunking)))
        abort();
    if (m.has_envid) {
        /* What goes out in a DSN comes back the same. */
        char again[16 + 3 * SMTP_ENVID_MAX];
        memcpy(again, "FROM:<> ENVID=", 14);
        if (!smtp_xtext_encode(m.envid, again + 14, sizeof(again) - 14))
            abort();
        struct smtp_mail m2;
        if (!smtp_parse_mail(again, &all, &m2, &err) || strcmp(m2.envid, m.envid) != 0)
            abort();
    }
}

static void check_rcpt(const char *args, const struct smtp_parse_opts *opts, bool utf8_ok)
{
    struct smtp_rcpt r;
    struct smtp_reply err;
    bool ok = smtp_parse_rcpt(args, opts, utf8_ok, &r, &err);
    check_reply(ok, &err);
    if (!ok)
        return;
    check_address(&r.to, true);
    size_t tlen = check_text(r.orcpt_type, sizeof(r.orcpt_type), sizeof(r.orcpt_type) - 1);
    size_t olen = check_text(r.orcpt, sizeof(r.orcpt), SMTP_ORCPT_MAX);
    if ((tlen == 0) != (olen == 0) || (r.to.utf8 && !utf8_ok))
        abort();
    if (!opts->dsn && (r.notify != 0 || tlen != 0))
        abort();
    if ((r.notify & ~0xfu) != 0 ||
        ((r.notify & SMTP_NOTIFY_NEVER) != 0 && r.notify != SMTP_NOTIFY_NEVER))
        abort();
}

static void check_bdat(const char *args)
{
    uint64_t n;
    bool last;
    struct smtp_reply err;
    check_reply(smtp_parse_bdat(args, &n, &last, &err), &err);
}

/* A HELO/EHLO name that was taken: a literal that an address takes too,
 * or dot-separated labels of letters, digits, '-' and '_' which, with the
 * underscores made letters, an address takes as its domain. Nothing that
 * could end a Received: comment or clause ("()<>;" spaces) is in it. */
static void check_helo_name(const char *name, size_t n)
{
    char args[SMTP_DOMAIN_MAX + 16];
    struct smtp_rcpt r;
    struct smtp_reply err;
    if (n == 0 || n > SMTP_DOMAIN_MAX || strcspn(name, "()<>;\\\" \t") != n)
        abort();
    int len = snprintf(args, sizeof(args), "TO:<a@%s>", name);
    for (int i = 6; i < len - 1 && name[0] != '['; i++) {
        if (args[i] == '_')
            args[i] = 'u';
    }
    if (n <= SMTP_PATH_MAX - 4 && (!smtp_parse_rcpt(args, &all, false, &r, &err) || r.to.utf8 ||
                                   r.to.domain_literal != (name[0] == '[')))
        abort();
}

static void check_helo(const char *args, size_t size)
{
    /* Exactly size octets, so that ASan sees a write past them. */
    char *out = malloc(size > 0 ? size : 1), *out2 = malloc(size > 0 ? size : 1);
    struct smtp_reply err, err2;
    bool ok = smtp_parse_helo(args, false, out, size, &err);
    check_reply(ok, &err);
    /* HELO and EHLO have one grammar: the same verdict, the same name. */
    bool ok2 = smtp_parse_helo(args, true, out2, size, &err2);
    check_reply(ok2, &err2);
    if (ok != ok2 || (ok && strcmp(out, out2) != 0))
        abort();
    if (!ok && (err.code != 501 || strcmp(err.enhanced, "5.5.2") != 0))
        abort();
    if (ok)
        check_helo_name(out, check_text(out, size, SMTP_DOMAIN_MAX));
    free(out);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t helo_sizes[] = {256, 1, 8, 64, 0, 16, 255, 32};
    if (size == 0)
        return 0;
    struct smtp_parse_opts opts = {
        .smtputf8 = (data[0] & 1) != 0,
        .dsn = (data[0] & 2) != 0,
        .chunking = (data[0] & 4) != 0,
        .eightbit = (data[0] & 8) != 0,
        /* Shares bits with helo_size: every combination still occurs. */
        .requiretls = (data[0] & 32) != 0,
        .tls = (data[0] & 64) != 0,
    };
    bool utf8_ok = (data[0] & 16) != 0;
    size_t helo_size = helo_sizes[data[0] >> 5];
    data++, size--;
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';

    const char *args = NULL;
    enum smtp_verb verb = smtp_parse_verb(line, size, &args);
    if (args == NULL || (args[0] != '\0' && (args <= line || args >= line + size)))
        abort();
    if (verb == SMTP_UNKNOWN && args[0] != '\0')
        abort();
    /* Every parser sees every line: the verb's arguments, or the line. */
    const char *a = verb != SMTP_UNKNOWN ? args : line;
    check_mail(a, &opts);
    check_rcpt(a, &opts, utf8_ok);
    check_bdat(a);
    check_helo(a, helo_size);
    check_xtext(line, helo_size);
    check_xtext(line, 3 * size + 1);
    free(line);
    return 0;
}
