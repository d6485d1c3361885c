/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "error.h"

/*
 * The rest of a table staged in steps. A rebuild of a large table sends the
 * table first with its big sets empty, or (a reload, and the link layer) with
 * only the policy in force (ruleset_to_batch_staged()); the stager then sends
 * the rest in small transactions of about STAGE_STEP_USEC each (the number of
 * elements per step follows the time the last one took), one per turn of the
 * event loop at idle priority, so that the kernel is never held for long and
 * isolate, restore and status are answered in between: a request waits for
 * the rest of one step at most. `done` hears the end (r < 0 and e if a
 * transaction failed); free the stager then, from the callback if need be.
 * stager_finish_policy() sends one policy's rest at once (an isolation with
 * it).
 */

/*
 * Sets with more elements than this are filled in steps: every element in the
 * first transaction holds the loop and the kernel for some microseconds more
 * (a 1,000-entry policy's added about 4 ms to it, and as much to the link
 * layer's).
 */
#define STAGE_BIG_SET 256
#define STAGE_STEP_USEC 1000            /* the time one step aims at */
#define STAGE_STEP_ELEMS_FIRST 256      /* ~0.5-1 ms here; then adapted to the step's time */
#define STAGE_STEP_ELEMS_MIN 32
#define STAGE_STEP_ELEMS_MAX 8192

struct ks_nft;
struct ks_ruleset;
struct ks_stager;

typedef void (*stager_done_t)(void *userdata, int r, const struct ks_error *e);

/*
 * Takes rs, sent with ruleset_to_batch_staged(.., keep, policies, ..).
 * generation (may be NULL) is kept up to date with the ruleset generation
 * after each step.
 */
int stager_new(sd_event *event, struct ks_nft *nft, struct ks_ruleset *rs, const char *keep, bool policies,
               uint32_t *generation, stager_done_t done, void *userdata, struct ks_stager **ret);
/*
 * Send all that still waits of policy `name` now, in one transaction (an
 * isolation with it); the steps go on with the rest. If nothing else waits,
 * or the transaction fails, `done` is called before it returns.
 */
int stager_finish_policy(struct ks_stager *s, const char *name);
/*
 * Hold the steps (and go on). A dump of the table on another socket meanwhile
 * would be interrupted by each step's commit (NLM_F_DUMP_INTR), and steps
 * come every millisecond or so.
 */
void stager_hold(struct ks_stager *s, bool hold);
/* Do sets of policy `name` still wait for their elements? */
bool stager_pending(const struct ks_stager *s, const char *name);
struct ks_stager *stager_free(struct ks_stager *s);
/* Free the stager but not its ruleset: returned, for the caller to free (off the loop: reaper.h). */
struct ks_ruleset *stager_release(struct ks_stager *s);
