/* Admin calls (petrel/admin.h): a command's rows rendered as an aligned
 * table or as JSON lines, its text and errors, its secret. The same code
 * runs in petreld (online) and in petrelctl (offline); only the
 * petrel_admin_io given to petrel_admin_exec differs. */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "admin_private.h"
#include "server.h"

#define OUT_FLUSH 16384           /* bytes gathered before they are written */
#define TEXT_MAX (1024 * 1024)    /* one printed text or message */
#define TABLE_CELLS_MAX 10000000u /* what a table keeps before it gives up */
#define ROW_FIELDS_MAX 256

struct field {
    char *key;
    char *text; /* shown in the table */
    char *json; /* the JSON value */
};

struct petrel_admin_call {
    const struct petrel_admin_found *found;
    struct petrel_config *gen;
    bool json, online;
    char *secret;
    const struct petrel_admin_io *io;
    struct petrel_buf out;
    int out_stream;
    struct field row[ROW_FIELDS_MAX];
    size_t nrow;
    bool row_overflow;
    /* The table: the first row's keys, then every row's cells. */
    char **cells;
    size_t ncols, ncells, cap;
    bool table_full;
};

/* --- safe text ----------------------------------------------------------- */

/* The length of a printable UTF-8 sequence at p (not a C1 control, an
 * overlong form or a surrogate), or 0. */
static size_t utf8_printable(const unsigned char *p, size_t n)
{
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
        return 0;
    return len;
}

/* Text for a terminal: control bytes and invalid UTF-8 as \xNN, tabs
 * kept (and newlines, when lines is set). */
static void put_safe(struct petrel_buf *b, const char *s, size_t len, bool lines)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = p[i] >= 0x80 ? utf8_printable(p + i, len - i) : 1;
        bool keep = p[i] == '\t' || (lines && p[i] == '\n');
        if (n == 0 || (p[i] < 0x20 && !keep) || p[i] == 0x7f) {
            petrel_buf_printf(b, "\\x%02X", p[i]);
            i++;
            continue;
        }
        petrel_buf_append(b, p + i, n);
        i += n;
    }
}

/* The buffer's text as a string of its own; the buffer is freed. */
static char *take(struct petrel_buf *b)
{
    char *s = petrel_malloc(b->len + 1);
    memcpy(s, petrel_buf_head(b), b->len);
    s[b->len] = '\0';
    petrel_buf_free(b);
    return s;
}

static char *safe_text(const char *s)
{
    struct petrel_buf b;
    petrel_buf_init(&b, TEXT_MAX);
    put_safe(&b, s, strlen(s), false);
    return take(&b);
}

/* A JSON string: valid UTF-8 kept, an invalid byte as U+FFFD. */
static void put_json(struct petrel_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    petrel_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        if (p[i] >= 0x80) {
            size_t n = utf8_printable(p + i, len - i);
            /* C1 controls are valid in JSON, but \u-escaped like C0. */
            if (n == 0 && p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) {
                petrel_buf_printf(b, "\\u%04x", p[i + 1]);
                i += 2;
            } else if (n == 0) {
                petrel_buf_append(b, "\\ufffd", 6);
                i++;
            } else {
                petrel_buf_append(b, p + i, n);
                i += n;
            }
            continue;
        }
        if (p[i] == '"' || p[i] == '\\')
            petrel_buf_printf(b, "\\%c", p[i]);
        else if (p[i] == '\n')
            petrel_buf_append(b, "\\n", 2);
        else if (p[i] == '\t')
            petrel_buf_append(b, "\\t", 2);
        else if (p[i] < 0x20 || p[i] == 0x7f)
            petrel_buf_printf(b, "\\u%04x", p[i]);
        else
            petrel_buf_append(b, p + i, 1);
        i++;
    }
    petrel_buf_append(b, "\"", 1);
}

static char *json_text(const char *s)
{
    struct petrel_buf b;
    petrel_buf_init(&b, SIZE_MAX);
    if (s == NULL)
        petrel_buf_append(&b, "null", 4);
    else
        put_json(&b, s);
    return take(&b);
}

/* --- output -------------------------------------------------------------- */

static void out_flush(struct petrel_admin_call *c)
{
    if (c->out.len > 0)
        c->io->write(c->io->arg, c->out_stream, petrel_buf_head(&c->out), c->out.len);
    petrel_buf_reset(&c->out);
}

static void out_write(struct petrel_admin_call *c, int stream, const char *data, size_t len)
{
    if (stream != c->out_stream || c->out.len + len > OUT_FLUSH)
        out_flush(c);
    c->out_stream = stream;
    if (len > OUT_FLUSH)
        c->io->write(c->io->arg, stream, data, len);
    else
        petrel_buf_append(&c->out, data, len);
}

static void out_buf(struct petrel_admin_call *c, int stream, struct petrel_buf *b)
{
    out_write(c, stream, petrel_buf_head(b), b->len);
    petrel_buf_free(b);
}

/* --- rows -------------------------------------------------------------- */

static void add_field(struct petrel_admin_call *c, const char *key, char *text, char *json)
{
    if (c->nrow == ROW_FIELDS_MAX) {
        c->row_overflow = true;
        free(text);
        free(json);
        return;
    }
    c->row[c->nrow++] = (struct field){petrel_strdup(key), text, json};
}

void petrel_admin_str(struct petrel_admin_call *call, const char *key, const char *value)
{
    add_field(call, key, value != NULL ? safe_text(value) : petrel_strdup("-"), json_text(value));
}

void petrel_admin_int(struct petrel_admin_call *call, const char *key, int64_t value)
{
    char n[32];
    snprintf(n, sizeof(n), "%lld", (long long)value);
    add_field(call, key, petrel_strdup(n), petrel_strdup(n));
}

void petrel_admin_bool(struct petrel_admin_call *call, const char *key, bool value)
{
    add_field(call, key, petrel_strdup(value ? "yes" : "no"),
              petrel_strdup(value ? "true" : "false"));
}

void petrel_admin_list(struct petrel_admin_call *call, const char *key, const char *const *values,
                       size_t n)
{
    struct petrel_buf t, j;
    petrel_buf_init(&t, TEXT_MAX);
    petrel_buf_init(&j, SIZE_MAX);
    petrel_buf_append(&j, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            petrel_buf_append(&t, ",", 1);
            petrel_buf_append(&j, ",", 1);
        }
        put_safe(&t, values[i], strlen(values[i]), false);
        put_json(&j, values[i]);
    }
    if (n == 0)
        petrel_buf_append(&t, "-", 1);
    petrel_buf_append(&j, "]", 1);
    add_field(call, key, take(&t), take(&j));
}

static void table_add(struct petrel_admin_call *c, char *cell)
{
    if (c->ncells == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->cells = petrel_reallocarray(c->cells, c->cap, sizeof(*c->cells));
    }
    c->cells[c->ncells++] = cell;
}

static void row_clear(struct petrel_admin_call *c)
{
    for (size_t i = 0; i < c->nrow; i++) {
        free(c->row[i].key);
        free(c->row[i].text);
        free(c->row[i].json);
    }
    c->nrow = 0;
}

void petrel_admin_row_end(struct petrel_admin_call *call)
{
    struct petrel_admin_call *c = call;
    if (c->json) {
        struct petrel_buf b;
        petrel_buf_init(&b, SIZE_MAX);
        petrel_buf_append(&b, "{", 1);
        for (size_t i = 0; i < c->nrow; i++) {
            if (i > 0)
                petrel_buf_append(&b, ",", 1);
            put_json(&b, c->row[i].key);
            petrel_buf_append(&b, ":", 1);
            petrel_buf_append(&b, c->row[i].json, strlen(c->row[i].json));
        }
        petrel_buf_append(&b, "}\n", 2);
        out_buf(c, PETREL_ADMIN_STDOUT, &b);
    } else if (!(c->found->cmd->flags & PETREL_ADMIN_OWN_TEXT) && !c->table_full) {
        if (c->ncells == 0) {
            c->ncols = c->nrow;
            for (size_t i = 0; i < c->nrow; i++)
                table_add(c, safe_text(c->row[i].key));
        }
        if (c->ncells + c->ncols > TABLE_CELLS_MAX) {
            c->table_full = true;
        } else {
            /* Every row has the first row's columns, in its order. */
            for (size_t col = 0; col < c->ncols; col++) {
                char *cell = NULL;
                if (col < c->nrow) {
                    cell = c->row[col].text;
                    c->row[col].text = NULL;
                }
                table_add(c, cell != NULL ? cell : petrel_strdup("-"));
            }
        }
    }
    row_clear(c);
}

/* Columns as wide as their widest cell (in characters), two spaces
 * apart; the last one is not padded. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        w += (*p & 0xc0) != 0x80;
    return w;
}

static void table_print(struct petrel_admin_call *c)
{
    if (c->ncols == 0)
        return;
    size_t *width = petrel_calloc(c->ncols, sizeof(*width));
    for (size_t i = 0; i < c->ncells; i++) {
        size_t w = text_width(c->cells[i]);
        if (w > width[i % c->ncols])
            width[i % c->ncols] = w;
    }
    for (size_t i = 0; i < c->ncells; i++) {
        struct petrel_buf b;
        petrel_buf_init(&b, SIZE_MAX);
        size_t col = i % c->ncols;
        petrel_buf_append(&b, c->cells[i], strlen(c->cells[i]));
        if (col + 1 < c->ncols) {
            for (size_t pad = text_width(c->cells[i]); pad < width[col] + 2; pad++)
                petrel_buf_append(&b, " ", 1);
        } else {
            petrel_buf_append(&b, "\n", 1);
        }
        out_buf(c, PETREL_ADMIN_STDOUT, &b);
    }
    free(width);
    if (c->table_full)
        petrel_admin_fail(c, "the listing was cut: more than %u cells", TABLE_CELLS_MAX);
}

/* --- text ----------------------------------------------------------------- */

void petrel_admin_print(struct petrel_admin_call *call, const char *fmt, ...)
{
    if (call->json)
        return;
    struct petrel_buf b;
    petrel_buf_init(&b, TEXT_MAX);
    va_list ap;
    va_start(ap, fmt);
    petrel_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    out_buf(call, PETREL_ADMIN_STDOUT, &b);
}

void petrel_admin_print_safe(struct petrel_admin_call *call, const char *text, size_t len)
{
    if (call->json)
        return;
    struct petrel_buf b;
    petrel_buf_init(&b, SIZE_MAX);
    put_safe(&b, text, len, false);
    out_buf(call, PETREL_ADMIN_STDOUT, &b);
}

int petrel_admin_fail(struct petrel_admin_call *call, const char *fmt, ...)
{
    struct petrel_buf msg, b;
    petrel_buf_init(&msg, TEXT_MAX);
    va_list ap;
    va_start(ap, fmt);
    petrel_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    petrel_buf_init(&b, SIZE_MAX);
    petrel_buf_append(&b, "petrelctl: ", 11);
    put_safe(&b, petrel_buf_head(&msg), msg.len, true);
    petrel_buf_append(&b, "\n", 1);
    petrel_buf_free(&msg);
    out_buf(call, PETREL_ADMIN_STDERR, &b);
    return 1;
}

/* --- usage ------------------------------------------------------------------ */

const struct petrel_admin_command *petrel_admin_table(const struct petrel_module *mod)
{
    return mod->abi_minor >= 7 ? mod->admin : NULL;
}

/* The length of the first word of name. */
static size_t first_word(const char *name) { return strcspn(name, " "); }

static bool in_group(const char *name, const char *group)
{
    size_t n = first_word(name);
    return n == strlen(group) && strncmp(name, group, n) == 0;
}

static void group_usage(const struct petrel_admin_command *table, const char *group,
                        struct petrel_buf *b)
{
    petrel_buf_printf(b, "usage: petrelctl [--config FILE] %s", group);
    bool first = true;
    for (const struct petrel_admin_command *c = table; c->name != NULL; c++) {
        if (!in_group(c->name, group))
            continue;
        const char *rest = c->name + first_word(c->name);
        rest += *rest == ' ';
        petrel_buf_printf(b, "%s%s%s%s", first ? " " : " | ", rest,
                          *rest != '\0' && c->usage[0] != '\0' ? " " : "", c->usage);
        first = false;
    }
    petrel_buf_append(b, "\n", 1);
}

int petrel_admin_group_usage(const struct petrel_ctx *ctx, const char *group,
                             const struct petrel_admin_io *io)
{
    struct petrel_buf b;
    petrel_buf_init(&b, SIZE_MAX);
    group_usage(petrel_admin_table(ctx->mod), group, &b);
    io->write(io->arg, PETREL_ADMIN_STDERR, petrel_buf_head(&b), b.len);
    petrel_buf_free(&b);
    return 2;
}

int petrel_admin_usage(struct petrel_admin_call *call)
{
    const struct petrel_admin_found *f = call->found;
    struct petrel_buf group, b;
    petrel_buf_init(&group, SIZE_MAX);
    petrel_buf_append(&group, f->cmd->name, first_word(f->cmd->name));
    petrel_buf_append(&group, "", 1);
    petrel_buf_init(&b, SIZE_MAX);
    if (f->ctx != NULL)
        group_usage(petrel_admin_table(f->ctx->mod), petrel_buf_head(&group), &b);
    else /* a core command: its own line */
        petrel_buf_printf(&b, "usage: petrelctl [--config FILE] %s%s%s\n", f->cmd->name,
                          f->cmd->usage[0] != '\0' ? " " : "", f->cmd->usage);
    petrel_buf_free(&group);
    out_buf(call, PETREL_ADMIN_STDERR, &b);
    return 2;
}

/* --- finding and running ------------------------------------------------- */

/* How many words of argv name takes, or 0 if it is not name. */
static int match(const char *name, int argc, char **argv)
{
    int words = 0;
    for (const char *p = name; *p != '\0'; words++) {
        size_t n = first_word(p);
        if (words >= argc || strlen(argv[words]) != n || strncmp(argv[words], p, n) != 0)
            return 0;
        p += n;
        p += *p == ' ';
    }
    return words;
}

bool petrel_admin_table_has(const struct petrel_admin_command *table, int argc, char **argv)
{
    for (const struct petrel_admin_command *c = table; c != NULL && c->name != NULL; c++)
        if (argc > 0 && (match(c->name, argc, argv) > 0 || in_group(c->name, argv[0])))
            return true;
    return false;
}

int petrel_admin_find(int argc, char **argv, struct petrel_admin_found *f)
{
    *f = (struct petrel_admin_found){0};
    struct petrel_ctx *group = NULL;
    for (struct petrel_ctx *m = petrel_server.modules; m != NULL && argc > 0; m = m->next) {
        const struct petrel_admin_command *table = petrel_admin_table(m->mod);
        for (const struct petrel_admin_command *c = table; c != NULL && c->name != NULL; c++) {
            int words = match(c->name, argc, argv);
            if (words > f->words) /* the longest name wins */
                *f = (struct petrel_admin_found){m, c, words};
            if (group == NULL && in_group(c->name, argv[0]))
                group = m;
        }
    }
    if (f->cmd != NULL)
        return 1;
    f->ctx = group;
    return group != NULL ? 0 : -1;
}

struct petrel_ctx *petrel_admin_ctx(const struct petrel_admin_call *call)
{
    return call->found->ctx;
}

const void *petrel_admin_config(const struct petrel_admin_call *call)
{
    return call->gen != NULL ? petrel_config_settings(call->gen, call->found->ctx) : NULL;
}

bool petrel_admin_online(const struct petrel_admin_call *call) { return call->online; }

bool petrel_admin_json(const struct petrel_admin_call *call) { return call->json; }

const char *petrel_admin_secret(struct petrel_admin_call *call)
{
    if (call->secret != NULL)
        return call->secret;
    if (!(call->found->cmd->flags & PETREL_ADMIN_SECRET)) {
        petrel_admin_fail(call, "%s reads no secret", call->found->cmd->name);
        return NULL;
    }
    if (call->online || call->io->read_secret == NULL) {
        petrel_admin_fail(call, "no secret came with the command");
        return NULL;
    }
    out_flush(call); /* what was said comes before the prompt */
    const char *error = "cannot read the secret";
    call->secret = call->io->read_secret(call->io->arg, &error);
    if (call->secret == NULL)
        petrel_admin_fail(call, "%s", error);
    return call->secret;
}

/* Output of a command the daemon runs for another: kept, and shown only
 * if it fails. */
static void keep_output(void *arg, int stream, const char *data, size_t len)
{
    if (stream == PETREL_ADMIN_STDERR)
        petrel_buf_append(arg, data, len);
}

int petrel_admin_daemon(struct petrel_admin_call *call, int argc, const char *const *argv)
{
    out_flush(call);
    if (!call->online)
        return call->io->daemon != NULL ? call->io->daemon(call->io->arg, argc, argv) : 0;
    struct petrel_admin_found f;
    char **words = (char **)argv;
    if (petrel_admin_find(argc, words, &f) != 1) {
        petrel_admin_fail(call, "the server has no command '%s'", argc > 0 ? argv[0] : "");
        return -1;
    }
    struct petrel_buf err;
    petrel_buf_init(&err, TEXT_MAX);
    struct petrel_admin_io io = {.write = keep_output, .arg = &err};
    int rc = petrel_admin_exec(&f, argc - f.words, words + f.words, false, true, NULL, &io);
    if (rc != 0)
        out_write(call, PETREL_ADMIN_STDERR, petrel_buf_head(&err), err.len);
    petrel_buf_free(&err);
    return rc == 0 ? 1 : -1;
}

int petrel_admin_exec(const struct petrel_admin_found *f, int argc, char **argv, bool json,
                      bool online, const char *secret, const struct petrel_admin_io *io)
{
    struct petrel_admin_call *c = petrel_calloc(1, sizeof(*c));
    c->found = f;
    c->json = json;
    c->online = online;
    c->io = io;
    c->secret = secret != NULL ? petrel_strdup(secret) : NULL;
    c->out_stream = PETREL_ADMIN_STDOUT;
    petrel_buf_init(&c->out, SIZE_MAX);
    c->gen = f->ctx != NULL ? petrel_ctx_config_ref(f->ctx) : NULL;
    int rc = f->cmd->run(c, argc, argv);
    if (c->nrow > 0) /* a row never ended: show it as well */
        petrel_admin_row_end(c);
    if (!json && !(f->cmd->flags & PETREL_ADMIN_OWN_TEXT))
        table_print(c);
    if (c->row_overflow)
        petrel_admin_fail(c, "fields past %d in a row were left out", ROW_FIELDS_MAX);
    out_flush(c);
    petrel_buf_free(&c->out);
    for (size_t i = 0; i < c->ncells; i++)
        free(c->cells[i]);
    free(c->cells);
    if (c->secret != NULL) {
        explicit_bzero(c->secret, strlen(c->secret));
        free(c->secret);
    }
    petrel_config_unref(c->gen);
    free(c);
    return rc;
}
