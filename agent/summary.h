/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "siphash.h"

/*
 * The shape of our table, for read-back verification: chains (hooked or not,
 * how many rules, where a base chain jumps), sets (how many elements) and
 * counters. Built from what the compiler produced ("what was meant") and from
 * a dump of the kernel ("what is"), then compared. Pure data.
 *
 * A keyed summary also digests what the shape does not show: every rule's
 * expressions, in order, and every set's elements (SipHash with the
 * summary's key, which the agent draws at start: nobody who can edit the
 * table can make another rule or element digest the same). Compared only
 * if both summaries are keyed, with the same key (summary_copy_key).
 */

struct summary_chain {
        char *name;
        bool base;              /* hooked */
        int32_t priority;       /* of a base chain: a hooked chain keeps it, so a switch needs the same */
        uint32_t rules;
        char *jump;             /* target of the first rule's jump, if any */
        uint64_t content;       /* keyed: the digest of its rules' expressions, in order */
};

struct summary_set {
        char *name;
        uint32_t elems;         /* as the kernel counts them (interval ends included) */
        bool dynamic;           /* filled by packets (the drop sensor's): elems not compared */
        bool counted;           /* elems (and content) were read */
        uint64_t content;       /* keyed: the sum of its elements' digests (any order) */
};

struct ks_summary {
        struct summary_chain *chains;
        size_t n_chains;
        struct summary_set *sets;
        size_t n_sets;
        char **counters;
        size_t n_counters;
        bool dormant;           /* the table's dormant flag: its base chains' hooks are not registered */
        char *comment;          /* the table's user data: who built it, the digest of its rules (ruleset_seal) */
        bool keyed;             /* rules and elements digested with key */
        struct siphash_key key;
};

/* In a table's comment, "killswitchd VERSION digest HEX": what follows is compared, not the version. */
#define SUMMARY_DIGEST_MARK " digest "

void summary_clear(struct ks_summary *s);
/* The same, but s stays keyed as it was (a dump that is redone). */
void summary_empty(struct ks_summary *s);
int summary_copy(const struct ks_summary *from, struct ks_summary *to);
/* to takes what from holds (to's own is freed); from is left empty, not keyed. */
void summary_move(struct ks_summary *to, struct ks_summary *from);
/* to (empty) digests with from's key, if from is keyed: the two can be compared. */
void summary_copy_key(const struct ks_summary *from, struct ks_summary *to);

struct summary_chain *summary_chain(struct ks_summary *s, const char *name, bool create);
struct summary_set *summary_set(struct ks_summary *s, const char *name, bool create);
int summary_add_counter(struct ks_summary *s, const char *name);
void summary_remove_chain(struct ks_summary *s, const char *name);
/* Every chain, set and counter whose name begins with prefix ("P/": a policy's). */
void summary_remove_prefix(struct ks_summary *s, const char *prefix);

/* libnftnl objects: a rule's first jump target, a set's element count, a rule counted into s. */
struct nftnl_rule;
struct nftnl_set;
const char *summary_rule_jump(struct nftnl_rule *rule);
uint32_t summary_count_elems(struct nftnl_set *set);
int summary_add_rule(struct ks_summary *s, struct nftnl_rule *rule);
/* A chain flushed: no rules. */
void summary_flush_chain(struct summary_chain *c);
/*
 * The elements of `set` (a message of a dump, or what the compiler sends)
 * added into st (count, and digest if s is keyed); summary_set_elems: st
 * holds those and no others (a NEWSET or a refill).
 */
void summary_add_elems(const struct ks_summary *s, struct summary_set *st, struct nftnl_set *set);
void summary_set_elems(const struct ks_summary *s, struct summary_set *st, struct nftnl_set *set);
/*
 * The digests of the elements of a dump, one per element: a dump that
 * lists one twice is not a consistent read. The kernel resumes a set's dump
 * in every message by skipping as many elements as it sent; a hash set that
 * grows its table in between (the kernel does so after a large insert, in
 * the background) walks in another order, and the dump lists some elements
 * twice and as many not at all: the count is right, the elements are not.
 */
struct summary_seen {
        uint64_t *digests;
        size_t n;
        bool error;             /* out of memory: nothing can be said */
};
void summary_add_elems_seen(const struct ks_summary *s, struct summary_set *st, struct nftnl_set *set,
                            struct summary_seen *seen);
/* Some element was listed twice (sorts seen); frees seen. */
bool summary_seen_twice(struct summary_seen *seen);

/*
 * The table's comment: taken over (*to freed first); NULL clears it. -ENOMEM.
 */
int summary_set_comment(struct ks_summary *s, const char *comment);
/* Comments a and b carry the same digest (both not NULL). */
bool summary_same_digest(const char *a, const char *b);

/*
 * 0 if `have` matches `want`; otherwise -EPROTO and a description of the first
 * differences in msg. Element counts are compared only if compare_elems, and
 * only of the sets whose elements `have` counted; the digest in the table's
 * comment if want has one (a table built by another version of the agent, or
 * with other rules, is not the table we meant). Keyed summaries: each chain's
 * rules and each counted set's elements too.
 */
int summary_diff(const struct ks_summary *want, const struct ks_summary *have, bool compare_elems, char *msg,
                 size_t size);
/*
 * The same for what a switch changes (nft_hooks_summary()): every chain, hooked
 * or not, and the rules and jump of the hooked ones; no sets, no counters.
 */
int summary_diff_hooks(const struct ks_summary *want, const struct ks_summary *have, char *msg, size_t size);
/* The same for the sets whose elements `have` counted, and nothing else (a read of some sets). */
int summary_diff_elems(const struct ks_summary *want, const struct ks_summary *have, char *msg, size_t size);
