/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
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

void summary_empty(struct ks_summary *s)
{
        struct siphash_key key = s->key;
        bool keyed = s->keyed;

        summary_clear(s);
        s->key = key;
        s->keyed = keyed;
}

void summary_move(struct ks_summary *to, struct ks_summary *from)
{
        summary_clear(to);
        *to = *from;
        *from = (struct ks_summary){};
}

void summary_copy_key(const struct ks_summary *from, struct ks_summary *to)
{
        to->key = from->key;
        to->keyed = from->keyed;
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

static bool has_prefix(const char *name, const char *prefix)
{
        return name && strncmp(name, prefix, strlen(prefix)) == 0;
}

void summary_remove_prefix(struct ks_summary *s, const char *prefix)
{
        for (size_t i = s->n_chains; i-- > 0;)
                if (has_prefix(s->chains[i].name, prefix)) {
                        chain_clear(&s->chains[i]);
                        s->chains[i] = s->chains[--s->n_chains];
                }
        for (size_t i = s->n_sets; i-- > 0;)
                if (has_prefix(s->sets[i].name, prefix)) {
                        free(s->sets[i].name);
                        s->sets[i] = s->sets[--s->n_sets];
                }
        for (size_t i = s->n_counters; i-- > 0;)
                if (has_prefix(s->counters[i], prefix)) {
                        free(s->counters[i]);
                        s->counters[i] = s->counters[--s->n_counters];
                }
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
                k->content = from->chains[i].content;
        }
        for (size_t i = 0; i < from->n_sets; i++) {
                struct summary_set *k = summary_set(&c, from->sets[i].name, true);

                if (!k)
                        goto out_nomem;
                k->elems = from->sets[i].elems;
                k->dynamic = from->sets[i].dynamic;
                k->counted = from->sets[i].counted;
                k->content = from->sets[i].content;
        }
        for (size_t i = 0; i < from->n_counters; i++)
                if (summary_add_counter(&c, from->counters[i]) < 0)
                        goto out_nomem;
        c.dormant = from->dormant;
        summary_copy_key(from, &c);
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

/* Same shape, other matches: a rule replaced by one of the same kind (nft replace rule ... handle N). */
static void diff_content(const struct ks_summary *want, const struct ks_summary *have, const struct summary_chain *w,
                         const struct summary_chain *h, struct diff *d)
{
        if (want->keyed && have->keyed && h->content != w->content)
                diff_add(d, "chain %s holds other rules than the agent built (same number, other matches)", w->name);
}

/* The elements of a set whose elements have counted: as many, and the same ones. */
static void diff_set_elems(const struct ks_summary *want, const struct ks_summary *have, const struct summary_set *w,
                           const struct summary_set *h, struct diff *d)
{
        if (w->dynamic || !h->counted)
                return;
        if (h->elems != w->elems)
                diff_add(d, "set %s has %u elements, not %u", w->name, h->elems, w->elems);
        else if (want->keyed && have->keyed && h->content != w->content)
                diff_add(d, "set %s holds other elements than the agent put in it (as many)", w->name);
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
                else
                        diff_content(want, have, w, h, d);
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
                else
                        diff_content(want, have, w, k, &d);
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
                else if (compare_elems)
                        diff_set_elems(want, have, &want->sets[i], k, &d);
        }
        if (have->n_sets != want->n_sets)
                diff_add(&d, "%zu sets, not %zu", have->n_sets, want->n_sets);
        if (have->n_counters != want->n_counters)
                diff_add(&d, "%zu counters, not %zu", have->n_counters, want->n_counters);
        return d.n ? -EPROTO : 0;
}

int summary_diff_elems(const struct ks_summary *want, const struct ks_summary *have, char *msg, size_t size)
{
        struct ks_summary *w = (struct ks_summary *)want;       /* lookups only */
        struct diff d = { .msg = msg, .size = size };

        if (size > 0)
                msg[0] = '\0';
        for (size_t i = 0; i < have->n_sets; i++) {
                const struct summary_set *k = summary_set(w, have->sets[i].name, false);

                if (!k)
                        diff_add(&d, "unexpected set %s", have->sets[i].name);
                else
                        diff_set_elems(want, have, k, &have->sets[i], &d);
        }
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

static int opt_reg(struct nftnl_expr *e, uint16_t type)
{
        return nftnl_expr_is_set(e, type) ? (int)nftnl_expr_get_u32(e, type) : -1;
}

static const char *opt_str(struct nftnl_expr *e, uint16_t type)
{
        const char *v = nftnl_expr_get_str(e, type);

        return v ? v : "";
}

/*
 * An expression as libnftnl prints it (what `nft --debug=netlink` shows:
 * every register, offset, value, set name and flag), but where the kernel's
 * dump and what the compiler sends say the same apart: the kernel dumps a
 * lookup's flags and a dynset's timeout and flags even when zero (libnftnl
 * prints them only if present), and no direction for ct's protocol keys,
 * which do not use it. A counter's values change: left out.
 */
static int expr_text(struct nftnl_expr *e, const char *name, char *buf, size_t size)
{
        uint32_t key;

        if (strcmp(name, "counter") == 0)
                return 0;
        if (strcmp(name, "lookup") == 0)
                return snprintf(buf, size, "reg %u set %s dreg %d flags %u", nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG),
                                opt_str(e, NFTNL_EXPR_LOOKUP_SET), opt_reg(e, NFTNL_EXPR_LOOKUP_DREG),
                                nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS));
        if (strcmp(name, "dynset") == 0 && !nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_EXPR) &&
            !nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_EXPRESSIONS))
                return snprintf(buf, size, "op %u reg_key %u reg_data %d set %s timeout %" PRIu64 " flags %u",
                                nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_OP),
                                nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY),
                                opt_reg(e, NFTNL_EXPR_DYNSET_SREG_DATA), opt_str(e, NFTNL_EXPR_DYNSET_SET_NAME),
                                nftnl_expr_get_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT),
                                nftnl_expr_get_u32(e, NFTNL_EXPR_DYNSET_FLAGS));
        key = nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY);
        if (strcmp(name, "ct") == 0 && nftnl_expr_is_set(e, NFTNL_EXPR_CT_DREG) &&
            (key == NFT_CT_PROTOCOL || key == NFT_CT_L3PROTOCOL))
                return snprintf(buf, size, "load %u => reg %u", key, nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG));
        return nftnl_expr_snprintf(buf, size, e, NFTNL_OUTPUT_DEFAULT, 0);
}

/*
 * A rule's expressions (expr_text), each digested after the previous one
 * with the length of its text (a text longer than the buffer, never one of
 * ours, is told from the same text cut short).
 */
static int rule_digest(const struct siphash_key *key, struct nftnl_rule *rule, uint64_t *ret)
{
        struct nftnl_expr_iter *it = nftnl_expr_iter_create(rule);
        struct nftnl_expr *e;
        uint64_t h = 0;
        char buf[4096];

        if (!it)
                return -ENOMEM;
        while ((e = nftnl_expr_iter_next(it))) {
                const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
                int len = snprintf(buf, sizeof(buf), "%s ", name ? name : "?"), k = -1;
                uint64_t v[3];

                if (name && len > 0 && (size_t)len < sizeof(buf))
                        k = expr_text(e, name, buf + len, sizeof(buf) - (size_t)len);
                v[0] = h;
                v[1] = siphash24(key, buf, strnlen(buf, sizeof(buf)));
                v[2] = (uint64_t)k;
                h = siphash24(key, v, sizeof(v));
        }
        nftnl_expr_iter_destroy(it);
        *ret = h;
        return 0;
}

int summary_add_rule(struct ks_summary *s, struct nftnl_rule *rule)
{
        struct summary_chain *c = summary_chain(s, nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN), true);
        const char *jump;
        uint64_t h[2];
        int k;

        if (!c)
                return -ENOMEM;
        if (c->rules++ == 0 && (jump = summary_rule_jump(rule)) && !(c->jump = strdup(jump)))
                return -ENOMEM;
        if (!s->keyed)
                return 0;
        k = rule_digest(&s->key, rule, &h[1]);
        if (k < 0)
                return k;
        h[0] = c->content;
        c->content = siphash24(&s->key, h, sizeof(h));
        return 0;
}

void summary_flush_chain(struct summary_chain *c)
{
        c->rules = 0;
        c->content = 0;
        free(c->jump);
        c->jump = NULL;
}

struct elem_digest {
        const struct siphash_key *key;
        uint32_t n;
        uint64_t sum;
        struct summary_seen *seen;      /* or NULL */
};

/* buf += the attribute's length and bytes (absent: length 0). */
static size_t put_attr(uint8_t *buf, size_t at, struct nftnl_set_elem *e, uint16_t attr)
{
        uint32_t len = 0;
        const void *v = nftnl_set_elem_is_set(e, attr) ? nftnl_set_elem_get(e, attr, &len) : NULL;

        if (!v || len > NFT_DATA_VALUE_MAXLEN)
                len = 0;
        buf[at++] = (uint8_t)len;
        if (len)
                memcpy(buf + at, v, len);
        return at + len;
}

/* What decides a lookup: the element's key, the end of its range, its flags (an interval's end), its data. */
static int elem_digest_cb(struct nftnl_set_elem *e, void *data)
{
        struct elem_digest *d = data;
        uint8_t buf[4 + 3 * (1 + NFT_DATA_VALUE_MAXLEN)];
        uint32_t flags = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) ?
                         nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) : 0;
        uint64_t h;
        size_t len;

        memcpy(buf, &flags, sizeof(flags));
        len = put_attr(buf, sizeof(flags), e, NFTNL_SET_ELEM_KEY);
        len = put_attr(buf, len, e, NFTNL_SET_ELEM_KEY_END);
        len = put_attr(buf, len, e, NFTNL_SET_ELEM_DATA);
        d->n++;
        if (!d->key)
                return 0;
        h = siphash24(d->key, buf, len);
        d->sum += h;
        if (d->seen && !d->seen->error && !GREEDY_REALLOC(d->seen->digests, d->seen->n + 1))
                d->seen->error = true;
        if (d->seen && !d->seen->error)
                d->seen->digests[d->seen->n++] = h;
        return 0;
}

void summary_add_elems_seen(const struct ks_summary *s, struct summary_set *st, struct nftnl_set *set,
                            struct summary_seen *seen)
{
        struct elem_digest d = { .key = s->keyed ? &s->key : NULL, .seen = seen };

        nftnl_set_elem_foreach(set, elem_digest_cb, &d);
        st->elems += d.n;
        st->content += d.sum;
        st->counted = true;
}

void summary_add_elems(const struct ks_summary *s, struct summary_set *st, struct nftnl_set *set)
{
        summary_add_elems_seen(s, st, set, NULL);
}

static int digest_cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

bool summary_seen_twice(struct summary_seen *seen)
{
        bool twice = false;

        if (seen->n > 1)
                qsort(seen->digests, seen->n, sizeof(*seen->digests), digest_cmp);
        for (size_t i = 1; !twice && i < seen->n; i++)
                twice = seen->digests[i] == seen->digests[i - 1];
        free(seen->digests);
        *seen = (struct summary_seen){};
        return twice;
}

void summary_set_elems(const struct ks_summary *s, struct summary_set *st, struct nftnl_set *set)
{
        st->elems = 0;
        st->content = 0;
        summary_add_elems(s, st, set);
}
