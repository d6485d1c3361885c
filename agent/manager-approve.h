/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "transition.h"

/*
 * Four-eyes restore ([Restore] Approvals=2, killswitch.conf(5)): a restore
 * asked by a person while isolated goes through approve_restore(). The
 * decision is transition_approval()'s (pure); this applies it: records the
 * first person's request in the state (it survives a restart until it lapses),
 * carries it out when a second, distinct person asks, lets root override with
 * force, and audits each step. Reverts and triggers call manager_restore()
 * directly and never wait.
 */

struct ks_manager;
struct ks_actor;

/*
 * Restore now (at 0) or schedule it at `at` (boot: its boottime twin or 0), as
 * the approvals allow. 0 when restored, scheduled or approved; -EINPROGRESS
 * with KS_ERR_WAITING in e when the request now waits for a second person.
 */
int approve_restore(struct ks_manager *m, const struct ks_actor *a, uint64_t at, uint64_t boot, const char *reason,
                    bool force, struct ks_error *e);

/* A deadline dropped the request (TRANSITION_REQUEST_EXPIRED or TRANSITION_RESTORE_UNAPPROVED). */
int approve_lapse(struct ks_manager *m, enum transition_due due, uint64_t now);

/* {user, uid, at, until, restore_at, approvals} of the pending request, or null: status and WaitingForApproval. */
json_t *approve_request_json(struct ks_manager *m);

/* [Restore] Approvals= in force (1 without killswitch.conf). */
unsigned approve_needed(struct ks_manager *m);
