/* Change notifications: watchers of a folder (or of the whole account) are
 * called on the changing thread after each committed change, under the
 * account's watch lock, so that unwatch() can promise the callback is not
 * running and will not run again. */
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "storage_private.h"

int storage_notify_watch(struct petrel_mailbox *mbox, const char *folder,
                         petrel_storage_watch_fn *fn, void *arg, struct petrel_storage_watch **r)
{
    char canon[PETREL_STORAGE_MAX_NAME + 1];
    if (fn == NULL)
        return PETREL_STORAGE_INVALID_ARG;
    if (folder != NULL && !storage_foldername_valid(folder, canon, sizeof(canon)))
        return PETREL_STORAGE_INVALID_NAME;
    struct petrel_storage_watch *w = petrel_calloc(1, sizeof(*w));
    struct storage_account *acct = mbox->acct;
    w->acct = acct;
    storage_mailbox_hold(acct);
    w->folder = folder != NULL ? petrel_strdup(canon) : NULL;
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&acct->watch_lock);
    w->next = acct->watches;
    acct->watches = w;
    pthread_mutex_unlock(&acct->watch_lock);
    *r = w;
    return PETREL_STORAGE_OK;
}

void storage_notify_unwatch(struct petrel_storage_watch *w)
{
    if (w == NULL)
        return;
    struct storage_account *acct = w->acct;
    pthread_mutex_lock(&acct->watch_lock);
    for (struct petrel_storage_watch **p = &acct->watches; *p != NULL; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&acct->watch_lock);
    free(w->folder);
    free(w);
    storage_mailbox_release(acct);
}

void storage_notify(struct storage_account *acct, const char *folder)
{
    pthread_mutex_lock(&acct->watch_lock);
    for (struct petrel_storage_watch *w = acct->watches; w != NULL; w = w->next)
        if (w->folder == NULL || (folder != NULL && strcmp(w->folder, folder) == 0))
            w->fn(w->arg);
    pthread_mutex_unlock(&acct->watch_lock);
}
