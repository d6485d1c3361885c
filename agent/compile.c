/* SPDX-License-Identifier: MIT */
/*
 * The policy compiler: loaded policies become the libnftnl objects of one
 * table and the messages that carry them, or the table in nft syntax. Pure:
 * no sockets, no kernel.
 *
 * The table (killswitch.policy(5) documents it for admins) holds every loaded
 * policy P, staged under names "P/...":
 *
 *   counter P/gw_NAME (one per gateway, [Management] is "management"), P/dropped_in,
 *           P/dropped_out, P/dropped_in/UPLINK, P/dropped_out/UPLINK
 *   set P/uplinks        { type ifname }
 *   set P/gw_NAME_v4/_v6 { type ipv4_addr . inet_proto . inet_service }  (Ports=, exact entries)
 *                        { type ipv4_addr }                              (all traffic, exact entries)
 *   set P/gw_NAME_v4r/_v6r  the same with flags interval: prefixes and port ranges
 *   set P/gw_NAME_ping_v4/_v6 { type ipv4_addr; flags interval }         (Ports= and Ping=yes)
 *   chain P/inbound      source-routed packets dropped first (build_source_route_drops);
 *                        the services: ct direction D <conntrack tuple key> @P/svc_NAME_vX[r]
 *                        counter accept (before the gateways: text_chains() says why);
 *                        saddr [. l4proto . sport|dport] @P/gw_NAME_vX[r] counter accept;
 *                        saddr @P/gw_NAME_ping_vX icmp echo counter accept; ...;
 *                        ICMP errors, in front of the first entry without Ports= (related_rules_at):
 *                        meta l4proto icmp ct state related jump P/errors_in;
 *                        link upkeep addressed to this host (ND, MLD, DHCP) accept;
 *                        iifname "U" counter drop (per uplink); counter drop
 *   chain P/outbound     the same with daddr, oifname, no link upkeep; the tail rejects per Reject=
 *   chain P/errors_in    (and P/errors_out) the entries' lookups on the conntrack tuples of the
 *                        connection an ICMP error quotes (KeepICMPErrors=, build_error_rules)
 *   chain P/forward      fib saddr type local counter name P/dropped_out drop; goto P/outbound
 *   chain P/local_out    this host's own link upkeep accept; goto P/outbound
 *
 * Regular chains have no hook: a staged policy costs nothing per packet.
 * While isolated with policy P, and only then, the table also has
 *
 *   chain prerouting  hook prerouting priority -150: iifname @P/uplinks jump P/inbound
 *   chain forward     hook forward    priority -150: oifname @P/uplinks jump P/forward
 *   chain output      hook output     priority -150: oifname @P/uplinks jump P/local_out
 *
 * so that isolating, switching and restoring touch three chains and three
 * rules, whatever the size of the policies (compile_hook).
 *
 * A gateway's entries are split by kind, per family: an exact entry (one
 * address and, with Ports=, one port) goes into a hash set, an entry with a
 * prefix, an address range or a port range into an interval set (suffix "r").
 * Only non-empty sets exist, each with its own rules. Every packet of an
 * allowed flow is looked up in the sets of each gateway before its own, and a
 * hash lookup costs a fraction of an interval (pipapo or rbtree) one. Priority -150 is
 * after conntrack (-200), which "ct state related" needs, and before
 * destination NAT (-100). Outbound is checked in forward and output, not in
 * postrouting, because reject is not allowed in postrouting.
 *
 * The expressions are the ones nft 1.0.6 emits for the same rules in nft
 * syntax (nft --debug=netlink), so that `nft list` reads our table back as
 * compile_text() prints it. Set elements are normalised first (sorted and
 * merged into disjoint ranges) because the kernel refuses overlapping
 * intervals; sorting keeps 100k addresses at n log n. The split comes after
 * the merge: a merged range of one address (and one port) is exact.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "alloc.h"
#include "cleanup.h"
#include "batch.h"
#include "compile-internal.h"
#include "config.h"
#include "compile.h"
#include "netlink-cleanup.h"
#include "summary.h"

_Static_assert(COMPILE_NAME_SIZE <= NFT_NAME_MAXLEN, "object names longer than the kernel takes");


/* ---- The ruleset: messages carrying libnftnl objects, in order ---------- */

struct op {
        enum op_kind kind;
        uint16_t type;          /* NFT_MSG_* */
        uint16_t flags;         /* NLM_F_* besides NLM_F_REQUEST and NLM_F_ACK */
        void *obj;
};

struct ks_ruleset {
        struct op *ops;
        size_t n_ops;
        uint32_t n_sets;        /* set ids */
        uint32_t family;        /* of the objects built next: NFPROTO_INET, or NFPROTO_NETDEV (compile-links.c) */
        char comment[COMPILE_COMMENT_SIZE];     /* the table's user data (ruleset_seal) */
};

struct ks_ruleset *ruleset_new(void)
{
        struct ks_ruleset *r = calloc(1, sizeof(*r));

        if (r)
                r->family = NFPROTO_INET;
        return r;
}

void ruleset_set_family(struct ks_ruleset *r, uint32_t family)
{
        r->family = family;
}

static void op_free(struct op *op)
{
        switch (op->kind) {
        case OP_TABLE:
                nftnl_table_free(op->obj);
                break;
        case OP_OBJ:
                nftnl_obj_free(op->obj);
                break;
        case OP_SET:
                nftnl_set_free(op->obj);
                break;
        case OP_CHAIN:
                nftnl_chain_free(op->obj);
                break;
        case OP_RULE:
                nftnl_rule_free(op->obj);
                break;
        }
}

struct ks_ruleset *ruleset_free(struct ks_ruleset *r)
{
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_ops; i++)
                op_free(&r->ops[i]);
        free(r->ops);
        free(r);
        return NULL;
}

/* Append a message; takes obj over, also on failure. */
int ruleset_push(struct ks_ruleset *r, enum op_kind kind, uint16_t type, uint16_t flags, void *obj)
{
        struct op op = { .kind = kind, .type = type, .flags = flags, .obj = obj };

        if (!obj)
                return -ENOMEM;
        if (!GREEDY_REALLOC(r->ops, r->n_ops + 1)) {
                op_free(&op);
                return -ENOMEM;
        }
        r->ops[r->n_ops++] = op;
        return 0;
}


/* "P/" + printf(fmt, ...); names are bounded by the name checks, so this never truncates. */
void stage_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, const char *fmt, ...)
{
        int n = snprintf(buf, COMPILE_NAME_SIZE, "%s" COMPILE_NAME_SEP, st->policy);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf + n, COMPILE_NAME_SIZE - (size_t)n, fmt, ap);
        va_end(ap);
}

/* POLICY/PREFIXNAME, the name of a counter of ours. */
static int counter_name(char *buf, size_t size, const char *policy, const char *prefix, const char *name)
{
        int n;

        if (!buf || !policy || !name || policy_name_valid(policy) < 0)
                return -EINVAL;
        n = snprintf(buf, size, "%s" COMPILE_NAME_SEP "%s%s", policy, prefix, name);
        return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

int compile_counter_name(char *buf, size_t size, const char *policy, const char *counter)
{
        return counter_name(buf, size, policy, "", counter);
}

int compile_gateway_counter_name(char *buf, size_t size, const char *policy, const char *gateway)
{
        return counter_name(buf, size, policy, COUNTER_GATEWAY_PREFIX, gateway);
}

int compile_service_counter_name(char *buf, size_t size, const char *policy, const char *service)
{
        return counter_name(buf, size, policy, COUNTER_SERVICE_PREFIX, service);
}

static bool uplink_name_valid(const char *uplink)
{
        return uplink && uplink[0] != '\0' && strlen(uplink) < IFNAMSIZ;
}

int compile_uplink_counter_name(char *buf, size_t size, const char *policy, const char *direction,
                                const char *uplink)
{
        int n;

        if (!buf || !policy || !direction || policy_name_valid(policy) < 0 || !uplink_name_valid(uplink))
                return -EINVAL;
        if (strcmp(direction, COUNTER_DROPPED_IN) != 0 && strcmp(direction, COUNTER_DROPPED_OUT) != 0)
                return -EINVAL;
        n = snprintf(buf, size, "%s" COMPILE_NAME_SEP "%s" COMPILE_NAME_SEP "%s", policy, direction, uplink);
        return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

int build_table(struct ks_ruleset *r, const char *table)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();

        if (!t)
                return -ENOMEM;
        /* No flags attribute: the transport may have created the table owned (owner+persist); an
         * update that names other flags would be refused. */
        nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, r->family);
        if (nftnl_table_set_str(t, NFTNL_TABLE_NAME, table) < 0)
                return -ENOMEM;
        return ruleset_push(r, OP_TABLE, NFT_MSG_NEWTABLE, NLM_F_CREATE, TAKE_PTR(t));
}

static int build_counter(const struct stage *st, const char *name)
{
        _cleanup_(nftnl_obj_freep) struct nftnl_obj *o = nftnl_obj_alloc();

        if (!o)
                return -ENOMEM;
        nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, st->r->family);
        nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
        nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_PKTS, 0);
        nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_BYTES, 0);
        nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, st->table);       /* returns void in libnftnl 1.2 */
        nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
        if (!nftnl_obj_is_set(o, NFTNL_OBJ_TABLE) || !nftnl_obj_is_set(o, NFTNL_OBJ_NAME))
                return -ENOMEM;
        return ruleset_push(st->r, OP_OBJ, NFT_MSG_NEWOBJ, NLM_F_CREATE, TAKE_PTR(o));
}

int build_counters(const struct stage *st, const struct ks_policy *p)
{
        char name[COMPILE_NAME_SIZE];
        int k;

        for (size_t i = 0; i < p->n_gateways; i++) {
                stage_name(name, st, COUNTER_GATEWAY_PREFIX "%s", p->gateways[i].name);
                k = build_counter(st, name);
                if (k < 0)
                        return k;
        }
        for (size_t i = 0; i < p->n_services; i++) {
                stage_name(name, st, COUNTER_SERVICE_PREFIX "%s", p->services[i].name);
                k = build_counter(st, name);
                if (k < 0)
                        return k;
        }
        stage_name(name, st, COUNTER_DROPPED_IN);
        k = build_counter(st, name);
        if (k < 0)
                return k;
        stage_name(name, st, COUNTER_DROPPED_OUT);
        k = build_counter(st, name);
        for (size_t i = 0; k >= 0 && i < p->n_uplinks; i++) {
                stage_name(name, st, COUNTER_DROPPED_IN COMPILE_NAME_SEP "%s", p->uplinks[i]);
                k = build_counter(st, name);
                if (k < 0)
                        break;
                stage_name(name, st, COUNTER_DROPPED_OUT COMPILE_NAME_SEP "%s", p->uplinks[i]);
                k = build_counter(st, name);
        }
        return k;
}

/* nft keeps the key's byte order in the set's user data; nft list needs it to print elements. */
static int set_userdata(struct nftnl_set *s, uint32_t byteorder)
{
        _cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(64);

        if (!u || !nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, byteorder))
                return -ENOMEM;
        return nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u),
                                  nftnl_udata_buf_len(u)) < 0 ? -ENOMEM : 0;
}

/* A new set, already appended to the ruleset (NULL: out of memory). */
struct nftnl_set *set_new(const struct stage *st, const char *name, uint32_t flags,
                                 uint32_t key_type, uint32_t key_len, uint32_t byteorder)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();

        if (!s)
                return NULL;
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, st->r->family);
        nftnl_set_set_u32(s, NFTNL_SET_FLAGS, flags);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
        /*
         * The kernel requires a set id in NEWSET. Rules and elements name their
         * set, which the kernel resolves first, so ids need only differ within
         * the batch.
         */
        nftnl_set_set_u32(s, NFTNL_SET_ID, ++st->r->n_sets);
        if (nftnl_set_set_str(s, NFTNL_SET_TABLE, st->table) < 0 || nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
                return NULL;
        if (set_userdata(s, byteorder) < 0)
                return NULL;
        if (ruleset_push(st->r, OP_SET, NFT_MSG_NEWSET, NLM_F_CREATE, s) < 0) {
                s = NULL;       /* freed by ruleset_push */
                return NULL;
        }
        return TAKE_PTR(s);
}

int set_add_elem(struct nftnl_set *s, const void *key, uint32_t len, const void *key_end,
                        uint32_t flags, bool open)
{
        struct nftnl_set_elem *e = nftnl_set_elem_alloc();
        /* nft's NFTNL_UDATA_SET_ELEM_FLAGS = NFTNL_SET_ELEM_F_INTERVAL_OPEN, as a u32 TLV */
        static const uint8_t open_udata[] = { NFTNL_UDATA_SET_ELEM_FLAGS, 4, NFTNL_SET_ELEM_F_INTERVAL_OPEN, 0, 0, 0 };

        if (!e)
                return -ENOMEM;
        nftnl_set_elem_add(s, e);
        if (nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, len) < 0)
                return -ENOMEM;
        if (key_end && nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY_END, key_end, len) < 0)
                return -ENOMEM;
        if (flags)
                nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, flags);
        if (open && nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, open_udata, sizeof(open_udata)) < 0)
                return -ENOMEM;
        return 0;
}

static int build_uplinks(const struct stage *st, const struct ks_policy *p)
{
        char name[COMPILE_NAME_SIZE], key[IFNAMSIZ];
        struct nftnl_set *s;
        int k;

        stage_name(name, st, "uplinks");
        s = set_new(st, name, 0, TYPE_IFNAME, IFNAMSIZ, BYTEORDER_HOST_ENDIAN);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_uplinks; i++) {
                memset(key, 0, sizeof(key));
                memcpy(key, p->uplinks[i], strnlen(p->uplinks[i], IFNAMSIZ - 1));
                k = set_add_elem(s, key, sizeof(key), NULL, 0, false);
                if (k < 0)
                        return k;
        }
        return 0;
}

static void gateway_set_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, const char *gw,
                             enum family f, enum set_kind kind)
{
        stage_name(buf, st, COUNTER_GATEWAY_PREFIX "%s_%s%s", gw, families[f].suffix, set_kind_suffix[kind]);
}

static void ping_set_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, const char *gw,
                          enum family f)
{
        stage_name(buf, st, COUNTER_GATEWAY_PREFIX "%s_ping_%s", gw, families[f].suffix);
}

/*
 * An interval set of one address field is an rbtree: each range is a start
 * element and an end element one past it. Like nft, a leading end element at
 * address 0 closes the space before the first range, and a range that reaches
 * the last address has no end element but is marked open. ranges_only: leave
 * single addresses out (they are in the gateway's hash set).
 */
static int fill_interval_set(struct nftnl_set *s, const struct addr_range *v, size_t n, size_t len,
                             bool ranges_only)
{
        static const uint8_t zero[16];
        uint8_t next[16];
        bool first = true;
        int k;

        for (size_t i = 0; i < n; i++) {
                bool open;

                if (ranges_only && range_single(&v[i]))
                        continue;
                if (first && memcmp(v[i].lo, zero, len) != 0) {
                        k = set_add_elem(s, zero, (uint32_t)len, NULL, NFT_SET_ELEM_INTERVAL_END, false);
                        if (k < 0)
                                return k;
                }
                first = false;
                open = !addr_next(v[i].hi, len, next);

                k = set_add_elem(s, v[i].lo, (uint32_t)len, NULL, 0, open);
                if (k < 0)
                        return k;
                if (open)
                        continue;
                k = set_add_elem(s, next, (uint32_t)len, NULL, NFT_SET_ELEM_INTERVAL_END, false);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Concatenated keys: each field padded to 4 bytes, the port in network byte order. */
static size_t concat_key(uint8_t *key, const uint8_t *addr, size_t len, uint8_t proto, uint16_t port)
{
        uint16_t be = htons(port);

        memset(key, 0, len + 8);
        memcpy(key, addr, len);
        key[len] = proto;
        memcpy(key + len + 4, &be, sizeof(be));
        return len + 8;
}

/* The entries of one kind with ports: an exact one is a key, a range a key and its end (pipapo). */
static int fill_concat_set(struct nftnl_set *s, const struct gw_norm *gn, enum family f, enum set_kind kind)
{
        size_t len = families[f].addr_len;
        uint8_t key[24], key_end[24];
        int k;

        for (size_t i = 0; i < gn->n_ranges[f]; i++)
                for (size_t j = 0; j < gn->n_ports; j++) {
                        const struct ks_portrange *pr = &gn->ports[j];
                        size_t klen;

                        if (entry_kind(gn, f, i, j) != kind)
                                continue;
                        klen = concat_key(key, gn->ranges[f][i].lo, len, pr->proto, pr->low);
                        concat_key(key_end, gn->ranges[f][i].hi, len, pr->proto, pr->high);
                        k = set_add_elem(s, key, (uint32_t)klen, kind == SET_RANGE ? key_end : NULL, 0, false);
                        if (k < 0)
                                return k;
                }
        return 0;
}

/* Single addresses without Ports=: a hash set of addresses. */
static int build_address_hash(const struct stage *st, const char *name, const struct gw_norm *gn, enum family f)
{
        const struct family_info *fi = &families[f];
        struct nftnl_set *s;
        int k;

        s = set_new(st, name, 0, fi->key_type, fi->addr_len, BYTEORDER_BIG_ENDIAN);
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < gn->n_ranges[f]; i++) {
                if (!range_single(&gn->ranges[f][i]))
                        continue;
                k = set_add_elem(s, gn->ranges[f][i].lo, fi->addr_len, NULL, 0, false);
                if (k < 0)
                        return k;
        }
        return 0;
}

bool addrs_all_single(const struct gw_norm *gn, enum family f)
{
        for (size_t i = 0; i < gn->n_ranges[f]; i++)
                if (!range_single(&gn->ranges[f][i]))
                        return false;
        return true;
}

/*
 * Addresses in an interval set: a gateway's prefixes and address ranges
 * without Ports= (ranges_only), or all its addresses for Ping= with Ports=
 * and the link layer. All of them single addresses: a hash set instead,
 * cheaper to fill (no interval tree to keep ordered) and to look up.
 */
int build_address_set(const struct stage *st, const char *name, const struct gw_norm *gn, enum family f,
                             bool ranges_only)
{
        const struct family_info *fi = &families[f];
        struct nftnl_set *s;

        if (!ranges_only && addrs_all_single(gn, f))
                return build_address_hash(st, name, gn, f);

        s = set_new(st, name, NFT_SET_INTERVAL, fi->key_type, fi->addr_len, BYTEORDER_BIG_ENDIAN);
        if (!s)
                return -ENOMEM;
        return fill_interval_set(s, gn->ranges[f], gn->n_ranges[f], fi->addr_len, ranges_only);
}

static int build_gateway_set(const struct stage *st, const char *gw, const struct gw_norm *gn, enum family f,
                             enum set_kind kind)
{
        const struct family_info *fi = &families[f];
        char name[COMPILE_NAME_SIZE];
        struct nftnl_set *s;

        gateway_set_name(name, st, gw, f, kind);
        if (gn->n_ports == 0)
                return kind == SET_EXACT ? build_address_hash(st, name, gn, f) :
                                           build_address_set(st, name, gn, f, true);

        uint32_t type = (fi->key_type << (2 * TYPE_BITS)) | (TYPE_INET_PROTOCOL << TYPE_BITS) | TYPE_INET_SERVICE;
        uint8_t fields[] = { (uint8_t)fi->addr_len, 1, 2 };     /* libnftnl takes field lengths as bytes */

        /* As nft: field lengths and NFT_SET_CONCAT only for an interval set. */
        s = set_new(st, name, kind == SET_RANGE ? NFT_SET_INTERVAL | NFT_SET_CONCAT : 0, type, fi->addr_len + 8,
                    BYTEORDER_INVALID);
        if (!s)
                return -ENOMEM;
        if (kind == SET_RANGE && nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields, sizeof(fields)) < 0)
                return -ENOMEM;
        return fill_concat_set(s, gn, f, kind);
}

/* ---- Connection-matched entries: sets (tracked gateways and services) ---- */

static void conn_set_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, const struct conn_norm *cn,
                          enum family f, enum set_kind kind)
{
        stage_name(buf, st, "%s%s_%s%s%s", cn->prefix, cn->name, cn->echo ? "ping_" : "", families[f].suffix,
                   set_kind_suffix[kind]);
}

/* The key of element e, its low end or (hi) its high end: each part padded to 4 bytes, as nft. */
static size_t conn_key(uint8_t key[static 40], const struct conn_norm *cn, enum family f,
                       const struct conn_elem *e, bool hi)
{
        size_t len = families[f].addr_len, off = 0;

        memset(key, 0, 40);
        for (int a = 0; a < N_ADDR_FIELDS; a++) {
                const struct addr_range *r;

                if (!cn->has[a])
                        continue;
                r = &cn->ranges[a][f][e->idx[a]];
                memcpy(key + off, hi ? r->hi : r->lo, len);
                off += len;
        }
        if (cn->n_ports > 0) {
                const struct ks_portrange *pr = &cn->ports[e->port];
                uint16_t be = htons(hi ? pr->high : pr->low);

                key[off] = pr->proto;
                memcpy(key + off + 4, &be, sizeof(be));
                off += 8;
        }
        return off;
}

/* One address field: the same sets as a gateway without Ports= (an address hash set or an rbtree). */
static int build_conn_address_set(const struct stage *st, const char *name, const struct conn_norm *cn,
                                  enum family f, enum set_kind kind)
{
        int a = cn->has[FIELD_PEER] ? FIELD_PEER : FIELD_OURS;
        struct gw_norm view = {};

        view.ranges[f] = cn->ranges[a][f];
        view.n_ranges[f] = cn->n_ranges[a][f];
        return kind == SET_EXACT ? build_address_hash(st, name, &view, f) : build_address_set(st, name, &view, f, true);
}

static int build_conn_set(const struct stage *st, const struct conn_norm *cn, enum family f, enum set_kind kind)
{
        const struct family_info *fi = &families[f];
        uint8_t key[40], key_end[40], fields[4];
        char name[COMPILE_NAME_SIZE];
        uint32_t type = 0, len = 0;
        size_t n_fields = 0;
        struct nftnl_set *s;
        struct conn_elem e;
        int k;

        conn_set_name(name, st, cn, f, kind);
        if (conn_key_fields(cn) == 1)
                return build_conn_address_set(st, name, cn, f, kind);
        for (int a = 0; a < N_ADDR_FIELDS; a++)
                if (cn->has[a]) {
                        type = type << TYPE_BITS | fi->key_type;
                        fields[n_fields++] = (uint8_t)fi->addr_len;
                        len += fi->addr_len;
                }
        if (cn->n_ports > 0) {
                type = (type << TYPE_BITS | TYPE_INET_PROTOCOL) << TYPE_BITS | TYPE_INET_SERVICE;
                fields[n_fields++] = 1;
                fields[n_fields++] = 2;
                len += 8;
        }
        /* As nft: field lengths and NFT_SET_CONCAT only for an interval set. */
        s = set_new(st, name, kind == SET_RANGE ? NFT_SET_INTERVAL | NFT_SET_CONCAT : 0, type, len, BYTEORDER_INVALID);
        if (!s)
                return -ENOMEM;
        if (kind == SET_RANGE && nftnl_set_set_data(s, NFTNL_SET_DESC_CONCAT, fields, (uint32_t)n_fields) < 0)
                return -ENOMEM;
        for (bool more = conn_elem_next(cn, f, &e, true); more; more = conn_elem_next(cn, f, &e, false)) {
                if (conn_elem_kind(cn, f, &e) != kind)
                        continue;
                conn_key(key, cn, f, &e, false);
                conn_key(key_end, cn, f, &e, true);
                k = set_add_elem(s, key, len, kind == SET_RANGE ? key_end : NULL, 0, false);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* The entry's sets per family and kind (only non-empty ones), then those of its Ping= (conn_ping_view). */
static int build_conn_sets(const struct stage *st, const struct conn_norm *cn)
{
        const struct conn_norm echo = conn_ping_view(cn);
        int k = 0;

        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                        if (conn_entries(cn, f, kind) > 0)
                                k = build_conn_set(st, cn, f, kind);
        for (int f = 0; k >= 0 && cn->ping && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                        if (conn_entries(&echo, f, kind) > 0)
                                k = build_conn_set(st, &echo, f, kind);
        return k;
}

int build_sets(const struct stage *st, const struct ks_policy *p, const struct norm *n)
{
        int k = build_uplinks(st, p);

        char name[COMPILE_NAME_SIZE];

        for (size_t i = 0; k >= 0 && i < p->n_gateways; i++) {
                for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                        for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                                if (gw_entries(&n->gws[i], f, kind) > 0)
                                        k = build_gateway_set(st, p->gateways[i].name, &n->gws[i], f, kind);
                if (k >= 0 && p->gateways[i].tracked)
                        k = build_conn_sets(st, &n->conns[i]);
                if (!gateway_ping_rules(&p->gateways[i]) || p->gateways[i].tracked)
                        continue;
                for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                        if (n->gws[i].n_ranges[f] > 0) {
                                ping_set_name(name, st, p->gateways[i].name, f);
                                k = build_address_set(st, name, &n->gws[i], f, false);
                        }
        }
        for (size_t i = 0; k >= 0 && i < p->n_services; i++)
                k = build_conn_sets(st, &n->conns[p->n_gateways + i]);
        return k;
}

struct nftnl_chain *chain_new(const struct ks_ruleset *r, const char *table, const char *name)
{
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();

        if (!c)
                return NULL;
        nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, r->family);
        if (nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0 || nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0)
                return NULL;
        return TAKE_PTR(c);
}

/* NEWCHAIN: a regular chain (hook < 0), or a base chain of type filter, its priority (compile.h), policy accept. */
static int build_chain(struct ks_ruleset *r, const char *table, const char *name, int hook)
{
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = chain_new(r, table, name);

        if (!c)
                return -ENOMEM;
        if (hook >= 0) {
                nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
                nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO,
                                    hook == NF_INET_PRE_ROUTING ? CHAIN_PRIORITY_PREROUTING : CHAIN_PRIORITY);
                nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
                if (nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0)
                        return -ENOMEM;
        }
        return ruleset_push(r, OP_CHAIN, NFT_MSG_NEWCHAIN, NLM_F_CREATE, TAKE_PTR(c));
}

int build_delchain(struct ks_ruleset *r, const char *table, const char *name)
{
        return ruleset_push(r, OP_CHAIN, NFT_MSG_DELCHAIN, 0, chain_new(r, table, name));
}

static int build_chains(const struct stage *st, const struct ks_policy *p)
{
        char name[COMPILE_NAME_SIZE];
        int k;

        stage_name(name, st, "inbound");
        k = build_chain(st->r, st->table, name, -1);
        if (k < 0)
                return k;
        stage_name(name, st, "outbound");
        k = build_chain(st->r, st->table, name, -1);
        if (k < 0)
                return k;
        for (int inbound = 1; p->keep_icmp_errors && inbound >= 0; inbound--) {
                stage_name(name, st, "%s", inbound ? CHAIN_ERRORS_IN : CHAIN_ERRORS_OUT);
                k = build_chain(st->r, st->table, name, -1);
                if (k < 0)
                        return k;
        }
        stage_name(name, st, CHAIN_FORWARD_OUT);
        k = build_chain(st->r, st->table, name, -1);
        if (k < 0)
                return k;
        stage_name(name, st, CHAIN_LOCAL_OUT);
        k = build_chain(st->r, st->table, name, -1);
        if (k < 0)
                return k;
        stage_name(name, st, CHAIN_HOLD);
        return build_chain(st->r, st->table, name, -1);
}

/* ---- Rules -------------------------------------------------------------- */

/* A new expression, already owned by the rule. */
struct nftnl_expr *rule_expr(struct nftnl_rule *rule, const char *name)
{
        struct nftnl_expr *e = nftnl_expr_alloc(name);

        if (e)
                nftnl_rule_add_expr(rule, e);
        return e;
}

int emit_meta(struct nftnl_rule *rule, uint32_t key, uint32_t dreg)
{
        struct nftnl_expr *e = rule_expr(rule, "meta");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
        return 0;
}

int emit_cmp(struct nftnl_rule *rule, uint32_t sreg, uint32_t op, const void *data, uint32_t len)
{
        struct nftnl_expr *e = rule_expr(rule, "cmp");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
        return nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0 ? -ENOMEM : 0;
}

int emit_cmp_u8(struct nftnl_rule *rule, uint32_t sreg, uint8_t value)
{
        return emit_cmp(rule, sreg, NFT_CMP_EQ, &value, sizeof(value));
}

/* meta KEY => reg 1, cmp eq reg 1 VALUE: "meta nfproto ipv6", "meta l4proto tcp" */
int emit_meta_eq(struct nftnl_rule *rule, uint32_t key, uint8_t value)
{
        int k = emit_meta(rule, key, NFT_REG_1);

        return k < 0 ? k : emit_cmp_u8(rule, NFT_REG_1, value);
}

/*
 * The packet is of family f: "meta nfproto ipv4" in an inet table, "meta
 * protocol ip" (the ethertype) in a netdev one, where nfproto is netdev.
 */
/* meta protocol PROTO (skb->protocol: the ethertype a driver read, or what a packet socket was bound to) */
int emit_protocol(struct nftnl_rule *rule, uint16_t proto)
{
        uint16_t be = htons(proto);
        int k = emit_meta(rule, NFT_META_PROTOCOL, NFT_REG_1);

        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, &be, sizeof(be));
}

int emit_family(struct nftnl_rule *rule, const struct stage *st, enum family f)
{
        if (st->r->family != NFPROTO_NETDEV)
                return emit_meta_eq(rule, NFT_META_NFPROTO, families[f].nfproto);
        return emit_protocol(rule, f == V4 ? ETH_P_IP : ETH_P_IPV6);
}

/* reg 1 &= mask, mask of len (at most 16) bytes in network order */
int emit_bitwise_and(struct nftnl_rule *rule, const void *mask, uint32_t len)
{
        static const uint8_t zero[16];
        struct nftnl_expr *e = rule_expr(rule, "bitwise");

        if (!e || len > sizeof(zero))
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
        if (nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len) < 0 ||
            nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len) < 0)
                return -ENOMEM;
        return 0;
}

/* ct state & bit != 0: "ct state related" */
static int emit_ct_state(struct nftnl_rule *rule, uint32_t bit)
{
        static const uint32_t zero = 0;
        struct nftnl_expr *e = rule_expr(rule, "ct");
        int k;

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
        k = emit_bitwise_and(rule, &bit, sizeof(bit));
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* iifname|oifname "NAME": the name zero-padded to IFNAMSIZ, as nft compares it. */
int emit_ifname_eq(struct nftnl_rule *rule, uint32_t key, const char *ifname)
{
        char name[IFNAMSIZ] = {};
        int k;

        memcpy(name, ifname, strnlen(ifname, IFNAMSIZ - 1));
        k = emit_meta(rule, key, NFT_REG_1);
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, name, sizeof(name));
}

static int emit_reject(struct nftnl_rule *rule, uint32_t type, uint8_t code)
{
        struct nftnl_expr *e = rule_expr(rule, "reject");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
        nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
        return 0;
}

int emit_payload(struct nftnl_rule *rule, uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg)
{
        struct nftnl_expr *e = rule_expr(rule, "payload");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
        return 0;
}

/* nft converts the one-byte l4proto for a concatenation: hton(reg, size 2, len 1). */
static int emit_byteorder_hton(struct nftnl_rule *rule, uint32_t reg)
{
        struct nftnl_expr *e = rule_expr(rule, "byteorder");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, 1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, 2);
        return 0;
}

int emit_lookup(struct nftnl_rule *rule, uint32_t sreg, const char *set)
{
        struct nftnl_expr *e = rule_expr(rule, "lookup");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
        return nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set) < 0 ? -ENOMEM : 0;
}

int emit_counter_ref(struct nftnl_rule *rule, const char *counter)
{
        struct nftnl_expr *e = rule_expr(rule, "objref");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
        return nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, counter) < 0 ? -ENOMEM : 0;
}

int emit_verdict(struct nftnl_rule *rule, int verdict, const char *chain)
{
        struct nftnl_expr *e = rule_expr(rule, "immediate");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
        if (chain && nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain) < 0)
                return -ENOMEM;
        return 0;
}

/* A rule of table/chain for message `type`, already appended (NULL: out of memory). */
static struct nftnl_rule *rule_push(struct ks_ruleset *r, uint16_t type, uint16_t flags,
                                    const char *table, const char *chain)
{
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *rule = nftnl_rule_alloc();

        if (!rule)
                return NULL;
        nftnl_rule_set_u32(rule, NFTNL_RULE_FAMILY, r->family);
        if (nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, table) < 0 ||
            nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, chain) < 0)
                return NULL;
        if (ruleset_push(r, OP_RULE, type, flags, rule) < 0) {
                rule = NULL;    /* freed by ruleset_push */
                return NULL;
        }
        return TAKE_PTR(rule);
}

struct nftnl_rule *rule_new(const struct stage *st, const char *chain)
{
        return rule_push(st->r, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, st->table, chain);
}

/* DELRULE naming only the chain: flushes it. */
static int build_flush(struct ks_ruleset *r, const char *table, const char *chain)
{
        return rule_push(r, NFT_MSG_DELRULE, 0, table, chain) ? 0 : -ENOMEM;
}

/* iifname @P/uplinks jump P/inbound, resp. oifname @P/uplinks jump P/outbound */
static int build_jump_rule(struct ks_ruleset *r, const char *table, const char *chain,
                           uint32_t ifkey, const char *policy, const char *target)
{
        struct nftnl_rule *rule = rule_push(r, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, table, chain);
        const struct stage st = { .r = r, .table = table, .policy = policy };
        char set[COMPILE_NAME_SIZE], jump[COMPILE_NAME_SIZE];
        int k;

        if (!rule)
                return -ENOMEM;
        stage_name(set, &st, "uplinks");
        stage_name(jump, &st, "%s", target);
        k = emit_meta(rule, ifkey, NFT_REG_1);
        if (k >= 0)
                k = emit_lookup(rule, NFT_REG_1, set);
        if (k >= 0)
                k = emit_verdict(rule, NFT_JUMP, jump);
        return k;
}

struct gw_match {
        const char *chain, *set, *counter;
        enum family family;
        enum set_kind kind;
        bool source;            /* saddr (inbound) or daddr (outbound) */
        int port;               /* -1: no ports; 0: sport; 1: dport */
};

/* [ip|ip6] saddr|daddr [. meta l4proto . th sport|dport] @P/gw_X_vN[r] counter name "P/gw_X" accept */
static int build_gateway_rule(const struct stage *st, const struct gw_match *m)
{
        const struct family_info *fi = &families[m->family];
        struct nftnl_rule *rule = rule_new(st, m->chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_family(rule, st, m->family);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER,
                                 m->source ? fi->saddr_offset : fi->daddr_offset, fi->addr_len, NFT_REG_1);
        if (k >= 0 && m->port >= 0) {
                k = emit_meta(rule, NFT_META_L4PROTO, fi->proto_reg);
                /* Only for an interval set's key, as nft. */
                if (k >= 0 && m->kind == SET_RANGE)
                        k = emit_byteorder_hton(rule, fi->proto_reg);
                if (k >= 0)
                        k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, m->port ? 2 : 0, 2, fi->port_reg);
        }
        if (k >= 0)
                k = emit_lookup(rule, NFT_REG_1, m->set);
        if (k >= 0 && m->counter)
                k = emit_counter_ref(rule, m->counter);
        if (k >= 0)
                k = emit_verdict(rule, NF_ACCEPT, NULL);
        return k;
}

/* ---- Link upkeep: the gateway's own ND and DHCP on its uplinks ----------- */

/*
 * The rules of docs/design.md, "Link upkeep". Inbound (prerouting sees what
 * is forwarded to the LAN too) only what is addressed to the gateway: its own
 * address (fib daddr type local), or link-scope multicast and the limited
 * broadcast, which no router forwards. Outbound only in P/local_out, which
 * the output hook alone jumps to: nothing forwarded from the LAN ever meets
 * these rules. ND needs hop limit 255 (RFC 4861: a receiver drops anything
 * else, and a hop limit of 255 on arrival proves an on-link sender). ND from
 * a process (raw socket) may only go to link-local and multicast addresses;
 * the kernel's own ND is sent to on-link neighbours only, which may have
 * global addresses. DHCPv4 goes out only as broadcast: a unicast renewal to
 * a server the compiler cannot know is cut, and the client rebinds by
 * broadcast (RFC 2131 4.4.5). DHCPv6 goes out only to ff02::1:2 and its
 * replies come to the gateway's link-local address (RFC 8415).
 */
#define ND_TYPES ND_TYPE_FIRST, ND_TYPE_LAST, "133-137"
#define MLD_QUERY 130, 130, "mld-listener-query"
#define MLD1_REPORTS 131, 132, "131-132"
#define MLD2_REPORT 143, 143, "mld2-listener-report"
#define ND_FROM_PROCESS ND_TYPES, 0
#define DHCP_ROW(f, dst, sport, dport, local) { UPKEEP_DHCP, f, dst, 0, 0, NULL, 0, sport, dport, local, false }

const struct upkeep_rule upkeep_in[N_UPKEEP_IN] = {
        { UPKEEP_ND, V6, UPKEEP_DST_LINK_MULTICAST, ND_TYPES, ND_HOP_LIMIT, 0, 0, false, false },
        { UPKEEP_ND, V6, UPKEEP_DST_ANY, ND_TYPES, ND_HOP_LIMIT, 0, 0, true, false },
        { UPKEEP_ND, V6, UPKEEP_DST_LINK_MULTICAST, MLD_QUERY, MLD_HOP_LIMIT, 0, 0, false, false },
        DHCP_ROW(V4, UPKEEP_DST_BROADCAST, 67, 68, false),
        DHCP_ROW(V4, UPKEEP_DST_ANY, 67, 68, true),
        DHCP_ROW(V6, UPKEEP_DST_LINK_LOCAL, 547, 546, true),
};

const struct upkeep_rule upkeep_out[N_UPKEEP_OUT] = {
        { UPKEEP_ND, V6, UPKEEP_DST_LINK_MULTICAST, ND_TYPES, ND_HOP_LIMIT, 0, 0, false, false },
        { UPKEEP_ND, V6, UPKEEP_DST_LINK_LOCAL, ND_TYPES, ND_HOP_LIMIT, 0, 0, false, false },
        { UPKEEP_ND, V6, UPKEEP_DST_ANY, ND_FROM_PROCESS, 0, 0, false, true },
        { UPKEEP_ND, V6, UPKEEP_DST_ANY, ND_TYPES, ND_HOP_LIMIT, 0, 0, false, false },
        { UPKEEP_ND, V6, UPKEEP_DST_LINK_MULTICAST, MLD1_REPORTS, MLD_HOP_LIMIT, 0, 0, false, false },
        { UPKEEP_ND, V6, UPKEEP_DST_LINK_MULTICAST, MLD2_REPORT, MLD_HOP_LIMIT, 0, 0, false, false },
        DHCP_ROW(V4, UPKEEP_DST_BROADCAST, 68, 67, false),
        DHCP_ROW(V6, UPKEEP_DST_DHCP6_SERVERS, 546, 547, false),
};

bool upkeep_enabled(const struct ks_policy *p, const struct upkeep_rule *u)
{
        switch (u->kind) {
        case UPKEEP_ND:
                return p->keep_neighbor_discovery;
        case UPKEEP_DHCP:
                return p->keep_dhcp;
        }
        return false;
}

/* fib daddr type local (flag NFTA_FIB_F_DADDR), fib saddr type local (NFTA_FIB_F_SADDR) */
static int emit_fib_local(struct nftnl_rule *rule, uint32_t flag)
{
        static const uint32_t local = RTN_LOCAL;
        struct nftnl_expr *e = rule_expr(rule, "fib");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flag);
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
        return emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, &local, sizeof(local));
}

static int emit_fib_daddr_local(struct nftnl_rule *rule)
{
        return emit_fib_local(rule, NFTA_FIB_F_DADDR);
}

/* meta skuid 0-4294967295: the packet has a process's socket (the kernel's ND has none with a file). */
static int emit_skuid_any(struct nftnl_rule *rule)
{
        static const uint32_t lo = 0, hi = UINT32_MAX;
        struct nftnl_expr *e;
        int k = emit_meta(rule, NFT_META_SKUID, NFT_REG_1);

        if (k < 0)
                return k;
        e = rule_expr(rule, "byteorder");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, sizeof(lo));
        nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, sizeof(lo));
        k = emit_cmp(rule, NFT_REG_1, NFT_CMP_GTE, &lo, sizeof(lo));
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_LTE, &hi, sizeof(hi));
}

/* ip6 daddr fe80::/10: nft loads the whole address and masks it. */
static int emit_daddr_masked(struct nftnl_rule *rule, const uint8_t addr[16], const uint8_t mask[16])
{
        int k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, families[V6].daddr_offset, 16, NFT_REG_1);

        if (k >= 0)
                k = emit_bitwise_and(rule, mask, 16);
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, addr, 16);
}

/* The destination of an upkeep rule, as nft builds it: a /16 is a 2-byte compare, a /10 a mask. */
int emit_upkeep_dst(struct nftnl_rule *rule, enum upkeep_dst dst)
{
        static const uint8_t broadcast[4] = { 255, 255, 255, 255 }, link_multicast[2] = { 0xff, 0x02 };
        static const uint8_t link_local[16] = { 0xfe, 0x80 }, link_local_mask[16] = { 0xff, 0xc0 };
        static const uint8_t dhcp6_servers[16] = { 0xff, 0x02, [13] = 0x01, [15] = 0x02 };
        uint32_t v4 = families[V4].daddr_offset, v6 = families[V6].daddr_offset;
        int k;

        switch (dst) {
        case UPKEEP_DST_ANY:
                return 0;
        case UPKEEP_DST_BROADCAST:
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, v4, sizeof(broadcast), NFT_REG_1);
                return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, broadcast, sizeof(broadcast));
        case UPKEEP_DST_LINK_MULTICAST:
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, v6, sizeof(link_multicast), NFT_REG_1);
                return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, link_multicast, sizeof(link_multicast));
        case UPKEEP_DST_LINK_LOCAL:
                return emit_daddr_masked(rule, link_local, link_local_mask);
        case UPKEEP_DST_DHCP6_SERVERS:
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, v6, sizeof(dhcp6_servers), NFT_REG_1);
                return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, dhcp6_servers, sizeof(dhcp6_servers));
        }
        return -EINVAL;
}

/* icmpv6 type T or T1-T2 (nft adds meta nfproto ipv6 and meta l4proto ipv6-icmp) */
static int emit_icmpv6_types(struct nftnl_rule *rule, uint8_t first, uint8_t last)
{
        int k = emit_meta_eq(rule, NFT_META_NFPROTO, NFPROTO_IPV6);

        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, IPPROTO_ICMPV6);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
        if (k >= 0 && first == last)
                return emit_cmp_u8(rule, NFT_REG_1, first);
        if (k >= 0)
                k = emit_cmp(rule, NFT_REG_1, NFT_CMP_GTE, &first, 1);
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_LTE, &last, 1);
}

/*
 * icmpv6 type 133-137 ip6 hoplimit 255 [ip6 daddr D] [fib daddr type local] accept (MLD: its
 * types, hop limit 1), or for ND from a process: icmpv6 type 133-137 meta skuid 0-4294967295
 * goto P/outbound
 */
static int emit_upkeep_nd(struct nftnl_rule *rule, const struct upkeep_rule *u, const char *outbound)
{
        int k = emit_icmpv6_types(rule, u->type_first, u->type_last);

        if (k >= 0 && u->process) {
                k = emit_skuid_any(rule);
                return k < 0 ? k : emit_verdict(rule, NFT_GOTO, outbound);
        }
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, 7, 1, NFT_REG_1);    /* hop limit */
        if (k >= 0)
                k = emit_cmp_u8(rule, NFT_REG_1, u->hop_limit);
        if (k >= 0)
                k = emit_upkeep_dst(rule, u->dst);
        if (k >= 0 && u->local)
                k = emit_fib_daddr_local(rule);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

/*
 * [ip|ip6 daddr D] udp sport S udp dport D [fib daddr type local] accept; nft
 * keeps "meta nfproto" in front when no address says the family, and loads
 * both ports at once.
 */
static int emit_upkeep_dhcp(struct nftnl_rule *rule, const struct upkeep_rule *u)
{
        uint16_t ports[2] = { htons(u->sport), htons(u->dport) };
        int k = emit_meta_eq(rule, NFT_META_NFPROTO, families[u->family].nfproto);

        if (k >= 0)
                k = emit_upkeep_dst(rule, u->dst);
        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, IPPROTO_UDP);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 0, sizeof(ports), NFT_REG_1);
        if (k >= 0)
                k = emit_cmp(rule, NFT_REG_1, NFT_CMP_EQ, ports, sizeof(ports));
        if (k >= 0 && u->local)
                k = emit_fib_daddr_local(rule);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

/* The upkeep rules of rows[0..n) that policy p keeps, appended to chain. */
static int compile_upkeep_rules(const struct stage *st, const struct ks_policy *p, const char *chain,
                                const struct upkeep_rule *rows, size_t n)
{
        char outbound[COMPILE_NAME_SIZE];
        int k = 0;

        stage_name(outbound, st, "outbound");
        for (size_t i = 0; k >= 0 && i < n; i++) {
                const struct upkeep_rule *u = &rows[i];
                struct nftnl_rule *rule;

                if (!upkeep_enabled(p, u))
                        continue;
                rule = rule_new(st, chain);
                if (!rule)
                        return -ENOMEM;
                switch (u->kind) {
                case UPKEEP_ND:
                        k = emit_upkeep_nd(rule, u, outbound);
                        break;
                case UPKEEP_DHCP:
                        k = emit_upkeep_dhcp(rule, u);
                        break;
                }
        }
        return k;
}

/* P/local_out, what the gateway itself sends: its upkeep, then the rest as P/outbound. */
static int compile_upkeep_local_out(const struct stage *st, const struct ks_policy *p)
{
        char chain[COMPILE_NAME_SIZE], outbound[COMPILE_NAME_SIZE];
        struct nftnl_rule *rule;
        int k;

        stage_name(chain, st, CHAIN_LOCAL_OUT);
        stage_name(outbound, st, "outbound");
        k = compile_upkeep_rules(st, p, chain, upkeep_out, ELEMENTSOF(upkeep_out));
        if (k < 0)
                return k;
        rule = rule_new(st, chain);
        return rule ? emit_verdict(rule, NFT_GOTO, outbound) : -ENOMEM;
}

/*
 * P/forward, what the gateway forwards out: a packet with a source address of
 * this host is forged (the host's own packets take the output hook), and the
 * connection-matched rules of P/outbound would keep it when its ports are the
 * reply of a [Service] on this host's address (IPv6 forwards it; IPv4 drops a
 * local source arriving from outside before any hook). Then the rest as
 * P/outbound.
 */
static int compile_forward(const struct stage *st)
{
        char chain[COMPILE_NAME_SIZE], outbound[COMPILE_NAME_SIZE], counter[COMPILE_NAME_SIZE];
        struct nftnl_rule *rule;
        int k;

        stage_name(chain, st, CHAIN_FORWARD_OUT);
        stage_name(outbound, st, "outbound");
        stage_name(counter, st, COUNTER_DROPPED_OUT);
        rule = rule_new(st, chain);
        if (!rule)
                return -ENOMEM;
        k = emit_fib_local(rule, NFTA_FIB_F_SADDR);
        if (k >= 0)
                k = emit_counter_ref(rule, counter);
        if (k >= 0)
                k = emit_verdict(rule, NF_DROP, NULL);
        if (k < 0)
                return k;
        rule = rule_new(st, chain);
        return rule ? emit_verdict(rule, NFT_GOTO, outbound) : -ENOMEM;
}

/* meta l4proto icmp ct state related jump P/errors_in (P/errors_out): judged by the connection quoted */
static int build_related_rule(const struct stage *st, const char *chain, enum family f, bool inbound)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        char errors[COMPILE_NAME_SIZE];
        int k;

        if (!rule)
                return -ENOMEM;
        stage_name(errors, st, "%s", inbound ? CHAIN_ERRORS_IN : CHAIN_ERRORS_OUT);
        k = emit_meta_eq(rule, NFT_META_L4PROTO, families[f].icmp_proto);
        if (k >= 0)
                k = emit_ct_state(rule, NF_CT_STATE_BIT(IP_CT_RELATED));
        return k < 0 ? k : emit_verdict(rule, NFT_JUMP, errors);
}

/* ICMP errors, before the first entry that could match one (related_rules_at). */
static int build_related_rules(const struct stage *st, const struct ks_policy *p, const char *chain, bool inbound)
{
        int k = 0;

        for (int f = 0; k >= 0 && p->keep_icmp_errors && f < N_FAMILIES; f++)
                k = build_related_rule(st, chain, f, inbound);
        return k;
}

/* ip saddr @P/gw_X_ping_v4 icmp type echo-request counter name "P/gw_X" accept */
static int build_ping_rule(const struct stage *st, const char *chain, const char *set, const char *counter,
                           enum family f, bool inbound, uint8_t type)
{
        const struct family_info *fi = &families[f];
        struct nftnl_rule *rule = rule_new(st, chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_family(rule, st, f);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER,
                                 inbound ? fi->saddr_offset : fi->daddr_offset, fi->addr_len, NFT_REG_1);
        if (k >= 0)
                k = emit_lookup(rule, NFT_REG_1, set);
        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, fi->icmp_proto);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
        if (k >= 0)
                k = emit_cmp_u8(rule, NFT_REG_1, type);
        if (k >= 0 && counter)
                k = emit_counter_ref(rule, counter);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

int build_ping_rules(const struct stage *st, const char *chain, const char *gw, const struct gw_norm *gn,
                            bool inbound)
{
        char set[COMPILE_NAME_SIZE], counter[COMPILE_NAME_SIZE];
        int k = 0;

        stage_name(counter, st, COUNTER_GATEWAY_PREFIX "%s", gw);
        for (int f = 0; k >= 0 && f < N_FAMILIES; f++) {
                if (gn->n_ranges[f] == 0)
                        continue;
                ping_set_name(set, st, gw, f);
                k = build_ping_rule(st, chain, set, st->uncounted ? NULL : counter, f, inbound, families[f].echo_request);
                if (k >= 0)
                        k = build_ping_rule(st, chain, set, st->uncounted ? NULL : counter, f, inbound,
                                            families[f].echo_reply);
        }
        return k;
}

enum tail_action { TAIL_DROP, TAIL_TCP_RESET, TAIL_ICMPX };

/* [iifname|oifname "U"] [meta l4proto tcp] counter name "C" drop|reject with tcp reset|icmpx admin-prohibited */
static int build_tail_rule(const struct stage *st, const char *chain, uint32_t ifkey, const char *ifname,
                           const char *counter, enum tail_action action)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        int k = 0;

        if (!rule)
                return -ENOMEM;
        if (ifname)
                k = emit_ifname_eq(rule, ifkey, ifname);
        if (k >= 0 && action == TAIL_TCP_RESET)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, IPPROTO_TCP);
        if (k >= 0)
                k = emit_counter_ref(rule, counter);
        if (k < 0)
                return k;
        switch (action) {
        case TAIL_TCP_RESET:
                return emit_reject(rule, NFT_REJECT_TCP_RST, 0);
        case TAIL_ICMPX:
                return emit_reject(rule, NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
        case TAIL_DROP:
                break;
        }
        return emit_verdict(rule, NF_DROP, NULL);
}

/*
 * What is left of a packet: counted per uplink, then (never reached while the
 * base chains only jump for uplinks, but a chain must not fall through) on
 * the policy's counter. Inbound always drops: we never answer the internet.
 * Outbound fails fast per Reject=: a TCP reset for TCP, with "all" an ICMP
 * admin-prohibited for the rest.
 */
static int build_tail_rules(const struct stage *st, const struct ks_policy *p, const char *chain, bool inbound)
{
        uint32_t ifkey = inbound ? NFT_META_IIFNAME : NFT_META_OIFNAME;
        const char *dir = inbound ? COUNTER_DROPPED_IN : COUNTER_DROPPED_OUT;
        enum ks_reject reject = inbound ? KS_REJECT_NONE : p->reject;
        enum tail_action rest = reject == KS_REJECT_ALL ? TAIL_ICMPX : TAIL_DROP;
        char counter[COMPILE_NAME_SIZE];
        int k = 0;

        for (size_t i = 0; k >= 0 && i <= p->n_uplinks; i++) {
                const char *ifname = i < p->n_uplinks ? p->uplinks[i] : NULL;

                if (ifname)
                        stage_name(counter, st, "%s" COMPILE_NAME_SEP "%s", dir, ifname);
                else
                        stage_name(counter, st, "%s", dir);
                if (reject != KS_REJECT_NONE)
                        k = build_tail_rule(st, chain, ifkey, ifname, counter, TAIL_TCP_RESET);
                if (k >= 0)
                        k = build_tail_rule(st, chain, ifkey, ifname, counter, rest);
        }
        return k;
}

/*
 * The rules of one gateway in one direction. The gateway's own port is the
 * source of what comes in and the destination of what goes out when this side
 * opened the connection, the other way round when the gateway did; that rule
 * comes first.
 */
int build_gateway_rules(const struct stage *st, const char *chain, const char *gw,
                               const struct gw_norm *gn, bool inbound, enum gw_rules which)
{
        char set[COMPILE_NAME_SIZE], counter[COMPILE_NAME_SIZE];
        struct gw_match m = { .chain = chain, .set = set, .counter = st->uncounted ? NULL : counter,
                              .source = inbound };
        int k = 0;

        stage_name(counter, st, COUNTER_GATEWAY_PREFIX "%s", gw);
        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++) {
                        if (gw_entries(gn, f, kind) == 0)
                                continue;
                        gateway_set_name(set, st, gw, f, kind);
                        m.family = f;
                        m.kind = kind;
                        if (gn->n_ports == 0) {
                                m.port = -1;
                                if (which != GW_RULES_HEAD)
                                        k = build_gateway_rule(st, &m);
                                continue;
                        }
                        m.port = inbound ? 0 : 1;
                        if (which == GW_RULES_ALL || (which == GW_RULES_HEAD) == (kind == SET_EXACT))
                                k = build_gateway_rule(st, &m);
                        if (k < 0)
                                break;
                        m.port = !m.port;
                        if (which != GW_RULES_HEAD)
                                k = build_gateway_rule(st, &m);
                }
        return k;
}

/* ---- Connection-matched entries: rules ---------------------------------- */

/* The register nft puts a concatenation's part at `off` bytes in: 16-byte ones where aligned, else 4-byte. */
uint32_t concat_reg(size_t off)
{
        size_t n = off / 4;

        return n % 4 == 0 ? NFT_REG_1 + (uint32_t)(n / 4) : NFT_REG32_00 + (uint32_t)n;
}

static int emit_ct(struct nftnl_rule *rule, uint32_t key, int dir, uint32_t dreg)
{
        struct nftnl_expr *e = rule_expr(rule, "ct");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
        if (dir >= 0)
                nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, (uint8_t)dir);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, dreg);
        return 0;
}

/* ct direction original|reply: which side sent this packet, compared with who opened the connection. */
static int emit_ct_direction(struct nftnl_rule *rule, const struct conn_match *m, bool inbound)
{
        int k = emit_ct(rule, NFT_CT_DIRECTION, -1, NFT_REG_1);

        return k < 0 ? k : emit_cmp_u8(rule, NFT_REG_1, inbound == m->opened_here ? IP_CT_DIR_REPLY : IP_CT_DIR_ORIGINAL);
}

/*
 * icmp type echo-request in the direction of the connection's first packet,
 * echo-reply in the other (Ping=): no other ICMP, which tunnels as well.
 */
static int emit_echo_type(struct nftnl_rule *rule, const struct stage *st, enum family f,
                          const struct conn_match *m, bool inbound)
{
        const struct family_info *fi = &families[f];
        int k = emit_family(rule, st, f);

        if (k >= 0)
                k = emit_meta_eq(rule, NFT_META_L4PROTO, fi->icmp_proto);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
        return k < 0 ? k : emit_cmp_u8(rule, NFT_REG_1, inbound == m->opened_here ? fi->echo_reply : fi->echo_request);
}

static int emit_ct_addr(struct nftnl_rule *rule, enum family f, struct tuple_ref t, uint32_t dreg)
{
        uint32_t key = f == V4 ? (t.src ? NFT_CT_SRC_IP : NFT_CT_DST_IP) : (t.src ? NFT_CT_SRC_IP6 : NFT_CT_DST_IP6);

        return emit_ct(rule, key, t.dir, dreg);
}

/*
 * ct direction D ct original ip daddr [. ct original ip saddr] [. meta l4proto . ct original proto-dst]
 * @P/gw_X_v4[r] counter name "P/gw_X" accept (the parts as the match says); for the Ping= view
 * @P/gw_X_ping_v4[r] icmp type echo-request|echo-reply.
 */
static int build_conn_rule(const struct stage *st, const char *chain, const struct conn_norm *cn, enum family f,
                           enum set_kind kind, const struct conn_match *m, bool inbound, bool errors)
{
        char set[COMPILE_NAME_SIZE], counter[COMPILE_NAME_SIZE];
        struct nftnl_rule *rule = rule_new(st, chain);
        size_t off = 0;
        int k;

        if (!rule)
                return -ENOMEM;
        conn_set_name(set, st, cn, f, kind);
        stage_name(counter, st, "%s%s", cn->prefix, cn->name);
        k = emit_ct_direction(rule, m, inbound);
        for (int a = 0; k >= 0 && a < N_ADDR_FIELDS; a++) {
                if (!cn->has[a])
                        continue;
                k = emit_ct_addr(rule, f, m->field[a], concat_reg(off));
                off += families[f].addr_len;
        }
        if (k >= 0 && cn->n_ports > 0) {
                /* An ICMP error's own protocol is ICMP: errors take the quoted connection's (ct original protocol). */
                k = errors ? emit_ct(rule, NFT_CT_PROTOCOL, IP_CT_DIR_ORIGINAL, concat_reg(off))
                           : emit_meta(rule, NFT_META_L4PROTO, concat_reg(off));
                /* Only for an interval set's key and meta l4proto, as nft. */
                if (k >= 0 && kind == SET_RANGE && !errors)
                        k = emit_byteorder_hton(rule, concat_reg(off));
                if (k >= 0)
                        k = emit_ct(rule, m->port.src ? NFT_CT_PROTO_SRC : NFT_CT_PROTO_DST, m->port.dir,
                                    concat_reg(off + 4));
        }
        if (k >= 0)
                k = emit_lookup(rule, NFT_REG_1, set);
        if (k >= 0 && cn->echo)
                k = emit_echo_type(rule, st, f, m, inbound);
        if (k >= 0)
                k = emit_counter_ref(rule, counter);
        return k < 0 ? k : emit_verdict(rule, NF_ACCEPT, NULL);
}

/*
 * Per family and set, one rule per match (connections opened here, opened
 * there; for a service its address before and after DNAT).
 */
static int build_conn_entry_rules(const struct stage *st, const char *chain, const struct conn_norm *cn,
                                  bool inbound)
{
        const struct conn_match *m[CONN_MATCHES_MAX];
        size_t n_m = conn_matches(cn, m);
        int k = 0;

        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++) {
                        if (conn_entries(cn, f, kind) == 0)
                                continue;
                        for (size_t i = 0; k >= 0 && i < n_m; i++)
                                k = build_conn_rule(st, chain, cn, f, kind, m[i], inbound, false);
                }
        return k;
}

/*
 * The rules of a tracked gateway or a service in one chain, then those of its
 * Ping=: echo keyed like its connections, so that Local= and Direction= hold
 * for ping too (ping tunnels carry whole sessions).
 */
static int build_conn_rules(const struct stage *st, const char *chain, const struct conn_norm *cn, bool inbound)
{
        const struct conn_norm echo = conn_ping_view(cn);
        int k;

        if (!cn->name)
                return 0;
        k = build_conn_entry_rules(st, chain, cn, inbound);
        return k < 0 || !cn->ping ? k : build_conn_entry_rules(st, chain, &echo, inbound);
}

/* ---- ICMP errors: judged by the connection they quote -------------------- */

/*
 * Conntrack marks an ICMP error related only if it quotes a connection it
 * tracks, and attaches it to that connection: the ct expressions read the
 * quoted connection's tuples, and ct direction says which way the error goes
 * along it (checked on kernel 6.18). So the rules of P/errors_in and
 * P/errors_out are the entries' own rules with the protocol taken from the
 * connection: an error passes only if the connection it quotes is one the
 * policy keeps. A connection that predates the isolation and is cut (its
 * entry lives on for days) carries no errors either way. Entries without
 * Ports= that are matched on connections need no rule here: their own rules
 * already match the errors of their connections. A version 1 gateway, matched
 * on packets, gets rules keyed on its connections' remote end
 * (gateway_error_matches): an error comes from any router on the path, not
 * from the gateway's address.
 */
static int build_conn_error_rules(const struct stage *st, const char *chain, const struct conn_norm *cn,
                                  bool inbound)
{
        const struct conn_match *m[CONN_MATCHES_MAX];
        size_t n_m = conn_matches(cn, m);
        int k = 0;

        if (!cn->name || cn->n_ports == 0)
                return 0;
        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                        for (size_t i = 0; k >= 0 && i < n_m && conn_entries(cn, f, kind) > 0; i++)
                                k = build_conn_rule(st, chain, cn, f, kind, m[i], inbound, true);
        return k;
}

static int build_gateway_error_rules(const struct stage *st, const char *chain, const char *gw,
                                     const struct gw_norm *gn, bool inbound)
{
        /* The gateway's sets, keyed "address [. protocol . port]", seen as a connection-matched entry's. */
        const struct conn_norm view = {
                .prefix = COUNTER_GATEWAY_PREFIX, .name = gw, .has = { [FIELD_PEER] = true }, .n_ports = gn->n_ports,
        };
        const struct conn_match *m[GATEWAY_ERROR_MATCHES_MAX];
        size_t n_m = gateway_error_matches(gn->n_ports > 0, m);
        int k = 0;

        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_SET_KINDS; kind++)
                        for (size_t i = 0; k >= 0 && i < n_m && gw_entries(gn, f, kind) > 0; i++)
                                k = build_conn_rule(st, chain, &view, f, kind, m[i], inbound, true);
        return k;
}

static int build_error_rules(const struct stage *st, const struct ks_policy *p, const struct norm *n)
{
        char chain[COMPILE_NAME_SIZE];
        int k = 0;

        for (int inbound = 1; p->keep_icmp_errors && inbound >= 0 && k >= 0; inbound--) {
                stage_name(chain, st, "%s", inbound ? CHAIN_ERRORS_IN : CHAIN_ERRORS_OUT);
                for (size_t i = 0; i < p->n_gateways && k >= 0; i++)
                        k = p->gateways[i].tracked ? build_conn_error_rules(st, chain, &n->conns[i], inbound)
                                                   : build_gateway_error_rules(st, chain, p->gateways[i].name,
                                                                               &n->gws[i], inbound);
                for (size_t i = 0; i < p->n_services && k >= 0; i++)
                        k = build_conn_error_rules(st, chain, &n->conns[p->n_gateways + i], inbound);
        }
        return k;
}

/* P/hold: everything on the uplinks dropped, nothing looked up (see compile_table_held). */
static int build_hold_rule(const struct stage *st)
{
        char chain[COMPILE_NAME_SIZE];
        struct nftnl_rule *rule;

        stage_name(chain, st, CHAIN_HOLD);
        rule = rule_push(st->r, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, st->table, chain);
        return rule ? emit_verdict(rule, NF_DROP, NULL) : -ENOMEM;
}

/* exthdr OP TYPE exists => reg 1: "ip option lsrr exists", "exthdr rt exists" */
static int emit_exthdr_exists(struct nftnl_rule *rule, uint32_t op, uint8_t type)
{
        struct nftnl_expr *e = rule_expr(rule, "exthdr");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_DREG, NFT_REG_1);
        nftnl_expr_set_u8(e, NFTNL_EXPR_EXTHDR_TYPE, type);
        nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OFFSET, 0);
        nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_LEN, 1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_FLAGS, NFT_EXTHDR_F_PRESENT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OP, op);
        return 0;
}

/*
 * A packet addressed to this host that names a next hop, an IPv4 loose or
 * strict source route or an IPv6 routing header, is sent on by the kernel
 * after prerouting if accept_source_route (seg6_enabled, rpl_seg_enabled) is
 * on, and the forward hook only judges what leaves by an uplink: kept as
 * "addressed to the gateway" (a service on its address, the link upkeep), it
 * reached any LAN host (the audit of the cut, finding 3). No entry needs one,
 * so they are dropped first, in P/inbound and P/link_in:
 *   ip option lsrr exists counter name "P/dropped_in" drop
 *   ip option ssrr exists counter name "P/dropped_in" drop
 *   exthdr rt exists counter name "P/dropped_in" drop
 * Every routing header, not only one with segments left: the kernel walks on
 * from one with segments left 0 to the next, and nft reads only the first
 * ("rt seg-left != 0" let an SRH behind a type 0 header with segments left 0
 * through). A packet without options passes the first two by its header length.
 */
int build_source_route_drops(const struct stage *st, const char *chain)
{
        static const struct {
                enum family f;
                uint32_t op;
                uint8_t type;
        } kinds[] = {
                { V4, NFT_EXTHDR_OP_IPV4, IPOPT_LSRR },
                { V4, NFT_EXTHDR_OP_IPV4, IPOPT_SSRR },
                { V6, NFT_EXTHDR_OP_IPV6, IPPROTO_ROUTING },
        };
        char counter[COMPILE_NAME_SIZE];

        stage_name(counter, st, "%s", COUNTER_DROPPED_IN);
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                struct nftnl_rule *rule = rule_new(st, chain);
                int k;

                if (!rule)
                        return -ENOMEM;
                k = emit_family(rule, st, kinds[i].f);
                if (k >= 0)
                        k = emit_exthdr_exists(rule, kinds[i].op, kinds[i].type);
                if (k >= 0)
                        k = emit_cmp_u8(rule, NFT_REG_1, 1);
                if (k >= 0)
                        k = emit_counter_ref(rule, counter);
                if (k >= 0)
                        k = emit_verdict(rule, NF_DROP, NULL);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int build_rules(const struct stage *st, const struct ks_policy *p, const struct norm *n)
{
        const size_t related_at = related_rules_at(p), hoisted = gateways_hoisted(p);
        char chain[COMPILE_NAME_SIZE];
        int k = 0;

        for (int inbound = 1; inbound >= 0 && k >= 0; inbound--) {
                stage_name(chain, st, "%s", inbound ? "inbound" : "outbound");
                if (inbound)
                        k = build_source_route_drops(st, chain);
                /* Services first, ICMP errors where related_rules_at() says, the link upkeep last: text_chains(). */
                for (size_t i = 0; i < p->n_services && k >= 0; i++) {
                        if (i == related_at)
                                k = build_related_rules(st, p, chain, inbound);
                        if (k >= 0)
                                k = build_conn_rules(st, chain, &n->conns[p->n_gateways + i], inbound);
                }
                for (size_t i = 0; i < hoisted && k >= 0; i++)
                        k = build_gateway_rules(st, chain, p->gateways[i].name, &n->gws[i], inbound, GW_RULES_HEAD);
                for (size_t i = 0; i < p->n_gateways && k >= 0; i++) {
                        const struct ks_gateway *g = &p->gateways[i];

                        if (p->n_services + i == related_at)
                                k = build_related_rules(st, p, chain, inbound);
                        if (k >= 0)
                                k = build_gateway_rules(st, chain, g->name, &n->gws[i], inbound,
                                                        i < hoisted ? GW_RULES_REST : GW_RULES_ALL);
                        if (k >= 0 && gateway_ping_rules(g) && !g->tracked)
                                k = build_ping_rules(st, chain, g->name, &n->gws[i], inbound);
                        if (k >= 0)
                                k = build_conn_rules(st, chain, &n->conns[i], inbound);
                }
                if (k >= 0 && related_at == p->n_services + p->n_gateways)
                        k = build_related_rules(st, p, chain, inbound);
                if (k >= 0 && inbound)
                        k = compile_upkeep_rules(st, p, chain, upkeep_in, ELEMENTSOF(upkeep_in));
                if (k >= 0 && !inbound)
                        k = build_drop_rules(st, chain);
                if (k >= 0)
                        k = build_tail_rules(st, p, chain, inbound);
        }
        if (k >= 0)
                k = build_error_rules(st, p, n);
        if (k >= 0)
                k = compile_forward(st);
        if (k >= 0)
                k = compile_upkeep_local_out(st, p);
        return k < 0 ? k : build_hold_rule(st);
}

/* Everything of policy p, named "P/...", without hooks. */
static int build_policy(struct ks_ruleset *r, const char *table, const struct ks_policy *p)
{
        const struct stage st = { .r = r, .table = table, .policy = p->name };
        struct norm n;
        int k;

        k = norm_policy(p, &n);
        if (k < 0)
                return k;
        k = build_counters(&st, p);
        if (k >= 0)
                k = build_drop_counter(&st);
        if (k >= 0)
                k = build_sets(&st, p, &n);
        if (k >= 0)
                k = build_drop_sets(&st);
        if (k >= 0)
                k = build_chains(&st, p);
        if (k >= 0)
                k = build_rules(&st, p, &n);
        norm_free(&n);
        return k;
}

const struct base_chain base_chains[N_BASE_CHAINS] = {
        { CHAIN_PREROUTING, "inbound", NF_INET_PRE_ROUTING, NFT_META_IIFNAME },
        { CHAIN_FORWARD, CHAIN_FORWARD_OUT, NF_INET_FORWARD, NFT_META_OIFNAME },
        { CHAIN_OUTPUT, CHAIN_LOCAL_OUT, NF_INET_LOCAL_OUT, NFT_META_OIFNAME },
};

/*
 * Hook policy `active` (not NULL) or unhook (NULL). flush: the chains may
 * exist already (compile_hook), so flush them before adding the jump.
 */
static int build_hook(struct ks_ruleset *r, const char *table, const char *active, bool flush, bool hold)
{
        int k = 0;

        for (size_t i = 0; k >= 0 && i < ELEMENTSOF(base_chains); i++) {
                const struct base_chain *bc = &base_chains[i];

                if (!active) {
                        k = build_chain(r, table, bc->name, -1);
                        if (k >= 0)
                                k = build_delchain(r, table, bc->name);
                        continue;
                }
                k = build_chain(r, table, bc->name, bc->hook);
                if (k >= 0 && flush)
                        k = build_flush(r, table, bc->name);
                if (k >= 0)
                        k = build_jump_rule(r, table, bc->name, bc->ifkey, active, hold ? CHAIN_HOLD : bc->target);
        }
        return k;
}

/*
 * The parser checks names; a policy built otherwise must not make names that
 * truncate or lex as numbers. Host names must have been pinned by
 * policy_resolve(): compiling without their addresses would cut the gateway.
 */
bool names_valid(const struct ks_policy *p)
{
        if (!p || policy_name_valid(p->name) < 0)
                return false;
        for (size_t i = 0; i < p->n_uplinks; i++)
                if (!uplink_name_valid(p->uplinks[i]))
                        return false;
        for (size_t i = 0; i < p->n_gateways; i++) {
                const struct ks_gateway *g = &p->gateways[i];

                if (!g->name || g->name[0] == '\0' || strlen(g->name) > POLICY_NAME_MAX)
                        return false;
                for (size_t j = 0; j < g->n_hostnames; j++)
                        if (g->hostnames[j].n_addrs == 0)
                                return false;
        }
        for (size_t i = 0; i < p->n_services; i++) {
                const struct ks_service *sv = &p->services[i];

                if (!sv->name || sv->name[0] == '\0' || strlen(sv->name) > POLICY_NAME_MAX || sv->n_ports == 0)
                        return false;
                for (size_t j = 0; j < sv->n_hostnames; j++)
                        if (sv->hostnames[j].n_addrs == 0)
                                return false;
                for (size_t j = 0; j < sv->n_from_hostnames; j++)
                        if (sv->from_hostnames[j].n_addrs == 0)
                                return false;
        }
        return true;
}

bool table_name_valid(const char *table)
{
        return table && table[0] != '\0' && strlen(table) < NFT_TABLE_MAXNAMELEN;
}

static int table_with_hooks(const struct ks_policy *const *policies, size_t n, const char *active, bool hold,
                            const char *table, struct ks_ruleset **ret)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *r = NULL;
        bool found = false;
        int k;

        if ((!policies && n > 0) || !table_name_valid(table) || !ret)
                return -EINVAL;
        if (active && policy_name_valid(active) < 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!names_valid(policies[i]))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(policies[i]->name, policies[j]->name) == 0)
                                return -EINVAL;
                if (active && strcmp(policies[i]->name, active) == 0)
                        found = true;
        }
        if (active && !found)
                return -ENOENT;

        r = ruleset_new();
        if (!r)
                return -ENOMEM;
        k = build_table(r, table);
        for (size_t i = 0; k >= 0 && i < n; i++)
                k = build_policy(r, table, policies[i]);
        if (k >= 0 && active)
                k = build_hook(r, table, active, false, hold);
        if (k >= 0)
                k = ruleset_seal(r, VERSION);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

int compile_table(const struct ks_policy *const *policies, size_t n, const char *active,
                  const char *table, struct ks_ruleset **ret)
{
        return table_with_hooks(policies, n, active, false, table, ret);
}

int compile_table_held(const struct ks_policy *const *policies, size_t n, const char *active,
                       const char *table, struct ks_ruleset **ret)
{
        if (!active)
                return -EINVAL;
        return table_with_hooks(policies, n, active, true, table, ret);
}

static const char *op_name(const struct op *op);

/* Has r a chain named `name`? */
static bool has_chain(const struct ks_ruleset *r, const char *name)
{
        for (size_t i = 0; i < r->n_ops; i++)
                if (r->ops[i].kind == OP_CHAIN && r->ops[i].type == NFT_MSG_NEWCHAIN &&
                    strcmp(op_name(&r->ops[i]), name) == 0)
                        return true;
        return false;
}

int ruleset_hold(struct ks_ruleset *r, const char *table, const char *active, struct ks_summary *s)
{
        char hold[COMPILE_NAME_SIZE];
        size_t n;
        int k;

        if (!r || r->n_ops == 0 || r->ops[0].kind != OP_TABLE || !table_name_valid(table) ||
            policy_name_valid(active) < 0)
                return -EINVAL;
        if (snprintf(hold, sizeof(hold), "%s" COMPILE_NAME_SEP CHAIN_HOLD, active) >= (int)sizeof(hold))
                return -EINVAL;
        if (!has_chain(r, hold))
                return -ENOENT;
        n = r->n_ops;
        k = build_hook(r, table, active, false, true);
        if (k >= 0 && s)
                k = ruleset_summarize(&(struct ks_ruleset){ .ops = r->ops + n, .n_ops = r->n_ops - n }, s);
        return k < 0 ? k : 0;
}

int compile_hook(const char *active, const char *table, struct ks_ruleset **ret)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *r = NULL;
        int k;

        if (!table_name_valid(table) || !ret || (active && policy_name_valid(active) < 0))
                return -EINVAL;
        r = ruleset_new();
        if (!r)
                return -ENOMEM;
        k = build_hook(r, table, active, true, false);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

/* ---- Batch ------------------------------------------------------------- */

static struct nlmsghdr *batch_msg(struct nftnl_batch *b, uint16_t family, uint16_t type, uint16_t flags,
                                  uint32_t *seq)
{
        return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b), type, family, flags | NLM_F_ACK, (*seq)++);
}

/* The family of an op's object (a ruleset may hold inet and netdev tables' messages). */
static uint16_t op_family(const struct op *op)
{
        switch (op->kind) {
        case OP_TABLE:
                return (uint16_t)nftnl_table_get_u32(op->obj, NFTNL_TABLE_FAMILY);
        case OP_OBJ:
                return (uint16_t)nftnl_obj_get_u32(op->obj, NFTNL_OBJ_FAMILY);
        case OP_SET:
                return (uint16_t)nftnl_set_get_u32(op->obj, NFTNL_SET_FAMILY);
        case OP_CHAIN:
                return (uint16_t)nftnl_chain_get_u32(op->obj, NFTNL_CHAIN_FAMILY);
        case OP_RULE:
                return (uint16_t)nftnl_rule_get_u32(op->obj, NFTNL_RULE_FAMILY);
        }
        return NFPROTO_INET;
}

static int batch_close_msg(struct nftnl_batch *b)
{
        return batch_next(b) < 0 ? -ENOMEM : 0;
}

/* Elements in as many messages as it takes; each stays below 64 KiB. */
static int batch_set_elems(struct nftnl_set *s, struct nftnl_batch *b, uint32_t *seq)
{
        struct nftnl_set_elems_iter *it;
        struct nlmsghdr *nlh;
        int more, k = 0;

        it = nftnl_set_elems_iter_create(s);
        if (!it)
                return -ENOMEM;
        /* The kernel refuses an element message without elements. */
        if (!nftnl_set_elems_iter_cur(it)) {
                nftnl_set_elems_iter_destroy(it);
                return 0;
        }
        do {
                nlh = batch_msg(b, (uint16_t)nftnl_set_get_u32(s, NFTNL_SET_FAMILY), NFT_MSG_NEWSETELEM,
                                NLM_F_CREATE, seq);
                more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);
                k = batch_close_msg(b);
        } while (k >= 0 && more > 0);
        nftnl_set_elems_iter_destroy(it);
        return k;
}

/* The message of op: its object, or for a set op other than NEWSET its elements (none: a flush). */
static void op_payload(struct nlmsghdr *nlh, const struct op *op)
{
        switch (op->kind) {
        case OP_TABLE:
                nftnl_table_nlmsg_build_payload(nlh, op->obj);
                break;
        case OP_OBJ:
                nftnl_obj_nlmsg_build_payload(nlh, op->obj);
                break;
        case OP_SET:
                if (op->type != NFT_MSG_NEWSET)
                        nftnl_set_elems_nlmsg_build_payload(nlh, op->obj);
                else
                        nftnl_set_nlmsg_build_payload(nlh, op->obj);
                break;
        case OP_CHAIN:
                nftnl_chain_nlmsg_build_payload(nlh, op->obj);
                break;
        case OP_RULE:
                nftnl_rule_nlmsg_build_payload(nlh, op->obj);
                break;
        }
}

int ruleset_to_batch(const struct ks_ruleset *r, struct nftnl_batch *b, uint32_t *seq)
{
        int k = 0;

        if (!r || !b || !seq)
                return -EINVAL;
        for (size_t i = 0; k >= 0 && i < r->n_ops; i++) {
                const struct op *op = &r->ops[i];
                struct nlmsghdr *nlh = batch_msg(b, op_family(op), op->type, op->flags, seq);

                op_payload(nlh, op);
                k = batch_close_msg(b);
                if (k >= 0 && op->kind == OP_SET && op->type == NFT_MSG_NEWSET)
                        k = batch_set_elems(op->obj, b, seq);
        }
        return k;
}

/* ---- Staging in steps: big sets filled by transactions of their own ------ */

struct count_until {
        size_t n, max;
};

static int count_until(struct nftnl_set_elem *e, void *data)
{
        struct count_until *c = data;

        return ++c->n > c->max ? -1 : 0;
}

/* Whether set s has more than max elements: counted up to max + 1 only (every step asks, of every set). */
static bool elems_exceed(struct nftnl_set *s, size_t max)
{
        struct count_until c = { .max = max };

        nftnl_set_elem_foreach(s, count_until, &c);
        return c.n > max;
}

/* Does op's object belong to policy `policy` ("policy/...")? */
static bool op_of_policy(const struct op *op, const char *policy)
{
        const char *name = op_name(op);
        size_t len = policy ? strlen(policy) : 0;

        return policy && name && strncmp(name, policy, len) == 0 && strncmp(name + len, COMPILE_NAME_SEP, 1) == 0;
}

/* Of a policy at all (not the table, a base chain or its rules)? */
static bool op_of_a_policy(const struct op *op)
{
        const char *name = op_name(op);

        return name && strstr(name, COMPILE_NAME_SEP);
}

enum wait { WAIT_NONE, WAIT_ELEMS, WAIT_WHOLE };

/*
 * What of op waits for the steps: nothing; the elements of a big set (sent
 * empty at first); or the whole op, with c->policies, for every op of a
 * policy other than keep.
 */
static enum wait op_waits(const struct op *op, size_t max, const char *keep, bool policies)
{
        if (op_of_policy(op, keep))
                return WAIT_NONE;
        if (policies && op_of_a_policy(op))
                return WAIT_WHOLE;
        if (op->kind != OP_SET || op->type != NFT_MSG_NEWSET || max == 0)
                return WAIT_NONE;
        return elems_exceed(op->obj, max) ? WAIT_ELEMS : WAIT_NONE;
}

static enum wait cursor_waits(const struct ks_ruleset *r, const struct ruleset_cursor *c, size_t i)
{
        if (c->done && c->done[i])
                return WAIT_NONE;
        return op_waits(&r->ops[i], c->max, c->keep, c->policies);
}

static void op_msg(const struct op *op, struct nftnl_batch *b, uint32_t *seq)
{
        op_payload(batch_msg(b, op_family(op), op->type, op->flags, seq), op);
}

int ruleset_to_batch_staged(const struct ks_ruleset *r, struct nftnl_batch *b, uint32_t *seq, size_t max,
                            const char *keep, bool policies, bool *ret_deferred)
{
        int k = 0;

        if (!r || !b || !seq || !ret_deferred)
                return -EINVAL;
        *ret_deferred = false;
        for (size_t i = 0; k >= 0 && i < r->n_ops; i++) {
                const struct op *op = &r->ops[i];
                enum wait w = op_waits(op, max, keep, policies);

                if (w == WAIT_NONE) {
                        struct ks_ruleset one = { .ops = (struct op *)op, .n_ops = 1 };

                        k = ruleset_to_batch(&one, b, seq);
                        continue;
                }
                *ret_deferred = true;
                if (w == WAIT_ELEMS) {
                        op_msg(op, b, seq);     /* the set, empty */
                        k = batch_close_msg(b);
                }
        }
        return k;
}

void ruleset_cursor_clear(struct ruleset_cursor *c)
{
        if (c->it)
                nftnl_set_elems_iter_destroy(c->it);
        free(c->done);
        *c = (struct ruleset_cursor){ .max = c->max, .keep = c->keep, .policies = c->policies };
}

/*
 * One NEWSETELEM message of set's elements from c->elem on: at most *budget
 * of them, and no more than one attribute holds (64 KiB; the one that does
 * not fit goes first in the next message). libnftnl's iterator builds whole
 * 64 KiB messages only: ~1,500 elements, several ms of the kernel's time.
 */
static void elems_msg(struct nlmsghdr *nlh, const struct nftnl_set *set, struct ruleset_cursor *c, size_t *budget)
{
        struct nlattr *list;
        int i = 0;

        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, nftnl_set_get_str(set, NFTNL_SET_TABLE));
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, nftnl_set_get_str(set, NFTNL_SET_NAME));
        if (nftnl_set_is_set(set, NFTNL_SET_ID))
                mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(nftnl_set_get_u32(set, NFTNL_SET_ID)));
        list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
        while (c->elem && *budget > 0) {
                struct nlattr *one = nftnl_set_elem_nlmsg_build(nlh, c->elem, ++i);

                if ((char *)one + one->nla_len - (char *)list > UINT16_MAX) {
                        nlh->nlmsg_len -= one->nla_len;
                        break;
                }
                (*budget)--;
                c->elem = nftnl_set_elems_iter_next(c->it);
        }
        mnl_attr_nest_end(nlh, list);
}

bool ruleset_cursor_pending(const struct ks_ruleset *r, const struct ruleset_cursor *c, const char *policy)
{
        for (size_t i = c->op; i < r->n_ops; i++)
                if (cursor_waits(r, c, i) != WAIT_NONE && op_of_policy(&r->ops[i], policy))
                        return true;
        return false;
}

static void cursor_next(struct ruleset_cursor *c)
{
        if (c->it)
                nftnl_set_elems_iter_destroy(c->it);
        c->it = NULL;
        c->elem = NULL;
        c->created = false;
        c->op++;
}

/* Up to *budget of the elements of the set at the cursor; 0, or -ENOMEM. Moves on after its last. */
static int cursor_elems(const struct ks_ruleset *r, struct ruleset_cursor *c, struct nftnl_batch *b,
                        uint32_t *seq, size_t *budget)
{
        struct nftnl_set *set = r->ops[c->op].obj;

        if (!c->it) {
                c->it = nftnl_set_elems_iter_create(set);
                if (!c->it)
                        return -ENOMEM;
                c->elem = nftnl_set_elems_iter_next(c->it);     /* NULL: no element */
        }
        if (c->elem) {
                elems_msg(batch_msg(b, (uint16_t)nftnl_set_get_u32(set, NFTNL_SET_FAMILY), NFT_MSG_NEWSETELEM,
                                    NLM_F_CREATE, seq), set, c, budget);
                if (batch_close_msg(b) < 0)
                        return -ENOMEM;
        }
        if (!c->elem)
                cursor_next(c);
        return 0;
}

static bool cursor_more(const struct ks_ruleset *r, const struct ruleset_cursor *c)
{
        for (size_t i = c->op; i < r->n_ops; i++)
                if (cursor_waits(r, c, i) != WAIT_NONE)
                        return true;
        return false;
}

int ruleset_rest_to_batch(const struct ks_ruleset *r, struct ruleset_cursor *c, struct nftnl_batch *b,
                          uint32_t *seq, size_t budget)
{
        int k = 0;

        while (k >= 0 && c->op < r->n_ops && budget > 0) {
                const struct op *op = &r->ops[c->op];
                enum wait w = cursor_waits(r, c, c->op);

                if (w == WAIT_NONE) {
                        cursor_next(c);
                } else if (w == WAIT_WHOLE && !c->created) {
                        op_msg(op, b, seq);     /* a set goes empty; its elements follow */
                        k = batch_close_msg(b);
                        budget -= budget < STEP_OP_WEIGHT ? budget : STEP_OP_WEIGHT;
                        if (op->kind == OP_SET && op->type == NFT_MSG_NEWSET)
                                c->created = true;
                        else
                                cursor_next(c);
                } else {
                        k = cursor_elems(r, c, b, seq, &budget);
                }
        }
        if (k < 0)
                return k;
        return cursor_more(r, c) ? 1 : 0;
}

int ruleset_policy_to_batch(const struct ks_ruleset *r, struct ruleset_cursor *c, struct nftnl_batch *b,
                            uint32_t *seq, const char *policy)
{
        int k = 0;

        if (!c->done && !(c->done = calloc(r->n_ops ? r->n_ops : 1, sizeof(bool))))
                return -ENOMEM;
        for (size_t i = c->op; k >= 0 && i < r->n_ops; i++) {
                const struct op *op = &r->ops[i];
                enum wait w = cursor_waits(r, c, i);

                if (w == WAIT_NONE || !op_of_policy(op, policy))
                        continue;
                if (i == c->op && (c->created || c->it)) {
                        /* Begun by the steps: the rest of its elements. */
                        size_t all = SIZE_MAX;

                        while (k >= 0 && c->op == i)
                                k = cursor_elems(r, c, b, seq, &all);
                        c->done[i] = true;
                        continue;
                }
                if (w == WAIT_WHOLE) {
                        struct ks_ruleset one = { .ops = (struct op *)op, .n_ops = 1 };

                        k = ruleset_to_batch(&one, b, seq);     /* a set with its elements */
                } else {
                        k = batch_set_elems(op->obj, b, seq);
                }
                c->done[i] = true;
        }
        return k < 0 ? k : cursor_more(r, c) ? 1 : 0;
}

/* ---- Summary: the shape of what these messages make (read-back checks) ---- */

static int summarize_rule(const struct op *op, struct ks_summary *s)
{
        struct summary_chain *c;

        if (op->type != NFT_MSG_DELRULE)
                return summary_add_rule(s, op->obj);
        /* A flush. */
        c = summary_chain(s, nftnl_rule_get_str(op->obj, NFTNL_RULE_CHAIN), true);
        if (!c)
                return -ENOMEM;
        summary_flush_chain(c);
        return 0;
}

static int summarize_op(const struct op *op, struct ks_summary *s)
{
        struct summary_chain *c;
        struct summary_set *st;

        if (op_family(op) != NFPROTO_INET)
                return 0;       /* the summary is of the inet table; compile-links.c adds a netdev one */
        switch (op->kind) {
        case OP_TABLE:
                return 0;
        case OP_OBJ:
                return summary_add_counter(s, nftnl_obj_get_str(op->obj, NFTNL_OBJ_NAME));
        case OP_SET:
                st = summary_set(s, nftnl_set_get_str(op->obj, NFTNL_SET_NAME), true);
                if (!st)
                        return -ENOMEM;
                summary_set_elems(s, st, op->obj);      /* and their digest, if s is keyed */
                st->dynamic = nftnl_set_get_u32(op->obj, NFTNL_SET_FLAGS) & NFT_SET_EVAL;
                return 0;
        case OP_CHAIN:
                if (op->type == NFT_MSG_DELCHAIN) {
                        summary_remove_chain(s, nftnl_chain_get_str(op->obj, NFTNL_CHAIN_NAME));
                        return 0;
                }
                c = summary_chain(s, nftnl_chain_get_str(op->obj, NFTNL_CHAIN_NAME), true);
                if (!c)
                        return -ENOMEM;
                if (nftnl_chain_is_set(op->obj, NFTNL_CHAIN_HOOKNUM)) {
                        c->base = true;
                        c->priority = nftnl_chain_get_s32(op->obj, NFTNL_CHAIN_PRIO);
                }
                return 0;
        case OP_RULE:
                return summarize_rule(op, s);
        }
        return 0;
}

int ruleset_summarize(const struct ks_ruleset *r, struct ks_summary *s)
{
        int k = 0;

        if (!r || !s)
                return -EINVAL;
        for (size_t i = 0; k >= 0 && i < r->n_ops; i++)
                k = summarize_op(&r->ops[i], s);
        /* A whole inet table (not a switch's fragment, nor the link layer's table): who built it. */
        if (k >= 0 && r->comment[0] && op_family(&r->ops[0]) == NFPROTO_INET)
                k = summary_set_comment(s, r->comment);
        return k;
}

/* ---- Dump: libnftnl's own text of every object ------------------------- */

static const char *op_family_name(const struct op *op)
{
        return op_family(op) == NFPROTO_NETDEV ? "netdev" : "inet";
}

int ruleset_dump(const struct ks_ruleset *r, FILE *f)
{
        if (!r || !f)
                return -EINVAL;
        for (size_t i = 0; i < r->n_ops; i++) {
                const struct op *op = &r->ops[i];

                switch (op->type) {
                case NFT_MSG_DELRULE:
                        fprintf(f, "delete rule %s %s %s\n", op_family_name(op), nftnl_rule_get_str(op->obj, NFTNL_RULE_TABLE),
                                nftnl_rule_get_str(op->obj, NFTNL_RULE_CHAIN));
                        continue;
                case NFT_MSG_DELCHAIN:
                        fprintf(f, "delete chain %s %s %s\n", op_family_name(op), nftnl_chain_get_str(op->obj, NFTNL_CHAIN_TABLE),
                                nftnl_chain_get_str(op->obj, NFTNL_CHAIN_NAME));
                        continue;
                case NFT_MSG_DELSETELEM:
                        fprintf(f, "flush set %s %s %s\n", op_family_name(op), nftnl_set_get_str(op->obj, NFTNL_SET_TABLE),
                                nftnl_set_get_str(op->obj, NFTNL_SET_NAME));
                        continue;
                }
                switch (op->kind) {
                case OP_TABLE:
                        nftnl_table_fprintf(f, op->obj, NFTNL_OUTPUT_DEFAULT, 0);
                        break;
                case OP_OBJ:
                        nftnl_obj_fprintf(f, op->obj, NFTNL_OUTPUT_DEFAULT, 0);
                        break;
                case OP_SET:
                        nftnl_set_fprintf(f, op->obj, NFTNL_OUTPUT_DEFAULT, 0);
                        break;
                case OP_CHAIN:
                        nftnl_chain_fprintf(f, op->obj, NFTNL_OUTPUT_DEFAULT, 0);
                        break;
                case OP_RULE:
                        /* libnftnl ends a rule with its last expression's newline. */
                        nftnl_rule_fprintf(f, op->obj, NFTNL_OUTPUT_DEFAULT, 0);
                        continue;
                }
                fputc('\n', f);
        }
        fflush(f);
        return ferror(f) ? -EIO : 0;
}

/* ---- Digest: the table as this compiler builds it, in its user data ---- */

/*
 * A restarted agent adopts the table the kernel holds only if it is exactly
 * what it would build (docs/design.md, "Adoption"). The shape (chains, rule
 * counts, sets, counters) says nothing of a rule's matches, so every table
 * carries in its user data a digest of its messages as the compiler built
 * them: an agent whose rules differ (another version, a fix of a match) sees
 * another digest and rebuilds. The kernel keeps the user data of a table's
 * creation (a later NEWTABLE does not change it), and nft lists it as the
 * table's comment. What a switch changes is left out: the base chains (names
 * without "P/"), flushes and deletions, and another table's objects
 * (P/uplinks, refilled by the link layer's switch), so the digest is the same
 * whichever policy is hooked. FNV-1a, 64 bits: a change detector against our
 * own versions, not a defence against forgery (the monitor and ownership are).
 */
#define DIGEST_BUFFER_SIZE (2 * BATCH_OVERRUN)
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
        const unsigned char *p = data;

        for (size_t i = 0; i < len; i++)
                h = (h ^ p[i]) * FNV_PRIME;
        return h;
}

static const char *op_name(const struct op *op)
{
        switch (op->kind) {
        case OP_TABLE:
                return NULL;
        case OP_OBJ:
                return nftnl_obj_get_str(op->obj, NFTNL_OBJ_NAME);
        case OP_SET:
                return nftnl_set_get_str(op->obj, NFTNL_SET_NAME);
        case OP_CHAIN:
                return nftnl_chain_get_str(op->obj, NFTNL_CHAIN_NAME);
        case OP_RULE:
                return nftnl_rule_get_str(op->obj, NFTNL_RULE_CHAIN);
        }
        return NULL;
}

static bool op_in_digest(const struct op *op, uint16_t family)
{
        const char *name = op_name(op);

        if (op_family(op) != family || !name || !strstr(name, COMPILE_NAME_SEP))
                return false;
        return op->type == NFT_MSG_NEWOBJ || op->type == NFT_MSG_NEWSET || op->type == NFT_MSG_NEWCHAIN ||
               op->type == NFT_MSG_NEWRULE;
}

/*
 * The message as ruleset_to_batch() writes it (sequence number 0), elements
 * included, but without the set's id: ids count the sets of the whole table,
 * so they depend on the policies before it (rules look sets up by name).
 */
static int digest_op(const struct op *op, char *buf, uint64_t *h)
{
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, op->type, op_family(op), op->flags, 0);
        struct nftnl_set_elems_iter *it;
        uint32_t set_id = 0;
        int more;

        if (op->kind == OP_TABLE)
                return 0;
        if (op->kind == OP_SET) {
                set_id = nftnl_set_get_u32(op->obj, NFTNL_SET_ID);
                nftnl_set_unset(op->obj, NFTNL_SET_ID);
                nftnl_set_nlmsg_build_payload(nlh, op->obj);
        } else {
                op_payload(nlh, op);
        }
        *h = fnv1a(*h, buf, nlh->nlmsg_len);
        memset(buf, 0, nlh->nlmsg_len);
        if (op->kind != OP_SET)
                return 0;
        it = nftnl_set_elems_iter_create(op->obj);
        while (it && nftnl_set_elems_iter_cur(it)) {
                nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWSETELEM, op_family(op), NLM_F_CREATE, 0);
                more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);
                *h = fnv1a(*h, buf, nlh->nlmsg_len);
                memset(buf, 0, DIGEST_BUFFER_SIZE);     /* a message that overflowed left bytes beyond its end */
                if (more <= 0)
                        break;
        }
        if (it)
                nftnl_set_elems_iter_destroy(it);
        if (set_id)
                nftnl_set_set_u32(op->obj, NFTNL_SET_ID, set_id);
        return it ? 0 : -ENOMEM;
}

/* The objects of one policy ("P/..."), in their order; the policies themselves in name order. */
struct digest_part {
        char policy[COMPILE_NAME_SIZE];
        size_t seq;
        uint64_t h;
};

static int part_cmp(const void *a, const void *b)
{
        const struct digest_part *x = a, *y = b;
        int c = strcmp(x->policy, y->policy);

        return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static struct digest_part *digest_part(struct digest_part **parts, size_t *n, const char *name)
{
        size_t len = strcspn(name, COMPILE_NAME_SEP);
        struct digest_part *p = *n ? &(*parts)[*n - 1] : NULL;

        if (p && strlen(p->policy) == len && strncmp(p->policy, name, len) == 0)
                return p;
        if (len >= COMPILE_NAME_SIZE || !(p = GREEDY_REALLOC(*parts, *n + 1)))
                return NULL;
        p = &p[*n];
        *p = (struct digest_part){ .seq = *n, .h = FNV_OFFSET };
        memcpy(p->policy, name, len);
        (*n)++;
        return p;
}

/*
 * The order of the policies in a table is the store's (a policy added by a
 * reload comes last, a start reads them in name order): it does not change
 * what the table does, so it does not change the digest either.
 */
int ruleset_digest(const struct ks_ruleset *r, uint64_t *ret)
{
        _cleanup_free_ struct digest_part *parts = NULL;
        _cleanup_free_ char *buf = NULL;
        uint64_t h = FNV_OFFSET;
        struct digest_part *p;
        uint16_t family;
        size_t n = 0;
        int k = 0;

        if (!r || !ret || r->n_ops == 0 || r->ops[0].kind != OP_TABLE)
                return -EINVAL;
        buf = calloc(1, DIGEST_BUFFER_SIZE);
        if (!buf)
                return -ENOMEM;
        family = op_family(&r->ops[0]);
        for (size_t i = 0; k >= 0 && i < r->n_ops; i++) {
                if (!op_in_digest(&r->ops[i], family))
                        continue;
                p = digest_part(&parts, &n, op_name(&r->ops[i]));
                k = p ? digest_op(&r->ops[i], buf, &p->h) : -ENOMEM;
        }
        if (k < 0)
                return k;
        if (n > 0)
                qsort(parts, n, sizeof(*parts), part_cmp);
        for (size_t i = 0; i < n; i++) {
                h = fnv1a(h, parts[i].policy, strlen(parts[i].policy) + 1);
                h = fnv1a(h, &parts[i].h, sizeof(parts[i].h));
        }
        *ret = h;
        return 0;
}

/* Every NEWTABLE of the ruleset's own table carries the comment: whichever one creates the table. */
int ruleset_seal(struct ks_ruleset *r, const char *version)
{
        _cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(COMPILE_COMMENT_SIZE);
        uint64_t digest;
        int k = ruleset_digest(r, &digest);

        if (k < 0)
                return k;
        if (!u)
                return -ENOMEM;
        k = snprintf(r->comment, sizeof(r->comment), COMPILE_COMMENT_PREFIX "%s" SUMMARY_DIGEST_MARK "%016" PRIx64,
                     version ? version : "", digest);
        if (k < 0 || (size_t)k >= sizeof(r->comment) || !nftnl_udata_put_strz(u, NFTNL_UDATA_TABLE_COMMENT, r->comment))
                return -EINVAL;
        for (size_t i = 0; i < r->n_ops; i++)
                if (r->ops[i].kind == OP_TABLE && r->ops[i].type == NFT_MSG_NEWTABLE &&
                    op_family(&r->ops[i]) == op_family(&r->ops[0]) &&
                    nftnl_table_set_data(r->ops[i].obj, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u),
                                         nftnl_udata_buf_len(u)) < 0)
                        return -ENOMEM;
        return 0;
}

const char *ruleset_comment(const struct ks_ruleset *r)
{
        return r && r->comment[0] ? r->comment : NULL;
}
