/* The users this process has IMAP sessions for, and how many each: the
 * per-user connection limit (max_connections_per_user). In memory, per
 * process, thread-safe, no I/O, so unit tests drive it. */
#ifndef PETREL_IMAP_REGISTRY_H
#define PETREL_IMAP_REGISTRY_H

#include <stdbool.h>

/* One more session for user, unless it has max already: false. */
bool imap_registry_take(const char *user, unsigned max);
/* A session of user ends. */
void imap_registry_release(const char *user);
/* Sessions of user now, for tests. */
unsigned imap_registry_count(const char *user);
/* Shutdown: everything freed. */
void imap_registry_free(void);

#endif
