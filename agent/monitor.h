/* SPDX-License-Identifier: MIT */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

/*
 * Watches nf_tables change events (NFNLGRP_NFTABLES). Each committed
 * transaction ends with NEWGEN, which names the process that made it; when a
 * transaction touched our table and came from another process, the callback
 * hears who did it. Lost events (ENOBUFS) are reported as an overflow, after
 * which the caller must resynchronise.
 */

/* A base chain of someone else's table bound to a device (netdev ingress/egress, inet ingress). */
struct monitor_hook {
        char device[IFNAMSIZ];
        char what[160];         /* "netdev table T chain C hook ingress" */
};

#define MONITOR_HOOKS_MAX 16

struct monitor_event {
        bool overflow;          /* events were lost: check the table */
        bool touched;           /* the transaction touched our table (or a companion) */
        const struct monitor_hook *hooks;       /* chains it hooked on devices, in anyone's table */
        size_t n_hooks;
        uint32_t generation;
        pid_t pid;              /* who committed the change, 0 if unknown */
        char comm[32];
};

typedef void (*monitor_cb_t)(void *userdata, const struct monitor_event *ev);

struct ks_monitor;

/*
 * Watch changes of table `table` (and its companions `table`_*, inet or netdev)
 * made by processes other than this one, and base chains that other processes
 * bind to devices (what could run before or beside ours on an uplink).
 */
int monitor_new(sd_event *event, const char *table, monitor_cb_t cb, void *userdata, struct ks_monitor **ret);
struct ks_monitor *monitor_free(struct ks_monitor *m);
/* The netlink port id of the socket our own transactions go through (nft_portid()): they are not foreign. */
void monitor_set_own_portid(struct ks_monitor *m, uint32_t portid);
/*
 * Leave the event group (mute) for one of our own big transactions, or rejoin
 * it (nft_set_quiet()). Rejoining is retried at the next call if it fails.
 */
int monitor_mute(struct ks_monitor *m, bool mute);
/* Events may have gone unheard (another commit while muted): reported as an overflow, from the loop. */
void monitor_lost(struct ks_monitor *m);
