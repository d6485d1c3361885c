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
 * A reload in two steps, so that the slow one can run off the event loop:
 * store_scan_dir() parses every *.policy in dir and resolves its host names
 * (reading `current`, the store as it is, to tell unchanged policies; it
 * changes nothing and may run on another thread while nothing modifies
 * `current`); store_apply_scan() then moves the results into the store (fast).
 */
struct store_file {
        char *name, *path;
        struct ks_policy *policy;   /* the new version; NULL if it failed or is unchanged */
        struct ks_diags errors;
        bool failed;
        bool unchanged;             /* parsed cleanly, same ruleset as the loaded version */
};

struct store_scan {
        struct store_file *files;
        size_t n;
};

int store_scan_dir(const char *dir, const struct ks_store *current, policy_resolver_t resolver, void *userdata,
                   struct store_scan *ret);
/* Versions a store no longer holds, not freed yet (store_apply_scan). */
struct store_retired {
        struct ks_policy **v;
        size_t n;
};

/*
 * Entries whose file is gone are dropped, except `keep` (see store_load_dir).
 * The versions replaced or dropped are freed, or with retired non-NULL added
 * to it: a thread may still read them (the link layer's compile), and freeing
 * one of 100,000 entries is slow work for the loop. On -ENOMEM the entries
 * not applied yet keep their versions.
 */
int store_apply_scan(struct ks_store *s, struct store_scan *scan, const char *keep, size_t *ret_failed,
                     struct store_retired *retired);
void store_retired_clear(struct store_retired *r);
void store_scan_clear(struct store_scan *scan);
/*
 * The good versions the store will hold once store_apply_scan(scan, keep) ran
 * on `current`, in its order (so that the table can be compiled beforehand,
 * off the loop). Caller frees the array only.
 */
int store_scan_policies(const struct store_scan *scan, const struct ks_store *current, const char *keep,
                        const struct ks_policy ***ret, size_t *ret_n);

/*
 * (Re)load every *.policy in dir, on the calling thread (at start; host names
 * get RESOLVE_TIMEOUT_USEC in all). Entries whose file is gone are dropped,
 * except `keep` (the policy in force, may be NULL), which stays with an error.
 * *ret_failed (may be NULL) counts files with problems. Returns 0, or a negative
 * errno if dir cannot be read (the store is then unchanged).
 */
int store_load_dir(struct ks_store *s, const char *dir, const char *keep, size_t *ret_failed);

struct ks_policy_entry *store_find(struct ks_store *s, const char *name);
/* The good version of policy `name`, or NULL. */
const struct ks_policy *store_get(struct ks_store *s, const char *name);
void store_clear(struct ks_store *s);
