/* Relay hosts (smarthosts): Postfix's relayhost syntax, the credentials
 * file, and which next hop a domain takes. The parsers do no I/O so the
 * unit tests drive them directly; smtp_credentials_load reads the file
 * once, at init, as root. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "smtp_out.h"

#define CRED_FILE_MAX 4096

static bool parse_port(const char *s, int *port_r)
{
    long v = 0;
    size_t i = 0;
    for (; s[i] != '\0' && i < 6; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0 || s[i] != '\0' || v < 1 || v > 65535)
        return false;
    *port_r = (int)v;
    return true;
}

/* LDH labels, or (in brackets) an address: no spaces, no brackets. */
static bool host_ok(const char *h, size_t n, bool bracketed)
{
    if (n == 0 || n >= SMTP_OUT_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || (bracketed && c == ':');
        if (!ok)
            return false;
    }
    return true;
}

bool smtp_relay_parse(const char *s, struct smtp_relay_addr *out)
{
    memset(out, 0, sizeof(*out));
    const char *host = s, *rest;
    size_t n;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL)
            return false;
        host = s + 1;
        n = (size_t)(end - host);
        rest = end + 1;
        if (n > 5 && strncasecmp(host, "IPv6:", 5) == 0)
            host += 5, n -= 5;
    } else {
        const char *colon = strchr(s, ':');
        n = colon != NULL ? (size_t)(colon - s) : strlen(s);
        rest = s + n;
        out->mx = true;
    }
    if (!host_ok(host, n, !out->mx))
        return false;
    memcpy(out->host, host, n);
    out->host[n] = '\0';
    if (rest[0] == '\0')
        return true;
    return rest[0] == ':' && parse_port(rest + 1, &out->port);
}

/* One line of the file, without its end: the user, blanks, the rest. */
static bool cred_line(const char *line, size_t len, struct smtp_credentials *c,
                      const char **error_r)
{
    size_t u = 0;
    while (u < len && line[u] != ' ' && line[u] != '\t')
        u++;
    size_t p = u;
    while (p < len && (line[p] == ' ' || line[p] == '\t'))
        p++;
    if (u == 0 || p == len || p == u) {
        *error_r = "the line must be \"username password\"";
        return false;
    }
    if (u >= sizeof(c->user) || len - p >= sizeof(c->pass)) {
        *error_r = "the user name or password is too long";
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t') {
            *error_r = "control characters in the credentials";
            return false;
        }
    }
    memcpy(c->user, line, u);
    c->user[u] = '\0';
    memcpy(c->pass, line + p, len - p);
    c->pass[len - p] = '\0';
    return true;
}

bool smtp_credentials_parse(const char *text, size_t len, struct smtp_credentials *c,
                            const char **error_r)
{
    bool found = false;
    size_t i = 0;
    memset(c, 0, sizeof(*c));
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - text) : len, n = end - i;
        const char *line = text + i;
        i = end + 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        if (found) {
            *error_r = "more than one credentials line";
            return false;
        }
        if (!cred_line(line, n, c, error_r))
            return false;
        found = true;
    }
    if (!found)
        *error_r = "no credentials line";
    return found;
}

static bool check_file(int fd, char *err, size_t errsize)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errsize, "cannot stat it: %s", strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsize, "not a regular file");
        return false;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errsize, "group or others may access it (mode %03o): chmod 600 it",
                 (unsigned)(st.st_mode & 0777));
        return false;
    }
    if (geteuid() == 0 && st.st_uid != 0) {
        snprintf(err, errsize, "not owned by root (uid %u)", (unsigned)st.st_uid);
        return false;
    }
    return true;
}

bool smtp_credentials_load(const char *path, struct smtp_credentials *c, char *err, size_t errsize)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsize, "cannot open it: %s", strerror(errno));
        return false;
    }
    char buf[CRED_FILE_MAX];
    ssize_t n = -1;
    if (check_file(fd, err, errsize)) {
        do
            n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0)
            snprintf(err, errsize, "cannot read it: %s", strerror(errno));
        else if (n == (ssize_t)sizeof(buf))
            snprintf(err, errsize, "longer than %d bytes", CRED_FILE_MAX - 1), n = -1;
    }
    close(fd);
    const char *why = NULL;
    bool ok = n >= 0 && smtp_credentials_parse(buf, (size_t)n, c, &why);
    if (n >= 0 && !ok)
        snprintf(err, errsize, "%s", why);
    explicit_bzero(buf, sizeof(buf));
    return ok;
}

bool smtp_base64(char *out, size_t size, const unsigned char *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (size == 0 || (len + 2) / 3 * 4 >= size) {
        if (size > 0)
            out[0] = '\0';
        return false;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return true;
}

static void set_relay(const char *spec, const char *tls, const struct smtp_out_config *cfg,
                      struct smtp_route *r)
{
    /* The settings check refused what does not parse. */
    if (!smtp_relay_parse(spec, &r->addr))
        return;
    r->relay = true;
    r->implicit_tls = tls != NULL && strcmp(tls, "implicit") == 0;
    if (r->addr.port == 0)
        r->addr.port = r->implicit_tls ? 465 : (int)cfg->port;
}

void smtp_route_for(const struct smtp_out_config *cfg, const char *domain, bool have_creds,
                    struct smtp_route *r)
{
    memset(r, 0, sizeof(*r));
    const struct smtp_relay_domain *d = cfg->relay_domains.items;
    for (size_t i = 0; i < cfg->relay_domains.count; i++) {
        if (strcasecmp(d[i].domain, domain) == 0) {
            set_relay(d[i].host, d[i].tls, cfg, r);
            break;
        }
    }
    if (!r->relay && cfg->relay_host != NULL && cfg->relay_host[0] != '\0') {
        set_relay(cfg->relay_host, cfg->relay_tls, cfg, r);
        r->auth = r->relay && have_creds; /* the credentials are relay_host's only */
    }
    if (!r->relay) {
        petrel_strlcpy(r->addr.host, domain, sizeof(r->addr.host));
        r->addr.port = (int)cfg->port;
        r->addr.mx = true;
    }
    snprintf(r->key, sizeof(r->key), "%s%s%s%s:%d%s", r->relay ? "relay " : "",
             r->addr.mx ? "" : "[", r->addr.host, r->addr.mx ? "" : "]", r->addr.port,
             r->implicit_tls ? " tls" : "");
    /* The destination of the limits: through a relay host, the host. */
    petrel_strlcpy(r->dest, r->addr.host, sizeof(r->dest));
    for (char *p = r->dest; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
}
