/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the agent keeps of root's powers: CAP_NET_ADMIN (nftables, conntrack,
 * nfnetlink_log, rtnetlink) and nothing else. privs_drop() sets
 * PR_SET_NO_NEW_PRIVS, clears the ambient and inheritable sets, drops every
 * other capability from the bounding set, and keeps CAP_NET_ADMIN alone in the
 * effective and permitted sets (if the process had it). Under systemd the unit
 * already does this (CapabilityBoundingSet=, NoNewPrivileges=); run by hand,
 * this does it. Call it before any thread starts: capabilities are per thread,
 * and threads inherit them. Returns 0 or a negative errno (nothing is undone).
 */
int privs_drop(void);
