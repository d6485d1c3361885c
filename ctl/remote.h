/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * How killswitchctl reaches another host: an OpenSSH client that runs the
 * remote killswitchctl (docs/fleet.md). Only the command lines are built here;
 * fleet.c runs them. Nothing here prints; failures are negative errno.
 */

/* [USER@]HOST[:PORT], HOST a name, an IPv4 address, [IPv6] or a bare IPv6 address. */
struct remote_host {
        char *user;   /* NULL: ssh's default */
        char *name;   /* without brackets */
        char *port;   /* NULL: ssh's default */
};

/*
 * -EINVAL unless spec is a host as above made of letters, digits and
 * "._-:[]%@", not starting with '-' (it would reach ssh as an option).
 * On success the caller owns *ret and clears it with remote_host_clear().
 */
int remote_host_parse(const char *spec, struct remote_host *ret);
void remote_host_clear(struct remote_host *h);

/* s in single quotes for a POSIX shell: it's → 'it'\''s'. NULL on ENOMEM. */
char *shell_quote(const char *s);

/*
 * The command line the remote shell runs:
 *   env 'KILLSWITCH_ORIGIN=ORIGIN' 'REMOTE[0]' ... 'ARGS[0]' ...
 * every word quoted, so that no argument is ever read as shell syntax there.
 * origin may be NULL. NULL on ENOMEM.
 */
char *remote_command(const char *origin, char *const remote[], char *const args[]);

/*
 * The ssh command that runs command on h, as an argv for posix_spawnp:
 *   SSH... -o BatchMode=yes [-o OPTION]... -o ConnectTimeout=N -T [-l USER] [-p PORT] -- HOST COMMAND
 * ssh keeps the first value it is given for an option: BatchMode cannot be
 * turned off (nobody could answer a prompt), ConnectTimeout can.
 */
int ssh_command(char *const ssh[], char *const options[], unsigned connect_timeout_sec,
                const struct remote_host *h, const char *command, char ***ret_argv);
