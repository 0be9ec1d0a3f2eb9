#ifndef PETREL_CORE_INSTANCE_H
#define PETREL_CORE_INSTANCE_H

struct petrel_instance_opts {
    const char *dir;
    const char *domain;
    long port_base;
    const char *module_path;
    const char *user;
};

/* `petrelctl init`: write a complete, ready instance into dir. */
int petrel_instance_init(const struct petrel_instance_opts *o, const char **error_r);

/* The in-tree modules' conf.d files, generated from modules/<name>/<name>.conf
 * (scripts/embed-confd.sh); the list ends with a NULL name. */
struct petrel_confd_snippet {
    const char *name; /* "10-userdb_file.conf" */
    const char *text;
};
extern const struct petrel_confd_snippet petrel_confd_snippets[];

#endif
