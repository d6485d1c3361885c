/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "store.h"
#include "summary.h"

/*
 * A reload's slow part off the event loop: reading every policy file, parsing
 * it, resolving its host names (the name service gets RESOLVE_TIMEOUT_USEC in
 * all) and saving the text of each that loads in `lastgood` (may be NULL;
 * store_scan_dir(), fsync) runs on a thread of its own while the loop goes on answering
 * isolate, restore, status and the watchdog. The thread reads `current` (the
 * store as it is, to tell unchanged policies) and changes nothing: the caller
 * must not modify that store until the callback ran. The thread also compiles
 * the table the result will need, without hooks (compile_table(); the loop
 * adds the base chains of the policy in force when it ends, ruleset_hold()),
 * and its summary, keyed as `keyed` (ruleset_summarize(): digesting every
 * element takes milliseconds per 10,000), so that the loop need not. It
 * compiles the policies store_scan_policies(scan, current, keep) gives (keep:
 * the policy in force at the start, may be NULL) and keeps that list: the
 * table fits the store after store_apply_scan() if the store's policies are
 * those, the same objects in the same order. The callback runs on the loop
 * with the scan (store_apply_scan() moves it into the store) and that table
 * (rs NULL if it could not be compiled; the callback may take all of it), or
 * a negative errno; free the job then, from the callback if need be.
 */

struct ks_reload;
struct ks_ruleset;

struct reload_table {
        struct ks_ruleset *rs;
        struct ks_summary summary;      /* of rs, if summarized */
        bool summarized;
        const struct ks_policy **policies;      /* rs compiled from these, in this order (compared, not read) */
        size_t n_policies;
};

typedef void (*reload_done_t)(void *userdata, int r, struct store_scan *scan, struct reload_table *table);

int reload_start(sd_event *event, const char *dir, const char *lastgood, const struct ks_store *current,
                 const char *keep, const struct ks_summary *keyed, reload_done_t done, void *userdata,
                 struct ks_reload **ret);
/* Waits for the thread if it still runs: parsing and compiling a large policy on a busy machine takes seconds. */
struct ks_reload *reload_free(struct ks_reload *r);
/*
 * At exit: the same without waiting. If the thread still runs, `current`, the
 * store given to reload_start(), is handed over (left empty): the thread may
 * still read it; it is freed with the job, by the thread once it is done (or
 * with the process). Once the callback ran, this is reload_free().
 */
struct ks_reload *reload_abandon(struct ks_reload *r, struct ks_store *current);
