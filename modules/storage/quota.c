/* Quota usage per account: the sum over all folders, computed once and
 * then kept up to date by this process's own changes. The limits are the
 * caller's (from the user database); the check before a delivery is not
 * atomic with it, so two parallel deliveries may both pass at the edge. */
#include <string.h>

#include <petrel/mem.h>

#include "storage_private.h"

struct quota_sum {
    struct storage_account *acct;
    uint64_t bytes, messages;
    int ret;
};

static void add_folder(void *arg, const struct petrel_storage_folder_info *info)
{
    struct quota_sum *q = arg;
    struct storage_fstate *fs;
    struct petrel_storage_status st;
    if (q->ret != PETREL_STORAGE_OK || (info->attrs & PETREL_STORAGE_FOLDER_NONEXISTENT))
        return;
    if (storage_folder_get(q->acct, info->name, &fs) != PETREL_STORAGE_OK)
        return; /* deleted meanwhile */
    if ((q->ret = storage_folder_lock(fs)) == PETREL_STORAGE_OK) {
        q->ret = storage_index_status(fs->db, &st);
        storage_folder_unlock(fs);
        q->bytes += st.size;
        q->messages += st.messages;
    }
    storage_folder_put(fs);
}

int storage_quota_usage(struct petrel_mailbox *mbox, uint64_t *bytes_r, uint64_t *messages_r)
{
    struct storage_account *acct = mbox->acct;
    pthread_mutex_lock(&acct->quota_lock);
    if (acct->quota_known) {
        *bytes_r = acct->quota_bytes;
        *messages_r = acct->quota_messages;
        pthread_mutex_unlock(&acct->quota_lock);
        return PETREL_STORAGE_OK;
    }
    uint64_t gen = acct->quota_gen;
    pthread_mutex_unlock(&acct->quota_lock);
    struct quota_sum q = {acct, 0, 0, PETREL_STORAGE_OK};
    int ret = storage_folder_list(mbox, add_folder, &q);
    if (ret == PETREL_STORAGE_OK)
        ret = q.ret;
    if (ret != PETREL_STORAGE_OK)
        return ret;
    pthread_mutex_lock(&acct->quota_lock);
    if (acct->quota_gen == gen) {
        acct->quota_known = true;
        acct->quota_bytes = q.bytes;
        acct->quota_messages = q.messages;
    }
    pthread_mutex_unlock(&acct->quota_lock);
    *bytes_r = q.bytes;
    *messages_r = q.messages;
    return PETREL_STORAGE_OK;
}

int storage_quota_check(struct storage_account *acct, const struct petrel_storage_quota *q,
                        uint64_t add_bytes, uint64_t add_messages)
{
    uint64_t bytes, messages;
    struct petrel_mailbox m = {acct};
    if (q == NULL || (q->bytes == 0 && q->messages == 0))
        return PETREL_STORAGE_OK;
    int ret = storage_quota_usage(&m, &bytes, &messages);
    if (ret != PETREL_STORAGE_OK)
        return ret;
    if ((q->bytes != 0 && bytes + add_bytes > q->bytes) ||
        (q->messages != 0 && messages + add_messages > q->messages))
        return PETREL_STORAGE_OVER_QUOTA;
    return PETREL_STORAGE_OK;
}

void storage_quota_add(struct storage_account *acct, int64_t bytes, int64_t messages)
{
    pthread_mutex_lock(&acct->quota_lock);
    acct->quota_gen++;
    if (acct->quota_known) {
        acct->quota_bytes += (uint64_t)bytes;
        acct->quota_messages += (uint64_t)messages;
    }
    pthread_mutex_unlock(&acct->quota_lock);
}

void storage_quota_forget(struct storage_account *acct)
{
    pthread_mutex_lock(&acct->quota_lock);
    acct->quota_gen++;
    acct->quota_known = false;
    pthread_mutex_unlock(&acct->quota_lock);
}
