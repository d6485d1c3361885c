/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <net/if.h>

#include "ini.h"   /* struct ks_diags */

/*
 * A parsed isolation policy (killswitch.policy(5)). Pure data: no I/O besides
 * reading the file, no kernel. The parser collects every problem it finds as
 * "FILE:LINE: message" diagnostics instead of stopping at the first one.
 *
 * Host names in Address= are not resolved by the parser (that would be I/O):
 * a parsed policy lists them in ks_gateway.hostnames, unresolved, and the
 * compiler refuses it until policy_resolve() has pinned their addresses. The
 * store calls policy_resolve() right after policy_parse_file(), with
 * resolve_hostname() from resolve.h; the unit tests use a fake resolver.
 */

#define POLICY_NAME_MAX 32   /* policy and gateway names */

struct ks_prefix {
        int family;          /* AF_INET or AF_INET6 */
        uint8_t addr[16];    /* network byte order; IPv4 uses the first 4 bytes */
        uint8_t len;         /* prefix length: 32/128 for a single address */
};

struct ks_portrange {
        uint8_t proto;       /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
        uint16_t low, high;  /* host byte order, low <= high */
};

/* A host name of Address=, and what policy_resolve() pinned it to. */
struct ks_hostname {
        char *name;
        unsigned line;                 /* line of its Address= */
        struct ks_prefix *addrs;       /* n_addrs == 0: not resolved yet */
        size_t n_addrs;
};

/* Name of the gateway a [Management] section becomes. */
#define POLICY_MANAGEMENT_NAME "management"

/* Direction=: who may open the connections a gateway keeps. */
enum ks_direction {
        KS_DIRECTION_BOTH,             /* either side (default) */
        KS_DIRECTION_OUT,              /* this side: the remote side only answers */
        KS_DIRECTION_IN,               /* the remote side: this side only answers */
};

struct ks_gateway {
        char *name;
        unsigned line;                 /* line of the [Gateway NAME] or [Management] header */
        struct ks_prefix *addrs;       /* numeric addresses, then the pinned ones of hostnames */
        size_t n_addrs;
        struct ks_portrange *ports;    /* n_ports == 0: all traffic */
        size_t n_ports;
        struct ks_hostname *hostnames; /* host names of Address=, in order, each once */
        size_t n_hostnames;
        bool ping;                     /* Ping=: ICMP echo with the addresses (implied without Ports=) */
        bool management;               /* the [Management] section, named "management" */
        /*
         * Version 2 (killswitch.policy(5) "MATCHING CONNECTIONS"): a gateway with Local=,
         * Direction= or Address=any is matched on its connections' conntrack tuples
         * (tracked); one without is matched on packets, the port in either role, as before.
         */
        bool tracked;
        enum ks_direction direction;   /* Direction=, default both */
        struct ks_prefix *locals;      /* Local=: our hosts, by inside address; n_locals == 0: any */
        size_t n_locals;
        unsigned address_line;         /* of the first Address= (for warnings) */
};

/*
 * A [Service NAME]: our own address and ports that stay reachable from the
 * internet, inbound only. Matched on conntrack tuples: Address= is our address
 * as the internet connects to it (before DNAT) or the inside one (after).
 */
struct ks_service {
        char *name;
        unsigned line;                 /* of the [Service NAME] header */
        struct ks_prefix *addrs;       /* Address=: numeric, then the pinned ones of hostnames */
        size_t n_addrs;
        struct ks_portrange *ports;    /* Ports=, required */
        size_t n_ports;
        struct ks_prefix *from;        /* From=: who may connect; n_from == 0: anyone */
        size_t n_from;
        struct ks_hostname *hostnames; /* host names of Address= */
        size_t n_hostnames;
        struct ks_hostname *from_hostnames;    /* host names of From= */
        size_t n_from_hostnames;
        unsigned address_line;         /* of the first Address= (for warnings) */
};

/* [Policy] Reject=: what a cut packet going out through an uplink gets. */
enum ks_reject {
        KS_REJECT_TCP,                 /* TCP reset for TCP, the rest dropped (default) */
        KS_REJECT_ALL,                 /* TCP reset for TCP, ICMP admin-prohibited for the rest */
        KS_REJECT_NONE,                /* dropped silently */
};

struct ks_policy {
        char *name;                    /* file name without ".policy" */
        char *path;                    /* file the policy came from */
        char *description;             /* may be NULL */
        char (*uplinks)[IFNAMSIZ];     /* NUL-terminated, at most 15 chars */
        size_t n_uplinks;
        unsigned *uplink_lines;        /* line of each uplink's Interface= (for warnings); may be NULL */
        struct ks_gateway *gateways;   /* in file order; [Management] among them */
        size_t n_gateways;
        struct ks_service *services;   /* [Service NAME] sections, in file order */
        size_t n_services;
        bool keep_neighbor_discovery;  /* [Uplinks] KeepNeighborDiscovery=, default yes */
        bool keep_dhcp;                /* [Uplinks] KeepDHCP=, default yes */
        bool keep_icmp_errors;         /* [Policy] KeepICMPErrors=, default yes */
        enum ks_reject reject;         /* [Policy] Reject=, default tcp */
};

/*
 * A policy name is a letter, then up to 31 of [A-Za-z0-9_-] ([A-Za-z][A-Za-z0-9_-]{0,31}):
 * it starts the names of the policy's nftables objects, and nft reads a leading digit
 * as a number. Returns 0 if valid, -EINVAL otherwise.
 */
int policy_name_valid(const char *name);

/*
 * Parse policy text. `file` is used in diagnostics only; `name` becomes p->name.
 * Returns 0 and a policy in *ret; -EINVAL if the text has problems (all listed
 * in diags, *ret untouched); -ENOMEM.
 */
int policy_parse_string(const char *text, const char *file, const char *name,
                        struct ks_policy **ret, struct ks_diags *diags);

/* Read and parse a file; the name is the basename without ".policy". -errno on I/O errors (also added to diags). */
int policy_parse_file(const char *path, struct ks_policy **ret, struct ks_diags *diags);
/* The same, and on success the text that parsed in *ret_text (the store keeps a copy of it, lastgood.h). */
int policy_parse_file_text(const char *path, struct ks_policy **ret, char **ret_text, struct ks_diags *diags);

struct ks_policy *policy_free(struct ks_policy *p);

/*
 * Resolve host name `name` into *ret (n_ret addresses, each a full-length
 * prefix: /32 or /128), malloc()ed. Returns 0, or a negative errno and, if it
 * can say more, a malloc()ed reason in *ret_error (else left NULL). -ENOMEM is
 * fatal for policy_resolve(); any other error is reported for the name.
 */
typedef int (*policy_resolver_t)(const char *name, struct ks_prefix **ret, size_t *ret_n, char **ret_error,
                                 void *userdata);

/*
 * Resolve every host name of p's Address= lines once (a name used twice is
 * asked once), and pin the result: each ks_hostname records its addresses and
 * they are added to its gateway's addrs (the compiler merges duplicates). Names
 * pinned already are left alone: a policy is never re-resolved behind the
 * admin's back. A name that does not resolve is reported in diags as
 * "FILE:LINE: Address: \"NAME\": name does not resolve (REASON)".
 * Returns 0; -EINVAL if any name did not resolve (then p is unchanged, and
 * must not be used: the compiler refuses unresolved names); -ENOMEM (drop p).
 * Pure besides what `resolver` does.
 */
int policy_resolve(struct ks_policy *p, policy_resolver_t resolver, void *userdata, struct ks_diags *diags);
