/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "batch.h"
#include "policy.h"

/*
 * The policy compiler: pure, no kernel. Loaded policies become the nftables
 * objects of one table (an opaque ks_ruleset of libnftnl objects and the
 * messages that carry them), or a table in nft syntax. The ruleset is
 * described in docs/design.md.
 *
 * The table holds every loaded policy, staged: policy P owns the objects named
 * "P/...". Staged policies have no hook and cost nothing per packet. Isolation
 * adds the base chains "prerouting" and "postrouting", each with one rule that
 * jumps to P/inbound resp. P/outbound; restoring removes them. Switching is
 * one small batch whatever the size of the policies (compile_hook).
 */

struct nftnl_batch;
struct ks_ruleset;

/* Separates the policy name from the object name: "web-proxy/dropped_in". */
#define COMPILE_NAME_SEP "/"

/* Counters of a policy, after "P/"; the status code reads them back. */
#define COUNTER_GATEWAY_PREFIX "gw_"   /* "P/gw_<gateway name>" */
#define COUNTER_DROPPED_IN "dropped_in"
#define COUNTER_DROPPED_OUT "dropped_out"

/*
 * Longest name of a staged object, without the NUL: "P/gw_G_v4" with a policy
 * and a gateway name of POLICY_NAME_MAX (32) characters each, 71 characters.
 * The kernel allows 255 (NFT_NAME_MAXLEN - 1). Counter names are shorter
 * ("P/gw_G", at most 68). Buffers of COMPILE_NAME_SIZE always suffice.
 */
#define COMPILE_NAME_MAX                                                                 \
        (POLICY_NAME_MAX + sizeof(COMPILE_NAME_SEP) - 1 + sizeof(COUNTER_GATEWAY_PREFIX) - 1 + \
         POLICY_NAME_MAX + sizeof("_v4") - 1)
#define COMPILE_NAME_SIZE (COMPILE_NAME_MAX + 1)

/* The base chains that exist while isolated. */
#define CHAIN_PREROUTING "prerouting"
#define CHAIN_POSTROUTING "postrouting"

/*
 * The name of counter `counter` (COUNTER_DROPPED_IN, COUNTER_DROPPED_OUT) of
 * policy `policy`: "policy/counter". Returns 0, -EINVAL for a NULL or an
 * invalid policy name, -ENOBUFS if it does not fit in size bytes.
 */
int compile_counter_name(char *buf, size_t size, const char *policy, const char *counter);
/* The same for the counter of a gateway: "policy/gw_gateway". */
int compile_gateway_counter_name(char *buf, size_t size, const char *policy, const char *gateway);

/*
 * The whole table `table` (family inet): NEWTABLE, then every policy of
 * policies[0..n) staged (counters, sets and elements, chains P/inbound and
 * P/outbound with their rules), then, if active is not NULL, the base chains
 * hooked to policy `active`. The caller sends NEWTABLE, DELTABLE before these
 * messages in the same batch to replace the table atomically.
 * Returns 0; -EINVAL (NULL arguments, an invalid or repeated policy name, a
 * table name too long); -ENOENT if active is not one of the policies; -ENOMEM.
 */
int compile_table(const struct ks_policy *const *policies, size_t n, const char *active,
                  const char *table, struct ks_ruleset **ret);

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
 * Deprecated, to be removed once the manager uses compile_table: the same as
 * compile_table(&p, 1, p->name, table, ret); table_flags are ignored. (Not
 * marked deprecated: -Werror would break the agent's build meanwhile.)
 */
int compile_ruleset(const struct ks_policy *p, const char *table, uint32_t table_flags,
                    struct ks_ruleset **ret);

struct ks_ruleset *ruleset_free(struct ks_ruleset *r);

/*
 * Append the ruleset's messages, in order, to an open batch (between
 * nftnl_batch_begin and nftnl_batch_end, which the caller writes). *seq is the
 * next sequence number and is advanced per message. Every message carries
 * NLM_F_ACK. Returns 0 or -EINVAL/-ENOMEM.
 */
int ruleset_to_batch(const struct ks_ruleset *r, struct nftnl_batch *b, uint32_t *seq);

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
