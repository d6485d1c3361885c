/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Connection tracking (ctnetlink). A flow offloaded to a flowtable skips the
 * prerouting/forward hooks, so the isolation rules would never see it: after
 * every isolation change the agent deletes the conntrack entries of offloaded
 * flows, which takes them off the fast path; their next packet meets the rules.
 */

/* Delete every conntrack entry with IPS_OFFLOAD set; *ret_deleted (may be NULL) counts them. */
int conntrack_flush_offloaded(unsigned *ret_deleted);
