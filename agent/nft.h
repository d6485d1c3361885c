/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/*
 * The netlink transport to nf_tables: the only place that talks to the kernel.
 * Every change is one batch (BATCH_BEGIN ... BATCH_END) in one sendmsg, built,
 * sent and freed by one transaction runner (the calls below say what it
 * holds); every message asks for an acknowledgement and all of them are read,
 * so a failure of any message is reported with the message that caused it. The
 * kernel commits all or nothing.
 */

struct ks_nft;
struct ks_ruleset;

struct nft_counter {
        char *name;
        uint64_t packets, bytes;
};

int nft_open(struct ks_nft **ret);
struct ks_nft *nft_close(struct ks_nft *n);
/* A thread's socket: its queries stop with -ECANCELED once *cancel is true (set from another thread). */
void nft_set_cancel(struct ks_nft *n, const atomic_bool *cancel);
/* The netlink port id of our nf_tables socket (events of our transactions carry it). */
uint32_t nft_portid(const struct ks_nft *n);

/* Table flags the kernel headers here (6.1) do not have yet: kernel >= 6.9. */
#ifndef NFT_TABLE_F_PERSIST
#define NFT_TABLE_F_PERSIST 0x4
#endif

/*
 * Replace inet table `table` (creating it if absent) with the ruleset, in one
 * transaction; the new table gets `flags` (NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST:
 * only this socket may change it, and it outlives us). On failure nothing
 * changed; e says what the kernel refused. *ret_usec (may be NULL) receives the
 * time from send to the last ack.
 */
int nft_replace_table(struct ks_nft *n, const char *table, uint32_t flags, const struct ks_ruleset *r,
                      uint64_t *ret_usec, struct ks_error *e);

/* Set the flags of an existing table (e.g. re-adopt an orphaned owner+persist table), one transaction. */
int nft_set_table_flags(struct ks_nft *n, const char *table, uint32_t flags, struct ks_error *e);

/* Apply the messages of rs as they are, in one transaction (e.g. compile_hook's switch). */
int nft_apply(struct ks_nft *n, const struct ks_ruleset *rs, uint64_t *ret_usec, struct ks_error *e);

/* Apply the messages of rs[0..n_rs) in this order, in one transaction (a switch: inet table and link layer). */
int nft_apply_all(struct ks_nft *n, const struct ks_ruleset *const *rs, size_t n_rs, uint64_t *ret_usec,
                  struct ks_error *e);

/* Delete inet table `table` if it exists, in one transaction. */
int nft_delete_table(struct ks_nft *n, const char *table, uint64_t *ret_usec, struct ks_error *e);

/* 1 if inet table `table` (chain NULL), or chain `chain` of it, exists; 0 if not; negative errno on failure. */
int nft_exists(struct ks_nft *n, const char *table, const char *chain);

/*
 * Named counter objects of inet table `table` (none if the table is absent), with those of the
 * same name in netdev table `table`_links (the link layer, compile_links) added in.
 */
int nft_read_counters(struct ks_nft *n, const char *table, struct nft_counter **ret, size_t *ret_n);
void nft_counters_free(struct nft_counter *c, size_t n);

/* 1 if any flowtable exists (in any table, anyone's), 0 if none. */
int nft_has_flowtables(struct ks_nft *n);

/* The current ruleset generation (it changes with every committed transaction, anyone's). */
int nft_generation(struct ks_nft *n, uint32_t *ret);

/*
 * Our own bulk transactions unheard: a table replaced, a staging's steps
 * (nft_replace_table*, nft_transaction_with), not a switch (nft_apply*). The
 * kernel builds a change event for every rule and set element a transaction
 * adds as long as anyone listens, in any network namespace (our tamper monitor
 * does), which costs as much as the change itself; and the listener then
 * reads them all. Before such a transaction, mute(userdata, true) has the
 * listener leave the event group; after it, mute(userdata, false) has it
 * rejoin. The ruleset generation, read before the one and after the other,
 * must have moved by this transaction alone; otherwise, or if it cannot be
 * told, lost(userdata): a commit of someone else may have gone unheard. If
 * mute(true) fails, the transaction is sent heard. A bulk transaction must
 * change something (a table replaced, new elements): an empty one would leave
 * the generation where it was, and someone else's commit could pass for ours.
 */
struct nft_quiet {
        int (*mute)(void *userdata, bool mute);
        void (*lost)(void *userdata);
        void *userdata;
};

void nft_set_quiet(struct ks_nft *n, const struct nft_quiet *q);

/* The shape of inet table `table` as the kernel holds it (element counts only if with_elems). */
struct ks_summary;
int nft_table_summary(struct ks_nft *n, const char *table, bool with_elems, struct ks_summary *ret);
/*
 * The read-back of a switch: every chain of the table (hooked or not), and the
 * rules of the hooked ones only (summary_diff_hooks()); much less than the
 * whole table's rules.
 */
int nft_hooks_summary(struct ks_nft *n, const char *table, struct ks_summary *ret);
/*
 * The elements of the named sets of inet table `table` into s (created if
 * absent): counted, and digested with s's key if s is keyed (summary.h). A set
 * the kernel does not hold is left uncounted.
 */
int nft_read_elems(struct ks_nft *n, const char *table, const char *const *sets, size_t n_sets,
                   struct ks_summary *s);
/* Zero every counter object of the table (read-and-reset). */
int nft_reset_counters(struct ks_nft *n, const char *table);

struct nftnl_batch;
typedef int (*nft_build_t)(struct nftnl_batch *b, uint32_t *seq, void *userdata);

/*
 * One transaction of what `build` appends; with replace_table, the table is
 * replaced first as nft_replace_table() does (flags at its creation). Used to
 * stage a large table in steps (ruleset_to_batch_staged, ruleset_elems_to_batch).
 */
int nft_transaction_with(struct ks_nft *n, const char *replace_table, uint32_t flags, nft_build_t build,
                         void *userdata, uint64_t *ret_usec, struct ks_error *e);
/* The same, replacing `table`, whose creation carries `comment` (ruleset_comment) with the flags. */
int nft_replace_table_with(struct ks_nft *n, const char *table, uint32_t flags, const char *comment,
                           nft_build_t build, void *userdata, uint64_t *ret_usec, struct ks_error *e);

/*
 * The drop sensor (compile-drops.c): one element of a P/drops_* set, a tuple
 * of what the cut dropped and its counts. Addresses in network byte order
 * (IPv4 in the first 4 bytes).
 */
struct nft_drop {
        int family;                     /* AF_INET, AF_INET6 */
        uint8_t src[16], dst[16];
        uint8_t proto;
        int32_t port;                   /* destination port; -1 for a protocol without ports */
        uint64_t packets, bytes;
        /*
         * Its timeout minus its expiration: the time since its last packet
         * (refreshed by `update`); and when it expires without more packets.
         */
        uint64_t since_ms, expires_ms;
        uint64_t read_usec;             /* CLOCK_REALTIME when the kernel's message with it was parsed */
        uint64_t first_usec;            /* CLOCK_REALTIME of its first packet (its P/..._first twin); 0: none */
};

/* At most this many elements are read in one dump (the rest only counted in ret_skipped). */
#define NFT_DROPS_READ_MAX 65536

/*
 * Every element of every counting P/drops_* set of inet table `table`, with
 * the first packet of its tuple from the _first sets (read after them; their
 * elements without a counting one are left out), and the sum of the
 * P/drops_overflow counters (packets). The caller frees *ret. Elements
 * beyond NFT_DROPS_READ_MAX are not returned; their packets are added to
 * *ret_skipped. An absent table gives none.
 */
int nft_read_drops(struct ks_nft *n, const char *table, struct nft_drop **ret, size_t *ret_n,
                   uint64_t *ret_overflow, uint64_t *ret_skipped);

/* The P/drops_overflow counters' sum (packets) alone: a restore reads it before it resets the counters. */
int nft_read_drops_overflow(struct ks_nft *n, const char *table, uint64_t *ret);

/* Empty every P/drops_* set of the table (one transaction of DELSETELEM flushes). */
int nft_flush_drops(struct ks_nft *n, const char *table, struct ks_error *e);
