/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "compile.h"
#include "reload.h"
#include "resolve.h"
#include "timeutil.h"
#include "worker.h"

struct ks_reload {
        struct ks_worker *worker;
        char *dir;
        char *lastgood;                 /* where the text of each file that loads is saved (lastgood.h), or NULL */
        char *keep;                     /* the policy in force at the start */
        struct ks_store current;        /* a copy of the caller's, the same entries; ours if owns_current */
        bool owns_current;              /* reload_abandon() */
        bool scanned;                   /* the thread is done: the callback ran */
        struct store_scan scan;
        struct reload_table table;      /* compiled for the result, if it could be */
        int r;
        reload_done_t done;
        void *userdata;
};

/* On the worker's thread. */
static void reload_work(void *userdata)
{
        struct ks_reload *rl = userdata;
        struct resolve_budget budget = RESOLVE_BUDGET_INIT;
        struct reload_table *t = &rl->table;

        rl->r = store_scan_dir(rl->dir, &rl->current, rl->lastgood, resolve_hostname_bounded, &budget, &rl->scan);
        /* The compiler is pure: compile the table the loop will send (as replace_table() would). */
        if (rl->r == 0 && store_scan_policies(&rl->scan, &rl->current, rl->keep, &t->policies, &t->n_policies) == 0 &&
            compile_table(t->policies, t->n_policies, NULL, TABLE_NAME, &t->rs) < 0)
                t->rs = NULL;
        if (t->rs)
                t->summarized = ruleset_summarize(t->rs, &t->summary) == 0;
}

static void reload_done(void *userdata)
{
        struct ks_reload *rl = userdata;

        rl->scanned = true;
        rl->done(rl->userdata, rl->r, &rl->scan, &rl->table);
}

/* All but the worker. */
static void reload_clear(void *userdata)
{
        struct ks_reload *rl = userdata;

        if (rl->owns_current)
                store_clear(&rl->current);
        store_scan_clear(&rl->scan);
        ruleset_free(rl->table.rs);
        summary_clear(&rl->table.summary);
        free(rl->table.policies);
        free(rl->keep);
        free(rl->lastgood);
        free(rl->dir);
        free(rl);
}

struct ks_reload *reload_free(struct ks_reload *rl)
{
        if (!rl)
                return NULL;
        worker_free(rl->worker);
        reload_clear(rl);
        return NULL;
}

struct ks_reload *reload_abandon(struct ks_reload *rl, struct ks_store *current)
{
        if (!rl || rl->scanned)         /* the store may have changed since: not ours to free */
                return reload_free(rl);
        rl->owns_current = true;
        *current = (struct ks_store){};
        worker_abandon(rl->worker, reload_clear);
        return NULL;
}

int reload_start(sd_event *event, const char *dir, const char *lastgood, const struct ks_store *current,
                 const char *keep, const struct ks_summary *keyed, reload_done_t done, void *userdata,
                 struct ks_reload **ret)
{
        struct ks_reload *rl = calloc(1, sizeof(*rl));
        int r;

        if (!rl)
                return -ENOMEM;
        *rl = (struct ks_reload){ .current = *current, .done = done, .userdata = userdata };
        summary_copy_key(keyed, &rl->table.summary);
        rl->dir = strdup(dir);
        if ((keep && !(rl->keep = strdup(keep))) || (lastgood && !(rl->lastgood = strdup(lastgood)))) {
                free(rl->dir);
                rl->dir = NULL;
        }
        r = rl->dir ? worker_start_background(event, reload_work, reload_done, rl, &rl->worker) : -ENOMEM;
        if (r < 0) {
                reload_free(rl);
                return r;
        }
        *ret = rl;
        return 0;
}
