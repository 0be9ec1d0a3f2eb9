/* The commands of a transaction with the ESMTP parameters the server
 * offers and the message needs (RFC 1870 SIZE, 6152 8BITMIME, 3030
 * BINARYMIME, 6531 SMTPUTF8, 3461 DSN, 8689 REQUIRETLS). Values come from the queue, which
 * took them from smtp_in already checked; a control character is refused
 * here anyway, since it would end the command early at the next hop. */
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include <petrel/queue.h>
#include <petrel/transport.h>

#include "smtp_reply.h"

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

bool smtp_addr_sendable(const char *address) { return address[0] != '\0' && !has_control(address); }

bool smtp_xtext(struct petrel_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = c > 0x20 && c < 0x7f && c != '+' && c != '=';
        char enc[3] = {'+', hex[c >> 4], hex[c & 15]};
        if (!(ok ? petrel_buf_append(out, s, 1) : petrel_buf_append(out, enc, 3)))
            return false;
    }
    return true;
}

/* utf-8-addr-xtext (RFC 6533 section 3): like xtext, but a character
 * outside printable ASCII, or '+', '=' or '\', is \x{HEX} of its code
 * point, so an address with UTF-8 keeps its characters. A byte that does
 * not start valid UTF-8 goes as its own value. */
static bool utf8_xtext(struct petrel_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        uint32_t cp = *p;
        size_t n = 1;
        if (cp >= 0xc2 && cp <= 0xf4) {
            size_t more = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : 1;
            uint32_t v = cp & (0x3fu >> more);
            size_t i = 1;
            for (; i <= more && (p[i] & 0xc0) == 0x80; i++)
                v = v << 6 | (p[i] & 0x3fu);
            if (i == more + 1)
                cp = v, n = more + 1;
        }
        bool plain = cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\';
        if (plain ? !petrel_buf_append(out, p, 1) : !petrel_buf_printf(out, "\\x{%" PRIX32 "}", cp))
            return false;
        p += n;
    }
    return true;
}

static bool orcpt_param(struct petrel_buf *out, const char *orcpt)
{
    const char *semi = strchr(orcpt, ';');
    if (semi == NULL || semi == orcpt || semi - orcpt > 15)
        return true; /* not of the form type;value: leave it out */
    if (!petrel_buf_printf(out, " ORCPT=%.*s;", (int)(semi - orcpt), orcpt))
        return false;
    if (semi - orcpt == 5 && strncasecmp(orcpt, "utf-8", 5) == 0)
        return utf8_xtext(out, semi + 1);
    return smtp_xtext(out, semi + 1);
}

bool smtp_cmd_mail(struct petrel_buf *out, const struct petrel_transport_msg *msg,
                   const struct smtp_ehlo *e)
{
    size_t keep = out->len;
    bool ok = !has_control(msg->from) && petrel_buf_printf(out, "MAIL FROM:<%s>", msg->from);
    if (ok && e->size)
        ok = petrel_buf_printf(out, " SIZE=%" PRIu64, msg->size);
    if (ok && msg->body == PETREL_BODY_8BITMIME && e->eightbitmime)
        ok = petrel_buf_printf(out, " BODY=8BITMIME");
    if (ok && msg->body == PETREL_BODY_BINARYMIME)
        ok = petrel_buf_printf(out, " BODY=BINARYMIME");
    if (ok && msg->smtputf8)
        ok = petrel_buf_printf(out, " SMTPUTF8");
    if (ok && msg->requiretls) /* session.c has checked that e offers it */
        ok = petrel_buf_printf(out, " REQUIRETLS");
    if (ok && e->dsn && msg->ret != PETREL_DSN_RET_DEFAULT)
        ok = petrel_buf_printf(out, " RET=%s", msg->ret == PETREL_DSN_RET_FULL ? "FULL" : "HDRS");
    if (ok && e->dsn && msg->envid != NULL && msg->envid[0] != '\0')
        ok = petrel_buf_printf(out, " ENVID=") && smtp_xtext(out, msg->envid);
    ok = ok && petrel_buf_append(out, "\r\n", 2);
    if (!ok)
        out->len = keep;
    return ok;
}

static bool notify_param(struct petrel_buf *out, unsigned notify)
{
    if (notify & PETREL_DSN_NEVER)
        return petrel_buf_printf(out, " NOTIFY=NEVER");
    static const struct {
        unsigned bit;
        const char *name;
    } words[] = {{PETREL_DSN_SUCCESS, "SUCCESS"},
                 {PETREL_DSN_FAILURE, "FAILURE"},
                 {PETREL_DSN_DELAY, "DELAY"}};
    const char *sep = " NOTIFY=";
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if ((notify & words[i].bit) == 0)
            continue;
        if (!petrel_buf_printf(out, "%s%s", sep, words[i].name))
            return false;
        sep = ",";
    }
    return true;
}

bool smtp_cmd_rcpt(struct petrel_buf *out, const struct petrel_transport_rcpt *rcpt,
                   const struct smtp_ehlo *e)
{
    size_t keep = out->len;
    bool ok =
        smtp_addr_sendable(rcpt->address) && petrel_buf_printf(out, "RCPT TO:<%s>", rcpt->address);
    if (ok && e->dsn && rcpt->notify != 0)
        ok = notify_param(out, rcpt->notify);
    if (ok && e->dsn && rcpt->orcpt != NULL && !has_control(rcpt->orcpt))
        ok = orcpt_param(out, rcpt->orcpt);
    ok = ok && petrel_buf_append(out, "\r\n", 2);
    if (!ok)
        out->len = keep;
    return ok;
}
