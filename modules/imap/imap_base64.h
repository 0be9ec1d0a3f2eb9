/* The base64 alphabet (RFC 4648 section 4) for the module's two decoders:
 * MIME bodies in SEARCH ('/' for 63) and modified UTF-7 folder names
 * (RFC 3501 section 5.1.3: ',' for 63). */
#ifndef PETREL_IMAP_BASE64_H
#define PETREL_IMAP_BASE64_H

/* The 6-bit value of c, or -1 when c is not in the alphabet whose 63rd
 * letter is c63 ('=' included). */
static inline int imap_base64_value(unsigned char c, char c63)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == (unsigned char)c63)
        return 63;
    return -1;
}

#endif
