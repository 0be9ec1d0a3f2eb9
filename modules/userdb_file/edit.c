/* Administrative changes to the account file's text, for petrelctl: the
 * file is kept as lines, and a change rewrites, adds or removes only the
 * lines of the entries it touches, so comments, blank lines, order and
 * even lines that do not parse stay exactly as they were. No I/O: the
 * caller locks, reads and writes the file. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "userdb_file.h"

#define ALIAS_DEPTH_MAX 16 /* how deep the loop check follows local aliases */

static int edit_error(struct userdb_edit *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int edit_error(struct userdb_edit *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->error, sizeof(e->error), fmt, ap);
    va_end(ap);
    return -1;
}

static void push_line(struct userdb_edit *e, char *line)
{
    if (e->nlines == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->lines = petrel_reallocarray(e->lines, e->cap, sizeof(char *));
    }
    e->lines[e->nlines++] = line;
}

static void reparse(struct userdb_edit *e)
{
    size_t len;
    char *text = userdb_edit_text(e, &len);
    userdb_free(&e->db);
    userdb_parse(text, len, &e->db);
    free(text);
}

void userdb_edit_load(struct userdb_edit *e, const char *text, size_t len)
{
    memset(e, 0, sizeof(*e));
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        push_line(e, petrel_strndup(text + pos, n));
        pos += n + 1;
    }
    userdb_parse(text, len, &e->db);
}

char *userdb_edit_text(const struct userdb_edit *e, size_t *len_r)
{
    size_t len = 0;
    for (size_t i = 0; i < e->nlines; i++)
        len += strlen(e->lines[i]) + 1;
    char *text = petrel_malloc(len + 1), *p = text;
    for (size_t i = 0; i < e->nlines; i++) {
        size_t n = strlen(e->lines[i]);
        memcpy(p, e->lines[i], n);
        p[n] = '\n';
        p += n + 1;
    }
    *p = '\0';
    *len_r = len;
    return text;
}

void userdb_edit_free(struct userdb_edit *e)
{
    for (size_t i = 0; i < e->nlines; i++)
        free(e->lines[i]);
    free(e->lines);
    userdb_free(&e->db);
    memset(e, 0, sizeof(*e));
}

/* A trailing comment of a line, to keep when the line is rewritten: the
 * first token starting with '#', as the parser sees it. */
static const char *comment_of(const char *line)
{
    for (const char *p = line; *p != '\0'; p++) {
        if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t'))
            return p;
    }
    return NULL;
}

static int set_line(struct userdb_edit *e, size_t index, const struct userdb_record *r)
{
    char *buf = petrel_malloc(USERDB_LINE_MAX + 1);
    if (!userdb_format(r, buf, USERDB_LINE_MAX + 1)) {
        free(buf);
        return edit_error(e, "entry for %s would be longer than %d bytes", r->key, USERDB_LINE_MAX);
    }
    const char *comment = index < e->nlines ? comment_of(e->lines[index]) : NULL;
    size_t n = strlen(buf);
    if (comment != NULL && n + 1 + strlen(comment) <= USERDB_LINE_MAX)
        petrel_snprintf(buf + n, USERDB_LINE_MAX + 1 - n, " %s", comment);
    if (index < e->nlines) {
        free(e->lines[index]);
        e->lines[index] = buf;
    } else {
        push_line(e, buf);
    }
    e->changed = true;
    reparse(e);
    return 0;
}

static const char *const kind_words[] = {
    [USERDB_DOMAIN] = "domain",
    [USERDB_ACCOUNT] = "account",
    [USERDB_ALIAS] = "alias",
    [USERDB_FORWARD] = "forward",
};

/* Whether a line is an entry of one of kinds (a bit per kind) for key, as
 * the parser would split it; whether it parses does not matter. */
static bool line_has_key(const char *line, unsigned kinds, const char *key)
{
    const char *p = line + strspn(line, " \t");
    size_t n = strcspn(p, " \t\r");
    bool kind = false;
    for (size_t k = 0; k < sizeof(kind_words) / sizeof(kind_words[0]); k++)
        kind |= (kinds & (1U << k)) != 0 && strlen(kind_words[k]) == n &&
                memcmp(p, kind_words[k], n) == 0;
    if (!kind)
        return false;
    p += n;
    p += strspn(p, " \t");
    n = strcspn(p, " \t\r");
    return n == strlen(key) && strncasecmp(p, key, n) == 0;
}

/* Delete every line of those kinds for key: not only the one in force but
 * also any the parser skipped as a repeat, which would otherwise come into
 * force once the first is gone. Checks that none is left in force. */
static int delete_key(struct userdb_edit *e, unsigned kinds, const char *key)
{
    size_t kept = 0;
    for (size_t i = 0; i < e->nlines; i++) {
        if (line_has_key(e->lines[i], kinds, key))
            free(e->lines[i]);
        else
            e->lines[kept++] = e->lines[i];
    }
    if (kept != e->nlines)
        e->changed = true;
    e->nlines = kept;
    reparse(e);
    for (size_t k = 0; k < sizeof(kind_words) / sizeof(kind_words[0]); k++) {
        if ((kinds & (1U << k)) != 0 && userdb_find(&e->db, (enum userdb_kind)k, key) != NULL)
            return edit_error(e, "%s %s is still in force after deleting its lines", kind_words[k],
                              key);
    }
    return 0;
}

#define KIND(k) (1U << (k))
/* An address's entries: deleting one kind must not bring a skipped line of
 * another into force (an alias shadowing an old account line, say). */
#define ADDRESS_KINDS (KIND(USERDB_ACCOUNT) | KIND(USERDB_ALIAS) | KIND(USERDB_FORWARD))

static int norm_address(struct userdb_edit *e, const char *in, char *out)
{
    if (!userdb_address_normalise(in, out, USERDB_ADDRESS_MAX + 1))
        return edit_error(e, "'%.300s' is not a valid address (local@domain)", in);
    return 0;
}

static int norm_domain(struct userdb_edit *e, const char *in, char *out)
{
    size_t n = strlen(in);
    if (n > 253 || !userdb_domain_valid(in))
        return edit_error(e, "'%.260s' is not a valid domain name", in);
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    return 0;
}

static const struct userdb_record *find(const struct userdb_edit *e, enum userdb_kind k,
                                        const char *key)
{
    return userdb_find(&e->db, k, key);
}

/* The domain of an address must be declared before anything goes in it. */
static int need_domain(struct userdb_edit *e, const char *address)
{
    const char *d = strrchr(address, '@') + 1;
    if (find(e, USERDB_DOMAIN, d) == NULL)
        return edit_error(e, "unknown domain %s (add it with: petrelctl domain add %s)", d, d);
    return 0;
}

static int need_free(struct userdb_edit *e, const char *address)
{
    if (find(e, USERDB_ACCOUNT, address) != NULL)
        return edit_error(e, "account %s already exists", address);
    if (find(e, USERDB_ALIAS, address) != NULL)
        return edit_error(e, "%s already exists as an alias", address);
    return 0;
}

int userdb_edit_domain_add(struct userdb_edit *e, const char *domain)
{
    char d[256];
    if (norm_domain(e, domain, d) < 0)
        return -1;
    if (find(e, USERDB_DOMAIN, d) != NULL)
        return edit_error(e, "domain %s already exists", d);
    struct userdb_record r = {.kind = USERDB_DOMAIN, .key = d};
    return set_line(e, e->nlines, &r);
}

int userdb_edit_domain_del(struct userdb_edit *e, const char *domain)
{
    char d[256];
    if (norm_domain(e, domain, d) < 0)
        return -1;
    const struct userdb_record *r = find(e, USERDB_DOMAIN, d);
    if (r == NULL)
        return edit_error(e, "unknown domain %s", d);
    size_t used = 0;
    for (size_t i = 0; i < e->db.count; i++) {
        const struct userdb_record *x = &e->db.records[i];
        if (x->kind != USERDB_DOMAIN && strcmp(strrchr(x->key, '@') + 1, d) == 0)
            used++;
    }
    if (used > 0)
        return edit_error(e,
                          "domain %s still has %zu accounts, aliases or forwards: delete them "
                          "first",
                          d, used);
    return delete_key(e, KIND(USERDB_DOMAIN), d);
}

int userdb_edit_domain_catchall(struct userdb_edit *e, const char *domain, const char *address)
{
    char d[256], a[USERDB_ADDRESS_MAX + 1];
    if (norm_domain(e, domain, d) < 0 || (address != NULL && norm_address(e, address, a) < 0))
        return -1;
    const struct userdb_record *r = find(e, USERDB_DOMAIN, d);
    if (r == NULL)
        return edit_error(e, "unknown domain %s", d);
    /* An address of the domain that is neither an account nor an alias
     * would itself be caught by the catch-all: mail would loop. */
    if (address != NULL && strcmp(strrchr(a, '@') + 1, d) == 0 &&
        find(e, USERDB_ACCOUNT, a) == NULL && find(e, USERDB_ALIAS, a) == NULL)
        return edit_error(e, "catch-all %s is not an account or alias of %s: it would loop", a, d);
    struct userdb_record n = *r;
    n.catchall = address != NULL ? a : NULL;
    return set_line(e, r->line - 1, &n);
}

int userdb_edit_account_add(struct userdb_edit *e, const char *address, const char *hash,
                            long long quota_bytes, long long quota_messages)
{
    char a[USERDB_ADDRESS_MAX + 1];
    if (norm_address(e, address, a) < 0 || need_domain(e, a) < 0 || need_free(e, a) < 0)
        return -1;
    struct userdb_record r = {.kind = USERDB_ACCOUNT,
                              .key = a,
                              .hash = (char *)hash,
                              .quota_bytes = quota_bytes,
                              .quota_messages = quota_messages};
    return set_line(e, e->nlines, &r);
}

static const struct userdb_record *need_account(struct userdb_edit *e, const char *address, char *a)
{
    if (norm_address(e, address, a) < 0)
        return NULL;
    const struct userdb_record *r = find(e, USERDB_ACCOUNT, a);
    if (r == NULL)
        edit_error(e, "no account %s", a);
    return r;
}

int userdb_edit_account_del(struct userdb_edit *e, const char *address)
{
    char a[USERDB_ADDRESS_MAX + 1];
    const struct userdb_record *r = need_account(e, address, a);
    if (r == NULL)
        return -1;
    /* Its forwarding goes along. */
    return delete_key(e, ADDRESS_KINDS, a);
}

int userdb_edit_account_set(struct userdb_edit *e, const char *address, const char *hash,
                            long long quota_bytes, long long quota_messages, int disabled)
{
    char a[USERDB_ADDRESS_MAX + 1];
    const struct userdb_record *r = need_account(e, address, a);
    if (r == NULL)
        return -1;
    struct userdb_record n = *r;
    if (hash != NULL)
        n.hash = (char *)hash;
    if (quota_bytes >= 0)
        n.quota_bytes = quota_bytes;
    if (quota_messages >= 0)
        n.quota_messages = quota_messages;
    if (disabled >= 0)
        n.disabled = disabled != 0;
    return set_line(e, r->line - 1, &n);
}

/* Where mail for one address goes next: its alias targets, its
 * forwarding, or, for an unknown address of a domain with a catch-all, the
 * catch-all. NULL (and no targets) for an address that stops here. The
 * record is returned so that the caller can mark it visited. */
static const struct userdb_record *next_hops(const struct userdb_edit *e, const char *address,
                                             char *const **targets_r, size_t *n_r)
{
    static char *none[] = {NULL};
    const struct userdb_record *r = find(e, USERDB_ALIAS, address);
    if (r == NULL && find(e, USERDB_ACCOUNT, address) != NULL)
        r = find(e, USERDB_FORWARD, address);
    if (r != NULL) {
        *targets_r = r->targets;
        *n_r = r->ntargets;
        return r;
    }
    if (find(e, USERDB_ACCOUNT, address) == NULL) {
        r = find(e, USERDB_DOMAIN, strrchr(address, '@') + 1);
        if (r != NULL && r->catchall != NULL) {
            *targets_r = &r->catchall;
            *n_r = 1;
            return r;
        }
    }
    *targets_r = none;
    *n_r = 0;
    return NULL;
}

/* Whether delivering to target would come back to address through local
 * aliases, forwarding or catch-alls. A breadth-first walk that visits
 * each entry once (fan-out costs linear time, not exponential); a chain
 * deeper than ALIAS_DEPTH_MAX is refused as well. */
static bool loops_to(const struct userdb_edit *e, const char *address, const char *target)
{
    struct hop {
        const char *address;
        int depth;
    };
    size_t cap = 64, head = 0, tail = 0;
    struct hop *queue = petrel_calloc(cap, sizeof(*queue));
    bool *seen = petrel_calloc(e->db.count + 1, sizeof(bool));
    bool loop = false;
    queue[tail++] = (struct hop){target, 0};
    while (head < tail && !loop) {
        struct hop h = queue[head++];
        if (strcmp(h.address, address) == 0 || h.depth >= ALIAS_DEPTH_MAX) {
            loop = true;
            break;
        }
        char *const *t;
        size_t n;
        const struct userdb_record *r = next_hops(e, h.address, &t, &n);
        if (r == NULL || seen[r - e->db.records])
            continue;
        seen[r - e->db.records] = true;
        for (size_t i = 0; i < n; i++) {
            if (tail == cap) {
                cap *= 2;
                queue = petrel_reallocarray(queue, cap, sizeof(*queue));
            }
            queue[tail++] = (struct hop){t[i], h.depth + 1};
        }
    }
    free(queue);
    free(seen);
    return loop;
}

/* Normalised copies of targets, checked for loops back to address. */
static char **norm_targets(struct userdb_edit *e, const char *address, char *const *targets,
                           size_t n)
{
    char **out = petrel_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char t[USERDB_ADDRESS_MAX + 1];
        if (norm_address(e, targets[i], t) < 0 ||
            (loops_to(e, address, t) &&
             edit_error(e, "%s -> %s would be a loop back to %s", address, t, address) < 0)) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
        out[i] = petrel_strdup(t);
    }
    return out;
}

static void free_targets(char **t)
{
    for (size_t i = 0; t != NULL && t[i] != NULL; i++)
        free(t[i]);
    free(t);
}

static bool has_target(char *const *list, size_t n, const char *t)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], t) == 0)
            return true;
    }
    return false;
}

int userdb_edit_alias_add(struct userdb_edit *e, const char *address, char *const *targets,
                          size_t n)
{
    char a[USERDB_ADDRESS_MAX + 1];
    if (norm_address(e, address, a) < 0 || need_domain(e, a) < 0)
        return -1;
    if (find(e, USERDB_ACCOUNT, a) != NULL)
        return edit_error(e, "%s is an account: use 'forward set' to send its mail elsewhere", a);
    char **t = norm_targets(e, a, targets, n);
    if (t == NULL)
        return -1;
    const struct userdb_record *r = find(e, USERDB_ALIAS, a);
    size_t old = r != NULL ? r->ntargets : 0, total = old;
    char **all = petrel_calloc(old + n + 1, sizeof(char *));
    for (size_t i = 0; i < old; i++)
        all[i] = r->targets[i];
    for (size_t i = 0; i < n; i++) {
        if (!has_target(all, total, t[i]))
            all[total++] = t[i];
    }
    int rc = 0;
    if (total > USERDB_TARGETS_MAX)
        rc = edit_error(e, "an alias has at most %d targets", USERDB_TARGETS_MAX);
    else if (r != NULL && total == old)
        rc = edit_error(e, "alias %s already has these targets", a);
    else {
        struct userdb_record nr = {
            .kind = USERDB_ALIAS, .key = a, .targets = all, .ntargets = total};
        rc = set_line(e, r != NULL ? r->line - 1 : e->nlines, &nr);
    }
    free(all);
    free_targets(t);
    return rc;
}

int userdb_edit_alias_del(struct userdb_edit *e, const char *address, char *const *targets,
                          size_t n)
{
    char a[USERDB_ADDRESS_MAX + 1];
    if (norm_address(e, address, a) < 0)
        return -1;
    const struct userdb_record *r = find(e, USERDB_ALIAS, a);
    if (r == NULL)
        return edit_error(e, "no alias %s", a);
    char **keep = petrel_calloc(r->ntargets + 1, sizeof(char *));
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < r->ntargets; i++) {
        char t[USERDB_ADDRESS_MAX + 1];
        bool drop = n == 0;
        for (size_t k = 0; k < n && !drop; k++)
            drop =
                userdb_address_normalise(targets[k], t, sizeof(t)) && strcmp(t, r->targets[i]) == 0;
        if (drop)
            removed++;
        else
            keep[kept++] = r->targets[i];
    }
    int rc = 0;
    if (removed == 0)
        rc = edit_error(e, "alias %s has none of these targets", a);
    else if (kept == 0)
        rc = delete_key(e, ADDRESS_KINDS, a);
    else {
        struct userdb_record nr = *r;
        nr.targets = keep;
        nr.ntargets = kept;
        rc = set_line(e, r->line - 1, &nr);
    }
    free(keep);
    return rc;
}

int userdb_edit_forward_set(struct userdb_edit *e, const char *address, char *const *targets,
                            size_t n, bool keep)
{
    char a[USERDB_ADDRESS_MAX + 1];
    if (need_account(e, address, a) == NULL)
        return -1;
    if (n == 0 || n > USERDB_TARGETS_MAX)
        return edit_error(e, "forward takes 1 to %d targets", USERDB_TARGETS_MAX);
    char **t = norm_targets(e, a, targets, n);
    if (t == NULL)
        return -1;
    const struct userdb_record *f = find(e, USERDB_FORWARD, a);
    struct userdb_record nr = {
        .kind = USERDB_FORWARD, .key = a, .targets = t, .ntargets = n, .keep = keep};
    int rc = set_line(e, f != NULL ? f->line - 1 : e->nlines, &nr);
    free_targets(t);
    return rc;
}

int userdb_edit_forward_clear(struct userdb_edit *e, const char *address)
{
    char a[USERDB_ADDRESS_MAX + 1];
    if (need_account(e, address, a) == NULL)
        return -1;
    const struct userdb_record *f = find(e, USERDB_FORWARD, a);
    if (f == NULL)
        return edit_error(e, "%s has no forwarding", a);
    return delete_key(e, KIND(USERDB_FORWARD), a);
}
