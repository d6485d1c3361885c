/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/*
 * The audit trail: every state change, refused request and foreign change
 * goes to the journal as a structured entry with a MESSAGE_ID per kind
 * (docs/audit.md), and all but reloads also to STATE_DIR/history.jsonl, one
 * JSON object per line, bounded in size, read back by io.killswitch.History.
 * Recording never fails the caller: a problem is logged and the agent goes on.
 */

enum audit_kind {
        AUDIT_ISOLATE,          /* normal → isolated */
        AUDIT_SWITCH,           /* isolated → isolated with another policy */
        AUDIT_RESTORE,          /* isolated → normal */
        AUDIT_REFUSED,          /* a request refused: permission, lockout, no such policy, ... */
        AUDIT_APPLY_FAILED,     /* the kernel refused a change; the previous state stays */
        AUDIT_TAMPER,           /* someone else changed or deleted our table */
        AUDIT_REASSERT,         /* our table put back after a foreign change */
        AUDIT_RATE_LIMIT,       /* too many foreign changes: re-assertion paused */
        AUDIT_RELOAD,           /* policies re-read (journal only) */
        AUDIT_FAIL_CLOSED,      /* isolated because of a problem, not because someone asked */
        AUDIT_SCHEDULE,         /* a restore or a commit-confirmed revert scheduled */
        AUDIT_CANCEL,           /* a scheduled restore dropped */
        AUDIT_CONFIRM,          /* a commit-confirmed isolation confirmed: no revert */
        AUDIT_REVERT,           /* not confirmed in time: back to the previous state (the restore/switch follows) */
        AUDIT_TRIGGER,          /* a trigger of killswitch.conf fired (the isolate/switch follows) */
        AUDIT_REQUEST,          /* four-eyes: a restore asked by one person, waiting for a second */
        AUDIT_APPROVE,          /* four-eyes: a second person approved (the restore follows, or its time) */
        AUDIT_OVERRIDE,         /* four-eyes: root restored alone with --force */
        AUDIT_EXPIRE,           /* four-eyes: a request lapsed unapproved (a scheduled restore did not happen) */
        AUDIT_LAST_GOOD,        /* at start a policy file did not load: its last good version is in use */
        AUDIT_REPEAT,           /* isolate with the policy already in force: nothing changed in what is cut */
        _AUDIT_KIND_MAX,
};

struct audit_event {
        enum audit_kind kind;
        const char *policy;             /* policy now in force / requested */
        const char *previous_policy;    /* for a switch (or the policy a restore lifted) */
        const char *reason;
        const char *user;               /* the caller: user name or "uid N" */
        int64_t uid;                    /* -1 if unknown */
        pid_t pid;                      /* 0 if unknown */
        const char *command;            /* NULL: read from /proc/PID/comm */
        const char *ssh_client;         /* client address; a whole $SSH_CONNECTION is fine (first word taken) */
        const char *trigger;            /* "ctl", "startup", "monitor", "path:/x", "heartbeat", ... */
        const char *origin;             /* user@host that asked through a remote killswitchctl -H, or NULL */
        const char *message;            /* human sentence; NULL: a standard one from the fields */
        const char *kept;               /* what the policy keeps: "gateways a, b; services c" (isolate, switch) */
        int error;                      /* positive errno or 0 */
        uint64_t since_usec;            /* realtime; 0: now */
        const char *claimed_command;    /* what the client says it is: recorded as such when /proc/PID/comm
                                           cannot be read (ProtectProc=invisible hides other users) */
        bool unprivileged;              /* the caller is neither root nor in group killswitch: its refusals
                                           are rate-limited, its ssh_client is only a claim */
};

#define AUDIT_HISTORY_FILE      "history.jsonl"
#define AUDIT_HISTORY_MAX       1000    /* lines; beyond, the file is rewritten with the newest ... */
#define AUDIT_HISTORY_KEEP      500     /* ... this many */
#define AUDIT_HISTORY_DEFAULT_N 20      /* entries io.killswitch.History returns by default */
#define AUDIT_HISTORY_REPLY_MAX (1024u * 1024u) /* bytes of entries (as JSON) History returns at most */
#define AUDIT_REFUSED_KEEP      100     /* refusals a rotation keeps (state changes go first) */
#define AUDIT_REFUSED_BURST     5       /* unprivileged refusals recorded one by one per window ... */
#define AUDIT_REFUSED_WINDOW_USEC (60ULL * 1000000ULL)  /* ... the rest summed up in one entry */

struct ks_audit;

int audit_new(const char *state_dir, struct ks_audit **ret);
struct ks_audit *audit_free(struct ks_audit *a);
/*
 * From now on a history line is written at once but fsynced when the event
 * loop is next idle (after the reply to the request that caused it), not
 * before: the emergency command waits for the kernel and its own state file,
 * not for the audit trail. Without it, every line is fsynced as it is written.
 */
struct sd_event;
int audit_attach_event(struct ks_audit *a, struct sd_event *event);

/*
 * Journal (and stderr), plus history for all kinds but AUDIT_RELOAD. a may be NULL: journal only.
 * Refusals of unprivileged callers: AUDIT_REFUSED_BURST per AUDIT_REFUSED_WINDOW_USEC one by one,
 * the rest in one summary entry when the window is over: from a timer of the event loop
 * (audit_attach_event), or else at the next event, History call or audit_free.
 */
void audit_log(struct ks_audit *a, const struct audit_event *ev);

/* The newest n valid history entries as a JSON array, oldest first; corrupt lines are skipped. */
int audit_history(struct ks_audit *a, size_t n, json_t **ret_array);

/* "isolate", "switch", ..., as in KILLSWITCH_ACTION= and the history's "action". */
const char *audit_kind_to_string(enum audit_kind k);

/*
 * For tests: other history bounds; journal off (default: on while journald's socket exists);
 * a shorter window of refusals.
 */
void audit_set_history_bounds(struct ks_audit *a, size_t max_lines, size_t keep_lines);
void audit_set_journal(struct ks_audit *a, bool enabled);
void audit_set_refusals_window(struct ks_audit *a, uint64_t usec);
/* Whether entries go to the journal now (enabled, and journald's socket exists); a may be NULL. */
bool audit_journal_available(const struct ks_audit *a);
