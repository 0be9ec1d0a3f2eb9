/* SRS in the processing module (docs/processing.md, "SRS"): the secret
 * file, the sender a forwarded copy goes out with (outbound.c), the SRS
 * address of ours turned back into the one it stands for (expand.c), and
 * the queue service's answer for such an address at RCPT. The keys are
 * read at init or start and never change after: workers read them
 * without a lock. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "processing.h"

#define KEYS_MAX 16
#define KEY_FILE_MAX 16384
#define KEY_BYTES 32 /* of a key made here, written as hex */

static struct {
    char path[PATH_MAX];
    char primary[256]; /* srs_domain's default */
    char text[KEY_FILE_MAX + 1];
    const char *keys[KEYS_MAX];
    struct srs_keys k;
} srs;

/* The file's lines as keys: blank lines and '#' comments skipped, blanks
 * around a key dropped. */
static bool parse_keys(const char **error_r)
{
    char *p = srs.text;
    srs.k = (struct srs_keys){srs.keys, 0};
    while (*p != '\0') {
        char *nl = strchr(p, '\n'), *next = nl != NULL ? nl + 1 : p + strlen(p);
        char *end = nl != NULL ? nl : next;
        while (*p == ' ' || *p == '\t')
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        *end = '\0';
        if (*p != '\0' && *p != '#') {
            if (srs.k.nkeys == KEYS_MAX) {
                *error_r = "srs_secret_file has more than 16 keys";
                return false;
            }
            srs.keys[srs.k.nkeys++] = p;
        }
        p = next;
    }
    if (srs.k.nkeys == 0)
        *error_r = "srs_secret_file holds no key";
    return srs.k.nkeys > 0;
}

/* 0: read; -1 with errno ENOENT: absent; -1 otherwise: error_r says. */
static int read_keys(const char **error_r)
{
    int fd = open(srs.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *error_r = "cannot read srs_secret_file";
        return -1;
    }
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= KEY_FILE_MAX)
        n = read(fd, srs.text, KEY_FILE_MAX);
    close(fd);
    if (n < 0 || n != st.st_size || memchr(srs.text, '\0', (size_t)n) != NULL) {
        *error_r = "srs_secret_file is not a text file of at most 16 KiB";
        errno = EINVAL;
        return -1;
    }
    srs.text[n] = '\0';
    if (st.st_mode & 077)
        petrel_log(PETREL_LOG_WARNING, PROC_LOG,
                   "%s: others may read the SRS secret (mode %03o): chmod 600", srs.path,
                   (unsigned)(st.st_mode & 0777));
    errno = EINVAL;
    return parse_keys(error_r) ? 0 : -1;
}

static int sync_parent(void)
{
    char dir[PATH_MAX];
    petrel_strlcpy(dir, srs.path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    *(slash == dir ? slash + 1 : slash) = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = fd >= 0 ? fsync(fd) : -1;
    if (fd >= 0)
        close(fd);
    return r;
}

/* A fresh secret: 32 random bytes as hex, synced before it signs
 * anything (an address signed with a key lost in a crash is a bounce
 * lost). */
static int create_keys(const char **error_r)
{
    unsigned char raw[KEY_BYTES];
    char hex[2 * KEY_BYTES + 2];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        *error_r = "no random bytes for the SRS secret";
        return -1;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * KEY_BYTES] = '\n', hex[2 * KEY_BYTES + 1] = '\0';
    int fd = open(srs.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok =
        fd >= 0 && write(fd, hex, sizeof(hex) - 1) == (ssize_t)(sizeof(hex) - 1) && fsync(fd) == 0;
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (!ok || sync_parent() < 0) {
        petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: %s", srs.path, strerror(errno));
        if (fd >= 0)
            unlink(srs.path);
        *error_r = "cannot create srs_secret_file";
        return -1;
    }
    petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: a new SRS secret", srs.path);
    return read_keys(error_r);
}

int proc_srs_init(const struct proc_config *c, const char **error_r)
{
    petrel_strlcpy(srs.primary, petrel_primary_domain(), sizeof(srs.primary));
    const char *file = c->srs_secret_file;
    bool ok = file[0] == '\0'
                  ? petrel_snprintf(srs.path, sizeof(srs.path), "%s/srs.secret", proc_env.queue)
              : file[0] == '/'
                  ? petrel_strlcpy(srs.path, file, sizeof(srs.path))
                  : petrel_snprintf(srs.path, sizeof(srs.path), "%s/%s", petrel_data_dir(), file);
    if (!ok) {
        *error_r = "srs_secret_file is too long";
        return -1;
    }
    /* Before privileges drop, so a key file only root reads works; one
     * not there yet is made at start, in a directory that exists then. */
    if (read_keys(error_r) < 0 && errno != ENOENT) {
        petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: %s", srs.path, strerror(errno));
        return -1;
    }
    return 0;
}

static const char *srs_domain(const struct proc_settings *set)
{
    return set->srs_domain[0] != '\0' ? set->srs_domain : srs.primary;
}

int proc_srs_start(const char **error_r)
{
    struct petrel_config *gen;
    const struct proc_settings *set = proc_settings_ref(&gen);
    if (!proc_env.userdb->domain_is_local(srs_domain(set)))
        petrel_log(PETREL_LOG_WARNING, PROC_LOG,
                   "srs_domain %s is not one of our domains: replies to SRS addresses will be "
                   "refused",
                   srs_domain(set));
    petrel_config_unref(gen);
    if (srs.k.nkeys > 0 || read_keys(error_r) == 0)
        return 0;
    if (errno != ENOENT)
        return -1;
    /* The default place is the queue directory, which a first start
     * has not made yet (the runner makes the rest of it). */
    if (mkdir(proc_env.queue, 0700) < 0 && errno != EEXIST) {
        *error_r = "cannot create the queue directory";
        return -1;
    }
    return create_keys(error_r);
}

bool proc_srs_sender(const struct proc_settings *set, const struct queue_envelope *env, char *out,
                     size_t size)
{
    const char *at = strrchr(env->from, '@');
    if (!set->srs || at == NULL || srs.k.nkeys == 0 || proc_env.userdb->domain_is_local(at + 1))
        return false;
    enum srs_result r = srs_forward(&srs.k, env->from, srs_domain(set), time(NULL), out, size);
    if (r == SRS_OK)
        return true;
    petrel_log(PETREL_LOG_WARNING, PROC_LOG,
               "%s: forwarded copies keep the sender <%s>: its SRS form %s", env->id, env->from,
               r == SRS_TOO_LONG ? "would exceed 254 octets" : srs_result_text(r));
    return false;
}

enum srs_result proc_srs_reverse(const struct proc_settings *set, const char *address, char *out,
                                 size_t size)
{
    if (srs.k.nkeys == 0)
        return SRS_NOT_SRS;
    return srs_reverse(&srs.k, address, srs_domain(set), set->srs_max_days, time(NULL), out, size);
}

enum petrel_queue_address proc_local_address(const char *address, struct petrel_queue_reply *reply)
{
    struct petrel_config *gen;
    const struct proc_settings *set = proc_settings_ref(&gen);
    char original[SRS_ADDRESS_MAX + 1];
    enum srs_result r = proc_srs_reverse(set, address, original, sizeof(original));
    petrel_config_unref(gen);
    if (r == SRS_NOT_SRS)
        return PETREL_QUEUE_ADDRESS_UNKNOWN;
    if (r == SRS_OK)
        return PETREL_QUEUE_ADDRESS_ACCEPTED;
    petrel_log(PETREL_LOG_INFO, PROC_LOG, "<%s>: refused: invalid or expired SRS address (%s)",
               address, srs_result_text(r));
    *reply = (struct petrel_queue_reply){.code = 550};
    petrel_strlcpy(reply->enhanced, "5.1.1", sizeof(reply->enhanced));
    petrel_strlcpy(reply->text, "invalid or expired SRS address", sizeof(reply->text));
    return PETREL_QUEUE_ADDRESS_REFUSED;
}
