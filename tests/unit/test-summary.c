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

#include "compile.h"
#include "summary.h"

static const char *POLICY =
        "[Uplinks]\nInterface=wan0 wan1\n"
        "[Gateway mail]\nAddress=203.0.113.25 2001:db8::25\nPorts=tcp:25 tcp:587\n"
        "[Gateway dns]\nAddress=192.0.2.53\n";

static struct ks_policy *parse(const char *name)
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;

        assert_int_equal(policy_parse_string(POLICY, "t.policy", name, &p, &d), 0);
        diags_clear(&d);
        return p;
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_staged_shape),
                cmocka_unit_test(test_hook_equals_active_table),
                cmocka_unit_test(test_diff_reports),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
