/* The one server state shared by the core's parts. */
#include "config.h"

#include "server.h"

struct petrel_server petrel_server = {.gen_lock = PTHREAD_RWLOCK_INITIALIZER};
