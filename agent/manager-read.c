/* SPDX-License-Identifier: MIT */
/* Reads of a loaded policy off the loop, one at a time (manager-read.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "manager-read.h"
#include "manager.h"
#include "worker.h"

struct policy_read {
        struct ks_manager *m;
        struct ks_worker *worker;       /* set while it runs */
        const struct ks_policy *p;
        manager_read_work_t work;
        manager_read_skip_t skip;
        manager_read_done_t done;
        void *userdata;
        int r;
        bool low;                       /* an untrusted caller's: after every other waiting */
        struct policy_read *next;
};

static void reads_next(struct ks_manager *m);

static void read_work(void *userdata)
{
        struct policy_read *rd = userdata;

        rd->r = rd->work(rd->p, rd->userdata);
}

/* Off the queue, then done: it may queue another read. */
static void read_end(struct ks_manager *m, struct policy_read *rd, int r)
{
        m->reads = rd->next;
        rd->worker = worker_free(rd->worker);
        rd->done(m, rd->userdata, r);
        free(rd);
}

static void read_done(void *userdata)
{
        struct policy_read *rd = userdata;
        struct ks_manager *m = rd->m;

        read_end(m, rd, rd->r);
        reads_next(m);
}

/* Start the read at the head of the queue, unless one runs; skipped ones are answered on the way. */
static void reads_next(struct ks_manager *m)
{
        struct policy_read *rd;
        int r;

        while ((rd = m->reads) && !rd->worker) {
                if (rd->skip && rd->skip(rd->userdata)) {
                        read_end(m, rd, -ECONNABORTED);
                        continue;
                }
                r = worker_start_background(m->event, read_work, read_done, rd, &rd->worker);
                if (r == 0)
                        return;
                read_end(m, rd, r);
        }
        manager_retired_release(m);     /* none runs or waits */
}

/*
 * Where a new read goes in the queue: a low one at the end, another before the
 * first low one waiting (the one running stays first). -EBUSY past the limits.
 */
static int reads_place(struct ks_manager *m, bool low, struct policy_read ***ret_at)
{
        struct policy_read **pp, **at = NULL;
        size_t n = 0, n_low = 0;

        for (pp = &m->reads; *pp; pp = &(*pp)->next) {
                n++;
                n_low += (*pp)->low;
                if (!at && !low && (*pp)->low && !(*pp)->worker)
                        at = pp;
        }
        if (n >= MANAGER_READS_MAX || (low && n_low >= MANAGER_READS_LOW_MAX))
                return -EBUSY;
        *ret_at = at ? at : pp;
        return 0;
}

int manager_read_policy(struct ks_manager *m, const struct ks_policy *p, bool low, manager_read_work_t work,
                        manager_read_skip_t skip, manager_read_done_t done, void *userdata)
{
        struct policy_read **at, *rd;
        int r = reads_place(m, low, &at);

        if (r < 0)
                return r;
        rd = calloc(1, sizeof(*rd));
        if (!rd)
                return -ENOMEM;
        *rd = (struct policy_read){ .m = m, .p = p, .work = work, .skip = skip, .done = done,
                                    .userdata = userdata, .low = low, .next = *at };
        *at = rd;
        if (rd == m->reads)
                reads_next(m);
        return 0;
}

bool manager_reads_pending(const struct ks_manager *m)
{
        return m->reads;
}

void manager_reads_stop(struct ks_manager *m)
{
        struct policy_read *rd = m->reads;

        if (rd && rd->worker) {
                rd->worker = worker_free(rd->worker);   /* waits for work */
                read_end(m, rd, rd->r);
        }
        while ((rd = m->reads))
                read_end(m, rd, -ECANCELED);
}
