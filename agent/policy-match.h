/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/*
 * Questions about what a policy lets through, answered from the parsed policy
 * alone (pure, no kernel): used to refuse an isolation that would cut the
 * admin's own session.
 */

/* Is `ifname` one of the policy's uplinks? */
bool policy_has_uplink(const struct ks_policy *p, const char *ifname);

/*
 * The gateway that keeps traffic with the remote peer `addr` (family AF_INET or
 * AF_INET6, network order) on protocol `proto` where the remote side's port is
 * `rport` and ours is `lport` — i.e. whether either port is one of the
 * gateway's. NULL if the policy cuts it.
 */
const struct ks_gateway *policy_keeping_gateway(const struct ks_policy *p, int family, const uint8_t *addr,
                                                uint8_t proto, uint16_t rport, uint16_t lport);
