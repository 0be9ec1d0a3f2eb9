/* ENVELOPE: the strings come from the core parser as written; the address
 * lists are parsed again here from those strings because the core decodes
 * RFC 2047 display names, which RFC 3501 wants left encoded. */
#include "imap_envelope.h"

#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

/* A byte the core passes through unchanged but that can not appear in a
 * header we keep: put between "=" and "?", it stops encoded words from
 * being recognised (and decoded); it is taken out again afterwards. */
#define SHIELD '\x01'

static char *shield(const char *value)
{
    size_t len = strlen(value);
    char *s = petrel_malloc(len * 2 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] == SHIELD)
            continue;
        s[n++] = value[i];
        if (value[i] == '=' && value[i + 1] == '?')
            s[n++] = SHIELD;
    }
    s[n] = '\0';
    return s;
}

static void unshield(char *s)
{
    if (s == NULL)
        return;
    size_t n = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] != SHIELD)
            s[n++] = s[i];
    }
    s[n] = '\0';
}

static struct petrel_mime_address *parse_list(const char *value)
{
    if (value == NULL)
        return NULL;
    char *s = shield(value);
    struct petrel_mime_address *list = petrel_mime_parse_addresses(s, IMAP_ENVELOPE_MAX_ADDRESSES);
    free(s);
    for (struct petrel_mime_address *a = list; a != NULL; a = a->next) {
        unshield(a->name);
        unshield(a->route);
        unshield(a->mailbox);
        unshield(a->host);
    }
    return list;
}

/* An address, or a group marker: (NIL NIL "group" NIL) starts a group and
 * (NIL NIL NIL NIL) ends it (RFC 3501 section 7.4.2). */
static void put_address(struct imap_mime_writer *w, const struct petrel_mime_address *a)
{
    imap_mime_put(w, "(", 1);
    imap_mime_put_nstring(w, a->name);
    imap_mime_put(w, " ", 1);
    imap_mime_put_nstring(w, a->route);
    imap_mime_put(w, " ", 1);
    imap_mime_put_nstring(w, a->mailbox);
    imap_mime_put(w, " ", 1);
    imap_mime_put_nstring(w, a->host);
    imap_mime_put(w, ")", 1);
}

/* NIL for an empty list, as for an absent field. */
static void put_list(struct imap_mime_writer *w, const struct petrel_mime_address *list)
{
    if (list == NULL) {
        imap_mime_put(w, "NIL", 3);
        return;
    }
    imap_mime_put(w, "(", 1);
    for (const struct petrel_mime_address *a = list; a != NULL; a = a->next)
        put_address(w, a);
    imap_mime_put(w, ")", 1);
}

static void put_field(struct imap_mime_writer *w, const char *value)
{
    struct petrel_mime_address *list = parse_list(value);
    imap_mime_put(w, " ", 1);
    put_list(w, list);
    petrel_mime_addresses_free(list);
}

/* Sender and Reply-To are From when absent or empty (RFC 3501). */
static void put_defaulted(struct imap_mime_writer *w, const char *value, const char *from)
{
    struct petrel_mime_address *list = parse_list(value);
    if (list == NULL)
        list = parse_list(from);
    imap_mime_put(w, " ", 1);
    put_list(w, list);
    petrel_mime_addresses_free(list);
}

void imap_envelope_write(struct imap_mime_writer *w, const struct petrel_mime_envelope *env)
{
    static const struct petrel_mime_envelope none;
    if (env == NULL)
        env = &none;
    imap_mime_put(w, "(", 1);
    imap_mime_put_nstring(w, env->date);
    imap_mime_put(w, " ", 1);
    imap_mime_put_nstring(w, env->subject);
    put_field(w, env->from);
    put_defaulted(w, env->sender, env->from);
    put_defaulted(w, env->reply_to, env->from);
    put_field(w, env->to);
    put_field(w, env->cc);
    put_field(w, env->bcc);
    imap_mime_put(w, " ", 1);
    imap_mime_put_nstring(w, env->in_reply_to);
    imap_mime_put(w, " ", 1);
    imap_mime_put_nstring(w, env->message_id);
    imap_mime_put(w, ")", 1);
}
