/* SPDX-License-Identifier: MIT */
/*
 * Where the switch's kernel transaction goes (issue 15): send of a switch batch
 * to its last acknowledgement, through the agent's own transport (nft.c), for
 * candidate designs, against a table of realistic size (a policy of 10,000
 * entries and a small second one staged, inet and netdev tables, owner+persist;
 * an event listener joined, as the agent's monitor is):
 *
 *   A  today's switch: three hooked base chains created (NEWCHAIN with hook,
 *      flush, jump), and the link layer (P/uplinks refilled, netdev ingress
 *      and egress created bound to the uplinks), in two transactions or one;
 *   B  base chains always present in tables kept dormant while normal, each
 *      with one rule `meta nfproto vmap @switch_HOOK` (netdev: `iifname vmap`,
 *      `oifname vmap`) whose elements jump to the policy in force: isolate =
 *      elements + NEWTABLE waking both tables, one transaction;
 *   C  one dormant table pair per policy: wake one, put the other to sleep;
 *   and a dormant table without owner, for the bare cost of waking.
 *
 * It also prints what this kernel accepts in one batch. Two findings shape the
 * figures (docs/performance.md, "The switch itself"): the owner of an owned
 * table may not change its dormant flag (EOPNOTSUPP both ways), so B and C hand
 * the owner's socket over before each such change (close it: the persistent
 * tables are orphaned; the switch's NEWTABLE adopts them from a new socket);
 * and registering the first hook of a hook point anywhere on the machine (or
 * unregistering the last) patches kernel code (static keys), which costs tens
 * of microseconds on a VM: --warm keeps them on with a site firewall's tables.
 *
 * Runs in a network namespace of its own (unshare: gone when it exits). Prints
 * figures; asserts nothing. Root:
 *   build/tests/bench/bench-switch [RUNS] [--warm] [--no-monitor] [--only=a|wake]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <linux/netfilter/nf_tables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "../unit/big-policy.h"
#include "batch.h"
#include "compile.h"
#include "error.h"
#include "nft.h"
#include "policy.h"

#define OWNER (NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST)

/* ---- message builders (one netlink message each) ---------------------- */

static struct nlmsghdr *hdr(struct nftnl_batch *b, uint16_t family, uint16_t type, uint16_t flags, uint32_t *seq)
{
        return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b), type, family, flags | NLM_F_ACK, (*seq)++);
}

static void msg_table(struct nftnl_batch *b, uint32_t *seq, uint16_t family, const char *name, uint32_t flags)
{
        struct nftnl_table *t = nftnl_table_alloc();

        nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
        nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, flags);
        nftnl_table_nlmsg_build_payload(hdr(b, family, NFT_MSG_NEWTABLE, NLM_F_CREATE, seq), t);
        nftnl_table_free(t);
        batch_next(b);
}

/* A chain; hook < 0: regular. devs: netdev devices. */
static void msg_chain(struct nftnl_batch *b, uint32_t *seq, uint16_t family, uint16_t type, const char *table,
                      const char *name, int hook, int prio, const char **devs)
{
        struct nftnl_chain *c = nftnl_chain_alloc();

        nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
        nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
        if (hook >= 0) {
                nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, (uint32_t)hook);
                nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
                nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
                nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
                if (devs)
                        nftnl_chain_set_array(c, NFTNL_CHAIN_DEVICES, devs);
        }
        nftnl_chain_nlmsg_build_payload(hdr(b, family, type, type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0, seq), c);
        nftnl_chain_free(c);
        batch_next(b);
}

static void put_verdict(struct nftnl_rule *r, int verdict, const char *chain)
{
        struct nftnl_expr *e = nftnl_expr_alloc("immediate");

        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
        if (chain)
                nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
        nftnl_rule_add_expr(r, e);
}

static void put_meta(struct nftnl_rule *r, uint32_t key)
{
        struct nftnl_expr *e = nftnl_expr_alloc("meta");

        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
        nftnl_rule_add_expr(r, e);
}

static void put_lookup(struct nftnl_rule *r, const char *set, bool map)
{
        struct nftnl_expr *e = nftnl_expr_alloc("lookup");

        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
        if (map)
                nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
        nftnl_rule_add_expr(r, e);
}

/* `META_KEY @set jump target` (target NULL: `META_KEY vmap @set`). */
static void msg_rule(struct nftnl_batch *b, uint32_t *seq, uint16_t family, const char *table, const char *chain,
                     uint32_t meta, const char *set, const char *target)
{
        struct nftnl_rule *r = nftnl_rule_alloc();

        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
        nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, family);
        if (set) {
                put_meta(r, meta);
                put_lookup(r, set, !target);
        }
        if (target)
                put_verdict(r, NFT_JUMP, target);
        nftnl_rule_nlmsg_build_payload(hdr(b, family, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, seq), r);
        nftnl_rule_free(r);
        batch_next(b);
}

/* A verdict map keyed by klen bytes. */
static void msg_vmap(struct nftnl_batch *b, uint32_t *seq, uint16_t family, const char *table, const char *name,
                     uint32_t klen)
{
        static uint32_t id = 1;
        struct nftnl_set *s = nftnl_set_alloc();

        nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
        nftnl_set_set_str(s, NFTNL_SET_NAME, name);
        nftnl_set_set_u32(s, NFTNL_SET_FAMILY, family);
        nftnl_set_set_u32(s, NFTNL_SET_ID, id++);
        nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, klen);
        nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, klen == 16 ? 41 : 0);
        nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
        nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 0);
        nftnl_set_nlmsg_build_payload(hdr(b, family, NFT_MSG_NEWSET, NLM_F_CREATE, seq), s);
        nftnl_set_free(s);
        batch_next(b);
}

/* Elements keys[0..n) (klen bytes each) -> jump target; target NULL: flush the set. */
static void msg_elems(struct nftnl_batch *b, uint32_t *seq, uint16_t family, const char *table, const char *set,
                      const void *keys, size_t n, uint32_t klen, const char *target)
{
        struct nftnl_set *s = nftnl_set_alloc();

        nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
        nftnl_set_set_str(s, NFTNL_SET_NAME, set);
        for (size_t i = 0; target && i < n; i++) {
                struct nftnl_set_elem *e = nftnl_set_elem_alloc();

                nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, (const char *)keys + i * klen, klen);
                if (target) {
                        nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, (uint32_t)NFT_JUMP);
                        nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, target);
                }
                nftnl_set_elem_add(s, e);
        }
        nftnl_set_elems_nlmsg_build_payload(hdr(b, family, target ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                                                target ? NLM_F_CREATE : 0, seq), s);
        nftnl_set_free(s);
        batch_next(b);
}

/* ---- timing ------------------------------------------------------------ */

/*
 * The agent's event monitor joins NFNLGRP_NFTABLES, so the kernel builds a
 * change event for every object of our transactions: so does the bench.
 */
static struct mnl_socket *listener;

static void listen_events(void)
{
        int group = NFNLGRP_NFTABLES, size = 16 << 20;

        listener = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (!listener || mnl_socket_bind(listener, 0, MNL_SOCKET_AUTOPID) < 0 ||
            mnl_socket_setsockopt(listener, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0 ||
            setsockopt(mnl_socket_get_fd(listener), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
                fprintf(stderr, "bench-switch: no event listener: %m\n");
}

static void drain_events(void)
{
        static char buf[65536];

        while (listener && recv(mnl_socket_get_fd(listener), buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
}

struct plan {
        void (*build)(struct nftnl_batch *b, uint32_t *seq, const struct plan *p);
        const char *policy;     /* the policy to switch to, NULL: restore */
        const char *other;
        const char *links[4];
};

static int run_plan(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        const struct plan *p = userdata;

        p->build(b, seq, p);
        return 0;
}

static int timed(struct ks_nft *n, const struct plan *p, uint64_t *usec, const char *what)
{
        struct ks_error e = {};
        int r = nft_transaction_with(n, NULL, 0, run_plan, (void *)p, usec, &e);

        drain_events();
        if (r < 0)
                fprintf(stderr, "%s: %s\n", what, e.msg);
        return r;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

static void report(const char *what, uint64_t *v, size_t n)
{
        if (n == 0) {
                printf("  %-62s failed\n", what);
                return;
        }
        qsort(v, n, sizeof(*v), cmp_u64);
        printf("  %-62s median %5llu us  p90 %5llu  min %4llu  max %6llu  (%zu)\n", what,
               (unsigned long long)v[n / 2], (unsigned long long)v[n * 9 / 10], (unsigned long long)v[0],
               (unsigned long long)v[n - 1], n);
}

/* Apply a compiled ruleset as one transaction (setup, untimed unless usec). */
static int apply_rs(struct ks_nft *n, struct ks_ruleset *rs, uint64_t *usec)
{
        struct ks_error e = {};
        int r = nft_apply(n, rs, usec, &e);

        drain_events();
        if (r < 0)
                fprintf(stderr, "apply: %s\n", e.msg);
        return r;
}

/* ---- A: the old switch ------------------------------------------------- */

/* Two compiled rulesets in one transaction. */
struct pair {
        const struct ks_ruleset *a, *b;
};

static int build_pair(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        const struct pair *p = userdata;
        int r = ruleset_to_batch(p->a, b, seq);

        return r < 0 ? r : ruleset_to_batch(p->b, b, seq);
}

static int timed_pair(struct ks_nft *n, const struct ks_ruleset *a, const struct ks_ruleset *b, uint64_t *usec)
{
        struct ks_error e = {};
        int r = nft_transaction_with(n, NULL, 0, build_pair, &(struct pair){ a, b }, usec, &e);

        drain_events();
        if (r < 0)
                fprintf(stderr, "pair: %s\n", e.msg);
        return r;
}

static void bench_a(struct ks_nft *n, struct ks_policy **pol, size_t runs)
{
        const struct ks_policy *list[2] = { pol[0], pol[1] };
        struct ks_ruleset *hook = NULL, *unhook = NULL, *links = NULL, *unlinks = NULL, *rs = NULL;
        uint64_t *t_in = calloc(runs, 8), *t_links = calloc(runs, 8), *t_sum = calloc(runs, 8),
                 *t_rest = calloc(runs, 8), *t_one = calloc(runs, 8), *t_one_rest = calloc(runs, 8),
                 *t_sw = calloc(runs, 8);
        struct ks_ruleset *hook_q = NULL, *links_q = NULL;
        struct ks_error e = {};
        size_t k = 0;

        if (compile_table(list, 2, NULL, "ksa", &rs) < 0 || nft_replace_table(n, "ksa", OWNER, rs, NULL, &e) < 0) {
                fprintf(stderr, "A: staging: %s\n", e.msg);
                return;
        }
        ruleset_free(rs);
        rs = NULL;
        if (compile_links_table(list, 2, NULL, NULL, 0, "ksa", OWNER, &rs) < 0 || apply_rs(n, rs, NULL) < 0)
                return;
        ruleset_free(rs);
        compile_hook(pol[0]->name, "ksa", &hook);
        compile_hook(NULL, "ksa", &unhook);
        compile_links_hook(pol[0], NULL, 0, "ksa", &links);
        compile_links_hook(NULL, NULL, 0, "ksa", &unlinks);
        compile_hook(pol[1]->name, "ksa", &hook_q);
        compile_links_hook(pol[1], NULL, 0, "ksa", &links_q);
        for (size_t i = 0; i < runs; i++) {
                uint64_t a = 0, l = 0, u1 = 0, u2 = 0, o = 0, o2 = 0, sw = 0;

                if (apply_rs(n, hook, &a) < 0 || apply_rs(n, links, &l) < 0 || apply_rs(n, unhook, &u1) < 0 ||
                    apply_rs(n, unlinks, &u2) < 0 || timed_pair(n, hook, links, &o) < 0 ||
                    timed_pair(n, hook_q, links_q, &sw) < 0 || timed_pair(n, unhook, unlinks, &o2) < 0)
                        break;
                t_in[k] = a;
                t_links[k] = l;
                t_sum[k] = a + l;
                t_rest[k] = u1 + u2;
                t_one[k] = o;
                t_one_rest[k] = o2;
                t_sw[k++] = sw;
        }
        printf("A: the old switch (inet base chains created, then the link layer's transaction)\n");
        report("isolate, inet transaction (9 messages)", t_in, k);
        report("isolate, link layer transaction", t_links, k);
        report("isolate, both (two transactions)", t_sum, k);
        report("restore, both transactions", t_rest, k);
        report("isolate, both layers in one transaction", t_one, k);
        report("switch P->Q while isolated, one transaction", t_sw, k);
        report("restore, one transaction", t_one_rest, k);
        ruleset_free(hook_q);
        ruleset_free(links_q);
        free(t_one);
        free(t_one_rest);
        free(t_sw);
        ruleset_free(hook);
        ruleset_free(unhook);
        ruleset_free(links);
        ruleset_free(unlinks);
        free(t_in);
        free(t_links);
        free(t_sum);
        free(t_rest);
}

/* ---- B: one dormant table, the switch in verdict maps ---------------------- */

static const char *const inet_hooks[3][4] = {
        /* base chain, dispatch suffix, target suffix, map */
        { "prerouting", "pre", "inbound", "switch_prerouting" },
        { "forward", "fwd", "outbound", "switch_forward" },
        { "output", "out", "local_out", "switch_output" },
};
static const int inet_hooknum[3] = { NF_INET_PRE_ROUTING, NF_INET_FORWARD, NF_INET_LOCAL_OUT };
static const int inet_prio[3] = { 0, -150, -150 };
static const uint8_t nfprotos[2] = { NFPROTO_IPV4, NFPROTO_IPV6 };

static void ifname_key(char key[16], const char *name)
{
        memset(key, 0, 16);
        strncpy(key, name, 15);
}

/* The switch's elements for policy `pol` (flush first), inet then netdev. */
static void b_elements(struct nftnl_batch *b, uint32_t *seq, const char *table, const char *pol,
                       const char *const *links)
{
        char target[128], keys[4][16];
        size_t n = 0;

        for (size_t h = 0; h < 3; h++) {
                snprintf(target, sizeof(target), "%s/%s", pol, inet_hooks[h][1]);
                msg_elems(b, seq, NFPROTO_INET, table, inet_hooks[h][3], NULL, 0, 1, NULL);
                msg_elems(b, seq, NFPROTO_INET, table, inet_hooks[h][3], nfprotos, 2, 1, target);
        }
        for (; links[n]; n++)
                ifname_key(keys[n], links[n]);
        for (int out = 0; out < 2; out++) {
                char lt[64];

                snprintf(lt, sizeof(lt), "%s_links", table);
                snprintf(target, sizeof(target), "%s/%s", pol, out ? "link_out" : "link_in");
                msg_elems(b, seq, NFPROTO_NETDEV, lt, out ? "switch_egress" : "switch_ingress", NULL, 0, 16, NULL);
                msg_elems(b, seq, NFPROTO_NETDEV, lt, out ? "switch_egress" : "switch_ingress", keys, n, 16, target);
        }
}

static void b_wake(struct nftnl_batch *b, uint32_t *seq, const char *table, bool dormant)
{
        char lt[64];

        snprintf(lt, sizeof(lt), "%s_links", table);
        msg_table(b, seq, NFPROTO_INET, table, OWNER | (dormant ? NFT_TABLE_F_DORMANT : 0));
        msg_table(b, seq, NFPROTO_NETDEV, lt, OWNER | (dormant ? NFT_TABLE_F_DORMANT : 0));
}

/* One table's flag only: p->policy "inet"/"netdev", p->other non-NULL: dormant. */
static void b_one(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        bool inet = strcmp(p->policy, "inet") == 0;

        msg_table(b, seq, inet ? NFPROTO_INET : NFPROTO_NETDEV, inet ? "ksb" : "ksb_links",
                  OWNER | (p->other ? NFT_TABLE_F_DORMANT : 0));
}

static void b_isolate_elems(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        b_elements(b, seq, "ksb", p->policy, p->links);
        b_wake(b, seq, "ksb", false);
}

static void b_isolate_wake(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        (void)p;
        b_wake(b, seq, "ksb", false);
}

static void b_switch(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        b_elements(b, seq, "ksb", p->policy, p->links);
}

static void b_restore(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        (void)p;
        b_wake(b, seq, "ksb", true);
}

/* The switch's fixed part: dispatch chains per policy, maps, base chains (added to staged tables). */
static void b_setup(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        static const char *devs[] = { "wan0", "wan1", NULL };
        const char *pols[2] = { p->policy, p->other };
        char name[128], target[128], set[128];

        for (size_t h = 0; h < 3; h++) {
                msg_vmap(b, seq, NFPROTO_INET, "ksb", inet_hooks[h][3], 1);
                for (int i = 0; i < 2; i++) {
                        snprintf(name, sizeof(name), "%s/%s", pols[i], inet_hooks[h][1]);
                        snprintf(target, sizeof(target), "%s/%s", pols[i], inet_hooks[h][2]);
                        snprintf(set, sizeof(set), "%s/uplinks", pols[i]);
                        msg_chain(b, seq, NFPROTO_INET, NFT_MSG_NEWCHAIN, "ksb", name, -1, 0, NULL);
                        msg_rule(b, seq, NFPROTO_INET, "ksb", name, h == 0 ? NFT_META_IIFNAME : NFT_META_OIFNAME,
                                 set, target);
                }
                msg_chain(b, seq, NFPROTO_INET, NFT_MSG_NEWCHAIN, "ksb", inet_hooks[h][0], inet_hooknum[h],
                          inet_prio[h], NULL);
                msg_rule(b, seq, NFPROTO_INET, "ksb", inet_hooks[h][0], NFT_META_NFPROTO, inet_hooks[h][3], NULL);
        }
        for (int out = 0; out < 2; out++) {
                const char *map = out ? "switch_egress" : "switch_ingress";
                const char *chain = out ? "egress" : "ingress";

                msg_vmap(b, seq, NFPROTO_NETDEV, "ksb_links", map, 16);
                msg_chain(b, seq, NFPROTO_NETDEV, NFT_MSG_NEWCHAIN, "ksb_links", chain,
                          out ? NF_NETDEV_EGRESS : NF_NETDEV_INGRESS, INT32_MIN, devs);
                msg_rule(b, seq, NFPROTO_NETDEV, "ksb_links", chain, out ? NFT_META_OIFNAME : NFT_META_IIFNAME,
                         map, NULL);
        }
}

static void b_sleep(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        (void)p;
        b_wake(b, seq, "ksb", true);
}

static int stage(struct ks_nft *n, const struct ks_policy *const *list, size_t np, const char *active,
                 const char *table)
{
        struct ks_ruleset *rs = NULL;
        struct ks_error e = {};
        int r;

        r = compile_table(list, np, active, table, &rs);
        if (r == 0)
                r = nft_replace_table(n, table, OWNER, rs, NULL, &e);
        ruleset_free(rs);
        rs = NULL;
        if (r == 0)
                r = compile_links_table(list, np, active ? list[0] : NULL, NULL, 0, table, OWNER, &rs);
        if (r == 0)
                r = apply_rs(n, rs, NULL);
        ruleset_free(rs);
        if (r < 0)
                fprintf(stderr, "staging %s: %s\n", table, e.msg[0] ? e.msg : strerror(-r));
        return r;
}

/*
 * The owner may not change the dormant flag of its own table (kernel_rules):
 * close its socket (the tables stay, orphaned, persistent) and let the switch's
 * NEWTABLE adopt them from a new one. Not in the timed window.
 */
static int handoff(struct ks_nft **n)
{
        *n = nft_close(*n);
        return nft_open(n);
}

static void bench_b(struct ks_nft **np, struct ks_policy **pol, size_t runs)
{
        const struct ks_policy *list[2] = { pol[0], pol[1] };
        struct plan setup = { .build = b_setup, .policy = pol[0]->name, .other = pol[1]->name };
        struct plan sleep_ = { .build = b_sleep };
        struct plan iso_e = { .build = b_isolate_elems, .policy = pol[0]->name, .links = { "wan0", NULL } };
        struct plan iso_w = { .build = b_isolate_wake };
        struct plan sw_q = { .build = b_switch, .policy = pol[1]->name, .links = { "wan1", NULL } };
        struct plan sw_p = { .build = b_switch, .policy = pol[0]->name, .links = { "wan0", NULL } };
        struct plan rest = { .build = b_restore };
        uint64_t *t[5];
        size_t k[5] = {};

        if (stage(*np, list, 2, NULL, "ksb") < 0 || timed(*np, &setup, NULL, "B: setup") < 0 || handoff(np) < 0 ||
            timed(*np, &sleep_, NULL, "B: dormant") < 0)
                return;
        for (int i = 0; i < 5; i++)
                t[i] = calloc(2 * runs, 8);
        for (size_t i = 0; i < runs; i++) {
                uint64_t u;

                if (handoff(np) < 0)
                        break;
                if (timed(*np, &iso_e, &u, "B isolate") == 0)
                        t[0][k[0]++] = u;
                if (timed(*np, &sw_q, &u, "B switch") == 0)
                        t[1][k[1]++] = u;
                if (timed(*np, &sw_p, &u, "B switch back") == 0)
                        t[1][k[1]++] = u;
                if (handoff(np) == 0 && timed(*np, &rest, &u, "B restore") == 0)
                        t[2][k[2]++] = u;
                if (handoff(np) == 0 && timed(*np, &iso_w, &u, "B wake") == 0)
                        t[3][k[3]++] = u;
                if (handoff(np) == 0 && timed(*np, &rest, &u, "B restore") == 0)
                        t[4][k[4]++] = u;
        }
        for (int fam = 0; fam < 2; fam++) {
                struct plan w = { .build = b_one, .policy = fam ? "netdev" : "inet" };
                struct plan d = { .build = b_one, .policy = fam ? "netdev" : "inet", .other = "" };
                uint64_t *tw = calloc(runs, 8), *td = calloc(runs, 8), u;
                size_t kw = 0, kd = 0;

                for (size_t i = 0; i < runs; i++) {
                        if (handoff(np) == 0 && timed(*np, &w, &u, "B one wake") == 0)
                                tw[kw++] = u;
                        if (handoff(np) == 0 && timed(*np, &d, &u, "B one sleep") == 0)
                                td[kd++] = u;
                }
                report(fam ? "  (netdev table alone: wake)" : "  (inet table alone: wake)", tw, kw);
                report(fam ? "  (netdev table alone: dormant)" : "  (inet table alone: dormant)", td, kd);
                free(tw);
                free(td);
        }
        printf("B: inet + netdev tables dormant while normal, base chains always there, the switch in verdict maps;\n"
               "   the owner's socket handed over before each change of the dormant flag\n");
        report("isolate: elements (flush + add, 10 msgs) + adopt/wake both tables", t[0], k[0]);
        report("switch P<->Q while isolated: elements only (10 msgs)", t[1], k[1]);
        report("restore: adopt/put both tables to sleep (2 msgs)", t[2], k[2]);
        report("isolate with the elements already in place: adopt/wake (2 msgs)", t[3], k[3]);
        for (int i = 0; i < 5; i++)
                free(t[i]);
}

/* ---- C: one dormant table per policy ------------------------------------------ */

static void c_flags(struct nftnl_batch *b, uint32_t *seq, const char *pol, bool dormant)
{
        char t[64], lt[64];

        snprintf(t, sizeof(t), "ksc_%s", pol);
        snprintf(lt, sizeof(lt), "ksc_%s_links", pol);
        msg_table(b, seq, NFPROTO_INET, t, OWNER | (dormant ? NFT_TABLE_F_DORMANT : 0));
        msg_table(b, seq, NFPROTO_NETDEV, lt, OWNER | (dormant ? NFT_TABLE_F_DORMANT : 0));
}

static void c_switch(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        if (p->other)
                c_flags(b, seq, p->other, true);
        if (p->policy)
                c_flags(b, seq, p->policy, false);
}

static void bench_c(struct ks_nft **np, struct ks_policy **pol, size_t runs)
{
        struct plan sleep_p = { .build = c_switch, .other = pol[0]->name };
        struct plan sleep_q = { .build = c_switch, .other = pol[1]->name };
        struct plan iso = { .build = c_switch, .policy = pol[0]->name };
        struct plan pq = { .build = c_switch, .policy = pol[1]->name, .other = pol[0]->name };
        struct plan qp = { .build = c_switch, .policy = pol[0]->name, .other = pol[1]->name };
        char t0[64], t1[64];
        uint64_t *t[3];
        size_t k[3] = {};

        snprintf(t0, sizeof(t0), "ksc_%s", pol[0]->name);
        snprintf(t1, sizeof(t1), "ksc_%s", pol[1]->name);
        if (stage(*np, (const struct ks_policy *const[]){ pol[0] }, 1, pol[0]->name, t0) < 0 ||
            stage(*np, (const struct ks_policy *const[]){ pol[1] }, 1, pol[1]->name, t1) < 0 ||
            handoff(np) < 0 || timed(*np, &sleep_p, NULL, "C") < 0 || handoff(np) < 0 ||
            timed(*np, &sleep_q, NULL, "C") < 0)
                return;
        for (int i = 0; i < 3; i++)
                t[i] = calloc(2 * runs, 8);
        for (size_t i = 0; i < runs; i++) {
                uint64_t u;

                if (handoff(np) == 0 && timed(*np, &iso, &u, "C isolate") == 0)
                        t[0][k[0]++] = u;
                if (handoff(np) == 0 && timed(*np, &pq, &u, "C switch") == 0)
                        t[1][k[1]++] = u;
                if (handoff(np) == 0 && timed(*np, &qp, &u, "C switch") == 0)
                        t[1][k[1]++] = u;
                if (handoff(np) == 0 && timed(*np, &sleep_p, &u, "C restore") == 0)
                        t[2][k[2]++] = u;
        }
        printf("C: one dormant table pair (inet + netdev) per policy, the owner's socket handed over before each\n");
        report("isolate: wake P's two tables", t[0], k[0]);
        report("switch P<->Q: wake one pair, put the other to sleep", t[1], k[1]);
        report("restore: P's tables dormant", t[2], k[2]);
        for (int i = 0; i < 3; i++)
                free(t[i]);
}

/* Without ownership (no handoff): inet table ksu with P hooked, dormant flag toggled. */
static void u_flag(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        msg_table(b, seq, NFPROTO_INET, "ksu", p->other ? NFT_TABLE_F_DORMANT : 0);
}

static void bench_unowned(struct ks_nft *n, struct ks_policy **pol, size_t runs)
{
        struct ks_ruleset *rs = NULL;
        struct ks_error e = {};
        struct plan w = { .build = u_flag }, d = { .build = u_flag, .other = "" };
        uint64_t *tw = calloc(runs, 8), *td = calloc(runs, 8), u;
        size_t kw = 0, kd = 0;

        if (compile_table((const struct ks_policy *const[]){ pol[0] }, 1, pol[0]->name, "ksu", &rs) < 0 ||
            nft_replace_table(n, "ksu", 0, rs, NULL, &e) < 0)
                fprintf(stderr, "ksu: %s\n", e.msg);
        ruleset_free(rs);
        for (size_t i = 0; i < runs; i++) {
                if (timed(n, &d, &u, "ksu sleep") == 0)
                        td[kd++] = u;
                if (timed(n, &w, &u, "ksu wake") == 0)
                        tw[kw++] = u;
        }
        printf("An inet table without owner, P hooked (three base chains), its dormant flag toggled:\n");
        report("wake (1 msg)", tw, kw);
        report("dormant (1 msg)", td, kd);
        timed(n, &d, &u, "ksu sleep");
        free(tw);
        free(td);
}

/* ---- what the kernel accepts in one batch ------------------------------------- */

static void k_wake_then_basechain(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        (void)p;
        msg_table(b, seq, NFPROTO_INET, "ksk", 0);
        msg_chain(b, seq, NFPROTO_INET, NFT_MSG_NEWCHAIN, "ksk", "x", NF_INET_FORWARD, 5, NULL);
}

static void k_basechain_then_wake(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        (void)p;
        msg_chain(b, seq, NFPROTO_INET, NFT_MSG_NEWCHAIN, "ksk", "y", NF_INET_FORWARD, 6, NULL);
        msg_table(b, seq, NFPROTO_INET, "ksk", 0);
}

static void k_sleep(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        (void)p;
        msg_table(b, seq, NFPROTO_INET, "ksk", NFT_TABLE_F_DORMANT);
        msg_table(b, seq, NFPROTO_NETDEV, "ksk_links", NFT_TABLE_F_DORMANT);
}

static void k_setup(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        static const char *devs[] = { "wan0", NULL };

        (void)p;
        msg_table(b, seq, NFPROTO_INET, "ksk", NFT_TABLE_F_DORMANT);
        msg_table(b, seq, NFPROTO_NETDEV, "ksk_links", NFT_TABLE_F_DORMANT);
        msg_chain(b, seq, NFPROTO_NETDEV, NFT_MSG_NEWCHAIN, "ksk_links", "ingress", NF_NETDEV_INGRESS, 0, devs);
}

/* Add a device to a bound netdev chain (hook update), alone or with a wake. */
static void k_adddev(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        const char *devs[] = { p->links[0], NULL };

        msg_chain(b, seq, NFPROTO_NETDEV, NFT_MSG_NEWCHAIN, "ksk_links", "ingress", NF_NETDEV_INGRESS, 0, devs);
        if (p->policy)
                msg_table(b, seq, NFPROTO_NETDEV, "ksk_links", 0);
}

static void k_deldev(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        const char *devs[] = { p->links[0], NULL };

        msg_chain(b, seq, NFPROTO_NETDEV, NFT_MSG_DELCHAIN, "ksk_links", "ingress", NF_NETDEV_INGRESS, 0, devs);
}

/* NEWTABLE inet ksf with flags p->links[0] (a number), p->policy: create it afresh first. */
static void k_flags(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        msg_table(b, seq, NFPROTO_INET, "ksf", (uint32_t)strtoul(p->links[0], NULL, 0));
}

static void k_flags2(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        msg_table(b, seq, NFPROTO_INET, "ksf2", (uint32_t)strtoul(p->links[0], NULL, 0));
}

static void k_drop2(struct nftnl_batch *b, uint32_t *seq, const struct plan *p)
{
        struct nftnl_table *t = nftnl_table_alloc();

        (void)p;
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, "ksf2");
        nftnl_table_nlmsg_build_payload(hdr(b, NFPROTO_INET, NFT_MSG_DELTABLE, 0, seq), t);
        nftnl_table_free(t);
        batch_next(b);
}

static uint64_t now_usec(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void kernel_rules(struct ks_nft *n)
{
        static const struct {
                const char *what;
                struct plan p;
        } tries[] = {
                { "dormant inet + netdev tables ksk, netdev chain bound to wan0", { .build = k_setup } },
                { "wake inet table, then a new base chain in it (one batch)", { .build = k_wake_then_basechain } },
                { "(both dormant again)", { .build = k_sleep } },
                { "a new base chain, then wake its table (one batch)", { .build = k_basechain_then_wake } },
                { "(both dormant again)", { .build = k_sleep } },
                { "dormant netdev chain: add device wan1 (hook update)", { .build = k_adddev, .links = { "wan1" } } },
                { "dormant netdev chain: delete device wan1", { .build = k_deldev, .links = { "wan1" } } },
                { "dormant netdev chain: add device nosuch0 (absent)", { .build = k_adddev, .links = { "nosuch0" } } },
                { "add device wan1 and wake the netdev table (one batch)",
                  { .build = k_adddev, .links = { "wan1" }, .policy = "x" } },
                { "awake netdev chain: delete device wan1", { .build = k_deldev, .links = { "wan1" } } },
                { "table ksf created owner+persist", { .build = k_flags, .links = { "6" } } },
                { "  owner+persist again", { .build = k_flags, .links = { "6" } } },
                { "  owner+persist+dormant", { .build = k_flags, .links = { "7" } } },
                { "  persist+dormant", { .build = k_flags, .links = { "5" } } },
                { "  dormant", { .build = k_flags, .links = { "1" } } },
                { "table ksf2 created owner+persist+dormant", { .build = k_flags2, .links = { "7" } } },
                { "  owner+persist (wake)", { .build = k_flags2, .links = { "6" } } },
                { "  persist (wake)", { .build = k_flags2, .links = { "4" } } },
        };

        printf("What this kernel accepts in one transaction (tables ksk*: no owner; ksf*: owned by this socket):\n");
        for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
                struct ks_error e = {};
                int r = nft_transaction_with(n, NULL, 0, run_plan, (void *)&tries[i].p, NULL, &e);

                printf("  %-62s %s\n", tries[i].what, r == 0 ? "accepted" : strerror(-r));
        }
}

/*
 * The owner may not change an owned table's dormant flag (above). An orphaned
 * persistent table (its owner's socket closed) may be adopted by the next
 * NEWTABLE with owner+persist: does that message also wake it, or put it to sleep?
 */
static void orphan_wake(size_t runs)
{
        struct plan create = { .build = k_flags2, .links = { "7" } };
        struct plan wake = { .build = k_flags2, .links = { "6" } };
        struct plan sleep_ = { .build = k_flags2, .links = { "7" } };
        uint64_t *tw = calloc(runs, 8), *ts = calloc(runs, 8), *tc = calloc(runs, 8);
        struct ks_nft *n = NULL;
        size_t k = 0;

        printf("An orphaned owner+persist table, adopted by a new socket in the switch's NEWTABLE:\n");
        if (nft_open(&n) < 0 || timed(n, &(struct plan){ .build = k_drop2 }, NULL, "drop") < 0 ||
            timed(n, &create, NULL, "create dormant") < 0)
                return;
        for (size_t i = 0; i < runs; i++) {
                uint64_t u, t0 = now_usec();

                nft_close(n);
                n = NULL;
                if (nft_open(&n) < 0)
                        break;
                tc[k] = now_usec() - t0;
                if (timed(n, &wake, &u, "adopt + wake") < 0)
                        break;
                tw[k] = u;
                nft_close(n);
                n = NULL;
                if (nft_open(&n) < 0 || timed(n, &sleep_, &u, "adopt + sleep") < 0)
                        break;
                ts[k++] = u;
        }
        report("close the owner's socket, open another (not in apply_usec)", tc, k);
        report("adopt + wake (1 msg)", tw, k);
        report("adopt + dormant (1 msg)", ts, k);
        nft_close(n);
        free(tw);
        free(ts);
        free(tc);
}

static int setup_netns(void)
{
        if (unshare(CLONE_NEWNET) < 0) {
                perror("unshare(CLONE_NEWNET) (run as root)");
                return -1;
        }
        return system("ip link set lo up && ip link add wan0 type veth peer name wan0p && "
                      "ip link add wan1 type veth peer name wan1p && for l in wan0 wan0p wan1 wan1p; do "
                      "ip link set $l up; done");
}

static struct ks_policy *parse(const char *text, const char *name)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;

        if (!text || policy_parse_string(text, "bench.policy", name, &p, &d) < 0)
                p = NULL;
        diags_clear(&d);
        return p;
}

/*
 * A site firewall's hooks (as on most routers: firewalld, docker) at every
 * hook point the switch uses: the kernel's static keys of those hook points
 * are then on before the switch, which no longer patches kernel code.
 */
static int warm_hook_points(void)
{
        return system("nft -f - <<'EOF'\n"
                      "table inet site {\n"
                      "  chain p { type filter hook prerouting priority 0; }\n"
                      "  chain f { type filter hook forward priority 0; }\n"
                      "  chain o { type filter hook output priority 0; }\n"
                      "}\n"
                      "table netdev site {\n"
                      "  chain i { type filter hook ingress device lo priority 0; }\n"
                      "  chain e { type filter hook egress device lo priority 0; }\n"
                      "}\n"
                      "EOF");
}

int main(int argc, char **argv)
{
        size_t runs = 300;
        const char *only = NULL;
        bool warm = false, monitor = true;
        struct ks_policy *pol[2];
        struct ks_nft *n = NULL;
        char *big;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--warm") == 0)
                        warm = true;
                else if (strcmp(argv[i], "--no-monitor") == 0)
                        monitor = false;
                else if (strncmp(argv[i], "--only=", 7) == 0)
                        only = argv[i] + 7;
                else if (strtoul(argv[i], NULL, 10) > 0)
                        runs = strtoul(argv[i], NULL, 10);
                else {
                        fprintf(stderr, "usage: bench-switch [RUNS] [--warm] [--no-monitor] [--only=a|wake]\n");
                        return 2;
                }
        }
        big = big_policy_text(5000);
        pol[0] = parse(big, "big");
        pol[1] = parse("[Uplinks]\nInterface=wan1\n[Gateway relay]\nAddress=192.0.2.1\nPorts=tcp:25\n", "small");
        free(big);
        if (!pol[0] || !pol[1] || setup_netns() != 0 || nft_open(&n) < 0) {
                fprintf(stderr, "bench-switch: setup failed\n");
                return 1;
        }
        if (monitor)
                listen_events();
        if (warm && warm_hook_points() != 0)
                fprintf(stderr, "bench-switch: could not add the site tables\n");
        printf("bench-switch: %zu runs each; policies \"big\" (10,000 entries, uplink wan0) and \"small\" (wan1)\n"
               "staged, owner+persist; %s; hook points %s\n", runs,
               monitor ? "an event listener joined (as the agent's monitor)" : "no event listener",
               warm ? "held by a site table (--warm)" : "as the rest of the machine leaves them");
        if (!only || strcmp(only, "a") == 0)
                bench_a(n, pol, runs);
        if (!only || strcmp(only, "wake") == 0)
                bench_unowned(n, pol, runs);
        if (!only) {
                kernel_rules(n);
                bench_b(&n, pol, runs);
                bench_c(&n, pol, runs);
                orphan_wake(runs);
        }
        nft_close(n);
        policy_free(pol[0]);
        policy_free(pol[1]);
        return 0;
}
