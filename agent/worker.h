/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

/*
 * Slow work off the event loop: `work` runs on a thread of its own, then
 * `done` runs on the loop (woken through an eventfd). The two share only
 * userdata; work must not touch anything the loop changes meanwhile. Free the
 * worker once done ran, from done itself if need be; freeing it earlier waits
 * for work to return.
 */

struct ks_worker;

typedef void (*worker_fn_t)(void *userdata);

int worker_start(sd_event *event, worker_fn_t work, worker_fn_t done, void *userdata, struct ks_worker **ret);
/*
 * The same for bulk work nothing urgent waits for (compiling a reload,
 * reading a large table back): its thread runs at a lower priority (nice
 * +WORKER_BACKGROUND_NICE), so that on a busy machine the loop, and the
 * client of an isolate, get the CPU first.
 */
#define WORKER_BACKGROUND_NICE 10
int worker_start_background(sd_event *event, worker_fn_t work, worker_fn_t done, void *userdata,
                            struct ks_worker **ret);
struct ks_worker *worker_free(struct ks_worker *w);
/*
 * At exit, for work that may take long and whose result nobody wants any
 * more: let go of the worker without waiting. done never runs; cleanup(userdata)
 * does instead, on the worker's thread once work returns (if the process
 * still runs then), or now if work has returned already. Call it on the loop;
 * the event loop may go after it returned.
 */
struct ks_worker *worker_abandon(struct ks_worker *w, worker_fn_t cleanup);
/* Wait for work to return and run done now, on the caller's stack (done may free the worker). */
void worker_finish(struct ks_worker *w);
