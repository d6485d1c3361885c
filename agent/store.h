/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/*
 * The loaded policies: one entry per DIR/NAME.policy. A reload replaces a
 * policy only with a version that parsed cleanly; a broken file keeps its
 * previous good version and records the problems.
 */

struct ks_policy_entry {
        char *name;
        char *path;
        struct ks_policy *policy;   /* last good version, NULL if it never loaded */
        struct ks_diags errors;     /* problems of the last load; empty if it loaded */
        unsigned generation;        /* bumped whenever policy is replaced */
};

struct ks_store {
        struct ks_policy_entry *items;
        size_t n;
};

/*
 * (Re)load every *.policy in dir. Entries whose file is gone are dropped,
 * except `keep` (the policy in force, may be NULL), which stays with an error.
 * *ret_failed (may be NULL) counts files with problems. Returns 0, or a negative
 * errno if dir cannot be read (the store is then unchanged).
 */
int store_load_dir(struct ks_store *s, const char *dir, const char *keep, size_t *ret_failed);

struct ks_policy_entry *store_find(struct ks_store *s, const char *name);
/* The good version of policy `name`, or NULL. */
const struct ks_policy *store_get(struct ks_store *s, const char *name);
void store_clear(struct ks_store *s);
