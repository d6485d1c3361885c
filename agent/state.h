/* SPDX-License-Identifier: MIT */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The persisted state of the agent: normal or isolated, which policy, since
 * when, by whom and why. Stored as JSON in STATE_DIR/state.json, padded with
 * spaces to STATE_FILE_SIZE bytes: a save overwrites it in place and
 * fdatasyncs it (no metadata to commit, so no journal commit to wait for),
 * or, if the file is not such a file yet or the JSON is longer, replaces it
 * atomically (write to a temporary file, fsync, rename, fsync the directory).
 */

struct ks_state {
        bool isolated;
        char *policy;          /* NULL when normal, or when adopted without a known policy */
        uint64_t since_usec;   /* realtime of the last change, 0 if never changed */
        char *user;            /* who made the last change */
        int64_t uid;           /* their uid, -1 if unknown */
        char *reason;
        char *trigger;         /* what made the last change: "ctl", "path:NAME", "heartbeat", "tripwire", ... */

        /* Schedules (wall-clock instants, 0 = none), carried out even if their time passed while we were down. */
        uint64_t restore_at_usec;       /* restore then */
        uint64_t confirm_usec;          /* commit-confirmed: unless confirmed by then, revert to ... */
        bool revert_isolated;           /* ... normal, or isolated with ... */
        char *revert_policy;            /* ... this policy */
        /*
         * The same deadlines on CLOCK_BOOTTIME, for those given as durations (--for, --confirm,
         * restore --in): a step of the wall clock neither delays nor advances them. Saved with the
         * boot id ("boottime") and read back in the same boot only. 0: none, or a wall-clock instant
         * (--until, --at; after a reboot, or from a file of an older agent).
         */
        uint64_t restore_boot_usec;
        uint64_t confirm_boot_usec;

        /*
         * Four-eyes restore ([Restore] Approvals=2): the first person's request, waiting for a
         * second, distinct one until request_until_usec (its boottime twin saved as above).
         * request_restore_usec: the scheduled restore it asks for (= restore_at_usec), 0 for now.
         */
        char *request_user;             /* NULL: no request pending */
        int64_t request_uid;
        uint64_t request_at_usec;
        uint64_t request_until_usec;
        uint64_t request_until_boot_usec;
        uint64_t request_restore_usec;

        /* Triggers that fired during this isolation: each fires once per incident; a restore re-arms them. */
        char **fired;
        size_t n_fired;

        /*
         * The uplinks of the cut as the kernel numbered them while isolated (name, ifindex): a
         * restarted agent finds an uplink renamed while it was not running by its ifindex.
         */
        struct ks_uplink_id {
                char name[IFNAMSIZ];
                int ifindex;
        } *uplink_ids;
        size_t n_uplink_ids;
        char *uplinks_boot;             /* the boot id they were seen in: ifindexes are only kept until a reboot */
};

#define STATE_FILE "state.json"
#define STATE_FILE_SIZE 4096    /* at most one page: an overwrite in place is whole or not at all */

void state_init(struct ks_state *s);
void state_clear(struct ks_state *s);
int state_copy(const struct ks_state *from, struct ks_state *to);

/* -ENOENT if there is no state file yet, -EBADMSG if it is corrupt. */
int state_load(const char *dir, struct ks_state *ret);
/* Written and on disk (fdatasync) when it returns. */
int state_save(const char *dir, const struct ks_state *s);
/*
 * The same in two halves: state_write() leaves the file in the page cache
 * (a restarted agent reads it; *owed: a state_sync() still owes the disk),
 * so that a commit between the two does not wait for the disk.
 */
int state_write(const char *dir, const struct ks_state *s, bool *owed);
int state_sync(const char *dir);

bool state_fired(const struct ks_state *s, const char *trigger);
/* Replace the uplinks' ids with ids[0..n) (copied), seen during boot `boot` (may be NULL). */
int state_set_uplink_ids(struct ks_state *s, const struct ks_uplink_id *ids, size_t n, const char *boot);
int state_add_fired(struct ks_state *s, const char *trigger);
