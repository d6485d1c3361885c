/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "compile.h"
#include "nft.h"
#include "stage.h"
#include "timeutil.h"

struct ks_stager {
        sd_event_source *defer;
        struct ks_nft *nft;
        struct ks_ruleset *rs;
        char *keep;
        struct ruleset_cursor cursor;
        uint32_t *generation;
        bool more;                      /* set by the last step's build */
        size_t elems;                   /* elements per step */
        const char *finishing;          /* stager_finish_policy(): that policy */
        stager_done_t done;
        void *userdata;
};

/* The next step, or with s->finishing all that is left of that policy. */
static int build_step(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        struct ks_stager *s = userdata;
        int r = s->finishing ? ruleset_policy_to_batch(s->rs, &s->cursor, b, seq, s->finishing)
                             : ruleset_rest_to_batch(s->rs, &s->cursor, b, seq, s->elems);

        if (r < 0)
                return r;
        s->more = r > 0;
        return 0;
}

/*
 * The next step's size, from how long this one took: as many elements as fit
 * in STAGE_STEP_USEC at this step's pace. The kernel's time per element
 * varies with the machine, the kind of set and how full it is, and a request
 * that arrives during a step waits for the rest of it. Halved or doubled at
 * most per step, so that one step slowed down by other work on the CPU does
 * not shrink the next ones to nothing.
 */
static size_t next_step_elems(size_t elems, uint64_t usec)
{
        uint64_t fit = elems * STAGE_STEP_USEC / (usec ? usec : 1);

        fit = fit < elems / 2 ? elems / 2 : fit > elems * 2 ? elems * 2 : fit;
        return fit < STAGE_STEP_ELEMS_MIN ? STAGE_STEP_ELEMS_MIN : fit > STAGE_STEP_ELEMS_MAX ? STAGE_STEP_ELEMS_MAX
                                                                                                : (size_t)fit;
}

/* One transaction of elements; 1 while more remain, 0 when done, negative errno (e set) on failure. */
static int stager_step(struct ks_stager *s, struct ks_error *e)
{
        uint64_t start = now_monotonic_usec();
        int r = nft_transaction_with(s->nft, NULL, 0, build_step, s, NULL, e);

        if (r < 0)
                return r;
        if (s->generation && nft_generation(s->nft, s->generation) < 0)
                *s->generation = 0;
        s->elems = next_step_elems(s->elems, now_monotonic_usec() - start);
        return s->more ? 1 : 0;
}

static void stager_end(struct ks_stager *s, int r, const struct ks_error *e)
{
        sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
        s->done(s->userdata, r, e);
}

static int on_step(sd_event_source *src, void *userdata)
{
        struct ks_stager *s = userdata;
        struct ks_error e = {};
        int r = stager_step(s, &e);

        if (r <= 0)
                stager_end(s, r, &e);
        return 0;
}

int stager_finish_policy(struct ks_stager *s, const char *name)
{
        struct ks_error e = {};
        int r;

        s->finishing = name;
        r = nft_transaction_with(s->nft, NULL, 0, build_step, s, NULL, &e);
        s->finishing = NULL;
        if (r == 0 && s->generation && nft_generation(s->nft, s->generation) < 0)
                *s->generation = 0;
        if (r < 0 || !s->more) {
                stager_end(s, r, &e);
                return r;
        }
        return 0;
}

void stager_hold(struct ks_stager *s, bool hold)
{
        if (s)
                sd_event_source_set_enabled(s->defer, hold ? SD_EVENT_OFF : SD_EVENT_ON);
}

bool stager_pending(const struct ks_stager *s, const char *name)
{
        return s && name && ruleset_cursor_pending(s->rs, &s->cursor, name);
}

struct ks_ruleset *stager_release(struct ks_stager *s)
{
        struct ks_ruleset *rs;

        if (!s)
                return NULL;
        rs = s->rs;
        sd_event_source_disable_unref(s->defer);
        ruleset_cursor_clear(&s->cursor);
        free(s->keep);
        free(s);
        return rs;
}

struct ks_stager *stager_free(struct ks_stager *s)
{
        ruleset_free(stager_release(s));
        return NULL;
}

int stager_new(sd_event *event, struct ks_nft *nft, struct ks_ruleset *rs, const char *keep, bool policies,
               uint32_t *generation, stager_done_t done, void *userdata, struct ks_stager **ret)
{
        struct ks_stager *s = calloc(1, sizeof(*s));
        int r;

        if (!s) {
                ruleset_free(rs);
                return -ENOMEM;
        }
        *s = (struct ks_stager){ .nft = nft, .rs = rs, .generation = generation, .elems = STAGE_STEP_ELEMS_FIRST,
                                 .done = done, .userdata = userdata };
        if (keep && !(s->keep = strdup(keep))) {
                stager_free(s);
                return -ENOMEM;
        }
        s->cursor = (struct ruleset_cursor){ .max = STAGE_BIG_SET, .keep = s->keep, .policies = policies };
        r = sd_event_add_defer(event, &s->defer, on_step, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->defer, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->defer, SD_EVENT_ON);
        if (r < 0) {
                stager_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

