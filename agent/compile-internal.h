/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Shared by the compiler's files (compile.c: libnftnl objects and messages;
 * compile-norm.c: normalised set elements; compile-text.c: nft syntax). Not
 * for the rest of the agent: compile.h is the interface.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "compile.h"
#include "policy.h"

/* nft's datatype ids (nftables include/datatype.h), as the kernel stores them for nft list. */
enum {
        TYPE_IPADDR = 7,
        TYPE_IP6ADDR = 8,
        TYPE_INET_PROTOCOL = 12,
        TYPE_INET_SERVICE = 13,
        TYPE_IFNAME = 41,
        TYPE_BITS = 6,
};

enum family { V4, V6, N_FAMILIES };

struct family_info {
        int af;
        uint8_t nfproto;
        uint32_t addr_len;
        uint32_t saddr_offset, daddr_offset;
        uint32_t proto_reg, port_reg;   /* registers nft picks after the address */
        uint32_t key_type;
        const char *suffix, *type_name, *nft_prefix;
        uint8_t icmp_proto;             /* ICMP of the family, for Ping= and KeepICMPErrors= */
        uint8_t echo_request, echo_reply;
        const char *icmp_name, *icmp_l4_name, *nfproto_name;
        uint16_t dhcp_server, dhcp_client;
};

extern const struct family_info families[N_FAMILIES];

/* ICMPv6 neighbour discovery: router solicitation (133) to redirect (137), RFC 4861. */
#define ND_TYPE_FIRST 133
#define ND_TYPE_LAST 137
/* RFC 4861: every ND message is sent with hop limit 255; a router on the way would lower it. */
#define ND_HOP_LIMIT 255

/*
 * Link upkeep: the gateway's own neighbour discovery and DHCP on its uplinks,
 * never a LAN host's (docs/design.md, "Link upkeep"). One row is one rule;
 * compile.c builds its expressions, compile-text.c prints it as nft lists it.
 * P/inbound (prerouting) holds upkeep_in: only what is addressed to the
 * gateway itself (its own address, or link-scope multicast and broadcast,
 * which are never forwarded). P/local_out (output: the gateway's own packets,
 * never forwarded ones) holds upkeep_out, then goes to P/outbound.
 */
enum upkeep_kind { UPKEEP_ND, UPKEEP_DHCP };

enum upkeep_dst {
        UPKEEP_DST_ANY,
        UPKEEP_DST_BROADCAST,           /* ip daddr 255.255.255.255 */
        UPKEEP_DST_LINK_MULTICAST,      /* ip6 daddr ff02::/16 */
        UPKEEP_DST_LINK_LOCAL,          /* ip6 daddr fe80::/10 */
        UPKEEP_DST_DHCP6_SERVERS,       /* ip6 daddr ff02::1:2, All_DHCP_Relay_Agents_and_Servers */
};

struct upkeep_rule {
        enum upkeep_kind kind;          /* KeepNeighborDiscovery= or KeepDHCP= */
        enum family family;
        enum upkeep_dst dst;
        uint8_t type_first, type_last;  /* UPKEEP_ND: ICMPv6 types ... */
        const char *types;              /* ... as nft lists them */
        uint8_t hop_limit;              /* UPKEEP_ND: ip6 hoplimit (0: ND from a process, see process) */
        uint16_t sport, dport;          /* UPKEEP_DHCP: udp sport, dport */
        bool local;                     /* fib daddr type local: addressed to this host */
        bool process;                   /* ND sent by a process (meta skuid): leave to P/outbound */
};

/* MLD (RFC 3810): the listener reports that keep ND's multicast coming through snooping switches. */
#define MLD_HOP_LIMIT 1

#define N_UPKEEP_IN 6
#define N_UPKEEP_OUT 8
extern const struct upkeep_rule upkeep_in[N_UPKEEP_IN], upkeep_out[N_UPKEEP_OUT];

bool upkeep_enabled(const struct ks_policy *p, const struct upkeep_rule *u);
/* The destination match of an upkeep rule (payload loads only: any family of table). */
struct nftnl_rule;
int emit_upkeep_dst(struct nftnl_rule *rule, enum upkeep_dst dst);

/* A gateway whose Ping= needs rules of its own: with Ports=, its address sets do not cover ICMP. */
static inline bool gateway_ping_rules(const struct ks_gateway *g)
{
        return g->ping && g->n_ports > 0;
}

/*
 * Where the two ICMP-error jumps of P/inbound and P/outbound go: before the
 * first entry (services, then gateways, in chain order) without Ports=. They
 * only take packets of protocol icmp/ipv6-icmp that conntrack marks related,
 * i.e. errors; an entry with Ports= cannot match those (its keys carry the
 * protocol, tcp, udp or sctp; its echo rules the types echo-request/reply,
 * which are never related), so moving the jumps behind such entries changes
 * no verdict and no counter, and a kept flow of theirs skips two rules per
 * packet (docs/performance.md, issue 14). Returns the position among the
 * n_services + n_gateways entries; that sum: after all of them.
 */
static inline size_t related_rules_at(const struct ks_policy *p)
{
        for (size_t i = 0; i < p->n_services; i++)
                if (p->services[i].n_ports == 0)
                        return i;
        for (size_t i = 0; i < p->n_gateways; i++)
                if (p->gateways[i].n_ports == 0)
                        return p->n_services + i;
        return p->n_services + p->n_gateways;
}

/*
 * The gateways whose head rules (enum gw_rules) come right after the services,
 * before any gateway's other rules: the first ones, up to the ICMP-error jumps
 * (all have Ports=). A kept flow opened from this side, the common case, then
 * misses in one hash lookup per gateway listed before its own instead of two,
 * per family and hook (docs/performance.md, issue 14). Every rule there
 * accepts: the order decides no verdict, only which counter counts a packet
 * that several gateways keep (a head rule's first, then file order).
 */
static inline size_t gateways_hoisted(const struct ks_policy *p)
{
        size_t at = related_rules_at(p);

        return at > p->n_services ? at - p->n_services : 0;
}

/*
 * The two sets of a gateway per family: exact entries in a hash set
 * "P/gw_X_v4", prefixes and ranges in an interval set "P/gw_X_v4r".
 */
enum set_kind { SET_EXACT, SET_RANGE, N_SET_KINDS };

extern const char *const set_kind_suffix[N_SET_KINDS];

/* ---- Normalised set elements (compile-norm.c) ---- */

struct addr_range {
        uint8_t lo[16], hi[16];         /* network byte order; IPv4 in the first 4 bytes */
};

struct gw_norm {
        struct addr_range *ranges[N_FAMILIES];
        size_t n_ranges[N_FAMILIES];
        struct ks_portrange *ports;     /* sorted by (proto, low), disjoint */
        size_t n_ports;
};

/*
 * A connection-matched entry (a tracked gateway or a service), normalised:
 * its set key is "peer . ours . protocol . port", each part left out where it
 * is "any" (has[] false, or no Ports=). Matched on conntrack tuples
 * (compile-conn.c).
 */
enum conn_field { FIELD_PEER, FIELD_OURS, N_ADDR_FIELDS };

struct conn_norm {
        const char *prefix;             /* COUNTER_GATEWAY_PREFIX or COUNTER_SERVICE_PREFIX */
        const char *name;               /* NULL: not connection-matched (a gateway matched on packets) */
        bool has[N_ADDR_FIELDS];
        struct addr_range *ranges[N_ADDR_FIELDS][N_FAMILIES];
        size_t n_ranges[N_ADDR_FIELDS][N_FAMILIES];
        struct ks_portrange *ports;     /* sorted, disjoint; n_ports == 0: all traffic */
        size_t n_ports;
        bool out, in;                   /* keeps connections this side opens / the remote side opens */
        bool service;                   /* ours is matched before and after DNAT */
        bool ping;                      /* Ping= with Ports=: ICMP echo rules of its own (conn_ping_view) */
        bool echo;                      /* this is that view: sets "_ping_", rules ICMP echo */
};

struct norm {
        struct gw_norm *gws;
        size_t n;
        /* Per gateway (name NULL unless tracked), then per service. */
        struct conn_norm *conns;
        size_t n_conns;
};

/* How many elements the entry's set of this kind has in family f. */
size_t conn_entries(const struct conn_norm *cn, enum family f, enum set_kind kind);
/* Element i (in cartesian order peer, ours, port) of family f: its kind, and its parts' indexes. */
struct conn_elem {
        size_t idx[N_ADDR_FIELDS], port;
};
bool conn_elem_next(const struct conn_norm *cn, enum family f, struct conn_elem *e, bool first);
enum set_kind conn_elem_kind(const struct conn_norm *cn, enum family f, const struct conn_elem *e);
/* Number of fields of the key: 1 for a single address (an rbtree or address hash set), else a concatenation. */
size_t conn_key_fields(const struct conn_norm *cn);
/*
 * The Ping= of a tracked gateway as an entry of its own: the same peers, hosts
 * of ours and directions, no ports (its sets are keyed "peer [. ours]"); its
 * rules match ICMP echo requests in the direction of the connection's first
 * packet and echo replies in the other. Borrows cn's arrays.
 */
struct conn_norm conn_ping_view(const struct conn_norm *cn);

void norm_free(struct norm *n);
/* Sorted, merged, disjoint addresses per family and ports per protocol, for every gateway of p. */
int norm_policy(const struct ks_policy *p, struct norm *ret);
/* The address after a (network order, len bytes); false if a is the last one. */
bool addr_next(const uint8_t *a, size_t len, uint8_t *out);
bool range_single(const struct addr_range *r);
/* Whether every address entry of family f is one address (build_address_set then makes a hash set). */
bool addrs_all_single(const struct gw_norm *gn, enum family f);
enum set_kind entry_kind(const struct gw_norm *gn, enum family f, size_t a, size_t p);
/* How many elements the gateway's set of this kind has in family f. */
size_t gw_entries(const struct gw_norm *gn, enum family f, enum set_kind kind);

/* ---- Defined in compile.c, also used by compile-text.c ---- */

/* The base chains while isolated, and what they jump to. */
#define N_BASE_CHAINS 3
extern const struct base_chain {
        const char *name, *target;
        int hook;
        uint32_t ifkey;         /* NFT_META_IIFNAME or NFT_META_OIFNAME */
} base_chains[N_BASE_CHAINS];


bool names_valid(const struct ks_policy *p);

/*
 * How the rules of a connection-matched entry load each part of the key: the
 * conntrack tuple of one direction (ct original|reply ip saddr|daddr, proto-src|
 * proto-dst), and which packets it applies to: those of connections this side
 * opened (ct direction original going out, reply coming in) or the remote side.
 */
struct conn_match {
        bool opened_here;
        struct tuple_ref {
                uint8_t dir;            /* IP_CT_DIR_ORIGINAL or IP_CT_DIR_REPLY */
                bool src;               /* saddr, proto-src; else daddr, proto-dst */
        } field[N_ADDR_FIELDS], port;
};

/* The matches of an entry, in rule order; returns how many (at most CONN_MATCHES_MAX). */
#define CONN_MATCHES_MAX 2
size_t conn_matches(const struct conn_norm *cn, const struct conn_match *ret[CONN_MATCHES_MAX]);
/*
 * The matches of a version 1 gateway's connections, for the ICMP errors that
 * quote them: remote address as the original destination (opened here) or
 * source, with ports the port in either role; 4 with ports, 2 without.
 */
#define GATEWAY_ERROR_MATCHES_MAX 4
size_t gateway_error_matches(bool ports, const struct conn_match *ret[GATEWAY_ERROR_MATCHES_MAX]);

/* ---- Defined in compile.c, also used by compile-links.c (the link layer's netdev table) ---- */

struct ks_ruleset;
struct nftnl_chain;
struct nftnl_expr;
struct nftnl_rule;
struct nftnl_set;

/* What one policy's objects are built with: the table, and the "P/" of every name. */
struct stage {
        struct ks_ruleset *r;
        const char *table;
        const char *policy;
        bool uncounted;         /* no counter objects in this table: rules count nothing */
};

/* What a message of a ruleset carries. */
enum op_kind { OP_TABLE, OP_OBJ, OP_SET, OP_CHAIN, OP_RULE };

/* nft's byte order tags in a set's user data. */
enum { BYTEORDER_INVALID = 0, BYTEORDER_HOST_ENDIAN = 1, BYTEORDER_BIG_ENDIAN = 2 };

struct ks_ruleset *ruleset_new(void);
/* The family of the objects built from now on (NFPROTO_INET when new). */
void ruleset_set_family(struct ks_ruleset *r, uint32_t family);
int ruleset_push(struct ks_ruleset *r, enum op_kind kind, uint16_t type, uint16_t flags, void *obj);
void stage_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int build_table(struct ks_ruleset *r, const char *table);
struct nftnl_chain *chain_new(const struct ks_ruleset *r, const char *table, const char *name);
int build_delchain(struct ks_ruleset *r, const char *table, const char *name);
struct nftnl_set *set_new(const struct stage *st, const char *name, uint32_t flags, uint32_t key_type,
                          uint32_t key_len, uint32_t byteorder);
int set_add_elem(struct nftnl_set *s, const void *key, uint32_t len, const void *key_end, uint32_t flags,
                 bool open);
int build_sets(const struct stage *st, const struct ks_policy *p, const struct norm *n);
int build_address_set(const struct stage *st, const char *name, const struct gw_norm *gn, enum family f,
                      bool ranges_only);
struct nftnl_rule *rule_new(const struct stage *st, const char *chain);
struct nftnl_expr *rule_expr(struct nftnl_rule *rule, const char *name);
int emit_meta(struct nftnl_rule *rule, uint32_t key, uint32_t dreg);
int emit_cmp(struct nftnl_rule *rule, uint32_t sreg, uint32_t op, const void *data, uint32_t len);
int emit_cmp_u8(struct nftnl_rule *rule, uint32_t sreg, uint8_t value);
int emit_meta_eq(struct nftnl_rule *rule, uint32_t key, uint8_t value);
int emit_protocol(struct nftnl_rule *rule, uint16_t proto);
int emit_family(struct nftnl_rule *rule, const struct stage *st, enum family f);
int emit_bitwise_and(struct nftnl_rule *rule, const void *mask, uint32_t len);
int emit_ifname_eq(struct nftnl_rule *rule, uint32_t key, const char *ifname);
int build_counters(const struct stage *st, const struct ks_policy *p);
int emit_payload(struct nftnl_rule *rule, uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg);
int emit_lookup(struct nftnl_rule *rule, uint32_t sreg, const char *set);
int emit_counter_ref(struct nftnl_rule *rule, const char *counter);
int emit_verdict(struct nftnl_rule *rule, int verdict, const char *chain);
/* Source-routed packets to this host dropped, counted on P/dropped_in: the first rules of P/inbound, P/link_in. */
int build_source_route_drops(const struct stage *st, const char *chain);

/*
 * Which of a version 1 gateway's rules build_gateway_rules emits: all, only the
 * head (the exact sets' rule for connections this side opens: the source port
 * inbound, the destination port outbound), or the rest.
 */
enum gw_rules { GW_RULES_ALL, GW_RULES_HEAD, GW_RULES_REST };
int build_gateway_rules(const struct stage *st, const char *chain, const char *gw, const struct gw_norm *gn,
                        bool inbound, enum gw_rules which);
int build_ping_rules(const struct stage *st, const char *chain, const char *gw, const struct gw_norm *gn,
                     bool inbound);
bool table_name_valid(const char *table);
/* The register nft puts a concatenation's part at `off` bytes in. */
uint32_t concat_reg(size_t off);

/* ---- The drop sensor (compile-drops.c): P/drops_* sets, P/drops_overflow, rules before P/outbound's tail ---- */
int build_drop_counter(const struct stage *st);
int build_drop_sets(const struct stage *st);
int build_drop_rules(const struct stage *st, const char *chain);
void text_drop_counter(FILE *f, const char *policy);
void text_drop_sets(FILE *f, const char *policy);
void text_drop_rules(FILE *f, const char *policy);
