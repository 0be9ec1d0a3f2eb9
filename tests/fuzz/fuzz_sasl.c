/* libFuzzer target for the SASL parser: the first byte picks the
 * mechanism and whether there is an initial response, the rest is split
 * into client lines at LF. Whatever the client sends, the parser ends in
 * a defined state, and credentials exist exactly after DONE, with fields
 * free of NULs and within their limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/sasl.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct petrel_sasl *s, enum petrel_sasl_status st)
{
    struct petrel_sasl_credentials c;
    bool have = petrel_sasl_credentials(s, &c);
    if (have != (st == PETREL_SASL_DONE))
        abort();
    if (have && (strlen(c.authcid) == 0 || strlen(c.authcid) > PETREL_SASL_ID_MAX ||
                 strlen(c.authzid) > PETREL_SASL_ID_MAX || strlen(c.password) == 0 ||
                 strlen(c.password) > PETREL_SASL_PASSWORD_MAX))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum petrel_sasl_mech mech = (data[0] & 1) ? PETREL_SASL_LOGIN : PETREL_SASL_PLAIN;
    bool initial = (data[0] & 2) != 0;
    data++, size--;
    struct petrel_sasl *s = petrel_sasl_new(mech);
    const char *ch, *err;
    enum petrel_sasl_status st = PETREL_SASL_CONTINUE;
    size_t pos = 0;
    char *line = malloc(size + 1);
    bool first = true;
    while (pos <= size && st == PETREL_SASL_CONTINUE) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
        memcpy(line, data + pos, n);
        line[n] = '\0';
        if (first) {
            st = petrel_sasl_start(s, initial ? line : NULL, &ch, &err);
            first = false;
            if (initial)
                pos += n + 1;
        } else {
            st = petrel_sasl_step(s, line, n, &ch, &err);
            pos += n + 1;
        }
        if (st == PETREL_SASL_CONTINUE && ch == NULL)
            abort();
        if (st == PETREL_SASL_ERROR && err == NULL)
            abort();
        check(s, st);
    }
    free(line);
    petrel_sasl_free(s);
    return 0;
}
