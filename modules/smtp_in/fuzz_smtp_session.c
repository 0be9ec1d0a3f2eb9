/* libFuzzer target for the SMTP session layer: whole sessions from fuzzed
 * byte streams through the real smtp_in code (command dispatch and state,
 * DATA, BDAT and chunks, AUTH lines and SASL, HELO, the refused-DATA
 * discard), framed by the real line reader, with the connection faked by
 * conn_fake.c and the queue, userdb and auth services faked in memory.
 *
 * Input: four option bytes, then what the client sends.
 *   byte 0: submission, bare_lf reject, CHUNKING, SMTPUTF8, DSN, auth_on_mx,
 *           greeting delay, hooks (one bit each, from bit 0)
 *   byte 1: max_line (2 bits), max_message_size (2), max_errors (2),
 *           STARTTLS offered, plaintext AUTH without TLS
 *   byte 2: every Nth job finds the pool full (3 bits), the queue's reply
 *           (3), a failing spool write, a relay network client
 *   byte 3: where the stream is split into reads and when jobs end, and
 *           the hooks' verdicts
 * Invariants: every reply line matches ^[2-5][0-9][0-9][ -], holds no
 * control octet and ends in CRLF, and no reply is left half written; at
 * most one message is committed per end of data (a "." line, BDAT LAST);
 * a DATA message is stored exactly as its dot-unstuffed lines with CRLF
 * ends, and only if nothing in it had to be refused; every stored message
 * has CRLF line ends only, no more octets than the size limit, recipients
 * and a HELO name that smtp_parse_helo takes; after a DATA refused with
 * input behind it, nothing is answered and the queue is not touched until
 * the end of data; every message begun is committed or aborted. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/module.h>

#include "conn_fake.h"
#include "ipset.h"
#include "smtp_in.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct petrel_protocol smtp_protocol_mx, smtp_protocol_submission;

#define MODEL_MAX (8u << 20)

/* The harness's view of the session, built from what goes in and out. */
struct harness {
    struct smtp_config cfg;
    uint8_t verdict_seed;
    unsigned hook_runs;
    bool write_fails;
    bool no_room; /* has_room says no: every MAIL gets 452 */
    unsigned writes;
    int queue_code;
    /* the live messages and what ended */
    int live_msgs;
    unsigned queue_events; /* begin, write, commit, abort */
    int eod_credit;        /* ends of data seen, less commits */
    /* DATA: from its 354 to the end of data */
    bool data_cmd; /* the unit was a DATA command */
    bool in_body, body_prev_crlf, body_bad;
    bool body_done; /* this unit ended the body: a commit now is it */
    struct petrel_buf model;
    /* after a refused DATA with input behind it */
    bool discard, discard_prev_crlf;
    bool unit_in_discard;
    unsigned events_before;
};

static struct harness h;

struct fake_msg {
    struct petrel_buf data;
};

/* --- the fake services --- */

static bool helo_ok(const char *name)
{
    char out[SMTP_DOMAIN_MAX + 1];
    struct smtp_reply err;
    return smtp_parse_helo(name, true, out, sizeof(out), &err) && strcmp(out, name) == 0;
}

static struct petrel_queue_msg *q_begin(const struct petrel_envelope *env)
{
    if (env->nrcpts == 0 || env->rcpts == NULL || env->mail_from == NULL || env->helo == NULL ||
        !helo_ok(env->helo))
        abort();
    for (size_t i = 0; i < env->nrcpts; i++) {
        if (env->rcpts[i].address == NULL || env->rcpts[i].address[0] == '\0')
            abort();
    }
    struct fake_msg *m = petrel_calloc(1, sizeof(*m));
    petrel_buf_init(&m->data, MODEL_MAX);
    h.live_msgs++;
    h.queue_events++;
    return (struct petrel_queue_msg *)m;
}

static bool q_write(struct petrel_queue_msg *msg, const void *data, size_t len)
{
    struct fake_msg *m = (struct fake_msg *)msg;
    h.queue_events++;
    if (h.write_fails && ++h.writes % 2 == 0)
        return false;
    if (!petrel_buf_append(&m->data, data, len) || m->data.len > (uint64_t)h.cfg.max_message_size)
        abort(); /* more than the size limit reached the queue */
    return true;
}

static void q_free(struct fake_msg *m)
{
    petrel_buf_free(&m->data);
    free(m);
    h.live_msgs--;
}

/* CRLF line ends only: no CR without LF, no LF without CR. */
static void check_line_ends(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
            abort();
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            abort();
    }
}

static void q_commit(struct petrel_queue_msg *msg, struct petrel_queue_reply *reply)
{
    struct fake_msg *m = (struct fake_msg *)msg;
    h.queue_events++;
    if (--h.eod_credit < 0)
        abort(); /* a message without an end of data */
    const char *p = petrel_buf_head(&m->data);
    check_line_ends(p, m->data.len);
    if (h.body_done) {
        /* A DATA message: exactly what the client sent, unstuffed. */
        if (h.body_bad || m->data.len != h.model.len ||
            memcmp(p, petrel_buf_head(&h.model), m->data.len) != 0)
            abort();
        h.body_done = false;
    }
    static const struct petrel_queue_reply replies[] = {
        {250, "2.0.0", "Ok: queued as FUZZ"}, {250, "2.0.0", "Ok: queued as FUZZ"},
        {250, "2.0.0", "Ok: queued as FUZZ"}, {250, "2.0.0", "Ok: queued as FUZZ"},
        {451, "4.3.0", "try again"},          {554, "5.4.6", "too many hops"},
        {421, "4.3.2", "going away"},         {452, "4.2.2", "over quota"},
    };
    *reply = replies[h.queue_code];
    q_free(m);
}

static void q_abort(struct petrel_queue_msg *msg)
{
    h.queue_events++;
    q_free((struct fake_msg *)msg);
}

static bool q_has_room(uint64_t size)
{
    (void)size;
    return !h.no_room;
}

/* As the queue answers for SRS reply addresses: some taken, some
 * refused, the rest not its own. */
static enum petrel_queue_address q_local_address(const char *address,
                                                 struct petrel_queue_reply *reply)
{
    if (strncmp(address, "SRS", 3) != 0)
        return PETREL_QUEUE_ADDRESS_UNKNOWN;
    if (strstr(address, "good") != NULL)
        return PETREL_QUEUE_ADDRESS_ACCEPTED;
    *reply = (struct petrel_queue_reply){550, "5.1.1", "invalid or expired SRS address"};
    return PETREL_QUEUE_ADDRESS_REFUSED;
}

static const struct petrel_queue_ops fake_queue = {
    sizeof(fake_queue), q_begin, q_write, q_commit, q_abort, q_has_room, q_local_address};

static bool u_domain_is_local(const char *domain)
{
    return strcmp(domain, "example.test") == 0 || strcmp(domain, "example.org") == 0;
}

static struct petrel_userdb_entry *entry(enum petrel_userdb_kind kind, const char *address)
{
    struct petrel_userdb_entry *e = petrel_calloc(1, sizeof(*e));
    e->kind = kind;
    e->address = petrel_strdup(address);
    e->targets = petrel_calloc(2, sizeof(*e->targets));
    if (kind == PETREL_USERDB_ALIAS) {
        e->targets[0] = petrel_strdup("alice@example.test");
        e->ntargets = 1;
    }
    return e;
}

static int u_lookup(const char *address, struct petrel_userdb_entry **entry_r, const char **error_r)
{
    *entry_r = NULL;
    if (strncmp(address, "alice@", 6) == 0 || strncmp(address, "bob@", 4) == 0 ||
        strncmp(address, "postmaster@", 11) == 0) {
        *entry_r = entry(PETREL_USERDB_ACCOUNT, address);
        return PETREL_USERDB_FOUND;
    }
    if (strncmp(address, "alias@", 6) == 0) {
        *entry_r = entry(PETREL_USERDB_ALIAS, address);
        return PETREL_USERDB_FOUND;
    }
    if (strncmp(address, "temp@", 5) == 0) {
        *error_r = "down";
        return PETREL_USERDB_TEMPFAIL;
    }
    return PETREL_USERDB_NOT_FOUND;
}

static void u_entry_free(struct petrel_userdb_entry *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->ntargets; i++)
        free(e->targets[i]);
    free(e->targets);
    free(e->address);
    free(e);
}

static const struct petrel_userdb_ops fake_userdb = {
    .size = sizeof(fake_userdb),
    .domain_is_local = u_domain_is_local,
    .lookup = u_lookup,
    .entry_free = u_entry_free,
};

static bool plaintext_without_tls;

static void a_authenticate(const struct petrel_auth_request *req, struct petrel_auth_result *r)
{
    memset(r, 0, sizeof(*r));
    if (req->authcid == NULL || req->password == NULL)
        abort();
    if (strcmp(req->authcid, "temp") == 0) {
        r->status = PETREL_AUTH_TEMPFAIL;
    } else if (strcmp(req->password, "secret") == 0 &&
               (strcmp(req->authcid, "alice@example.test") == 0 ||
                strcmp(req->authcid, "bob") == 0)) {
        r->status = PETREL_AUTH_OK;
        petrel_strlcpy(r->user, req->authcid[0] == 'b' ? "bob@example.test" : req->authcid,
                       sizeof(r->user));
    } else {
        r->status = PETREL_AUTH_FAILED;
        r->delay_ms = 1000;
    }
    petrel_strlcpy(r->reason, "fake", sizeof(r->reason));
}

static bool a_plaintext_allowed(bool tls) { return tls || plaintext_without_tls; }

static const struct petrel_auth_ops fake_auth = {sizeof(fake_auth), a_authenticate,
                                                 a_plaintext_allowed};

/* --- the rest of libpetrel that smtp_in uses --- */

static bool hooks_on;

bool petrel_hook_active(const char *point)
{
    (void)point;
    return hooks_on;
}

enum petrel_verdict petrel_hook_run(const char *point, void *event, const char **reason_r)
{
    static const enum petrel_verdict verdicts[] = {PETREL_CONTINUE, PETREL_OK,        PETREL_DENY,
                                                   PETREL_CONTINUE, PETREL_DENY_SOFT, PETREL_OK,
                                                   PETREL_CONTINUE, PETREL_DISCONNECT};
    (void)point, (void)event;
    *reason_r = h.hook_runs % 2 ? "hook\r\nsays no" : NULL;
    return verdicts[(h.verdict_seed + h.hook_runs++) % 8];
}

const char *petrel_hostname(void) { return "mx.example.test"; }
const char *petrel_primary_domain(void) { return "example.test"; }
int petrel_protocol_register(struct petrel_ctx *ctx, const struct petrel_protocol *proto)
{
    (void)ctx, (void)proto;
    return 0;
}
/* The core's login flow, linked in, finds the fake auth service here. */
const void *petrel_service_lookup(const char *name, uint32_t min_version)
{
    (void)min_version;
    return strcmp(name, PETREL_AUTH_SERVICE) == 0 ? &fake_auth : NULL;
}

/* --- what the harness sees --- */

static bool is_end_of_data(const char *p, size_t len, bool crlf, bool prev_crlf)
{
    return p != NULL && len == 1 && p[0] == '.' && crlf && prev_crlf;
}

static void model_append(const char *p, size_t n)
{
    if (!h.body_bad && !petrel_buf_append(&h.model, p, n))
        h.body_bad = true;
    if (h.model.len > (uint64_t)h.cfg.max_message_size)
        h.body_bad = true; /* must be refused as too big */
}

/* A body line as DATA must store it: one leading dot removed, a bare CR
 * made a line end, CRLF at the end. Lines DATA must refuse mark it bad. */
static void body_line(const char *p, size_t len, bool crlf)
{
    bool reject = h.cfg.bare_lf[0] == 'r';
    h.body_prev_crlf = crlf;
    if (p == NULL || memchr(p, '\0', len) != NULL || (!crlf && reject) ||
        (reject && memchr(p, '\r', len) != NULL)) {
        h.body_bad = true;
        return;
    }
    if (len > 0 && p[0] == '.')
        p++, len--;
    const char *cr;
    while ((cr = memchr(p, '\r', len)) != NULL) {
        model_append(p, (size_t)(cr - p));
        model_append("\r\n", 2);
        len -= (size_t)(cr - p) + 1;
        p = cr + 1;
    }
    model_append(p, len);
    model_append("\r\n", 2);
}

static void on_unit(struct petrel_conn *conn, void *ctx, const char *p, size_t len, bool line,
                    bool crlf, bool last)
{
    (void)ctx;
    struct smtp_session *s = petrel_conn_session(conn);
    h.body_done = false;
    h.data_cmd = false;
    h.events_before = h.queue_events;
    h.unit_in_discard = h.discard;
    if (h.discard) {
        if (!line)
            abort(); /* no chunk is read for a discarded message */
        if (is_end_of_data(p, len, crlf, h.discard_prev_crlf))
            h.discard = false;
        h.discard_prev_crlf = crlf;
        return;
    }
    if (h.in_body) {
        if (!line || s->state != SMTP_ST_DATA)
            abort(); /* after 354, lines are the message until its end */
        if (is_end_of_data(p, len, crlf, h.body_prev_crlf)) {
            h.in_body = false;
            h.body_done = true;
            h.eod_credit++;
        } else {
            body_line(p, len, crlf);
        }
        return;
    }
    if (!line) {
        if (last)
            h.eod_credit += s->bdat_last ? 1 : 0;
        return;
    }
    if (p == NULL || s->state != SMTP_ST_CMD)
        return;
    const char *args;
    enum smtp_verb verb = smtp_parse_verb(p, len, &args);
    uint64_t n;
    bool bdat_last;
    struct smtp_reply err;
    if (verb == SMTP_BDAT && smtp_parse_bdat(args, &n, &bdat_last, &err) && bdat_last && n == 0)
        h.eod_credit++; /* a chunk with no bytes ends at once */
    h.data_cmd = verb == SMTP_DATA;
}

/* One reply line, CRLF removed: "250-..." or "250 ...". */
static void check_reply_line(const char *p, size_t n, int *code_r, bool *final_r)
{
    if (n < 4 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
        (p[3] != ' ' && p[3] != '-'))
        abort();
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            abort();
    }
    *code_r = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    *final_r = p[3] == ' ';
}

/* The DATA command's reply: 354 starts the body, a refusal with input
 * behind it starts the discard. */
static void data_reply(struct petrel_conn *conn, int code)
{
    h.data_cmd = false;
    if (code == 354) {
        h.in_body = true;
        h.body_prev_crlf = true;
        h.body_bad = false;
        petrel_buf_reset(&h.model);
    } else if (fuzz_conn_pending(conn) > 0 && !fuzz_conn_closing(conn)) {
        h.discard = true;
        h.discard_prev_crlf = true;
    }
}

static void on_after(struct petrel_conn *conn, void *ctx)
{
    (void)ctx;
    struct petrel_buf *out = fuzz_conn_output(conn);
    const char *p = petrel_buf_head(out);
    size_t n = out->len;
    if (h.unit_in_discard && (n > 0 || h.queue_events != h.events_before))
        abort(); /* a line of a discarded message was run */
    if (n > 0 && (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n'))
        abort(); /* half a reply, or not CRLF */
    int multi_code = 0;
    for (size_t i = 0; i < n;) {
        const char *crlf = memchr(p + i, '\n', n - i);
        size_t len = (size_t)(crlf - (p + i)) - 1;
        if (p[i + len] != '\r' || memchr(p + i, '\r', len) != NULL)
            abort();
        int code;
        bool final;
        check_reply_line(p + i, len, &code, &final);
        if (multi_code != 0 && code != multi_code)
            abort();
        multi_code = final ? 0 : code;
        if (final && h.data_cmd)
            data_reply(conn, code);
        i += len + 2;
    }
    if (multi_code != 0)
        abort(); /* a multi-line reply without its last line */
    petrel_buf_reset(out);
}

/* --- the session --- */

static const char *bare_lf_normalize = "normalize", *bare_lf_reject = "reject";
/* relay_networks as the core's settings engine builds it. */
static struct petrel_ipset relay_set;
static bool relay_set_ready;

static void configure(const uint8_t *o, struct fuzz_conn_opts *co)
{
    static const size_t max_lines[] = {64, 512, 1000, 8192};
    static const long long sizes[] = {1024, 4096, 65536, 50ll << 20};
    static const unsigned errors[] = {0, 3, 10, 20};
    static const unsigned busy[] = {0, 0, 0, 0, 2, 3, 5, 7};
    memset(&h.cfg, 0, sizeof(h.cfg));
    h.cfg.max_message_size = sizes[o[1] >> 2 & 3];
    h.cfg.max_recipients = 1 + (o[3] >> 6);
    if (!relay_set_ready)
        relay_set_ready = petrel_ipset_add(&relay_set, "192.0.2.0/24", NULL);
    h.cfg.relay_networks = (o[2] & 0x80) != 0 ? &relay_set : NULL;
    h.cfg.auth_on_mx = (o[0] & 0x20) != 0;
    h.cfg.sender_login_match = true;
    h.cfg.bare_lf = (char *)((o[0] & 2) != 0 ? bare_lf_reject : bare_lf_normalize);
    h.cfg.greeting_delay = (o[0] & 0x40) != 0;
    h.cfg.chunking = (o[0] & 4) != 0;
    h.cfg.smtputf8 = (o[0] & 8) != 0;
    h.cfg.dsn = (o[0] & 0x10) != 0;
    h.cfg.requiretls = (o[3] & 0x10) != 0; /* a bit verdict_seed shares */
    hooks_on = (o[0] & 0x80) != 0;
    h.verdict_seed = o[3];
    h.queue_code = o[2] >> 3 & 7;
    h.write_fails = (o[2] & 0x40) != 0;
    h.no_room = (o[3] & 7) == 7;
    /* A small message memory budget: session buffers flush early. */
    petrel_membudget_set((o[3] & 8) != 0 ? 16384 : 64u << 20);
    plaintext_without_tls = (o[1] & 0x80) != 0;
    *co = (struct fuzz_conn_opts){
        .max_line = max_lines[o[1] & 3],
        .max_errors = errors[o[1] >> 4 & 3],
        .max_auth_errors = 3,
        .can_starttls = (o[1] & 0x40) != 0,
        .busy_every = busy[o[2] & 7],
    };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > (1u << 20))
        return 0;
    struct fuzz_conn_opts co;
    configure(data, &co);
    smtp_queue = &fake_queue;
    smtp_userdb = &fake_userdb;
    smtp_auth = &fake_auth;
    petrel_strlcpy(smtp_hostname, "mx.example.test", sizeof(smtp_hostname));
    petrel_strlcpy(smtp_primary_domain, "example.test", sizeof(smtp_primary_domain));
    petrel_buf_init(&h.model, MODEL_MAX);
    uint32_t rnd = data[3] * 2654435761u + 1;
    const struct fuzz_conn_hooks hooks = {on_after, on_unit, NULL};
    struct petrel_conn *conn = fuzz_conn_open(
        (data[0] & 1) != 0 ? &smtp_protocol_submission : &smtp_protocol_mx, &h.cfg, &co, &hooks);
    data += 4, size -= 4;
    /* Reads of 1 to 64 octets, mostly small; a job or a delay ends before
     * the next read, or after it (the timer or the worker was slower). */
    while (size > 0 && !fuzz_conn_closing(conn)) {
        rnd = rnd * 1103515245u + 12345u;
        size_t n = 1 + (rnd >> 16) % ((rnd & 0x100) != 0 ? 8 : 64);
        if (n > size)
            n = size;
        fuzz_conn_input(conn, data, n, (rnd & 0x600) != 0);
        data += n, size -= n;
    }
    fuzz_conn_input(conn, "", 0, true);
    struct smtp_session *s = petrel_conn_session(conn);
    if (!fuzz_conn_closing(conn) && !fuzz_conn_job_pending(conn) && s->state != SMTP_ST_QUIT) {
        h.unit_in_discard = false; /* the server's own goodbye */
        if ((rnd & 0x800) != 0)
            smtp_protocol_mx.timeout(conn);
        else
            smtp_protocol_mx.shutdown(conn);
        on_after(conn, NULL);
    }
    fuzz_conn_free(conn);
    if (h.live_msgs != 0)
        abort(); /* a message neither committed nor aborted */
    if (petrel_membudget_used() != 0)
        abort(); /* message memory taken and never given back */
    petrel_buf_free(&h.model);
    memset(&h, 0, sizeof(h));
    return 0;
}
