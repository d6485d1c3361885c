/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/*
 * The loaded policies: one entry per DIR/NAME.policy. A reload replaces a
 * policy only with a version that parsed cleanly; a broken file keeps its
 * previous good version and records the problems. With a `lastgood`
 * directory (lastgood.h) that promise survives a restart: every file that
 * loads cleanly leaves a copy of its text there, and at start a file that
 * fails falls back to its copy (store_load_dir()).
 */

struct ks_policy_entry {
        char *name;
        char *path;
        struct ks_policy *policy;   /* last good version, NULL if it never loaded */
        struct ks_diags errors;     /* problems of the last load; empty if it loaded */
        unsigned generation;        /* bumped whenever policy is replaced */
        uint64_t lastgood_usec;     /* policy is the last good copy saved then (the file fails); 0: the file's */
        int save_error;             /* the copy of the file's text could not be saved (negative errno); 0 */
        bool in_memory;             /* store_put(): no file behind it, nothing to report when there is none */
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
 * `current`) and, with `lastgood` not NULL, saves the text of every file that
 * loaded cleanly in that directory (lastgood_save(): fsync, not for the loop);
 * store_apply_scan() then moves the results into the store (fast).
 */
struct store_file {
        char *name, *path;
        struct ks_policy *policy;   /* the new version; NULL if it failed or is unchanged */
        struct ks_diags errors;
        bool failed;
        bool unchanged;             /* parsed cleanly, same ruleset as the loaded version */
        int saved;                  /* lastgood_save(): 0, or why the copy could not be saved */
};

struct store_scan {
        struct store_file *files;
        size_t n;
};

int store_scan_dir(const char *dir, const struct ks_store *current, const char *lastgood,
                   policy_resolver_t resolver, void *userdata, struct store_scan *ret);
/* Versions a store no longer holds, not freed yet (store_apply_scan). */
struct store_retired {
        struct ks_policy **v;
        size_t n;
};

/*
 * Entries whose file is gone are dropped, except `keep` (see store_load_dir),
 * and so are their copies in `lastgood` (may be NULL). The versions replaced or dropped are freed, or with retired non-NULL added
 * to it: a thread may still read them (the link layer's compile), and freeing
 * one of 100,000 entries is slow work for the loop. On -ENOMEM the entries
 * not applied yet keep their versions.
 */
int store_apply_scan(struct ks_store *s, struct store_scan *scan, const char *keep, const char *lastgood,
                     size_t *ret_failed, struct store_retired *retired);
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
 * errno if dir cannot be read (the store is then unchanged but for keep's copy).
 *
 * With `lastgood` (a directory, lastgood.h; NULL: no copies) the text of each
 * file that loads is saved there, and a policy that has no good version (its
 * file is invalid, unreadable, not a regular file; for keep also when it is
 * missing or dir cannot be read) gets its last good copy: the entry keeps the
 * file's errors and says since when in lastgood_usec.
 */
int store_load_dir(struct ks_store *s, const char *dir, const char *keep, const char *lastgood, size_t *ret_failed);

/*
 * Policy `name` (its file DIR/NAME.policy) from its copy in lastgood, if the
 * store has no good version of it: an entry is added if there is none, with
 * `why` as its error. 0 if the store has a good version now, -ENOENT if there
 * is no copy, another negative errno if the copy fails too (its problems are
 * added to the entry's errors).
 */
int store_fall_back(struct ks_store *s, const char *dir, const char *name, const char *lastgood, const char *why);

/*
 * Put p (taken, also on error) in the store as policy `name`, from `path` (a
 * description, e.g. "(built-in)"): the entry is added, or its version replaced.
 */
int store_put(struct ks_store *s, const char *name, const char *path, struct ks_policy *p);

struct ks_policy_entry *store_find(struct ks_store *s, const char *name);
/* The good version of policy `name`, or NULL. */
const struct ks_policy *store_get(struct ks_store *s, const char *name);
void store_clear(struct ks_store *s);
