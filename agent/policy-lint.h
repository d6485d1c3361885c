/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "policy.h"

/*
 * Warnings about a policy that parses but probably does not say what its
 * author meant (killswitchd --check prints them, exit status 0). Pure: what
 * the host has now is passed in by the caller.
 */

struct ks_host_view {
        const struct ks_prefix *addrs;  /* this host's addresses, full length */
        size_t n_addrs;
        const char *const *ifnames;     /* its interfaces now */
        size_t n_ifnames;
        const char *const *bridges;     /* those of them that are bridges */
        size_t n_bridges;
};

/*
 * Add "FILE:LINE: warning: ..." to warnings for: a gateway that keeps every
 * address in both directions without Local=; a gateway address that is an
 * address of this host (a [Service] is meant); Local= without an address of a
 * family that Address= has; an uplink that does not exist now, or that is a
 * bridge (host may be NULL: no host checks). Returns the number of warnings added, or -ENOMEM.
 */
int policy_lint(const struct ks_policy *p, const struct ks_host_view *host, struct ks_diags *warnings);
