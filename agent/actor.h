/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Who asks the manager for a change and how: the vocabulary shared by the
 * manager, the Varlink methods and the pure state machine (transition.h).
 */

struct ks_peer;

/* Who asks for a change, and from where. */
struct ks_actor {
        const char *user;               /* user name, or "uid N" */
        int64_t uid;
        pid_t pid;
        const char *ssh_connection;     /* the caller's $SSH_CONNECTION, or NULL */
        const char *trigger;            /* "ctl", "startup", "monitor", ... */
        const char *origin;             /* user@host behind a remote killswitchctl -H call, or NULL */
        const struct ks_peer *peer;     /* the control call, to answer it later (control_defer), or NULL */
        bool unprivileged;              /* neither root nor in group killswitch (see audit_event) */
        const char *claimed_command;    /* the command name the client sent (unverified), or NULL */
};

/* The agent itself as the actor: at start, on a foreign change, ... */
#define AGENT_ACTOR(trig) ((struct ks_actor){ .user = "killswitchd", .uid = -1, .trigger = (trig) })

/* How to isolate: the lockout check, and what to schedule with it. */
struct ks_isolate_opts {
        bool force;                     /* even if it cuts the caller's own SSH session */
        uint64_t restore_at_usec;       /* realtime: restore then; 0: no end (drops a pending restore) */
        uint64_t restore_boot_usec;     /* boottime of the same if it came from a duration, else 0 */
        uint64_t confirm_usec;          /* commit-confirmed: revert unless confirmed within this; 0: no */
        bool trigger;                   /* a trigger (a->trigger names it) fires */
        unsigned approvals;             /* [Restore] Approvals=: > 1 makes restore_at a four-eyes request */
        bool revert;                    /* the commit-confirmed revert carries out: it supersedes nothing,
                                           and keeps the pending restore */
};
