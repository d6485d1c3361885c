/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "actor.h"
#include "compile.h"
#include "control.h"
#include "drops.h"
#include "error.h"
#include "reload.h"
#include "state.h"
#include "store.h"
#include "summary.h"

/*
 * The manager: the one object that holds the agent's state and wires the
 * pieces together (policy store, netlink transport, persisted state, control
 * socket). State changes go through manager_isolate/manager_restore only.
 */

/* Errors of the schedule verbs (docs/protocol.md). */
#define KS_ERR_NOT_ISOLATED     "io.killswitch.NotIsolated"
#define KS_ERR_NOTHING_PENDING  "io.killswitch.NothingPending"
#define DEFAULT_POLICY "isolate"
/*
 * The last resort at start (the state says isolated, no policy can be applied):
 * a policy built in memory that cuts the uplinks the state file remembers and
 * keeps nothing. Its name is reserved: a policy file of that name is replaced.
 */
#define BUILTIN_CUT_POLICY "builtin-cut"

struct ks_manager;
struct ks_nft;
struct ks_control;
struct ks_monitor;
struct ks_triggers;
struct ks_schedule;
struct ks_reload;
struct ks_stager;
struct ks_ruleset;
struct readback;
struct links_compile;
struct drops_reader;
struct ks_syncer;
struct ks_reaper;
struct ks_worker;
struct reload_waiter;
struct ks_peer;

/* What the manager calls but does not know: main() wires methods.c and methods-report.c (no circle of includes). */
struct manager_handlers {
        control_handler_t methods;                      /* the Varlink methods of the control socket */
        bool (*trusted)(const struct ks_peer *peer);    /* control_set_trusted() */
        bool (*urgent)(const char *method);             /* control_set_urgent() */
        void (*restoring)(struct ks_manager *m);        /* before a restore resets the counters; or NULL */
};

struct ks_options {
        const char *config_dir;
        const char *state_dir;
        const char *socket_path;
        bool kernel_owner;      /* ask the kernel to refuse others' changes (owner+persist table flags) */
        struct manager_handlers handlers;
};

struct ks_manager {
        sd_event *event;
        struct manager_handlers handlers;
        struct ks_nft *nft;
        struct ks_control *control;
        char *config_dir, *policy_dir, *state_dir, *socket_path;
        char *lastgood_dir;             /* STATE_DIR/last-good: each policy's last good text (lastgood.h) */
        struct ks_store store;
        struct ks_diags policy_warnings;        /* policy-lint's, of the last load or reload (lint-host.h) */
        struct ks_state state;
        bool staged_ok;                 /* the kernel table is what the last rebuild made */
        bool hooked;                    /* our base chains are in the kernel: the uplinks are cut */
        char *staged;                   /* which policy versions it holds (see staged_signature) */
        struct ks_summary expect;       /* the table's shape as we meant it (read-back checks) */
        struct ks_monitor *monitor;     /* foreign changes of our table */
        struct ks_audit *audit;         /* journal entries and STATE_DIR/history.jsonl (audit.h) */
        sd_event_source *reassert_source;       /* a pending re-assertion (defer or back-off timer) */
        uint64_t reassert_window_start;         /* monotonic, rate limit window */
        unsigned reassert_window_count;
        unsigned reassertions;          /* since the last isolation */
        bool rate_limited;
        bool resync_pending;            /* events were lost: check before re-asserting */
        bool events_lost;               /* since the last check: the generation proves nothing */
        uint32_t generation;            /* ruleset generation right after our last commit */
        bool want_owner;                /* use owner+persist table flags while the kernel takes them */
        bool owned;                     /* the kernel refuses other processes' changes (owner+persist) */
        uint64_t last_apply_usec;
        bool has_last_apply;
        struct ks_schedule *schedule;           /* the timers of m->state's deadlines (schedule.c) */
        struct ks_triggers *triggers;           /* killswitch.conf (triggers.c) */
        struct ks_reload *reload;               /* reading the policy files off the loop (reload.c) */
        struct reload_waiter *reloads;          /* who asked: the first is the one running */
        size_t reload_failed;                   /* policy files with problems in the running reload */
        bool reload_staging;                    /* the running reload waits for m->stager */
        struct ks_stager *stager;               /* filling big sets in steps after a rebuild (stage.c) */
        bool stage_steps;                       /* the rebuild under way may stage in steps */
        struct readback *readback;              /* element counts of that staging, read back off the loop */
        struct readback *check;                 /* the big sets of an adopted table, read back off the loop */
        struct reload_table precompiled;        /* the table a reload compiled off the loop, summarized */
        struct links_compile *links_compile;    /* the link layer's table being compiled on a thread */
        struct links_compile *links_abandoned;  /* compiles a reload made stale, still running (not waited for) */
        struct store_retired retired;           /* versions the store dropped, which those may still read */
        struct policy_read *reads;              /* reads of a policy off the loop, the first running (manager-read.c) */
        struct ks_links *links;                 /* the uplinks as links: renames, stacked links (links.c) */
        sd_event_source *links_source;          /* a pending re-assertion of the link layer */
        sd_event_source *links_backoff;         /* rate limited: the re-assertion after the back-off */
        uint64_t links_window_start;            /* monotonic, rate limit window of foreign device chains */
        unsigned links_window_count;
        bool links_applied;                     /* the link layer (compile_links) is in force */
        char *links_staged;                     /* staged_signature() of the netdev table's policies */
        sd_event_source *links_stage_source;    /* a pending staging of the netdev table (idle priority) */
        sd_event_source *remember_source;       /* the uplinks' ifindexes to save, after the reply */
        struct ks_stager *links_stager;         /* filling the netdev table's big sets in steps (stage.c) */
        struct ks_drops drops;                  /* the drop sensor's totals (drops.h, manager-drops.c) */
        sd_event_source *drops_source;          /* its periodic read while isolated */
        uint64_t drops_journal_usec;            /* monotonic: its last journal summary */
        uint64_t drops_logged_packets;          /* what that summary counted */
        uint64_t drops_read_usec;               /* how long the last read of the kernel's sets took */
        struct drops_reader *drops_reader;      /* reads of the kernel's sets off the loop (manager-drops.c) */
        struct ks_syncer *drops_syncer;         /* makes drops-last.json durable off the loop */
        struct ks_syncer *state_syncer;         /* the same for state.json where nothing waits for it */
        struct ks_syncer *report_syncer;        /* saves the last isolation's counters off the loop */
        char *report_last;                      /* their text, as saved last by this process */
        struct ks_worker *resetting;            /* the restore's reset of the counters, off the loop */
        struct ks_nft *reset_nft;               /* its socket, kept between resets */
        int reset_r;                            /* its result */
        struct ks_reaper *reaper;               /* frees large rulesets off the loop */
};

int manager_new(const struct ks_options *o, struct ks_manager **ret);
struct ks_manager *manager_free(struct ks_manager *m);

/* Load policies and state, put the persisted state in force, open the socket (with handlers.methods). */
int manager_startup(struct ks_manager *m);
int manager_run(struct ks_manager *m);

/*
 * Hook `policy` (default: DEFAULT_POLICY) in one small transaction. Refused if it would cut the
 * actor's own SSH session over an uplink, unless force.
 */
int manager_isolate(struct ks_manager *m, const char *policy, const struct ks_actor *a, const char *reason,
                    const struct ks_isolate_opts *o, struct ks_error *e);
int manager_restore(struct ks_manager *m, const struct ks_actor *a, const char *reason, struct ks_error *e);
/*
 * Schedules (the timers are schedule.c's): restore at a wall-clock instant while isolated;
 * drop a pending restore; confirm a commit-confirmed isolation.
 */
int manager_schedule_restore(struct ks_manager *m, const struct ks_actor *a, uint64_t at_usec, uint64_t boot_usec,
                             const char *reason, struct ks_error *e);
int manager_cancel(struct ks_manager *m, const struct ks_actor *a, const char *reason, struct ks_error *e);
int manager_confirm(struct ks_manager *m, const struct ks_actor *a, struct ks_error *e);

/* Record an event of the agent's own (schedules, triggers) in the journal and the history. */
void manager_audit(struct ks_manager *m, int kind, const struct ks_actor *a, const char *policy,
                   const char *previous, const char *reason, const char *message);

/*
 * How a reload ended: r < 0 and e if it failed; failed counts the policy
 * files with problems (the reply lists them from the store).
 */
typedef void (*manager_reload_done_t)(struct ks_manager *m, void *userdata, int r, size_t failed,
                                      const struct ks_error *e);

/*
 * Reload the policies. The files are read and their host names resolved off
 * the event loop (reload.c), so that isolate, restore, status and the watchdog
 * are answered meanwhile (an isolation meanwhile applies the versions loaded
 * now); then, on the loop, the results are put in force, the table re-staged
 * and `done` called. A reload asked for while one runs follows it. Returns a
 * negative errno (e says why, done is not called) if it cannot start.
 */
int manager_reload(struct ks_manager *m, const struct ks_actor *a, manager_reload_done_t done, void *userdata,
                   struct ks_error *e);

/* Record a refused request (permission, lockout, ...) in the journal and the history. */
void manager_audit_refused(struct ks_manager *m, const struct ks_actor *a, const char *policy, const char *message);

/* The good version of policy `name`; -ENOENT (or -EINVAL for a bad name) with e saying why not. */
int manager_find_policy(struct ks_manager *m, const char *name, const struct ks_policy **ret,
                        struct ks_error *e);

/* How the table is protected against other processes: "owner+monitor" or "monitor". */
const char *manager_protection(struct ks_manager *m);

/*
 * What cuts the uplinks now, one entry per layer: "inet hooks", "netdev
 * ingress+egress on wan0 wan1", "link tracking". NULL-terminated, caller frees
 * the strings and the array; NULL if out of memory.
 */
char **manager_layers(struct ks_manager *m);

/*
 * Whether the state is in force: false only if the state says isolated but no
 * cut is (at start no policy, no copy and no uplink known could be applied):
 * THE UPLINKS ARE OPEN.
 */
bool manager_applied(struct ks_manager *m);

/* Free the versions the store dropped (m->retired) if no thread may read them any more. */
void manager_retired_release(struct ks_manager *m);

/* The policy in force, if known. */
const struct ks_policy *manager_active_policy(struct ks_manager *m);

/*
 * The drop sensor (manager-drops.c): reads of the kernel's sets run on a
 * thread and are folded into m->drops on the loop. manager_drops_read_then()
 * calls fn once a read that started after the call is folded in (r < 0: the
 * read failed, the totals are the previous ones) and returns 0; it returns 1
 * if there is nothing to wait for (normal, the restore's last read done), and
 * -ENOMEM, without calling fn. The bookkeeping of an
 * isolation (fresh: from normal, the totals start anew; if the restore's last
 * read still runs, the isolation does not wait: that read is split between
 * the two), a restore and a rebuild of the table.
 */
typedef void (*drops_read_fn)(struct ks_manager *m, void *userdata, int r);
int manager_drops_read_then(struct ks_manager *m, drops_read_fn fn, void *userdata);
/* A read is running (status shows it) and how many were folded in. */
bool manager_drops_reading(const struct ks_manager *m, uint64_t *ret_reads);
void manager_drops_isolated(struct ks_manager *m, bool fresh);
void manager_drops_restored(struct ks_manager *m);
void manager_drops_before_rebuild(struct ks_manager *m);
void manager_drops_after_rebuild(struct ks_manager *m);
/* While normal at start: the last isolation's totals, as its restore saved them (STATE_DIR/drops-last.json). */
void manager_drops_load(struct ks_manager *m);
void manager_drops_free(struct ks_manager *m);
/* A tuple's source (or dst) address as text into buf (INET6_ADDRSTRLEN). */
const char *manager_drops_addr(const struct drop_entry *e, bool dst, char *buf, size_t size);
