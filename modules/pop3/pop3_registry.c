/* The lock and the last logins (pop3_registry.h): one hash table of
 * users under one mutex. An entry lives while its lock is held or its
 * login is remembered. The remembered ones are also on a list, oldest
 * first, so the stale ones are dropped from its head in order at every
 * lock taken, and the oldest goes when the table is full: the memory is
 * bounded by the sessions plus POP3_REGISTRY_MAX. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "pop3_registry.h"

#define BUCKETS 4096u

struct entry {
    struct entry *next;          /* in its bucket */
    struct entry *older, *newer; /* on the list, when remembered */
    bool held, remembered;
    int64_t login_ms;
    char user[];
};

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table[BUCKETS];
static struct entry *oldest, *newest;
static unsigned remembered;

static struct entry **find(const char *user)
{
    unsigned h = 5381;
    for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
        h = h * 33u + *p;
    struct entry **e = &table[h % BUCKETS];
    while (*e != NULL && strcmp((*e)->user, user) != 0)
        e = &(*e)->next;
    return e;
}

static void unlist(struct entry *e)
{
    *(e->older != NULL ? &e->older->newer : &oldest) = e->newer;
    *(e->newer != NULL ? &e->newer->older : &newest) = e->older;
    e->older = e->newer = NULL;
    e->remembered = false;
    remembered--;
}

/* The entry when nothing keeps it. */
static void drop_unused(struct entry **e)
{
    struct entry *gone = *e;
    if (gone->held || gone->remembered)
        return;
    *e = gone->next;
    free(gone);
}

static void forget(struct entry *e)
{
    unlist(e);
    drop_unused(find(e->user));
}

enum pop3_registry_verdict pop3_registry_take(const char *user, int64_t now_ms, int64_t delay_ms,
                                              int64_t *wait_ms_r)
{
    pthread_mutex_lock(&mutex);
    while (oldest != NULL && now_ms - oldest->login_ms >= delay_ms)
        forget(oldest);
    struct entry **e = find(user);
    enum pop3_registry_verdict v = POP3_REGISTRY_TAKEN;
    if (*e == NULL) {
        size_t n = strlen(user) + 1;
        *e = petrel_calloc(1, sizeof(**e) + n);
        memcpy((*e)->user, user, n);
    }
    if ((*e)->remembered) { /* younger than delay_ms: the loop above kept it */
        v = POP3_REGISTRY_DELAY;
        *wait_ms_r = delay_ms - (now_ms - (*e)->login_ms);
    } else if ((*e)->held) {
        v = POP3_REGISTRY_IN_USE;
    } else {
        (*e)->held = true;
    }
    pthread_mutex_unlock(&mutex);
    return v;
}

unsigned pop3_registry_login(const char *user, int64_t now_ms, int64_t delay_ms)
{
    if (delay_ms <= 0)
        return 0;
    unsigned dropped = 0;
    pthread_mutex_lock(&mutex);
    struct entry *e = *find(user);
    if (e != NULL) { /* held by the caller: always there */
        if (e->remembered)
            unlist(e);
        /* The list stays in time order when threads read the clock in
         * a different order than they get here. */
        e->login_ms = newest != NULL && newest->login_ms > now_ms ? newest->login_ms : now_ms;
        e->older = newest;
        *(newest != NULL ? &newest->newer : &oldest) = e;
        newest = e;
        e->remembered = true;
        remembered++;
        for (; remembered > POP3_REGISTRY_MAX; dropped++)
            forget(oldest);
    }
    pthread_mutex_unlock(&mutex);
    return dropped;
}

void pop3_registry_release(const char *user)
{
    pthread_mutex_lock(&mutex);
    struct entry **e = find(user);
    if (*e != NULL) {
        (*e)->held = false;
        drop_unused(e);
    }
    pthread_mutex_unlock(&mutex);
}

void pop3_registry_free(void)
{
    pthread_mutex_lock(&mutex);
    for (unsigned i = 0; i < BUCKETS; i++)
        while (table[i] != NULL) {
            struct entry *gone = table[i];
            table[i] = gone->next;
            free(gone);
        }
    oldest = newest = NULL;
    remembered = 0;
    pthread_mutex_unlock(&mutex);
}

unsigned pop3_registry_remembered(void)
{
    pthread_mutex_lock(&mutex);
    unsigned n = remembered;
    pthread_mutex_unlock(&mutex);
    return n;
}
