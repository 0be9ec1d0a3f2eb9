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
    const char *const *choices; /* for strings: NULL-terminated list of allowed values */
};

#define PETREL_SETTINGS_END                                                                        \
    {                                                                                              \
        NULL, 0, 0, NULL, 0, 0, 0, NULL                                                            \
    }

#endif
