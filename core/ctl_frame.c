/* Control socket frames (ctl_frame.h). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "ctl_frame.h"

ssize_t petrel_ctl_frame_next(const char *buf, size_t len, size_t max, int *type_r,
                              const char **payload_r, size_t *plen_r)
{
    if (len < 4)
        return 0;
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n == 0 || n > max)
        return -1;
    if (len - 4 < n)
        return 0;
    *type_r = p[4];
    *payload_r = buf + 5;
    *plen_r = n - 1;
    return (ssize_t)n + 4;
}

bool petrel_ctl_frame_put(struct petrel_buf *b, int type, const void *payload, size_t len)
{
    if (len >= UINT32_MAX)
        return false;
    uint32_t n = (uint32_t)len + 1;
    unsigned char head[5] = {n >> 24, n >> 16 & 0xff, n >> 8 & 0xff, n & 0xff, (unsigned char)type};
    size_t room = b->max - b->len;
    if (room < sizeof(head) + len)
        return false;
    return petrel_buf_append(b, head, sizeof(head)) && petrel_buf_append(b, payload, len);
}

static char *copy_text(const char *p, size_t n)
{
    char *s = petrel_malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void petrel_ctl_request_free(struct petrel_ctl_request *req)
{
    for (int i = 0; i < req->argc; i++)
        free(req->argv[i]);
    if (req->secret != NULL) {
        explicit_bzero(req->secret, strlen(req->secret));
        free(req->secret);
    }
    memset(req, 0, sizeof(*req));
}

int petrel_ctl_request_parse(const char *buf, size_t len, struct petrel_ctl_request *req,
                             const char **error_r)
{
    memset(req, 0, sizeof(*req));
    if (len > PETREL_CTL_REQUEST_MAX)
        len = PETREL_CTL_REQUEST_MAX; /* what lies beyond cannot belong to it */
    for (size_t at = 0;;) {
        int type;
        const char *p;
        size_t n;
        ssize_t used =
            petrel_ctl_frame_next(buf + at, len - at, PETREL_CTL_REQUEST_MAX, &type, &p, &n);
        const char *why = NULL;
        if (used == 0) {
            petrel_ctl_request_free(req);
            if (len == PETREL_CTL_REQUEST_MAX) {
                *error_r = "request too long";
                return -1;
            }
            return 0;
        }
        if (used < 0)
            why = "malformed frame";
        else if (memchr(p, '\0', n) != NULL)
            why = "NUL in a request";
        else if (type == PETREL_CTL_WORD && req->argc == PETREL_CTL_WORDS_MAX)
            why = "too many words";
        else if (type == PETREL_CTL_SECRET && req->secret != NULL)
            why = "two secrets";
        else if ((type == PETREL_CTL_JSON || type == PETREL_CTL_END) && n != 0)
            why = "malformed frame";
        else if (type != PETREL_CTL_WORD && type != PETREL_CTL_SECRET && type != PETREL_CTL_JSON &&
                 type != PETREL_CTL_END)
            why = "unknown frame type";
        if (why != NULL) {
            petrel_ctl_request_free(req);
            *error_r = why;
            return -1;
        }
        at += (size_t)used;
        if (type == PETREL_CTL_WORD)
            req->argv[req->argc++] = copy_text(p, n);
        else if (type == PETREL_CTL_SECRET)
            req->secret = copy_text(p, n);
        else if (type == PETREL_CTL_JSON)
            req->json = true;
        else if (req->argc == 0) {
            petrel_ctl_request_free(req);
            *error_r = "no command";
            return -1;
        } else {
            return 1; /* END; bytes after it are ignored */
        }
    }
}
