/* SPDX-License-Identifier: MIT */
/* The shape of the table: what the compiler means (ruleset_summarize) and the comparison (summary_diff). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "compile.h"
#include "summary.h"

static const char *POLICY =
        "[Uplinks]\nInterface=wan0 wan1\n"
        "[Gateway mail]\nAddress=203.0.113.25 2001:db8::25\nPorts=tcp:25 tcp:587\n"
        "[Gateway dns]\nAddress=192.0.2.53\n";

static struct ks_policy *parse_text(const char *text, const char *name)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;

        assert_int_equal(policy_parse_string(text, "t.policy", name, &p, &d), 0);
        diags_clear(&d);
        return p;
}

static struct ks_policy *parse(const char *name)
{
        return parse_text(POLICY, name);
}

static void summarize_table(struct ks_policy **ps, size_t n, const char *active, struct ks_summary *s)
{
        struct ks_ruleset *rs = NULL;

        assert_int_equal(compile_table((const struct ks_policy *const *)ps, n, active, "killswitch", &rs), 0);
        assert_int_equal(ruleset_summarize(rs, s), 0);
        ruleset_free(rs);
}

static void apply_hook(const char *active, struct ks_summary *s)
{
        struct ks_ruleset *rs = NULL;

        assert_int_equal(compile_hook(active, "killswitch", &rs), 0);
        assert_int_equal(ruleset_summarize(rs, s), 0);
        ruleset_free(rs);
}

static void test_staged_shape(void **unused)
{
        struct ks_policy *p = parse("a");
        struct ks_summary s = {};
        struct summary_chain *c;

        summarize_table(&p, 1, NULL, &s);
        assert_non_null(summary_chain(&s, "a/inbound", false));
        assert_non_null(summary_chain(&s, "a/outbound", false));
        assert_null(summary_chain(&s, "prerouting", false));
        c = summary_chain(&s, "a/inbound", false);
        assert_false(c->base);
        assert_true(c->rules > 4);
        /* 2 mail addresses x 2 ports in two families; one dns address: an element of a hash set. */
        assert_int_equal(summary_set(&s, "a/gw_mail_v4", false)->elems, 2);
        assert_int_equal(summary_set(&s, "a/gw_mail_v6", false)->elems, 2);
        assert_int_equal(summary_set(&s, "a/gw_dns_v4", false)->elems, 1);
        assert_null(summary_set(&s, "a/gw_dns_v4r", false));
        assert_null(summary_set(&s, "a/gw_dns_v6", false));
        assert_true(s.n_counters >= 4);
        summary_clear(&s);
        policy_free(p);
}

/* A hook fragment applied on the staged shape equals the table compiled with that policy active. */
static void test_hook_equals_active_table(void **unused)
{
        struct ks_policy *ps[2] = { parse("a"), parse("b") };
        struct ks_summary staged = {}, active = {};
        char msg[256];

        summarize_table(ps, 2, NULL, &staged);
        summarize_table(ps, 2, "b", &active);
        assert_int_equal(summary_diff(&active, &staged, true, msg, sizeof(msg)), -EPROTO);
        apply_hook("a", &staged);
        assert_string_equal(summary_chain(&staged, "prerouting", false)->jump, "a/inbound");
        apply_hook("b", &staged);
        assert_int_equal(summary_diff(&active, &staged, true, msg, sizeof(msg)), 0);
        assert_int_equal(summary_chain(&staged, "prerouting", false)->rules, 1);
        apply_hook(NULL, &staged);
        assert_null(summary_chain(&staged, "prerouting", false));
        summary_clear(&staged);
        summary_clear(&active);
        policy_free(ps[0]);
        policy_free(ps[1]);
}

static void test_diff_reports(void **unused)
{
        struct ks_policy *p = parse("a");
        struct ks_summary want = {}, have = {};
        char msg[512];

        summarize_table(&p, 1, "a", &want);
        assert_int_equal(summary_copy(&want, &have), 0);
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        assert_string_equal(msg, "");

        summary_chain(&have, "a/inbound", false)->rules++;      /* a foreign rule */
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "chain a/inbound has"));

        summary_clear(&have);
        assert_int_equal(summary_copy(&want, &have), 0);
        summary_set(&have, "a/gw_mail_v4", false)->elems = 1;
        assert_int_equal(summary_diff(&want, &have, false, msg, sizeof(msg)), 0);      /* counts not compared */
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "set a/gw_mail_v4 has 1 elements, not 2"));

        /* The drop sensor's sets fill with traffic: their counts are never a difference. */
        summary_clear(&have);
        assert_int_equal(summary_copy(&want, &have), 0);
        assert_true(summary_set(&want, "a/drops_v4", false)->dynamic);
        assert_false(summary_set(&want, "a/gw_mail_v4", false)->dynamic);
        summary_set(&have, "a/drops_v4", false)->elems = 16384;
        summary_set(&have, "a/drops_v6_noport", false)->elems = 7;
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);

        summary_clear(&have);
        assert_int_equal(summary_copy(&want, &have), 0);
        summary_remove_chain(&have, "prerouting");
        assert_true(summary_chain(&have, "evil", true) != NULL);
        assert_int_equal(summary_diff(&want, &have, false, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "chain prerouting missing"));
        assert_non_null(strstr(msg, "unexpected chain evil"));

        /* A dormant table lists every chain, but none is hooked: both read-backs see it. */
        summary_clear(&have);
        assert_int_equal(summary_copy(&want, &have), 0);
        have.dormant = true;
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "the table is dormant"));
        assert_int_equal(summary_diff_hooks(&want, &have, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "the table is dormant"));
        summary_clear(&want);
        assert_int_equal(summary_copy(&have, &want), 0);
        assert_true(want.dormant);      /* copied */
        want.dormant = false;

        summary_clear(&have);
        assert_int_equal(summary_diff(&want, &have, false, msg, sizeof(msg)), -EPROTO);   /* table gone */
        summary_clear(&want);
        policy_free(p);
}

static const struct siphash_key KEY = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL };

static void summarize_keyed(const char *text, const char *active, struct ks_summary *s)
{
        struct ks_policy *p = parse_text(text, "a");

        s->key = KEY;
        s->keyed = true;
        summarize_table(&p, 1, active, s);
        policy_free(p);
}

/* Same shape, other elements: only a keyed summary tells them apart. */
static void test_content_elems(void **unused)
{
        static const char *other_port =
                "[Uplinks]\nInterface=wan0 wan1\n"
                "[Gateway mail]\nAddress=203.0.113.25 2001:db8::25\nPorts=tcp:25 tcp:8080\n"
                "[Gateway dns]\nAddress=192.0.2.53\n";
        struct ks_summary want = {}, have = {}, plain = {};
        char msg[512];

        summarize_keyed(POLICY, "a", &want);
        summarize_keyed(POLICY, "a", &have);
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        summary_clear(&have);
        summarize_keyed(other_port, "a", &have);
        /* The comment of the edited table is still the one the agent wrote. */
        assert_false(summary_same_digest(want.comment, have.comment));
        assert_int_equal(summary_set_comment(&have, want.comment), 0);
        assert_int_equal(summary_diff(&want, &have, false, msg, sizeof(msg)), 0);     /* elements not compared */
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), -EPROTO);
        assert_non_null(strstr(msg, "set a/gw_mail_v4 holds other elements than the agent put in it"));
        assert_non_null(strstr(msg, "set a/gw_mail_v6 holds other elements"));
        assert_null(strstr(msg, "a/gw_dns_v4"));
        /* Only the sets read are compared (the big ones are read on a thread). */
        assert_int_equal(summary_diff_elems(&want, &have, msg, sizeof(msg)), -EPROTO);
        summary_set(&have, "a/gw_mail_v4", false)->counted = false;
        summary_set(&have, "a/gw_mail_v6", false)->counted = false;
        assert_int_equal(summary_diff_elems(&want, &have, msg, sizeof(msg)), 0);
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        /* Unkeyed (or keyed apart): the shape alone, as before. */
        summary_clear(&have);
        assert_int_equal(summary_copy(&want, &have), 0);
        assert_true(have.keyed);
        have.keyed = false;
        summary_set(&have, "a/gw_mail_v4", false)->content++;
        assert_int_equal(summary_diff(&want, &have, true, msg, sizeof(msg)), 0);
        {
                struct ks_policy *p = parse("a");

                summarize_table(&p, 1, "a", &plain);
                policy_free(p);
        }
        assert_false(plain.keyed);
        assert_int_equal(summary_set(&plain, "a/gw_mail_v4", false)->content, 0);
        summary_clear(&want);
        summary_clear(&have);
        summary_clear(&plain);
}

/* A switch's fragment on the staged table digests its base chains as the table compiled hooked does. */
static void test_content_hooks(void **unused)
{
        struct ks_policy *ps[2] = { parse("a"), parse("b") };
        struct ks_summary staged = { .key = KEY, .keyed = true }, active = { .key = KEY, .keyed = true };
        char msg[512];

        summarize_table(ps, 2, NULL, &staged);
        summarize_table(ps, 2, "b", &active);
        apply_hook("a", &staged);
        assert_int_equal(summary_diff_hooks(&active, &staged, msg, sizeof(msg)), -EPROTO);
        apply_hook("b", &staged);
        assert_int_equal(summary_diff_hooks(&active, &staged, msg, sizeof(msg)), 0);
        assert_int_equal(summary_diff(&active, &staged, true, msg, sizeof(msg)), 0);
        summary_clear(&staged);
        summary_clear(&active);
        policy_free(ps[0]);
        policy_free(ps[1]);
}

static struct nftnl_expr *expr(struct nftnl_rule *r, const char *name)
{
        struct nftnl_expr *e = nftnl_expr_alloc(name);

        assert_non_null(e);
        nftnl_rule_add_expr(r, e);
        return e;
}

/* A rule `ip daddr ADDR [ct ...] @set counter accept` of chain c, in the forms the kernel and we write. */
static struct nftnl_rule *rule(uint32_t addr, bool lookup_flags, uint32_t inverted, bool ct_dir, uint8_t dir)
{
        struct nftnl_rule *r = nftnl_rule_alloc();
        struct nftnl_expr *e;

        assert_non_null(r);
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, "killswitch");
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "c");
        e = expr(r, "payload");
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 16);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 4);
        e = expr(r, "cmp");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &addr, sizeof(addr));
        e = expr(r, "ct");      /* the protocol: the kernel dumps no direction for it */
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_PROTOCOL);
        if (ct_dir)
                nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, dir);
        e = expr(r, "ct");      /* an address: the direction matters */
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_2);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_SRC_IP);
        nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, dir);
        e = expr(r, "lookup");
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, "a/gw_x_v4");
        if (lookup_flags)
                nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, inverted);
        e = expr(r, "counter");
        if (addr == 0)
                nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_PACKETS, 42);
        e = expr(r, "immediate");
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
        return r;
}

static uint64_t digest_of(struct nftnl_rule *r, const struct siphash_key *key)
{
        struct ks_summary s = { .key = *key, .keyed = true };
        uint64_t h;

        assert_int_equal(summary_add_rule(&s, r), 0);
        h = summary_chain(&s, "c", false)->content;
        summary_clear(&s);
        nftnl_rule_free(r);
        return h;
}

/*
 * Rules: every match counts, what the kernel's dump adds (a zero lookup
 * flag, a direction it ignores) and a counter's values do not.
 */
static void test_content_rules(void **unused)
{
        const struct siphash_key other = { 1, 2 };
        uint64_t base = digest_of(rule(1, false, 0, true, IP_CT_DIR_ORIGINAL), &KEY);

        assert_true(base != 0);
        assert_true(digest_of(rule(1, true, 0, false, IP_CT_DIR_ORIGINAL), &KEY) == base);    /* as dumped */
        assert_true(digest_of(rule(2, false, 0, true, IP_CT_DIR_ORIGINAL), &KEY) != base);    /* another address */
        assert_true(digest_of(rule(1, true, NFT_LOOKUP_F_INV, true, IP_CT_DIR_ORIGINAL), &KEY) != base);
        assert_true(digest_of(rule(1, false, 0, true, IP_CT_DIR_REPLY), &KEY) != base);       /* ct saddr reply */
        assert_true(digest_of(rule(0, false, 0, true, IP_CT_DIR_ORIGINAL), &KEY) !=
                    digest_of(rule(1, false, 0, true, IP_CT_DIR_ORIGINAL), &KEY));
        assert_true(digest_of(rule(1, false, 0, true, IP_CT_DIR_ORIGINAL), &other) != base);  /* keyed */
}

/* Elements in any order (a hash set dumps in its own), each of them counted. */
static void test_content_elem_order(void **unused)
{
        struct ks_summary s = { .key = KEY, .keyed = true };
        struct summary_set a = {}, b = {};
        struct nftnl_set *x = nftnl_set_alloc(), *y = nftnl_set_alloc();
        uint32_t keys[3] = { 1, 2, 3 };

        assert_non_null(x);
        assert_non_null(y);
        for (int i = 0; i < 3; i++) {
                struct nftnl_set_elem *e = nftnl_set_elem_alloc(), *f = nftnl_set_elem_alloc();

                nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &keys[i], sizeof(keys[i]));
                nftnl_set_elem_set(f, NFTNL_SET_ELEM_KEY, &keys[2 - i], sizeof(keys[i]));
                nftnl_set_elem_add(x, e);
                nftnl_set_elem_add(y, f);
        }
        summary_set_elems(&s, &a, x);
        summary_set_elems(&s, &b, y);
        assert_int_equal(a.elems, 3);
        assert_true(a.counted);
        assert_true(a.content == b.content);
        summary_add_elems(&s, &b, y);   /* a dump in several messages adds up */
        assert_int_equal(b.elems, 6);
        summary_set_elems(&s, &b, y);   /* a NEWSET or a refill replaces */
        assert_true(a.content == b.content);
        /* A dump that lists an element twice (and so misses one) is told apart. */
        {
                struct summary_seen seen = {};

                summary_add_elems_seen(&s, &b, x, &seen);
                assert_int_equal(seen.n, 3);
                assert_false(summary_seen_twice(&seen));
                assert_null(seen.digests);
                summary_add_elems_seen(&s, &b, x, &seen);
                summary_add_elems_seen(&s, &b, y, &seen);
                assert_true(summary_seen_twice(&seen));
        }
        nftnl_set_free(x);
        nftnl_set_free(y);
}

/*
 * A reload's thread summarises the table with the agent's key (summary_copy_key) and the loop
 * moves that summary in (summary_move): it must equal one made in place, and a read-back keyed
 * otherwise, or a summary of another table, must not.
 */
static void test_move_made_elsewhere(void **unused)
{
        struct ks_policy *ps[2] = { parse("a"), parse("b") };
        struct ks_summary expect = { .key = KEY, .keyed = true }, thread = {}, in_place = {}, other = {};
        char msg[512];

        summarize_table(ps, 2, NULL, &expect);  /* what the last table was: replaced below */
        summary_copy_key(&expect, &thread);
        summary_copy_key(&expect, &in_place);
        summary_copy_key(&expect, &other);
        summarize_table(ps, 1, NULL, &thread);
        summarize_table(ps, 1, NULL, &in_place);
        summarize_table(&ps[1], 1, NULL, &other);
        summary_move(&expect, &thread);
        assert_true(expect.keyed);
        assert_memory_equal(&expect.key, &in_place.key, sizeof(expect.key));
        assert_null(summary_chain(&expect, "b/inbound", false));
        assert_int_equal(thread.n_chains, 0);
        assert_false(thread.keyed);
        assert_int_equal(summary_diff(&expect, &in_place, true, msg, sizeof(msg)), 0);
        assert_int_equal(summary_diff(&expect, &other, true, msg, sizeof(msg)), -EPROTO);
        summary_clear(&expect);
        summary_clear(&in_place);
        summary_clear(&other);
        policy_free(ps[0]);
        policy_free(ps[1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_staged_shape),
                cmocka_unit_test(test_hook_equals_active_table),
                cmocka_unit_test(test_diff_reports),
                cmocka_unit_test(test_content_elems),
                cmocka_unit_test(test_content_hooks),
                cmocka_unit_test(test_content_rules),
                cmocka_unit_test(test_content_elem_order),
                cmocka_unit_test(test_move_made_elsewhere),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
