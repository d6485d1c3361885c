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

/*
 * How long a reload may wait for the name service, all names together. Only
 * the waiting counts: reading and parsing the files (a large policy on a busy
 * machine takes seconds) does not use it up.
 */
#define RESOLVE_TIMEOUT_USEC (5ULL * 1000000ULL)

struct resolve_budget {
        uint64_t left_usec;             /* waiting time left; once 0, every lookup fails */
        uint64_t timeout_usec;          /* the whole budget, for the message */
};

#define RESOLVE_BUDGET_INIT { .left_usec = RESOLVE_TIMEOUT_USEC, .timeout_usec = RESOLVE_TIMEOUT_USEC }

/*
 * A policy_resolver_t with a time limit (userdata: a struct resolve_budget):
 * resolve_hostname() on a thread of its own, waited for at most the time left
 * in the budget, which the wait then uses up. A name service that does not
 * answer in time gives -ETIMEDOUT ("no answer from the name service within
 * 5 s"), as does every later lookup with the same budget; the lookup is left
 * to finish on its own (getaddrinfo cannot be cancelled) and its result
 * dropped. Thread-safe for lookups with budgets of their own.
 */
int resolve_hostname_bounded(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error,
                             void *userdata);
