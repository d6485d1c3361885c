/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup.h"
#include "fileio.h"
#include "log.h"
#include "syncer.h"
#include "worker.h"

struct ks_syncer {
        sd_event *event;
        char *path, *dir, *name, *what; /* path: dir/name */
        struct ks_worker *worker;       /* the fsync running, or NULL */
        char *text;                     /* the thread's: the file's new text (syncer_replace), or NULL */
        char *next_text;                /* asked for while it ran */
        mode_t mode, next_mode;         /* the thread's, and that of next_text */
        bool running_dir;               /* the thread's: the directory too */
        int r;                          /* the thread's result */
        bool again, again_dir;          /* asked for while it ran */
};

static int sync_file(const char *path, const char *dir)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return dir ? fsync_dir(dir) : 0;
}

/* A job's end, on the loop: its failure logged, its text freed. */
static void job_end(struct ks_syncer *s)
{
        if (s->r < 0)
                log_warning("Could not %s %s (%s): %s", s->text ? "save" : "sync", s->what, s->path,
                            strerror(-s->r));
        free(s->text);
        s->text = NULL;
}

/* On the thread: path and dir never change; text is the thread's until done. */
static void sync_work(void *userdata)
{
        struct ks_syncer *s = userdata;

        s->r = s->text ? write_file_atomic(s->dir, s->name, s->text, s->mode)
                       : sync_file(s->path, s->running_dir ? s->dir : NULL);
}

static void sync_start(struct ks_syncer *s, bool dir);

static void sync_done(void *userdata)
{
        struct ks_syncer *s = userdata;

        s->worker = worker_free(s->worker);
        job_end(s);
        if (s->again) {
                s->again = false;
                s->text = TAKE_PTR(s->next_text);
                s->mode = s->next_mode;
                sync_start(s, s->again_dir || (s->r < 0 && s->running_dir));
        }
}

static void sync_start(struct ks_syncer *s, bool dir)
{
        s->running_dir = dir;
        if (worker_start(s->event, sync_work, sync_done, s, &s->worker) < 0) {
                sync_work(s);           /* here, then */
                job_end(s);
        }
}

void syncer_kick(struct ks_syncer *s, bool dir)
{
        if (!s->worker) {
                sync_start(s, dir);
                return;
        }
        s->again_dir = s->again ? s->again_dir || dir : dir;
        s->again = true;
}

void syncer_replace(struct ks_syncer *s, char *text, mode_t mode)
{
        if (!s->worker) {
                s->text = text;
                s->mode = mode;
                sync_start(s, true);
                return;
        }
        free(s->next_text);
        s->next_text = text;
        s->next_mode = mode;
        s->again_dir = s->again = true;
}

struct ks_syncer *syncer_free(struct ks_syncer *s)
{
        if (!s)
                return NULL;
        while (s->worker) {
                struct ks_worker *w = s->worker;

                worker_finish(w);       /* done may start the one asked for meanwhile */
                if (s->worker == w)     /* its done had run already */
                        s->worker = worker_free(w);
        }
        sd_event_unref(s->event);
        free(s->next_text);
        free(s->path);
        free(s->dir);
        free(s->name);
        free(s->what);
        free(s);
        return NULL;
}

void syncer_save(struct ks_syncer **s, sd_event *event, const char *dir, const char *name, const char *what,
                 char *text, mode_t mode)
{
        _cleanup_free_ char *t = text;
        int r;

        if (*s || syncer_new(event, dir, name, what, s) >= 0) {
                syncer_replace(*s, TAKE_PTR(t), mode);
                return;
        }
        r = write_file_atomic(dir, name, t, mode);      /* here, then */
        if (r < 0)
                log_warning("Could not save %s in %s/%s: %s", what, dir, name, strerror(-r));
}

int syncer_new(sd_event *event, const char *dir, const char *name, const char *what, struct ks_syncer **ret)
{
        struct ks_syncer *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        *s = (struct ks_syncer){ .event = sd_event_ref(event), .path = strdup_printf("%s/%s", dir, name),
                                 .dir = strdup(dir), .name = strdup(name), .what = strdup(what) };
        if (!s->path || !s->dir || !s->name || !s->what) {
                syncer_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}
