/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/*
 * The last good version of each policy file, on disk: the exact text that
 * last parsed (and resolved) cleanly, in STATE_DIR/last-good/NAME.policy
 * (root only: the directory 0700, the files 0600). The store promises that a
 * broken file keeps its previous good version; the copy keeps that promise
 * across a restart: at start, a file that fails falls back to it
 * (store_load_dir()). Blocking I/O with fsync: not for the event loop.
 */

#define LASTGOOD_DIR "last-good"

/*
 * Save text as the copy of policy `name` in dir (created 0700 if missing),
 * atomically and durably, unless the copy holds that text already (so that an
 * unchanged policy is not rewritten at every reload).
 */
int lastgood_save(const char *dir, const char *name, const char *text);

/* Forget policy `name`'s copy: its file is gone and the store dropped it. 0 if there was none. */
int lastgood_remove(const char *dir, const char *name);

/*
 * At start, once the policy directory was read: forget the copies of policies
 * whose file went away while the agent was down (has(name, userdata) false),
 * so that a broken file of that name later never falls back to old text.
 */
int lastgood_prune(const char *dir, bool (*has)(const char *name, void *userdata), void *userdata);

/*
 * Parse policy `name`'s copy and resolve its host names, as the store does a
 * file. *ret_saved_usec: when the copy was written (realtime). -ENOENT if
 * there is none (nothing added to diags); its problems otherwise, in diags as
 * "DIR/NAME.policy:LINE: ...".
 */
int lastgood_load(const char *dir, const char *name, policy_resolver_t resolver, void *userdata,
                  struct ks_policy **ret, uint64_t *ret_saved_usec, struct ks_diags *diags);
