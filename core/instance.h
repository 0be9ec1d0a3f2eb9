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

#endif
