/* Reading the account file whole, for the module and for petrelctl alike. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "userdb_file.h"

#define FILE_MAX (1024LL * 1024 * 1024) /* a sanity bound: 1 GiB of text */

int userdb_read_file(const char *path, char **text_r, size_t *len_r, struct stat *st_r, char *why,
                     size_t why_size)
{
    /* O_NONBLOCK: a FIFO planted in the file's place must not hang us. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0 || fstat(fd, st_r) < 0) {
        petrel_snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st_r->st_mode) || st_r->st_size > FILE_MAX) {
        petrel_snprintf(why, why_size, "%s: %s", path,
                        S_ISREG(st_r->st_mode) ? "larger than 1 GiB" : "not a regular file");
        close(fd);
        return -1;
    }
    size_t size = (size_t)st_r->st_size, got = 0;
    char *text = petrel_malloc(size + 1);
    while (got < size) {
        ssize_t n = read(fd, text + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != size) {
        /* Shorter than fstat said (an I/O error, or a writer truncating it
         * in place): a partial file would drop accounts. */
        petrel_snprintf(why, why_size, "%s: read %zu of %zu bytes", path, got, size);
        free(text);
        return -1;
    }
    text[got] = '\0';
    *text_r = text;
    *len_r = got;
    return 1;
}
