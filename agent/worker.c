/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "worker.h"

enum {
        WORK_RUNNING,
        WORK_RETURNED,                  /* the thread writes the eventfd next */
        WORK_ABANDONED,                 /* worker_abandon(): the thread cleans up and frees us */
};

struct ks_worker {
        sd_event_source *io;
        int efd;                        /* the thread writes it once, when work returned: its last use of us */
        bool running;                   /* started, and that write not read yet */
        bool background;                /* worker_start_background() */
        atomic_int stage;               /* the thread's and the loop's handshake at the end */
        worker_fn_t work, done, cleanup;
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
        if (atomic_exchange(&w->stage, WORK_RETURNED) == WORK_ABANDONED) {
                /* Nobody waits for us any more. */
                w->cleanup(w->userdata);
                close(w->efd);
                free(w);
                return NULL;
        }
        /* An eventfd write of 1 cannot fail short of a counter overflow. After it, the loop may free w. */
        (void)!write(w->efd, &one, sizeof(one));
        return NULL;
}

/*
 * Wait until work returned (the thread's eventfd write). The thread is
 * detached: what it does after that write (its exit, which gives its malloc
 * cache back under the allocator's locks) is never waited for. A join did:
 * on a busy machine a thread at nice +10 took up to 150 ms to get the CPU
 * back and exit, and the loop answered nothing meanwhile.
 */
static void wait_done(struct ks_worker *w)
{
        struct pollfd p = { .fd = w->efd, .events = POLLIN };
        uint64_t n;

        if (!w->running)
                return;
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
        (void)!read(w->efd, &n, sizeof(n));
        w->running = false;
}

static int on_worker_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct ks_worker *w = userdata;
        uint64_t n;

        (void)!read(fd, &n, sizeof(n));
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        w->running = false;
        w->done(w->userdata);
        return 0;
}

void worker_finish(struct ks_worker *w)
{
        if (!w->running)
                return;
        wait_done(w);
        sd_event_source_set_enabled(w->io, SD_EVENT_OFF);
        w->done(w->userdata);
}

struct ks_worker *worker_free(struct ks_worker *w)
{
        if (!w)
                return NULL;
        wait_done(w);
        sd_event_source_disable_unref(w->io);
        if (w->efd >= 0)
                close(w->efd);
        free(w);
        return NULL;
}

struct ks_worker *worker_abandon(struct ks_worker *w, worker_fn_t cleanup)
{
        if (!w)
                return NULL;
        w->io = sd_event_source_disable_unref(w->io);
        w->cleanup = cleanup;
        /* Still working: the thread sees WORK_ABANDONED (and cleanup) once work returns. */
        if (w->running && atomic_exchange(&w->stage, WORK_ABANDONED) == WORK_RUNNING)
                return NULL;
        /* Done or about to write the eventfd: a matter of instructions. */
        wait_done(w);
        cleanup(w->userdata);
        return worker_free(w);
}

static int start_thread(struct ks_worker *w)
{
        pthread_attr_t attr;
        pthread_t thread;
        int r = -pthread_attr_init(&attr);

        if (r < 0)
                return r;
        r = -pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (r == 0)
                r = -pthread_create(&thread, &attr, worker_thread, w);
        pthread_attr_destroy(&attr);
        w->running = r == 0;
        return r;
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
        if (r >= 0)
                r = start_thread(w);
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
