/* SASL PLAIN (RFC 4616) and LOGIN, server side, as resumable state
 * machines without I/O: the protocol module owns the framing, this owns
 * the decoding and the checks, so unit tests and the fuzzer drive it
 * directly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>
#include <petrel/sasl.h>

#include "alphabet.h"

/* Decoded sizes: PLAIN carries authzid NUL authcid NUL password. */
#define PLAIN_MAX (PETREL_SASL_ID_MAX * 2 + 2 + PETREL_SASL_PASSWORD_MAX)

enum sasl_state {
    STATE_START = 0,
    STATE_PLAIN_RESPONSE, /* sent the empty challenge */
    STATE_LOGIN_USER,     /* sent "Username:" */
    STATE_LOGIN_PASSWORD, /* sent "Password:" */
    STATE_DONE,
    STATE_FAILED,
};

struct petrel_sasl {
    enum petrel_sasl_mech mech;
    enum sasl_state state;
    char authzid[PETREL_SASL_ID_MAX + 1];
    char authcid[PETREL_SASL_ID_MAX + 1];
    char password[PETREL_SASL_PASSWORD_MAX + 1];
};

static const char *const mech_names[] = {"PLAIN", "LOGIN"};

/* base64("Username:") and base64("Password:"), the de facto LOGIN prompts. */
#define LOGIN_USER_PROMPT "VXNlcm5hbWU6"
#define LOGIN_PASSWORD_PROMPT "UGFzc3dvcmQ6"

bool petrel_sasl_mech_parse(const char *name, enum petrel_sasl_mech *mech_r)
{
    for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++) {
        if (strcasecmp(name, mech_names[i]) == 0) {
            *mech_r = (enum petrel_sasl_mech)i;
            return true;
        }
    }
    return false;
}

const char *petrel_sasl_mech_name(enum petrel_sasl_mech mech)
{
    return (unsigned)mech < 2 ? mech_names[mech] : "?";
}

struct petrel_sasl *petrel_sasl_new(enum petrel_sasl_mech mech)
{
    struct petrel_sasl *s = petrel_calloc(1, sizeof(*s));
    s->mech = mech;
    return s;
}

static void wipe(void *p, size_t n)
{
    /* volatile: the compiler may not drop a store to memory about to die */
    volatile unsigned char *v = p;
    while (n-- > 0)
        *v++ = 0;
}

void petrel_sasl_free(struct petrel_sasl *s)
{
    if (s == NULL)
        return;
    wipe(s, sizeof(*s));
    free(s);
}

/* One quantum of four characters; pad is how many '=' end it. */
static bool decode_quantum(const char *in, size_t pad, unsigned char *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int d = i < 4 - pad ? petrel_base64_value((unsigned char)in[i]) : 0;
        if (d < 0)
            return false;
        v = v << 6 | (uint32_t)d;
    }
    /* The bits under the padding must be zero: one encoding per input. */
    if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0))
        return false;
    out[0] = (unsigned char)(v >> 16);
    out[1] = (unsigned char)(v >> 8);
    out[2] = (unsigned char)v;
    return true;
}

long petrel_sasl_base64_decode(const char *in, size_t len, unsigned char *out, size_t size)
{
    if (len % 4 != 0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        size_t pad = 0;
        if (i + 4 == len)
            pad = in[i + 3] != '=' ? 0 : in[i + 2] == '=' ? 2 : 1;
        unsigned char q[3];
        if (!decode_quantum(in + i, pad, q) || n + 3 - pad > size)
            return -1;
        memcpy(out + n, q, 3 - pad);
        n += 3 - pad;
    }
    return (long)n;
}

/* Identities end up in logs and lookups: no controls (CR LF would forge
 * log lines), no NULs (len shows them), not empty. */
static bool identity_ok(const unsigned char *p, size_t len, bool may_be_empty)
{
    if (len == 0)
        return may_be_empty;
    if (len > PETREL_SASL_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
    }
    return true;
}

static void set_field(char *dst, const unsigned char *src, size_t len)
{
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static enum petrel_sasl_status fail(struct petrel_sasl *s, const char *why, const char **error_r)
{
    s->state = STATE_FAILED;
    wipe(s->password, sizeof(s->password));
    *error_r = why;
    return PETREL_SASL_ERROR;
}

/* Decode a client line into buf; -1 when it is not acceptable. "=" is the
 * empty response (RFC 4422 section 4). */
static long decode_line(const char *line, size_t len, unsigned char *buf, size_t size,
                        const char **error_r)
{
    if (len == 1 && line[0] == '=')
        return 0;
    if (len > PETREL_SASL_LINE_MAX) {
        *error_r = "response too long";
        return -1;
    }
    long n = petrel_sasl_base64_decode(line, len, buf, size);
    if (n < 0)
        *error_r = "response is not valid base64";
    return n;
}

static enum petrel_sasl_status plain_response(struct petrel_sasl *s, const unsigned char *m,
                                              size_t len, const char **error_r)
{
    const unsigned char *nul1 = memchr(m, '\0', len);
    const unsigned char *nul2 =
        nul1 != NULL ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - m)) : NULL;
    if (nul2 == NULL)
        return fail(s, "PLAIN: expected authzid NUL authcid NUL password", error_r);
    size_t zlen = (size_t)(nul1 - m), clen = (size_t)(nul2 - nul1 - 1);
    size_t plen = len - (size_t)(nul2 + 1 - m);
    if (!identity_ok(m, zlen, true) || !identity_ok(nul1 + 1, clen, false))
        return fail(s, "PLAIN: invalid authorization or authentication identity", error_r);
    if (plen == 0 || plen > PETREL_SASL_PASSWORD_MAX || memchr(nul2 + 1, '\0', plen) != NULL)
        return fail(s, "PLAIN: invalid password field", error_r);
    set_field(s->authzid, m, zlen);
    set_field(s->authcid, nul1 + 1, clen);
    set_field(s->password, nul2 + 1, plen);
    s->state = STATE_DONE;
    return PETREL_SASL_DONE;
}

static enum petrel_sasl_status login_response(struct petrel_sasl *s, const unsigned char *m,
                                              size_t len, const char **challenge_r,
                                              const char **error_r)
{
    if (s->state == STATE_LOGIN_USER) {
        if (!identity_ok(m, len, false) || memchr(m, '\0', len) != NULL)
            return fail(s, "LOGIN: invalid user name", error_r);
        set_field(s->authcid, m, len);
        s->state = STATE_LOGIN_PASSWORD;
        *challenge_r = LOGIN_PASSWORD_PROMPT;
        return PETREL_SASL_CONTINUE;
    }
    if (len == 0 || len > PETREL_SASL_PASSWORD_MAX || memchr(m, '\0', len) != NULL)
        return fail(s, "LOGIN: invalid password", error_r);
    set_field(s->password, m, len);
    s->state = STATE_DONE;
    return PETREL_SASL_DONE;
}

/* A decoded response for the current state. */
static enum petrel_sasl_status respond(struct petrel_sasl *s, const char *line, size_t len,
                                       const char **challenge_r, const char **error_r)
{
    unsigned char buf[PLAIN_MAX + 3];
    long n = decode_line(line, len, buf, sizeof(buf), error_r);
    enum petrel_sasl_status st;
    if (n < 0)
        st = fail(s, *error_r, error_r);
    else if (s->mech == PETREL_SASL_PLAIN)
        st = plain_response(s, buf, (size_t)n, error_r);
    else
        st = login_response(s, buf, (size_t)n, challenge_r, error_r);
    wipe(buf, sizeof(buf));
    return st;
}

enum petrel_sasl_status petrel_sasl_start(struct petrel_sasl *s, const char *initial,
                                          const char **challenge_r, const char **error_r)
{
    *challenge_r = NULL;
    if (s->state != STATE_START)
        return fail(s, "SASL exchange already started", error_r);
    if (s->mech == PETREL_SASL_PLAIN) {
        s->state = STATE_PLAIN_RESPONSE;
        if (initial == NULL) {
            *challenge_r = "";
            return PETREL_SASL_CONTINUE;
        }
    } else {
        s->state = STATE_LOGIN_USER;
        if (initial == NULL) {
            *challenge_r = LOGIN_USER_PROMPT;
            return PETREL_SASL_CONTINUE;
        }
    }
    return respond(s, initial, strlen(initial), challenge_r, error_r);
}

enum petrel_sasl_status petrel_sasl_step(struct petrel_sasl *s, const char *line, size_t len,
                                         const char **challenge_r, const char **error_r)
{
    *challenge_r = NULL;
    if (s->state == STATE_START || s->state == STATE_DONE || s->state == STATE_FAILED)
        return fail(s, "no SASL exchange in progress", error_r);
    if (len == 1 && line[0] == '*') {
        s->state = STATE_FAILED;
        wipe(s->password, sizeof(s->password));
        return PETREL_SASL_CANCELLED;
    }
    return respond(s, line, len, challenge_r, error_r);
}

bool petrel_sasl_credentials(const struct petrel_sasl *s, struct petrel_sasl_credentials *r)
{
    if (s->state != STATE_DONE)
        return false;
    r->authzid = s->authzid;
    r->authcid = s->authcid;
    r->password = s->password;
    return true;
}
