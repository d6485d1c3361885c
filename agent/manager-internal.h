/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What manager.c shares with the manager's other files (manager-links.c):
 * not an interface for the rest of the agent, which uses manager.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/netfilter/nf_tables.h>

#include "audit.h"
#include "error.h"
#include "timeutil.h"

struct ks_actor;
struct ks_manager;
struct ks_policy;
struct ks_ruleset;
struct ks_stager;
struct nftnl_batch;

/* Only our netlink socket may change the table, and it survives our death (adopted at restart). */
#define OWNER_FLAGS (NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST)

/* At most REASSERT_BURST re-assertions per REASSERT_WINDOW; then back off, loudly. */
#define REASSERT_WINDOW_USEC (10ULL * USEC_PER_SEC)
#define REASSERT_BURST 5
#define REASSERT_BACKOFF_USEC (30ULL * USEC_PER_SEC)

/* The first step of a table staged in steps: all of it but what waits for the steps (stage.h). */
struct first_step {
        const struct ks_ruleset *rs;
        const char *keep;
        bool policies;          /* the other policies wait for the steps too, not only their big sets */
        bool deferred;
};

/* An nft_transaction_with() builder: the first step of f (a struct first_step). */
int build_first_step(struct nftnl_batch *b, uint32_t *seq, void *userdata);

/* A reaper_add() function for a struct ks_ruleset. */
void free_ruleset(void *p);

/* A stager done with: NULL, its ruleset freed off the loop. */
struct ks_stager *stager_retire(struct ks_manager *m, struct ks_stager *s);

/* The good version of every loaded policy, in store order. Caller frees the array only. */
int staged_policies(struct ks_manager *m, const struct ks_policy ***ret, size_t *ret_n);

/* Which versions of which policies a table holds: "name:generation;..." (store order). */
char *staged_signature(struct ks_manager *m);

/* Into the journal and the history, e (may be NULL) saying what happened. */
void manager_audit_error(struct ks_manager *m, enum audit_kind kind, const struct ks_actor *a, const char *policy,
                         const char *previous, const char *reason, const struct ks_error *e);
