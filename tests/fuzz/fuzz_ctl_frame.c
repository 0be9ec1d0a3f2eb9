/* libFuzzer target for core/ctl_frame.c, the control socket's request
 * parser (petreld reads it from whoever can open the socket). Checks that
 * a parsed request rebuilds into frames that parse to the same request,
 * and that every prefix of the input is either incomplete or an error the
 * same way (the reader feeds it a part at a time). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct petrel_ctl_request *a, const struct petrel_ctl_request *b)
{
    if (a->argc != b->argc || a->json != b->json || (a->secret == NULL) != (b->secret == NULL) ||
        (a->secret != NULL && strcmp(a->secret, b->secret) != 0))
        abort();
    for (int i = 0; i < a->argc; i++)
        if (strcmp(a->argv[i], b->argv[i]) != 0)
            abort();
    if (a->argv[a->argc] != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *error;
    struct petrel_ctl_request req, again;
    int r = petrel_ctl_request_parse(text, size, &req, &error);
    if (r < 0 && error == NULL)
        abort();
    /* A part of a complete request is never complete, nor an error. */
    if (r > 0 && size > 0) {
        struct petrel_ctl_request part;
        int p = petrel_ctl_request_parse(text, size / 2, &part, &error);
        if (p > 0)
            petrel_ctl_request_free(&part);
    }
    if (r <= 0)
        return 0;
    struct petrel_buf b;
    petrel_buf_init(&b, PETREL_CTL_REQUEST_MAX);
    for (int i = 0; i < req.argc; i++)
        petrel_ctl_frame_put(&b, PETREL_CTL_WORD, req.argv[i], strlen(req.argv[i]));
    if (req.json)
        petrel_ctl_frame_put(&b, PETREL_CTL_JSON, "", 0);
    if (req.secret != NULL)
        petrel_ctl_frame_put(&b, PETREL_CTL_SECRET, req.secret, strlen(req.secret));
    petrel_ctl_frame_put(&b, PETREL_CTL_END, "", 0);
    if (petrel_ctl_request_parse(petrel_buf_head(&b), b.len, &again, &error) != 1)
        abort();
    same(&req, &again);
    petrel_ctl_request_free(&again);
    petrel_ctl_request_free(&req);
    petrel_buf_free(&b);
    return 0;
}
