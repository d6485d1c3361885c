/* SPDX-License-Identifier: MIT */
/*
 * The compiled table in nft syntax, exactly as `nft list table inet T` prints
 * it (the agent's `show`, and the golden files the tests compare). Pure.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "compile-internal.h"
#include "compile.h"
#include "compile-tripwire.h"

/* ---- nft syntax, as `nft list table` prints it ------------------------- */

static const char *proto_name(uint8_t proto)
{
        switch (proto) {
        case IPPROTO_TCP:
                return "tcp";
        case IPPROTO_UDP:
                return "udp";
        case IPPROTO_SCTP:
                return "sctp";
        }
        return "?";
}

/* The prefix length if [lo, hi] is exactly one prefix, else -1. */
static int range_prefix_len(const struct addr_range *r, size_t len)
{
        int plen = 0;
        bool host = false;

        for (size_t i = 0; i < len; i++)
                for (int bit = 7; bit >= 0; bit--) {
                        bool l = r->lo[i] >> bit & 1, h = r->hi[i] >> bit & 1;

                        if (!host && l == h) {
                                plen++;
                                continue;
                        }
                        host = true;
                        if (l != 0 || h != 1)
                                return -1;
                }
        return plen;
}

static void print_range(FILE *f, const struct addr_range *r, enum family fam)
{
        const struct family_info *fi = &families[fam];
        char lo[INET6_ADDRSTRLEN], hi[INET6_ADDRSTRLEN];
        int plen = range_prefix_len(r, fi->addr_len);

        inet_ntop(fi->af, r->lo, lo, sizeof(lo));
        if (plen == (int)fi->addr_len * 8)
                fputs(lo, f);
        else if (plen >= 0)
                fprintf(f, "%s/%d", lo, plen);
        else {
                inet_ntop(fi->af, r->hi, hi, sizeof(hi));
                fprintf(f, "%s-%s", lo, hi);
        }
}

static void print_ports(FILE *f, const struct ks_portrange *pr)
{
        fprintf(f, "%s . ", proto_name(pr->proto));
        if (pr->low == pr->high)
                fprintf(f, "%u", (unsigned)pr->low);
        else
                fprintf(f, "%u-%u", (unsigned)pr->low, (unsigned)pr->high);
}

/* nft puts two IPv4 elements on a line and every other kind on a line of its own. */
static void print_delim(FILE *f, size_t i, size_t per_line)
{
        if (i == 0)
                fputs("{ ", f);
        else if (i % per_line == 0)
                fputs(",\n\t\t\t     ", f);
        else
                fputs(", ", f);
}

static void text_counter(FILE *f, const char *policy, const char *prefix, const char *name)
{
        fprintf(f, "\tcounter %s" COMPILE_NAME_SEP "%s%s {\n\t\tpackets 0 bytes 0\n\t}\n\n", policy, prefix, name);
}

static void text_uplinks(FILE *f, const struct ks_policy *p)
{
        fprintf(f, "\tset %s" COMPILE_NAME_SEP "uplinks {\n\t\ttype ifname\n", p->name);
        if (p->n_uplinks == 0) {
                fputs("\t}\n\n", f);
                return;
        }
        fputs("\t\telements = ", f);
        for (size_t i = 0; i < p->n_uplinks; i++) {
                print_delim(f, i, 1);
                fprintf(f, "\"%s\"", p->uplinks[i]);
        }
        fputs(" }\n\t}\n\n", f);
}

/* An exact address . protocol . port entry. */
struct text_entry {
        const struct addr_range *addr;
        const struct ks_portrange *port;
};

/*
 * The order in which nft lists a hash set of concatenations: each element's
 * fields unpadded (address, protocol, port in network byte order), read as one
 * number in host byte order. On a little-endian host that compares the last
 * byte first: the port's low byte, its high byte, the protocol, then the
 * address from its last byte (IPv4 ranges are zero after byte 4). Interval
 * sets and sets of one address list in address order, as sorted already.
 */
static int text_entry_cmp(const void *a, const void *b)
{
        const struct text_entry *x = a, *y = b;
        uint8_t kx[19], ky[19];

        memcpy(kx, x->addr->lo, 16);
        memcpy(ky, y->addr->lo, 16);
        kx[16] = x->port->proto;
        ky[16] = y->port->proto;
        kx[17] = (uint8_t)(x->port->low >> 8);
        ky[17] = (uint8_t)(y->port->low >> 8);
        kx[18] = (uint8_t)(x->port->low & 0xff);
        ky[18] = (uint8_t)(y->port->low & 0xff);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        for (size_t i = sizeof(kx); i > 0; i--)
                if (kx[i - 1] != ky[i - 1])
                        return kx[i - 1] < ky[i - 1] ? -1 : 1;
        return 0;
#else
        return memcmp(kx, ky, sizeof(kx));
#endif
}

static void print_entry(FILE *f, size_t i, const struct addr_range *r, const struct ks_portrange *pr,
                        enum family fam)
{
        print_delim(f, i, 1);
        print_range(f, r, fam);
        fputs(" . ", f);
        print_ports(f, pr);
}

/* The exact entries with ports, in nft's order of a hash set. */
static int text_exact_entries(FILE *f, const struct gw_norm *gn, enum family fam)
{
        _cleanup_free_ struct text_entry *v = calloc(gw_entries(gn, fam, SET_EXACT), sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t a = 0; a < gn->n_ranges[fam]; a++)
                for (size_t j = 0; j < gn->n_ports; j++)
                        if (entry_kind(gn, fam, a, j) == SET_EXACT)
                                v[n++] = (struct text_entry){ &gn->ranges[fam][a], &gn->ports[j] };
        qsort(v, n, sizeof(*v), text_entry_cmp);
        for (size_t i = 0; i < n; i++)
                print_entry(f, i, v[i].addr, v[i].port, fam);
        return 0;
}

/* The gateway's set of one kind, or with ping its address set for Ping=. */
static int text_gateway_set(FILE *f, const char *policy, const char *gw, const struct gw_norm *gn,
                            enum family fam, enum set_kind kind, bool ping)
{
        const struct family_info *fi = &families[fam];
        bool ports = gn->n_ports > 0 && !ping;
        size_t i = 0;
        int k;

        fprintf(f, "\tset %s" COMPILE_NAME_SEP COUNTER_GATEWAY_PREFIX "%s_%s%s%s {\n\t\ttype %s",
                policy, gw, ping ? "ping_" : "", fi->suffix, ping ? "" : set_kind_suffix[kind], fi->type_name);
        if (ports)
                fputs(" . inet_proto . inet_service", f);
        /* The Ping= set is a hash set when all its addresses are single ones (build_address_set). */
        fputs((ping && !addrs_all_single(gn, fam)) || (!ping && kind == SET_RANGE) ?
              "\n\t\tflags interval\n\t\telements = " : "\n\t\telements = ", f);
        if (ports && kind == SET_EXACT) {
                k = text_exact_entries(f, gn, fam);
                if (k < 0)
                        return k;
        }
        for (size_t a = 0; a < gn->n_ranges[fam] && !(ports && kind == SET_EXACT); a++) {
                if (!ports) {
                        if (!ping && entry_kind(gn, fam, a, 0) != kind)
                                continue;
                        print_delim(f, i++, fam == V4 ? 2 : 1);
                        print_range(f, &gn->ranges[fam][a], fam);
                        continue;
                }
                for (size_t j = 0; j < gn->n_ports; j++)
                        if (entry_kind(gn, fam, a, j) == kind)
                                print_entry(f, i++, &gn->ranges[fam][a], &gn->ports[j], fam);
        }
        fputs(" }\n\t}\n\n", f);
        return 0;
}

/* ---- Connection-matched entries (tracked gateways, services) ---------- */

/*
 * Element e's key as nft orders a hash set's elements for listing: the parts
 * unpadded (addresses, protocol, port in network byte order) read as one
 * host-endian number, as text_entry_cmp; the zeros after the key compare equal.
 */
struct conn_text_entry {
        uint8_t key[36];
        struct conn_elem e;
};

static int conn_text_entry_cmp(const void *a, const void *b)
{
        const struct conn_text_entry *x = a, *y = b;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        for (size_t i = sizeof(x->key); i > 0; i--)
                if (x->key[i - 1] != y->key[i - 1])
                        return x->key[i - 1] < y->key[i - 1] ? -1 : 1;
        return 0;
#else
        return memcmp(x->key, y->key, sizeof(x->key));
#endif
}

static void conn_text_key(struct conn_text_entry *t, const struct conn_norm *cn, enum family fam)
{
        size_t len = families[fam].addr_len, off = 0;

        memset(t->key, 0, sizeof(t->key));
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (cn->has[a]) {
                        memcpy(t->key + off, cn->ranges[a][fam][t->e.idx[a]].lo, len);
                        off += len;
                }
        if (cn->n_ports > 0) {
                t->key[off] = cn->ports[t->e.port].proto;
                t->key[off + 1] = (uint8_t)(cn->ports[t->e.port].low >> 8);
                t->key[off + 2] = (uint8_t)(cn->ports[t->e.port].low & 0xff);
        }
}

static void print_conn_elem(FILE *f, size_t i, const struct conn_norm *cn, enum family fam, const struct conn_elem *e)
{
        const char *sep = "";

        print_delim(f, i, conn_key_fields(cn) == 1 && fam == V4 ? 2 : 1);
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (cn->has[a]) {
                        fputs(sep, f);
                        print_range(f, &cn->ranges[a][fam][e->idx[a]], fam);
                        sep = " . ";
                }
        if (cn->n_ports > 0) {
                fputs(sep, f);
                print_ports(f, &cn->ports[e->port]);
        }
}

/* The elements of one kind: an interval set's in the order they were added, a hash set's in nft's order. */
static int text_conn_elems(FILE *f, const struct conn_norm *cn, enum family fam, enum set_kind kind)
{
        _cleanup_free_ struct conn_text_entry *v = calloc(conn_entries(cn, fam, kind), sizeof(*v));
        struct conn_elem e;
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (bool more = conn_elem_next(cn, fam, &e, true); more; more = conn_elem_next(cn, fam, &e, false))
                if (conn_elem_kind(cn, fam, &e) == kind) {
                        v[n].e = e;
                        conn_text_key(&v[n++], cn, fam);
                }
        /* nft lists a hash set of one address in address order, as added. */
        if (kind == SET_EXACT && conn_key_fields(cn) > 1)
                qsort(v, n, sizeof(*v), conn_text_entry_cmp);
        for (size_t i = 0; i < n; i++)
                print_conn_elem(f, i, cn, fam, &v[i].e);
        return 0;
}

static int text_conn_set(FILE *f, const char *policy, const struct conn_norm *cn, enum family fam,
                         enum set_kind kind)
{
        const struct family_info *fi = &families[fam];
        const char *sep = "";
        int k;

        fprintf(f, "\tset %s" COMPILE_NAME_SEP "%s%s_%s%s%s {\n\t\ttype ", policy, cn->prefix, cn->name,
                cn->echo ? "ping_" : "", fi->suffix, set_kind_suffix[kind]);
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (cn->has[a]) {
                        fprintf(f, "%s%s", sep, fi->type_name);
                        sep = " . ";
                }
        if (cn->n_ports > 0)
                fprintf(f, "%sinet_proto . inet_service", sep);
        fputs(kind == SET_RANGE ? "\n\t\tflags interval\n\t\telements = " : "\n\t\telements = ", f);
        k = text_conn_elems(f, cn, fam, kind);
        if (k < 0)
                return k;
        fputs(" }\n\t}\n\n", f);
        return 0;
}

static int text_conn_sets(FILE *f, const char *policy, const struct conn_norm *cn)
{
        const struct conn_norm echo = conn_ping_view(cn);
        int k = 0;

        for (int fam = 0; k >= 0 && fam < N_FAMILIES; fam++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                        if (conn_entries(cn, fam, kind) > 0)
                                k = text_conn_set(f, policy, cn, fam, kind);
        for (int fam = 0; k >= 0 && cn->ping && fam < N_FAMILIES; fam++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                        if (conn_entries(&echo, fam, kind) > 0)
                                k = text_conn_set(f, policy, &echo, fam, kind);
        return k;
}

static const char *ct_dir_name(uint8_t dir)
{
        return dir == IP_CT_DIR_REPLY ? "reply" : "original";
}

/* "ct direction reply ct original ip daddr": the packet's direction and the entry's peer. */
static void text_conn_head(FILE *f, const struct conn_match *m, bool inbound)
{
        fprintf(f, "\t\tct direction %s ", inbound == m->opened_here ? "reply" : "original");
}

/* errors: the rule of P/errors_in|out, protocol from the conntrack entry (nft lists "ct protocol"). */
static void text_conn_rule(FILE *f, const char *policy, const struct conn_norm *cn, enum family fam,
                           enum set_kind kind, const struct conn_match *m, bool inbound, bool errors)
{
        const struct family_info *fi = &families[fam];
        const char *sep = "";

        text_conn_head(f, m, inbound);
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (cn->has[a]) {
                        fprintf(f, "%sct %s %s %s", sep, ct_dir_name(m->field[a].dir), fi->nft_prefix,
                                m->field[a].src ? "saddr" : "daddr");
                        sep = " . ";
                }
        if (cn->n_ports > 0)
                fprintf(f, "%s%s . ct %s proto-%s", sep, errors ? "ct protocol" : "meta l4proto",
                        ct_dir_name(m->port.dir), m->port.src ? "src" : "dst");
        fprintf(f, " @%s" COMPILE_NAME_SEP "%s%s_%s%s%s", policy, cn->prefix, cn->name, cn->echo ? "ping_" : "",
                fi->suffix, set_kind_suffix[kind]);
        if (cn->echo)
                fprintf(f, " %s type %s", fi->icmp_name, inbound == m->opened_here ? "echo-reply" : "echo-request");
        fprintf(f, " counter name \"%s" COMPILE_NAME_SEP "%s%s\" accept\n", policy, cn->prefix, cn->name);
}

static void text_conn_entry_rules(FILE *f, const char *policy, const struct conn_norm *cn, bool inbound)
{
        const struct conn_match *m[CONN_MATCHES_MAX];
        size_t n_m = conn_matches(cn, m);

        for (int fam = 0; fam < N_FAMILIES; fam++)
                for (int kind = 0; kind < N_SET_KINDS; kind++) {
                        if (conn_entries(cn, fam, kind) == 0)
                                continue;
                        for (size_t i = 0; i < n_m; i++)
                                text_conn_rule(f, policy, cn, fam, kind, m[i], inbound, false);
                }
}

/* The entry's rules, then its Ping='s (conn_ping_view), as build_conn_rules. */
static void text_conn_rules(FILE *f, const char *policy, const struct conn_norm *cn, bool inbound)
{
        const struct conn_norm echo = conn_ping_view(cn);

        if (!cn->name)
                return;
        text_conn_entry_rules(f, policy, cn, inbound);
        if (cn->ping)
                text_conn_entry_rules(f, policy, &echo, inbound);
}

static void text_gateway_rules(FILE *f, const char *policy, const char *gw, const struct gw_norm *gn,
                               bool inbound, enum gw_rules which)
{
        static const char *const ports[2][2] = { { "dport", "sport" }, { "sport", "dport" } };

        for (int fam = 0; fam < N_FAMILIES; fam++)
                for (int kind = 0; kind < N_SET_KINDS; kind++) {
                        const struct family_info *fi = &families[fam];
                        const char *addr = inbound ? "saddr" : "daddr";

                        if (gw_entries(gn, fam, kind) == 0)
                                continue;
                        for (int j = 0; j < (gn->n_ports > 0 ? 2 : 1); j++) {
                                /* As build_gateway_rules: j == 0 with Ports= is the head rule. */
                                bool head = gn->n_ports > 0 && j == 0 && kind == SET_EXACT;

                                if ((which == GW_RULES_HEAD && !head) || (which == GW_RULES_REST && head))
                                        continue;
                                fprintf(f, "\t\t%s %s ", fi->nft_prefix, addr);
                                if (gn->n_ports > 0)
                                        fprintf(f, ". meta l4proto . th %s ", ports[inbound][j]);
                                fprintf(f, "@%s" COMPILE_NAME_SEP COUNTER_GATEWAY_PREFIX "%s_%s%s counter name \"%s"
                                        COMPILE_NAME_SEP COUNTER_GATEWAY_PREFIX "%s\" accept\n",
                                        policy, gw, fi->suffix, set_kind_suffix[kind], policy, gw);
                        }
                }
}

static const char *const upkeep_dst_text[] = {
        [UPKEEP_DST_ANY] = "",
        [UPKEEP_DST_BROADCAST] = "ip daddr 255.255.255.255 ",
        [UPKEEP_DST_LINK_MULTICAST] = "ip6 daddr ff02::/16 ",
        [UPKEEP_DST_LINK_LOCAL] = "ip6 daddr fe80::/10 ",
        [UPKEEP_DST_DHCP6_SERVERS] = "ip6 daddr ff02::1:2 ",
};

/* One row of upkeep_in or upkeep_out, in the order of its expressions (compile.c). */
static void text_upkeep_rule(FILE *f, const char *policy, const struct upkeep_rule *u)
{
        const char *local = u->local ? "fib daddr type local " : "";

        switch (u->kind) {
        case UPKEEP_ND:
                fprintf(f, "\t\ticmpv6 type %s ", u->types);
                if (u->process)
                        fprintf(f, "meta skuid 0-%u goto %s" COMPILE_NAME_SEP "outbound\n", UINT32_MAX, policy);
                else
                        fprintf(f, "ip6 hoplimit %u %s%saccept\n", (unsigned)u->hop_limit, upkeep_dst_text[u->dst],
                                local);
                return;
        case UPKEEP_DHCP:
                fputs("\t\t", f);
                /* Without an address nft keeps the family of the ports' rule. */
                if (u->dst == UPKEEP_DST_ANY)
                        fprintf(f, "meta nfproto %s ", families[u->family].nfproto_name);
                fprintf(f, "%sudp sport %u udp dport %u %saccept\n", upkeep_dst_text[u->dst], (unsigned)u->sport,
                        (unsigned)u->dport, local);
                return;
        }
}

static void text_upkeep_rules(FILE *f, const struct ks_policy *p, const struct upkeep_rule *rows, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (upkeep_enabled(p, &rows[i]))
                        text_upkeep_rule(f, p->name, &rows[i]);
}

static void text_related_rules(FILE *f, const struct ks_policy *p, bool inbound)
{
        for (int fam = 0; p->keep_icmp_errors && fam < N_FAMILIES; fam++)
                fprintf(f, "\t\tmeta l4proto %s ct state related jump %s" COMPILE_NAME_SEP "%s\n",
                        families[fam].icmp_l4_name, p->name, inbound ? CHAIN_ERRORS_IN : CHAIN_ERRORS_OUT);
}

/* P/errors_in, P/errors_out (compile.c, build_error_rules). */
static void text_conn_error_rules(FILE *f, const char *policy, const struct conn_norm *cn, bool inbound)
{
        const struct conn_match *m[CONN_MATCHES_MAX];
        size_t n_m = conn_matches(cn, m);

        if (!cn->name || cn->n_ports == 0)
                return;
        for (int fam = 0; fam < N_FAMILIES; fam++)
                for (int kind = 0; kind < N_SET_KINDS; kind++)
                        for (size_t i = 0; i < n_m && conn_entries(cn, fam, kind) > 0; i++)
                                text_conn_rule(f, policy, cn, fam, kind, m[i], inbound, true);
}

static void text_gateway_error_rules(FILE *f, const char *policy, const char *gw, const struct gw_norm *gn,
                                     bool inbound)
{
        const struct conn_norm view = {
                .prefix = COUNTER_GATEWAY_PREFIX, .name = gw, .has = { [FIELD_PEER] = true }, .n_ports = gn->n_ports,
        };
        const struct conn_match *m[GATEWAY_ERROR_MATCHES_MAX];
        size_t n_m = gateway_error_matches(gn->n_ports > 0, m);

        for (int fam = 0; fam < N_FAMILIES; fam++)
                for (int kind = 0; kind < N_SET_KINDS; kind++)
                        for (size_t i = 0; i < n_m && gw_entries(gn, fam, kind) > 0; i++)
                                text_conn_rule(f, policy, &view, fam, kind, m[i], inbound, true);
}

static void text_error_chains(FILE *f, const struct ks_policy *p, const struct norm *n)
{
        for (int inbound = 1; p->keep_icmp_errors && inbound >= 0; inbound--) {
                fprintf(f, "\tchain %s" COMPILE_NAME_SEP "%s {\n", p->name,
                        inbound ? CHAIN_ERRORS_IN : CHAIN_ERRORS_OUT);
                for (size_t i = 0; i < p->n_gateways; i++) {
                        if (p->gateways[i].tracked)
                                text_conn_error_rules(f, p->name, &n->conns[i], inbound);
                        else
                                text_gateway_error_rules(f, p->name, p->gateways[i].name, &n->gws[i], inbound);
                }
                for (size_t i = 0; i < p->n_services; i++)
                        text_conn_error_rules(f, p->name, &n->conns[p->n_gateways + i], inbound);
                fputs("\t}\n\n", f);
        }
}

static void text_ping_rules(FILE *f, const char *policy, const char *gw, const struct gw_norm *gn, bool inbound)
{
        for (int fam = 0; fam < N_FAMILIES; fam++) {
                const struct family_info *fi = &families[fam];

                if (gn->n_ranges[fam] == 0)
                        continue;
                for (int reply = 0; reply < 2; reply++)
                        fprintf(f, "\t\t%s %s @%s" COMPILE_NAME_SEP COUNTER_GATEWAY_PREFIX "%s_ping_%s "
                                "%s type %s counter name \"%s" COMPILE_NAME_SEP COUNTER_GATEWAY_PREFIX "%s\" accept\n",
                                fi->nft_prefix, inbound ? "saddr" : "daddr", policy, gw, fi->suffix,
                                fi->icmp_name, reply ? "echo-reply" : "echo-request", policy, gw);
        }
}

static void text_tail_rules(FILE *f, const struct ks_policy *p, bool inbound)
{
        const char *dir = inbound ? COUNTER_DROPPED_IN : COUNTER_DROPPED_OUT;
        enum ks_reject reject = inbound ? KS_REJECT_NONE : p->reject;
        const char *rest = reject == KS_REJECT_ALL ? "reject with icmpx admin-prohibited" : "drop";

        for (size_t i = 0; i <= p->n_uplinks; i++) {
                const char *u = i < p->n_uplinks ? p->uplinks[i] : NULL;

                for (int tcp = reject != KS_REJECT_NONE; tcp >= 0; tcp--) {
                        fputs("\t\t", f);
                        if (u)
                                fprintf(f, "%s \"%s\" ", inbound ? "iifname" : "oifname", u);
                        if (tcp)
                                fputs("meta l4proto tcp ", f);
                        fprintf(f, "counter name \"%s" COMPILE_NAME_SEP "%s%s%s\" %s\n", p->name, dir,
                                u ? COMPILE_NAME_SEP : "", u ? u : "", tcp ? "reject with tcp reset" : rest);
                }
        }
}

/* build_source_route_drops() */
static void text_source_route_drops(FILE *f, const char *policy)
{
        static const char *const matches[] = { "ip option lsrr exists", "ip option ssrr exists", "exthdr rt exists" };

        for (size_t i = 0; i < ELEMENTSOF(matches); i++)
                fprintf(f, "\t\t%s counter name \"%s" COMPILE_NAME_SEP COUNTER_DROPPED_IN "\" drop\n", matches[i], policy);
}

static void text_chains(FILE *f, const struct ks_policy *p, const struct norm *n)
{
        const size_t related_at = related_rules_at(p), hoisted = gateways_hoisted(p);

        for (int inbound = 1; inbound >= 0; inbound--) {
                fprintf(f, "\tchain %s" COMPILE_NAME_SEP "%s {\n", p->name, inbound ? "inbound" : "outbound");
                if (inbound)
                        text_source_route_drops(f, p->name);
                /*
                 * Services before the gateways. Every rule here accepts, so the order
                 * decides only which counter counts a packet that several entries keep;
                 * but each packet of a kept flow is evaluated against every rule before
                 * the one that keeps it. A service's rules start with `ct direction
                 * original` (in) / `reply` (out), so a connection opened from this side
                 * passes them by a compare each, one opened from outside by a lookup each,
                 * while a service's flow behind the gateways paid two set lookups per
                 * gateway and family (docs/performance.md, part 4). For the same reason
                 * the link upkeep of P/inbound (ND, MLD, DHCP: rare packets) comes last,
                 * not in front of every kept packet, and the two ICMP-error jumps only
                 * in front of the first entry that could match an error (related_rules_at).
                 */
                for (size_t i = 0; i < p->n_services; i++) {
                        if (i == related_at)
                                text_related_rules(f, p, inbound);
                        text_conn_rules(f, p->name, &n->conns[p->n_gateways + i], inbound);
                }
                for (size_t i = 0; i < hoisted; i++)
                        text_gateway_rules(f, p->name, p->gateways[i].name, &n->gws[i], inbound, GW_RULES_HEAD);
                for (size_t i = 0; i < p->n_gateways; i++) {
                        if (p->n_services + i == related_at)
                                text_related_rules(f, p, inbound);
                        text_gateway_rules(f, p->name, p->gateways[i].name, &n->gws[i], inbound,
                                           i < hoisted ? GW_RULES_REST : GW_RULES_ALL);
                        if (gateway_ping_rules(&p->gateways[i]) && !p->gateways[i].tracked)
                                text_ping_rules(f, p->name, p->gateways[i].name, &n->gws[i], inbound);
                        text_conn_rules(f, p->name, &n->conns[i], inbound);
                }
                if (related_at == p->n_services + p->n_gateways)
                        text_related_rules(f, p, inbound);
                if (inbound)
                        text_upkeep_rules(f, p, upkeep_in, ELEMENTSOF(upkeep_in));
                if (!inbound)
                        text_drop_rules(f, p->name);
                text_tail_rules(f, p, inbound);
                fputs("\t}\n\n", f);
        }
        text_error_chains(f, p, n);
        /* P/forward: a forwarded packet never has a source of this host (compile_forward). */
        fprintf(f, "\tchain %s" COMPILE_NAME_SEP CHAIN_FORWARD_OUT " {\n"
                "\t\tfib saddr type local counter name \"%s" COMPILE_NAME_SEP COUNTER_DROPPED_OUT "\" drop\n"
                "\t\tgoto %s" COMPILE_NAME_SEP "outbound\n\t}\n\n", p->name, p->name, p->name);
        fprintf(f, "\tchain %s" COMPILE_NAME_SEP CHAIN_LOCAL_OUT " {\n", p->name);
        text_upkeep_rules(f, p, upkeep_out, ELEMENTSOF(upkeep_out));
        fprintf(f, "\t\tgoto %s" COMPILE_NAME_SEP "outbound\n\t}\n\n", p->name);
        fprintf(f, "\tchain %s" COMPILE_NAME_SEP CHAIN_HOLD " {\n\t\tdrop\n\t}\n\n", p->name);
        for (size_t i = 0; i < ELEMENTSOF(base_chains); i++) {
                const struct base_chain *bc = &base_chains[i];

                /* nft names priority -150 of a filter chain "mangle", 0 "filter" (compile.h). */
                fprintf(f, "%s\tchain %s {\n"
                        "\t\ttype filter hook %s priority %s; policy accept;\n"
                        "\t\t%s @%s" COMPILE_NAME_SEP "uplinks jump %s" COMPILE_NAME_SEP "%s\n\t}\n",
                        i > 0 ? "\n" : "", bc->name, bc->name,
                        bc->hook == NF_INET_PRE_ROUTING ? "filter" : "mangle",
                        bc->ifkey == NFT_META_IIFNAME ? "iifname" : "oifname", p->name, p->name, bc->target);
        }
}

static int text_table(FILE *f, const struct ks_policy *p, const struct norm *n, const char *table)
{
        int k = 0;

        fprintf(f, "table inet %s {\n", table);
        for (size_t i = 0; i < p->n_gateways; i++)
                text_counter(f, p->name, COUNTER_GATEWAY_PREFIX, p->gateways[i].name);
        for (size_t i = 0; i < p->n_services; i++)
                text_counter(f, p->name, COUNTER_SERVICE_PREFIX, p->services[i].name);
        text_counter(f, p->name, "", COUNTER_DROPPED_IN);
        text_counter(f, p->name, "", COUNTER_DROPPED_OUT);
        for (size_t i = 0; i < p->n_uplinks; i++) {
                text_counter(f, p->name, COUNTER_DROPPED_IN COMPILE_NAME_SEP, p->uplinks[i]);
                text_counter(f, p->name, COUNTER_DROPPED_OUT COMPILE_NAME_SEP, p->uplinks[i]);
        }
        text_drop_counter(f, p->name);
        text_uplinks(f, p);
        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++) {
                for (int fam = 0; k >= 0 && fam < N_FAMILIES; fam++)
                        for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                                if (gw_entries(&n->gws[i], fam, kind) > 0)
                                        k = text_gateway_set(f, p->name, p->gateways[i].name, &n->gws[i], fam,
                                                             kind, false);
                if (k >= 0 && p->gateways[i].tracked)
                        k = text_conn_sets(f, p->name, &n->conns[i]);
                if (!gateway_ping_rules(&p->gateways[i]) || p->gateways[i].tracked)
                        continue;
                for (int fam = 0; k >= 0 && fam < N_FAMILIES; fam++)
                        if (n->gws[i].n_ranges[fam] > 0)
                                k = text_gateway_set(f, p->name, p->gateways[i].name, &n->gws[i], fam,
                                                     SET_EXACT, true);
        }
        for (size_t i = 0; k >= 0 && i < p->n_services; i++)
                k = text_conn_sets(f, p->name, &n->conns[p->n_gateways + i]);
        if (k < 0)
                return k;
        text_drop_sets(f, p->name);
        text_chains(f, p, n);
        fputs("}\n", f);
        return 0;
}

int compile_text(const struct ks_policy *p, const char *table, char **ret)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        struct norm n;
        FILE *f;
        int k;

        if (!names_valid(p) || !table_name_valid(table) || !ret)
                return -EINVAL;
        k = norm_policy(p, &n);
        if (k < 0)
                return k;
        f = open_memstream(&buf, &size);
        if (!f) {
                norm_free(&n);
                return -ENOMEM;
        }
        k = text_table(f, p, &n, table);
        norm_free(&n);
        if (k >= 0 && ferror(f))
                k = -ENOMEM;
        if (fclose(f) != 0 || k < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* A byte rate as nft prints it: divided by 1024 while it divides, up to mbytes (nft's get_rate()). */
static void text_byte_rate(FILE *f, uint64_t rate)
{
        static const char *const units[] = { "bytes", "kbytes", "mbytes" };
        size_t i = 0;

        while (rate > 0 && i + 1 < ELEMENTSOF(units) && rate % 1024 == 0) {
                rate /= 1024;
                i++;
        }
        fprintf(f, "%llu %s", (unsigned long long)rate, units[i]);
}

static void text_tripwire(FILE *f, const struct tripwire_spec *t)
{
        fputs("table inet " TRIPWIRE_TABLE " {\n\tset " TRIPWIRE_SET " {\n\t\ttype ifname\n\t\telements = ", f);
        for (size_t i = 0; i < t->n_uplinks; i++) {
                print_delim(f, i, 1);
                fprintf(f, "\"%.*s\"", IFNAMSIZ - 1, t->uplinks[i]);
        }
        /* nft names priority 0 of a filter chain "filter"; it leaves out a packet limit's burst of 5. */
        _Static_assert(TRIPWIRE_EVENTS_PER_SEC / 2 == 5, "nft prints a packet limit's burst unless it is 5");
        fputs(" }\n\t}\n\n\tchain " TRIPWIRE_CHAIN " {\n\t\ttype filter hook postrouting priority filter; "
              "policy accept;\n\t\toifname @" TRIPWIRE_SET " limit rate over ", f);
        text_byte_rate(f, t->rate);
        fputs("/second burst ", f);
        text_byte_rate(f, t->rate);
        fprintf(f, " limit rate %d/second", TRIPWIRE_EVENTS_PER_SEC);
        fprintf(f, " log group %u\n\t}\n}\n", (unsigned)t->log_group);
}

int compile_tripwire_text(const struct tripwire_spec *t, char **ret)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        if (!tripwire_spec_valid(t) || !ret)
                return -EINVAL;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        text_tripwire(f, t);
        if (ferror(f) | (fclose(f) != 0))
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}
