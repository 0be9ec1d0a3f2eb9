/* The POP3 command grammar (pop3_parse.h). */
#include <string.h>
#include <strings.h>

#include "pop3_parse.h"

static const struct {
    const char *name;
    enum pop3_verb verb;
} verbs[] = {
    {"USER", POP3_USER}, {"PASS", POP3_PASS}, {"APOP", POP3_APOP}, {"AUTH", POP3_AUTH},
    {"STLS", POP3_STLS}, {"CAPA", POP3_CAPA}, {"QUIT", POP3_QUIT}, {"STAT", POP3_STAT},
    {"LIST", POP3_LIST}, {"RETR", POP3_RETR}, {"DELE", POP3_DELE}, {"NOOP", POP3_NOOP},
    {"RSET", POP3_RSET}, {"TOP", POP3_TOP},   {"UIDL", POP3_UIDL},
};

enum pop3_verb pop3_parse_verb(const char *line, size_t len)
{
    if (strlen(line) != len)
        return POP3_UNKNOWN; /* a NUL inside */
    size_t n = strcspn(line, " ");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0)
            return verbs[i].verb;
    return POP3_UNKNOWN;
}

bool pop3_parse_number(const char *s, uint32_t *n_r)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return false;
    }
    *n_r = (uint32_t)v;
    return true;
}

/* Split args at single spaces into at most max words; false for an empty
 * word (two spaces, a trailing space) or more than max. */
static bool split(char *args, char **words, unsigned max, unsigned *n_r)
{
    unsigned n = 0;
    while (args != NULL && *args != '\0') {
        if (n == max || *args == ' ')
            return false;
        words[n++] = args;
        args = strchr(args, ' ');
        if (args != NULL)
            *args++ = '\0';
        if (args != NULL && *args == '\0')
            return false;
    }
    *n_r = n;
    return true;
}

/* Arguments each verb takes: at least min, at most max. */
static const struct {
    unsigned min, max;
} arity[] = {
    [POP3_UNKNOWN] = {0, 0}, [POP3_USER] = {1, 1}, [POP3_PASS] = {1, 1}, [POP3_APOP] = {2, 2},
    [POP3_AUTH] = {0, 2},    [POP3_STLS] = {0, 0}, [POP3_CAPA] = {0, 0}, [POP3_QUIT] = {0, 0},
    [POP3_STAT] = {0, 0},    [POP3_LIST] = {0, 1}, [POP3_RETR] = {1, 1}, [POP3_DELE] = {1, 1},
    [POP3_NOOP] = {0, 0},    [POP3_RSET] = {0, 0}, [POP3_TOP] = {2, 2},  [POP3_UIDL] = {0, 1},
};

static bool numbers(struct pop3_cmd *cmd, char **words, const char **error_r)
{
    if (cmd->verb == POP3_LIST || cmd->verb == POP3_UIDL || cmd->verb == POP3_RETR ||
        cmd->verb == POP3_DELE || cmd->verb == POP3_TOP) {
        if (cmd->nargs > 0 && (!pop3_parse_number(words[0], &cmd->msg) || cmd->msg == 0)) {
            *error_r = "invalid message number";
            return false;
        }
    }
    if (cmd->verb == POP3_TOP && !pop3_parse_number(words[1], &cmd->lines)) {
        *error_r = "invalid number of lines";
        return false;
    }
    return true;
}

bool pop3_parse(char *line, size_t len, struct pop3_cmd *cmd, const char **error_r)
{
    *cmd = (struct pop3_cmd){.verb = pop3_parse_verb(line, len)};
    if (cmd->verb == POP3_UNKNOWN) {
        *error_r = "unknown command";
        return false;
    }
    char *args = strchr(line, ' ');
    if (args != NULL)
        *args++ = '\0';
    if (cmd->verb == POP3_PASS) { /* the whole rest, spaces and all */
        if (args == NULL || *args == '\0') {
            *error_r = "missing argument: PASS password";
            return false;
        }
        cmd->arg[0] = args;
        cmd->nargs = 1;
        return true;
    }
    char *words[2] = {NULL, NULL};
    if (!split(args, words, 2, &cmd->nargs) || cmd->nargs > arity[cmd->verb].max) {
        *error_r = "invalid arguments";
        return false;
    }
    if (cmd->nargs < arity[cmd->verb].min) {
        *error_r = "missing argument";
        return false;
    }
    for (unsigned i = 0; i < cmd->nargs; i++) {
        /* RFC 2449 section 4: arguments of at most 40 octets; SASL data
         * is bounded by the login flow instead. */
        if (strlen(words[i]) > POP3_ARG_MAX && !(cmd->verb == POP3_AUTH && i == 1) &&
            !(cmd->verb == POP3_USER && strlen(words[i]) <= POP3_USER_MAX)) {
            *error_r = "argument too long";
            return false;
        }
        cmd->arg[i] = words[i];
    }
    return numbers(cmd, words, error_r);
}
