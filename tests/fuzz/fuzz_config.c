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

static void try_load(void)
{
    const char *error = NULL;
    struct petrel_config *cfg = petrel_config_load(main_path, &error);
    if (cfg == NULL) {
        if (error == NULL || error[0] == '\0')
            abort();
        return;
    }
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
