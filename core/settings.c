/* The settings engine: fills a struct from a libconfig group by walking a
 * declared table (petrel/setting.h). Every error names file, line and the
 * setting, and nothing but the table's keys is accepted. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "cfg.h"
#include "cfg_error.h"
#include "ipset.h"

#define VALUE_MAX 4096 /* longest string setting */
#define LIST_MAX 1024  /* most elements in a list setting */

static _Thread_local char errbuf[1024];
/* A refusal that quotes the bad list element. */
static _Thread_local char whybuf[256];

const char *petrel_cfg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
    va_end(ap);
    return errbuf;
}

static bool parse_scaled(const char *text, long long *r, const char *units, const long long *scale)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*text))
        text++;
    if (!isdigit((unsigned char)*text))
        return false;
    long long v = strtoll(text, &end, 10);
    if (errno != 0)
        return false;
    long long mul = 1;
    if (*end != '\0') {
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (u == NULL || end[1] != '\0')
            return false;
        mul = scale[u - units];
    }
    if (v > LLONG_MAX / mul)
        return false;
    *r = v * mul;
    return true;
}

bool petrel_parse_duration(const char *text, long long *r)
{
    static const long long scale[] = {1, 60, 3600, 86400};
    return parse_scaled(text, r, "smhd", scale);
}

bool petrel_parse_size(const char *text, long long *r)
{
    static const long long scale[] = {1, 1024, 1024 * 1024, 1024LL * 1024 * 1024};
    return parse_scaled(text, r, "bkmg", scale);
}

static const struct petrel_setting *table_find(const struct petrel_setting *t, const char *name)
{
    for (; t->name != NULL; t++) {
        if (strcmp(t->name, name) == 0)
            return t;
    }
    return NULL;
}

static bool in_list(const char *const *list, const char *name)
{
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(*list, name) == 0)
            return true;
    }
    return false;
}

static int apply_group(const config_setting_t *group, const struct petrel_setting *table, void *dst,
                       const char *file, const char *const *extra, const char *path,
                       const char **error_r);

/* What a GROUPS setting's choices pointer carries (petrel/setting.h). */
static const struct petrel_setting_group *group_of(const struct petrel_setting *s)
{
    return (const struct petrel_setting_group *)(const void *)s->choices;
}

static void free_groups(const struct petrel_setting_group *g, struct petrel_setting_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        petrel_settings_free(g->settings, (char *)l->items + i * g->size);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void free_value(const struct petrel_setting *s, void *dst)
{
    char *p = (char *)dst + s->offset;
    if (s->type == PETREL_SETTING_STRING) {
        free(*(char **)p);
        *(char **)p = NULL;
    } else if (s->type == PETREL_SETTING_STRLIST) {
        char **list = *(char ***)p;
        for (size_t i = 0; list != NULL && list[i] != NULL; i++)
            free(list[i]);
        free(list);
        *(char ***)p = NULL;
    } else if (s->type == PETREL_SETTING_IPSET) {
        struct petrel_ipset *set = *(struct petrel_ipset **)p;
        if (set != NULL)
            petrel_ipset_free(set);
        free(set);
        *(struct petrel_ipset **)p = NULL;
    } else if (s->type == PETREL_SETTING_GROUPS) {
        free_groups(group_of(s), (struct petrel_setting_list *)p);
    }
}

/* Parse entries into a new set, replacing the old one only when all are
 * good. The refusal reads as the core's own networks settings do:
 * "setting 'relay_networks': '10.0.0.0/33': invalid prefix length". */
static const char *set_ipset(const struct petrel_setting *s, void *dst, const char *const *texts,
                             size_t n)
{
    struct petrel_ipset *set = petrel_calloc(1, sizeof(*set));
    for (size_t i = 0; i < n; i++) {
        const char *why;
        if (texts[i] == NULL) {
            why = "expects a list of strings";
        } else if (petrel_ipset_add(set, texts[i], &why)) {
            continue;
        } else {
            snprintf(whybuf, sizeof(whybuf), ": '%.100s': %s", texts[i], why);
            why = whybuf;
        }
        petrel_ipset_free(set);
        free(set);
        return why;
    }
    free_value(s, dst);
    *(struct petrel_ipset **)((char *)dst + s->offset) = set;
    return NULL;
}

/* Store one textual value (a default, or a string from the file). */
static const char *set_text(const struct petrel_setting *s, void *dst, const char *text)
{
    char *p = (char *)dst + s->offset;
    long long n;
    switch (s->type) {
    case PETREL_SETTING_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0)
            *(bool *)p = true;
        else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0)
            *(bool *)p = false;
        else
            return "expects true or false";
        return NULL;
    case PETREL_SETTING_INT:
        if (!parse_scaled(text, &n, "", NULL))
            return "expects a whole number";
        break;
    case PETREL_SETTING_DURATION:
        if (!petrel_parse_duration(text, &n))
            return "expects a duration such as 30, \"30s\", \"5m\", \"2h\" or \"1d\"";
        break;
    case PETREL_SETTING_SIZE:
        if (!petrel_parse_size(text, &n))
            return "expects a size such as 1024, \"64k\", \"10M\" or \"1G\"";
        break;
    case PETREL_SETTING_STRING:
        if (strlen(text) > VALUE_MAX)
            return "is too long";
        if (s->choices != NULL && !in_list(s->choices, text))
            return "has a value that is not one of the allowed choices";
        free_value(s, dst);
        *(char **)p = petrel_strdup(text);
        return NULL;
    case PETREL_SETTING_STRLIST:
        free_value(s, dst);
        *(char ***)p = petrel_calloc(2, sizeof(char *));
        (*(char ***)p)[0] = petrel_strdup(text);
        return NULL;
    case PETREL_SETTING_IPSET:
        return set_ipset(s, dst, &text, 1);
    case PETREL_SETTING_GROUPS:
        return "expects a list of groups ( { ... }, ... )";
    }
    if ((s->min != 0 || s->max != 0) && (n < s->min || n > s->max))
        return "is out of range";
    *(long long *)p = n;
    return NULL;
}

static const char *set_list(const struct petrel_setting *s, void *dst, const config_setting_t *v)
{
    int count = config_setting_length(v);
    if (count > LIST_MAX)
        return "has too many elements";
    if (s->type == PETREL_SETTING_IPSET) {
        const char *texts[LIST_MAX];
        for (int i = 0; i < count; i++)
            texts[i] = config_setting_get_string_elem(v, i);
        return set_ipset(s, dst, texts, (size_t)count);
    }
    char **list = petrel_calloc((size_t)count + 1, sizeof(char *));
    for (int i = 0; i < count; i++) {
        const char *e = config_setting_get_string_elem(v, i);
        if (e == NULL || strlen(e) > VALUE_MAX) {
            for (int j = 0; j < i; j++)
                free(list[j]);
            free(list);
            return "expects a list of strings";
        }
        list[i] = petrel_strdup(e);
    }
    free_value(s, dst);
    *(char ***)((char *)dst + s->offset) = list;
    return NULL;
}

static const char *set_value(const struct petrel_setting *s, void *dst, const config_setting_t *v)
{
    char num[32];
    switch (config_setting_type(v)) {
    case CONFIG_TYPE_STRING:
        return set_text(s, dst, config_setting_get_string(v));
    case CONFIG_TYPE_BOOL:
        if (s->type != PETREL_SETTING_BOOL)
            return "does not take true or false";
        *(bool *)((char *)dst + s->offset) = config_setting_get_bool(v);
        return NULL;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (s->type == PETREL_SETTING_BOOL || s->type == PETREL_SETTING_STRING ||
            s->type == PETREL_SETTING_STRLIST || s->type == PETREL_SETTING_IPSET ||
            s->type == PETREL_SETTING_GROUPS)
            return "does not take a number";
        if (config_setting_get_int64(v) < 0)
            return "must not be negative";
        snprintf(num, sizeof(num), "%lld", config_setting_get_int64(v));
        return set_text(s, dst, num);
    case CONFIG_TYPE_ARRAY:
    case CONFIG_TYPE_LIST:
        if (s->type == PETREL_SETTING_GROUPS)
            return "expects a list of groups ( { ... }, ... )";
        if (s->type != PETREL_SETTING_STRLIST && s->type != PETREL_SETTING_IPSET)
            return "does not take a list";
        return set_list(s, dst, v);
    default:
        return "has a value of the wrong type";
    }
}

int petrel_settings_defaults(const struct petrel_setting *table, void *dst, const char **error_r)
{
    for (const struct petrel_setting *s = table; s->name != NULL; s++) {
        if (s->type == PETREL_SETTING_IPSET && s->default_value == NULL) {
            set_ipset(s, dst, NULL, 0); /* never NULL: an empty set */
            continue;
        }
        if (s->type == PETREL_SETTING_GROUPS) {
            free_value(s, dst); /* an empty list */
            continue;
        }
        if (s->default_value == NULL)
            continue;
        const char *why = set_text(s, dst, s->default_value);
        if (why != NULL) {
            *error_r = petrel_cfg_error("built-in default of %s %s", s->name, why);
            return -1;
        }
    }
    return 0;
}

/* max 0 is "no bound of its own": min alone asks for at least min. */
static long long groups_max(const struct petrel_setting *s)
{
    return s->max != 0 && s->max < LIST_MAX ? s->max : LIST_MAX;
}

static bool groups_count_ok(const struct petrel_setting *s, int n)
{
    return n >= s->min && n <= groups_max(s);
}

/* A GROUPS setting: each element of the list is a group filled from the
 * sub-table, and its errors name the path ("connectors[1].port"). All
 * elements or none: the old value stays on error. */
static int set_groups(const struct petrel_setting *s, void *dst, const config_setting_t *v,
                      const char *file, const char *name, const char **error_r)
{
    int line = config_setting_source_line(v);
    int n = config_setting_length(v);
    /* () is a LIST; libconfig reads [] as an empty ARRAY. */
    if (config_setting_type(v) != CONFIG_TYPE_LIST &&
        (config_setting_type(v) != CONFIG_TYPE_ARRAY || n > 0)) {
        *error_r = petrel_cfg_error("%s:%d: setting '%s' expects a list of groups ( { ... }, "
                                    "... )",
                                    file, line, name);
        return -1;
    }
    if (!groups_count_ok(s, n)) {
        *error_r = petrel_cfg_error("%s:%d: setting '%s' has %d groups, not %lld to %lld", file,
                                    line, name, n, s->min, groups_max(s));
        return -1;
    }
    struct petrel_setting_list l = {0, n > 0 ? petrel_calloc((size_t)n, group_of(s)->size) : NULL};
    int ret = 0;
    for (int i = 0; i < n && ret == 0; i++) {
        const config_setting_t *g = config_setting_get_elem(v, i);
        void *elem = (char *)l.items + (size_t)i * group_of(s)->size;
        char path[256];
        petrel_snprintf(path, sizeof(path), "%s[%d]", name, i);
        l.count++;
        if (!config_setting_is_group(g)) {
            *error_r = petrel_cfg_error("%s:%d: setting '%s' must be a group { ... }", file,
                                        config_setting_source_line(g), path);
            ret = -1;
        } else {
            ret = apply_group(g, group_of(s)->settings, elem, file, NULL, path, error_r);
        }
    }
    if (ret < 0) {
        free_groups(group_of(s), &l);
        return -1;
    }
    free_value(s, dst);
    *(struct petrel_setting_list *)((char *)dst + s->offset) = l;
    return 0;
}

/* "name", or "path.name" inside a group of a list. */
static const char *full_name(char *buf, size_t size, const char *path, const char *name)
{
    if (path == NULL)
        return name;
    petrel_snprintf(buf, size, "%s.%s", path, name);
    return buf;
}

static int apply_group(const config_setting_t *group, const struct petrel_setting *table, void *dst,
                       const char *file, const char *const *extra, const char *path,
                       const char **error_r)
{
    char fullbuf[320];
    if (petrel_settings_defaults(table, dst, error_r) < 0)
        return -1;
    int count = group != NULL ? config_setting_length(group) : 0;
    for (int i = 0; i < count; i++) {
        const config_setting_t *v = config_setting_get_elem(group, i);
        const char *name = config_setting_name(v);
        int line = config_setting_source_line(v);
        if (name == NULL) {
            *error_r = petrel_cfg_error("%s:%d: expected name = value", file, line);
            return -1;
        }
        if (in_list(extra, name))
            continue;
        const char *full = full_name(fullbuf, sizeof(fullbuf), path, name);
        const struct petrel_setting *s = table_find(table, name);
        if (s == NULL) {
            *error_r = petrel_cfg_error("%s:%d: unknown setting '%s'", file, line, full);
            return -1;
        }
        if (s->type == PETREL_SETTING_GROUPS) {
            if (set_groups(s, dst, v, file, full, error_r) < 0)
                return -1;
            continue;
        }
        const char *why = set_value(s, dst, v);
        if (why != NULL) {
            /* An IPSET refusal quotes the element: "'name': 'x': why". */
            *error_r = petrel_cfg_error("%s:%d: setting '%s'%s%s", file, line, full,
                                        why[0] == ':' ? "" : " ", why);
            return -1;
        }
    }
    for (const struct petrel_setting *s = table; s->name != NULL; s++) {
        bool unset = group == NULL || config_setting_get_member(group, s->name) == NULL;
        int line = group != NULL ? config_setting_source_line(group) : 0;
        if (unset && s->type == PETREL_SETTING_GROUPS && !groups_count_ok(s, 0)) {
            *error_r = petrel_cfg_error("%s:%d: setting '%s' has 0 groups, not %lld to %lld", file,
                                        line, full_name(fullbuf, sizeof(fullbuf), path, s->name),
                                        s->min, groups_max(s));
            return -1;
        }
        if ((s->flags & PETREL_SETTING_REQUIRED) && unset) {
            *error_r = petrel_cfg_error("%s:%d: required setting '%s' is missing", file, line,
                                        full_name(fullbuf, sizeof(fullbuf), path, s->name));
            return -1;
        }
    }
    return 0;
}

int petrel_settings_apply(const config_setting_t *group, const struct petrel_setting *table,
                          void *dst, const char *file, const char *const *extra,
                          const char **error_r)
{
    return apply_group(group, table, dst, file, extra, NULL, error_r);
}

void petrel_settings_free(const struct petrel_setting *table, void *dst)
{
    for (const struct petrel_setting *s = table; s->name != NULL; s++)
        free_value(s, dst);
}

static bool same_value(const struct petrel_setting *s, const void *a, const void *b)
{
    const char *pa = (const char *)a + s->offset, *pb = (const char *)b + s->offset;
    switch (s->type) {
    case PETREL_SETTING_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    case PETREL_SETTING_STRING: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
    }
    case PETREL_SETTING_STRLIST: {
        char *const *x = *(char **const *)pa, *const *y = *(char **const *)pb;
        size_t i = 0;
        for (; x != NULL && y != NULL && x[i] != NULL && y[i] != NULL; i++) {
            if (strcmp(x[i], y[i]) != 0)
                return false;
        }
        return (x == NULL || x[i] == NULL) && (y == NULL || y[i] == NULL);
    }
    case PETREL_SETTING_IPSET: {
        const struct petrel_ipset *x = *(struct petrel_ipset *const *)pa,
                                  *y = *(struct petrel_ipset *const *)pb;
        size_t nx = x != NULL ? x->count : 0, ny = y != NULL ? y->count : 0;
        return nx == ny && (nx == 0 || memcmp(x->ranges, y->ranges, nx * sizeof(*x->ranges)) == 0);
    }
    case PETREL_SETTING_GROUPS: {
        const struct petrel_setting_list *x = (const void *)pa, *y = (const void *)pb;
        if (x->count != y->count)
            return false;
        for (size_t i = 0; i < x->count; i++) {
            size_t at = i * group_of(s)->size;
            for (const struct petrel_setting *e = group_of(s)->settings; e->name != NULL; e++) {
                if (!same_value(e, (const char *)x->items + at, (const char *)y->items + at))
                    return false;
            }
        }
        return true;
    }
    default:
        return *(const long long *)pa == *(const long long *)pb;
    }
}

static bool has_fixed(const struct petrel_setting *table)
{
    for (const struct petrel_setting *e = table; e->name != NULL; e++) {
        if ((e->flags & PETREL_SETTING_FIXED) ||
            (e->type == PETREL_SETTING_GROUPS && has_fixed(group_of(e)->settings)))
            return true;
    }
    return false;
}

/* A FIXED setting inside the groups of a list that is not FIXED itself:
 * changed when the list grew or shrank, or when an element's differs. */
static bool groups_fixed_changed(const struct petrel_setting *s, const void *a, const void *b)
{
    const struct petrel_setting_list *x = (const void *)((const char *)a + s->offset),
                                     *y = (const void *)((const char *)b + s->offset);
    if (!has_fixed(group_of(s)->settings))
        return false;
    if (x->count != y->count)
        return true;
    for (size_t i = 0; i < x->count; i++) {
        size_t at = i * group_of(s)->size;
        if (petrel_settings_fixed_changed(group_of(s)->settings, (const char *)x->items + at,
                                          (const char *)y->items + at) != NULL)
            return true;
    }
    return false;
}

const char *petrel_settings_fixed_changed(const struct petrel_setting *table, const void *a,
                                          const void *b)
{
    for (const struct petrel_setting *s = table; s->name != NULL; s++) {
        if ((s->flags & PETREL_SETTING_FIXED) && !same_value(s, a, b))
            return s->name;
        if (s->type == PETREL_SETTING_GROUPS && groups_fixed_changed(s, a, b))
            return s->name;
    }
    return NULL;
}
