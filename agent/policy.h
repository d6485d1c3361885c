/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <net/if.h>

/*
 * A parsed isolation policy (killswitch.policy(5)). Pure data: no I/O besides
 * reading the file, no kernel. The parser collects every problem it finds as
 * "FILE:LINE: message" diagnostics instead of stopping at the first one.
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

struct ks_gateway {
        char *name;
        unsigned line;                 /* line of the [Gateway NAME] header */
        struct ks_prefix *addrs;
        size_t n_addrs;
        struct ks_portrange *ports;    /* n_ports == 0: all traffic */
        size_t n_ports;
};

struct ks_policy {
        char *name;                    /* file name without ".policy" */
        char *path;                    /* file the policy came from */
        char *description;             /* may be NULL */
        char (*uplinks)[IFNAMSIZ];     /* NUL-terminated, at most 15 chars */
        size_t n_uplinks;
        struct ks_gateway *gateways;
        size_t n_gateways;
};

/* Problems found while parsing, each "FILE:LINE: message" (or "FILE: message"). */
struct ks_diags {
        char **msgs;
        size_t n;
};

void diags_clear(struct ks_diags *d);
int diags_add(struct ks_diags *d, const char *file, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

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

struct ks_policy *policy_free(struct ks_policy *p);
