/* The daemon's account must be its own: root gives everything away, and a
 * shared account (nobody) lets every other service that runs as it
 * replace what petreld's account may write and read what it may read. */
#include "config.h"

#include <string.h>

#include "runas.h"

#define SHARED_ID 65534 /* nobody, nogroup: the kernel's overflow id */

const char *petrel_runas_refusal(const char *user, uid_t uid, gid_t gid)
{
    if (uid == 0)
        return "is root: petreld runs as an account of its own";
    if (uid == SHARED_ID || strcmp(user, "nobody") == 0)
        return "is shared by other services (nobody): give petreld an account of its own, "
               "such as " PETREL_RUNAS_USER;
    if (gid == 0)
        return "would run in the root group: give petreld a group of its own";
    if (gid == SHARED_ID)
        return "would run in a group shared by other services (nogroup): give petreld a group "
               "of its own";
    return NULL;
}
