/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
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

struct monitor_event {
        bool overflow;          /* events were lost: check the table */
        uint32_t generation;
        pid_t pid;              /* who committed the change, 0 if unknown */
        char comm[32];
};

typedef void (*monitor_cb_t)(void *userdata, const struct monitor_event *ev);

struct ks_monitor;

/* Watch changes of inet table `table` (and its companions `table`_*) made by processes other than this one. */
int monitor_new(sd_event *event, const char *table, monitor_cb_t cb, void *userdata, struct ks_monitor **ret);
struct ks_monitor *monitor_free(struct ks_monitor *m);
/* The netlink port id of the socket our own transactions go through (nft_portid()): they are not foreign. */
void monitor_set_own_portid(struct ks_monitor *m, uint32_t portid);
