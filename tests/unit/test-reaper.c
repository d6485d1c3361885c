/* SPDX-License-Identifier: MIT */
/* Freeing off the event loop (agent/reaper.c); background workers' priority and abandoning (agent/worker.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "reaper.h"
#include "worker.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static pthread_t loop_thread;
static atomic_int freed, freed_on_loop;

struct thing {
        unsigned sleep_ms;
};

static void free_thing(void *p)
{
        struct thing *t = p;

        if (t->sleep_ms)
                nanosleep(&(struct timespec){ .tv_nsec = t->sleep_ms * 1000000L }, NULL);
        if (pthread_equal(pthread_self(), loop_thread))
                freed_on_loop++;
        freed++;
        free(t);
}

static struct thing *thing_new(unsigned sleep_ms)
{
        struct thing *t = calloc(1, sizeof(*t));

        assert_non_null(t);
        t->sleep_ms = sleep_ms;
        return t;
}

static int setup(void **state)
{
        (void)state;
        loop_thread = pthread_self();
        freed = freed_on_loop = 0;
        return 0;
}

/* Freed on threads, each finished on the loop; a NULL pointer is nothing to free. */
static void test_off_the_loop(void **state)
{
        struct ks_reaper *r = NULL;
        sd_event *e = NULL;

        (void)state;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(reaper_new(e, &r), 0);
        for (unsigned i = 0; i < 8; i++)
                reaper_add(r, thing_new(i % 2), free_thing);
        reaper_add(r, NULL, free_thing);
        for (unsigned i = 0; i < 1000 && freed < 8; i++)
                assert_true(sd_event_run(e, 100000) >= 0);
        for (unsigned i = 0; i < 20; i++)       /* the last ones' done callbacks */
                assert_true(sd_event_run(e, 1000) >= 0);
        assert_int_equal(freed, 8);
        assert_int_equal(freed_on_loop, 0);
        assert_null(reaper_free(r));
        sd_event_unref(e);
}

/* reaper_free() waits for what is being freed; without a reaper, freed at once on the caller's thread. */
static void test_free_waits(void **state)
{
        struct ks_reaper *r = NULL;
        sd_event *e = NULL;

        (void)state;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(reaper_new(e, &r), 0);
        for (unsigned i = 0; i < 4; i++)
                reaper_add(r, thing_new(30), free_thing);
        assert_null(reaper_free(r));
        assert_int_equal(freed, 4);
        assert_int_equal(freed_on_loop, 0);
        reaper_add(NULL, thing_new(0), free_thing);
        assert_int_equal(freed, 5);
        assert_int_equal(freed_on_loop, 1);
        sd_event_unref(e);
}

static int work_nice, done_runs;

static void read_nice(void *userdata)
{
        (void)userdata;
        errno = 0;
        work_nice = getpriority(PRIO_PROCESS, (id_t)gettid());
        if (errno)
                work_nice = INT32_MIN;
}

static void count_done(void *userdata)
{
        (void)userdata;
        done_runs++;
}

/* A background worker's thread runs WORKER_BACKGROUND_NICE lower than the loop (19 at most); the loop's stays. */
static void test_background_nice(void **state)
{
        struct ks_worker *w = NULL;
        sd_event *e = NULL;
        int mine, want;

        (void)state;
        errno = 0;
        mine = getpriority(PRIO_PROCESS, (id_t)gettid());
        assert_int_equal(errno, 0);
        want = mine + WORKER_BACKGROUND_NICE > 19 ? 19 : mine + WORKER_BACKGROUND_NICE;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(worker_start_background(e, read_nice, count_done, NULL, &w), 0);
        worker_finish(w);
        assert_int_equal(done_runs, 1);
        assert_int_equal(work_nice, want);
        assert_int_equal(getpriority(PRIO_PROCESS, (id_t)gettid()), mine);
        worker_free(w);
        assert_int_equal(worker_start(e, read_nice, count_done, NULL, &w), 0);
        worker_finish(w);
        assert_int_equal(work_nice, mine);
        worker_free(w);
        sd_event_unref(e);
}

static atomic_bool work_may_return, work_returned;
static atomic_int cleanups, cleanups_on_loop;

static void held_work(void *userdata)
{
        (void)userdata;
        while (!work_may_return)
                nanosleep(&(struct timespec){ .tv_nsec = 1000000L }, NULL);
        work_returned = true;
}

static void count_cleanup(void *userdata)
{
        (void)userdata;
        if (pthread_equal(pthread_self(), loop_thread))
                cleanups_on_loop++;
        cleanups++;
}

/* Wait up to 10 s for *v to become want. */
static bool wait_for(atomic_int *v, int want)
{
        for (unsigned i = 0; i < 10000 && *v != want; i++)
                nanosleep(&(struct timespec){ .tv_nsec = 1000000L }, NULL);
        return *v == want;
}

/*
 * worker_abandon() does not wait for work still running: done never runs,
 * cleanup does on the worker's thread once work returns. Once work has
 * returned, cleanup runs at once on the caller's.
 */
static void test_abandon(void **state)
{
        struct ks_worker *w = NULL;
        sd_event *e = NULL;

        (void)state;
        done_runs = cleanups = cleanups_on_loop = 0;
        work_may_return = work_returned = false;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(worker_start_background(e, held_work, count_done, NULL, &w), 0);
        assert_null(worker_abandon(w, count_cleanup));
        assert_false(work_returned);
        assert_int_equal(cleanups, 0);
        work_may_return = true;
        assert_true(wait_for(&cleanups, 1));
        assert_int_equal(cleanups_on_loop, 0);
        assert_true(sd_event_run(e, 1000) >= 0);
        assert_int_equal(done_runs, 0);

        /* Its eventfd written (the loop is woken), done not dispatched yet. */
        assert_int_equal(worker_start(e, held_work, count_done, NULL, &w), 0);
        assert_int_equal(sd_event_prepare(e), 0);
        assert_int_equal(sd_event_wait(e, 10000000), 1);
        assert_null(worker_abandon(w, count_cleanup));
        assert_int_equal(cleanups, 2);
        assert_int_equal(cleanups_on_loop, 1);
        assert_true(sd_event_dispatch(e) >= 0);
        assert_int_equal(done_runs, 0);
        sd_event_unref(e);
}

/* Resident pages of this process (/proc/self/statm), in KiB. */
static long rss_kib(void)
{
        long size = 0, resident = 0;
        FILE *f = fopen("/proc/self/statm", "re");

        assert_non_null(f);
        assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
        fclose(f);
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

struct node {
        struct node *next;
        char payload[248];
};

static void free_list(void *p)
{
        for (struct node *n = p, *next; n; n = next) {
                next = n->next;
                free(n);
        }
}

#define NODES 200000
#define KEEP_EVERY 64

/*
 * What a reaper frees goes back to the system (malloc_trim on its thread): a
 * ruleset's elements are many small allocations, and what stays allocated
 * between them (here one node in 64) keeps free() alone from shrinking the heap.
 */
static void test_given_back(void **state)
{
        struct node *reaped = NULL, *kept = NULL;
        struct ks_reaper *r = NULL;
        sd_event *e = NULL;
        long before, grown, after;

        (void)state;
        if (UNDER_ASAN) {       /* its allocator keeps freed memory in a quarantine (and TAP fails a skip) */
                print_message("# RSS not measured under AddressSanitizer\n");
                return;
        }
        before = rss_kib();
        for (unsigned i = 0; i < NODES; i++) {
                struct node *n = malloc(sizeof(*n));

                assert_non_null(n);
                memset(n->payload, 1, sizeof(n->payload));
                n->next = i % KEEP_EVERY ? reaped : kept;
                *(i % KEEP_EVERY ? &reaped : &kept) = n;
        }
        grown = rss_kib() - before;
        assert_true(grown > (long)(NODES / 4 * sizeof(struct node) / 1024));
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(reaper_new(e, &r), 0);
        reaper_add(r, reaped, free_list);
        assert_null(reaper_free(r));
        after = rss_kib() - before;
        print_message("# RSS grew %ld KiB for %d nodes; %ld KiB after the reaper freed all but 1 in %d\n", grown,
                      NODES, after, KEEP_EVERY);
        assert_true(after < grown / 2);
        free_list(kept);
        sd_event_unref(e);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_off_the_loop, setup),
                cmocka_unit_test_setup(test_free_waits, setup),
                cmocka_unit_test_setup(test_background_nice, setup),
                cmocka_unit_test_setup(test_abandon, setup),
                cmocka_unit_test_setup(test_given_back, setup),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
