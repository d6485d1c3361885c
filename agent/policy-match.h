/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/*
 * Questions about what a policy lets through, answered from the parsed policy
 * alone (pure, no kernel): used to refuse an isolation that would cut the
 * admin's own session.
 */

/*
 * What the policy keeps, for the audit trail: "gateways relay, sip-trunk;
 * services mx, pbx" (either part left out if empty; "" if nothing), cut to size.
 */
void policy_kept_names(const struct ks_policy *p, char *buf, size_t size);

/* Is `ifname` one of the policy's uplinks? */
bool policy_has_uplink(const struct ks_policy *p, const char *ifname);

/*
 * Does the policy keep a connection that the remote peer `peer` opened to our
 * address `ours` (same family; NULL: unknown, not checked) on protocol `proto`,
 * from its port `rport` to our port `lport`? Gateways matched on packets if the
 * peer is one of their addresses and either port one of theirs (all ports
 * without Ports=); connection-matched gateways only with Direction=in
 * or both, Local= holding ours; services with From= holding peer, their
 * Address= holding ours and lport one of their ports.
 */
bool policy_keeps_inbound(const struct ks_policy *p, int family, const uint8_t *peer, const uint8_t *ours,
                          uint8_t proto, uint16_t rport, uint16_t lport);
