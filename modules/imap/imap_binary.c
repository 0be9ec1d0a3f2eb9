/* FETCH BINARY's decoded bytes: see imap_binary.h. */
#include "imap_binary.h"

#include <string.h>
#include <unistd.h>

/* Encoded bytes read at a time (and the stack it costs, twice). */
#define BINARY_CHUNK (16u * 1024u)

static void init(struct imap_binary *b, int fd, const struct imap_section_plan *plan)
{
    *b = (struct imap_binary){.fd = fd, .in_off = plan->offset, .in_left = plan->length};
    const char *names[] = {[PETREL_CTE_IDENTITY] = "binary",
                           [PETREL_CTE_BASE64] = "base64",
                           [PETREL_CTE_QP] = "quoted-printable"};
    petrel_cte_init(&b->cte, names[plan->cte]);
}

/* The next decoded piece from at most want encoded bytes into dec (room
 * BINARY_CHUNK + 2); false when the input is done. A read error or a
 * short file ends the input. */
static bool next_piece(struct imap_binary *b, size_t want, char *dec, size_t *n_r)
{
    char raw[BINARY_CHUNK];
    *n_r = 0;
    if (b->in_left > 0) {
        size_t n = want < sizeof(raw) ? want : sizeof(raw);
        if (n > b->in_left)
            n = (size_t)b->in_left;
        ssize_t got = b->fd >= 0 ? pread(b->fd, raw, n, (off_t)b->in_off) : -1;
        if (got > 0) {
            b->in_off += (uint64_t)got;
            b->in_left -= (uint64_t)got;
            *n_r = petrel_cte_decode(&b->cte, raw, (size_t)got, dec);
            return true;
        }
        b->in_left = 0;
    }
    if (b->ended)
        return false;
    b->ended = true;
    petrel_cte_end(&b->cte, dec, n_r); /* damage is decoded leniently */
    return true;
}

void imap_binary_measure(int fd, const struct imap_section_plan *plan, uint64_t *size_r,
                         bool *nul_r)
{
    struct imap_binary b;
    char dec[BINARY_CHUNK + 2];
    size_t n;
    init(&b, fd, plan);
    *size_r = 0;
    *nul_r = false;
    while (next_piece(&b, BINARY_CHUNK, dec, &n)) {
        *size_r += n;
        *nul_r = *nul_r || memchr(dec, '\0', n) != NULL;
    }
}

void imap_binary_start(struct imap_binary *b, int fd, const struct imap_section_plan *plan,
                       uint64_t start, uint64_t count)
{
    init(b, fd, plan);
    b->skip = start;
    b->left = count;
}

/* Blanks; returns how many fitted. */
static uint64_t pad(uint64_t len, struct petrel_buf *out)
{
    uint64_t done = 0;
    while (len > 0) {
        size_t room;
        char *p = petrel_buf_space(out, len > BINARY_CHUNK ? BINARY_CHUNK : (size_t)len, &room);
        if (room == 0)
            break;
        if (room > len)
            room = (size_t)len;
        memset(p, ' ', room);
        petrel_buf_commit(out, room);
        len -= room;
        done += room;
    }
    return done;
}

uint64_t imap_binary_put(struct imap_binary *b, uint64_t max, struct petrel_buf *out)
{
    char dec[BINARY_CHUNK + 2];
    uint64_t given = 0;
    while (b->left > 0 && given < max) {
        size_t n;
        /* While skipping, read at full speed; after, no more than asked. */
        uint64_t want = b->skip > 0 ? BINARY_CHUNK : max - given;
        if (!next_piece(b, want > BINARY_CHUNK ? BINARY_CHUNK : (size_t)want, dec, &n)) {
            uint64_t blanks = pad(b->left < max - given ? b->left : max - given, out);
            if (blanks == 0)
                break;
            b->left -= blanks;
            given += blanks;
            continue;
        }
        size_t drop = b->skip < n ? (size_t)b->skip : n;
        b->skip -= drop;
        size_t take = n - drop < b->left ? n - drop : (size_t)b->left;
        if (!petrel_buf_append(out, dec + drop, take))
            break; /* cannot happen: out's cap is above a turn's output */
        b->left -= take;
        given += take;
    }
    return b->left;
}
