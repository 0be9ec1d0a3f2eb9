/* Fuzz target for the storage module's name handling: folder names as an
 * IMAP client sends them, directory and file names found in a Maildir, and
 * user names. Beyond "no crash", it checks the invariants the store relies
 * on: a folder name and its directory convert back to each other exactly,
 * and no name ever leads out of the account root. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage_private.h"

#define NAME_MAX_ 1024

/* maildir.c reads these (module.c defines them in the module). */
struct storage_env storage_env;
bool (*storage_test_fault)(const char *point);

static void check_user_path(const char *user)
{
    char path[NAME_MAX_ * 4];
    if (!storage_foldername_user_path(user, "example.test", path, sizeof(path)))
        return;
    /* "domain/local": exactly one '/', no component "." or ".." or empty. */
    const char *slash = strchr(path, '/');
    if (slash == NULL || strchr(slash + 1, '/') != NULL || path[0] == '.' || slash[1] == '.' ||
        slash == path || slash[1] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > NAME_MAX_)
        return 0;
    char in[NAME_MAX_ + 1];
    memcpy(in, data, size);
    in[size] = '\0';

    char canon[NAME_MAX_ + 1], dir[NAME_MAX_ * 4], back[NAME_MAX_ + 1];
    if (storage_foldername_valid(in, canon, sizeof(canon))) {
        if (!storage_foldername_to_dir(canon, dir, sizeof(dir)))
            return 0; /* too long once escaped */
        if (strchr(dir, '/') != NULL || strcmp(dir, "..") == 0 || strcmp(dir, ".") == 0)
            abort();
        if (dir[0] == '\0') { /* INBOX is the account root itself */
            if (strcmp(canon, "INBOX") != 0)
                abort();
        } else if (!storage_foldername_from_dir(dir, back, sizeof(back)) ||
                   strcmp(back, canon) != 0) {
            abort();
        }
    }
    /* A directory entry of an account root maps to a name only if that
     * name maps back to the very same entry. */
    if (storage_foldername_from_dir(in, back, sizeof(back))) {
        if (!storage_foldername_to_dir(back, dir, sizeof(dir)) || strcmp(dir, in) != 0)
            abort();
    }
    check_user_path(in);

    struct storage_mdname md;
    if (storage_maildir_parse(in, &md) && strlen(md.base) > STORAGE_MAX_FILENAME)
        abort();
    return 0;
}
