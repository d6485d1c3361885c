/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "error.h"
#include "state.h"
#include "store.h"

/*
 * The triggers of CONFIG_DIR/killswitch.conf (killswitch.conf(5)): isolation
 * without a person. Each names a policy and, when it fires, reports it to its
 * owner (the manager), which isolates with it with the trigger's name as the
 * actor's trigger ("path:NAME", "heartbeat", "tripwire"). A trigger fires once
 * per incident: it is recorded in the state as fired and re-armed only by a
 * restore. It never restores. The module reads the state through the owner's
 * accessor and changes nothing but its own table (the trip-wire's).
 *
 * - [PathTrigger NAME]: inotify on the parent directory (sd-event); the file
 *   appearing fires, and so does a file that is there at start or after a
 *   restore (the condition still holds). A directory removed or renamed
 *   (a tmpfiles clean, a package upgrade) disarms it until it is back.
 * - [Heartbeat]: a CLOCK_BOOTTIME timer that `killswitchctl heartbeat` pushes
 *   back; the first deadline counts from the start (or the last restore).
 * - [EgressTripwire]: the kernel logs over-rate packets on the uplinks to an
 *   NFLOG group (compile-tripwire.h); an event in every second for For= fires.
 */

struct ks_nft;
struct ks_triggers;

/* What the triggers need from their owner; the pointers outlive the triggers. */
struct triggers_context {
        sd_event *event;
        const char *config_dir;
        struct ks_store *store;         /* the loaded policies */
        struct ks_nft *nft;             /* for the trip-wire's table; NULL: none */
        /* The state in force (isolated? which triggers fired?). */
        const struct ks_state *(*state)(void *userdata);
        /* Trigger `id` fires (not yet fired in this incident): isolate with `policy`, because of `why`. */
        void (*fire)(void *userdata, const char *id, const char *policy, const char *why);
        void *userdata;
};

/*
 * Parse killswitch.conf and check it against the loaded policies (and the
 * file system: a watched directory must exist). Problems go to diags as
 * "FILE:LINE: message"; the broken triggers are left out of *c. Returns the
 * number of problems, or -ENOMEM. No killswitch.conf: 0 and no triggers.
 */
int triggers_check(const char *config_dir, struct ks_store *store, struct ks_conf *c, struct ks_diags *diags);

/*
 * (Re-)read killswitch.conf and set up its good triggers, replacing the
 * current ones; problems are logged and kept (triggers_problems()). Never
 * fails the agent: a broken trigger is simply not armed.
 */
void triggers_load(struct ks_triggers **t, const struct triggers_context *ctx);

/* The problems of killswitch.conf at the last load, "FILE:LINE: message"; the triggers they concern are disarmed. */
const struct ks_diags *triggers_problems(const struct ks_triggers *t);

/* After every change of the state: the trip-wire only while normal; re-arm after a restore. NULL: nothing. */
void triggers_state_changed(struct ks_triggers *t);

/* After a foreign change of our tables: put the trip-wire table back as it must be. NULL: nothing. */
void triggers_reassert(struct ks_triggers *t);

/* killswitchctl heartbeat: push the heartbeat's deadline back (config_dir: for the hint if t has none). */
int triggers_heartbeat(struct ks_triggers *t, const char *config_dir, uint64_t *ret_deadline_usec,
                       struct ks_error *e);

/*
 * {"paths":[{name, path, policy, armed, fired}], "heartbeat":{...}|null, "tripwire":{...}|null,
 * "problems":[...]} for status. A path trigger whose directory went away is not armed until the
 * directory is back (looked for every second, with the checks of a reload).
 */
json_t *triggers_json(struct ks_triggers *t);

/* [Restore] of killswitch.conf: the approvals a restore needs (1 if none) and how long a request waits. */
void triggers_restore_conf(struct ks_triggers *t, unsigned *ret_approvals, uint64_t *ret_timeout_usec);

struct ks_triggers *triggers_free(struct ks_triggers *t);

/* Errors of triggers_heartbeat (docs/protocol.md). */
#define KS_ERR_NOT_CONFIGURED   "io.killswitch.NotConfigured"
