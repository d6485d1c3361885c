/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The shape of our table, for read-back verification: chains (hooked or not,
 * how many rules, where a base chain jumps), sets (how many elements) and
 * counters. Built from what the compiler produced ("what was meant") and from
 * a dump of the kernel ("what is"), then compared. Pure data.
 */

struct summary_chain {
        char *name;
        bool base;              /* hooked */
        int32_t priority;       /* of a base chain: a hooked chain keeps it, so a switch needs the same */
        uint32_t rules;
        char *jump;             /* target of the first rule's jump, if any */
};

struct summary_set {
        char *name;
        uint32_t elems;         /* as the kernel counts them (interval ends included) */
        bool dynamic;           /* filled by packets (the drop sensor's): elems not compared */
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
};

/* In a table's comment, "killswitchd VERSION digest HEX": what follows is compared, not the version. */
#define SUMMARY_DIGEST_MARK " digest "

void summary_clear(struct ks_summary *s);
int summary_copy(const struct ks_summary *from, struct ks_summary *to);

struct summary_chain *summary_chain(struct ks_summary *s, const char *name, bool create);
struct summary_set *summary_set(struct ks_summary *s, const char *name, bool create);
int summary_add_counter(struct ks_summary *s, const char *name);
void summary_remove_chain(struct ks_summary *s, const char *name);

/* libnftnl objects: a rule's first jump target, a set's element count, a rule counted into s. */
struct nftnl_rule;
struct nftnl_set;
const char *summary_rule_jump(struct nftnl_rule *rule);
uint32_t summary_count_elems(struct nftnl_set *set);
int summary_add_rule(struct ks_summary *s, struct nftnl_rule *rule);

/*
 * The table's comment: taken over (*to freed first); NULL clears it. -ENOMEM.
 */
int summary_set_comment(struct ks_summary *s, const char *comment);
/* Comments a and b carry the same digest (both not NULL). */
bool summary_same_digest(const char *a, const char *b);

/*
 * 0 if `have` matches `want`; otherwise -EPROTO and a description of the first
 * differences in msg. Element counts are compared only if compare_elems; the
 * digest in the table's comment if want has one (a table built by another
 * version of the agent, or with other rules, is not the table we meant).
 */
int summary_diff(const struct ks_summary *want, const struct ks_summary *have, bool compare_elems, char *msg,
                 size_t size);
/*
 * The same for what a switch changes (nft_hooks_summary()): every chain, hooked
 * or not, and the rules and jump of the hooked ones; no sets, no counters.
 */
int summary_diff_hooks(const struct ks_summary *want, const struct ks_summary *have, char *msg, size_t size);
