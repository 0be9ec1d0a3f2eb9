/* Where a connection keeps its login (login.c): one running at a time,
 * and the failures so far. conn.c provides them, and so does the fuzzers'
 * fake connection, so that login.c needs nothing else of a connection. */
#ifndef PETREL_CORE_LOGIN_SLOT_H
#define PETREL_CORE_LOGIN_SLOT_H

#include <stdint.h>

struct petrel_conn;
struct petrel_login;

struct petrel_login **petrel_conn_login_slot(struct petrel_conn *c);
uint16_t *petrel_conn_login_errors(struct petrel_conn *c);
/* The connection is going away: free a login still waiting for lines. */
void petrel_login_drop(struct petrel_conn *c);

#endif
