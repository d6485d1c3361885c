/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/*
 * The resolver policy_resolve() uses in the agent: getaddrinfo() for both
 * families (without AI_ADDRCONFIG: a gateway's IPv6 address is pinned even if
 * no uplink has IPv6 at the moment), the addresses deduplicated, each a /32 or
 * /128. This is the only name-service I/O of the agent. It blocks: the agent
 * calls it only through resolve_hostname_bounded(), off its event loop.
 *
 * A policy_resolver_t: userdata is ignored. Returns 0 and at least one
 * address; -ENOENT (no such name, or no address), -EAGAIN (temporary failure,
 * e.g. no DNS server reachable), -ENOMEM, -EIO, or -errno, each with the
 * resolver's reason in *ret_error.
 */
int resolve_hostname(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata);

/* How long a reload may wait for the name service, all names together. */
#define RESOLVE_TIMEOUT_USEC (5ULL * 1000000ULL)

struct resolve_budget {
        uint64_t deadline_usec;         /* CLOCK_MONOTONIC: no answer by then is a failure */
        uint64_t timeout_usec;          /* the same as a duration, for the message */
};

/*
 * A policy_resolver_t with a deadline (userdata: a struct resolve_budget):
 * resolve_hostname() on a thread of its own, waited for until the deadline.
 * A name service that does not answer by then gives -ETIMEDOUT ("no answer
 * from the name service within 5 s"); the lookup is left to finish on its own
 * (getaddrinfo cannot be cancelled) and its result dropped. Thread-safe.
 */
int resolve_hostname_bounded(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error,
                             void *userdata);
