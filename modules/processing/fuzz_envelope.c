/* libFuzzer target for the queue envelope parser (modules/processing/
 * envelope.c), which petrelctl runs as root on files in the queue. The
 * input is a whole envelope file. Whatever it holds: the parser accepts it
 * or refuses it with an error and nothing to free; what it accepts has an
 * id, a sender, at least one recipient, each in a known state and route,
 * and at most QUEUE_MAX_RCPTS of them; writing it out gives a file that
 * reads back, and writing that again gives the same bytes (the format is a
 * fixed point after one pass: controls become '?', unknown keys go). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/buf.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct queue_envelope *env)
{
    if (!queue_id_valid(env->id) || env->from == NULL || env->nrcpts == 0 ||
        env->nrcpts > QUEUE_MAX_RCPTS || queue_envelope_open_count(env) > env->nrcpts)
        abort();
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        if (strchr("EPTDFBS", r->state) == NULL || r->state == '\0' ||
            strchr("-LR", r->route) == NULL || r->route == '\0' || r->address == NULL ||
            r->address[0] == '\0' || r->notify > 15)
            abort();
    }
}

/* env written out into b (reset first); aborts if it does not fit. */
static void format(const struct queue_envelope *env, struct petrel_buf *b)
{
    petrel_buf_reset(b);
    if (!queue_envelope_format(env, b))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    struct queue_envelope env, back, again;
    const char *error = NULL;
    if (!queue_envelope_parse((const char *)data, size, &env, &error)) {
        if (error == NULL)
            abort();
        return 0;
    }
    check_accepted(&env);

    struct petrel_buf first, second;
    petrel_buf_init(&first, QUEUE_ENVELOPE_MAX);
    petrel_buf_init(&second, QUEUE_ENVELOPE_MAX);
    format(&env, &first);
    if (!queue_envelope_parse(petrel_buf_head(&first), first.len, &back, &error))
        abort();
    check_accepted(&back);
    if (back.nrcpts != env.nrcpts || strcmp(back.id, env.id) != 0)
        abort();
    format(&back, &second);
    if (second.len != first.len ||
        memcmp(petrel_buf_head(&second), petrel_buf_head(&first), first.len) != 0)
        abort();
    /* And once more from the fixed point: still the same envelope. */
    if (!queue_envelope_parse(petrel_buf_head(&second), second.len, &again, &error) ||
        again.nrcpts != back.nrcpts)
        abort();
    queue_envelope_free(&again);
    queue_envelope_free(&back);
    queue_envelope_free(&env);
    petrel_buf_free(&first);
    petrel_buf_free(&second);
    return 0;
}
