/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reload.h"
#include "resolve.h"
#include "timeutil.h"
#include "worker.h"

struct ks_reload {
        struct ks_worker *worker;
        char *dir;
        const struct ks_store *current;
        struct store_scan scan;
        int r;
        reload_done_t done;
        void *userdata;
};

/* On the worker's thread. */
static void reload_work(void *userdata)
{
        struct ks_reload *rl = userdata;
        struct resolve_budget budget = { .deadline_usec = now_monotonic_usec() + RESOLVE_TIMEOUT_USEC,
                                         .timeout_usec = RESOLVE_TIMEOUT_USEC };

        rl->r = store_scan_dir(rl->dir, rl->current, resolve_hostname_bounded, &budget, &rl->scan);
}

static void reload_done(void *userdata)
{
        struct ks_reload *rl = userdata;

        rl->done(rl->userdata, rl->r, &rl->scan);
}

struct ks_reload *reload_free(struct ks_reload *rl)
{
        if (!rl)
                return NULL;
        worker_free(rl->worker);
        store_scan_clear(&rl->scan);
        free(rl->dir);
        free(rl);
        return NULL;
}

int reload_start(sd_event *event, const char *dir, const struct ks_store *current, reload_done_t done,
                 void *userdata, struct ks_reload **ret)
{
        struct ks_reload *rl = calloc(1, sizeof(*rl));
        int r;

        if (!rl)
                return -ENOMEM;
        *rl = (struct ks_reload){ .current = current, .done = done, .userdata = userdata };
        rl->dir = strdup(dir);
        r = rl->dir ? worker_start(event, reload_work, reload_done, rl, &rl->worker) : -ENOMEM;
        if (r < 0) {
                reload_free(rl);
                return r;
        }
        *ret = rl;
        return 0;
}
