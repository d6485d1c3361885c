/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "cleanup.h"
#include "compile-internal.h"
#include "compile-tripwire.h"
#include "netlink-cleanup.h"

/* The trip-wire's table is built by compile.c's builders, like inet killswitch and its link layer. */

static int add_set(const struct stage *st, const struct tripwire_spec *t)
{
        struct nftnl_set *s = set_new(st, TRIPWIRE_SET, 0, TYPE_IFNAME, IFNAMSIZ, BYTEORDER_HOST_ENDIAN);
        int k;

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_uplinks; i++) {
                char key[IFNAMSIZ] = {};

                memcpy(key, t->uplinks[i], strnlen(t->uplinks[i], IFNAMSIZ - 1));
                k = set_add_elem(s, key, sizeof(key), NULL, 0, false);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int add_chain(const struct stage *st)
{
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = chain_new(st->r, st->table, TRIPWIRE_CHAIN);

        if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0)
                return -ENOMEM;
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_POST_ROUTING);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, TRIPWIRE_PRIORITY);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
        return ruleset_push(st->r, OP_CHAIN, NFT_MSG_NEWCHAIN, NLM_F_CREATE, TAKE_PTR(c));
}

static int emit_limit(struct nftnl_rule *rule, uint64_t rate, uint64_t burst, uint32_t type, uint32_t flags)
{
        struct nftnl_expr *e = rule_expr(rule, "limit");

        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
        nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);        /* per second */
        nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, (uint32_t)burst);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, type);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, flags);
        return 0;
}

/* oifname @uplinks limit rate over R bytes/second burst R bytes limit rate 10/second log group G */
static int add_rule(const struct stage *st, const struct tripwire_spec *t)
{
        struct nftnl_rule *rule = rule_new(st, TRIPWIRE_CHAIN);
        struct nftnl_expr *e;
        int k;

        if (!rule)
                return -ENOMEM;
        if ((k = emit_meta(rule, NFT_META_OIFNAME, NFT_REG_1)) < 0 || (k = emit_lookup(rule, NFT_REG_1, TRIPWIRE_SET)) < 0)
                return k;
        /* A second's worth of burst: short peaks above the rate do not count as "over". */
        if ((k = emit_limit(rule, t->rate, t->rate, NFT_LIMIT_PKT_BYTES, NFT_LIMIT_F_INV)) < 0 ||
            (k = emit_limit(rule, TRIPWIRE_EVENTS_PER_SEC, TRIPWIRE_EVENTS_PER_SEC / 2, NFT_LIMIT_PKTS, 0)) < 0)
                return k;
        e = rule_expr(rule, "log");
        if (!e)
                return -ENOMEM;
        nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, t->log_group);
        return 0;
}

bool tripwire_spec_valid(const struct tripwire_spec *t)
{
        return t && t->n_uplinks > 0 && t->rate > 0 && t->rate <= UINT32_MAX;
}

int compile_tripwire(const struct tripwire_spec *t, struct ks_ruleset **ret)
{
        _cleanup_(ruleset_freep) struct ks_ruleset *r = NULL;
        struct stage st;
        int k;

        if (!tripwire_spec_valid(t) || !ret)
                return -EINVAL;
        r = ruleset_new();
        if (!r)
                return -ENOMEM;
        st = (struct stage){ .r = r, .table = TRIPWIRE_TABLE, .uncounted = true };
        if ((k = build_table(r, TRIPWIRE_TABLE)) < 0 || (k = add_set(&st, t)) < 0 || (k = add_chain(&st)) < 0 ||
            (k = add_rule(&st, t)) < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}
