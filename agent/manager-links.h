/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The link layer of the cut, the manager's part (manager-links.c): the netdev
 * table (compile-links.c) staged beside the inet one, compiled on a thread
 * when a reload changed the policies, switched with it, re-asserted when
 * someone binds a chain to a link of the cut or a link is renamed or stacked
 * (links.c), and the uplinks' ifindexes kept in the state file across a
 * restart.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ks_manager;
struct ks_ruleset;
struct monitor_event;

/* Stage the whole netdev table, `active` (may be NULL) bound to the links of its cut (reset: tracked afresh). */
int manager_links_stage(struct ks_manager *m, const char *active, bool reset);
/* The same on a later loop iteration at idle priority, compiled on a thread: an isolation goes first. */
void manager_links_stage_soon(struct ks_manager *m);

/*
 * The link layer's part of a switch (compile_links_hook): the names of the
 * cut into P/uplinks, the device chains bound to them anew; active NULL:
 * unbound. *ret NULL if there is nothing to send (active is not loaded) or
 * the netdev table must first be staged whole (not the loaded version).
 */
int manager_links_switch(struct ks_manager *m, const char *active, bool reset, struct ks_ruleset **ret,
                         size_t *ret_n);
/* After the link layer's switch rs was sent (r: how it went): the expected shape, the log, the uplinks saved. */
int manager_links_switched(struct ks_manager *m, const char *active, const struct ks_ruleset *rs, size_t n,
                           uint64_t usec, int r, const struct ks_error *e);
/* The O(1) switch of the link layer alone (a change of the cut); if its table is missing or stale, staged whole. */
int manager_links_apply(struct ks_manager *m, const char *active, bool reset);

/* Before the store changes (a reload's result): a compile running on a thread goes on alone, its result unused. */
void manager_links_compile_abandon(struct ks_manager *m);
/* At exit: every compile waited for, then what they read freed. */
void manager_links_compile_stop_all(struct ks_manager *m);

/* Re-assert the link layer once the burst of events is read. */
void manager_links_reassert_soon(struct ks_manager *m);
/* A monitor event: a chain bound to a link of the cut by someone else is re-asserted (rate-limited). */
void manager_links_foreign_hooks(struct ks_manager *m, const struct monitor_event *ev);
/* links.c's callback: an uplink was renamed, a link stacked on one, ... */
void manager_links_changed(void *userdata, const char *what, bool tamper);

/* While isolated: the tracked uplinks' ifindexes into the state file, if they changed; or once answered. */
void manager_links_remember(struct ks_manager *m);
void manager_links_remember_soon(struct ks_manager *m);
/* At start, isolated: the uplinks saved by ifindex are tracked again, renamed or not (tamper if renamed). */
void manager_links_adopt(struct ks_manager *m);
