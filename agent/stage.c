/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "compile.h"
#include "nft.h"
#include "stage.h"

struct ks_stager {
        sd_event_source *defer;
        struct ks_nft *nft;
        struct ks_ruleset *rs;
        char *keep;
        struct ruleset_cursor cursor;
        uint32_t *generation;
        bool more;                      /* set by the last step's build */
        unsigned msgs;                  /* element messages per step */
        stager_done_t done;
        void *userdata;
};

static int build_step(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        struct ks_stager *s = userdata;
        int r = ruleset_elems_to_batch(s->rs, &s->cursor, b, seq, s->msgs);

        if (r < 0)
                return r;
        s->more = r > 0;
        return 0;
}

/* One transaction of elements; 1 while more remain, 0 when done, negative errno (e set) on failure. */
static int stager_step(struct ks_stager *s, struct ks_error *e)
{
        int r = nft_transaction_with(s->nft, NULL, 0, build_step, s, NULL, e);

        if (r < 0)
                return r;
        if (s->generation && nft_generation(s->nft, s->generation) < 0)
                *s->generation = 0;
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

int stager_finish(struct ks_stager *s)
{
        struct ks_error e = {};
        int r;

        s->msgs = 64;   /* nobody to answer in between: fewer, larger transactions */
        do
                r = stager_step(s, &e);
        while (r > 0);
        stager_end(s, r, &e);
        return r;
}

bool stager_pending(const struct ks_stager *s, const char *name)
{
        return s && name && ruleset_cursor_pending(s->rs, &s->cursor, name);
}

struct ks_stager *stager_free(struct ks_stager *s)
{
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->defer);
        ruleset_cursor_clear(&s->cursor);
        ruleset_free(s->rs);
        free(s->keep);
        free(s);
        return NULL;
}

int stager_new(sd_event *event, struct ks_nft *nft, struct ks_ruleset *rs, const char *keep, uint32_t *generation,
               stager_done_t done, void *userdata, struct ks_stager **ret)
{
        struct ks_stager *s = calloc(1, sizeof(*s));
        int r;

        if (!s) {
                ruleset_free(rs);
                return -ENOMEM;
        }
        *s = (struct ks_stager){ .nft = nft, .rs = rs, .generation = generation, .msgs = STAGE_CHUNK_MSGS,
                                 .done = done, .userdata = userdata };
        if (keep && !(s->keep = strdup(keep))) {
                stager_free(s);
                return -ENOMEM;
        }
        s->cursor = (struct ruleset_cursor){ .max = STAGE_BIG_SET, .keep = s->keep };
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
