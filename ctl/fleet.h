/* SPDX-License-Identifier: MIT */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "output.h"

/*
 * killswitchctl -H: one verb on many hosts over OpenSSH (docs/fleet.md).
 * Each host runs its own killswitchctl against its own agent, which authorises
 * and audits the call as any local one; this module only fans out, collects
 * and reports.
 */

#define FLEET_PARALLEL_DEFAULT 16
#define FLEET_PARALLEL_MAX 1024
#define FLEET_TIMEOUT_DEFAULT_SEC 45       /* the remote call's own 30 s, the connection's 10, a margin */
#define FLEET_CONNECT_TIMEOUT_SEC 10

struct fleet_options {
        char **hosts;         /* as given, in order, without duplicates */
        char **ssh_options;   /* --ssh-option values, for ssh -o */
        unsigned parallel;    /* 0: the default */
        unsigned timeout_sec; /* per host, connection included; 0: the default */
};

/* The options of killswitchctl that fleet_parse_option() takes, for getopt_long(). */
enum {
        FLEET_ARG_HOSTS_FILE = 0x200,
        FLEET_ARG_PARALLEL,
        FLEET_ARG_SSH_OPTION,
        FLEET_ARG_HOST_TIMEOUT,
};
#define FLEET_SHORT_OPTIONS "H:"
#define FLEET_LONG_OPTIONS                                                       \
        { "host",         required_argument, NULL, 'H'                    },     \
        { "hosts-file",   required_argument, NULL, FLEET_ARG_HOSTS_FILE   },     \
        { "parallel",     required_argument, NULL, FLEET_ARG_PARALLEL     },     \
        { "ssh-option",   required_argument, NULL, FLEET_ARG_SSH_OPTION   },     \
        { "host-timeout", required_argument, NULL, FLEET_ARG_HOST_TIMEOUT }

/*
 * Take option c with its value into o. Returns 1 if c was one of ours, 0 if
 * not, -EINVAL (or -ENOMEM) with a sentence in error (no "killswitchctl:",
 * no final period) if its value is bad, e.g. "hosts.txt:3: invalid host 'a b'".
 */
int fleet_parse_option(struct fleet_options *o, int c, const char *value, char *error, size_t size);
void fleet_options_clear(struct fleet_options *o);
static inline bool fleet_enabled(const struct fleet_options *o)
{
        return o->hosts && o->hosts[0];
}

/* The help lines of the options above, for killswitchctl --help. */
void fleet_options_help(FILE *f);

/*
 * Run "killswitchctl --json=short ARGS..." on every host and report: a table
 * of HOST RESULT STATE POLICY SINCE ERROR and a summary line, or with --json a
 * JSON array of {host, ok, exit_code, unreachable, state, since, policy,
 * error, reply}. Returns the exit status: 0 if every host succeeded, 3 if no
 * host could be reached at all, 1 otherwise.
 */
int fleet_main(const struct fleet_options *o, char *const args[], enum json_mode json,
               const struct output_flags *flags);
