/* The per-user session counts: a hash table of users with sessions,
 * under one mutex (taken once per login and logout). An entry goes when
 * its count reaches zero, so the table holds only users logged in now. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "imap_registry.h"

#define BUCKETS 1024u

struct entry {
    struct entry *next;
    unsigned count;
    char user[];
};

static struct entry *table[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a: users are not secret and the chains stay short. */
static unsigned bucket(const char *user)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % BUCKETS;
}

static struct entry **find(const char *user)
{
    struct entry **e = &table[bucket(user)];
    while (*e != NULL && strcmp((*e)->user, user) != 0)
        e = &(*e)->next;
    return e;
}

bool imap_registry_take(const char *user, unsigned max)
{
    pthread_mutex_lock(&lock);
    struct entry **e = find(user);
    bool ok = true;
    if (*e == NULL) {
        size_t len = strlen(user);
        struct entry *n = petrel_calloc(1, sizeof(*n) + len + 1);
        memcpy(n->user, user, len + 1);
        *e = n;
    }
    if ((*e)->count >= max)
        ok = false;
    else
        (*e)->count++;
    pthread_mutex_unlock(&lock);
    return ok;
}

void imap_registry_release(const char *user)
{
    pthread_mutex_lock(&lock);
    struct entry **e = find(user);
    if (*e != NULL && --(*e)->count == 0) {
        struct entry *gone = *e;
        *e = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&lock);
}

unsigned imap_registry_count(const char *user)
{
    pthread_mutex_lock(&lock);
    struct entry **e = find(user);
    unsigned n = *e != NULL ? (*e)->count : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

void imap_registry_free(void)
{
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < BUCKETS; i++)
        while (table[i] != NULL) {
            struct entry *next = table[i]->next;
            free(table[i]);
            table[i] = next;
        }
    pthread_mutex_unlock(&lock);
}
