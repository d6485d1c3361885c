/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "policy.h"

/*
 * The policy compiler: pure, no kernel. A policy becomes the nftables objects of
 * one table (an opaque ks_ruleset of libnftnl objects), or the same table in nft
 * syntax. The ruleset is described in docs/design.md.
 */

struct nftnl_batch;
struct ks_ruleset;

/* Counter object names, shared with the status code that reads them back. */
#define COUNTER_GATEWAY_PREFIX "gw_"   /* "gw_<gateway name>" */
#define COUNTER_DROPPED_IN "dropped_in"
#define COUNTER_DROPPED_OUT "dropped_out"

/* Build table `table` (family inet) for policy p. table_flags are NFT_TABLE_F_* (0 = active). */
int compile_ruleset(const struct ks_policy *p, const char *table, uint32_t table_flags,
                    struct ks_ruleset **ret);
struct ks_ruleset *ruleset_free(struct ks_ruleset *r);

/*
 * Append the messages that create the table and everything in it to an open batch
 * (between nftnl_batch_begin and nftnl_batch_end, which the caller writes).
 * *seq is the next sequence number and is advanced per message. Every message
 * carries NLM_F_ACK. Returns 0 or -ENOMEM/-EMSGSIZE.
 */
int ruleset_to_batch(const struct ks_ruleset *r, struct nftnl_batch *b, uint32_t *seq);

/*
 * Set elements go out in messages of up to 64 KiB (the netlink attribute limit),
 * each written whole into the current batch page: allocate the batch with at least
 * this overrun, nftnl_batch_alloc(page_size, RULESET_BATCH_OVERRUN), as nft does.
 */
#define RULESET_BATCH_OVERRUN (UINT16_MAX + 4096)

/* Write libnftnl's text form of every object (the bytecode of each rule) for golden tests. */
int ruleset_dump(const struct ks_ruleset *r, FILE *f);

/* The same table in nft syntax, as `nft list table inet TABLE` prints it. Caller frees *ret. */
int compile_text(const struct ks_policy *p, const char *table, char **ret);
