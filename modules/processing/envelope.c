/* Queue envelope files: one "key value" per line, recipients as
 * "rcpt STATE ROUTE NOTIFY address<TAB>original<TAB>orcpt<TAB>reason".
 * Values never hold control characters (they are replaced on writing), so
 * a line is always a whole field. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "envelope.h"

#define MAGIC "petrel-queue 1"

void queue_envelope_init(struct queue_envelope *env) { memset(env, 0, sizeof(*env)); }

static void rcpt_free(struct queue_rcpt *r)
{
    free(r->address);
    free(r->original);
    free(r->dsn_orcpt);
    free(r->reason);
    free(r->next_hop);
}

void queue_envelope_free(struct queue_envelope *env)
{
    for (size_t i = 0; i < env->nrcpts; i++)
        rcpt_free(&env->rcpts[i]);
    free(env->rcpts);
    free(env->from);
    free(env->helo);
    free(env->client_ip);
    free(env->protocol);
    free(env->auth_user);
    free(env->tls_cipher);
    free(env->tls_version);
    free(env->envid);
    memset(env, 0, sizeof(*env));
}

static char *dup_or_null(const char *s) { return s != NULL ? petrel_strdup(s) : NULL; }

struct queue_rcpt *queue_envelope_add(struct queue_envelope *env, char state, char route,
                                      unsigned notify, const char *address, const char *original,
                                      const char *dsn_orcpt)
{
    if (env->nrcpts == env->cap) {
        env->cap = env->cap ? env->cap * 2 : 4;
        env->rcpts = petrel_reallocarray(env->rcpts, env->cap, sizeof(*env->rcpts));
    }
    struct queue_rcpt *r = &env->rcpts[env->nrcpts++];
    *r = (struct queue_rcpt){.state = state,
                             .route = route,
                             .notify = notify,
                             .address = petrel_strdup(address),
                             .original = dup_or_null(original),
                             .dsn_orcpt = dup_or_null(dsn_orcpt)};
    return r;
}

void queue_rcpt_set_reason(struct queue_rcpt *r, const char *reason)
{
    free(r->reason);
    r->reason = dup_or_null(reason);
    /* Reasons reach replies and reports: one line, whoever wrote them. */
    for (unsigned char *p = (unsigned char *)r->reason; p != NULL && *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

void queue_rcpt_set_next_hop(struct queue_rcpt *r, const char *next_hop)
{
    free(r->next_hop);
    r->next_hop = dup_or_null(next_hop);
}

size_t queue_envelope_open_count(const struct queue_envelope *env)
{
    size_t n = 0;
    for (size_t i = 0; i < env->nrcpts; i++)
        if (strchr("EPTFS", env->rcpts[i].state) != NULL)
            n++;
    return n;
}

/* --- writing --- */

/* A value as one line: controls and tabs become '?'. */
static bool put_value(struct petrel_buf *out, const char *s)
{
    bool ok = true;
    for (const unsigned char *p = (const unsigned char *)s; ok && p != NULL && *p != '\0'; p++) {
        char c = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
        ok = petrel_buf_append(out, &c, 1);
    }
    return ok;
}

static bool put_line(struct petrel_buf *out, const char *key, const char *value)
{
    return value == NULL || (petrel_buf_printf(out, "%s ", key) && put_value(out, value) &&
                             petrel_buf_append(out, "\n", 1));
}

bool queue_envelope_format(const struct queue_envelope *env, struct petrel_buf *out)
{
    /* Every piece must fit: a buffer too small fails the whole envelope,
     * never just a piece in its middle. More recipients than a reader
     * takes would make a file nobody can read. */
    bool ok =
        env->nrcpts <= QUEUE_MAX_RCPTS &&
        petrel_buf_printf(out, MAGIC "\nid %s\narrival %lld\nnext %lld\nattempts %u\nsize %llu\n",
                          env->id, (long long)env->arrival, (long long)env->next_attempt,
                          env->attempts, (unsigned long long)env->size) &&
        put_line(out, "from", env->from != NULL ? env->from : "") &&
        put_line(out, "helo", env->helo) && put_line(out, "client", env->client_ip) &&
        put_line(out, "protocol", env->protocol) && put_line(out, "auth", env->auth_user) &&
        put_line(out, "tls", env->tls_cipher) && put_line(out, "tlsversion", env->tls_version) &&
        put_line(out, "envid", env->envid) &&
        petrel_buf_printf(out, "flags %d %d %d %d %d%s\n", env->submission, env->smtputf8,
                          env->body, env->ret, env->trusted, env->requiretls ? " 1" : "") &&
        (!env->delay_warned || petrel_buf_printf(out, "warned 1\n"));
    for (size_t i = 0; ok && i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        ok = petrel_buf_printf(out, "rcpt %c %c %u ", r->state, r->route, r->notify) &&
             put_value(out, r->address) && petrel_buf_append(out, "\t", 1) &&
             put_value(out, r->original) && petrel_buf_append(out, "\t", 1) &&
             put_value(out, r->dsn_orcpt) && petrel_buf_append(out, "\t", 1) &&
             put_value(out, r->reason) &&
             ((r->next_hop == NULL && !r->forwarded) ||
              (petrel_buf_append(out, "\t", 1) && put_value(out, r->next_hop) &&
               petrel_buf_printf(out, "\t%s", r->forwarded ? "f" : ""))) &&
             petrel_buf_append(out, "\n", 1);
    }
    /* The end marker tells a whole file from a torn one. */
    return ok && petrel_buf_printf(out, "end\n");
}

/* --- reading --- */

static bool parse_ll(const char *s, long long *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *v = x;
    return true;
}

static char *field(char **p)
{
    char *s = *p, *tab = strchr(s, '\t');
    if (tab != NULL) {
        *tab = '\0';
        *p = tab + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

static bool parse_rcpt(struct queue_envelope *env, char *v)
{
    /* "S R N address\toriginal\torcpt\treason[\tnext_hop\tflags]": the
     * last two since next hops and SRS, ignored by versions before. */
    if (strlen(v) < 6 || v[1] != ' ' || v[3] != ' ' || strchr("EPTDFBS", v[0]) == NULL ||
        strchr("-LR", v[2]) == NULL || env->nrcpts >= QUEUE_MAX_RCPTS)
        return false;
    char *end;
    errno = 0;
    unsigned long notify = strtoul(v + 4, &end, 10);
    if (errno != 0 || end == v + 4 || *end != ' ' || notify > 15)
        return false;
    char *p = end + 1;
    char *address = field(&p), *original = field(&p), *orcpt = field(&p), *reason = field(&p),
         *next_hop = field(&p), *flags = field(&p);
    if (address[0] == '\0')
        return false;
    struct queue_rcpt *r =
        queue_envelope_add(env, v[0], v[2], (unsigned)notify, address,
                           original[0] ? original : NULL, orcpt[0] ? orcpt : NULL);
    if (reason[0] != '\0')
        queue_rcpt_set_reason(r, reason);
    if (next_hop[0] != '\0')
        queue_rcpt_set_next_hop(r, next_hop);
    r->forwarded = strchr(flags, 'f') != NULL; /* other letters: a newer version's */
    return true;
}

static bool set_string(char **dst, const char *v)
{
    if (*dst != NULL)
        return false; /* a key twice */
    *dst = petrel_strdup(v);
    return true;
}

/* The keys with a number, and the id: each at most once (bit 0: id). */
static bool once(unsigned *seen, const char *key)
{
    static const char *const keys[] = {"id", "arrival", "next", "attempts", "size", "flags"};
    for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(key, keys[i]) == 0) {
            if (*seen & (1u << i))
                return false;
            *seen |= 1u << i;
        }
    return true;
}

static bool parse_line(struct queue_envelope *env, char *line, unsigned *seen)
{
    char *v = strchr(line, ' ');
    if (v == NULL)
        return false;
    *v++ = '\0';
    if (!once(seen, line))
        return false;
    long long n;
    if (strcmp(line, "id") == 0) {
        if (!queue_id_valid(v))
            return false;
        memcpy(env->id, v, QUEUE_ID_LEN + 1);
        return true;
    }
    if (strcmp(line, "arrival") == 0)
        return parse_ll(v, &n) && (env->arrival = n, true);
    if (strcmp(line, "next") == 0)
        return parse_ll(v, &n) && (env->next_attempt = n, true);
    if (strcmp(line, "attempts") == 0)
        return parse_ll(v, &n) && n >= 0 && n < 1000000 && (env->attempts = (unsigned)n, true);
    if (strcmp(line, "size") == 0)
        return parse_ll(v, &n) && n >= 0 && (env->size = (uint64_t)n, true);
    if (strcmp(line, "rcpt") == 0)
        return parse_rcpt(env, v);
    if (strcmp(line, "warned") == 0) /* absent: no delay notice sent yet */
        return strcmp(v, "1") == 0 && (env->delay_warned = true, true);
    if (strcmp(line, "flags") == 0) {
        int a, b, c, d, e = 0, f = 0, used = 0;
        if (sscanf(v, "%d %d %d %d%n", &a, &b, &c, &d, &used) != 4 || c < 0 || c > 2 || d < 0 ||
            d > 2)
            return false;
        /* The trusted flag fifth (files from before it have four), the
         * REQUIRETLS flag sixth. The sixth is written only when set: a
         * version before it refuses such a file rather than relay the
         * message without the TLS its sender required. */
        int *more[] = {&e, &f};
        for (size_t i = 0; i < 2 && v[used] != '\0'; i++) {
            int got = 0;
            if (sscanf(v + used, " %d%n", more[i], &got) != 1)
                return false;
            used += got;
        }
        if (v[used] != '\0')
            return false;
        env->submission = a != 0, env->smtputf8 = b != 0, env->body = c, env->ret = d;
        env->trusted = e != 0;
        env->requiretls = f != 0;
        return true;
    }
    static const struct {
        const char *key;
        size_t off;
    } strings[] = {
        {"from", offsetof(struct queue_envelope, from)},
        {"helo", offsetof(struct queue_envelope, helo)},
        {"client", offsetof(struct queue_envelope, client_ip)},
        {"protocol", offsetof(struct queue_envelope, protocol)},
        {"auth", offsetof(struct queue_envelope, auth_user)},
        {"tls", offsetof(struct queue_envelope, tls_cipher)},
        {"tlsversion", offsetof(struct queue_envelope, tls_version)},
        {"envid", offsetof(struct queue_envelope, envid)},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if (strcmp(line, strings[i].key) == 0)
            return set_string((char **)((char *)env + strings[i].off), v);
    return true; /* a key from a newer version: ignored */
}

bool queue_envelope_parse(const char *text, size_t len, struct queue_envelope *env,
                          const char **error_r)
{
    queue_envelope_init(env);
    char *copy = petrel_strndup(text, len), *p = copy;
    bool ok = strncmp(p, MAGIC "\n", sizeof(MAGIC)) == 0, ended = false;
    unsigned seen = 0;
    if (ok)
        p += sizeof(MAGIC);
    while (ok && *p != '\0') {
        char *nl = strchr(p, '\n');
        if (nl == NULL) {
            ok = false;
            break;
        }
        *nl = '\0';
        if (strcmp(p, "end") == 0) {
            ended = true;
            break;
        }
        ok = memchr(p, '\0', (size_t)(nl - p)) == NULL && parse_line(env, p, &seen);
        p = nl + 1;
    }
    free(copy);
    if (ok && (!(seen & 1u) || !ended || env->from == NULL || env->nrcpts == 0))
        ok = false;
    if (!ok) {
        *error_r = "malformed queue envelope";
        queue_envelope_free(env);
    }
    return ok;
}

/* --- ids and files --- */

void queue_id_new(char out[QUEUE_ID_LEN + 1])
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV"; /* base 32 */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* 10 characters of milliseconds (50 bits: no wrap for 35,000 years)
     * keep ids in arrival order for listings; 50 random bits keep them
     * unique across threads and processes. */
    uint64_t t = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u, r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    for (int i = 9; i >= 0; i--, t >>= 5)
        out[i] = digits[t & 31];
    for (int i = 19; i >= 10; i--, r >>= 5)
        out[i] = digits[r & 31];
    out[QUEUE_ID_LEN] = '\0';
}

bool queue_id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++)
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'A' && id[n] <= 'V')))
            return false;
    return n == QUEUE_ID_LEN;
}

bool queue_path(char *out, size_t size, const char *root, const char *sub, const char *id)
{
    return id != NULL ? petrel_snprintf(out, size, "%s/%s/%s", root, sub, id)
                      : petrel_snprintf(out, size, "%s/%s", root, sub);
}

int queue_envelope_read(const char *path, struct queue_envelope *env, const char **error_r)
{
    *error_r = NULL;
    /* O_NONBLOCK: a FIFO planted in the queue must not hang a worker. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)QUEUE_ENVELOPE_MAX) {
        close(fd);
        *error_r = "not a queue envelope (type or size)";
        errno = EINVAL;
        return -1;
    }
    char *text = petrel_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    bool ok = got == (size_t)st.st_size && queue_envelope_parse(text, got, env, error_r);
    free(text);
    if (!ok) {
        if (*error_r == NULL)
            *error_r = "short read";
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n, len -= (size_t)n;
    }
    return 0;
}

int queue_sync_dir(const char *root, const char *sub)
{
    char path[4096];
    if (!queue_path(path, sizeof(path), root, sub, NULL)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int queue_envelope_write(const char *root, const char *sub, const struct queue_envelope *env,
                         bool do_sync)
{
    char tmp[4096], dst[4096];
    if (!queue_path(tmp, sizeof(tmp), root, "tmp", env->id) ||
        !queue_path(dst, sizeof(dst), root, sub, env->id)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    struct petrel_buf b;
    petrel_buf_init(&b, QUEUE_ENVELOPE_MAX);
    if (!queue_envelope_format(env, &b)) {
        petrel_buf_free(&b);
        errno = E2BIG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int r = fd < 0 ? -1 : write_all(fd, petrel_buf_head(&b), b.len);
    /* The modification time is the next attempt: the runner's schedule. */
    struct timespec when[2] = {{(time_t)env->next_attempt, 0}, {(time_t)env->next_attempt, 0}};
    if (r == 0 && env->next_attempt > 0)
        r = futimens(fd, when);
    if (r == 0 && do_sync)
        r = fsync(fd);
    int e = errno;
    if (fd >= 0 && close(fd) < 0 && r == 0)
        r = -1, e = errno;
    petrel_buf_free(&b);
    if (r == 0 && rename(tmp, dst) < 0)
        r = -1, e = errno;
    if (r < 0) {
        unlink(tmp);
        errno = e;
        return -1;
    }
    return do_sync ? queue_sync_dir(root, sub) : 0;
}
