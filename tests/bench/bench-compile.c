/* SPDX-License-Identifier: MIT */
/*
 * How long the pure core takes for 2 x 100,000 entries (tests/unit/big-policy.h):
 * parsing the text, compiling the table with the policy in force (its digest
 * included), turning it into a netlink batch, the digest alone (ruleset_digest,
 * what adoption at start computes besides) and the keyed summary the read-back compares
 * with (ruleset_summarize: every rule and element digested). Prints the median and the extremes of a few runs; nothing
 * passes or fails (a busy machine is slower). `meson test -C build --benchmark -v`,
 * or tests/bench/bench.sh, which prints it in its report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/big-policy.h"
#include "batch.h"
#include "cleanup.h"
#include "compile.h"
#include "policy.h"
#include "summary.h"

#define RUNS 5
#define TABLE "killswitch"

static double now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return (x > y) - (x < y);
}

#define PHASES 5

/* One run: the phases' times in ms. */
static int run(const char *text, double ret[PHASES])
{
        struct ks_diags d = {};
        struct ks_policy *p = NULL;
        struct ks_ruleset *r = NULL;
        struct nftnl_batch *b = NULL;
        uint32_t seq = 1;
        double t0 = now_ms(), t1, t2, t3, t4;
        /* Keyed, as the agent's read-back summarizes a rebuilt table (rules and elements digested). */
        struct ks_summary s = { .keyed = true, .key = { 1, 2 } };
        uint64_t digest;
        int k;

        k = policy_parse_string(text, "big.policy", "big", &p, &d);
        diags_clear(&d);
        if (k < 0)
                return k;
        t1 = now_ms();
        k = compile_table((const struct ks_policy *const[]){ p }, 1, "big", TABLE, &r);
        t2 = now_ms();
        if (k >= 0) {
                b = batch_alloc();
                k = b ? ruleset_to_batch(r, b, &seq) : -ENOMEM;
        }
        t3 = now_ms();
        if (k >= 0)
                k = ruleset_digest(r, &digest);
        t4 = now_ms();
        if (k >= 0)
                k = ruleset_summarize(r, &s);
        summary_clear(&s);
        ret[0] = t1 - t0;
        ret[1] = t2 - t1;
        ret[2] = t3 - t2;
        ret[3] = t4 - t3;
        ret[4] = now_ms() - t4;
        if (b)
                nftnl_batch_free(b);
        ruleset_free(r);
        policy_free(p);
        return k < 0 ? k : 0;
}

int main(void)
{
        static const char *const what[PHASES] = { "parse", "compile_table", "ruleset_to_batch", "ruleset_digest",
                                                  "ruleset_summarize" };
        const size_t n = 100000;
        _cleanup_free_ char *text = big_policy_text(n);
        double ms[PHASES][RUNS];

        if (!text)
                return 1;
        for (int i = 0; i < RUNS; i++) {
                double t[PHASES];
                int k = run(text, t);

                if (k < 0) {
                        fprintf(stderr, "bench-compile: %s\n", strerror(-k));
                        return 1;
                }
                for (int j = 0; j < PHASES; j++)
                        ms[j][i] = t[j];
        }
        printf("2 x %zu entries, %d runs: median (min-max) ms\n", n, RUNS);
        for (int j = 0; j < PHASES; j++) {
                qsort(ms[j], RUNS, sizeof(double), cmp_double);
                printf("  %-17s %7.0f (%.0f-%.0f)\n", what[j], ms[j][RUNS / 2], ms[j][0], ms[j][RUNS - 1]);
        }
        return 0;
}
