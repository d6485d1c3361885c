/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
/* Host names of Address= lines, resolved with getaddrinfo() when a policy is loaded. */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "cleanup.h"
#include "resolve.h"
#include "timeutil.h"

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

DEFINE_TRIVIAL_CLEANUP_FUNC(struct addrinfo *, freeaddrinfo)

int resolve_hostname(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata)
{
        /* No AI_ADDRCONFIG: pin both families whatever this host has configured right now. */
        const struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        _cleanup_free_ struct ks_prefix *v = NULL;
        _cleanup_(freeaddrinfop) struct addrinfo *res = NULL;
        size_t n = 0;
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
                if (!GREEDY_REALLOC(v, n + 1))
                        return -ENOMEM;
                v[n++] = p;
        }
        if (n == 0) {
                *ret_error = strdup("no IPv4 or IPv6 address");
                return -ENOENT;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

/*
 * One lookup on its own detached thread. getaddrinfo() cannot be cancelled, so
 * a caller that stops waiting leaves it behind; whichever of the two lets go
 * last frees it.
 */
struct lookup {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned refs;
        bool done;
        char *name;
        int r;
        struct ks_prefix *addrs;
        size_t n_addrs;
        char *error;
};

static void lookup_unref(struct lookup *l)
{
        bool last;

        pthread_mutex_lock(&l->lock);
        last = --l->refs == 0;
        pthread_mutex_unlock(&l->lock);
        if (!last)
                return;
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
        free(l->name);
        free(l->addrs);
        free(l->error);
        free(l);
}

static void *lookup_run(void *userdata)
{
        struct lookup *l = userdata;
        struct ks_prefix *addrs = NULL;
        char *error = NULL;
        size_t n = 0;
        int r = resolve_hostname(l->name, &addrs, &n, &error, NULL);

        pthread_mutex_lock(&l->lock);
        l->r = r;
        l->addrs = addrs;
        l->n_addrs = n;
        l->error = error;
        l->done = true;
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
        lookup_unref(l);
        return NULL;
}

static int lookup_new(const char *name, struct lookup **ret)
{
        struct lookup *l = calloc(1, sizeof(*l));
        pthread_condattr_t attr;

        if (!l || !(l->name = strdup(name))) {
                free(l);
                return -ENOMEM;
        }
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&l->cond, &attr);
        pthread_condattr_destroy(&attr);
        pthread_mutex_init(&l->lock, NULL);
        l->refs = 2;    /* the thread's and the caller's */
        *ret = l;
        return 0;
}

static int lookup_start(struct lookup *l)
{
        pthread_attr_t attr;
        pthread_t t;
        int e;

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        e = pthread_create(&t, &attr, lookup_run, l);
        pthread_attr_destroy(&attr);
        return -e;
}

/* Wait until the lookup is done or the deadline (CLOCK_MONOTONIC, µs) passes. */
static bool lookup_wait(struct lookup *l, uint64_t deadline_usec)
{
        struct timespec ts = { .tv_sec = (time_t)(deadline_usec / USEC_PER_SEC),
                               .tv_nsec = (long)(deadline_usec % USEC_PER_SEC) * 1000 };
        bool done;

        pthread_mutex_lock(&l->lock);
        while (!l->done && pthread_cond_timedwait(&l->cond, &l->lock, &ts) != ETIMEDOUT)
                ;
        done = l->done;
        pthread_mutex_unlock(&l->lock);
        return done;
}

/* The time waited since start, at most `left`. */
static uint64_t spent(uint64_t start, uint64_t left)
{
        uint64_t d = now_monotonic_usec() - start;

        return d < left ? d : left;
}

int resolve_hostname_bounded(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error,
                             void *userdata)
{
        struct resolve_budget *b = userdata;
        struct lookup *l = NULL;
        uint64_t start;
        int r;

        if (!name || !ret || !ret_n || !ret_error || !b)
                return -EINVAL;
        *ret_error = NULL;
        if (b->left_usec == 0)
                goto timed_out;
        r = lookup_new(name, &l);
        if (r < 0)
                return r;
        r = lookup_start(l);
        if (r < 0) {
                l->refs = 1;    /* no thread */
                lookup_unref(l);
                if (asprintf(ret_error, "cannot start a lookup: %s", strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        start = now_monotonic_usec();
        if (!lookup_wait(l, start + b->left_usec)) {
                b->left_usec = 0;
                lookup_unref(l);
                goto timed_out;
        }
        b->left_usec -= spent(start, b->left_usec);
        r = l->r;
        if (r == 0) {
                *ret = TAKE_PTR(l->addrs);
                *ret_n = l->n_addrs;
        } else
                *ret_error = TAKE_PTR(l->error);
        lookup_unref(l);
        return r;

timed_out:
        if (asprintf(ret_error, "no answer from the name service within %llu s", b->timeout_usec / USEC_PER_SEC) < 0)
                *ret_error = NULL;
        return -ETIMEDOUT;
}
