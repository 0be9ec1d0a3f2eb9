/* Writes a queued message's data file as it goes on the wire after DATA:
 * dot-stuffed through libpetrel's petrel_dotstuff, ended with CRLF.CRLF.
 * Built out of tree against the installed headers by test_smtp.py, the
 * way smtp_out will send the queue's data. Usage: dotstuff_file FILE */
#include <stdio.h>

#include <petrel/dotstuff.h>

int main(int argc, char **argv)
{
    FILE *in = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (in == NULL)
        return 2;
    struct petrel_dotstuff d;
    struct petrel_buf out;
    char chunk[7]; /* small: pieces split lines, as reads of a big file do */
    size_t n;
    petrel_dotstuff_init(&d);
    petrel_buf_init(&out, 64u << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        if (!petrel_dotstuff_add(&d, chunk, n, &out))
            return 1;
    if (!petrel_dotstuff_end(&d, &out) ||
        fwrite(petrel_buf_head(&out), 1, out.len, stdout) != out.len)
        return 1;
    petrel_buf_free(&out);
    fclose(in);
    return 0;
}
