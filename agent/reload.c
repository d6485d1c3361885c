/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "reload.h"
#include "resolve.h"
#include "timeutil.h"

struct ks_reload {
        sd_event_source *io;
        int efd;                        /* the thread writes it once, when done */
        pthread_t thread;
        bool running;                   /* started and not joined yet */
        char *dir;
        const struct ks_store *current;
        struct store_scan scan;
        int r;
        reload_done_t done;
        void *userdata;
};

static void *reload_thread(void *userdata)
{
        struct ks_reload *rl = userdata;
        struct resolve_budget budget = { .deadline_usec = now_monotonic_usec() + RESOLVE_TIMEOUT_USEC,
                                         .timeout_usec = RESOLVE_TIMEOUT_USEC };
        uint64_t one = 1;

        rl->r = store_scan_dir(rl->dir, rl->current, resolve_hostname_bounded, &budget, &rl->scan);
        /* An eventfd write of 1 cannot fail short of a counter overflow. */
        (void)!write(rl->efd, &one, sizeof(one));
        return NULL;
}

static void reload_join(struct ks_reload *rl)
{
        if (!rl->running)
                return;
        pthread_join(rl->thread, NULL);
        rl->running = false;
}

static int on_reload_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_reload *rl = userdata;
        uint64_t n;

        (void)!read(fd, &n, sizeof(n));
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        reload_join(rl);
        rl->done(rl->userdata, rl->r, &rl->scan);
        return 0;
}

struct ks_reload *reload_free(struct ks_reload *rl)
{
        if (!rl)
                return NULL;
        reload_join(rl);
        sd_event_source_disable_unref(rl->io);
        if (rl->efd >= 0)
                close(rl->efd);
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
        *rl = (struct ks_reload){ .efd = -1, .current = current, .done = done, .userdata = userdata };
        rl->dir = strdup(dir);
        rl->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!rl->dir || rl->efd < 0) {
                r = rl->dir ? -errno : -ENOMEM;
                reload_free(rl);
                return r;
        }
        r = sd_event_add_io(event, &rl->io, rl->efd, EPOLLIN, on_reload_done, rl);
        if (r >= 0) {
                r = -pthread_create(&rl->thread, NULL, reload_thread, rl);
                rl->running = r == 0;
        }
        if (r < 0) {
                reload_free(rl);
                return r;
        }
        *ret = rl;
        return 0;
}
