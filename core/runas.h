/* The account petreld runs as: which ones it refuses, shared by petreld
 * (dropping privileges, --check-config) and `petrelctl init`. */
#ifndef PETREL_CORE_RUNAS_H
#define PETREL_CORE_RUNAS_H

#include <sys/types.h>

/* The account init creates, and the default of server.user. */
#define PETREL_RUNAS_USER "petrel"

/* Why petreld must not run as this user and group (a reason to follow
 * "server.user 'NAME' "), or NULL if it may. */
const char *petrel_runas_refusal(const char *user, uid_t uid, gid_t gid);

#endif
