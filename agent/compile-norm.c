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

#include <linux/netfilter/nf_conntrack_tuple_common.h>

#include "cleanup.h"
#include "compile-internal.h"
#include "compile.h"

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
        for (size_t i = 0; i < n->n_conns; i++) {
                for (int a = 0; a < N_ADDR_FIELDS; a++)
                        for (int f = 0; f < N_FAMILIES; f++)
                                free(n->conns[i].ranges[a][f]);
                free(n->conns[i].ports);
        }
        free(n->conns);
        n->conns = NULL;
        n->n_conns = 0;
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

/* Addresses into sorted, merged ranges per family. */
static int norm_addrs(const struct ks_prefix *addrs, size_t n, struct addr_range *ranges[N_FAMILIES],
                      size_t n_ranges[N_FAMILIES])
{
        for (size_t i = 0; i < n; i++) {
                enum family f = addrs[i].family == AF_INET ? V4 : V6;

                if (!ranges[f]) {
                        ranges[f] = calloc(n, sizeof(struct addr_range));
                        if (!ranges[f])
                                return -ENOMEM;
                }
                prefix_to_range(&addrs[i], &ranges[f][n_ranges[f]++]);
        }
        for (int f = 0; f < N_FAMILIES; f++)
                n_ranges[f] = merge_ranges(ranges[f], n_ranges[f], families[f].addr_len);
        return 0;
}

static int norm_ports(const struct ks_portrange *ports, size_t n, struct ks_portrange **ret, size_t *ret_n)
{
        if (n == 0)
                return 0;
        *ret = malloc(n * sizeof(**ret));
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, ports, n * sizeof(**ret));
        *ret_n = merge_ports(*ret, n);
        return 0;
}

/* Every address of both families ("any"): such a Local= or From= restricts nothing and is left out of the key. */
static bool covers_all(const struct ks_prefix *v, size_t n)
{
        bool v4 = false, v6 = false;

        for (size_t i = 0; i < n; i++) {
                v4 = v4 || (v[i].family == AF_INET && v[i].len == 0);
                v6 = v6 || (v[i].family == AF_INET6 && v[i].len == 0);
        }
        return v4 && v6;
}

/* A tracked gateway: peer = Address=, ours = Local= (left out if none). */
static int norm_conn_gateway(const struct ks_gateway *g, struct conn_norm *out)
{
        int r;

        *out = (struct conn_norm){
                .prefix = COUNTER_GATEWAY_PREFIX, .name = g->name,
                .has = { [FIELD_PEER] = true, [FIELD_OURS] = g->n_locals > 0 && !covers_all(g->locals, g->n_locals) },
                .out = g->direction != KS_DIRECTION_IN, .in = g->direction != KS_DIRECTION_OUT,
                .ping = gateway_ping_rules(g),
        };
        r = norm_addrs(g->addrs, g->n_addrs, out->ranges[FIELD_PEER], out->n_ranges[FIELD_PEER]);
        if (r >= 0)
                r = norm_addrs(g->locals, g->n_locals, out->ranges[FIELD_OURS], out->n_ranges[FIELD_OURS]);
        return r < 0 ? r : norm_ports(g->ports, g->n_ports, &out->ports, &out->n_ports);
}

/* A service: peer = From= (left out if anyone), ours = Address=; inbound only. */
static int norm_conn_service(const struct ks_service *s, struct conn_norm *out)
{
        int r;

        *out = (struct conn_norm){
                .prefix = COUNTER_SERVICE_PREFIX, .name = s->name,
                .has = { [FIELD_PEER] = s->n_from > 0 && !covers_all(s->from, s->n_from), [FIELD_OURS] = true },
                .in = true, .service = true,
        };
        r = norm_addrs(s->from, s->n_from, out->ranges[FIELD_PEER], out->n_ranges[FIELD_PEER]);
        if (r >= 0)
                r = norm_addrs(s->addrs, s->n_addrs, out->ranges[FIELD_OURS], out->n_ranges[FIELD_OURS]);
        return r < 0 ? r : norm_ports(s->ports, s->n_ports, &out->ports, &out->n_ports);
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
        _cleanup_(norm_free) struct norm n = {};
        int r = 0;

        if (p->n_gateways > 0) {
                n.gws = calloc(p->n_gateways, sizeof(*n.gws));
                if (!n.gws)
                        return -ENOMEM;
        }
        n.n = p->n_gateways;
        if (p->n_gateways + p->n_services > 0) {
                n.conns = calloc(p->n_gateways + p->n_services, sizeof(*n.conns));
                if (!n.conns)
                        return -ENOMEM;
        }
        n.n_conns = p->n_gateways + p->n_services;
        for (size_t i = 0; r >= 0 && i < p->n_gateways; i++) {
                const struct ks_gateway *g = &p->gateways[i];

                r = g->tracked ? norm_conn_gateway(g, &n.conns[i]) : norm_gateway(g, &n.gws[i]);
        }
        for (size_t i = 0; r >= 0 && i < p->n_services; i++)
                r = norm_conn_service(&p->services[i], &n.conns[p->n_gateways + i]);
        if (r < 0)
                return r;
        *ret = TAKE_STRUCT(n);
        return 0;
}

/* ---- Connection-matched entries: the cartesian product peer x ours x ports ---- */

static size_t conn_field_count(const struct conn_norm *cn, int a, enum family f)
{
        return cn->has[a] ? cn->n_ranges[a][f] : 1;
}

/* The first element (first) or the one after e; false when there are no more. */
bool conn_elem_next(const struct conn_norm *cn, enum family f, struct conn_elem *e, bool first)
{
        size_t n_ports = cn->n_ports > 0 ? cn->n_ports : 1;

        if (!cn->name)
                return false;
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (conn_field_count(cn, a, f) == 0)
                        return false;
        if (first) {
                *e = (struct conn_elem){};
                return true;
        }
        if (++e->port < n_ports)
                return true;
        e->port = 0;
        if (++e->idx[FIELD_OURS] < conn_field_count(cn, FIELD_OURS, f))
                return true;
        e->idx[FIELD_OURS] = 0;
        return ++e->idx[FIELD_PEER] < conn_field_count(cn, FIELD_PEER, f);
}

enum set_kind conn_elem_kind(const struct conn_norm *cn, enum family f, const struct conn_elem *e)
{
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (cn->has[a] && !range_single(&cn->ranges[a][f][e->idx[a]]))
                        return SET_RANGE;
        if (cn->n_ports > 0 && cn->ports[e->port].low != cn->ports[e->port].high)
                return SET_RANGE;
        return SET_EXACT;
}

size_t conn_entries(const struct conn_norm *cn, enum family f, enum set_kind kind)
{
        struct conn_elem e;
        size_t n = 0;

        for (bool more = conn_elem_next(cn, f, &e, true); more; more = conn_elem_next(cn, f, &e, false))
                n += conn_elem_kind(cn, f, &e) == kind;
        return n;
}

size_t conn_key_fields(const struct conn_norm *cn)
{
        return (size_t)cn->has[FIELD_PEER] + cn->has[FIELD_OURS] + (cn->n_ports > 0 ? 2 : 0);
}

struct conn_norm conn_ping_view(const struct conn_norm *cn)
{
        struct conn_norm view = *cn;

        view.ports = NULL;
        view.n_ports = 0;
        view.ping = false;
        view.echo = true;
        return view;
}

/*
 * Which tuple holds each part of the key (see killswitch.policy(5), "NAT"):
 * - connections this side opens: the peer is the original destination, our
 *   host the original source (before SNAT/masquerade), the port the original
 *   destination port;
 * - connections a gateway opens: the peer is the original source, our host the
 *   reply's source (the inside host after DNAT; without DNAT the address it was
 *   sent to), the port the original destination port;
 * - connections to a service: the peer is the original source, and our address
 *   and port either the original destination (as the internet addressed it,
 *   before DNAT) or the reply's source (the inside host and port after DNAT).
 */
static const struct conn_match match_out = {
        .opened_here = true,
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, false }, [FIELD_OURS] = { IP_CT_DIR_ORIGINAL, true } },
        .port = { IP_CT_DIR_ORIGINAL, false },
};
static const struct conn_match match_in = {
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, true }, [FIELD_OURS] = { IP_CT_DIR_REPLY, true } },
        .port = { IP_CT_DIR_ORIGINAL, false },
};
static const struct conn_match match_public = {
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, true }, [FIELD_OURS] = { IP_CT_DIR_ORIGINAL, false } },
        .port = { IP_CT_DIR_ORIGINAL, false },
};
static const struct conn_match match_inside = {
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, true }, [FIELD_OURS] = { IP_CT_DIR_REPLY, true } },
        .port = { IP_CT_DIR_REPLY, true },
};

size_t conn_matches(const struct conn_norm *cn, const struct conn_match *ret[CONN_MATCHES_MAX])
{
        size_t n = 0;

        if (cn->service) {
                ret[n++] = &match_public;
                ret[n++] = &match_inside;
                return n;
        }
        if (cn->out)
                ret[n++] = &match_out;
        if (cn->in)
                ret[n++] = &match_in;
        return n;
}

/*
 * The ICMP errors of a version 1 gateway's connections (P/errors_in,
 * P/errors_out): its rules match a packet's remote address and either port,
 * so a connection is kept if its remote end (the original destination of a
 * connection this side opened, the original source of one the gateway opened)
 * is one of its addresses and either port one of its ports.
 */
static const struct conn_match error_out_dst = {
        .opened_here = true,
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, false } },
        .port = { IP_CT_DIR_ORIGINAL, false },
};
static const struct conn_match error_out_src = {
        .opened_here = true,
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, false } },
        .port = { IP_CT_DIR_ORIGINAL, true },
};
static const struct conn_match error_in_src = {
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, true } },
        .port = { IP_CT_DIR_ORIGINAL, true },
};
static const struct conn_match error_in_dst = {
        .field = { [FIELD_PEER] = { IP_CT_DIR_ORIGINAL, true } },
        .port = { IP_CT_DIR_ORIGINAL, false },
};

size_t gateway_error_matches(bool ports, const struct conn_match *ret[GATEWAY_ERROR_MATCHES_MAX])
{
        size_t n = 0;

        ret[n++] = &error_out_dst;
        if (ports)
                ret[n++] = &error_out_src;
        ret[n++] = &error_in_src;
        if (ports)
                ret[n++] = &error_in_dst;
        return n;
}
