/* Text to imap_arg trees for the SEARCH test and fuzzer (search_args.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "search_args.h"

struct reader {
    const char *p, *end;
    struct search_args *out;
};

static void free_list(struct imap_arg *args, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free((char *)args[i].str);
        free_list((struct imap_arg *)args[i].list, args[i].count);
    }
    free(args);
}

static bool read_quoted(struct reader *r, struct imap_arg *a)
{
    char *buf = petrel_malloc((size_t)(r->end - r->p) + 1);
    size_t n = 0;
    r->p++;
    while (r->p < r->end && *r->p != '"') {
        if (*r->p == '\\') {
            r->p++;
            if (r->p >= r->end || (*r->p != '\\' && *r->p != '"'))
                break;
        }
        buf[n++] = *r->p++;
    }
    if (r->p >= r->end || *r->p != '"') {
        free(buf);
        return false;
    }
    r->p++;
    buf[n] = '\0';
    a->type = IMAP_ARG_STRING;
    a->str = buf;
    a->len = n;
    return true;
}

/* {n}\r\n then n bytes. */
static bool read_literal(struct reader *r, struct imap_arg *a)
{
    size_t n = 0;
    const char *q = r->p + 1;
    while (q < r->end && *q >= '0' && *q <= '9' && n < 100000000u)
        n = n * 10 + (size_t)(*q++ - '0');
    if (q + 3 > r->end || q[0] != '}' || q[1] != '\r' || q[2] != '\n')
        return false;
    q += 3;
    if ((size_t)(r->end - q) < n)
        return false;
    char *buf = petrel_malloc(n + 1);
    memcpy(buf, q, n);
    buf[n] = '\0';
    a->type = IMAP_ARG_STRING;
    a->str = buf;
    a->len = n;
    a->literal = true;
    r->p = q + n;
    return true;
}

static bool read_atom(struct reader *r, struct imap_arg *a)
{
    const char *start = r->p;
    while (r->p < r->end && *r->p != ' ' && *r->p != '(' && *r->p != ')' && *r->p != '"')
        r->p++;
    size_t n = (size_t)(r->p - start);
    if (n == 0)
        return false;
    char *str = petrel_malloc(n + 1); /* may hold a NUL: not strndup */
    memcpy(str, start, n);
    str[n] = '\0';
    a->str = str;
    a->len = n;
    a->type = IMAP_ARG_ATOM;
    if (n == 3 && strncasecmp(start, "NIL", 3) == 0) {
        a->type = IMAP_ARG_NIL;
        free((char *)a->str);
        a->str = NULL;
        a->len = 0;
    }
    return true;
}

static bool read_seq(struct reader *r, unsigned depth, bool in_list, struct imap_arg **args_r,
                     size_t *count_r);

static bool read_one(struct reader *r, unsigned depth, struct imap_arg *a)
{
    memset(a, 0, sizeof(*a));
    if (++r->out->items > SEARCH_ARGS_MAX_ITEMS)
        return false;
    if (*r->p == '"')
        return read_quoted(r, a);
    if (*r->p == '{')
        return read_literal(r, a);
    if (*r->p != '(')
        return read_atom(r, a);
    if (depth >= SEARCH_ARGS_MAX_DEPTH)
        return false;
    r->p++;
    struct imap_arg *list;
    size_t count;
    a->type = IMAP_ARG_LIST;
    if (!read_seq(r, depth + 1, true, &list, &count))
        return false;
    a->list = list;
    a->count = count;
    return true;
}

static bool read_seq(struct reader *r, unsigned depth, bool in_list, struct imap_arg **args_r,
                     size_t *count_r)
{
    struct imap_arg *args = NULL;
    size_t count = 0;
    for (;;) {
        while (r->p < r->end && *r->p == ' ')
            r->p++;
        if (r->p >= r->end || *r->p == ')')
            break;
        args = petrel_realloc(args, (count + 1) * sizeof(*args));
        bool ok = read_one(r, depth, &args[count]);
        count++;
        if (!ok) {
            free_list(args, count);
            return false;
        }
    }
    bool closed = r->p < r->end && *r->p == ')';
    if (closed != in_list) {
        free_list(args, count);
        return false;
    }
    if (closed)
        r->p++;
    *args_r = args;
    *count_r = count;
    return true;
}

bool search_args_build(const char *text, size_t len, struct search_args *out)
{
    struct reader r = {.p = text, .end = text + len, .out = out};
    memset(out, 0, sizeof(*out));
    return read_seq(&r, 0, false, &out->args, &out->count);
}

void search_args_free(struct search_args *a)
{
    free_list(a->args, a->count);
    a->args = NULL;
    a->count = 0;
}
