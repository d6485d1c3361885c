/* SPDX-License-Identifier: MIT */
/*
 * The link layer of an isolation (pure, no kernel): what keeps the cut on the
 * uplinks themselves, whatever their names are now and whatever is stacked on
 * them. docs/design.md, "The uplinks are links", says why each piece is there.
 *
 * Netdev table TABLE_links holds every policy P staged, as the inet table
 * does (compile_links_table, after each rebuild): counters under the inet
 * table's names, copies of P's gateway sets, address sets P/gw_X_addr_vN, and
 *
 *   chain P/link_in   first, source-routed packets (to this host, or any):
 *                     ip option lsrr|ssrr exists, exthdr rt exists counter ... drop
 *                     meta protocol arp meta iiftype ether ether type arp accept
 *                     meta protocol arp meta iiftype != ether accept
 *                     entries kept by their ports alone (no peers: a [Service] with From=any,
 *                     a connection-matched gateway without addresses): tcp sport 443 accept
 *                     the gateways' rules, as in P/inbound, uncounted
 *                     fragments and ICMP from a gateway's addresses accept
 *                     connection-matched entries with peers: the peer's addresses . the ports
 *                     in the role their connections give them; their fragments and ICMP
 *                     the fragments after the first of the protocols of the entries kept
 *                     by their ports: ip frag-off & 0x1fff != 0 meta l4proto udp accept
 *                     the link upkeep of P/inbound (P/local_out), but "fib daddr type local":
 *                     ND, MLD, DHCP to the addresses they use                  (KeepNeighborDiscovery=, KeepDHCP=)
 *                     icmp type 3, 11-12; icmpv6 type 1-4 accept         (KeepICMPErrors=)
 *                     (out) ICMP errors quoting a packet to a port kept for anyone
 *                     iifname "U" counter name "P/dropped_in/U" drop (per uplink); counter ... drop
 *   chain P/link_out  first, what meta protocol says checked against the frame:
 *                     meta protocol ip meta oiftype ether ether type != ip counter ... drop
 *                     meta protocol ip meta oiftype != ether @nh,0,4 != 4 counter ... drop
 *                     (the same for ip6); then as P/link_in, with destinations
 *
 * After P/link_in's source-route drops and P/link_out's guards (first: they
 * drop), every rule before the drops accepts and has no other effect (no counter, limit or set update: the table
 * is uncounted), so the order decides no verdict; it decides how many rules a packet passes before the one that
 * keeps it. ARP first (neighbour resolution), then what every packet of a
 * kept flow meets, in order of cost: the port-only entries (a compare or two,
 * no lookup), the gateways (lookups); the rare packets' rules (upkeep, ICMP
 * errors by type) last, as in P/inbound (build_link_chains).
 *
 * While isolated with P (compile_links_hook, a dozen messages), the set
 * P/uplinks of inet table TABLE is refilled with the names of the cut (an
 * uplink's new name, a vlan/macvlan/ipvlan on it, the bridge or bond that took
 * it as a port), so that the inet chains cut those too, and two base chains
 * are bound to the same devices at the lowest priority:
 *
 *   chain ingress { type filter hook ingress devices = { ... } priority -2147483648; jump P/link_in }
 *   chain egress  { type filter hook egress devices = { ... } priority -2147483648; jump P/link_out }
 *
 * The netdev hooks see what the inet hooks never see: a netdev "fwd" of
 * someone else's table, frames a bridge forwards, raw AF_PACKET sends through
 * the qdisc. There is no conntrack and no reassembly at these hooks: fragments
 * are matched by address only, ICMP errors by type (the inet chains, which see
 * the same packets afterwards, still require them to be related to a flow).
 * Equal priorities run in the order of registration, newest first: replacing
 * the table puts our chains before any other at that priority again.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "cleanup.h"
#include "compile-internal.h"
#include "config.h"
#include "compile.h"


#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_ERROR_FIRST 1    /* destination unreachable .. parameter problem */
#define ICMPV6_ERROR_LAST 4
#define IPV6_NEXTHDR_FRAGMENT 44
#define IPV4_FRAG_MASK 0x3fff   /* more fragments | offset */

int compile_links_table_name(char *buf, size_t size, const char *table)
{
        int n = snprintf(buf, size, "%s" LINKS_TABLE_SUFFIX, table ? table : "");

        return !table_name_valid(table) || n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

/* reg & mask != 0, mask of len bytes (network order) */
static int emit_mask_nonzero(struct nftnl_rule *rule, const void *mask, uint32_t len)
{
        static const uint8_t zero[16];
        int k = emit_bitwise_and(rule, mask, len);

        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_NEQ, zero, len);
}

/* [meta protocol FAMILY meta l4proto P] th byte 0 (the ICMP type, or what lo/hi bound) in [lo, hi] */
static int emit_l4_byte_range(struct nftnl_rule *rule, uint32_t offset, uint8_t lo, uint8_t hi)
{
        int k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, offset, 1, NFT_REG_1);

        if (k >= 0 && lo == hi)
                return emit_cmp_u8(rule, NFT_REG_1, lo);
        if (k >= 0)
                k = emit_cmp(rule, NFT_REG_1, NFT_CMP_GTE, &lo, 1);
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_LTE, &hi, 1);
}

/* meta iiftype|oiftype ether (inbound|outbound): the device has an Ethernet header */
static int emit_ether_dev(struct nftnl_rule *rule, bool inbound, uint32_t op)
{
        uint16_t ether = ARPHRD_ETHER;
        int k = emit_meta(rule, inbound ? NFT_META_IIFTYPE : NFT_META_OIFTYPE, NFT_REG_1);

        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, op, &ether, sizeof(ether));
}

/* ether type OP PROTO: the frame's own ethertype */
static int emit_ether_type(struct nftnl_rule *rule, uint32_t op, uint16_t proto)
{
        uint16_t be = htons(proto);
        int k = emit_payload(rule, NFT_PAYLOAD_LL_HEADER, 12, sizeof(be), NFT_REG_1);

        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, op, &be, sizeof(be));
}

/*
 * ARP, on an Ethernet device only if the frame is ARP: "meta protocol arp
 * meta oiftype ether ether type arp accept". Every rule here matches by
 * meta protocol, skb->protocol, which a packet socket sets from the protocol
 * it was bound to, not from the frame: bound to ETH_P_ARP it sent IPv4 frames
 * through "meta protocol arp accept" (the audit of 2026-12-02). A device
 * without an Ethernet header (none uses ARP as an uplink) keeps the old rule.
 */
static int build_arp_rules(const struct stage *st, const char *chain, bool inbound)
{
        for (int ether = 1; ether >= 0; ether--) {
                struct nftnl_rule *rule = rule_new(st, chain);
                int k;

                if (!rule)
                        return -ENOMEM;
                k = emit_protocol(rule, ETH_P_ARP);
                if (k >= 0)
                        k = emit_ether_dev(rule, inbound, ether ? NFT_CMP_EQ : NFT_CMP_NEQ);
                if (k >= 0 && ether)
                        k = emit_ether_type(rule, NFT_CMP_EQ, ETH_P_ARP);
                if (k >= 0)
                        k = emit_verdict(rule, NF_ACCEPT, NULL);
                if (k < 0)
                        return k;
        }
        return 0;
}

/*
 * Going out, a frame whose meta protocol is not what it is gets dropped
 * before any rule trusts it: the IPv4 and IPv6 rules read the network header
 * as meta protocol says, the next hop reads the frame by its ethertype (an
 * Ethernet device) or by the IP version (one without a link-layer header: a
 * tun device's reader). Counted on P/dropped_out. Coming in the driver sets
 * meta protocol from the frame itself.
 *   meta protocol ip meta oiftype ether ether type != ip counter drop
 *   meta protocol ip meta oiftype != ether @nh,0,4 != 4 counter drop
 * and the same for ip6.
 */
static int build_label_guard(const struct stage *st, const char *chain, enum family f, bool ether,
                             const char *counter)
{
        uint16_t proto = f == V4 ? ETH_P_IP : ETH_P_IPV6;
        uint8_t version_mask = 0xf0, version = f == V4 ? 0x40 : 0x60;
        struct nftnl_rule *rule = rule_new(st, chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_family(rule, st, f);
        if (k >= 0)
                k = emit_ether_dev(rule, false, ether ? NFT_CMP_EQ : NFT_CMP_NEQ);
        if (k >= 0 && ether)
                k = emit_ether_type(rule, NFT_CMP_NEQ, proto);
        if (k >= 0 && !ether)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 0, 1, NFT_REG_1);
        if (k >= 0 && !ether)
                k = emit_bitwise_and(rule, &version_mask, sizeof(version_mask));
        if (k >= 0 && !ether)
                k = emit_cmp(rule, NFT_REG_1, NFT_CMP_NEQ, &version, sizeof(version));
        if (k >= 0)
                k = emit_counter_ref(rule, counter);
        return k < 0 ? k : emit_verdict(rule, NF_DROP, NULL);
}

static int build_label_guards(const struct stage *st, const char *chain)
{
        char counter[COMPILE_NAME_SIZE];
        int k = 0;

        stage_name(counter, st, "%s", COUNTER_DROPPED_OUT);
        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int ether = 1; k >= 0 && ether >= 0; ether--)
                        k = build_label_guard(st, chain, f, ether, counter);
        return k;
}

/*
 * A row of the inet table's link upkeep (upkeep_in/upkeep_out, compile.c), in
 * the netdev family: the same types, hop limits, ports and destinations, but
 * "fib daddr type local" left to the inet chains that follow.
 */
static int build_upkeep_row(const struct stage *st, const char *chain, const struct upkeep_rule *u)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        uint16_t ports[2] = { htons(u->sport), htons(u->dport) };
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_family(rule, st, u->family);
        if (k >= 0)
                k = emit_upkeep_dst(rule, u->dst);
        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, u->kind == UPKEEP_ND ? IPPROTO_ICMPV6 : IPPROTO_UDP);
        if (k >= 0 && u->kind == UPKEEP_ND) {
                k = emit_l4_byte_range(rule, 0, u->type_first, u->type_last);
                if (k >= 0)
                        k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 7, 1, NFT_REG_1);    /* hop limit */
                if (k >= 0)
                        k = emit_cmp_u8(rule, NFT_REG_1, u->hop_limit);
        } else if (k >= 0) {
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 0, sizeof(ports), NFT_REG_1);
                if (k >= 0)
                        k = emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, ports, sizeof(ports));
        }
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

/* [ip|ip6] icmp|icmpv6 type lo-hi */
static int emit_icmp_types(struct nftnl_rule *rule, const struct stage *st, enum family f, uint8_t lo, uint8_t hi)
{
        int k = emit_family(rule, st, f);

        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, families[f].icmp_proto);
        return k < 0 ? k : emit_l4_byte_range(rule, 0, lo, hi);
}

/* icmp type lo-hi accept: PMTU, unreachable, time exceeded (inbound from any router; kept_by_ports) */
static int build_icmp_error_rule(const struct stage *st, const char *chain, enum family f, uint8_t lo, uint8_t hi)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_icmp_types(rule, st, f, lo, hi);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

/* The link upkeep (ND, MLD, DHCP) and, inbound, the ICMP errors by type: rare packets. */
static int build_upkeep(const struct stage *st, const struct ks_policy *p, const char *chain, bool inbound)
{
        const struct upkeep_rule *rows = inbound ? upkeep_in : upkeep_out;
        size_t n = inbound ? N_UPKEEP_IN : N_UPKEEP_OUT;
        int k = 0;

        /* ND a process sends goes on to the gateways' rules, as in P/local_out. */
        for (size_t i = 0; k >= 0 && i < n; i++)
                if (upkeep_enabled(p, &rows[i]) && !rows[i].process)
                        k = build_upkeep_row(st, chain, &rows[i]);
        if (!inbound || !p->keep_icmp_errors || k < 0)
                return k;
        k = build_icmp_error_rule(st, chain, V4, ICMP_DEST_UNREACH, ICMP_DEST_UNREACH);
        if (k >= 0)
                k = build_icmp_error_rule(st, chain, V4, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB);
        return k < 0 ? k : build_icmp_error_rule(st, chain, V6, ICMPV6_ERROR_FIRST, ICMPV6_ERROR_LAST);
}

static void addr_set_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, const char *prefix,
                          const char *name, enum family f)
{
        stage_name(buf, st, "%s%s_addr_%s", prefix, name, families[f].suffix);
}

enum addr_match { ADDR_FRAGMENTS, ADDR_ICMP };

/*
 * What has no port to match from a gateway's addresses (to them, outbound):
 * fragments (no reassembly here: "ip frag-off & 0x3fff != 0", "ip6 nexthdr
 * frag") and ICMP (errors about the gateway's flows, Ping=).
 */
static int build_addr_rule(const struct stage *st, const char *chain, const char *set, enum family f,
                           bool inbound, enum addr_match what)
{
        bool fragments = what == ADDR_FRAGMENTS;
        const struct family_info *fi = &families[f];
        struct nftnl_rule *rule = rule_new(st, chain);
        uint16_t mask = htons(IPV4_FRAG_MASK);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_family(rule, st, f);
        if (k >= 0 && fragments && f == V4)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 6, 2, NFT_REG_1);
        if (k >= 0 && fragments && f == V4)
                k = emit_mask_nonzero(rule, &mask, sizeof(mask));
        if (k >= 0 && fragments && f == V6)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 6, 1, NFT_REG_1);
        if (k >= 0 && fragments && f == V6)
                k = emit_cmp_u8(rule, NFT_REG_1, IPV6_NEXTHDR_FRAGMENT);
        if (k >= 0 && what == ADDR_ICMP)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, fi->icmp_proto);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, inbound ? fi->saddr_offset : fi->daddr_offset,
                                 fi->addr_len, NFT_REG_1);
        if (k >= 0)
                k = emit_lookup(rule, NFT_REG_1, set);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

static int build_gateways(const struct stage *st, const struct ks_policy *p, const struct norm *n,
                          const char *chain, bool inbound)
{
        char set[COMPILE_NAME_SIZE];
        int k = 0;

        for (size_t i = 0; k >= 0 && i < gateways_hoisted(p); i++)
                k = build_gateway_rules(st, chain, p->gateways[i].name, &n->gws[i], inbound, GW_RULES_HEAD);
        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++) {
                const struct ks_gateway *g = &p->gateways[i];

                k = build_gateway_rules(st, chain, g->name, &n->gws[i], inbound,
                                        i < gateways_hoisted(p) ? GW_RULES_REST : GW_RULES_ALL);
                if (k >= 0 && gateway_ping_rules(g) && !g->tracked)
                        k = build_ping_rules(st, chain, g->name, &n->gws[i], inbound);
                for (int f = 0; k >= 0 && f < N_FAMILIES; f++) {
                        if (n->gws[i].n_ranges[f] == 0)
                                continue;
                        addr_set_name(set, st, COUNTER_GATEWAY_PREFIX, g->name, f);
                        k = build_addr_rule(st, chain, set, f, inbound, ADDR_FRAGMENTS);
                        if (k >= 0)
                                k = build_addr_rule(st, chain, set, f, inbound, ADDR_ICMP);
                }
        }
        return k;
}

/* reg 1, a port in network order, in [low, high]: one compare if the range is a single port */
static int emit_port_cmp(struct nftnl_rule *rule, uint16_t low, uint16_t high)
{
        uint16_t lo = htons(low), hi = htons(high);
        int k;

        if (low == high)
                return emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, &lo, sizeof(lo));
        k = emit_cmp(rule, NFT_REG_1, NFT_CMP_GTE, &lo, sizeof(lo));
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_LTE, &hi, sizeof(hi));
}

/*
 * [FAMILY ADDR @set] meta l4proto P th sport|dport LO[-HI] accept: set NULL for
 * any address (family then not checked), pr NULL for any port.
 */
static int build_port_rule(const struct stage *st, const char *chain, const char *set, enum family f,
                           bool inbound, const struct ks_portrange *pr, bool dport)
{
        const struct family_info *fi = &families[f];
        struct nftnl_rule *rule = rule_new(st, chain);
        int k = 0;

        if (!rule)
                return -ENOMEM;
        if (set)
                k = emit_family(rule, st, f);
        if (k >= 0 && set)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, inbound ? fi->saddr_offset : fi->daddr_offset,
                                 fi->addr_len, NFT_REG_1);
        if (k >= 0 && set)
                k = emit_lookup(rule, NFT_REG_1, set);
        if (k < 0 || !pr)
                return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
        k = emit_meta_eq(rule, NFT_META_L4PROTO, pr->proto);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, dport ? 2 : 0, 2, NFT_REG_1);
        if (k >= 0)
                k = emit_port_cmp(rule, pr->low, pr->high);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

/* The entry's ports in one role (each range, or any port), to set's addresses (NULL: any). */
static int build_ports_role(const struct stage *st, const char *chain, const struct conn_norm *cn,
                            const char *set, enum family f, bool inbound, bool dport)
{
        int k = 0;

        if (cn->n_ports == 0)
                return build_port_rule(st, chain, set, f, inbound, NULL, dport);
        for (size_t i = 0; k >= 0 && i < cn->n_ports; i++)
                k = build_port_rule(st, chain, set, f, inbound, &cn->ports[i], dport);
        return k;
}

/*
 * A connection-matched entry (a tracked gateway, a [Service]): the inet
 * chains match it on conntrack tuples, which do not exist here (no ct
 * expression in the netdev family), and its own address may be rewritten by
 * NAT after the inet hooks (Local=, a service named by its inside address).
 * Kept here by the peer's address (to it going out, from it coming in, if the
 * entry names peers) and its ports in the role its connections give them: the
 * destination port of connections this side opens going out and the source
 * port coming in, the other way round for connections the peer opens. A raw
 * sender gets no more than the entry's own pairs: a [Service] with From=any
 * lets out what comes from its port, not what goes to it.
 */
static int build_conn_entry(const struct stage *st, const char *chain, const struct conn_norm *cn, bool inbound)
{
        char set[COMPILE_NAME_SIZE];
        int k = 0;

        if (!cn->name)
                return 0;
        for (int opened_here = 1; k >= 0 && opened_here >= 0; opened_here--) {
                bool dport = (bool)opened_here != inbound;

                if (!(opened_here ? cn->out : cn->in))
                        continue;
                if (!cn->has[FIELD_PEER]) {
                        k = build_ports_role(st, chain, cn, NULL, V4, inbound, dport);
                        continue;
                }
                for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                        if (cn->n_ranges[FIELD_PEER][f] > 0) {
                                addr_set_name(set, st, cn->prefix, cn->name, f);
                                k = build_ports_role(st, chain, cn, set, f, inbound, dport);
                        }
        }
        /* As a gateway's: fragments and ICMP (errors of its flows, Ping=) to or from its peers. */
        for (int f = 0; k >= 0 && cn->has[FIELD_PEER] && f < N_FAMILIES; f++)
                if (cn->n_ranges[FIELD_PEER][f] > 0) {
                        addr_set_name(set, st, cn->prefix, cn->name, f);
                        k = build_addr_rule(st, chain, set, f, inbound, ADDR_FRAGMENTS);
                        if (k >= 0)
                                k = build_addr_rule(st, chain, set, f, inbound, ADDR_ICMP);
                }
        return k;
}

/*
 * An entry kept by its ports has peers anywhere: the ICMP errors of its
 * connections (path MTU of a [Service]'s answers to any client, sent by this
 * gateway) go out to anyone too. By type and by the packet they quote: its
 * protocol and the entry's port in the role the peer's packets give it
 * (IPv4 header without options, IPv6 without extension headers, as the
 * kernel's own errors quote them). The inet chains let out only the errors
 * of its connections.
 */
static int build_quoting_error_rule(const struct stage *st, const char *chain, enum family f, uint8_t lo,
                                    uint8_t hi, const struct ks_portrange *pr, bool dport)
{
        uint32_t inner = 8, proto_at = f == V4 ? 9 : 6, port_at = (f == V4 ? 20 : 40) + (dport ? 2 : 0);
        struct nftnl_rule *rule = rule_new(st, chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_icmp_types(rule, st, f, lo, hi);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, inner + proto_at, 1, NFT_REG_1);
        if (k >= 0)
                k = emit_cmp_u8(rule, NFT_REG_1, pr->proto);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, inner + port_at, 2, NFT_REG_1);
        if (k >= 0)
                k = emit_port_cmp(rule, pr->low, pr->high);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

static int build_quoting_errors(const struct stage *st, const char *chain, const struct conn_norm *cn)
{
        int k = 0;

        if (!cn->name || cn->has[FIELD_PEER] || cn->n_ports == 0)
                return 0;
        for (int opened_here = 1; k >= 0 && opened_here >= 0; opened_here--) {
                if (!(opened_here ? cn->out : cn->in))
                        continue;
                for (size_t i = 0; k >= 0 && i < cn->n_ports; i++) {
                        const struct ks_portrange *pr = &cn->ports[i];

                        k = build_quoting_error_rule(st, chain, V4, ICMP_DEST_UNREACH, ICMP_DEST_UNREACH, pr,
                                                     !opened_here);
                        if (k >= 0)
                                k = build_quoting_error_rule(st, chain, V4, ICMP_TIME_EXCEEDED,
                                                             ICMP_PARAMETERPROB, pr, !opened_here);
                        if (k >= 0)
                                k = build_quoting_error_rule(st, chain, V6, ICMPV6_ERROR_FIRST,
                                                             ICMPV6_ERROR_LAST, pr, !opened_here);
                }
        }
        return k;
}

/* The connection-matched entries that name peers (peers true), or those kept by their ports alone. */
static int build_conn_entries(const struct stage *st, const struct ks_policy *p, const struct norm *n,
                              const char *chain, bool inbound, bool peers)
{
        int k = 0;

        for (size_t i = 0; k >= 0 && i < p->n_gateways + p->n_services; i++)
                if (n->conns[i].has[FIELD_PEER] == peers)
                        k = build_conn_entry(st, chain, &n->conns[i], inbound);
        return k;
}

/*
 * The fragments after the first of a protocol that an entry kept by its
 * ports uses (a [Service] with From=any: a large DNS answer, a SIP INVITE):
 * they carry no port, and the entry has no peer address to match them by.
 *   meta protocol ip ip frag-off & 0x1fff != 0 meta l4proto udp accept
 *   meta protocol ip6 ip6 nexthdr frag @nh,336,16 & 0xfff8 != 0 meta l4proto udp accept
 * The first fragment carries the ports and passes only by the entry's port
 * rules; without it a receiver reassembles nothing, and the inet chains see
 * only whole datagrams. A raw sender gets no more than the port rules give it
 * already (any payload to anyone, from the entry's port).
 */
static int build_fragment_rule(const struct stage *st, const char *chain, enum family f, uint8_t proto)
{
        uint16_t offset4 = htons(0x1fff), offset6 = htons(0xfff8);
        struct nftnl_rule *rule = rule_new(st, chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_family(rule, st, f);
        if (k >= 0 && f == V4)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 6, 2, NFT_REG_1);
        if (k >= 0 && f == V4)
                k = emit_mask_nonzero(rule, &offset4, sizeof(offset4));
        if (k >= 0 && f == V6)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 6, 1, NFT_REG_1);
        if (k >= 0 && f == V6)
                k = emit_cmp_u8(rule, NFT_REG_1, IPV6_NEXTHDR_FRAGMENT);
        if (k >= 0 && f == V6)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 42, 2, NFT_REG_1);
        if (k >= 0 && f == V6)
                k = emit_mask_nonzero(rule, &offset6, sizeof(offset6));
        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, proto);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

static int build_port_only_fragments(const struct stage *st, const struct ks_policy *p, const struct norm *n,
                                     const char *chain)
{
        bool proto[UINT8_MAX + 1] = {};
        int k = 0;

        for (size_t i = 0; i < p->n_gateways + p->n_services; i++) {
                const struct conn_norm *cn = &n->conns[i];

                for (size_t j = 0; cn->name && !cn->has[FIELD_PEER] && j < cn->n_ports; j++)
                        proto[cn->ports[j].proto] = true;
        }
        for (int f = 0; f < N_FAMILIES; f++)
                for (size_t i = 0; k >= 0 && i <= UINT8_MAX; i++)
                        if (proto[i])
                                k = build_fragment_rule(st, chain, f, (uint8_t)i);
        return k;
}

/* Going out, the ICMP errors quoting a packet of an entry kept by its ports. */
static int build_all_quoting_errors(const struct stage *st, const struct ks_policy *p, const struct norm *n,
                                    const char *chain, bool inbound)
{
        int k = 0;

        for (size_t i = 0; k >= 0 && !inbound && p->keep_icmp_errors && i < p->n_gateways + p->n_services; i++)
                k = build_quoting_errors(st, chain, &n->conns[i]);
        return k;
}

static int build_addr_sets(const struct stage *st, const struct ks_policy *p, const struct norm *n)
{
        char name[COMPILE_NAME_SIZE];
        int k = 0;

        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++)
                for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                        if (n->gws[i].n_ranges[f] > 0) {
                                addr_set_name(name, st, COUNTER_GATEWAY_PREFIX, p->gateways[i].name, f);
                                k = build_address_set(st, name, &n->gws[i], f, false);
                        }
        for (size_t i = 0; k >= 0 && i < p->n_gateways + p->n_services; i++) {
                const struct conn_norm *cn = &n->conns[i];

                for (int f = 0; k >= 0 && cn->name && cn->has[FIELD_PEER] && f < N_FAMILIES; f++)
                        if (cn->n_ranges[FIELD_PEER][f] > 0) {
                                struct gw_norm view = {};

                                view.ranges[f] = cn->ranges[FIELD_PEER][f];
                                view.n_ranges[f] = cn->n_ranges[FIELD_PEER][f];
                                addr_set_name(name, st, cn->prefix, cn->name, f);
                                k = build_address_set(st, name, &view, f, false);
                        }
        }
        return k;
}

/* A netdev base chain bound to devs (NULL-terminated), lowest priority, policy accept. */
static int build_device_chain(struct ks_ruleset *r, const char *table, const char *name, int hook,
                              const char **devs)
{
        struct nftnl_chain *c = chain_new(r, table, name);

        if (!c)
                return -ENOMEM;
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, LINKS_PRIORITY);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
        if (nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0 ||
            nftnl_chain_set_array(c, NFTNL_CHAIN_DEVICES, devs) < 0) {
                nftnl_chain_free(c);
                return -ENOMEM;
        }
        return ruleset_push(r, OP_CHAIN, NFT_MSG_NEWCHAIN, NLM_F_CREATE, c);
}

/* [iifname|oifname "U"] counter name "C" drop */
static int build_drop_rule(const struct stage *st, const char *chain, uint32_t ifkey, const char *ifname,
                           const char *counter)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        int k = 0;

        if (!rule)
                return -ENOMEM;
        if (ifname)
                k = emit_ifname_eq(rule, ifkey, ifname);
        if (k >= 0)
                k = emit_counter_ref(rule, counter);
        return k < 0 ? k : emit_verdict(rule, NF_DROP, NULL);
}

/*
 * The rest is dropped, counted on the same counters as in the inet table
 * (P/dropped_in/U, ...; status adds both tables up): a packet dropped here
 * never reaches the inet chains.
 */
static int build_drops(const struct stage *st, const struct ks_policy *p, const char *chain, bool inbound)
{
        const char *dir = inbound ? COUNTER_DROPPED_IN : COUNTER_DROPPED_OUT;
        uint32_t ifkey = inbound ? NFT_META_IIFNAME : NFT_META_OIFNAME;
        char counter[COMPILE_NAME_SIZE];
        int k = 0;

        for (size_t i = 0; k >= 0 && i < p->n_uplinks; i++) {
                stage_name(counter, st, "%s" COMPILE_NAME_SEP "%s", dir, p->uplinks[i]);
                k = build_drop_rule(st, chain, ifkey, p->uplinks[i], counter);
        }
        stage_name(counter, st, "%s", dir);
        return k < 0 ? k : build_drop_rule(st, chain, ifkey, NULL, counter);
}

/* The netdev table's chains and rules for policy p on devs. */
/* A regular chain of the ruleset's current family (create if absent). */
static int build_regular_chain(struct ks_ruleset *r, const char *table, const char *name)
{
        return ruleset_push(r, OP_CHAIN, NFT_MSG_NEWCHAIN, NLM_F_CREATE, chain_new(r, table, name));
}

/*
 * P/link_in and P/link_out: what the device chains jump to while P is in
 * force. After the source-route drops of P/link_in and the guards of
 * P/link_out, which drop, every rule before the drops accepts, so the order decides no verdict, only how many rules a kept
 * packet passes first (the header comment): ARP,
 * the entries kept by their ports (compares), the gateways and the entries
 * with peers (lookups), then the rare packets' rules.
 */
static int build_link_chains(const struct stage *st, const struct ks_policy *p, const struct norm *n)
{
        char chain[COMPILE_NAME_SIZE];
        int k;

        for (int inbound = 1; inbound >= 0; inbound--) {
                stage_name(chain, st, "%s", inbound ? LINKS_STAGED_IN : LINKS_STAGED_OUT);
                k = build_regular_chain(st->r, st->table, chain);
                if (k >= 0 && !inbound)
                        k = build_label_guards(st, chain);
                if (k >= 0 && inbound)
                        k = build_source_route_drops(st, chain);
                if (k >= 0)
                        k = build_arp_rules(st, chain, inbound);
                if (k >= 0)
                        k = build_conn_entries(st, p, n, chain, inbound, false);
                if (k >= 0)
                        k = build_gateways(st, p, n, chain, inbound);
                if (k >= 0)
                        k = build_conn_entries(st, p, n, chain, inbound, true);
                if (k >= 0)
                        k = build_port_only_fragments(st, p, n, chain);
                if (k >= 0)
                        k = build_upkeep(st, p, chain, inbound);
                if (k >= 0)
                        k = build_all_quoting_errors(st, p, n, chain, inbound);
                if (k >= 0)
                        k = build_drops(st, p, chain, inbound);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Policy p staged in the netdev table: counters, copies of its sets, its chains; no hook. */
static int build_policy_links(struct ks_ruleset *r, const char *links_table, const struct ks_policy *p)
{
        const struct stage st = { .r = r, .table = links_table, .policy = p->name, .uncounted = true };
        struct norm norm;
        int k = norm_policy(p, &norm);

        if (k < 0)
                return k;
        k = build_counters(&st, p);
        if (k >= 0)
                k = build_sets(&st, p, &norm);
        if (k >= 0)
                k = build_addr_sets(&st, p, &norm);
        if (k >= 0)
                k = build_link_chains(&st, p, &norm);
        norm_free(&norm);
        return k;
}

/* P/uplinks of the inet table: flushed, then every name in devs. */
static int build_uplinks_refill(struct ks_ruleset *r, const char *table, const char *policy, const char **devs)
{
        const struct stage st = { .r = r, .table = table, .policy = policy };
        char name[COMPILE_NAME_SIZE], key[IFNAMSIZ];
        struct nftnl_set *flush, *s;
        int k;

        stage_name(name, &st, "uplinks");
        flush = nftnl_set_alloc();
        if (!flush)
                return -ENOMEM;
        nftnl_set_set_u32(flush, NFTNL_SET_FAMILY, NFPROTO_INET);
        if (nftnl_set_set_str(flush, NFTNL_SET_TABLE, table) < 0 || nftnl_set_set_str(flush, NFTNL_SET_NAME, name) < 0) {
                nftnl_set_free(flush);
                return -ENOMEM;
        }
        k = ruleset_push(r, OP_SET, NFT_MSG_DELSETELEM, 0, flush);
        if (k < 0)
                return k;
        s = nftnl_set_alloc();
        if (!s)
                return -ENOMEM;
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
        if (nftnl_set_set_str(s, NFTNL_SET_TABLE, table) < 0 || nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0) {
                nftnl_set_free(s);
                return -ENOMEM;
        }
        k = ruleset_push(r, OP_SET, NFT_MSG_NEWSETELEM, NLM_F_CREATE, s);
        for (size_t i = 0; k >= 0 && devs[i]; i++) {
                memset(key, 0, sizeof(key));
                memcpy(key, devs[i], strnlen(devs[i], IFNAMSIZ - 1));
                k = set_add_elem(s, key, sizeof(key), NULL, 0, false);
        }
        return k;
}

/* p's uplinks, then links not among them: NULL-terminated, pointing into p and links. */
static const char **device_list(const struct ks_policy *p, const char *const *links, size_t n)
{
        const char **devs = calloc(p->n_uplinks + n + 1, sizeof(*devs));
        size_t m = 0;

        if (!devs)
                return NULL;
        for (size_t i = 0; i < p->n_uplinks; i++)
                devs[m++] = p->uplinks[i];
        for (size_t i = 0; i < n; i++) {
                bool seen = false;

                for (size_t j = 0; j < m && !seen; j++)
                        seen = strcmp(devs[j], links[i]) == 0;
                if (!seen)
                        devs[m++] = links[i];
        }
        return devs;
}

/* jump P/link_in (resp. out) */
static int build_jump(struct ks_ruleset *r, const char *links_table, const char *chain, const char *policy,
                      bool inbound)
{
        const struct stage st = { .r = r, .table = links_table, .policy = policy };
        char target[COMPILE_NAME_SIZE];
        struct nftnl_rule *rule = rule_new(&st, chain);

        if (!rule)
                return -ENOMEM;
        stage_name(target, &st, "%s", inbound ? LINKS_STAGED_IN : LINKS_STAGED_OUT);
        return emit_verdict(rule, NFT_JUMP, target);
}

/*
 * The device chains "ingress" and "egress", created anew (registered again:
 * first among equal priorities) bound to devs and jumping to p's staged
 * chains; p NULL: removed. Correct whether they exist or not: NEWCHAIN without
 * hook creates a regular chain if absent, DELCHAIN removes it.
 */
static int build_device_hooks(struct ks_ruleset *r, const char *links_table, const struct ks_policy *p,
                              const char **devs)
{
        int k = 0;

        for (int inbound = 1; k >= 0 && inbound >= 0; inbound--) {
                const char *chain = inbound ? LINKS_CHAIN_INGRESS : LINKS_CHAIN_EGRESS;

                k = build_regular_chain(r, links_table, chain);
                if (k >= 0)
                        k = build_delchain(r, links_table, chain);
                if (k < 0 || !p || !devs[0])
                        continue;
                k = build_device_chain(r, links_table, chain, inbound ? NF_NETDEV_INGRESS : NF_NETDEV_EGRESS, devs);
                if (k >= 0)
                        k = build_jump(r, links_table, chain, p->name, inbound);
        }
        return k;
}

/* The inet P/uplinks refill and the device chains of p (NULL: none). */
static int build_hooks(struct ks_ruleset *r, const struct ks_policy *p, const char *const *links, size_t n,
                       const char *table, const char *links_table)
{
        _cleanup_free_ const char **devs = p ? device_list(p, links, n) : calloc(1, sizeof(*devs));
        int k = 0;

        if (!devs)
                return -ENOMEM;
        ruleset_set_family(r, NFPROTO_INET);
        if (p && devs[0])
                k = build_uplinks_refill(r, table, p->name, devs);
        ruleset_set_family(r, NFPROTO_NETDEV);
        return k < 0 ? k : build_device_hooks(r, links_table, p, devs);
}

/* NEWTABLE of the netdev table with flags (owner+persist, as the inet one: others cannot change it). */
static int build_owned_table(struct ks_ruleset *r, const char *links_table, uint32_t flags)
{
        struct nftnl_table *t = nftnl_table_alloc();

        if (!t)
                return -ENOMEM;
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_NETDEV);
        nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, flags);
        if (nftnl_table_set_str(t, NFTNL_TABLE_NAME, links_table) < 0) {
                nftnl_table_free(t);
                return -ENOMEM;
        }
        return ruleset_push(r, OP_TABLE, NFT_MSG_NEWTABLE, NLM_F_CREATE, t);
}

/* NEWTABLE (no flags: it may be owned), DELTABLE of the netdev table: gone, whether it existed or not. */
static int build_links_drop(struct ks_ruleset *r, const char *links_table)
{
        struct nftnl_table *t;
        int k;

        ruleset_set_family(r, NFPROTO_NETDEV);
        k = build_table(r, links_table);
        if (k < 0)
                return k;
        t = nftnl_table_alloc();
        if (!t)
                return -ENOMEM;
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_NETDEV);
        if (nftnl_table_set_str(t, NFTNL_TABLE_NAME, links_table) < 0) {
                nftnl_table_free(t);
                return -ENOMEM;
        }
        return ruleset_push(r, OP_TABLE, NFT_MSG_DELTABLE, 0, t);
}

static int check_args(const char *const *links, size_t n, const char *table, char links_table[NFT_TABLE_MAXNAMELEN])
{
        if ((n > 0 && !links) || compile_links_table_name(links_table, NFT_TABLE_MAXNAMELEN, table) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!links[i] || links[i][0] == '\0' || strlen(links[i]) >= IFNAMSIZ)
                        return -EINVAL;
        return 0;
}

int compile_links_table(const struct ks_policy *const *policies, size_t n, const struct ks_policy *active,
                        const char *const *links, size_t n_links, const char *table, uint32_t flags,
                        struct ks_ruleset **ret)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *r = NULL;
        char links_table[NFT_TABLE_MAXNAMELEN];
        int k;

        if (!ret || (!policies && n > 0) || (active && !names_valid(active)) ||
            check_args(links, n_links, table, links_table) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!names_valid(policies[i]))
                        return -EINVAL;
        r = ruleset_new();
        if (!r)
                return -ENOMEM;
        k = build_links_drop(r, links_table);
        if (k >= 0)
                k = build_owned_table(r, links_table, flags);
        for (size_t i = 0; k >= 0 && i < n; i++)
                k = build_policy_links(r, links_table, policies[i]);
        if (k >= 0 && active)
                k = build_hooks(r, active, links, n_links, table, links_table);
        if (k >= 0)
                k = ruleset_seal(r, VERSION);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

int compile_links_hook(const struct ks_policy *active, const char *const *links, size_t n, const char *table,
                       struct ks_ruleset **ret)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *r = NULL;
        char links_table[NFT_TABLE_MAXNAMELEN];
        int k;

        if (!ret || (active && !names_valid(active)) || check_args(links, n, table, links_table) < 0)
                return -EINVAL;
        r = ruleset_new();
        if (!r)
                return -ENOMEM;
        ruleset_set_family(r, NFPROTO_NETDEV);
        k = build_table(r, links_table);        /* no flags: it may be owned; creates it if absent */
        if (k >= 0)
                k = build_hooks(r, active, links, n, table, links_table);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}
