/* SPDX-License-Identifier: MIT */
/*
 * Normalised set elements: a policy's addresses and ports sorted and merged
 * into disjoint ranges (the kernel refuses overlapping intervals), then split
 * into exact entries (hash sets) and ranges (interval sets). Pure.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "compile-internal.h"

const struct family_info families[N_FAMILIES] = {
        [V4] = { AF_INET, NFPROTO_IPV4, 4, 12, 16, NFT_REG32_01, NFT_REG32_02,
                 TYPE_IPADDR, "v4", "ipv4_addr", "ip",
                 IPPROTO_ICMP, 8, 0, "icmp", "icmp", "ipv4", 67, 68 },
        [V6] = { AF_INET6, NFPROTO_IPV6, 16, 8, 24, NFT_REG_2, NFT_REG32_05,
                 TYPE_IP6ADDR, "v6", "ipv6_addr", "ip6",
                 IPPROTO_ICMPV6, 128, 129, "icmpv6", "ipv6-icmp", "ipv6", 547, 546 },
};

const char *const set_kind_suffix[N_SET_KINDS] = { [SET_EXACT] = "", [SET_RANGE] = "r" };

/* ---- Normalisation: disjoint sorted ranges ----------------------------- */

void norm_free(struct norm *n)
{
        for (size_t i = 0; i < n->n; i++) {
                for (int f = 0; f < N_FAMILIES; f++)
                        free(n->gws[i].ranges[f]);
                free(n->gws[i].ports);
        }
        free(n->gws);
        n->gws = NULL;
        n->n = 0;
}

static void prefix_to_range(const struct ks_prefix *p, struct addr_range *r)
{
        size_t len = p->family == AF_INET ? 4 : 16;

        memset(r, 0, sizeof(*r));
        for (size_t i = 0; i < len; i++) {
                unsigned bits = p->len > i * 8 ? p->len - i * 8 : 0;
                uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));

                r->lo[i] = p->addr[i] & mask;
                r->hi[i] = r->lo[i] | (uint8_t)~mask;
        }
}

static int range_cmp(const void *a, const void *b)
{
        /* IPv4 ranges keep zeros after byte 4, so 16 bytes compare both families. */
        return memcmp(((const struct addr_range *)a)->lo, ((const struct addr_range *)b)->lo, 16);
}

/* out = a + 1; false if a is the last address of the family. */
bool addr_next(const uint8_t *a, size_t len, uint8_t *out)
{
        memcpy(out, a, 16);
        for (size_t i = len; i > 0; i--)
                if (++out[i - 1] != 0)
                        return true;
        return false;
}

/* Sort, then merge overlapping and adjacent ranges. Returns the new count. */
static size_t merge_ranges(struct addr_range *v, size_t n, size_t len)
{
        uint8_t next[16];
        size_t out = 0;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), range_cmp);
        for (size_t i = 1; i < n; i++) {
                struct addr_range *cur = &v[out];
                bool touches = !addr_next(cur->hi, len, next) || memcmp(v[i].lo, next, 16) <= 0;

                if (!touches) {
                        v[++out] = v[i];
                        continue;
                }
                if (memcmp(v[i].hi, cur->hi, 16) > 0)
                        memcpy(cur->hi, v[i].hi, 16);
        }
        return out + 1;
}

static int port_cmp(const void *a, const void *b)
{
        const struct ks_portrange *x = a, *y = b;

        if (x->proto != y->proto)
                return x->proto < y->proto ? -1 : 1;
        return x->low < y->low ? -1 : x->low > y->low;
}

static size_t merge_ports(struct ks_portrange *v, size_t n)
{
        size_t out = 0;

        if (n == 0)
                return 0;
        qsort(v, n, sizeof(*v), port_cmp);
        for (size_t i = 1; i < n; i++) {
                struct ks_portrange *cur = &v[out];

                if (v[i].proto != cur->proto || (uint32_t)v[i].low > (uint32_t)cur->high + 1) {
                        v[++out] = v[i];
                        continue;
                }
                if (v[i].high > cur->high)
                        cur->high = v[i].high;
        }
        return out + 1;
}

/* One address (IPv4 ranges keep zeros after byte 4, so 16 bytes compare both families). */
bool range_single(const struct addr_range *r)
{
        return memcmp(r->lo, r->hi, 16) == 0;
}

/* The number of port columns of the gateway's entries: its port ranges, or one without Ports=. */
static size_t gw_port_cols(const struct gw_norm *gn)
{
        return gn->n_ports > 0 ? gn->n_ports : 1;
}

/* Entry (address range a, port range p) of family f: one address and, with Ports=, one port. */
enum set_kind entry_kind(const struct gw_norm *gn, enum family f, size_t a, size_t p)
{
        if (!range_single(&gn->ranges[f][a]))
                return SET_RANGE;
        if (gn->n_ports > 0 && gn->ports[p].low != gn->ports[p].high)
                return SET_RANGE;
        return SET_EXACT;
}

/* Entries of family f that go into the set of this kind (0: the set does not exist). */
size_t gw_entries(const struct gw_norm *gn, enum family f, enum set_kind kind)
{
        size_t n = 0;

        for (size_t a = 0; a < gn->n_ranges[f]; a++)
                for (size_t p = 0; p < gw_port_cols(gn); p++)
                        n += entry_kind(gn, f, a, p) == kind;
        return n;
}

static int norm_gateway(const struct ks_gateway *g, struct gw_norm *out)
{
        for (size_t i = 0; i < g->n_addrs; i++) {
                enum family f = g->addrs[i].family == AF_INET ? V4 : V6;

                if (!out->ranges[f]) {
                        out->ranges[f] = calloc(g->n_addrs, sizeof(struct addr_range));
                        if (!out->ranges[f])
                                return -ENOMEM;
                }
                prefix_to_range(&g->addrs[i], &out->ranges[f][out->n_ranges[f]++]);
        }
        for (int f = 0; f < N_FAMILIES; f++)
                out->n_ranges[f] = merge_ranges(out->ranges[f], out->n_ranges[f], families[f].addr_len);
        if (g->n_ports == 0)
                return 0;
        out->ports = malloc(g->n_ports * sizeof(*out->ports));
        if (!out->ports)
                return -ENOMEM;
        memcpy(out->ports, g->ports, g->n_ports * sizeof(*out->ports));
        out->n_ports = merge_ports(out->ports, g->n_ports);
        return 0;
}

int norm_policy(const struct ks_policy *p, struct norm *ret)
{
        struct norm n = {};
        int r;

        if (p->n_gateways > 0) {
                n.gws = calloc(p->n_gateways, sizeof(*n.gws));
                if (!n.gws)
                        return -ENOMEM;
        }
        n.n = p->n_gateways;
        for (size_t i = 0; i < p->n_gateways; i++) {
                r = norm_gateway(&p->gateways[i], &n.gws[i]);
                if (r < 0) {
                        norm_free(&n);
                        return r;
                }
        }
        *ret = n;
        return 0;
}
