/* The PROXY protocol (HAProxy, versions 1 and 2) that a load balancer puts
 * in front of a connection to pass on the real client address. Parsing only:
 * no I/O, so the unit tests and the fuzzer drive it directly. */
#ifndef PETREL_CORE_PROXYPROTO_H
#define PETREL_CORE_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Largest header accepted. v1 lines are at most 107 bytes; v2 allows 64 KiB
 * of TLVs, which nothing we accept needs, so longer v2 headers are refused. */
#define PETREL_PROXY_MAX 4096

enum petrel_proxy_result {
    PETREL_PROXY_AGAIN, /* a valid prefix: read more */
    PETREL_PROXY_DONE,  /* header parsed; *consumed_r bytes belong to it */
    PETREL_PROXY_ERROR, /* not a valid header */
};

struct petrel_proxy_info {
    /* false for v1 "UNKNOWN", v2 LOCAL or an unsupported family: keep the
     * socket's own addresses. */
    bool has_addr;
    struct sockaddr_storage src, dst;
};

enum petrel_proxy_result petrel_proxy_parse(const uint8_t *data, size_t len,
                                            struct petrel_proxy_info *info, size_t *consumed_r,
                                            const char **error_r);

#endif
