/* SPDX-License-Identifier: MIT */
/*
 * The drop sensor's part of a staged policy (docs/design.md, "The drop
 * sensor"): what P/outbound cuts is accounted in the kernel, per (source,
 * destination, protocol, destination port), in four dynamic sets with a
 * counter per element:
 *
 *   P/drops_v4, P/drops_v6                TCP and UDP, keyed with the port
 *   P/drops_v4_noport, P/drops_v6_noport  every other protocol, without
 *
 * each `size` DROPS_SET_SIZE, `timeout` DROPS_TIMEOUT_MS (refreshed by every
 * packet, `update`: the agent derives last_seen from the expiration). Each has
 * a twin without counters, P/drops_v4_first etc., fed by `add` in the same
 * rule: `add` never refreshes an expiration, so the twin's element tells the
 * tuple's first packet (first_seen), to the jiffy. (A `last` expression per
 * element would tell the last packet in one set, but nft 1.0.6 crashes
 * listing any ruleset that holds one.) A packet that
 * finds its set full is counted on the named counter P/drops_overflow. The
 * rules sit in P/outbound right before its tail, so they see exactly what the
 * tail cuts, forwarded or the gateway's own (P/local_out goes there). A
 * staged policy has no hook: the sets cost nothing while normal, and
 * isolating does not touch them. Pure, like the rest of the compiler.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdio.h>
#include <string.h>

#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "cleanup.h"
#include "compile-internal.h"
#include "compile.h"
#include "netlink-cleanup.h"

/* Which packets a rule pair takes: TCP, UDP (into the set with ports), or the rest (into the other). */
enum drop_kind { DROP_TCP, DROP_UDP, DROP_OTHER, N_DROP_KINDS };

static bool drop_kind_ports(enum drop_kind kind)
{
        return kind != DROP_OTHER;
}

static void drop_set_name(char buf[static COMPILE_NAME_SIZE], const struct stage *st, enum family f, bool ports,
                          bool first)
{
        stage_name(buf, st, DROPS_SET_PREFIX "%s%s%s", families[f].suffix, ports ? "" : DROPS_NOPORT_SUFFIX,
                   first ? DROPS_FIRST_SUFFIX : "");
}

static int build_drop_set(const struct stage *st, enum family f, bool ports, bool first)
{
        const struct family_info *fi = &families[f];
        uint32_t type = (fi->key_type << (2 * TYPE_BITS)) | (fi->key_type << TYPE_BITS) | TYPE_INET_PROTOCOL;
        uint32_t len = 2 * fi->addr_len + 4;
        char name[COMPILE_NAME_SIZE];
        struct nftnl_expr *counter;
        struct nftnl_set *s;

        if (ports) {
                type = (type << TYPE_BITS) | TYPE_INET_SERVICE;
                len += 4;
        }
        drop_set_name(name, st, f, ports, first);
        s = set_new(st, name, NFT_SET_EVAL | NFT_SET_TIMEOUT, type, len, BYTEORDER_INVALID);
        if (!s)
                return -ENOMEM;
        nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, DROPS_SET_SIZE);
        nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, first ? DROPS_FIRST_TIMEOUT_MS : DROPS_TIMEOUT_MS);
        if (first)
                return 0;
        counter = nftnl_expr_alloc("counter");
        if (!counter)
                return -ENOMEM;
        /* As nft for a set with one statement: NFTA_SET_EXPR; the set takes the expression over. */
        return nftnl_set_set_data(s, NFTNL_SET_EXPR, counter, 0) < 0 ? -ENOMEM : 0;
}

int build_drop_sets(const struct stage *st)
{
        int k = 0;

        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int ports = 1; k >= 0 && ports >= 0; ports--) {
                        k = build_drop_set(st, f, ports, false);
                        if (k >= 0)
                                k = build_drop_set(st, f, ports, true);
                }
        return k;
}

int build_drop_counter(const struct stage *st)
{
        _cleanup_(nftnl_obj_freep) struct nftnl_obj *o = nftnl_obj_alloc();
        char name[COMPILE_NAME_SIZE];

        if (!o)
                return -ENOMEM;
        stage_name(name, st, COUNTER_DROPS_OVERFLOW);
        nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, NFPROTO_INET);
        nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
        nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_PKTS, 0);
        nftnl_obj_set_u64(o, NFTNL_OBJ_CTR_BYTES, 0);
        nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, st->table);
        nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
        if (!nftnl_obj_is_set(o, NFTNL_OBJ_TABLE) || !nftnl_obj_is_set(o, NFTNL_OBJ_NAME))
                return -ENOMEM;
        return ruleset_push(st->r, OP_OBJ, NFT_MSG_NEWOBJ, NLM_F_CREATE, TAKE_PTR(o));
}

/* meta l4proto tcp|udp, or meta l4proto != tcp meta l4proto != udp: the first match of nft's bytecode. */
static int emit_drop_kind(struct nftnl_rule *rule, enum drop_kind kind)
{
        static const uint8_t tcp = IPPROTO_TCP, udp = IPPROTO_UDP;
        int k;

        switch (kind) {
        case DROP_TCP:
                return emit_meta_eq(rule, NFT_META_L4PROTO, IPPROTO_TCP);
        case DROP_UDP:
                return emit_meta_eq(rule, NFT_META_L4PROTO, IPPROTO_UDP);
        case DROP_OTHER:
        case N_DROP_KINDS:
                break;
        }
        k = emit_meta(rule, NFT_META_L4PROTO, NFT_REG_1);
        if (k >= 0)
                k = emit_cmp(rule, NFT_REG_1, NFT_CMP_NEQ, &tcp, sizeof(tcp));
        if (k >= 0)
                k = emit_meta(rule, NFT_META_L4PROTO, NFT_REG_1);
        return k < 0 ? k : emit_cmp(rule, NFT_REG_1, NFT_CMP_NEQ, &udp, sizeof(udp));
}

/* The key in registers from NFT_REG_1 on: saddr . daddr . l4proto [. th dport], as nft places it. */
static int emit_drop_key(struct nftnl_rule *rule, const struct stage *st, enum family f, bool ports)
{
        const struct family_info *fi = &families[f];
        size_t len = fi->addr_len;
        int k;

        k = emit_family(rule, st, f);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, fi->saddr_offset, (uint32_t)len, NFT_REG_1);
        if (k >= 0)
                k = emit_payload(rule, NFT_PAYLOAD_NETWORK_HEADER, fi->daddr_offset, (uint32_t)len,
                                 concat_reg(len));
        if (k >= 0)
                k = emit_meta(rule, NFT_META_L4PROTO, concat_reg(2 * len));
        if (k >= 0 && ports)
                k = emit_payload(rule, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, concat_reg(2 * len + 4));
        return k;
}

static int emit_dynset(struct nftnl_rule *rule, uint32_t op, const char *set)
{
        struct nftnl_expr *e = rule_expr(rule, "dynset");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, op);
        return nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set) < 0 ? -ENOMEM : 0;
}

/*
 * update @P/drops_vN[_noport] { key } add @P/drops_vN[_noport]_first { key }:
 * a tuple that does not fit in the first set ends the rule (it is overflow).
 */
static int build_drop_update(const struct stage *st, const char *chain, enum family f, enum drop_kind kind,
                             const char *set, const char *first)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_drop_kind(rule, kind);
        if (k >= 0)
                k = emit_drop_key(rule, st, f, drop_kind_ports(kind));
        if (k >= 0)
                k = emit_dynset(rule, NFT_DYNSET_OP_UPDATE, set);
        return k < 0 ? k : emit_dynset(rule, NFT_DYNSET_OP_ADD, first);
}

/*
 * key != @set counter name "P/drops_overflow": an update that fails (the set
 * is full) ends its rule, so the next one looks the key up again; only a
 * packet whose tuple did not fit is counted.
 */
static int build_drop_overflow(const struct stage *st, const char *chain, enum family f, enum drop_kind kind,
                               const char *set)
{
        struct nftnl_rule *rule = rule_new(st, chain);
        char counter[COMPILE_NAME_SIZE];
        struct nftnl_expr *e;
        int k;

        if (!rule)
                return -ENOMEM;
        k = emit_drop_kind(rule, kind);
        if (k >= 0)
                k = emit_drop_key(rule, st, f, drop_kind_ports(kind));
        if (k < 0)
                return k;
        e = rule_expr(rule, "lookup");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
        if (nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set) < 0)
                return -ENOMEM;
        stage_name(counter, st, COUNTER_DROPS_OVERFLOW);
        return emit_counter_ref(rule, counter);
}

int build_drop_rules(const struct stage *st, const char *chain)
{
        char set[COMPILE_NAME_SIZE], first[COMPILE_NAME_SIZE];
        int k = 0;

        for (int f = 0; k >= 0 && f < N_FAMILIES; f++)
                for (int kind = 0; k >= 0 && kind < N_DROP_KINDS; kind++) {
                        drop_set_name(set, st, f, drop_kind_ports(kind), false);
                        drop_set_name(first, st, f, drop_kind_ports(kind), true);
                        k = build_drop_update(st, chain, f, kind, set, first);
                        if (k >= 0)
                                k = build_drop_overflow(st, chain, f, kind, set);
                }
        return k;
}

/* ---- The same in nft syntax, as `nft list` prints it ---- */

void text_drop_counter(FILE *f, const char *policy)
{
        fprintf(f, "\tcounter %s" COMPILE_NAME_SEP COUNTER_DROPS_OVERFLOW " {\n\t\tpackets 0 bytes 0\n\t}\n\n", policy);
}

/* As nft prints a timeout of whole hours or days: "1h", "7d". */
static void text_timeout(char buf[static 32], unsigned long long ms)
{
        if (ms % (24 * 3600000ULL) == 0)
                snprintf(buf, 32, "%llud", ms / (24 * 3600000ULL));
        else
                snprintf(buf, 32, "%lluh", ms / 3600000ULL);
}

void text_drop_sets(FILE *f, const char *policy)
{
        char timeout[2][32];

        text_timeout(timeout[0], DROPS_TIMEOUT_MS);
        text_timeout(timeout[1], DROPS_FIRST_TIMEOUT_MS);
        for (int fam = 0; fam < N_FAMILIES; fam++)
                for (int ports = 1; ports >= 0; ports--)
                        for (int first = 0; first <= 1; first++)
                                fprintf(f, "\tset %s" COMPILE_NAME_SEP DROPS_SET_PREFIX "%s%s%s {\n"
                                        "\t\ttype %s . %s . inet_proto%s\n\t\tsize %d\n\t\tflags dynamic,timeout\n"
                                        "%s\t\ttimeout %s\n\t}\n\n",
                                        policy, families[fam].suffix, ports ? "" : DROPS_NOPORT_SUFFIX,
                                        first ? DROPS_FIRST_SUFFIX : "", families[fam].type_name,
                                        families[fam].type_name, ports ? " . inet_service" : "", DROPS_SET_SIZE,
                                        first ? "" : "\t\tcounter\n",
                                        timeout[first]);
}

/*
 * nft folds "meta l4proto tcp" and "th dport" into "tcp dport" when it lists
 * the rule; the rest keeps its two inequalities.
 */
void text_drop_rules(FILE *f, const char *policy)
{
        static const char *const heads[N_DROP_KINDS] = { "", "", "meta l4proto != tcp meta l4proto != udp " };
        static const char *const ports[N_DROP_KINDS] = { " . tcp dport", " . udp dport", "" };

        for (int fam = 0; fam < N_FAMILIES; fam++) {
                const char *ip = families[fam].nft_prefix;
                const char *suffix = families[fam].suffix;

                for (int kind = 0; kind < N_DROP_KINDS; kind++) {
                        const char *noport = drop_kind_ports(kind) ? "" : DROPS_NOPORT_SUFFIX;

                        fprintf(f, "\t\t%supdate @%s" COMPILE_NAME_SEP DROPS_SET_PREFIX "%s%s { %s saddr . %s daddr . "
                                "meta l4proto%s } add @%s" COMPILE_NAME_SEP DROPS_SET_PREFIX "%s%s" DROPS_FIRST_SUFFIX
                                " { %s saddr . %s daddr . meta l4proto%s }\n", heads[kind], policy, suffix, noport, ip,
                                ip, ports[kind], policy, suffix, noport, ip, ip, ports[kind]);
                        fprintf(f, "\t\t%s%s saddr . %s daddr . meta l4proto%s != @%s" COMPILE_NAME_SEP DROPS_SET_PREFIX
                                "%s%s counter name \"%s" COMPILE_NAME_SEP COUNTER_DROPS_OVERFLOW "\"\n",
                                heads[kind], ip, ip, ports[kind], policy, suffix, noport, policy);
                }
        }
}
