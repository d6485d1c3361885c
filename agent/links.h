/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <net/if.h>

#include <systemd/sd-event.h>

/*
 * The links of this network namespace, watched over rtnetlink (RTMGRP_LINK,
 * no polling): each link's name, what it is stacked on (IFLA_LINK, within
 * this namespace) and its master (IFLA_MASTER). Uplinks are tracked by
 * ifindex once resolved, so a rename does not lose them; the cut is the
 * tracked uplinks and every link stacked on one or enslaving one (a vlan,
 * macvlan, ipvlan; a bridge or bond that took it as a port), transitively.
 * When the cut changes while tracking, the callback hears what happened.
 */

struct ks_links;

/* tamper: the cut grew or an uplink was renamed (not: a link of the cut went away). */
typedef void (*links_cb_t)(void *userdata, const char *what, bool tamper);

int links_new(sd_event *event, links_cb_t cb, void *userdata, struct ks_links **ret);
struct ks_links *links_free(struct ks_links *l);

/*
 * Track the links named names[0..n) now, and any link that takes one of these
 * names later. reset: forget what was tracked before, links_adopt's too
 * (another policy, or n 0 to stop tracking); otherwise the links tracked so
 * far stay (renamed ones).
 */
int links_track(struct ks_links *l, const char (*names)[IFNAMSIZ], size_t n, bool reset);

/*
 * The names of the links in the cut now, beyond those passed to links_track
 * that exist under that name (renamed uplinks, stacked and enslaving links), as
 * a NULL-terminated array of pointers into l (valid until the next event).
 * Caller frees the array only.
 */
int links_cut(struct ks_links *l, const char ***ret, size_t *ret_n);

/*
 * The tracked uplinks now (name, ifindex), at most max into names/ifindexes;
 * returns how many there are.
 */
size_t links_tracked(struct ks_links *l, char (*names)[IFNAMSIZ], int *ifindexes, size_t max);

/*
 * Track the link numbered ifindex too, from now until tracking stops (an uplink
 * saved as `name` before the agent restarted). If it is there under another
 * name, it was renamed while nobody watched: the callback hears it as tamper.
 */
int links_adopt(struct ks_links *l, const char *name, int ifindex);

/* Whether the link named `name` is in the cut now. */
bool links_in_cut(struct ks_links *l, const char *name);
