/* Reading the account database file (format: docs/userdb_file.md). No
 * I/O here: the module reads the file, this turns its text into records,
 * checks them against each other and indexes them. A bad line is skipped
 * and reported with its number; the rest of the file still loads. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/password.h>

#include "userdb_file.h"

#define TOKENS_MAX (USERDB_TARGETS_MAX + 8)

struct line_ctx {
    struct userdb_file *db;
    unsigned line;
};

static void add_error(struct userdb_file *db, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct userdb_file *db, unsigned line, const char *fmt, ...)
{
    /* Doubling: a file of 100,000 bad lines must not take quadratic time. */
    if ((db->nerrors & (db->nerrors - 1)) == 0)
        db->errors =
            petrel_reallocarray(db->errors, db->nerrors ? db->nerrors * 2 : 1, sizeof(*db->errors));
    struct userdb_error *e = &db->errors[db->nerrors++];
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

bool userdb_domain_valid(const char *d)
{
    size_t len = strlen(d), label = 0;
    if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.' || d[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Local parts are kept to the dot-atom form of RFC 5322 (what people use
 * for mailboxes); quoted local parts are refused for accounts. */
static bool local_valid(const char *s, size_t len)
{
    if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && s[i + 1] == '.')
            return false;
        if (!isalnum(c) && strchr("!#$%&'*+-/=?^_`{|}~.", c) == NULL)
            return false;
    }
    return true;
}

bool userdb_address_normalise(const char *in, char *out, size_t size)
{
    size_t len = strlen(in);
    const char *at = strrchr(in, '@');
    if (at == NULL || len >= size || len > USERDB_ADDRESS_MAX ||
        !local_valid(in, (size_t)(at - in)) || !userdb_domain_valid(at + 1))
        return false;
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    return true;
}

static void free_record(struct userdb_record *r)
{
    free(r->key);
    free(r->hash);
    free(r->catchall);
    for (size_t i = 0; i < r->ntargets; i++)
        free(r->targets[i]);
    free(r->targets);
}

static size_t split(char *line, char **tok)
{
    size_t n = 0;
    for (char *p = line; *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p == '\0' || *p == '#')
            break;
        if (n == TOKENS_MAX)
            return n + 1; /* too many: the caller refuses the line */
        tok[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    return n;
}

bool userdb_parse_count(const char *v, long long *r, bool size)
{
    char *end;
    if (!isdigit((unsigned char)v[0]))
        return false;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned long long mul = 1;
    if (size && *end != '\0' && end[1] == '\0') {
        const char *units = "kmgt";
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (u == NULL)
            return false;
        for (long i = 0; i <= u - units; i++)
            mul *= 1024;
        end++;
    }
    if (*end != '\0' || n > (unsigned long long)INT64_MAX / mul)
        return false;
    *r = (long long)(n * mul);
    return true;
}

static bool address_arg(struct line_ctx *c, const char *what, const char *in, char **out)
{
    char buf[USERDB_ADDRESS_MAX + 1];
    if (!userdb_address_normalise(in, buf, sizeof(buf))) {
        add_error(c->db, c->line, "%s '%.80s' is not an address (local@domain)", what, in);
        return false;
    }
    *out = petrel_strdup(buf);
    return true;
}

static bool parse_domain(struct line_ctx *c, char **tok, size_t n, struct userdb_record *r)
{
    if (n < 2 || !userdb_domain_valid(tok[1])) {
        add_error(c->db, c->line, "domain: expected 'domain NAME [catchall=ADDRESS]'");
        return false;
    }
    r->key = petrel_strdup(tok[1]);
    for (char *p = r->key; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    for (size_t i = 2; i < n; i++) {
        if (strncmp(tok[i], "catchall=", 9) != 0 || r->catchall != NULL) {
            add_error(c->db, c->line, "domain: unknown or repeated option '%.40s'", tok[i]);
            return false;
        }
        if (!address_arg(c, "catchall", tok[i] + 9, &r->catchall))
            return false;
    }
    return true;
}

static bool parse_account_option(struct line_ctx *c, const char *opt, struct userdb_record *r)
{
    if (strcmp(opt, "disabled") == 0) {
        r->disabled = true;
        return true;
    }
    if (strncmp(opt, "quota=", 6) == 0 && userdb_parse_count(opt + 6, &r->quota_bytes, true))
        return true;
    if (strncmp(opt, "messages=", 9) == 0 && userdb_parse_count(opt + 9, &r->quota_messages, false))
        return true;
    add_error(c->db, c->line, "account: bad option '%.40s' (quota=SIZE, messages=N, disabled)",
              opt);
    return false;
}

static bool parse_account(struct line_ctx *c, char **tok, size_t n, struct userdb_record *r)
{
    if (n < 3) {
        add_error(c->db, c->line, "account: expected 'account ADDRESS HASH [options]'");
        return false;
    }
    if (!address_arg(c, "account", tok[1], &r->key))
        return false;
    const char *why;
    r->hash = petrel_password_import(tok[2], &why);
    if (r->hash == NULL) {
        add_error(c->db, c->line, "account %s: password hash refused: %s", r->key, why);
        return false;
    }
    for (size_t i = 3; i < n; i++) {
        if (!parse_account_option(c, tok[i], r))
            return false;
    }
    return true;
}

static bool parse_targets(struct line_ctx *c, const char *kind, char **tok, size_t n,
                          struct userdb_record *r)
{
    if (n < 3) {
        add_error(c->db, c->line, "%s: expected '%s ADDRESS TARGET...'", kind, kind);
        return false;
    }
    if (!address_arg(c, kind, tok[1], &r->key))
        return false;
    r->targets = petrel_calloc(n - 1, sizeof(char *));
    for (size_t i = 2; i < n; i++) {
        if (r->kind == USERDB_FORWARD && strcmp(tok[i], "keep") == 0) {
            r->keep = true;
            continue;
        }
        if (!address_arg(c, "target", tok[i], &r->targets[r->ntargets]))
            return false;
        r->ntargets++;
    }
    if (r->ntargets == 0) {
        add_error(c->db, c->line, "%s %s: no target address", kind, r->key);
        return false;
    }
    return true;
}

static void parse_line(struct line_ctx *c, char *line)
{
    char *tok[TOKENS_MAX];
    size_t n = split(line, tok);
    if (n == 0)
        return;
    if (n > TOKENS_MAX) {
        add_error(c->db, c->line, "more than %d targets", USERDB_TARGETS_MAX);
        return;
    }
    struct userdb_record r = {.line = c->line};
    bool ok;
    if (strcmp(tok[0], "domain") == 0) {
        r.kind = USERDB_DOMAIN;
        ok = parse_domain(c, tok, n, &r);
    } else if (strcmp(tok[0], "account") == 0) {
        r.kind = USERDB_ACCOUNT;
        ok = parse_account(c, tok, n, &r);
    } else if (strcmp(tok[0], "alias") == 0) {
        r.kind = USERDB_ALIAS;
        ok = parse_targets(c, "alias", tok, n, &r);
    } else if (strcmp(tok[0], "forward") == 0) {
        r.kind = USERDB_FORWARD;
        ok = parse_targets(c, "forward", tok, n, &r);
    } else {
        add_error(c->db, c->line, "unknown entry '%.40s' (domain, account, alias, forward)",
                  tok[0]);
        ok = false;
    }
    if (!ok) {
        free_record(&r);
        return;
    }
    struct userdb_file *db = c->db;
    if (db->count == db->capacity) {
        db->capacity = db->capacity ? db->capacity * 2 : 64;
        db->records = petrel_reallocarray(db->records, db->capacity, sizeof(r));
    }
    db->records[db->count++] = r;
}

/* --- the index --- */

/* Accounts and aliases share one namespace: an address is one or the other. */
static int kind_class(enum userdb_kind k) { return k == USERDB_ALIAS ? USERDB_ACCOUNT : (int)k; }

static size_t hash_key(int class, const char *key)
{
    size_t h = 1469598103934665603ULL ^ (size_t) class;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static size_t *slot_for(const struct userdb_file *db, int class, const char *key)
{
    size_t i = hash_key(class, key) & (db->nslots - 1);
    for (;;) {
        size_t *s = &db->slots[i];
        if (*s == SIZE_MAX)
            return s;
        const struct userdb_record *r = &db->records[*s];
        if (kind_class(r->kind) == class && strcmp(r->key, key) == 0)
            return s;
        i = (i + 1) & (db->nslots - 1);
    }
}

const struct userdb_record *userdb_find(const struct userdb_file *db, enum userdb_kind kind,
                                        const char *key)
{
    if (db->nslots == 0)
        return NULL;
    size_t s = *slot_for(db, kind_class(kind), key);
    if (s == SIZE_MAX || db->records[s].kind != kind)
        return NULL;
    return &db->records[s];
}

static const char *domain_of(const char *address) { return strrchr(address, '@') + 1; }

/* Check a record against those before it; false to drop it. */
static bool cross_check(struct userdb_file *db, size_t i)
{
    const struct userdb_record *r = &db->records[i];
    size_t *slot = slot_for(db, kind_class(r->kind), r->key);
    if (*slot != SIZE_MAX) {
        add_error(db, r->line, "%s is already defined on line %u", r->key, db->records[*slot].line);
        return false;
    }
    if (r->kind != USERDB_DOMAIN && userdb_find(db, USERDB_DOMAIN, domain_of(r->key)) == NULL) {
        add_error(db, r->line, "%s: domain %s is not declared (add 'domain %s' above)", r->key,
                  domain_of(r->key), domain_of(r->key));
        return false;
    }
    if (r->kind == USERDB_FORWARD && userdb_find(db, USERDB_ACCOUNT, r->key) == NULL) {
        add_error(db, r->line, "forward %s: no account of that address above", r->key);
        return false;
    }
    *slot = i;
    return true;
}

static void build_index(struct userdb_file *db)
{
    db->nslots = 16;
    while (db->nslots < db->count * 2)
        db->nslots *= 2;
    db->slots = petrel_malloc(db->nslots * sizeof(size_t));
    memset(db->slots, 0xff, db->nslots * sizeof(size_t));
    size_t kept = 0;
    for (size_t i = 0; i < db->count; i++) {
        if (i != kept)
            db->records[kept] = db->records[i];
        if (cross_check(db, kept))
            kept++;
        else
            free_record(&db->records[kept]);
    }
    db->count = kept;
}

void userdb_parse(const char *text, size_t len, struct userdb_file *db)
{
    memset(db, 0, sizeof(*db));
    struct line_ctx c = {.db = db};
    char *line = petrel_malloc(USERDB_LINE_MAX + 1);
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        c.line++;
        if (n > USERDB_LINE_MAX)
            add_error(db, c.line, "line longer than %d bytes", USERDB_LINE_MAX);
        else if (memchr(text + pos, '\0', n) != NULL)
            add_error(db, c.line, "NUL byte in line");
        else {
            memcpy(line, text + pos, n);
            line[n] = '\0';
            if (n > 0 && line[n - 1] == '\r')
                line[n - 1] = '\0';
            parse_line(&c, line);
        }
        pos += n + 1;
    }
    free(line);
    build_index(db);
}

void userdb_free(struct userdb_file *db)
{
    for (size_t i = 0; i < db->count; i++)
        free_record(&db->records[i]);
    free(db->records);
    free(db->errors);
    free(db->slots);
    memset(db, 0, sizeof(*db));
}
