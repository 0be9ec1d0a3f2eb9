/* The base64 alphabet (RFC 4648 section 4), shared by the decoders that
 * differ in strictness: SASL (strict) and MIME encoded words (lenient). */
#ifndef PETREL_CORE_BASE64_H
#define PETREL_CORE_BASE64_H

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

#endif
