/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "policy.h"

/*
 * The resolver policy_resolve() uses in the agent: getaddrinfo() for both
 * families (without AI_ADDRCONFIG: a gateway's IPv6 address is pinned even if
 * no uplink has IPv6 at the moment), the addresses deduplicated, each a /32 or
 * /128. This is the only name-service I/O of the agent; it blocks, so it runs
 * when policies are loaded or reloaded, never while isolated.
 *
 * A policy_resolver_t: userdata is ignored. Returns 0 and at least one
 * address; -ENOENT (no such name, or no address), -EAGAIN (temporary failure,
 * e.g. no DNS server reachable), -ENOMEM, -EIO, or -errno, each with the
 * resolver's reason in *ret_error.
 */
int resolve_hostname(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error, void *userdata);
