/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "policy.h"

/*
 * Warnings about a policy that parses but probably does not say what its
 * author meant (killswitchd --check prints them, exit status 0). Pure: what
 * the host has now is passed in by the caller.
 */

/* An interface stacked on another (a vlan, macvlan or ipvlan on its lower device, a bond on a slave). */
struct ks_stacked {
        const char *upper;
        const char *lower;
};

struct ks_host_view {
        const struct ks_prefix *addrs;  /* this host's addresses, full length */
        size_t n_addrs;
        const char *const *ifnames;     /* its interfaces now */
        size_t n_ifnames;
        const char *const *bridges;     /* those of them that are bridges */
        size_t n_bridges;
        const struct ks_stacked *stacked;       /* which of them sits on which (sysfs lower_*) */
        size_t n_stacked;
};

/*
 * Add "FILE:LINE: warning: ..." to warnings for: a gateway that keeps every
 * address in both directions without Local=; a gateway address that is an
 * address of this host (a [Service] is meant); Local= without an address of a
 * family that Address= has; an uplink that does not exist now, that is a
 * bridge, or that is stacked on a lower device (host may be NULL: no host checks). Returns the number of warnings added, or -ENOMEM.
 */
int policy_lint(const struct ks_policy *p, const struct ks_host_view *host, struct ks_diags *warnings);
