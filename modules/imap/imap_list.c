/* LIST pattern matching (imap_list.h): one row of a dynamic programme
 * per pattern character, so "*a*a*a*..." against a long name costs
 * length times length, never an exponential backtrack. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "imap_list.h"

struct imap_list_pattern {
    size_t len;
    char text[];
};

static bool inbox_prefix(const char *s, size_t len)
{
    static const char inbox[] = "INBOX";
    if (len < 5 || (len > 5 && s[5] != IMAP_LIST_SEP))
        return false;
    for (size_t i = 0; i < 5; i++)
        if ((s[i] & ~0x20) != inbox[i])
            return false;
    return true;
}

struct imap_list_pattern *imap_list_pattern_new(const char *ref, size_t ref_len,
                                                const char *mailbox, size_t mailbox_len)
{
    if (ref_len > 0 && mailbox_len > 0 && ref[ref_len - 1] == IMAP_LIST_SEP &&
        mailbox[0] == IMAP_LIST_SEP) {
        mailbox++;
        mailbox_len--;
    }
    if (ref_len > IMAP_LIST_PATTERN_MAX || mailbox_len > IMAP_LIST_PATTERN_MAX - ref_len)
        return NULL;
    struct imap_list_pattern *pat = petrel_malloc(sizeof(*pat) + ref_len + mailbox_len + 1);
    size_t n = 0;
    /* A run of wildcards is one: '*' if it holds one, else '%'. */
    for (size_t i = 0; i < ref_len + mailbox_len; i++) {
        char c = i < ref_len ? ref[i] : mailbox[i - ref_len];
        bool wild = c == '*' || c == '%';
        if (wild && n > 0 && (pat->text[n - 1] == '*' || pat->text[n - 1] == '%')) {
            if (c == '*')
                pat->text[n - 1] = '*';
            continue;
        }
        pat->text[n++] = c;
    }
    pat->text[n] = '\0';
    pat->len = n;
    return pat;
}

void imap_list_pattern_free(struct imap_list_pattern *pat) { free(pat); }

/* The name's INBOX component is the same name in any case. */
static bool same(char a, bool name_inbox, const char *name, size_t ni)
{
    char b = name[ni];
    return a == b || (name_inbox && ni < 5 && (a & ~0x20) == (b & ~0x20) && a != IMAP_LIST_SEP);
}

bool imap_list_match(const struct imap_list_pattern *pat, const char *name, size_t len)
{
    if (pat->len == 0 || len == 0 || len > IMAP_LIST_NAME_MAX)
        return false;
    bool name_inbox = inbox_prefix(name, len);
    /* row[j]: the pattern so far matches the name's first j bytes. */
    bool *row = petrel_calloc(len + 1, sizeof(*row));
    row[0] = true;
    for (size_t i = 0; i < pat->len; i++) {
        char c = pat->text[i];
        if (c == '*' || c == '%') {
            for (size_t j = 1; j <= len; j++)
                row[j] = row[j] || (row[j - 1] && (c == '*' || name[j - 1] != IMAP_LIST_SEP));
            continue;
        }
        for (size_t j = len; j > 0; j--)
            row[j] = row[j - 1] && same(c, name_inbox, name, j - 1);
        row[0] = false;
    }
    bool match = row[len];
    free(row);
    return match;
}
