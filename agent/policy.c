/* SPDX-License-Identifier: MIT */
/*
 * The policy parser (killswitch.policy(5)).
 *
 * The tokenizer (ini.c) reads lines, comments, headers and KEY=VALUE; this
 * file declares the sections and keys (policy_sections, policy_keys) and
 * parses the values. Every problem is recorded as "FILE:LINE: message" and the
 * parser carries on, so that an admin fixes a file in one go.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* strndup */
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup.h"
#include "ini.h"
#include "policy.h"

#define POLICY_SUFFIX ".policy"

static bool name_char_valid(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

/* Gateway names: [A-Za-z0-9_-]{1,32}. They never start an nft word ("P/gw_NAME"). */
static int gateway_name_valid(const char *name)
{
        size_t n;

        if (!name)
                return -EINVAL;
        n = strlen(name);
        if (n < 1 || n > POLICY_NAME_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!name_char_valid(name[i]))
                        return -EINVAL;
        return 0;
}

int policy_name_valid(const char *name)
{
        /* Policy names start the names of its nftables objects ("P/inbound"): nft reads a leading digit as a number. */
        if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
                return -EINVAL;
        return gateway_name_valid(name);
}

static void hostnames_free(struct ks_hostname *h, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(h[i].name);
                free(h[i].addrs);
        }
        free(h);
}

static void service_free(struct ks_service *s)
{
        hostnames_free(s->hostnames, s->n_hostnames);
        hostnames_free(s->from_hostnames, s->n_from_hostnames);
        free(s->name);
        free(s->addrs);
        free(s->ports);
        free(s->from);
}

struct ks_policy *policy_free(struct ks_policy *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_gateways; i++) {
                struct ks_gateway *g = &p->gateways[i];

                for (size_t j = 0; j < g->n_hostnames; j++) {
                        free(g->hostnames[j].name);
                        free(g->hostnames[j].addrs);
                }
                free(g->hostnames);
                free(g->name);
                free(g->addrs);
                free(g->ports);
                free(g->locals);
        }
        free(p->gateways);
        for (size_t i = 0; i < p->n_services; i++)
                service_free(&p->services[i]);
        free(p->services);
        free(p->uplinks);
        free(p->uplink_lines);
        free(p->description);
        free(p->path);
        free(p->name);
        free(p);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_policy *, policy_free)

/* Grow an array of n elements of size sz by one; the new element is zeroed. */
static int grow(void *arrayp, size_t *n, size_t sz)
{
        void **a = arrayp;

        /* Doubles: appending stays linear for 100k addresses. */
        if (!greedy_realloc(a, *n + 1, sz))
                return -ENOMEM;
        memset((char *)*a + *n * sz, 0, sz);
        (*n)++;
        return 0;
}

struct parser {
        struct ks_policy *p;
        bool management;                /* a [Management] section was read */
};

/* ---- Sections ---------------------------------------------------------- */

/* A new gateway (or the [Management] one) named `name`, after reporting a name that is taken. */
static int gateway_add(struct ini *ini, const char *name, bool management, void **ret_object)
{
        struct parser *ps = ini->userdata;
        struct ks_policy *p = ps->p;
        struct ks_gateway *g;
        int r = 0;

        for (size_t i = 0; i < p->n_gateways && r == 0; i++) {
                const struct ks_gateway *o = &p->gateways[i];

                if (strcmp(o->name, name) != 0)
                        continue;
                if (management)
                        r = ini_error(ini, ini->line,
                                      "[Management]: the name \"" POLICY_MANAGEMENT_NAME "\" is taken by "
                                      "[Gateway " POLICY_MANAGEMENT_NAME "] (line %u); rename that gateway",
                                      o->line);
                else if (o->management)
                        r = ini_error(ini, ini->line,
                                      "[Gateway %s]: duplicate gateway name ([Management] on line %u is "
                                      "the gateway \"" POLICY_MANAGEMENT_NAME "\"); rename this gateway",
                                      name, o->line);
                else
                        r = ini_error(ini, ini->line,
                                      "[Gateway %s]: duplicate gateway name (first on line %u); "
                                      "merge the two sections or rename one",
                                      name, o->line);
                if (r == 0)
                        r = 1;
        }
        if (r < 0)
                return r;
        r = grow(&p->gateways, &p->n_gateways, sizeof(*p->gateways));
        if (r < 0)
                return r;
        g = &p->gateways[p->n_gateways - 1];
        g->line = ini->line;
        g->management = management;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        *ret_object = g;
        return 0;
}

static int section_gateway(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *ps = ini->userdata;

        if (gateway_name_valid(name) < 0)
                return ini_error(ini, ini->line,
                                 "[Gateway %s]: invalid gateway name; use 1-%d of A-Z a-z 0-9 _ -",
                                 name, POLICY_NAME_MAX);
        for (size_t i = 0; i < ps->p->n_services; i++)
                if (strcmp(ps->p->services[i].name, name) == 0)
                        return ini_error(ini, ini->line, "[Gateway %s]: the name is taken by the service on line "
                                         "%u; rename one", name, ps->p->services[i].line);
        return gateway_add(ini, name, false, ret_object);
}

static int section_management(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *ps = ini->userdata;

        /* A second one was reported; its keys would make a second gateway "management". */
        if (ps->management)
                return 0;
        ps->management = true;
        return gateway_add(ini, POLICY_MANAGEMENT_NAME, true, ret_object);
}

/* A section name of a gateway or service already used: 1 after reporting it, 0 if free. */
static int service_name_taken(struct ini *ini, const char *name)
{
        struct parser *ps = ini->userdata;
        const struct ks_policy *p = ps->p;

        for (size_t i = 0; i < p->n_services; i++)
                if (strcmp(p->services[i].name, name) == 0)
                        return ini_error(ini, ini->line, "[Service %s]: duplicate service name (first on line %u); "
                                         "merge the two sections or rename one", name, p->services[i].line) ?: 1;
        for (size_t i = 0; i < p->n_gateways; i++)
                if (strcmp(p->gateways[i].name, name) == 0)
                        return ini_error(ini, ini->line, "[Service %s]: the name is taken by the gateway on line "
                                         "%u; rename one", name, p->gateways[i].line) ?: 1;
        return 0;
}

static int section_service(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *ps = ini->userdata;
        struct ks_policy *p = ps->p;
        struct ks_service *s;
        int r;

        if (gateway_name_valid(name) < 0)
                return ini_error(ini, ini->line,
                                 "[Service %s]: invalid service name; use 1-%d of A-Z a-z 0-9 _ -",
                                 name, POLICY_NAME_MAX);
        r = service_name_taken(ini, name);
        if (r < 0)
                return r;
        r = grow(&p->services, &p->n_services, sizeof(*p->services));
        if (r < 0)
                return r;
        s = &p->services[p->n_services - 1];
        s->line = ini->line;
        s->name = strdup(name);
        if (!s->name)
                return -ENOMEM;
        *ret_object = s;
        return 0;
}

/* [Policy] and [Uplinks] set keys of the policy itself. */
static int section_policy(struct ini *ini, const char *name, void **ret_object)
{
        struct parser *ps = ini->userdata;

        *ret_object = ps->p;
        return 0;
}

/* ---- Values ------------------------------------------------------------ */

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *s)
{
        const unsigned char *u = (const unsigned char *)s;

        while (*u) {
                uint32_t c;
                size_t n;

                if (*u < 0x80) {
                        u++;
                        continue;
                }
                if ((*u & 0xe0) == 0xc0) {
                        n = 1;
                        c = *u & 0x1f;
                } else if ((*u & 0xf0) == 0xe0) {
                        n = 2;
                        c = *u & 0x0f;
                } else if ((*u & 0xf8) == 0xf0) {
                        n = 3;
                        c = *u & 0x07;
                } else
                        return false;
                for (size_t i = 1; i <= n; i++) {
                        if ((u[i] & 0xc0) != 0x80)
                                return false;
                        c = c << 6 | (u[i] & 0x3f);
                }
                if ((n == 1 && c < 0x80) || (n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
                    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                        return false;
                u += n + 1;
        }
        return true;
}

static int value_description(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        char **description = data;

        /* It goes out in JSON (killswitchctl policies), which is UTF-8. */
        if (!utf8_valid(value))
                return ini_error(ini, ini->line, "%s: not valid UTF-8; save the file as UTF-8", key);
        *description = strdup(value);
        return *description ? 0 : -ENOMEM;
}

static int value_reject(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        static const struct {
                const char *name;
                enum ks_reject reject;
        } table[] = {
                { "tcp", KS_REJECT_TCP },
                { "all", KS_REJECT_ALL },
                { "none", KS_REJECT_NONE },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(value, table[i].name) == 0) {
                        *(enum ks_reject *)data = table[i].reject;
                        return 0;
                }
        return ini_error(ini, ini->line, "%s: \"%s\": expected tcp, all or none", key, value);
}

/* Linux dev_valid_name(), plus no wildcards: a set of names matches them literally. */
static const char *ifname_problem(const char *w)
{
        size_t n = strlen(w);

        if (n >= IFNAMSIZ)
                return "interface name longer than 15 characters";
        if (strcmp(w, ".") == 0 || strcmp(w, "..") == 0)
                return "\".\" and \"..\" are not interface names";
        if (strpbrk(w, "/:"))
                return "interface names cannot contain \"/\" or \":\"";
        if (strpbrk(w, "*?["))
                return "wildcards are not supported; list each interface";
        /* Linux would take these, but nft syntax (compile_text) cannot quote them. */
        for (size_t i = 0; i < n; i++)
                if (iscntrl((unsigned char)w[i]) || w[i] == '"' || w[i] == '\\')
                        return "interface names cannot contain quotes, backslashes or control characters";
        return NULL;
}

/* "wan0,wan1," -> "wan0 wan1" into buf (for the hint). */
static const char *comma_to_blank(const char *w, char *buf, size_t size)
{
        size_t n = 0;

        for (; *w && n + 1 < size; w++)
                buf[n++] = *w == ',' ? ' ' : *w;
        while (n > 0 && buf[n - 1] == ' ')
                n--;
        buf[n] = '\0';
        return buf;
}

/* Lists are separated by blanks: "wan0,wan1" is a mistake with an obvious fix. */
static int comma_error(struct ini *ini, const char *key, const char *w)
{
        char hint[256];

        return ini_error(ini, ini->line, "%s: \"%s\": a comma is not a separator here; separate the values by "
                         "blanks (%s=%s), or repeat the key", key, w, key, comma_to_blank(w, hint, sizeof(hint)));
}

static int value_interface(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_policy *p = data;
        const char *problem;
        char *w;
        int r;

        while ((w = ini_next_word(&value))) {
                bool dup = false;
                size_t n_lines;

                if (strchr(w, ',')) {
                        r = comma_error(ini, key, w);
                        if (r < 0)
                                return r;
                        continue;
                }
                problem = ifname_problem(w);
                if (problem) {
                        r = ini_error(ini, ini->line, "%s: \"%s\": %s", key, w, problem);
                        if (r < 0)
                                return r;
                        continue;
                }
                for (size_t i = 0; i < p->n_uplinks && !dup; i++)
                        dup = strcmp(p->uplinks[i], w) == 0;
                if (dup)
                        continue;
                n_lines = p->n_uplinks;
                r = grow(&p->uplink_lines, &n_lines, sizeof(*p->uplink_lines));
                if (r < 0)
                        return r;
                p->uplink_lines[n_lines - 1] = ini->line;
                r = grow(&p->uplinks, &p->n_uplinks, sizeof(*p->uplinks));
                if (r < 0)
                        return r;
                memcpy(p->uplinks[p->n_uplinks - 1], w, strlen(w) + 1);
        }
        return 0;
}

/* Parse a decimal number in [0, max] made of digits only. */
static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
        unsigned long v = 0;

        if (*s == '\0')
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(*s - '0');
                if (v > max)
                        return -ERANGE;
        }
        *ret = v;
        return 0;
}

static void prefix_mask(struct ks_prefix *pfx, uint8_t *ret_network)
{
        size_t bytes = pfx->family == AF_INET ? 4 : 16;

        for (size_t i = 0; i < bytes; i++) {
                unsigned bits = pfx->len > i * 8 ? pfx->len - i * 8 : 0;
                uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

                ret_network[i] = pfx->addr[i] & mask;
        }
}

static int address_error(struct ini *ini, const char *key, const char *w, const char *what)
{
        return ini_error(ini, ini->line, "%s: \"%s\": %s", key, w, what);
}

#define HOSTNAME_MAX 253
#define HOSTNAME_LABEL_MAX 63

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/*
 * Does w look like a numeric address, so that it must parse as one? A ':'
 * (IPv6), a last label of digits only (RFC 1123 2.1, RFC 3696 2: a top-level
 * domain is never all-numeric; "300.1.2.3", "192.0.2"), or a form that
 * inet_aton() (and so getaddrinfo()) would read as IPv4 ("0x7f000001").
 */
static bool looks_numeric(const char *w)
{
        struct in_addr a;
        const char *last;
        size_t n = strlen(w);

        if (strchr(w, ':') || inet_aton(w, &a) != 0)
                return true;
        if (n > 0 && w[n - 1] == '.')
                n--;
        last = w + n;
        while (last > w && last[-1] != '.')
                last--;
        if (last == w + n)
                return false;
        for (const char *c = last; c < w + n; c++)
                if (!is_digit(*c))
                        return false;
        return true;
}

/* NULL if w is an RFC 1123 host name (an optional final dot allowed), else the problem. */
static const char *hostname_problem(const char *w)
{
        size_t n = strlen(w), label = 0;

        if (n > 0 && w[n - 1] == '.')
                n--;
        if (n > HOSTNAME_MAX)
                return "host name longer than 253 characters";
        for (size_t i = 0; i < n; i++) {
                char c = w[i];

                if (c == '.') {
                        if (label == 0)
                                return "empty label in host name";
                        if (w[i - 1] == '-')
                                return "a host name label cannot end with \"-\"";
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-'))
                        return "not an IPv4 or IPv6 address, ADDRESS/PREFIXLEN or host name "
                               "(letters, digits, \"-\" and dots)";
                if (c == '-' && label == 0)
                        return "a host name label cannot start with \"-\"";
                if (++label > HOSTNAME_LABEL_MAX)
                        return "host name label longer than 63 characters";
        }
        if (label == 0)
                return "empty label in host name";
        if (w[n - 1] == '-')
                return "a host name label cannot end with \"-\"";
        return NULL;
}

static int parse_address(struct ini *ini, const char *key, char *w, struct ks_prefix *ret)
{
        struct ks_prefix pfx = {};
        uint8_t network[16];
        char *slash, buf[INET6_ADDRSTRLEN];
        unsigned long len, max;

        slash = strchr(w, '/');
        if (slash)
                *slash = '\0';
        if (inet_pton(AF_INET, w, pfx.addr) == 1)
                pfx.family = AF_INET;
        else if (inet_pton(AF_INET6, w, pfx.addr) == 1)
                pfx.family = AF_INET6;
        if (slash)
                *slash = '/';
        if (pfx.family == 0)
                return address_error(ini, key, w, "not an IPv4 or IPv6 address (or ADDRESS/PREFIXLEN)");
        max = pfx.family == AF_INET ? 32 : 128;
        len = max;
        if (slash && parse_uint(slash + 1, max, &len) < 0)
                return ini_error(ini, ini->line, "%s: \"%s\": prefix length must be 0-%lu",
                                    key, w, max);
        pfx.len = (uint8_t)len;
        prefix_mask(&pfx, network);
        if (memcmp(network, pfx.addr, max / 8) != 0) {
                inet_ntop(pfx.family, network, buf, sizeof(buf));
                return ini_error(ini, ini->line,
                                    "%s: \"%s\": host bits set after the prefix; did you mean %s/%u?",
                                    key, w, buf, pfx.len);
        }
        *ret = pfx;
        return 1;
}

/* Where the words of an address key go: numeric ones, host names (NULL: not allowed). */
struct addr_list {
        struct ks_prefix **addrs;
        size_t *n_addrs;
        struct ks_hostname **hostnames;
        size_t *n_hostnames;
        const char *any;        /* NULL: "any" allowed (all of IPv4 and IPv6), else why not */
};

/* A host name, unresolved; listed once per key list (names compare case-insensitively). */
static int add_hostname(struct ini *ini, const struct addr_list *l, const char *w)
{
        struct ks_hostname *h;
        int r;

        for (size_t i = 0; i < *l->n_hostnames; i++)
                if (strcasecmp((*l->hostnames)[i].name, w) == 0)
                        return 0;
        r = grow(l->hostnames, l->n_hostnames, sizeof(**l->hostnames));
        if (r < 0)
                return r;
        h = &(*l->hostnames)[*l->n_hostnames - 1];
        h->line = ini->line;
        h->name = strdup(w);
        return h->name ? 0 : -ENOMEM;
}

static int add_prefix(const struct addr_list *l, const struct ks_prefix *pfx)
{
        int r = grow(l->addrs, l->n_addrs, sizeof(**l->addrs));

        if (r < 0)
                return r;
        (*l->addrs)[*l->n_addrs - 1] = *pfx;
        return 0;
}

/* "any": 0.0.0.0/0 and ::/0. */
static int add_any(const struct addr_list *l)
{
        int r = add_prefix(l, &(struct ks_prefix){ .family = AF_INET });

        return r < 0 ? r : add_prefix(l, &(struct ks_prefix){ .family = AF_INET6 });
}

/* One word of an address key: "any", a host name or ADDRESS[/PREFIXLEN]. 1 if it was "any". */
static int address_word(struct ini *ini, const char *key, char *w, const struct addr_list *l)
{
        struct ks_prefix pfx;
        const char *problem;
        int r;

        if (strchr(w, ','))
                return comma_error(ini, key, w);
        if (strcmp(w, "any") == 0) {
                if (l->any)
                        return address_error(ini, key, w, l->any);
                r = add_any(l);
                return r < 0 ? r : 1;
        }
        if (!strchr(w, '/') && !looks_numeric(w)) {
                problem = hostname_problem(w);
                if (!problem && !l->hostnames)
                        problem = "host names are not supported here; write the addresses";
                return problem ? address_error(ini, key, w, problem) : add_hostname(ini, l, w);
        }
        r = parse_address(ini, key, w, &pfx);
        if (r <= 0)
                return r;
        return add_prefix(l, &pfx);
}

/* The words of an address key; returns 1 if one was "any", 0, or -ENOMEM. */
static int address_words(struct ini *ini, const char *key, char *value, const struct addr_list *l)
{
        bool any = false;
        char *w;
        int r;

        while ((w = ini_next_word(&value))) {
                r = address_word(ini, key, w, l);
                if (r < 0)
                        return r;
                any = any || r == 1;
        }
        return any;
}

static int value_address(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_gateway *g = data;
        const struct addr_list l = { &g->addrs, &g->n_addrs, &g->hostnames, &g->n_hostnames, NULL };
        int r;

        if (!g->address_line)
                g->address_line = ini->line;
        r = address_words(ini, key, value, &l);
        /* Address=any is new in version 2: such a gateway is matched on connections. */
        if (r == 1)
                g->tracked = true;
        return r < 0 ? r : 0;
}

/* Local=: our hosts by their inside addresses; any version 2 key makes the gateway connection-matched. */
static int value_local(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_gateway *g = data;
        const struct addr_list l = { &g->locals, &g->n_locals, NULL, NULL, NULL };
        int r;

        g->tracked = true;
        r = address_words(ini, key, value, &l);
        return r < 0 ? r : 0;
}

static int value_direction(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        static const struct {
                const char *name;
                enum ks_direction direction;
        } table[] = {
                { "both", KS_DIRECTION_BOTH },
                { "out", KS_DIRECTION_OUT },
                { "in", KS_DIRECTION_IN },
        };
        struct ks_gateway *g = data;

        g->tracked = true;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(value, table[i].name) == 0) {
                        g->direction = table[i].direction;
                        return 0;
                }
        return ini_error(ini, ini->line, "%s: \"%s\": expected out (this side opens the connections), in (the "
                         "remote side does) or both", key, value);
}

static int value_service_address(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_service *s = data;
        const struct addr_list l = { &s->addrs, &s->n_addrs, &s->hostnames, &s->n_hostnames,
                                     "a service needs the addresses of ours it is reached at (the public "
                                     "ones, or the inside ones a DNAT rule sends it to)" };
        int r;

        if (!s->address_line)
                s->address_line = ini->line;
        r = address_words(ini, key, value, &l);
        return r < 0 ? r : 0;
}

/* From=: who may connect; "any" (the default) is everyone. */
static int value_from(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_service *s = data;
        const struct addr_list l = { &s->from, &s->n_from, &s->from_hostnames, &s->n_from_hostnames, NULL };
        int r = address_words(ini, key, value, &l);

        return r < 0 ? r : 0;
}

static int port_proto(const char *name)
{
        if (strcmp(name, "tcp") == 0)
                return IPPROTO_TCP;
        if (strcmp(name, "udp") == 0)
                return IPPROTO_UDP;
        if (strcmp(name, "sctp") == 0)
                return IPPROTO_SCTP;
        return -EINVAL;
}

static int port_number(struct ini *ini, const char *w, const char *s, uint16_t *ret)
{
        unsigned long v;
        int r;

        r = parse_uint(s, 65535, &v);
        if (r == -ERANGE)
                return ini_error(ini, ini->line, "Ports: \"%s\": port out of range 0-65535", w);
        if (r < 0)
                return ini_error(ini, ini->line, "Ports: \"%s\": \"%s\" is not a port number 0-65535",
                                    w, s);
        *ret = (uint16_t)v;
        return 1;
}

static int parse_port(struct ini *ini, char *w, struct ks_portrange *ret)
{
        _cleanup_free_ char *copy = strdup(w);
        struct ks_portrange pr = {};
        char *colon, *dash;
        int proto, r;

        if (!copy)
                return -ENOMEM;
        colon = strchr(copy, ':');
        if (!colon)
                return ini_error(ini, ini->line,
                                    "Ports: \"%s\": expected PROTO:PORT or PROTO:LOW-HIGH, e.g. udp:5060", w);
        *colon = '\0';
        proto = port_proto(copy);
        if (proto < 0)
                return ini_error(ini, ini->line, "Ports: \"%s\": unknown protocol \"%s\"; use tcp, udp or sctp",
                                    w, copy);
        pr.proto = (uint8_t)proto;
        dash = strchr(colon + 1, '-');
        if (dash)
                *dash = '\0';
        r = port_number(ini, w, colon + 1, &pr.low);
        if (r <= 0)
                return r;
        pr.high = pr.low;
        if (dash) {
                r = port_number(ini, w, dash + 1, &pr.high);
                if (r <= 0)
                        return r;
        }
        if (pr.low > pr.high)
                return ini_error(ini, ini->line, "Ports: \"%s\": reversed range; did you mean %s:%u-%u?",
                                    w, copy, pr.high, pr.low);
        *ret = pr;
        return 1;
}

static int port_words(struct ini *ini, const char *key, char *value, struct ks_portrange **ports, size_t *n_ports)
{
        struct ks_portrange pr;
        char *w;
        int r;

        while ((w = ini_next_word(&value))) {
                r = strchr(w, ',') ? comma_error(ini, key, w) : parse_port(ini, w, &pr);
                if (r <= 0) {
                        if (r < 0)
                                return r;
                        continue;
                }
                r = grow(ports, n_ports, sizeof(**ports));
                if (r < 0)
                        return r;
                (*ports)[*n_ports - 1] = pr;
        }
        return 0;
}

static int value_ports(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_gateway *g = data;

        return port_words(ini, key, value, &g->ports, &g->n_ports);
}

static int value_service_ports(struct ini *ini, const char *key, int ltype, char *value, void *data)
{
        struct ks_service *s = data;

        return port_words(ini, key, value, &s->ports, &s->n_ports);
}

/* ---- Tables ------------------------------------------------------------ */

/* In the order the hints list them: "expected [Policy], [Uplinks], [Management], [Gateway NAME] or [Service NAME]". */
static const struct ini_section policy_sections[] = {
        { .name = "Policy",     .flags = INI_SECTION_ONCE,  .begin = section_policy },
        { .name = "Uplinks",    .flags = INI_SECTION_ONCE,  .begin = section_policy },
        { .name = "Management", .flags = INI_SECTION_ONCE,  .begin = section_management, .keys = "Gateway" },
        { .name = "Gateway",    .flags = INI_SECTION_NAMED, .begin = section_gateway },
        { .name = "Service",    .flags = INI_SECTION_NAMED, .begin = section_service },
        {}
};

static const struct ini_key policy_keys[] = {
        /* section      key                     parse             ltype  offset (in the section's object)               flags */
        { "Policy",     "Description",          value_description, 0, offsetof(struct ks_policy, description),              INI_KEY_ONCE },
        { "Policy",     "KeepICMPErrors",       ini_parse_bool,    0, offsetof(struct ks_policy, keep_icmp_errors),         INI_KEY_ONCE },
        { "Policy",     "Reject",               value_reject,      0, offsetof(struct ks_policy, reject),                   INI_KEY_ONCE },
        { "Uplinks",    "Interface",            value_interface,   0, 0,                                                    0 },
        { "Uplinks",    "KeepNeighborDiscovery", ini_parse_bool,   0, offsetof(struct ks_policy, keep_neighbor_discovery),  INI_KEY_ONCE },
        { "Uplinks",    "KeepDHCP",             ini_parse_bool,    0, offsetof(struct ks_policy, keep_dhcp),                INI_KEY_ONCE },
        { "Gateway",    "Address",              value_address,     0, 0,                                                    0 },
        { "Gateway",    "Ports",                value_ports,       0, 0,                                                    0 },
        { "Gateway",    "Ping",                 ini_parse_bool,    0, offsetof(struct ks_gateway, ping),                    INI_KEY_ONCE },
        { "Gateway",    "Local",                value_local,       0, 0,                                                    0 },
        { "Gateway",    "Direction",            value_direction,   0, 0,                                                    INI_KEY_ONCE },
        { "Service",    "Address",              value_service_address, 0, 0,                                                0 },
        { "Service",    "Ports",                value_service_ports, 0, 0,                                                  0 },
        { "Service",    "From",                 value_from,        0, 0,                                                    0 },
        {}
};

static int parse_finish(struct ini *ini);

static const struct ini_format policy_format = {
        .what = "a policy",
        .sections = policy_sections,
        .keys = policy_keys,
        .finish = parse_finish,
};

/* ---- Files ------------------------------------------------------------- */

/* [Management] without Ports= keeps SSH. */
static int management_default_ports(struct ks_gateway *g)
{
        int r;

        if (g->n_ports > 0)
                return 0;
        r = grow(&g->ports, &g->n_ports, sizeof(*g->ports));
        if (r < 0)
                return r;
        g->ports[0] = (struct ks_portrange) { .proto = IPPROTO_TCP, .low = 22, .high = 22 };
        return 0;
}

/*
 * Checks that need the whole file: every gateway has an address, the policy has
 * an uplink. A section whose Address= lines were all invalid has none, but that
 * was reported at those lines: "has no Address=" would point at the wrong fix.
 */
static int parse_finish(struct ini *ini)
{
        struct parser *ps = ini->userdata;
        struct ks_policy *p = ps->p;
        int r;

        for (size_t i = 0; i < p->n_gateways; i++) {
                struct ks_gateway *g = &p->gateways[i];

                if (g->management) {
                        r = management_default_ports(g);
                        if (r < 0)
                                return r;
                }
                if (g->n_addrs > 0 || g->n_hostnames > 0 || g->address_line > 0)
                        continue;
                if (g->management)
                        r = ini_error(ini, g->line,
                                      "[Management] has no Address=; add the addresses the admins "
                                      "connect from");
                else
                        r = ini_error(ini, g->line,
                                      "[Gateway %s] has no Address=; add the gateway's addresses", g->name);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_services; i++) {
                const struct ks_service *s = &p->services[i];

                r = 0;
                if (s->n_addrs == 0 && s->n_hostnames == 0 && s->address_line == 0)
                        r = ini_error(ini, s->line, "[Service %s] has no Address=; add the addresses of ours "
                                      "the internet connects to", s->name);
                if (r >= 0 && s->n_ports == 0)
                        r = ini_error(ini, s->line, "[Service %s] has no Ports=; add the ports it listens on, "
                                      "e.g. Ports=tcp:25", s->name);
                if (r < 0)
                        return r;
        }
        if (p->n_uplinks == 0)
                return ini_error(ini, 0,
                                 "no uplink: add an [Uplinks] section with Interface=NAME, "
                                 "the interfaces that lead to the internet");
        return 0;
}

int policy_parse_string(const char *text, const char *file, const char *name,
                        struct ks_policy **ret, struct ks_diags *diags)
{
        _cleanup_(policy_freep) struct ks_policy *p = NULL;
        struct parser ps = {};
        struct ini ini = INI_INIT(&policy_format, file ? file : "<policy>", diags, &ps);
        int r;

        if (!text || !ret)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->name = strdup(name ? name : "");
        p->path = strdup(ini.file);
        p->keep_neighbor_discovery = true;
        p->keep_dhcp = true;
        p->keep_icmp_errors = true;
        p->reject = KS_REJECT_TCP;
        if (!p->name || !p->path)
                return -ENOMEM;
        ps.p = p;
        r = ini_parse(&ini, text);
        if (r < 0)
                return r;
        if (ini.n_errors > 0)
                return -EINVAL;
        *ret = TAKE_PTR(p);
        return 0;
}

/* "dir/isolate.policy" -> "isolate"; NULL if the file is not named NAME.policy. */
static char *policy_name_from_path(const char *path)
{
        const char *base = strrchr(path, '/');
        size_t n, sfx = strlen(POLICY_SUFFIX);

        base = base ? base + 1 : path;
        n = strlen(base);
        if (n <= sfx || strcmp(base + n - sfx, POLICY_SUFFIX) != 0)
                return NULL;
        return strndup(base, n - sfx);
}

int policy_parse_file(const char *path, struct ks_policy **ret, struct ks_diags *diags)
{
        return policy_parse_file_text(path, ret, NULL, diags);
}

int policy_parse_file_text(const char *path, struct ks_policy **ret, char **ret_text, struct ks_diags *diags)
{
        _cleanup_free_ char *name = NULL, *text = NULL;
        int r;

        if (!path || !ret)
                return -EINVAL;
        name = policy_name_from_path(path);
        if (!name)
                return diags_add(diags, path, 0, "not a policy file: the name must end in \".policy\"") < 0 ?
                       -ENOMEM : -EINVAL;
        if (policy_name_valid(name) < 0)
                return diags_add(diags, path, 0,
                                 "invalid policy name \"%s\"; use a letter, then up to %d of "
                                 "A-Z a-z 0-9 _ -, before \".policy\"",
                                 name, POLICY_NAME_MAX - 1) < 0 ? -ENOMEM : -EINVAL;
        r = ini_read_file(path, 0, &text, diags);
        if (r < 0)
                return r;
        r = policy_parse_string(text, path, name, ret, diags);
        if (r == 0 && ret_text)
                *ret_text = TAKE_PTR(text);
        return r;
}

/* ---- Host names ---------------------------------------------------------- */

/* One distinct name and what the resolver said about it. */
struct resolved {
        const char *name;               /* borrowed from the policy */
        struct ks_prefix *addrs;
        size_t n_addrs;
        char *error;                    /* NULL: resolved */
};

static void resolved_free(struct resolved *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].addrs);
                free(v[i].error);
        }
        free(v);
}

static bool prefix_equal(const struct ks_prefix *a, const struct ks_prefix *b)
{
        return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

/* Check and deduplicate what a resolver returned, in place. -EINVAL: something is not an address. */
static int resolved_clean(struct resolved *r)
{
        size_t out = 0;

        for (size_t i = 0; i < r->n_addrs; i++) {
                struct ks_prefix *a = &r->addrs[i];
                bool dup = false;

                if ((a->family != AF_INET && a->family != AF_INET6) ||
                    a->len > (a->family == AF_INET ? 32 : 128))
                        return -EINVAL;
                if (a->family == AF_INET)
                        memset(a->addr + 4, 0, 12);
                for (size_t j = 0; j < out && !dup; j++)
                        dup = prefix_equal(&r->addrs[j], a);
                if (!dup)
                        r->addrs[out++] = *a;
        }
        r->n_addrs = out;
        return 0;
}

static int resolve_one(struct resolved *r, policy_resolver_t resolver, void *userdata)
{
        char *error = NULL;
        int k;

        k = resolver(r->name, &r->addrs, &r->n_addrs, &error, userdata);
        if (k == -ENOMEM) {
                free(error);
                return -ENOMEM;
        }
        if (k >= 0 && r->n_addrs > 0 && !r->addrs)
                k = -EINVAL;
        if (k >= 0 && r->n_addrs == 0) {
                free(error);
                error = strdup("no addresses");
        } else if (k >= 0 && resolved_clean(r) < 0) {
                free(error);
                error = strdup("the resolver returned something that is not an address");
        } else if (k < 0 && !error)
                error = strdup(strerror(-k));
        else if (k >= 0) {
                free(error);
                return 0;
        }
        if (!error)
                return -ENOMEM;
        r->error = error;
        return 0;
}

/* Append n prefixes to an array. */
static int append_prefixes(struct ks_prefix **v, size_t *n, const struct ks_prefix *add, size_t n_add)
{
        struct ks_prefix *a;

        if (n_add == 0)
                return 0;
        if (*n > SIZE_MAX / sizeof(*a) - n_add)
                return -ENOMEM;
        a = GREEDY_REALLOC(*v, *n + n_add);
        if (!a)
                return -ENOMEM;
        memcpy(a + *n, add, n_add * sizeof(*a));
        *n += n_add;
        return 0;
}

/* The host names of one key (a gateway's or a service's Address=, a service's From=) and where they pin to. */
struct name_list {
        const char *key;
        struct ks_hostname *h;
        size_t n;
        struct ks_prefix **addrs;
        size_t *n_addrs;
};

/* Every list of host names of p; *ret_n of them, malloc()ed. */
static int name_lists(struct ks_policy *p, struct name_list **ret, size_t *ret_n)
{
        struct name_list *l = calloc(p->n_gateways + 2 * p->n_services + 1, sizeof(*l));
        size_t n = 0;

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_gateways; i++) {
                struct ks_gateway *g = &p->gateways[i];

                l[n++] = (struct name_list){ "Address", g->hostnames, g->n_hostnames, &g->addrs, &g->n_addrs };
        }
        for (size_t i = 0; i < p->n_services; i++) {
                struct ks_service *s = &p->services[i];

                l[n++] = (struct name_list){ "Address", s->hostnames, s->n_hostnames, &s->addrs, &s->n_addrs };
                l[n++] = (struct name_list){ "From", s->from_hostnames, s->n_from_hostnames, &s->from, &s->n_from };
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* Ask once per distinct name that is not pinned yet. */
static int resolve_names(const struct name_list *l, size_t n_l, policy_resolver_t resolver, void *userdata,
                         struct resolved **v, size_t *n)
{
        int k = 0;

        for (size_t i = 0; k >= 0 && i < n_l; i++)
                for (size_t j = 0; k >= 0 && j < l[i].n; j++) {
                        const struct ks_hostname *h = &l[i].h[j];
                        bool seen = false;

                        if (h->n_addrs > 0)
                                continue;
                        for (size_t x = 0; x < *n && !seen; x++)
                                seen = strcasecmp((*v)[x].name, h->name) == 0;
                        if (seen)
                                continue;
                        k = grow(v, n, sizeof(**v));
                        if (k < 0)
                                break;
                        (*v)[*n - 1].name = h->name;
                        k = resolve_one(&(*v)[*n - 1], resolver, userdata);
                }
        return k;
}

/* Report each use of a name that did not resolve, at its line; returns how many, or -ENOMEM. */
static int report_unresolved(const struct ks_policy *p, const struct name_list *l, size_t n_l,
                             const struct resolved *v, size_t n, struct ks_diags *diags)
{
        int k = 0, failed = 0;

        for (size_t i = 0; k >= 0 && i < n_l; i++)
                for (size_t j = 0; k >= 0 && j < l[i].n; j++) {
                        const struct ks_hostname *h = &l[i].h[j];

                        for (size_t x = 0; x < n; x++) {
                                if (!v[x].error || strcasecmp(v[x].name, h->name) != 0)
                                        continue;
                                failed++;
                                k = diags_add(diags, p->path ? p->path : "<policy>", h->line,
                                              "%s: \"%s\": name does not resolve (%s)",
                                              l[i].key, h->name, v[x].error);
                                break;
                        }
                }
        return k < 0 ? k : failed;
}

/* Pin. Only -ENOMEM can fail here, and may leave some names pinned: the caller drops p then. */
static int pin_names(const struct name_list *l, size_t n_l, const struct resolved *v, size_t n)
{
        int k;

        for (size_t i = 0; i < n_l; i++)
                for (size_t j = 0; j < l[i].n; j++) {
                        struct ks_hostname *h = &l[i].h[j];

                        for (size_t x = 0; x < n; x++) {
                                if (h->n_addrs > 0 || strcasecmp(v[x].name, h->name) != 0)
                                        continue;
                                /* Room in the list first: a hostname's addrs say "pinned". */
                                k = append_prefixes(l[i].addrs, l[i].n_addrs, v[x].addrs, v[x].n_addrs);
                                if (k < 0)
                                        return k;
                                k = append_prefixes(&h->addrs, &h->n_addrs, v[x].addrs, v[x].n_addrs);
                                if (k < 0) {
                                        *l[i].n_addrs -= v[x].n_addrs;
                                        return k;
                                }
                                break;
                        }
                }
        return 0;
}

int policy_resolve(struct ks_policy *p, policy_resolver_t resolver, void *userdata, struct ks_diags *diags)
{
        _cleanup_free_ struct name_list *l = NULL;
        struct resolved *v = NULL;
        size_t n = 0, n_l = 0;
        int k;

        if (!p || !resolver)
                return -EINVAL;
        k = name_lists(p, &l, &n_l);
        if (k >= 0)
                k = resolve_names(l, n_l, resolver, userdata, &v, &n);
        if (k >= 0)
                k = report_unresolved(p, l, n_l, v, n, diags);
        if (k > 0)
                k = -EINVAL;
        if (k >= 0)
                k = pin_names(l, n_l, v, n);
        resolved_free(v, n);
        return k;
}
