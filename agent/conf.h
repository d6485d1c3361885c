/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/*
 * CONFIG_DIR/killswitch.conf: the triggers that isolate without a person
 * (killswitch.conf(5)). Pure: reads the file and nothing else. A section with
 * a problem is reported as "FILE:LINE: message" and left out; the others are
 * kept, so that one typo never disarms every trigger. Whether the named
 * policies exist and the watched directories are there is for the caller.
 */

#define CONF_FILE "killswitch.conf"
#define CONF_NAME_MAX POLICY_NAME_MAX
#define CONF_DEFAULT_LOG_GROUP 4713
#define DEFAULT_TRIGGER_POLICY "isolate"   /* when a trigger has no Policy= */
#define CONF_MAX_PATH_TRIGGERS 64

struct ks_conf_path {
        char *name;
        char *path;             /* absolute, normalised */
        char *policy;
        unsigned line;          /* of the section header */
        unsigned path_line;     /* of Path= */
        unsigned policy_line;   /* of Policy= (the header's if defaulted) */
};

struct ks_conf_heartbeat {
        bool enabled;
        uint64_t timeout_usec;
        char *policy;
        unsigned line, policy_line;
};

struct ks_conf_tripwire {
        bool enabled;
        uint64_t rate;          /* bytes per second */
        uint64_t for_usec;      /* over the rate this long */
        uint16_t log_group;     /* NFLOG group of the over-rate events */
        char *policy;           /* its uplinks are watched; applied when it fires */
        unsigned line, policy_line;
};

/*
 * [Restore]: how many distinct persons a restore needs (1 or 2), and how long
 * the first one's request waits for the second. A value with a problem never
 * weakens it: a bad Approvals= counts as 2, a bad ApprovalTimeout= as the default.
 */
#define CONF_DEFAULT_APPROVAL_TIMEOUT_USEC (15ULL * 60ULL * 1000000ULL)
#define CONF_MAX_APPROVALS 2

struct ks_conf_restore {
        unsigned approvals;             /* 0 (no [Restore]) counts as 1 */
        uint64_t approval_timeout_usec; /* 0: CONF_DEFAULT_APPROVAL_TIMEOUT_USEC */
        unsigned line;
};

struct ks_conf {
        char *file;             /* for messages */
        struct ks_conf_path *paths;
        size_t n_paths;
        struct ks_conf_heartbeat heartbeat;
        struct ks_conf_tripwire tripwire;
        struct ks_conf_restore restore;
};

void conf_clear(struct ks_conf *c);

/*
 * Parse text as the contents of `file`. Problems go to diags; the good sections
 * are in *c. Returns 0 (even with problems: count diags) or -ENOMEM.
 */
int conf_parse_string(const char *text, const char *file, struct ks_conf *c, struct ks_diags *diags);
/* The same from a file; -ENOENT if there is none (not an error: no triggers), other -errno in diags. */
int conf_parse_file(const char *path, struct ks_conf *c, struct ks_diags *diags);

/*
 * "50M" (bytes/s), "1.5G", "400Mbit", "10Mbit/s", "800K", "12345": K M G T are
 * powers of 1000, Ki Mi Gi powers of 1024; a trailing "bit" or "bits" counts bits
 * (divided by 8), "B" bytes, "/s" is optional. Returns 0, -EINVAL, -ERANGE.
 */
int conf_parse_rate(const char *s, uint64_t *ret_bytes_per_sec);
