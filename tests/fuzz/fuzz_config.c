/* libFuzzer target for the configuration loader: the input is written as a
 * petrel.conf and loaded with an empty conf.d, then as a conf.d file. Every
 * outcome must be a config or an error message, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char main_path[128], confd_path[160];

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
}

/* A module's settings with every kind of value, lists of groups nested two
 * deep among them, for a conf.d file's settings { } group. */
struct fz_server {
    char *host;
    long long port;
    char **tags;
    bool tls;
};
static const struct petrel_setting fz_server_settings[] = {
    PETREL_SETTING_STRING_F(struct fz_server, host, NULL, PETREL_SETTING_REQUIRED),
    PETREL_SETTING_INT(struct fz_server, port, "389", 1, 65535),
    PETREL_SETTING_STRLIST(struct fz_server, tags, NULL),
    PETREL_SETTING_BOOL(struct fz_server, tls, "false"),
    PETREL_SETTINGS_END,
};
struct fz_pool {
    const struct petrel_ipset *nets;
    struct petrel_setting_list servers;
};
static const struct petrel_setting fz_pool_settings[] = {
    PETREL_SETTING_IPSET(struct fz_pool, nets, NULL),
    PETREL_SETTING_GROUPS(struct fz_pool, servers, struct fz_server, fz_server_settings, 1, 4),
    PETREL_SETTINGS_END,
};
struct fz_module {
    long long size, wait;
    char *name;
    struct petrel_setting_list pools;
};
static const struct petrel_setting fz_module_settings[] = {
    PETREL_SETTING_SIZE(struct fz_module, size, "1M", 1, 1LL << 30),
    PETREL_SETTING_DURATION(struct fz_module, wait, "5s", 0, 3600),
    PETREL_SETTING_STRING(struct fz_module, name, "x"),
    PETREL_SETTING_GROUPS(struct fz_module, pools, struct fz_pool, fz_pool_settings, 0, 0),
    PETREL_SETTINGS_END,
};

static void try_load(void)
{
    const char *error = NULL;
    struct petrel_config *cfg = petrel_config_load(main_path, &error);
    if (cfg == NULL) {
        if (error == NULL || error[0] == '\0')
            abort();
        return;
    }
    if (cfg->nservices > 0 &&
        petrel_config_apply_module(&cfg->services[0], fz_module_settings, sizeof(struct fz_module),
                                   &error) < 0 &&
        (error == NULL || error[0] == '\0'))
        abort();
    petrel_config_unref(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/petrel-fuzz-config-%d", (int)getpid());
        char confd[96];
        snprintf(confd, sizeof(confd), "%s/conf.d", dir);
        mkdir(dir, 0700);
        mkdir(confd, 0700);
        snprintf(main_path, sizeof(main_path), "%s/petrel.conf", dir);
        snprintf(confd_path, sizeof(confd_path), "%s/conf.d/x.conf", dir);
    }
    if (size > 65536)
        return 0;
    unlink(confd_path);
    write_file(main_path, data, size);
    try_load();
    write_file(main_path, (const uint8_t *)"", 0);
    write_file(confd_path, data, size);
    try_load();
    return 0;
}
