/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "worker.h"

struct ks_worker {
        sd_event_source *io;
        int efd;                        /* the thread writes it once, when work returned */
        pthread_t thread;
        bool running;                   /* started and not joined yet */
        bool background;                /* worker_start_background() */
        worker_fn_t work, done;
        void *userdata;
};

/*
 * This thread's nice value raised by WORKER_BACKGROUND_NICE. Raising it needs
 * no privilege; where setpriority() is filtered out, the work runs as it is.
 */
static void lower_priority(void)
{
        pid_t tid = gettid();
        int nice;

        errno = 0;
        nice = getpriority(PRIO_PROCESS, tid);
        if (errno == 0)
                (void)setpriority(PRIO_PROCESS, tid, nice + WORKER_BACKGROUND_NICE > 19 ? 19 :
                                                     nice + WORKER_BACKGROUND_NICE);
}

static void *worker_thread(void *userdata)
{
        struct ks_worker *w = userdata;
        uint64_t one = 1;

        if (w->background)
                lower_priority();
        w->work(w->userdata);
        /* An eventfd write of 1 cannot fail short of a counter overflow. */
        (void)!write(w->efd, &one, sizeof(one));
        return NULL;
}

static void worker_join(struct ks_worker *w)
{
        if (!w->running)
                return;
        pthread_join(w->thread, NULL);
        w->running = false;
}

static int on_worker_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_worker *w = userdata;
        uint64_t n;

        (void)!read(fd, &n, sizeof(n));
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        worker_join(w);
        w->done(w->userdata);
        return 0;
}

void worker_finish(struct ks_worker *w)
{
        uint64_t n;

        if (!w->running)
                return;
        worker_join(w);
        (void)!read(w->efd, &n, sizeof(n));
        sd_event_source_set_enabled(w->io, SD_EVENT_OFF);
        w->done(w->userdata);
}

struct ks_worker *worker_free(struct ks_worker *w)
{
        if (!w)
                return NULL;
        worker_join(w);
        sd_event_source_disable_unref(w->io);
        if (w->efd >= 0)
                close(w->efd);
        free(w);
        return NULL;
}

static int start(sd_event *event, worker_fn_t work, worker_fn_t done, void *userdata, bool background,
                 struct ks_worker **ret)
{
        struct ks_worker *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        *w = (struct ks_worker){ .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), .work = work, .done = done,
                                 .userdata = userdata, .background = background };
        if (w->efd < 0) {
                r = -errno;
                worker_free(w);
                return r;
        }
        r = sd_event_add_io(event, &w->io, w->efd, EPOLLIN, on_worker_done, w);
        if (r >= 0) {
                r = -pthread_create(&w->thread, NULL, worker_thread, w);
                w->running = r == 0;
        }
        if (r < 0) {
                worker_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

int worker_start(sd_event *event, worker_fn_t work, worker_fn_t done, void *userdata, struct ks_worker **ret)
{
        return start(event, work, done, userdata, false, ret);
}

int worker_start_background(sd_event *event, worker_fn_t work, worker_fn_t done, void *userdata,
                            struct ks_worker **ret)
{
        return start(event, work, done, userdata, true, ret);
}
