/* Declared configuration. A module describes its settings in a table; the
 * core walks the table, rejects unknown keys with file and line, applies
 * defaults and ranges, and hands the module a filled struct. */
#ifndef PETREL_SETTING_H
#define PETREL_SETTING_H

#include <stdbool.h>
#include <stddef.h>

enum petrel_setting_type {
    PETREL_SETTING_BOOL,     /* bool */
    PETREL_SETTING_INT,      /* long long */
    PETREL_SETTING_DURATION, /* long long, seconds; accepts 30, "30s", "5m", "2h", "1d" */
    PETREL_SETTING_SIZE,     /* long long, bytes; accepts 1024, "64k", "10M", "1G" */
    PETREL_SETTING_STRING,   /* char *, owned by the core */
    PETREL_SETTING_STRLIST,  /* char **, NULL-terminated, owned by the core */
    /* const struct petrel_ipset * (petrel/ipset.h), owned by the core and
     * never NULL (an empty set when unset): a list of addresses, CIDR
     * blocks and ranges, or one of them as a string, parsed once per
     * generation. Since ABI minor 6. */
    PETREL_SETTING_IPSET,
    /* struct petrel_setting_list: a list of groups ( { ... }, { ... } ),
     * each filled from its own sub-table (struct petrel_setting_group);
     * min and max bound the number of groups (both 0: unbounded). An
     * empty list when unset. Since ABI minor 6. */
    PETREL_SETTING_GROUPS,
};

enum petrel_setting_flags {
    PETREL_SETTING_REQUIRED = 1u << 0, /* no default: the file must set it */
    PETREL_SETTING_SECRET = 1u << 1,   /* value never logged */
    PETREL_SETTING_FIXED = 1u << 2,    /* needs a restart: a reload that changes it is refused */
};

struct petrel_setting {
    const char *name;
    enum petrel_setting_type type;
    size_t offset;             /* offsetof() into the module's config struct */
    const char *default_value; /* written as in the file: "true", "30s", "10M", "text" */
    long long min, max;        /* for numbers; both 0 means unbounded */
    unsigned flags;
    /* For strings: NULL-terminated list of allowed values. For GROUPS: a
     * const struct petrel_setting_group * in disguise (set by the macro),
     * which keeps the layout, the ABI and positional tables unchanged. */
    const char *const *choices;
};

/* How to fill one element of a GROUPS setting. Since ABI minor 6. */
struct petrel_setting_group {
    const struct petrel_setting *settings; /* the sub-table, ending with PETREL_SETTINGS_END */
    size_t size;                           /* sizeof one element */
};

/* The value of a GROUPS setting: count elements of group->size bytes each,
 * owned by the core and freed with the generation (items is NULL when
 * count is 0). Read it as an array of the element struct:
 *     const struct ldap_connector *c = cfg->connectors.items; ... c[i] ...
 * Since ABI minor 6. */
struct petrel_setting_list {
    size_t count;
    void *items;
};

#define PETREL_SETTINGS_END                                                                        \
    {                                                                                              \
        NULL, 0, 0, NULL, 0, 0, 0, NULL                                                            \
    }

/* Table entries, named after the struct member they fill (Since ABI minor
 * 6; they expand to the same initializers as a hand-written entry):
 *
 *     static const struct petrel_setting settings[] = {
 *         PETREL_SETTING_SIZE(struct my_config, max_size, "10M", 1024, 1LL << 32),
 *         PETREL_SETTING_BOOL(struct my_config, verbose, "false"),
 *         PETREL_SETTING_CHOICE(struct my_config, mode, "fast", mode_choices),
 *         PETREL_SETTING_STRING_F(struct my_config, password, NULL, PETREL_SETTING_SECRET),
 *         PETREL_SETTINGS_END,
 *     };
 *
 * def is the default as written in a file ("30s", "10M", "true"), or NULL
 * for none; min and max bound a number (both 0: unbounded). Each macro has
 * an _F form taking the flags (PETREL_SETTING_REQUIRED | ...) last. The
 * names double as the type names: a macro only expands when called. */
#define PETREL_SETTING_ENTRY_(st, field, t, def, lo, hi, fl)                                       \
    .name = #field, .type = (t), .offset = offsetof(st, field), .default_value = (def),            \
    .min = (lo), .max = (hi), .flags = (fl)

#define PETREL_SETTING_BOOL_F(st, field, def, fl)                                                  \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_BOOL, def, 0, 0, fl)                       \
    }
#define PETREL_SETTING_INT_F(st, field, def, lo, hi, fl)                                           \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_INT, def, lo, hi, fl)                      \
    }
#define PETREL_SETTING_DURATION_F(st, field, def, lo, hi, fl)                                      \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_DURATION, def, lo, hi, fl)                 \
    }
#define PETREL_SETTING_SIZE_F(st, field, def, lo, hi, fl)                                          \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_SIZE, def, lo, hi, fl)                     \
    }
#define PETREL_SETTING_STRING_F(st, field, def, fl)                                                \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_STRING, def, 0, 0, fl)                     \
    }
/* A string that must be one of choices (a NULL-terminated array). */
#define PETREL_SETTING_CHOICE_F(st, field, def, list, fl)                                          \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_STRING, def, 0, 0, fl), .choices = (list)  \
    }
/* A default for a list is one element. */
#define PETREL_SETTING_STRLIST_F(st, field, def, fl)                                               \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_STRLIST, def, 0, 0, fl)                    \
    }
#define PETREL_SETTING_IPSET_F(st, field, def, fl)                                                 \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_IPSET, def, 0, 0, fl)                      \
    }
/* A list of groups: field is a struct petrel_setting_list whose elements
 * are elem_type, filled from sub (a table of elem_type). lo..hi bound the
 * count. The descriptor is a compound literal, so use it in a table at
 * file scope (where the literal is static). */
#define PETREL_SETTING_GROUP_(sub, elem_type)                                                      \
    (&(const struct petrel_setting_group){.settings = (sub), .size = sizeof(elem_type)})
#define PETREL_SETTING_GROUPS_F(st, field, elem_type, sub, lo, hi, fl)                             \
    {                                                                                              \
        PETREL_SETTING_ENTRY_(st, field, PETREL_SETTING_GROUPS, NULL, lo, hi, fl),                 \
            .choices = (const char *const *)(const void *)PETREL_SETTING_GROUP_(sub, elem_type)    \
    }

#define PETREL_SETTING_BOOL(st, field, def) PETREL_SETTING_BOOL_F(st, field, def, 0)
#define PETREL_SETTING_INT(st, field, def, lo, hi) PETREL_SETTING_INT_F(st, field, def, lo, hi, 0)
#define PETREL_SETTING_DURATION(st, field, def, lo, hi)                                            \
    PETREL_SETTING_DURATION_F(st, field, def, lo, hi, 0)
#define PETREL_SETTING_SIZE(st, field, def, lo, hi) PETREL_SETTING_SIZE_F(st, field, def, lo, hi, 0)
#define PETREL_SETTING_STRING(st, field, def) PETREL_SETTING_STRING_F(st, field, def, 0)
#define PETREL_SETTING_CHOICE(st, field, def, list) PETREL_SETTING_CHOICE_F(st, field, def, list, 0)
#define PETREL_SETTING_STRLIST(st, field, def) PETREL_SETTING_STRLIST_F(st, field, def, 0)
#define PETREL_SETTING_IPSET(st, field, def) PETREL_SETTING_IPSET_F(st, field, def, 0)
#define PETREL_SETTING_GROUPS(st, field, elem_type, sub, lo, hi)                                   \
    PETREL_SETTING_GROUPS_F(st, field, elem_type, sub, lo, hi, 0)

#endif
