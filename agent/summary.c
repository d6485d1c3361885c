/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "alloc.h"
#include "summary.h"

static void chain_clear(struct summary_chain *c)
{
        free(c->name);
        free(c->jump);
}

void summary_clear(struct ks_summary *s)
{
        for (size_t i = 0; i < s->n_chains; i++)
                chain_clear(&s->chains[i]);
        for (size_t i = 0; i < s->n_sets; i++)
                free(s->sets[i].name);
        for (size_t i = 0; i < s->n_counters; i++)
                free(s->counters[i]);
        free(s->chains);
        free(s->sets);
        free(s->counters);
        free(s->comment);
        *s = (struct ks_summary){};
}

struct summary_chain *summary_chain(struct ks_summary *s, const char *name, bool create)
{
        struct summary_chain *v;

        for (size_t i = 0; i < s->n_chains; i++)
                if (strcmp(s->chains[i].name, name) == 0)
                        return &s->chains[i];
        if (!create || !(v = GREEDY_REALLOC(s->chains, s->n_chains + 1)))
                return NULL;
        v[s->n_chains] = (struct summary_chain){ .name = strdup(name) };
        if (!v[s->n_chains].name)
                return NULL;
        return &v[s->n_chains++];
}

struct summary_set *summary_set(struct ks_summary *s, const char *name, bool create)
{
        struct summary_set *v;

        for (size_t i = 0; i < s->n_sets; i++)
                if (strcmp(s->sets[i].name, name) == 0)
                        return &s->sets[i];
        if (!create || !(v = GREEDY_REALLOC(s->sets, s->n_sets + 1)))
                return NULL;
        v[s->n_sets] = (struct summary_set){ .name = strdup(name) };
        if (!v[s->n_sets].name)
                return NULL;
        return &v[s->n_sets++];
}

int summary_add_counter(struct ks_summary *s, const char *name)
{
        char **v = GREEDY_REALLOC(s->counters, s->n_counters + 1);

        if (!v)
                return -ENOMEM;
        v[s->n_counters] = strdup(name);
        if (!v[s->n_counters])
                return -ENOMEM;
        s->n_counters++;
        return 0;
}

void summary_remove_chain(struct ks_summary *s, const char *name)
{
        struct summary_chain *c = summary_chain(s, name, false);

        if (!c)
                return;
        chain_clear(c);
        *c = s->chains[--s->n_chains];
}

int summary_copy(const struct ks_summary *from, struct ks_summary *to)
{
        struct ks_summary c = {};

        for (size_t i = 0; i < from->n_chains; i++) {
                struct summary_chain *k = summary_chain(&c, from->chains[i].name, true);

                if (!k || (from->chains[i].jump && !(k->jump = strdup(from->chains[i].jump))))
                        goto out_nomem;
                k->base = from->chains[i].base;
                k->priority = from->chains[i].priority;
                k->rules = from->chains[i].rules;
        }
        for (size_t i = 0; i < from->n_sets; i++) {
                struct summary_set *k = summary_set(&c, from->sets[i].name, true);

                if (!k)
                        goto out_nomem;
                k->elems = from->sets[i].elems;
                k->dynamic = from->sets[i].dynamic;
        }
        for (size_t i = 0; i < from->n_counters; i++)
                if (summary_add_counter(&c, from->counters[i]) < 0)
                        goto out_nomem;
        c.dormant = from->dormant;
        if (summary_set_comment(&c, from->comment) < 0)
                goto out_nomem;
        *to = c;
        return 0;
out_nomem:
        summary_clear(&c);
        return -ENOMEM;
}

int summary_set_comment(struct ks_summary *s, const char *comment)
{
        char *c = NULL;

        if (comment && !(c = strdup(comment)))
                return -ENOMEM;
        free(s->comment);
        s->comment = c;
        return 0;
}

/* Appends to a bounded message; counts differences. */
struct diff {
        char *msg;
        size_t size, len;
        unsigned n;
};

static void diff_add(struct diff *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diff_add(struct diff *d, const char *fmt, ...)
{
        va_list ap;
        int k;

        if (d->n++ >= 4 || d->len + 3 >= d->size)
                return;
        if (d->len > 0)
                d->len += (size_t)snprintf(d->msg + d->len, d->size - d->len, "; ");
        va_start(ap, fmt);
        k = vsnprintf(d->msg + d->len, d->size - d->len, fmt, ap);
        va_end(ap);
        if (k > 0)
                d->len = d->len + (size_t)k < d->size ? d->len + (size_t)k : d->size - 1;
}

static bool same(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void diff_chains(const struct ks_summary *want, struct ks_summary *have, struct diff *d)
{
        for (size_t i = 0; i < want->n_chains; i++) {
                const struct summary_chain *w = &want->chains[i];
                const struct summary_chain *h = summary_chain(have, w->name, false);

                if (!h)
                        diff_add(d, "chain %s missing", w->name);
                else if (h->base != w->base)
                        diff_add(d, "chain %s %s", w->name, w->base ? "not hooked" : "hooked");
                else if (w->base && h->priority != w->priority)
                        diff_add(d, "chain %s has priority %d, not %d", w->name, h->priority, w->priority);
                else if (h->rules != w->rules)
                        diff_add(d, "chain %s has %u rules, not %u", w->name, h->rules, w->rules);
                else if (!same(h->jump, w->jump))
                        diff_add(d, "chain %s jumps to %s, not %s", w->name, h->jump ? h->jump : "nothing",
                                 w->jump ? w->jump : "nothing");
        }
        for (size_t i = 0; i < have->n_chains; i++)
                if (!summary_chain((struct ks_summary *)want, have->chains[i].name, false))
                        diff_add(d, "unexpected chain %s", have->chains[i].name);
}

/* A dormant table keeps its base chains, but none of them sees a packet. */
static void diff_dormant(const struct ks_summary *want, const struct ks_summary *have, struct diff *d)
{
        if (have->dormant != want->dormant)
                diff_add(d, "the table is %s", have->dormant ? "dormant (no hook registered)" : "not dormant");
}

bool summary_same_digest(const char *a, const char *b)
{
        const char *x = a ? strstr(a, SUMMARY_DIGEST_MARK) : NULL, *y = b ? strstr(b, SUMMARY_DIGEST_MARK) : NULL;

        return x && y && strcmp(x, y) == 0;
}

/* The digest of the rules as the compiler built them (ruleset_seal): the shape does not show a changed match. */
static void diff_comment(const struct ks_summary *want, const struct ks_summary *have, struct diff *d)
{
        if (!want->comment || summary_same_digest(want->comment, have->comment))
                return;
        diff_add(d, "the table was built by a different version of the agent or its rules differ (comment \"%s\", "
                 "not \"%s\")", have->comment ? have->comment : "", want->comment);
}

int summary_diff_hooks(const struct ks_summary *want, const struct ks_summary *have, char *msg, size_t size)
{
        struct ks_summary *h = (struct ks_summary *)have;       /* lookups only */
        struct diff d = { .msg = msg, .size = size };

        if (size > 0)
                msg[0] = '\0';
        diff_dormant(want, have, &d);
        diff_comment(want, have, &d);
        for (size_t i = 0; i < want->n_chains; i++) {
                const struct summary_chain *w = &want->chains[i];
                const struct summary_chain *k = summary_chain(h, w->name, false);

                if (!k)
                        diff_add(&d, "chain %s missing", w->name);
                else if (k->base != w->base)
                        diff_add(&d, "chain %s %s", w->name, w->base ? "not hooked" : "hooked");
                else if (!w->base)
                        continue;
                else if (k->priority != w->priority)
                        diff_add(&d, "chain %s has priority %d, not %d", w->name, k->priority, w->priority);
                else if (k->rules != w->rules)
                        diff_add(&d, "chain %s has %u rules, not %u", w->name, k->rules, w->rules);
                else if (!same(k->jump, w->jump))
                        diff_add(&d, "chain %s jumps to %s, not %s", w->name, k->jump ? k->jump : "nothing",
                                 w->jump ? w->jump : "nothing");
        }
        for (size_t i = 0; i < have->n_chains; i++)
                if (!summary_chain((struct ks_summary *)want, have->chains[i].name, false))
                        diff_add(&d, "unexpected chain %s", have->chains[i].name);
        return d.n ? -EPROTO : 0;
}

int summary_diff(const struct ks_summary *want, const struct ks_summary *have, bool compare_elems, char *msg,
                 size_t size)
{
        struct ks_summary *h = (struct ks_summary *)have;       /* lookups only */
        struct diff d = { .msg = msg, .size = size };

        if (size > 0)
                msg[0] = '\0';
        diff_dormant(want, have, &d);
        diff_comment(want, have, &d);
        diff_chains(want, h, &d);
        for (size_t i = 0; i < want->n_sets; i++) {
                const struct summary_set *k = summary_set(h, want->sets[i].name, false);

                if (!k)
                        diff_add(&d, "set %s missing", want->sets[i].name);
                else if (compare_elems && !want->sets[i].dynamic && k->elems != want->sets[i].elems)
                        diff_add(&d, "set %s has %u elements, not %u", k->name, k->elems, want->sets[i].elems);
        }
        if (have->n_sets != want->n_sets)
                diff_add(&d, "%zu sets, not %zu", have->n_sets, want->n_sets);
        if (have->n_counters != want->n_counters)
                diff_add(&d, "%zu counters, not %zu", have->n_counters, want->n_counters);
        return d.n ? -EPROTO : 0;
}

const char *summary_rule_jump(struct nftnl_rule *rule)
{
        struct nftnl_expr_iter *it = nftnl_expr_iter_create(rule);
        const char *target = NULL;
        struct nftnl_expr *e;

        while (it && !target && (e = nftnl_expr_iter_next(it))) {
                const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

                if (name && strcmp(name, "immediate") == 0 && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN) &&
                    (int)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT) == NFT_JUMP)
                        target = nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN);
        }
        if (it)
                nftnl_expr_iter_destroy(it);
        return target;
}

static int count_elem(struct nftnl_set_elem *e, void *data)
{
        (*(uint32_t *)data)++;
        return 0;
}

uint32_t summary_count_elems(struct nftnl_set *set)
{
        uint32_t n = 0;

        nftnl_set_elem_foreach(set, count_elem, &n);
        return n;
}

int summary_add_rule(struct ks_summary *s, struct nftnl_rule *rule)
{
        struct summary_chain *c = summary_chain(s, nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN), true);
        const char *jump;

        if (!c)
                return -ENOMEM;
        if (c->rules++ == 0 && (jump = summary_rule_jump(rule)) && !(c->jump = strdup(jump)))
                return -ENOMEM;
        return 0;
}
