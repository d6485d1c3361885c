/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "batch.h"
#include "cleanup.h"
#include "compile-tripwire.h"
#include "netlink-cleanup.h"

#define TYPE_IFNAME 41                  /* nft's datatype of ifname */
#define TRIPWIRE_PRIORITY 0

static struct nlmsghdr *msg(struct nftnl_batch *b, uint16_t type, uint16_t flags, uint32_t *seq)
{
        return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b), type, NFPROTO_INET, flags | NLM_F_ACK, (*seq)++);
}

static int add_table(struct nftnl_batch *b, uint32_t *seq)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();

        if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, TRIPWIRE_TABLE) < 0)
                return -ENOMEM;
        nftnl_table_nlmsg_build_payload(msg(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, seq), t);
        return batch_next(b) < 0 ? -ENOMEM : 0;
}

static int add_set(const struct tripwire_spec *t, struct nftnl_batch *b, uint32_t *seq)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *s = nftnl_set_alloc();

        if (!s || nftnl_set_set_str(s, NFTNL_SET_TABLE, TRIPWIRE_TABLE) < 0 ||
            nftnl_set_set_str(s, NFTNL_SET_NAME, TRIPWIRE_SET) < 0)
                return -ENOMEM;
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_u32(s, NFTNL_SET_FLAGS, 0);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, TYPE_IFNAME);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, IFNAMSIZ);
        nftnl_set_set_u32(s, NFTNL_SET_ID, 1);
        nftnl_set_nlmsg_build_payload(msg(b, NFT_MSG_NEWSET, NLM_F_CREATE, seq), s);
        if (batch_next(b) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_uplinks; i++) {
                struct nftnl_set_elem *e = nftnl_set_elem_alloc();
                char key[IFNAMSIZ] = {};

                if (!e)
                        return -ENOMEM;
                nftnl_set_elem_add(s, e);
                memcpy(key, t->uplinks[i], strnlen(t->uplinks[i], IFNAMSIZ - 1));
                if (nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, sizeof(key)) < 0)
                        return -ENOMEM;
        }
        nftnl_set_elems_nlmsg_build_payload(msg(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, seq), s);
        return batch_next(b) < 0 ? -ENOMEM : 0;
}

static int add_chain(struct nftnl_batch *b, uint32_t *seq)
{
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();

        if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, TRIPWIRE_TABLE) < 0 ||
            nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, TRIPWIRE_CHAIN) < 0 ||
            nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0)
                return -ENOMEM;
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_POST_ROUTING);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, TRIPWIRE_PRIORITY);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
        nftnl_chain_nlmsg_build_payload(msg(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, seq), c);
        return batch_next(b) < 0 ? -ENOMEM : 0;
}

static int add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
        if (!e)
                return -ENOMEM;
        nftnl_rule_add_expr(r, e);
        return 0;
}

static struct nftnl_expr *limit(uint64_t rate, uint64_t burst, uint32_t type, uint32_t flags)
{
        struct nftnl_expr *e = nftnl_expr_alloc("limit");

        if (!e)
                return NULL;
        nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, rate);
        nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);        /* per second */
        nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, (uint32_t)burst);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, type);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, flags);
        return e;
}

/* oifname @uplinks limit rate over R bytes/second burst R bytes limit rate 10/second log group G */
static int add_rule(const struct tripwire_spec *t, struct nftnl_batch *b, uint32_t *seq)
{
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nftnl_rule_alloc();
        struct nftnl_expr *e;
        int k;

        if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TRIPWIRE_TABLE) < 0 ||
            nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, TRIPWIRE_CHAIN) < 0)
                return -ENOMEM;
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);

        if ((e = nftnl_expr_alloc("meta"))) {
                nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_OIFNAME);
                nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
        }
        if ((k = add_expr(r, e)) < 0)
                return k;
        if ((e = nftnl_expr_alloc("lookup"))) {
                nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
                nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, TRIPWIRE_SET);
                nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, 1);
        }
        if ((k = add_expr(r, e)) < 0)
                return k;
        /* A second's worth of burst: short peaks above the rate do not count as "over". */
        if ((k = add_expr(r, limit(t->rate, t->rate, NFT_LIMIT_PKT_BYTES, NFT_LIMIT_F_INV))) < 0)
                return k;
        if ((k = add_expr(r, limit(TRIPWIRE_EVENTS_PER_SEC, TRIPWIRE_EVENTS_PER_SEC / 2, NFT_LIMIT_PKTS, 0))) < 0)
                return k;
        if ((e = nftnl_expr_alloc("log")))
                nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, t->log_group);
        if ((k = add_expr(r, e)) < 0)
                return k;
        nftnl_rule_nlmsg_build_payload(msg(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, seq), r);
        return batch_next(b) < 0 ? -ENOMEM : 0;
}

int compile_tripwire(const struct tripwire_spec *t, struct nftnl_batch *b, uint32_t *seq)
{
        int r;

        if (!t || t->n_uplinks == 0 || t->rate == 0 || t->rate > UINT32_MAX || !b || !seq)
                return -EINVAL;
        if ((r = add_table(b, seq)) < 0 || (r = add_set(t, b, seq)) < 0 || (r = add_chain(b, seq)) < 0 ||
            (r = add_rule(t, b, seq)) < 0)
                return r;
        return 0;
}
