/* SPDX-License-Identifier: MIT */
#pragma once

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

struct nftnl_batch;

#define TRIPWIRE_TABLE "killswitch_tripwire"
#define TRIPWIRE_CHAIN "egress"
#define TRIPWIRE_SET "uplinks"
#define TRIPWIRE_EVENTS_PER_SEC 10

struct tripwire_spec {
        const char (*uplinks)[16];
        size_t n_uplinks;
        uint64_t rate;          /* bytes per second, 1 .. UINT32_MAX */
        uint16_t log_group;
};

/*
 * Append the messages that create the table (NEWTABLE, NEWSET + elements,
 * NEWCHAIN, NEWRULE) to an open batch; *seq is advanced per message, each
 * with NLM_F_ACK. The caller drops any older table first in the same batch.
 * Returns 0, -EINVAL (no uplinks, bad rate), -ENOMEM.
 */
int compile_tripwire(const struct tripwire_spec *t, struct nftnl_batch *b, uint32_t *seq);
