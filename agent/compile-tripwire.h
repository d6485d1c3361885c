/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The egress trip-wire's ruleset (killswitch.conf(5) [EgressTripwire]): pure,
 * no kernel. It lives in a table of its own, inet TRIPWIRE_TABLE, apart from
 * inet killswitch, so that the read-back of our table and the staged policies
 * stay exactly as compile_table() makes them; it exists only while the state
 * is normal (isolated, the uplinks are cut anyway). In nft syntax:
 *
 *   table inet killswitch_tripwire {
 *           set uplinks { type ifname; elements = { "wan0", "wan1" } }
 *           chain egress {
 *                   type filter hook postrouting priority 0; policy accept;
 *                   oifname @uplinks limit rate over RATE bytes/second burst RATE bytes
 *                           limit rate 10/second log group GROUP
 *           }
 *   }
 *
 * The kernel measures: a packet leaving through an uplink beyond RATE bytes/s
 * is logged to NFLOG group GROUP, at most 10 a second. The rule never drops or
 * accepts anything; the agent counts the events (triggers.c).
 */

struct ks_ruleset;

#define TRIPWIRE_TABLE "killswitch_tripwire"
#define TRIPWIRE_CHAIN "egress"
#define TRIPWIRE_SET "uplinks"
#define TRIPWIRE_EVENTS_PER_SEC 10
#define TRIPWIRE_PRIORITY 0

struct tripwire_spec {
        const char (*uplinks)[16];
        size_t n_uplinks;
        uint64_t rate;          /* bytes per second, 1 .. UINT32_MAX */
        uint16_t log_group;
};

/* Uplinks, and a rate of 1 .. UINT32_MAX. */
bool tripwire_spec_valid(const struct tripwire_spec *t);

/*
 * The table, built like compile_table()'s (NEWTABLE, NEWSET with its
 * elements, NEWCHAIN, NEWRULE; ruleset_dump(), ruleset_summarize() and
 * ruleset_to_batch() apply): nft_replace_table() sends it, dropping any older
 * table first in the same batch. Returns 0, -EINVAL (no uplinks, bad rate),
 * -ENOMEM.
 */
int compile_tripwire(const struct tripwire_spec *t, struct ks_ruleset **ret);

/* The same table in nft syntax, as `nft list table inet TRIPWIRE_TABLE` prints it (compile-text.c). */
int compile_tripwire_text(const struct tripwire_spec *t, char **ret);
