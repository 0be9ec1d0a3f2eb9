/* The base64 alphabet (RFC 4648 section 4) and hex digits, shared by the
 * decoders that differ in strictness: SASL (strict), MIME encoded words
 * and transfer encodings (lenient). */
#ifndef PETREL_CORE_ALPHABET_H
#define PETREL_CORE_ALPHABET_H

/* The 6-bit value of c, or -1 when c is not in the alphabet ('=' included). */
static inline int petrel_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* The value of the hex digit c (either case), or -1. */
static inline int petrel_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
