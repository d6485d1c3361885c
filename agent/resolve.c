/* SPDX-License-Identifier: MIT */
/* Host names of Address= lines, resolved with getaddrinfo() when a policy is loaded. */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "resolve.h"

static int gai_errno(int e)
{
        switch (e) {
        case EAI_NONAME:
#ifdef EAI_NODATA
        case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
        case EAI_ADDRFAMILY:
#endif
                return -ENOENT;
        case EAI_AGAIN:
                return -EAGAIN;
        case EAI_MEMORY:
                return -ENOMEM;
        case EAI_SYSTEM:
                return errno > 0 ? -errno : -EIO;
        default:
                return -EIO;
        }
}

static bool contains(const struct ks_prefix *v, size_t n, const struct ks_prefix *p)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].family == p->family && memcmp(v[i].addr, p->addr, 16) == 0)
                        return true;
        return false;
}

int resolve_hostname(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata)
{
        /* No AI_ADDRCONFIG: pin both families whatever this host has configured right now. */
        const struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        _cleanup_free_ struct ks_prefix *v = NULL;
        struct addrinfo *res = NULL;
        size_t n = 0, cap = 0;
        int e;

        if (!name || !ret || !ret_n || !ret_error)
                return -EINVAL;
        *ret_error = NULL;
        errno = 0;
        e = getaddrinfo(name, NULL, &hints, &res);
        if (e != 0) {
                int r = gai_errno(e);

                *ret_error = strdup(e == EAI_SYSTEM && r != -EIO ? strerror(-r) : gai_strerror(e));
                return r;
        }
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                struct ks_prefix p = { .family = ai->ai_family };

                if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
                        memcpy(p.addr, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
                        p.len = 32;
                } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                        memcpy(p.addr, &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
                        p.len = 128;
                } else
                        continue;
                if (contains(v, n, &p))
                        continue;
                if (n == cap) {
                        size_t c = cap ? cap * 2 : 8;
                        struct ks_prefix *b = reallocarray(v, c, sizeof(*b));

                        if (!b) {
                                freeaddrinfo(res);
                                return -ENOMEM;
                        }
                        v = b;
                        cap = c;
                }
                v[n++] = p;
        }
        freeaddrinfo(res);
        if (n == 0) {
                *ret_error = strdup("no IPv4 or IPv6 address");
                return -ENOENT;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}
