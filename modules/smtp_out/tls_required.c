/* The "TLS-Required: No" header field (RFC 8689 section 5): the sender
 * asks that the recipient domain's published TLS policy (MTA-STS, DANE)
 * not stop the message. Read from the header block only; no I/O here. */
#include <string.h>
#include <strings.h>

#include "tlspolicy.h"

static bool wsp(char c) { return c == ' ' || c == '\t'; }

/* The unfolded value of the field whose name ends at h[k] (the colon),
 * trimmed, compared with "No". */
static bool value_is_no(const char *h, size_t len, size_t k)
{
    char v[8];
    size_t n = 0;
    for (k++; k < len; k++) {
        if (h[k] == '\r' || h[k] == '\n') {
            size_t next = h[k] == '\r' && k + 1 < len && h[k + 1] == '\n' ? k + 2 : k + 1;
            if (next >= len || !wsp(h[next]))
                break; /* the field ends */
            k = next - 1;
            continue;
        }
        if (wsp(h[k]) && n == 0)
            continue;
        if (n == sizeof(v))
            return false;
        v[n++] = h[k];
    }
    while (n > 0 && wsp(v[n - 1]))
        n--;
    return n == 2 && strncasecmp(v, "no", 2) == 0;
}

bool smtp_tls_required_no(const char *h, size_t len)
{
    static const char name[] = "TLS-Required";
    const size_t nlen = sizeof(name) - 1;
    for (size_t i = 0; i < len;) {
        size_t eol = i;
        while (eol < len && h[eol] != '\n')
            eol++;
        size_t end = eol > i && h[eol - 1] == '\r' ? eol - 1 : eol;
        if (end == i)
            break; /* the empty line: the body follows */
        if (!wsp(h[i]) && end - i > nlen && strncasecmp(h + i, name, nlen) == 0) {
            size_t k = i + nlen;
            while (k < end && wsp(h[k]))
                k++;
            if (k < end && h[k] == ':' && value_is_no(h, len, k))
                return true;
        }
        i = eol + 1;
    }
    return false;
}
