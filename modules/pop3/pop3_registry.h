/* The maildrops this process knows of: which are held by a session (the
 * lock, RFC 1939 section 8) and when each user last logged in (RFC 2449
 * section 6.5, LOGIN-DELAY). In memory and per process. Thread-safe; no
 * I/O, the time is passed in (monotonic milliseconds), so unit tests
 * drive it. */
#ifndef PETREL_POP3_REGISTRY_H
#define PETREL_POP3_REGISTRY_H

#include <stdint.h>

/* Remembered logins at most; when full, the oldest is forgotten (its
 * user may log in again before the delay is over), a login is never
 * refused for room. About 64 bytes each. */
#define POP3_REGISTRY_MAX 100000u

enum pop3_registry_verdict {
    POP3_REGISTRY_TAKEN,  /* the lock is the caller's */
    POP3_REGISTRY_IN_USE, /* another session holds it */
    POP3_REGISTRY_DELAY,  /* the last login was less than delay_ms ago */
};

/* Take user's lock, unless, with delay_ms > 0, the last login was less
 * than delay_ms before now_ms (then *wait_ms_r is the time left; checked
 * first, so a session that is still closing cannot make it IN_USE), or
 * another session holds it. Logins older than delay_ms are forgotten on
 * the way. */
enum pop3_registry_verdict pop3_registry_take(const char *user, int64_t now_ms, int64_t delay_ms,
                                              int64_t *wait_ms_r);
/* The holder of user's lock logged in at now_ms: remembered when
 * delay_ms > 0. Returns the logins forgotten because the table was
 * full (0 or 1). */
unsigned pop3_registry_login(const char *user, int64_t now_ms, int64_t delay_ms);
/* The session ends: the lock goes, the login time stays. */
void pop3_registry_release(const char *user);
/* Shutdown: everything forgotten and freed. */
void pop3_registry_free(void);
/* Logins remembered, for tests. */
unsigned pop3_registry_remembered(void);

#endif
