/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "reaper.h"
#include "worker.h"

struct job {
        struct ks_reaper *reaper;
        struct job *next;
        struct ks_worker *worker;
        void *p;
        reaper_fn_t fn;
};

struct ks_reaper {
        sd_event *event;
        struct job *jobs;               /* started, done not run yet */
};

static void unlink_job(struct job *j)
{
        for (struct job **p = &j->reaper->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        return;
                }
}

static void job_work(void *userdata)
{
        struct job *j = userdata;

        j->fn(j->p);
        malloc_trim(0);         /* what was freed goes back to the system: the RSS stays what the agent keeps */
}

static void job_done(void *userdata)
{
        struct job *j = userdata;

        unlink_job(j);
        worker_free(j->worker);
        free(j);
}

int reaper_new(sd_event *event, struct ks_reaper **ret)
{
        struct ks_reaper *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        *ret = r;
        return 0;
}

void reaper_add(struct ks_reaper *r, void *p, reaper_fn_t fn)
{
        struct job *j;

        if (!p)
                return;
        j = r ? calloc(1, sizeof(*j)) : NULL;
        if (!j) {
                fn(p);
                return;
        }
        *j = (struct job){ .reaper = r, .next = r->jobs, .p = p, .fn = fn };
        if (worker_start_background(r->event, job_work, job_done, j, &j->worker) < 0) {
                free(j);
                fn(p);
                return;
        }
        r->jobs = j;
}

struct ks_reaper *reaper_free(struct ks_reaper *r)
{
        if (!r)
                return NULL;
        while (r->jobs)
                worker_finish(r->jobs->worker); /* runs job_done, which unlinks it */
        sd_event_unref(r->event);
        free(r);
        return NULL;
}
