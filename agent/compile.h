/* SPDX-License-Identifier: MIT */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "batch.h"
#include "cleanup.h"
#include "policy.h"

/*
 * The policy compiler: pure, no kernel. Loaded policies become the nftables
 * objects of one table (an opaque ks_ruleset of libnftnl objects and the
 * messages that carry them), or a table in nft syntax. The ruleset is
 * described in docs/design.md.
 *
 * The table holds every loaded policy, staged: policy P owns the objects named
 * "P/...". Staged policies have no hook and cost nothing per packet. Isolation
 * adds the base chains "prerouting" (jumps to P/inbound), "forward" (to
 * P/forward, which drops a forged source address of this host and goes on to
 * P/outbound) and "output" (to P/local_out, the gateway's own link upkeep,
 * which goes on to P/outbound), each with one rule; restoring removes them.
 * Switching is one small batch whatever the size of the policies
 * (compile_hook).
 *
 * A policy with a host name that policy_resolve() has not pinned is refused
 * (-EINVAL) by compile_table() and compile_text().
 */

struct nftnl_batch;
struct ks_ruleset;

/* Separates the policy name from the object name: "web-proxy/dropped_in". */
/* The agent's table (family inet; its companions are named after it). */
#define TABLE_NAME "killswitch"

#define COMPILE_NAME_SEP "/"

/* Counters of a policy, after "P/"; the status code reads them back. */
#define COUNTER_GATEWAY_PREFIX "gw_"   /* "P/gw_<gateway name>" */
#define COUNTER_SERVICE_PREFIX "svc_"  /* "P/svc_<service name>" */
#define COUNTER_DROPPED_IN "dropped_in"
#define COUNTER_DROPPED_OUT "dropped_out"
/* Per uplink U: "P/dropped_in/U", "P/dropped_out/U" (compile_uplink_counter_name). */

/*
 * The drop sensor (compile-drops.c, docs/design.md "The drop sensor"): what
 * P/outbound cuts, per tuple, in dynamic sets "P/drops_v4", "P/drops_v6"
 * (TCP and UDP: saddr . daddr . l4proto . dport) and "P/drops_v4_noport",
 * "P/drops_v6_noport" (the rest: saddr . daddr . l4proto), each with a counter
 * per element, at most DROPS_SET_SIZE elements, an element expiring
 * DROPS_TIMEOUT_MS after its last packet (`update`). Beside each, a set of the
 * same tuples without counters, "P/drops_v4_first" etc., whose elements are
 * only added (`add` never refreshes an expiration): an element expires
 * DROPS_FIRST_TIMEOUT_MS after the tuple's first packet, so its age is known.
 * What does not fit is counted on "P/drops_overflow".
 */
#define DROPS_SET_PREFIX "drops_"
#define DROPS_NOPORT_SUFFIX "_noport"
#define DROPS_FIRST_SUFFIX "_first"
#define COUNTER_DROPS_OVERFLOW "drops_overflow"
#define DROPS_SET_SIZE 16384
#define DROPS_TIMEOUT_MS 3600000
/*
 * As long as the counting sets': a _first element never outlives its tuple's
 * counting element (that one is refreshed, this one not), so a _first set is
 * never fuller than its counting set and every tuple counted has its first
 * packet's time. One that expires while its tuple still sends comes back with
 * a later time, which the agent, keeping the earliest it read, ignores.
 */
#define DROPS_FIRST_TIMEOUT_MS DROPS_TIMEOUT_MS

/*
 * Longest name of a staged object, without the NUL: "P/gw_G_ping_v4r" (the
 * Ping= interval set of a connection-matched gateway) with a policy and a
 * gateway name of POLICY_NAME_MAX (32) characters each, 77 characters. The
 * kernel allows 255 (NFT_NAME_MAXLEN - 1). The other names are shorter:
 * "P/gw_G_ping_v4" 76, a gateway's interval set "P/gw_G_v4r" at most 72, its hash set
 * "P/gw_G_v4" 71, a service's "P/svc_S_v4r" 73, counters "P/gw_G" 68,
 * "P/svc_S" 69 and "P/dropped_out/U" 60. Buffers of COMPILE_NAME_SIZE always
 * suffice.
 */
#define COMPILE_NAME_MAX                                                                 \
        (POLICY_NAME_MAX + sizeof(COMPILE_NAME_SEP) - 1 + sizeof(COUNTER_GATEWAY_PREFIX) - 1 + \
         POLICY_NAME_MAX + sizeof("_ping_v4r") - 1)
#define COMPILE_NAME_SIZE (COMPILE_NAME_MAX + 1)

/*
 * The base chains that exist while isolated: type filter, policy accept, after
 * conntrack (-200: "ct state related" and the connection-matched entries need
 * it). "prerouting" sees what comes in through an uplink, at
 * CHAIN_PRIORITY_PREROUTING: after destination NAT (-100; firewalld's -90), so
 * that the conntrack entry of a new connection already names the inside host
 * a DNAT rule sends it to. "forward" and "output" see what goes out through
 * one (not "postrouting": reject is not allowed there), at CHAIN_PRIORITY,
 * before source NAT.
 */
#define CHAIN_PREROUTING "prerouting"
#define CHAIN_FORWARD "forward"
#define CHAIN_OUTPUT "output"
#define CHAIN_HOLD "hold"       /* "P/hold": drops all on the uplinks (compile_table_held) */
#define CHAIN_LOCAL_OUT "local_out"     /* "P/local_out": the gateway's own upkeep, then P/outbound */
/* "P/forward": a forwarded packet with a source address of this host dropped, then P/outbound */
#define CHAIN_FORWARD_OUT "forward"
/* "P/errors_in", "P/errors_out": an ICMP error passes if the connection it quotes is kept (KeepICMPErrors=) */
#define CHAIN_ERRORS_IN "errors_in"
#define CHAIN_ERRORS_OUT "errors_out"
#define CHAIN_PRIORITY (-150)
#define CHAIN_PRIORITY_PREROUTING 0     /* nft's "filter" */

/*
 * The name of counter `counter` (COUNTER_DROPPED_IN, COUNTER_DROPPED_OUT) of
 * policy `policy`: "policy/counter". Returns 0, -EINVAL for a NULL or an
 * invalid policy name, -ENOBUFS if it does not fit in size bytes.
 */
int compile_counter_name(char *buf, size_t size, const char *policy, const char *counter);
/* The same for the counter of a gateway: "policy/gw_gateway". */
int compile_gateway_counter_name(char *buf, size_t size, const char *policy, const char *gateway);
/* The same for the counter of a [Service]: "policy/svc_service". */
int compile_service_counter_name(char *buf, size_t size, const char *policy, const char *service);
/*
 * The same for what was dropped (or rejected) on one uplink in one direction:
 * "policy/direction/uplink", with direction COUNTER_DROPPED_IN or
 * COUNTER_DROPPED_OUT. -EINVAL also for another direction or an uplink name
 * that is empty or longer than 15 characters.
 */
int compile_uplink_counter_name(char *buf, size_t size, const char *policy, const char *direction,
                                const char *uplink);

/*
 * The whole table `table` (family inet): NEWTABLE, then every policy of
 * policies[0..n) staged (counters, sets and elements, chains P/inbound,
 * P/outbound, P/errors_in and P/errors_out (with KeepICMPErrors=), P/forward,
 * P/local_out and P/hold with their rules), then, if active is
 * not NULL, the base chains hooked to policy `active`. The caller sends NEWTABLE, DELTABLE before these
 * messages in the same batch to replace the table atomically.
 * Returns 0; -EINVAL (NULL arguments, an invalid or repeated policy name, a
 * table name too long, an unresolved host name); -ENOENT if active is not one
 * of the policies; -ENOMEM.
 */
int compile_table(const struct ks_policy *const *policies, size_t n, const char *active,
                  const char *table, struct ks_ruleset **ret);

/*
 * The same table with the base chains of policy `active` jumping to its chain
 * P/hold, which drops everything on the uplinks without looking anything up.
 * A rebuild while isolated sends this first and compile_hook(active) right
 * after, in a second small transaction: the kernel can make new rules live a
 * moment before new interval sets answer lookups, so sets are never consulted
 * in the transaction that creates them (allowed flows see a few dropped
 * packets, never a miss that the tail would answer with a reset).
 */
int compile_table_held(const struct ks_policy *const *policies, size_t n, const char *active,
                       const char *table, struct ks_ruleset **ret);

/*
 * Make the table compile_table() built without `active` into the one
 * compile_table_held() builds for it: its base chains appended (a reload
 * compiles on a thread, not knowing which policy will be in force when it
 * ends). They are not in the digest: the seal stays. With s (the
 * ruleset_summarize() of r), s is brought up to date too. 0; -EINVAL (not
 * such a table); -ENOENT (active is not one of its policies); -ENOMEM.
 */
struct ks_summary;
int ruleset_hold(struct ks_ruleset *r, const char *table, const char *active, struct ks_summary *s);

/*
 * The O(1) switch, for a table that compile_table built: correct whatever is
 * hooked now, and the same when applied twice. With active not NULL, per base
 * chain: NEWCHAIN with its hook (NLM_F_CREATE), DELRULE naming only the chain
 * (flushes it), NEWRULE jumping to active's chain; the kernel refuses the batch
 * (ENOENT) if active is not staged. With active NULL, per base chain: NEWCHAIN
 * without hook (creates a regular chain if absent, leaves an existing one
 * alone), DELCHAIN (deletes it with its rules). No NEWTABLE.
 * Returns 0; -EINVAL (invalid names); -ENOMEM.
 */
int compile_hook(const char *active, const char *table, struct ks_ruleset **ret);

/*
 * The link layer (compile-links.c, docs/design.md "The uplinks are links"), a
 * netdev table `table`LINKS_TABLE_SUFFIX beside the inet one.
 *
 * compile_links_table: the whole netdev table, replaced (NEWTABLE, DELTABLE,
 * NEWTABLE with `flags`, the inet table's owner+persist): every policy staged
 * (its counters, copies of its sets, chains P/link_in and P/link_out, which
 * drop all but the gateways and link upkeep), no hook; with active, also what
 * compile_links_hook(active) sends. Sent after each rebuild of the inet table.
 *
 * compile_links_hook: the O(1) switch of the link layer: P/uplinks of inet
 * table `table` flushed and refilled with active's uplinks and links[0..n)
 * (what the agent tracks: the uplinks' names of the moment, links stacked on
 * them or enslaving them), and the base chains "ingress" and "egress" of the
 * netdev table created anew at LINKS_PRIORITY, bound to those devices, jumping
 * to active's staged chains; active NULL: the base chains removed. The kernel
 * refuses it (ENOENT) if active is not staged there.
 *
 * Both return 0; -EINVAL (names); -ENOMEM.
 */
#define LINKS_TABLE_SUFFIX "_links"
#define LINKS_CHAIN_INGRESS "ingress"
#define LINKS_CHAIN_EGRESS "egress"
#define LINKS_STAGED_IN "link_in"       /* "P/link_in" */
#define LINKS_STAGED_OUT "link_out"
#define LINKS_PRIORITY INT_MIN          /* before any other chain: equal ones run newest first */
int compile_links_table(const struct ks_policy *const *policies, size_t n, const struct ks_policy *active,
                        const char *const *links, size_t n_links, const char *table, uint32_t flags,
                        struct ks_ruleset **ret);
int compile_links_hook(const struct ks_policy *active, const char *const *links, size_t n, const char *table,
                       struct ks_ruleset **ret);
/* "`table`_links"; -EINVAL if it does not fit. */
int compile_links_table_name(char *buf, size_t size, const char *table);

/*
 * The digest of a table (compile_table, compile_table_held, compile_links_table):
 * FNV-1a over the messages of its own objects as they are sent, set elements
 * included, and not what a switch changes (base chains, flushes, the other
 * table's objects): the same whichever policy is hooked or held. Those
 * functions seal the table with it (ruleset_seal): every NEWTABLE of the table
 * carries the user data comment "killswitchd VERSION digest HEX" (nft lists it
 * as the table's comment), and ruleset_comment() returns that text. A
 * restarted agent adopts a table only if the kernel's comment has the digest
 * it computes now. 0; -EINVAL (no table); -ENOMEM.
 */
#define COMPILE_COMMENT_PREFIX "killswitchd "
#define COMPILE_COMMENT_SIZE 96
int ruleset_digest(const struct ks_ruleset *r, uint64_t *ret);
int ruleset_seal(struct ks_ruleset *r, const char *version);
const char *ruleset_comment(const struct ks_ruleset *r);

struct ks_ruleset *ruleset_free(struct ks_ruleset *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_ruleset *, ruleset_free)

/*
 * Apply what the messages of r do to the shape s (chains, rule counts, base
 * chain jumps, sets and their element counts, counters): on an empty summary
 * for a whole table, on the previous shape for a compile_hook fragment.
 */
struct ks_summary;
int ruleset_summarize(const struct ks_ruleset *r, struct ks_summary *s);

/*
 * Append the ruleset's messages, in order, to an open batch (between
 * nftnl_batch_begin and nftnl_batch_end, which the caller writes). *seq is the
 * next sequence number and is advanced per message. Every message carries
 * NLM_F_ACK. Returns 0 or -EINVAL/-ENOMEM.
 */
int ruleset_to_batch(const struct ks_ruleset *r, struct nftnl_batch *b, uint32_t *seq);

/*
 * Staging a large table in steps, so that no single transaction holds the
 * kernel (and the agent's loop) for long. ruleset_to_batch_staged() appends
 * what ruleset_to_batch() does, except what waits for the steps, of the
 * policies other than `keep` (may be NULL; the policy in force, complete at
 * once): the elements of every set with more than `max` elements (the set is
 * created empty) and, with `policies`, every object of those policies
 * (counters, sets, chains, rules). *ret_deferred tells whether anything
 * waits. ruleset_rest_to_batch() then appends, from where the cursor stands,
 * what waits, in order, each object counting as STEP_OP_WEIGHT elements, up
 * to `budget` elements (NEWSETELEM messages of 64 KiB at most); it returns 1
 * while more remain, 0 when all is out. ruleset_cursor_pending() tells
 * whether anything of `policy` still waits; ruleset_policy_to_batch() appends
 * all of it at once, out of turn (an isolation with that policy), and returns
 * as ruleset_rest_to_batch(). The cursor starts as { .max = max, .keep = keep,
 * .policies = policies }; clear it with ruleset_cursor_clear(). The ruleset
 * must outlive the cursor.
 */
#define STEP_OP_WEIGHT 16      /* a rule with its expressions: about as long in the kernel as 16 elements */
struct nftnl_set_elems_iter;
struct nftnl_set_elem;
struct ruleset_cursor {
        size_t max;
        const char *keep;
        bool policies;
        size_t op;
        bool created;                   /* the set at op was sent; its elements follow */
        struct nftnl_set_elems_iter *it;
        struct nftnl_set_elem *elem;    /* the next element of the set `it` walks */
        bool *done;                     /* per op: sent out of turn (ruleset_policy_to_batch) */
};
int ruleset_to_batch_staged(const struct ks_ruleset *r, struct nftnl_batch *b, uint32_t *seq, size_t max,
                            const char *keep, bool policies, bool *ret_deferred);
int ruleset_rest_to_batch(const struct ks_ruleset *r, struct ruleset_cursor *c, struct nftnl_batch *b,
                          uint32_t *seq, size_t budget);
bool ruleset_cursor_pending(const struct ks_ruleset *r, const struct ruleset_cursor *c, const char *policy);
int ruleset_policy_to_batch(const struct ks_ruleset *r, struct ruleset_cursor *c, struct nftnl_batch *b,
                            uint32_t *seq, const char *policy);
void ruleset_cursor_clear(struct ruleset_cursor *c);

/*
 * Set elements go out in messages of up to 64 KiB (the netlink attribute limit),
 * each written whole into the current batch page: allocate the batch with
 * batch_alloc() from batch.h (overrun BATCH_OVERRUN), as nft does.
 */
#define RULESET_BATCH_OVERRUN BATCH_OVERRUN

/*
 * Write libnftnl's text form of every message's object, in order (the bytecode
 * of each rule), for golden tests. Deletions are lines "delete rule|chain
 * inet TABLE CHAIN".
 */
int ruleset_dump(const struct ks_ruleset *r, FILE *f);

/*
 * The table with only p staged and hooked, in nft syntax, as `nft list table
 * inet TABLE` prints it. Caller frees *ret. Returns 0, -EINVAL, -ENOMEM.
 */
int compile_text(const struct ks_policy *p, const char *table, char **ret);
